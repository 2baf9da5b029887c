//! Signed checkpoints written by the driver: real runs, real SQLite ledgers in tempdirs.
//! A long run is attested during the run and at its end; replay ignores the checkpoints.

use praxis_core::{Limits, RunSpec, RunStatus};
use praxis_ledger::checkpoint::{CHECKPOINT_KIND, CheckpointKey, verify_export};
use praxis_ledger::{Ledger, SqliteLedger};
use praxis_models::ScriptedProvider;
use praxis_runtime::replay::{ReplayReport, replay};
use praxis_runtime::{NoObserver, RunOptions, Runtime};
use praxis_tools::Registry;
use serde_json::json;
use std::sync::Arc;

/// A scripted run of `task` in `workspace`.
fn spec(task: &str, workspace: &std::path::Path, limits: Limits) -> RunSpec {
    RunSpec {
        conversation: Default::default(),
        protocol: Default::default(),
        compaction: None,
        task: task.into(),
        workspace: workspace.display().to_string(),
        provider: "scripted".into(),
        model: String::new(),
        tools: None,
        read_only: false,
        limits,
    }
}

#[tokio::test]
async fn long_run_is_checkpointed_verifies_offline_and_still_replays() {
    let home = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("a.txt"), "hello\n").unwrap();
    let ledger = Arc::new(SqliteLedger::open(&home.path().join("l.db")).unwrap());
    // 40 tool steps: far more than 64 entries, so checkpoints land mid-run too.
    let mut turns: Vec<_> = (0..40)
        .map(|i| json!({"tool_calls": [{"id": format!("c{i}"), "name": "fs_read", "arguments": {"path": "a.txt"}}]}))
        .collect();
    turns.push(json!({"content": "done"}));
    let script = json!({ "turns": turns });
    let provider = Arc::new(ScriptedProvider::from_json_str(&script.to_string(), "t").unwrap());
    let spec = spec(
        "read a lot",
        ws.path(),
        Limits {
            max_steps: 60,
            ..Limits::default()
        },
    );
    let key = Arc::new(CheckpointKey::generate().unwrap());
    let mut options = RunOptions::new(spec, provider);
    options.checkpoint_key = Some(key.clone());
    let registry = Arc::new(Registry::builtin());
    let report = Runtime::new(ledger.clone(), registry.clone())
        .run(options, &NoObserver)
        .await
        .unwrap();
    assert_eq!(report.result.status, RunStatus::Completed);

    let entries = ledger.entries(&report.run_id, 0).unwrap();
    assert!(entries.len() > 100, "{} entries", entries.len());
    let checkpoints: Vec<_> = entries
        .iter()
        .filter(|e| e.kind == CHECKPOINT_KIND)
        .collect();
    assert!(checkpoints.len() >= 2, "{} checkpoints", checkpoints.len());
    let last = entries.last().unwrap();
    assert_eq!(last.kind, CHECKPOINT_KIND);
    assert_eq!(entries[entries.len() - 2].kind, "run_finished");
    assert_eq!(last.payload["head_seq"], entries[entries.len() - 2].seq);
    // No two checkpoints in a row and none signs another checkpoint.
    for pair in entries.windows(2) {
        assert!(!(pair[0].kind == CHECKPOINT_KIND && pair[1].kind == CHECKPOINT_KIND));
    }

    let verdict = verify_export(&entries, &key.public_hex());
    assert!(verdict.ok(), "{verdict:?}");
    assert_eq!(verdict.runs[0].checkpoints, checkpoints.len() as u64);
    let other = CheckpointKey::generate().unwrap();
    assert!(!verify_export(&entries, &other.public_hex()).ok());

    assert_eq!(
        replay(&*ledger, registry, &report.run_id).unwrap(),
        ReplayReport::Matched {
            entries: entries.len() as u64,
            unfinished: None
        }
    );
}

#[tokio::test]
async fn without_a_key_no_checkpoint_is_written() {
    let home = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    let ledger = Arc::new(SqliteLedger::open(&home.path().join("l.db")).unwrap());
    let script = json!({"turns": [{"content": "done"}]});
    let provider = Arc::new(ScriptedProvider::from_json_str(&script.to_string(), "t").unwrap());
    let spec = spec("t", ws.path(), Limits::default());
    let report = Runtime::new(ledger.clone(), Arc::new(Registry::builtin()))
        .run(RunOptions::new(spec, provider), &NoObserver)
        .await
        .unwrap();
    let entries = ledger.entries(&report.run_id, 0).unwrap();
    assert!(entries.iter().all(|e| e.kind != CHECKPOINT_KIND));
    let verdict = verify_export(&entries, &CheckpointKey::generate().unwrap().public_hex());
    assert!(!verdict.ok());
    let problem = verdict.runs[0].problem.clone().unwrap();
    assert!(
        problem.contains("not covered by a signed checkpoint"),
        "{problem}"
    );
}

/// A run's end is attested in the commit that makes it durable: a short run with a
/// checkpoint key takes as many commits as the same run without one, and still ends with a
/// checkpoint signing its `run_finished`.
#[tokio::test]
async fn the_end_of_a_run_and_its_checkpoint_are_one_commit() {
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("a.txt"), "hello\n").unwrap();
    let script = json!({"turns": [
        {"tool_calls": [{"id": "c1", "name": "fs_read", "arguments": {"path": "a.txt"}}]},
        {"content": "done"},
    ]});
    let key = Arc::new(CheckpointKey::generate().unwrap());
    let mut commits = Vec::new();
    for signed in [false, true] {
        let home = tempfile::tempdir().unwrap();
        let ledger = Arc::new(SqliteLedger::open(&home.path().join("l.db")).unwrap());
        let provider = Arc::new(ScriptedProvider::from_json_str(&script.to_string(), "t").unwrap());
        let mut options = RunOptions::new(spec("read", ws.path(), Limits::default()), provider);
        options.checkpoint_key = signed.then(|| key.clone());
        let before = ledger.stats();
        let report = Runtime::new(ledger.clone(), Arc::new(Registry::builtin()))
            .run(options, &NoObserver)
            .await
            .unwrap();
        assert_eq!(report.result.status, RunStatus::Completed);
        commits.push(ledger.stats().commits - before.commits);
        let entries = ledger.entries(&report.run_id, 0).unwrap();
        let kinds: Vec<&str> = entries[entries.len() - 2..]
            .iter()
            .map(|e| e.kind.as_str())
            .collect();
        if signed {
            assert_eq!(kinds, ["run_finished", CHECKPOINT_KIND]);
            assert!(verify_export(&entries, &key.public_hex()).ok());
        } else {
            assert_eq!(kinds[1], "run_finished");
        }
    }
    assert_eq!(
        commits[0], commits[1],
        "commits without a key, then with one"
    );
}
