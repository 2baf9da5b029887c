//! The driver against real tools and a real SQLite ledger: write-ahead, cancellation, blobs.

use praxis_core::{Limits, RunSpec, RunStatus, StopReason};
use praxis_ledger::{
    BoxFuture, Entry, Ledger, LedgerError, NewEntry, RunRow, SqliteLedger, VerifyReport,
};
use praxis_models::ScriptedProvider;
use praxis_runtime::{LiveEvent, NoObserver, RunObserver, RunOptions, Runtime, RuntimeError};
use praxis_tools::Registry;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn spec(workspace: &Path) -> RunSpec {
    RunSpec {
        conversation: Default::default(),
        protocol: Default::default(),
        compaction: None,
        task: "test".into(),
        workspace: workspace.display().to_string(),
        provider: "scripted".into(),
        model: String::new(),
        tools: None,
        read_only: false,
        limits: Limits::default(),
    }
}

fn provider(script: Value) -> Arc<ScriptedProvider> {
    Arc::new(ScriptedProvider::from_json_str(&script.to_string(), "test").unwrap())
}

/// A ledger that refuses any batch containing a proposal: the driver must then never run the tool.
struct RefusesProposals(SqliteLedger);

impl Ledger for RefusesProposals {
    fn append_attested(
        &self,
        run_id: &str,
        entries: Vec<NewEntry>,
        blobs: Vec<Vec<u8>>,
        attest: Option<praxis_ledger::Attest>,
    ) -> BoxFuture<'static, Result<Vec<Entry>, LedgerError>> {
        if entries.iter().any(|e| e.kind == "proposal") {
            let run_id = run_id.to_string();
            return Box::pin(async move {
                Err(LedgerError::NotCommitted {
                    path: "sim.db".into(),
                    run_id,
                    reason: "disk full (simulated)".into(),
                })
            });
        }
        self.0.append_attested(run_id, entries, blobs, attest)
    }
    fn entries(&self, run_id: &str, after_seq: u64) -> Result<Vec<Entry>, LedgerError> {
        self.0.entries(run_id, after_seq)
    }
    fn runs(&self) -> Result<Vec<RunRow>, LedgerError> {
        self.0.runs()
    }
    fn blob(&self, id: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        self.0.blob(id)
    }
    fn blob_bytes(&self) -> Result<u64, LedgerError> {
        self.0.blob_bytes()
    }
    fn verify_run(&self, run_id: &str) -> Result<VerifyReport, LedgerError> {
        self.0.verify_run(run_id)
    }
    fn verify_blobs(&self) -> Result<Vec<String>, LedgerError> {
        Ledger::verify_blobs(&self.0)
    }
    fn blob_ids(&self) -> Result<Vec<String>, LedgerError> {
        self.0.blob_ids()
    }
    fn find_run(&self, prefix: &str) -> Result<String, LedgerError> {
        self.0.find_run(prefix)
    }
    fn location(&self) -> String {
        self.0.location()
    }
}

#[tokio::test]
async fn a_tool_never_runs_when_its_proposal_cannot_be_made_durable() {
    let (home, ws) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ledger = Arc::new(RefusesProposals(
        SqliteLedger::open(&home.path().join("l.db")).unwrap(),
    ));
    let runtime = Runtime::new(ledger, Arc::new(Registry::builtin()));
    let script = json!({"turns": [
        {"tool_calls": [{"id": "t", "name": "shell", "arguments": {"command": "touch ran.txt"}}]},
        {"content": "done"}
    ]});
    let result = runtime
        .run(
            RunOptions::new(spec(ws.path()), provider(script)),
            &NoObserver,
        )
        .await;
    assert!(
        matches!(result, Err(RuntimeError::Ledger { .. })),
        "{:?}",
        result.map(|r| r.result)
    );
    assert!(
        !ws.path().join("ran.txt").exists(),
        "the tool ran although its proposal was not durable"
    );
}

/// Cancels the run as soon as a tool starts.
struct CancelOnTool(praxis_runtime::Cancel);

impl RunObserver for CancelOnTool {
    fn on_event(&self, _: &str, event: LiveEvent<'_>) {
        if let LiveEvent::ToolStarted { .. } = event {
            self.0.cancel("operator stop");
        }
    }
}

#[tokio::test]
async fn cancelling_kills_the_running_tool_and_records_why() {
    let (home, ws) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ledger = Arc::new(SqliteLedger::open(&home.path().join("l.db")).unwrap());
    let runtime = Runtime::new(ledger.clone(), Arc::new(Registry::builtin()));
    let script = json!({"turns": [
        {"tool_calls": [{"id": "t", "name": "shell", "arguments": {"command": "sleep 30; touch late.txt"}}]},
        {"content": "never"}
    ]});
    let options = RunOptions::new(spec(ws.path()), provider(script));
    let observer = CancelOnTool(options.cancel.clone());
    let started = Instant::now();
    let report = runtime.run(options, &observer).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(report.result.status, RunStatus::Cancelled);
    assert_eq!(report.result.stop_reason, StopReason::Cancelled);
    assert_eq!(report.result.error.as_deref(), Some("operator stop"));
    let entries = ledger.entries(&report.run_id, 0).unwrap();
    let execution = entries.iter().find(|e| e.kind == "execution").unwrap();
    assert_eq!(execution.payload["status"], "cancelled");
    assert_eq!(entries.last().unwrap().kind, "run_finished");
    assert_eq!(
        ledger.verify_run(&report.run_id).unwrap(),
        VerifyReport::Intact {
            entries: entries.len() as u64
        }
    );
}

