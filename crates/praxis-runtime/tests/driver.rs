//! The driver against real tools and a real SQLite ledger: write-ahead, cancellation, blobs.

use praxis_core::record::Record;
use praxis_core::{Limits, ModelRequest, ModelResponse, RunSpec, RunStatus, StopReason};
use praxis_ledger::{
    BoxFuture, Entry, Ledger, LedgerError, NewEntry, RunRow, SqliteLedger, VerifyReport,
};
use praxis_models::{DeltaSink, ModelError, Provider, ScriptedProvider};
use praxis_runtime::{LiveEvent, NoObserver, RunObserver, RunOptions, Runtime, RuntimeError};
use praxis_tools::Registry;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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

/// A SQLite ledger with test hooks: it can refuse any batch containing a proposal (the
/// driver must then never run the tool), and `on_blob_bytes` runs where a drive opening
/// asks for the data dir's blob count (its answer replaces the count when it is an error).
struct Hooked {
    inner: SqliteLedger,
    refuse_proposals: bool,
    on_blob_bytes: Box<dyn Fn() -> Result<(), LedgerError> + Send + Sync>,
}

impl Hooked {
    fn new(home: &Path) -> Self {
        Hooked {
            inner: SqliteLedger::open(&home.join("l.db")).unwrap(),
            refuse_proposals: false,
            on_blob_bytes: Box::new(|| Ok(())),
        }
    }
}

impl Ledger for Hooked {
    fn append_attested(
        &self,
        run_id: &str,
        entries: Vec<NewEntry>,
        blobs: Vec<Vec<u8>>,
        attest: Option<praxis_ledger::Attest>,
    ) -> BoxFuture<'static, Result<Vec<Entry>, LedgerError>> {
        if self.refuse_proposals && entries.iter().any(|e| e.kind == "proposal") {
            let run_id = run_id.to_string();
            return Box::pin(async move { Err(simulated_failure(run_id)) });
        }
        self.inner.append_attested(run_id, entries, blobs, attest)
    }
    fn entries(&self, run_id: &str, after_seq: u64) -> Result<Vec<Entry>, LedgerError> {
        self.inner.entries(run_id, after_seq)
    }
    fn runs(&self) -> Result<Vec<RunRow>, LedgerError> {
        self.inner.runs()
    }
    fn blob(&self, id: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        self.inner.blob(id)
    }
    fn blob_bytes(&self) -> Result<u64, LedgerError> {
        (self.on_blob_bytes)()?;
        self.inner.blob_bytes()
    }
    fn verify_run(&self, run_id: &str) -> Result<VerifyReport, LedgerError> {
        self.inner.verify_run(run_id)
    }
    fn verify_blobs(&self) -> Result<Vec<String>, LedgerError> {
        Ledger::verify_blobs(&self.inner)
    }
    fn blob_ids(&self) -> Result<Vec<String>, LedgerError> {
        self.inner.blob_ids()
    }
    fn find_run(&self, prefix: &str) -> Result<String, LedgerError> {
        self.inner.find_run(prefix)
    }
    fn location(&self) -> String {
        self.inner.location()
    }
}

fn simulated_failure(run_id: String) -> LedgerError {
    LedgerError::NotCommitted {
        path: "sim.db".into(),
        run_id,
        reason: "disk full (simulated)".into(),
    }
}

#[tokio::test]
async fn a_tool_never_runs_when_its_proposal_cannot_be_made_durable() {
    let (home, ws) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ledger = Arc::new(Hooked {
        refuse_proposals: true,
        ..Hooked::new(home.path())
    });
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

/// A scripted provider that counts the calls made of it and streams a delta before each
/// reply; with `hang`, its calls never answer, and it notes when one is dropped.
struct Watched {
    inner: Arc<ScriptedProvider>,
    calls: Arc<AtomicUsize>,
    hang: bool,
    dropped: Arc<AtomicBool>,
}

impl Watched {
    fn new(script: Value) -> Self {
        Watched {
            inner: provider(script),
            calls: Arc::default(),
            hang: false,
            dropped: Arc::default(),
        }
    }
}

/// Sets its flag when dropped.
struct OnDrop(Arc<AtomicBool>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Provider for Watched {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn model(&self) -> &str {
        self.inner.model()
    }
    fn complete<'a>(
        &'a self,
        request: &'a ModelRequest,
        deltas: &'a dyn DeltaSink,
    ) -> BoxFuture<'a, Result<ModelResponse, ModelError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let dropped = OnDrop(self.dropped.clone());
        Box::pin(async move {
            let _dropped = dropped;
            deltas.text("thinking");
            if self.hang {
                std::future::pending::<()>().await;
            }
            self.inner.complete(request, deltas).await
        })
    }
    fn for_delegate(&self, task: &str) -> Result<Arc<dyn Provider>, ModelError> {
        self.inner.for_delegate(task)
    }
}

