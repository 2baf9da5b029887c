//! Judgement: one intent, judged by its tool's contract, then the run's policy, then the
//! writ. The kernel judges every proposal with [`judge`], and what-if checks judge recorded
//! proposals again with the same function, so the order cannot drift between the two.

use crate::authority::{Authority, Authorization, AuthzRequest, Spent};
use crate::contract::{CompileError, Compiled, Contracts};
use crate::policy::Policy;
use crate::types::{Millis, Verdict};
use serde_json::Value;

/// What judging an intent decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Judgement {
    /// The tool's contract refused the intent (unknown tool, invalid arguments): it has no
    /// effect or resources to judge. Recorded as a deny by rule `contract`.
    Rejected(CompileError),
    /// The contract compiled it and policy, then the writ, decided.
    Judged {
        compiled: Compiled,
        verdict: Verdict,
    },
    /// The writ says this proposal would exceed a budget (`rule`): the run stops.
    Exhausted {
        compiled: Compiled,
        rule: String,
        reason: String,
    },
}

/// Judges `tool(arguments)` at `now` with `spent` consumed: contract -> policy -> writ (the
/// writ is asked only about what the policy allows). Pure.
pub fn judge(
    contracts: &dyn Contracts,
    policy: &Policy,
    authority: Option<&dyn Authority>,
    tool: &str,
    arguments: &Value,
    now: Millis,
    spent: &Spent,
) -> Judgement {
    let compiled = if arguments.is_object() {
        contracts.compile(tool, arguments)
    } else {
        Err(CompileError::InvalidArguments {
            tool: tool.to_string(),
            problems: vec![format!("arguments must be a JSON object, got {arguments}")],
        })
    };
    let compiled = match compiled {
        Ok(compiled) => compiled,
        Err(error) => return Judgement::Rejected(error),
    };
    let verdict = policy.evaluate(tool, &compiled);
    let (Verdict::Allow { .. }, Some(authority)) = (&verdict, authority) else {
        return Judgement::Judged { compiled, verdict };
    };
    let resources = policy.normalized(&compiled.resources);
    let request = AuthzRequest {
        tool,
        arguments,
        effect: compiled.effect,
        resources: &resources,
        now,
        spent,
    };
    match authority.authorize(&request) {
        Authorization::Verdict(verdict) => Judgement::Judged { compiled, verdict },
        Authorization::Exhausted { rule, reason } => Judgement::Exhausted {
            compiled,
            rule,
            reason,
        },
    }
}
