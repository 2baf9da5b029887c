//! Who answers a proposal that needs approval: nobody (`--approve never`), the runtime
//! itself (`--approve auto`), or a person, through the approvals table another process
//! writes (`praxis approve`), or at the terminal (the CLI's prompt).

use praxis_core::{Millis, Proposal};
use praxis_ledger::approvals::{ApprovalRequest, ApprovalStore};
use praxis_ledger::{BoxFuture, now_rfc3339};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalOutcome {
    pub approved: bool,
    pub by: String,
    pub reason: String,
}

pub trait Approver: Send + Sync {
    /// Decides `proposal` of `run_id`; `timeout` (from the writ) bounds the wait, after which
    /// the proposal counts as denied.
    fn decide<'a>(
        &'a self,
        run_id: &'a str,
        proposal: &'a Proposal,
        timeout: Option<Duration>,
    ) -> BoxFuture<'a, ApprovalOutcome>;
}

/// The same answer to every proposal: `--approve auto` and `--approve never`.
pub struct FixedDecision(pub ApprovalOutcome);

impl FixedDecision {
    /// `--approve auto`: every proposal that needs approval is approved, visibly.
    pub fn auto() -> Self {
        FixedDecision(ApprovalOutcome {
            approved: true,
            by: "auto (--approve auto)".into(),
            reason: String::new(),
        })
    }

    /// `--approve never`: every proposal that needs approval is denied.
    pub fn never() -> Self {
        FixedDecision(ApprovalOutcome {
            approved: false,
            by: "policy (--approve never)".into(),
            reason: "this run does not accept approvals".into(),
        })
    }
}

impl Approver for FixedDecision {
    fn decide<'a>(
        &'a self,
        _: &'a str,
        _: &'a Proposal,
        _: Option<Duration>,
    ) -> BoxFuture<'a, ApprovalOutcome> {
        Box::pin(async { self.0.clone() })
    }
}

/// Files the request in the approvals table and waits for another process to decide.
pub struct StoreApprover {
    pub store: Arc<ApprovalStore>,
    /// How often the table is read while waiting.
    pub poll: Duration,
    /// Used when the writ sets no approval timeout.
    pub default_timeout: Duration,
}

impl StoreApprover {
    pub fn new(store: Arc<ApprovalStore>) -> Self {
        StoreApprover {
            store,
            poll: Duration::from_millis(200),
            default_timeout: Duration::from_secs(3600),
        }
    }
}

impl Approver for StoreApprover {
    fn decide<'a>(
        &'a self,
        run_id: &'a str,
        proposal: &'a Proposal,
        timeout: Option<Duration>,
    ) -> BoxFuture<'a, ApprovalOutcome> {
        Box::pin(async move {
            let timeout = timeout.unwrap_or(self.default_timeout);
            let request = ApprovalRequest {
                run_id: run_id.into(),
                call_id: proposal.call_id.clone(),
                tool: proposal.tool.clone(),
                arguments: proposal.arguments.to_string(),
                reason: proposal.verdict.reason().to_string(),
                requested_at: now_rfc3339(),
                expires_at_ms: Some(crate::driver::now_millis() + timeout.as_millis() as Millis),
            };
            let failed = |error: String| ApprovalOutcome {
                approved: false,
                by: "praxis".into(),
                reason: format!("the approval could not be filed or read: {error}"),
            };
            if let Err(error) = self.store.request(&request) {
                return failed(error.to_string());
            }
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                match self.store.decision(run_id, &proposal.call_id) {
                    Ok(Some(d)) => {
                        return ApprovalOutcome {
                            approved: d.approved,
                            by: d.by,
                            reason: d.reason,
                        };
                    }
                    Ok(None) => {}
                    Err(error) => return failed(error.to_string()),
                }
                if tokio::time::Instant::now() >= deadline {
                    // Close the request so a late `praxis approve` cannot appear to succeed.
                    let by = "praxis (approval timeout)";
                    let why = format!("no decision within {}s", timeout.as_secs());
                    let _ = self
                        .store
                        .decide(run_id, Some(&proposal.call_id), false, by, &why);
                    return ApprovalOutcome {
                        approved: false,
                        by: by.into(),
                        reason: why,
                    };
                }
                tokio::time::sleep(self.poll).await;
            }
        })
    }
}
