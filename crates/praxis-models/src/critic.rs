//! The key-result critic's wire format: the question a critic model call is asked (one key
//! result and the evidence recorded in a run's ledger), the structured answer it must give,
//! and the mock provider's judge, which decides from that evidence alone.
//!
//! The component that asks (and checks the answer's quotes against the ledger) is
//! `praxis_runtime::critic`; this module is only the shape both sides share.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The system instruction of every critic call. The mock provider recognises a critic call
/// by it.
pub const CRITIC_INSTRUCTION: &str = "You are the Praxis key-result critic. The user message \
is a JSON object: `key_result`, a statement the run was meant to achieve, and `evidence`, \
entries recorded in the run's ledger (`seq`, `kind`, `text`). Decide from the evidence alone \
whether the key result is met. Quote, verbatim, the passages of `text` that show it: a quote \
that is not found in the evidence does not count. When the evidence does not show it, it is \
not met.";

/// One ledger entry offered to the critic as evidence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EvidenceItem {
    /// The entry's position in the run's hash chain.
    pub seq: u64,
    /// The entry kind (`execution`, `run_finished`, ...).
    pub kind: String,
    /// What the entry says: a tool's output, the final answer.
    pub text: String,
}

/// What one critic call is asked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CriticQuestion {
    pub key_result: String,
    pub evidence: Vec<EvidenceItem>,
}

/// The critic's structured answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CriticAnswer {
    /// Whether the evidence shows the key result achieved.
    pub met: bool,
    /// Verbatim passages of the evidence that show it (empty when not met).
    pub quotes: Vec<String>,
    /// One sentence: why.
    pub reason: String,
}

/// Words too common to say anything about a key result.
const STOPWORDS: &[&str] = &[
    "about", "after", "been", "both", "does", "each", "from", "have", "into", "least", "more",
    "must", "only", "should", "some", "than", "that", "their", "them", "then", "there", "these",
    "they", "this", "when", "which", "will", "with", "within", "would",
];

/// The terms of a key result the mock looks for: its words of four letters or more, lower
/// case, stopwords left out.
fn terms(key_result: &str) -> Vec<String> {
    let mut terms: Vec<String> = key_result
        .split(|c: char| !c.is_alphanumeric() && c != '_' && c != '-' && c != '.')
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| w.chars().count() >= 4 && !STOPWORDS.contains(&w.as_str()))
        .collect();
    terms.dedup();
    terms
}

/// The mock provider's critic: met only when every term of the key result occurs in the
/// evidence, quoting for each term the line of evidence it occurs in. A key result with no
/// term to look for is not met (there is nothing to show).
pub fn mock_judge(question: &CriticQuestion) -> CriticAnswer {
    let terms = terms(&question.key_result);
    if terms.is_empty() {
        return CriticAnswer {
            met: false,
            quotes: Vec::new(),
            reason: "the key result names nothing the evidence could show".into(),
        };
    }
    let mut quotes: Vec<String> = Vec::new();
    let mut missing = Vec::new();
    for term in &terms {
        let line = question.evidence.iter().find_map(|item| {
            item.text
                .lines()
                .map(str::trim)
                .find(|line| line.to_lowercase().contains(term.as_str()))
        });
        match line {
            Some(line) => {
                if !quotes.iter().any(|q| q == line) {
                    quotes.push(line.to_string());
                }
            }
            None => missing.push(term.as_str()),
        }
    }
    if missing.is_empty() {
        CriticAnswer {
            met: true,
            quotes,
            reason: format!("the evidence mentions {}", terms.join(", ")),
        }
    } else {
        CriticAnswer {
            met: false,
            quotes: Vec::new(),
            reason: format!("the evidence never mentions {}", missing.join(", ")),
        }
    }
}

/// The critic question of a request whose first system message is the critic instruction
/// (its first user message is the question); None for any other request.
pub(crate) fn question_of(request: &praxis_core::ModelRequest) -> Option<CriticQuestion> {
    use praxis_core::Role;
    let first = request.messages.first()?;
    if first.role != Role::System || first.content != CRITIC_INSTRUCTION {
        return None;
    }
    let user = request.messages.iter().find(|m| m.role == Role::User)?;
    serde_json::from_str(&user.content).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn question(key_result: &str, texts: &[&str]) -> CriticQuestion {
        CriticQuestion {
            key_result: key_result.into(),
            evidence: texts
                .iter()
                .enumerate()
                .map(|(i, t)| EvidenceItem {
                    seq: i as u64 + 1,
                    kind: "execution".into(),
                    text: (*t).into(),
                })
                .collect(),
        }
    }

    #[test]
    fn met_only_when_every_term_is_in_the_evidence_and_quotes_are_verbatim() {
        let q = question(
            "The README describes a parser",
            &[
                "listing:\nREADME.md\nsrc/",
                "The README describes a parser; the report is done.",
            ],
        );
        let answer = mock_judge(&q);
        assert!(answer.met, "{answer:?}");
        for quote in &answer.quotes {
            assert!(q.evidence.iter().any(|e| e.text.contains(quote.as_str())));
        }
        let q = question("The tests pass under coverage", &["3 tests passed"]);
        let answer = mock_judge(&q);
        assert!(!answer.met);
        assert!(answer.quotes.is_empty());
        assert!(answer.reason.contains("coverage"), "{}", answer.reason);
    }

    #[test]
    fn nothing_to_look_for_or_no_evidence_is_not_met() {
        assert!(!mock_judge(&question("it is so", &["it is so"])).met);
        assert!(!mock_judge(&question("Summary written", &[])).met);
    }
}
