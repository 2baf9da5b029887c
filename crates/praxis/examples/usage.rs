//! The usage sink: one record per model call; the default `UsageTotals` sums per model.
//! `cargo run -p praxis --example usage`

use praxis::ports::UsageTotals;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), praxis::AgentError> {
    let workspace = tempfile::tempdir().expect("workspace");
    std::fs::write(workspace.path().join("README.md"), "# Example\n").expect("file");
    let totals = Arc::new(UsageTotals::default());
    let agent = praxis::Agent::builder()
        .provider("mock")
        .workspace(workspace.path())
        .usage_sink(totals.clone())
        .build()?;
    for task in ["Summarize this workspace", "Again"] {
        agent.run(&[], task, Default::default()).await?;
    }
    for (model, (usage, micros)) in totals.totals() {
        println!(
            "{model}: {} in, {} out, ${:.6}",
            usage.input_tokens,
            usage.output_tokens,
            micros as f64 / 1e6
        );
    }
    assert!(!totals.totals().is_empty());
    Ok(())
}
