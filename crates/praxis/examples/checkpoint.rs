//! The checkpointer port: a run stopped mid-way (its future dropped) is taken up from the
//! agent's checkpointer (by default the run's in-memory ledger) and resumed to its end.
//! `cargo run -p praxis --example checkpoint`

use std::sync::Arc;
use tokio::sync::Notify;

#[tokio::main]
async fn main() -> Result<(), praxis::AgentError> {
    let workspace = tempfile::tempdir().expect("workspace");
    std::fs::write(workspace.path().join("README.md"), "# Example\n").expect("file");
    // A scripted model: read the README, run a command, answer.
    let script = workspace.path().join("script.json");
    std::fs::write(
        &script,
        r#"{"turns": [
            {"tool_calls": [{"id": "r", "name": "fs_read", "arguments": {"path": "README.md"}}]},
            {"tool_calls": [{"id": "s", "name": "shell", "arguments": {"command": "ls"}}]},
            {"content": "It is an example project."}
        ]}"#,
    )
    .expect("script");
    let agent = praxis::Agent::builder()
        .provider(format!("scripted:{}", script.display()))
        .workspace(workspace.path())
        .build()?;

    // Stop the run once the README was read: its future is dropped.
    let stop = Arc::new(Notify::new());
    let signal = stop.clone();
    let callbacks = praxis::Callbacks::default().on_tool_result(move |_| signal.notify_one());
    tokio::select! {
        biased;
        () = stop.notified() => println!("stopped mid-run"),
        _ = agent.run_with(&[], "What is this?", &callbacks, Default::default()) => {
            unreachable!("the run was stopped after its first tool call")
        }
    }

    // Take it up where its record ends.
    let interrupted = agent.interrupted();
    assert_eq!(interrupted.len(), 1);
    let result = agent.resume(&interrupted[0], Default::default()).await?;
    println!(
        "{}: {:?} after {} steps: {}",
        result.run_id,
        result.stop_reason,
        result.steps.len(),
        result.text.as_deref().unwrap_or("-")
    );
    assert_eq!(result.text.as_deref(), Some("It is an example project."));
    assert!(agent.interrupted().is_empty());
    Ok(())
}
