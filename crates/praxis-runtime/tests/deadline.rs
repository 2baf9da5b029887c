//! `max_seconds` stops a run even while a tool hangs (finding 7: `fs_read` on a FIFO
//! blocked forever and the run outlived `--max-seconds 8`).

use praxis_core::{
    Effect, ExecStatus, Limits, Observation, Resource, RunSpec, StopReason, ToolSpec,
};
use praxis_ledger::{Ledger, SqliteLedger};
use praxis_models::ScriptedProvider;
use praxis_runtime::{NoObserver, RunOptions, Runtime};
use praxis_tools::{BoxFuture, ExecContext, FabricChoice, Placement, Registry, ToolContract};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// A tool that never answers (as a read blocked in the kernel would not).
struct HangTool;

impl ToolContract for HangTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "hang".into(),
            description: "Never returns.".into(),
            effect: Effect::Read,
            parameters: json!({"type": "object", "additionalProperties": false}),
        }
    }
    fn resources(&self, _: &Value) -> Vec<Resource> {
        Vec::new()
    }
    fn execute<'a>(&'a self, _: &'a ExecContext, _: Value) -> BoxFuture<'a, Observation> {
        Box::pin(std::future::pending())
    }
    fn placement(&self) -> Placement {
        Placement::Driver
    }
}

#[tokio::test]
async fn the_deadline_stops_a_run_whose_tool_hangs() {
    let (home, ws) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ledger = Arc::new(SqliteLedger::open(&home.path().join("l.db")).unwrap());
    let mut registry = Registry::builtin();
    registry.register(Arc::new(HangTool)).unwrap();
    let runtime = Runtime::new(ledger.clone(), Arc::new(registry));
    let script = json!({"turns": [
        {"tool_calls": [{"id": "h", "name": "hang", "arguments": {}}]},
        {"content": "never"}
    ]});
    let spec = RunSpec {
        conversation: Default::default(),
        protocol: Default::default(),
        compaction: None,
        task: "test".into(),
        workspace: ws.path().display().to_string(),
        provider: "scripted".into(),
        model: String::new(),
        tools: None,
        read_only: false,
        limits: Limits {
            max_seconds: Some(1),
            ..Limits::default()
        },
    };
    let provider = Arc::new(ScriptedProvider::from_json_str(&script.to_string(), "t").unwrap());
    let mut options = RunOptions::new(spec, provider);
    options.tool_limits.sandbox.fabric = FabricChoice::InProcess;
    // A liveness bound, not a timing assertion: without the deadline the run never ends.
    let report = tokio::time::timeout(Duration::from_secs(120), runtime.run(options, &NoObserver))
        .await
        .expect("the run outlived its max_seconds while a tool hung")
        .unwrap();
    assert_eq!(report.result.stop_reason, StopReason::Deadline);
    let entries = ledger.entries(&report.run_id, 0).unwrap();
    let execution = entries.iter().find(|e| e.kind == "execution").unwrap();
    assert_eq!(
        execution.payload["status"],
        json!(ExecStatus::Timeout.as_str())
    );
    assert_eq!(entries.last().unwrap().kind, "run_finished");
}