/// What an observer saw, in order: `entry <kind>`, `model_call` and `delta`.
#[derive(Default)]
struct Seen(Mutex<Vec<String>>);

impl RunObserver for Seen {
    fn on_event(&self, _: &str, event: LiveEvent<'_>) {
        let seen = match event {
            LiveEvent::Entry(entry) => format!("entry {}", entry.kind),
            LiveEvent::ModelCall { .. } => "model_call".into(),
            LiveEvent::Delta { .. } => "delta".into(),
            _ => return,
        };
        self.0.lock().unwrap().push(seen);
    }
}

/// A new run's first model call is made while its drive opens (its worker, its workspace
/// captured): its request does not depend on them. It is made once, taken by the drive, and
/// what the run records and observers see is as if it were made after the start.
#[tokio::test]
async fn a_new_runs_first_model_call_is_under_way_while_its_drive_opens() {
    let (home, ws) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let watched = Watched::new(json!({"turns": [
        {"tool_calls": [{"id": "w", "name": "fs_write", "arguments": {"path": "a.txt", "content": "hi\n"}}]},
        {"content": "done"}
    ]}));
    // How many calls had started when the opening drive asked for the blob count.
    let at_opening = Arc::new(Mutex::new(None));
    let (calls, noted) = (watched.calls.clone(), at_opening.clone());
    let ledger = Arc::new(Hooked {
        on_blob_bytes: Box::new(move || {
            noted
                .lock()
                .unwrap()
                .get_or_insert(calls.load(Ordering::SeqCst));
            Ok(())
        }),
        ..Hooked::new(home.path())
    });
    let runtime = Runtime::new(ledger.clone(), Arc::new(Registry::builtin()));
    let calls = watched.calls.clone();
    let seen = Seen::default();
    let options = RunOptions::new(spec(ws.path()), Arc::new(watched));
    let report = runtime.run(options, &seen).await.unwrap();
    assert_eq!(report.result.status, RunStatus::Completed);
    assert_eq!(
        *at_opening.lock().unwrap(),
        Some(1),
        "the first model call was not under way while the drive opened"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "a model call was made twice"
    );
    assert_eq!(
        std::fs::read_to_string(ws.path().join("a.txt")).unwrap(),
        "hi\n"
    );
    let entries = ledger.entries(&report.run_id, 0).unwrap();
    let kinds: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        &kinds[..3],
        ["run_started", "workspace_snapshot", "model_response"]
    );
    let record = |e: &Entry| Record::from_entry(&e.kind, &e.payload).unwrap();
    let (Record::RunStarted(started), Record::ModelResponse(replied)) =
        (record(&entries[0]), record(&entries[2]))
    else {
        panic!("{kinds:?}");
    };
    assert!(started.now <= replied.now);
    assert_eq!(
        ledger.verify_run(&report.run_id).unwrap(),
        VerifyReport::Intact {
            entries: entries.len() as u64
        }
    );
    // The first call's delta, streamed while the drive opened, was held until the drive
    // announced the call.
    let seen = seen.0.lock().unwrap();
    let at = |what: &str| seen.iter().position(|s| s == what).unwrap();
    assert!(at("model_call") < at("delta"), "{seen:?}");
    assert!(seen.iter().any(|s| s == "entry run_started"), "{seen:?}");
}

/// A drive that cannot open drops the first model call made meanwhile: the run fails at
/// once with why, records nothing, and does not wait for the model.
#[tokio::test]
async fn a_drive_that_cannot_open_drops_its_first_model_call() {
    let (home, ws) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ledger = Arc::new(Hooked {
        on_blob_bytes: Box::new(|| Err(simulated_failure("opening".into()))),
        ..Hooked::new(home.path())
    });
    let runtime = Runtime::new(ledger.clone(), Arc::new(Registry::builtin()));
    let watched = Watched {
        hang: true,
        ..Watched::new(json!({"turns": [{"content": "never"}]}))
    };
    let (calls, dropped) = (watched.calls.clone(), watched.dropped.clone());
    let options = RunOptions::new(spec(ws.path()), Arc::new(watched));
    let result = tokio::time::timeout(Duration::from_secs(60), runtime.run(options, &NoObserver))
        .await
        .expect("the run waited for a model call that never answers");
    assert!(
        matches!(result, Err(RuntimeError::Ledger { .. })),
        "{:?}",
        result.map(|r| r.result)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the model call was not dropped"
    );
    assert!(
        ledger.runs().unwrap().is_empty(),
        "the failed run was recorded"
    );
}
