//! The key-result critic: judges whether a run achieved what it was meant to, from what its
//! ledger recorded, with a model call per key result and structured output.
//!
//! ```no_run
//! # async fn example(ledger: &dyn praxis_ledger::Ledger, run_id: &str) -> Result<(), Box<dyn std::error::Error>> {
//! use praxis_runtime::critic::{Critic, Evidence, KeyResult};
//! use std::sync::Arc;
//!
//! let evidence = Evidence::of_run(ledger, run_id)?;
//! let critic = Critic::new(Arc::new(praxis_models::MockProvider::new()));
//! let verdicts = critic
//!     .judge(&evidence, &[KeyResult::text("The README is summarized")])
//!     .await;
//! for verdict in &verdicts.verdicts {
//!     println!("{}: met={} {:?}", verdict.key_result, verdict.met, verdict.evidence);
//! }
//! # Ok(()) }
//! ```
//!
//! Honesty is enforced here, not trusted to the model: a verdict is `met` only when the
//! model says so **and** quotes at least one passage that occurs verbatim in the evidence;
//! every quote is returned with the ledger `seq` it was found at, so a reader can check it
//! against the hash chain. A model error or an unusable reply is a verdict of not met that
//! says why.

use crate::recorded::{self, RecordError};
use praxis_core::{Record, Usage};
use praxis_ledger::Ledger;
use praxis_models::critic::{CRITIC_INSTRUCTION, CriticAnswer, CriticQuestion, EvidenceItem};
use praxis_models::{NoDeltas, Provider};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Characters of one entry's text offered as evidence at most (head kept).
const MAX_ITEM_CHARS: usize = 4000;

/// A key result: a statement the run should make true, and optionally a shell command that
/// checks it (exit 0: met). JSON: a string, or `{"text": ..., "check": ...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KeyResult {
    Text(String),
    Checked {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        check: Option<String>,
    },
}

impl KeyResult {
    /// A key result judged by the critic.
    pub fn text(text: impl Into<String>) -> Self {
        KeyResult::Text(text.into())
    }

    pub fn statement(&self) -> &str {
        match self {
            KeyResult::Text(text) | KeyResult::Checked { text, .. } => text,
        }
    }

    /// The shell command that checks it, if any.
    pub fn check(&self) -> Option<&str> {
        match self {
            KeyResult::Text(_) => None,
            KeyResult::Checked { check, .. } => check.as_deref(),
        }
    }
}

/// How a verdict was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JudgedBy {
    /// Its `check` command ran in the sandbox.
    Check,
    /// The critic model judged it from the ledger.
    Critic,
    /// Not judged (the run did not complete).
    NotJudged,
}

/// A passage of the ledger that supports a verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    /// The ledger entry it was found in (None: not from the ledger, e.g. a check's output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub kind: String,
    pub quote: String,
}

/// The verdict on one key result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyResultVerdict {
    pub key_result: String,
    pub met: bool,
    pub judged_by: JudgedBy,
    /// For the critic: quotes found in the ledger. For a check: its output.
    pub evidence: Vec<Quote>,
    /// Why, in one sentence.
    pub reason: String,
}

/// What a run recorded that can show a key result: every tool execution's output and the
/// final answer, each with its ledger seq.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evidence {
    pub items: Vec<EvidenceItem>,
}

impl Evidence {
    /// The evidence run `run_id` recorded in `ledger`.
    pub fn of_run(ledger: &dyn Ledger, run_id: &str) -> Result<Self, RecordError> {
        let reader = recorded::Reader { run_id };
        let mut items = Vec::new();
        for entry in recorded::load(ledger, run_id)? {
            let text = match reader.record(&entry)? {
                Record::Execution(execution) => format!(
                    "{} ({}{}):\n{}",
                    execution.tool,
                    execution.status.as_str(),
                    execution
                        .exit_code
                        .map(|c| format!(", exit {c}"))
                        .unwrap_or_default(),
                    execution.output
                ),
                Record::RunFinished(finished) => match finished.final_answer {
                    Some(answer) => answer,
                    None => continue,
                },
                _ => continue,
            };
            items.push(EvidenceItem {
                seq: entry.seq,
                kind: entry.kind.clone(),
                text: head(&text, MAX_ITEM_CHARS),
            });
        }
        Ok(Evidence { items })
    }

    /// Where `quote` occurs verbatim (trimmed, non-empty), if anywhere.
    pub fn find(&self, quote: &str) -> Option<&EvidenceItem> {
        let quote = quote.trim();
        if quote.is_empty() {
            return None;
        }
        self.items.iter().find(|item| item.text.contains(quote))
    }
}