#[tokio::test]
async fn start_state_and_changed_files_are_stored_as_blobs() {
    let (home, ws) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(ws.path().join("a.txt"), "before\n").unwrap();
    let ledger = Arc::new(SqliteLedger::open(&home.path().join("l.db")).unwrap());
    let runtime = Runtime::new(ledger.clone(), Arc::new(Registry::builtin()));
    let script = json!({"turns": [
        {"tool_calls": [{"id": "w", "name": "fs_write", "arguments": {"path": "a.txt", "content": "after\n"}}]},
        {"content": "<cmd>rm a.txt && echo new > b.txt</cmd>"},
        {"content": "done"}
    ]});
    let report = runtime
        .run(
            RunOptions::new(spec(ws.path()), provider(script)),
            &NoObserver,
        )
        .await
        .unwrap();
    assert_eq!(report.result.status, RunStatus::Completed);
    let entries = ledger.entries(&report.run_id, 0).unwrap();
    let blob = |id: &Value| {
        String::from_utf8(ledger.blob(id.as_str().unwrap()).unwrap().unwrap()).unwrap()
    };
    let snapshot = entries
        .iter()
        .find(|e| e.kind == "workspace_snapshot")
        .unwrap();
    assert_eq!(
        blob(&snapshot.payload["files"]["a.txt"]["blob"]),
        "before\n"
    );
    let executions: Vec<&Entry> = entries.iter().filter(|e| e.kind == "execution").collect();
    let write = &executions[0].payload["files_changed"][0];
    assert_eq!(
        (blob(&write["before"]), blob(&write["after"])),
        ("before\n".into(), "after\n".into())
    );
    let shell = &executions[1].payload["files_changed"];
    assert_eq!(shell[0]["path"], "a.txt");
    assert!(shell[0]["after"].is_null(), "deletion recorded: {shell}");
    assert_eq!(blob(&shell[0]["before"]), "after\n");
    assert_eq!(
        (shell[1]["path"].as_str(), blob(&shell[1]["after"])),
        (Some("b.txt"), "new\n".into())
    );
    // Every event time the kernel saw is recorded, so the run can be re-driven exactly.
    for e in entries.iter().filter(|e| {
        ["run_started", "model_response", "execution", "run_finished"].contains(&e.kind.as_str())
    }) {
        assert!(e.payload["now"].as_u64().is_some(), "{} lacks now", e.kind);
    }
}

/// A library user's runtime that knows its data dir refuses a run whose workspace reaches
/// it (is it, lies inside it, contains it), before anything is recorded or runs.
#[tokio::test]
async fn a_runtime_with_a_home_refuses_workspaces_reaching_it() {
    let base = tempfile::tempdir().unwrap();
    let home_dir = base.path().join("home");
    std::fs::create_dir_all(home_dir.join("keys")).unwrap();
    let home = praxis_runtime::DataHome::at(&home_dir);
    let ledger = Arc::new(SqliteLedger::open(&home.ledger_path()).unwrap());
    let runtime = Runtime::new(ledger.clone(), Arc::new(Registry::builtin())).with_home(home);
    for workspace in [
        home_dir.clone(),
        home_dir.join("keys"),
        base.path().to_path_buf(),
    ] {
        let script = json!({"turns": [{"content": "done"}]});
        let result = runtime
            .run(
                RunOptions::new(spec(&workspace), provider(script)),
                &NoObserver,
            )
            .await;
        assert!(
            matches!(result, Err(RuntimeError::WorkspaceRefused(_))),
            "{}: {:?}",
            workspace.display(),
            result.map(|r| r.result)
        );
    }
    assert!(
        ledger.runs().unwrap().is_empty(),
        "a refused run was recorded"
    );
}

/// Finding 9 of the adversarial review: a few shell calls grew the ledger by gigabytes. The
/// data dir has a blob cap too: a run starting when the data dir holds nearly all of it
/// records further changes by hash and size, without their content.
#[tokio::test]
async fn the_data_dir_blob_cap_holds_across_runs() {
    let home = tempfile::tempdir().unwrap();
    let ledger = Arc::new(SqliteLedger::open(&home.path().join("l.db")).unwrap());
    let runtime = Runtime::new(ledger.clone(), Arc::new(Registry::builtin()));
    let write = |name: &str, kib: usize| {
        json!({"turns": [
            {"tool_calls": [{"id": "w", "name": "fs_write", "arguments": {"path": name, "content": name.repeat(kib * 1024 / name.len())}}]},
            {"content": "done"}
        ]})
    };
    let cap = 96 * 1024;
    let run = async |name: &str, kib: usize| {
        let ws = tempfile::tempdir().unwrap();
        let mut options = RunOptions::new(spec(ws.path()), provider(write(name, kib)));
        options.capture.max_data_dir_blob_bytes = cap;
        let report = runtime.run(options, &NoObserver).await.unwrap();
        assert_eq!(report.result.status, RunStatus::Completed);
        let entries = ledger.entries(&report.run_id, 0).unwrap();
        let execution = entries.iter().find(|e| e.kind == "execution").unwrap();
        let after = execution.payload["files_changed"][0]["after"]
            .as_str()
            .unwrap()
            .to_string();
        ledger.blob(&after).unwrap()
    };
    // The first run fits: its content is kept.
    assert!(run("first.txt", 64).await.is_some());
    assert!(ledger.blob_bytes().unwrap() >= 60 * 1024);
    // The second would pass the data dir's cap: recorded by hash and size only.
    assert!(run("second.txt", 64).await.is_none());
    assert!(ledger.blob_bytes().unwrap() <= cap);
}
