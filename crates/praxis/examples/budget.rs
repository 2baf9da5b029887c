//! The budget port: a gate before each run, the actual spend committed after it.
//! `cargo run -p praxis --example budget`

use praxis::ports::SpendCap;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), praxis::AgentError> {
    let workspace = tempfile::tempdir().expect("workspace");
    std::fs::write(workspace.path().join("README.md"), "# Example\n").expect("file");
    // At most 3000 tokens in all; each run holds 1000 while it runs.
    let budget = Arc::new(SpendCap::new(3_000, 1_000));
    let agent = praxis::Agent::builder()
        .provider("mock")
        .workspace(workspace.path())
        .budget(budget.clone())
        .build()?;
    let mut refused = false;
    for n in 1..=20 {
        match agent
            .run(&[], "Summarize this workspace", Default::default())
            .await
        {
            Ok(result) => println!(
                "run {n}: {:?}, spent so far {:?}",
                result.usage,
                budget.spent().usage
            ),
            Err(praxis::AgentError::Budget(denied)) => {
                println!("run {n} refused: {denied}");
                refused = true;
                break;
            }
            Err(other) => return Err(other),
        }
    }
    assert!(refused, "the cap stops the runs");
    Ok(())
}
