//! The delivery port: each run's summary to stdout and appended to a JSON Lines file.
//! (`praxis::ports::Webhook::new(url, secret)` POSTs it signed instead, with retries.)
//! `cargo run -p praxis --example delivery`

use praxis::ports::{JsonlFile, Stdout};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), praxis::AgentError> {
    let workspace = tempfile::tempdir().expect("workspace");
    std::fs::write(workspace.path().join("README.md"), "# Example\n").expect("file");
    let builder = praxis::Agent::builder()
        .provider("mock")
        .workspace(workspace.path());
    let outbox = tempfile::tempdir().expect("outbox");
    let out = outbox.path().join("runs.jsonl");
    let to_file = builder
        .clone()
        .delivery(Arc::new(JsonlFile(out.clone())))
        .build()?;
    let to_stdout = builder.delivery(Arc::new(Stdout)).build()?;
    for agent in [&to_file, &to_file, &to_stdout] {
        let result = agent
            .run(&[], "Summarize this workspace", Default::default())
            .await?;
        assert_eq!(result.delivery_error, None);
    }
    let lines = std::fs::read_to_string(&out).expect("delivered");
    println!("{} summaries in {}", lines.lines().count(), out.display());
    assert_eq!(lines.lines().count(), 2);
    Ok(())
}
