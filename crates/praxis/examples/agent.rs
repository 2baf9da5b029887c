//! A stateless two-turn conversation with the mock model: no data dir, no API key.
//! `cargo run -p praxis --example agent`

#[tokio::main]
async fn main() -> Result<(), praxis::AgentError> {
    let workspace = std::env::temp_dir().join("praxis-example-agent");
    std::fs::create_dir_all(&workspace).expect("workspace");
    std::fs::write(workspace.join("README.md"), "# Example\nA tiny project.\n").expect("file");
    let agent = praxis::Agent::builder()
        .provider("mock")
        .workspace(&workspace)
        .instructions("Keep it short.")
        .build()?;
    let mut history = Vec::new();
    for task in ["Summarize this workspace", "And again, briefly"] {
        let result = agent
            .run(
                &history,
                task,
                praxis::Callbacks::default()
                    .on_step_start(|step| eprintln!("-- step {step}"))
                    .on_tool_call(|call| eprintln!("   {} ({:?})", call.tool, call.verdict))
                    .on_turn_end(|reason| eprintln!("-- {}", reason.as_str())),
            )
            .await?;
        println!("{}", result.text.as_deref().unwrap_or("(no answer)"));
        assert_eq!(result.stop_reason, praxis::StopReason::Completed);
        history.extend(result.new_messages);
    }
    Ok(())
}
