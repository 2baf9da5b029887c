//! The audit port: every run's ledger entries, verified and kept by the default
//! `LedgerAudit` (a stateless agent's in-memory ledger ends with its run).
//! `cargo run -p praxis --example audit`

use praxis::ports::LedgerAudit;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), praxis::AgentError> {
    let workspace = tempfile::tempdir().expect("workspace");
    std::fs::write(workspace.path().join("README.md"), "# Example\n").expect("file");
    let audit = Arc::new(LedgerAudit::default());
    let agent = praxis::Agent::builder()
        .provider("mock")
        .workspace(workspace.path())
        .audit(audit.clone())
        .build()?;
    for task in ["Summarize this workspace", "List its files"] {
        agent.run(&[], task, Default::default()).await?;
    }
    for run_id in audit.run_ids() {
        let entries = audit.entries(&run_id).unwrap_or_default();
        let last = entries.last().map(|e| e.kind.as_str()).unwrap_or("-");
        println!(
            "{run_id}: {} entries, chain verified, last {last}",
            entries.len()
        );
    }
    assert_eq!(audit.run_ids().len(), 2);
    Ok(())
}
