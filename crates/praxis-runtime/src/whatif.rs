//! Policy what-if: would a different writ have decided a recorded run differently?
//!
//! Every recorded proposal of the run is judged again, without executing anything, by the
//! run's own policy (from its recorded spec) and then the new writ, with the time and the
//! consumption the kernel had at that proposal. Only verdicts that change are reported.
//!
//! The time and consumption are read from the proposal entry itself: the kernel records what
//! it judged each proposal with, so nothing here re-derives its accounting.

use crate::recorded::{self, Reader, RecordError};
use praxis_core::kernel::kinds;
use praxis_core::{
    Authority, Authorization, AuthzRequest, Contracts, Millis, Policy, RunSpec, Spent, Verdict,
};
use praxis_ledger::{Entry, Ledger};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;

/// A recorded proposal whose verdict the new writ would change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChangedVerdict {
    /// Ledger seq of the `proposal` entry.
    pub seq: u64,
    pub tool: String,
    /// The recorded verdict: `allow`, `deny` or `needs_approval`.
    pub before: String,
    /// The verdict under the new writ.
    pub after: String,
    /// `RULE: REASON` of the new verdict; when it becomes `allow`, the old rule and reason
    /// (`was RULE: REASON`).
    pub reason: String,
}

/// Re-evaluates every recorded proposal of `run_id` under its own policy and `new_authority`
/// (None: no writ, only the run's policy) and returns the verdicts that would change, in
/// ledger order. `contracts` must be the registry the run used.
pub fn check(
    ledger: &dyn Ledger,
    contracts: Arc<dyn Contracts>,
    run_id: &str,
    new_authority: Option<Arc<dyn Authority>>,
) -> Result<Vec<ChangedVerdict>, RecordError> {
    let entries = recorded::load(ledger, run_id)?;
    let read = Reader { run_id };
    let first = &entries[0];
    if first.kind != kinds::RUN_STARTED {
        return Err(read.malformed(first, "kind", format!("expected `{}`", kinds::RUN_STARTED)));
    }
    let spec: RunSpec = read.field(first, "spec")?;
    let policy = Policy::for_run(&spec);
    let judge = Judge {
        contracts: &*contracts,
        policy: &policy,
        authority: new_authority.as_deref(),
    };
    let mut changed = Vec::new();
    // Each proposal entry records the time and consumption the kernel judged it with.
    for entry in entries.iter().filter(|e| e.kind == kinds::PROPOSAL) {
        let now: Millis = read.field(entry, "now")?;
        let spent: Spent = read.field(entry, "spent")?;
        if let Some(change) = judge.proposal(&read, entry, now, &spent)? {
            changed.push(change);
        }
    }
    Ok(changed)
}

/// Judges one recorded proposal again.
struct Judge<'a> {
    contracts: &'a dyn Contracts,
    policy: &'a Policy,
    authority: Option<&'a dyn Authority>,
}

impl Judge<'_> {
    fn proposal(
        &self,
        read: &Reader<'_>,
        entry: &Entry,
        now: Millis,
        spent: &Spent,
    ) -> Result<Option<ChangedVerdict>, RecordError> {
        let tool: String = read.field(entry, "tool")?;
        let arguments: Value = read.field(entry, "arguments")?;
        let before: String = read.field(entry, "verdict")?;
        let old_rule: String = read.field(entry, "rule")?;
        let old_reason: String = read.field(entry, "reason")?;
        let (after, reason) = self.verdict(&tool, &arguments, now, spent);
        if after == before {
            return Ok(None);
        }
        let reason = if after == "allow" {
            if old_reason.is_empty() {
                format!("was {old_rule}")
            } else {
                format!("was {old_rule}: {old_reason}")
            }
        } else {
            reason
        };
        Ok(Some(ChangedVerdict {
            seq: entry.seq,
            tool,
            before,
            after,
            reason,
        }))
    }

    /// The verdict kind and `RULE: REASON`, as the kernel would decide it.
    fn verdict(
        &self,
        tool: &str,
        arguments: &Value,
        now: Millis,
        spent: &Spent,
    ) -> (String, String) {
        // The kernel rejects non-object arguments before compiling, as a contract rejection.
        let compiled = if arguments.is_object() {
            self.contracts.compile(tool, arguments)
        } else {
            return (
                "deny".into(),
                format!("contract: arguments must be a JSON object, got {arguments}"),
            );
        };
        let compiled = match compiled {
            Ok(compiled) => compiled,
            Err(error) => return ("deny".into(), format!("contract: {error}")),
        };
        let mut verdict = self.policy.evaluate(tool, &compiled);
        if let (Verdict::Allow { .. }, Some(authority)) = (&verdict, self.authority) {
            let resources = self.policy.normalized(&compiled.resources);
            let request = AuthzRequest {
                tool,
                arguments,
                effect: compiled.effect,
                resources: &resources,
                now,
                spent,
            };
            match authority.authorize(&request) {
                Authorization::Verdict(v) => verdict = v,
                Authorization::Exhausted { rule, reason } => {
                    return ("deny".into(), format!("{rule}: budget exhausted: {reason}"));
                }
            }
        }
        let reason = match verdict.reason() {
            "" => verdict.rule().to_string(),
            why => format!("{}: {why}", verdict.rule()),
        };
        (verdict.kind().to_string(), reason)
    }
}