fn head(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// The critic's verdicts and what its model calls used.
#[derive(Clone, Debug, Default)]
pub struct Judgement {
    pub verdicts: Vec<KeyResultVerdict>,
    pub usage: Usage,
}

/// Judges key results from a run's evidence with a model (structured output).
pub struct Critic {
    provider: Arc<dyn Provider>,
}

impl Critic {
    pub fn new(provider: Arc<dyn Provider>) -> Self {
        Critic { provider }
    }

    /// One verdict per key result, in order, judged by its statement (a `check` is not run
    /// here: see `praxis_runtime::job`). Never fails: a model error is a verdict of not met.
    pub async fn judge(&self, evidence: &Evidence, key_results: &[KeyResult]) -> Judgement {
        let mut judgement = Judgement::default();
        for key_result in key_results {
            let verdict = self.judge_one(evidence, key_result.statement()).await;
            judgement.usage.add(verdict.1);
            judgement.verdicts.push(verdict.0);
        }
        judgement
    }

    async fn judge_one(&self, evidence: &Evidence, statement: &str) -> (KeyResultVerdict, Usage) {
        let verdict = |met, evidence, reason| KeyResultVerdict {
            key_result: statement.to_string(),
            met,
            judged_by: JudgedBy::Critic,
            evidence,
            reason,
        };
        let question = CriticQuestion {
            key_result: statement.to_string(),
            evidence: evidence.items.clone(),
        };
        let question = match serde_json::to_string_pretty(&question) {
            Ok(text) => text,
            Err(e) => {
                return (
                    verdict(false, Vec::new(), format!("cannot state the question: {e}")),
                    Usage::default(),
                );
            }
        };
        let messages = vec![
            praxis_core::Message::new(praxis_core::Role::System, CRITIC_INSTRUCTION),
            praxis_core::Message::new(praxis_core::Role::User, question),
        ];
        let (answer, response) = match praxis_models::complete_structured::<CriticAnswer>(
            &*self.provider,
            messages,
            &NoDeltas,
        )
        .await
        {
            Ok(answer) => answer,
            Err(e) => {
                return (
                    verdict(false, Vec::new(), format!("the critic failed: {e}")),
                    Usage::default(),
                );
            }
        };
        let mut found = Vec::new();
        let mut unfound = Vec::new();
        for quote in &answer.quotes {
            match evidence.find(quote) {
                Some(item) => found.push(Quote {
                    seq: Some(item.seq),
                    kind: item.kind.clone(),
                    quote: quote.trim().to_string(),
                }),
                None => unfound.push(quote.as_str()),
            }
        }
        let verdict = match (answer.met, found.is_empty()) {
            (true, false) => verdict(true, found, answer.reason),
            (true, true) => verdict(
                false,
                Vec::new(),
                format!(
                    "the critic said met but quoted nothing found in the ledger ({} quote(s) not found): {}",
                    unfound.len(),
                    answer.reason
                ),
            ),
            (false, _) => verdict(false, found, answer.reason),
        };
        (verdict, response.usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use praxis_core::ModelResponse;
    use praxis_models::{BoxFuture, DeltaSink, MockProvider, ModelError};

    fn evidence(texts: &[&str]) -> Evidence {
        Evidence {
            items: texts
                .iter()
                .enumerate()
                .map(|(i, t)| EvidenceItem {
                    seq: i as u64 + 3,
                    kind: "execution".into(),
                    text: (*t).into(),
                })
                .collect(),
        }
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn the_mock_critic_judges_met_and_not_met_from_the_evidence() {
        let critic = Critic::new(Arc::new(MockProvider::new()));
        let evidence = evidence(&[
            "shell (ok, exit 0):\ncargo test: 12 passed",
            "Summary: parser",
        ]);
        let judgement = run(critic.judge(
            &evidence,
            &[
                KeyResult::text("cargo test passed"),
                KeyResult::text("The documentation was translated"),
            ],
        ));
        let [met, unmet] = &judgement.verdicts[..] else {
            panic!("{judgement:?}")
        };
        assert!(met.met, "{met:?}");
        assert_eq!(met.evidence[0].seq, Some(3));
        assert_eq!(met.evidence[0].quote, "cargo test: 12 passed");
        assert!(!unmet.met, "{unmet:?}");
        assert!(unmet.reason.contains("documentation"), "{}", unmet.reason);
        assert!(judgement.usage.input_tokens > 0);
    }

    /// A model that says "met" and quotes something the ledger never said.
    struct Liar;
    impl Provider for Liar {
        fn name(&self) -> &str {
            "liar"
        }
        fn model(&self) -> &str {
            "liar"
        }
        fn for_delegate(&self, _task: &str) -> Result<Arc<dyn Provider>, ModelError> {
            Ok(Arc::new(Liar))
        }
        fn complete<'a>(
            &'a self,
            _request: &'a praxis_core::ModelRequest,
            _deltas: &'a dyn DeltaSink,
        ) -> BoxFuture<'a, Result<ModelResponse, ModelError>> {
            Box::pin(async {
                Ok(ModelResponse {
                    content:
                        r#"{"met": true, "quotes": ["all 40 tests passed"], "reason": "trust me"}"#
                            .into(),
                    ..ModelResponse::default()
                })
            })
        }
    }

    #[test]
    fn a_met_without_a_quote_found_in_the_ledger_is_not_met() {
        let critic = Critic::new(Arc::new(Liar));
        let judgement = run(critic.judge(
            &evidence(&["3 tests failed"]),
            &[KeyResult::text("all tests pass")],
        ));
        let verdict = &judgement.verdicts[0];
        assert!(!verdict.met, "{verdict:?}");
        assert!(
            verdict.reason.contains("quoted nothing"),
            "{}",
            verdict.reason
        );
    }

    #[test]
    fn key_results_parse_from_strings_and_objects() {
        let parsed: Vec<KeyResult> = serde_json::from_str(
            r#"["plain", {"text": "checked", "check": "test -f out"}, {"text": "no check"}]"#,
        )
        .unwrap();
        assert_eq!(parsed[0].statement(), "plain");
        assert_eq!(parsed[1].check(), Some("test -f out"));
        assert_eq!(parsed[2].check(), None);
    }
}
