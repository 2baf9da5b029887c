//! The OpenTelemetry trace sink (feature `otel`): with `OTEL_EXPORTER_OTLP_ENDPOINT` set
//! (e.g. `http://localhost:4318`, an OpenTelemetry Collector or Jaeger), every run is
//! exported as GenAI spans: `invoke_agent praxis`, a `chat {model}` child per model call,
//! an `execute_tool {tool}` child per tool execution. Without the variable nothing is sent.
//! `OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 cargo run -p praxis --features otel --example otel`

#[tokio::main]
async fn main() -> Result<(), praxis::AgentError> {
    let workspace = tempfile::tempdir().expect("workspace");
    std::fs::write(workspace.path().join("README.md"), "# Example\n").expect("file");
    let agent = praxis::Agent::builder()
        .provider("mock")
        .workspace(workspace.path())
        .build()?;
    // Nothing to call: the runtime traces every run when the endpoint is set, and the
    // spans are flushed when the run returns.
    let result = agent
        .run(&[], "Summarize this workspace", Default::default())
        .await?;
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT");
    println!(
        "run {} ({} steps) traced to {}",
        result.run_id,
        result.steps.len(),
        endpoint
            .as_deref()
            .unwrap_or("nowhere (OTEL_EXPORTER_OTLP_ENDPOINT is not set)")
    );
    Ok(())
}
