//! The critic port: the runtime's critic (the one `praxis job` uses) judges the run
//! against key results, quoting the ledger. `cargo run -p praxis --example critic`

use praxis::KeyResult;

#[tokio::main]
async fn main() -> Result<(), praxis::AgentError> {
    let workspace = tempfile::tempdir().expect("workspace");
    std::fs::write(
        workspace.path().join("README.md"),
        "# Example\nA tiny project.\n",
    )
    .expect("file");
    let agent = praxis::Agent::builder()
        .provider("mock")
        .workspace(workspace.path())
        .critic(vec![
            KeyResult::text("The README: a tiny project"),
            KeyResult::text("Kubernetes deployment manifest"),
        ])
        .build()?;
    let result = agent
        .run(&[], "Summarize this workspace", Default::default())
        .await?;
    let judgement = result.judgement.expect("key results were given");
    for verdict in &judgement.verdicts {
        println!(
            "{} -> met: {} ({})",
            verdict.key_result, verdict.met, verdict.reason
        );
        for quote in &verdict.evidence {
            println!("    seq {:?}: {}", quote.seq, quote.quote);
        }
    }
    assert!(judgement.verdicts[0].met && !judgement.verdicts[1].met);
    Ok(())
}
