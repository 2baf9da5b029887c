//! The worker is the only process that opens workspace files, and it is itself confined:
//! every file tool (reads included) runs in it, and even with a deliberately broken resolver
//! (`--broken-resolver-for-tests`, debug builds only) nothing outside the workspace is
//! reachable through a symlink, because the worker's own Landlock domain stops the open.

mod common;

use praxis_core::ExecStatus;
use praxis_tools::worker::WorkerClient;
use praxis_tools::{ExecContext, Fabric, Registry, ToolLimits, WorkerCommand, Workspace};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;

const SECRET: &str = "PRAXIS-TEST-ISSUER-KEY-5f2c";

/// A worker whose resolver follows every symlink unchecked.
fn broken_worker(ws: &Path, limits: ToolLimits) -> Arc<WorkerClient> {
    Arc::new(WorkerClient::new(
        WorkerCommand {
            program: env!("CARGO_BIN_EXE_praxis-worker").into(),
            args: vec!["--broken-resolver-for-tests".into()],
        },
        ws.canonicalize().unwrap(),
        limits,
    ))
}

fn through(worker: &Arc<WorkerClient>, ws: &Path) -> ExecContext {
    let mut ctx = ExecContext::new(Workspace::new(ws).unwrap());
    ctx.fabric = Fabric::Worker(worker.clone());
    ctx
}

/// A fake data dir outside the workspace (`keys/issuer.key`), and a workspace with a
/// symlink to its key file and one to its `keys` directory.
fn fixture() -> (tempfile::TempDir, tempfile::TempDir) {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join("keys")).unwrap();
    std::fs::write(home.path().join("keys/issuer.key"), SECRET).unwrap();
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("ok.txt"), "inside\n").unwrap();
    std::os::unix::fs::symlink(home.path().join("keys/issuer.key"), ws.path().join("k")).unwrap();
    std::os::unix::fs::symlink(home.path().join("keys"), ws.path().join("d")).unwrap();
    (home, ws)
}

/// Every read tool pointed at the links.
fn attempts() -> Vec<(&'static str, Value)> {
    vec![
        ("fs_read", json!({"path": "k"})),
        ("fs_read", json!({"path": "d/issuer.key"})),
        ("grep", json!({"pattern": ".", "path": "d"})),
        ("grep", json!({"pattern": "PRAXIS", "path": "k"})),
        ("list_files", json!({"path": "d"})),
        ("repo_map", json!({"path": "d"})),
        (
            "fs_patch",
            json!({"path": "k", "edits": [{"search": "PRAXIS", "replace": "X"}]}),
        ),
    ]
}

#[tokio::test]
async fn a_broken_resolver_in_the_worker_still_cannot_read_the_data_dir() {
    if !common::require_sandbox("worker confinement") {
        return;
    }
    let (home, ws) = fixture();
    let worker = broken_worker(ws.path(), ToolLimits::default());
    worker.start().await.expect("worker starts");
    let layers = worker.layers();
    let confined = layers
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "worker_landlock")
        .cloned();
    assert_eq!(
        confined.as_ref().map(|l| l["active"].clone()),
        Some(json!(true)),
        "{layers}"
    );
    let ctx = through(&worker, ws.path());
    let registry = Registry::builtin();
    // The workspace itself is served.
    let obs = registry
        .execute(&ctx, "fs_read", json!({"path": "ok.txt"}))
        .await;
    assert_eq!(obs.output, "inside\n");
    for (tool, args) in attempts() {
        let obs = registry.execute(&ctx, tool, args.clone()).await;
        // Not the key, and not even its name unless the call named it.
        let named = args.to_string().contains("issuer.key");
        assert!(
            !obs.output.contains(SECRET) && (named || !obs.output.contains("issuer.key")),
            "{tool} {args} leaked through the worker: {}",
            obs.output
        );
    }
    assert_eq!(
        std::fs::read_to_string(home.path().join("keys/issuer.key")).unwrap(),
        SECRET
    );
    assert_eq!(worker.starts(), 1);
}

/// The control: the same broken worker without its own confinement (`confine = false`)
/// leaks, so the test above can fail.
#[tokio::test]
async fn control_the_broken_resolver_leaks_from_an_unconfined_worker() {
    let (_home, ws) = fixture();
    let mut limits = ToolLimits::default();
    limits.sandbox.confine = false;
    let worker = broken_worker(ws.path(), limits);
    let ctx = through(&worker, ws.path());
    let registry = Registry::builtin();
    let obs = registry
        .execute(&ctx, "fs_read", json!({"path": "k"}))
        .await;
    assert!(obs.output.contains(SECRET), "{}", obs.output);
    let obs = registry
        .execute(&ctx, "grep", json!({"pattern": ".", "path": "d"}))
        .await;
    assert!(obs.output.contains(SECRET), "{}", obs.output);
    let layers = worker.layers();
    let confined = layers
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "worker_landlock")
        .cloned()
        .expect("the worker reports its own confinement");
    assert_eq!(confined["active"], json!(false), "{confined}");
}

/// Every file tool, reads included, runs in the worker: with the worker's resolver broken,
/// a link to a readable system file is followed there, while the runtime process (whose
/// resolver is intact) refuses it. Only `delegate` stays in the driver.
#[tokio::test]
async fn read_tools_run_in_the_worker_not_in_the_runtime() {
    let ws = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/etc/passwd", ws.path().join("p")).unwrap();
    let worker = broken_worker(ws.path(), ToolLimits::default());
    let ctx = through(&worker, ws.path());
    let local = ExecContext::new(Workspace::new(ws.path()).unwrap());
    let registry = Registry::builtin();
    for (tool, args) in [
        ("fs_read", json!({"path": "p"})),
        ("grep", json!({"pattern": "root", "path": "p"})),
    ] {
        let here = registry.execute(&local, tool, args.clone()).await;
        assert_eq!(here.status, ExecStatus::Error, "{tool}: {}", here.output);
        let there = registry.execute(&ctx, tool, args.clone()).await;
        assert!(
            there.output.contains("root:"),
            "{tool} did not run in the worker: {}",
            there.output
        );
    }
    let obs = worker
        .execute("delegate", json!({"task": "x", "writ": {}}), None)
        .await;
    assert!(
        obs.output.contains("runs in the runtime's driver"),
        "{}",
        obs.output
    );
}
