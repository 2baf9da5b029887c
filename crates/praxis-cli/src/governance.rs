//! Approvals from the command line: list what waits, approve or deny from any terminal, and
//! the interactive prompt of `praxis run --approve ask`.

use anyhow::Result;
use praxis_core::Proposal;
use praxis_ledger::BoxFuture;
use praxis_ledger::approvals::{ApprovalError, ApprovalStore};
use praxis_runtime::DataHome;
use praxis_runtime::approval::{ApprovalOutcome, Approver, StoreApprover};
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

pub fn open_store(home: &DataHome) -> Result<Arc<ApprovalStore>> {
    Ok(Arc::new(home.approval_store()?))
}

/// Who is deciding: `$PRAXIS_OPERATOR`, else the login name.
pub fn operator() -> String {
    ["PRAXIS_OPERATOR", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "operator".into())
}

pub fn list(home: &DataHome, json: bool) -> Result<ExitCode> {
    let pending = open_store(home)?.pending()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&pending)?);
    } else if pending.is_empty() {
        println!("no pending approvals");
    } else {
        println!(
            "{:<26}  {:<12}  {:<10}  {:<24}  ARGUMENTS",
            "RUN", "CALL", "TOOL", "REQUESTED"
        );
        for p in &pending {
            let args: String = p.arguments.chars().take(60).collect();
            println!(
                "{:<26}  {:<12}  {:<10}  {:<24}  {args}",
                p.run_id, p.call_id, p.tool, p.requested_at
            );
            if !p.reason.is_empty() {
                println!("{:<26}  why: {}", "", p.reason);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn decide(
    home: &DataHome,
    run: &str,
    call: Option<&str>,
    approved: bool,
    reason: &str,
) -> Result<ExitCode> {
    let store = open_store(home)?;
    // Accept a unique prefix of a run that has a pending request.
    let runs: Vec<String> = store
        .pending()?
        .into_iter()
        .map(|p| p.run_id)
        .filter(|id| id.starts_with(run))
        .collect();
    let run_id = match runs.as_slice() {
        [] => run.to_string(),
        [first, rest @ ..] if rest.iter().all(|r| r == first) => first.clone(),
        _ => anyhow::bail!(
            "`{run}` matches several runs with pending approvals; give more of the run id"
        ),
    };
    let by = operator();
    match store.decide(&run_id, call, approved, &by, reason) {
        Ok(call_id) => {
            let verb = if approved { "approved" } else { "denied" };
            println!("{verb} {call_id} of run {run_id} (by {by})");
            Ok(ExitCode::SUCCESS)
        }
        Err(ApprovalError::Ledger(e)) => Err(e.into()),
        Err(e) => {
            eprintln!("praxis: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `--approve ask` on a terminal: asks the person at the terminal, while a decision made
/// from another terminal (`praxis approve`) is honoured too, whichever comes first.
pub struct PromptApprover {
    pub store: StoreApprover,
}

impl Approver for PromptApprover {
    fn decide<'a>(
        &'a self,
        run_id: &'a str,
        proposal: &'a Proposal,
        timeout: Option<Duration>,
    ) -> BoxFuture<'a, ApprovalOutcome> {
        Box::pin(async move {
            let question = format!(
                "approve {} {} ({})? [y/N] ",
                proposal.tool,
                proposal.arguments,
                proposal.verdict.reason()
            );
            let prompt = tokio::task::spawn_blocking(move || {
                eprint!("{question}");
                let _ = std::io::stderr().flush();
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line).map(|_| line)
            });
            tokio::select! {
                outcome = self.store.decide(run_id, proposal, timeout) => outcome,
                answer = prompt => {
                    let yes = matches!(answer, Ok(Ok(ref line)) if matches!(line.trim(), "y" | "Y" | "yes"));
                    let by = operator();
                    // Close the filed request so the table matches what happened.
                    let reason = if yes { "" } else { "declined at the terminal" };
                    let _ = self.store.store.decide(run_id, Some(&proposal.call_id), yes, &by, reason);
                    ApprovalOutcome { approved: yes, by, reason: reason.into() }
                }
            }
        })
    }
}
