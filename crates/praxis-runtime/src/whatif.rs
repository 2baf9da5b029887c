//! Policy what-if: would a different writ have decided a recorded run differently?
//!
//! Every recorded proposal of the run is judged again, without executing anything, by the
//! run's own policy (from its recorded spec) and then the new writ, with the time and the
//! consumption the kernel had at that proposal. Only verdicts that change are reported.
//!
//! The time and consumption are read from the proposal entry itself: the kernel records what
//! it judged each proposal with, so nothing here re-derives its accounting.

use crate::recorded::{self, Reader, RecordError};
use praxis_core::kernel::{Judgement, judge};
use praxis_core::record::{ProposalRecord, VerdictKind};
use praxis_core::{Authority, Contracts, Policy, Record};
use praxis_ledger::Ledger;
use serde::Serialize;
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
    let spec = read.run_started(&entries[0])?.spec;
    let policy = Policy::for_run(&spec);
    let mut changed = Vec::new();
    for entry in &entries {
        let Record::Proposal(proposal) = read.record(entry)? else {
            continue;
        };
        // Each proposal records the time and consumption the kernel judged it with; one the
        // contract rejected was never judged further, and would be rejected again.
        let (Some(now), Some(spent)) = (proposal.now, proposal.spent) else {
            continue;
        };
        let judgement = judge(
            &*contracts,
            &policy,
            new_authority.as_deref(),
            &proposal.tool,
            &proposal.arguments,
            now,
            &spent,
        );
        if let Some(change) = compare(entry.seq, &proposal, judgement) {
            changed.push(change);
        }
    }
    Ok(changed)
}

/// The change from the recorded verdict to the new judgement, if any.
fn compare(seq: u64, recorded: &ProposalRecord, judgement: Judgement) -> Option<ChangedVerdict> {
    let (after, reason) = match judgement {
        Judgement::Rejected(error) => (VerdictKind::Deny, format!("contract: {error}")),
        Judgement::Exhausted { rule, reason, .. } => (
            VerdictKind::Deny,
            format!("{rule}: budget exhausted: {reason}"),
        ),
        Judgement::Judged { verdict, .. } => {
            let reason = match verdict.reason() {
                "" => verdict.rule().to_string(),
                why => format!("{}: {why}", verdict.rule()),
            };
            (VerdictKind::of(&verdict), reason)
        }
    };
    if after == recorded.verdict {
        return None;
    }
    let reason = if after == VerdictKind::Allow {
        if recorded.reason.is_empty() {
            format!("was {}", recorded.rule)
        } else {
            format!("was {}: {}", recorded.rule, recorded.reason)
        }
    } else {
        reason
    };
    Some(ChangedVerdict {
        seq,
        tool: recorded.tool.clone(),
        before: recorded.verdict.as_str().to_string(),
        after: after.as_str().to_string(),
        reason,
    })
}
