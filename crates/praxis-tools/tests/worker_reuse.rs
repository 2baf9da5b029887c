//! Workers kept after their runs: a pooled worker whose run ended cleanly, and whose sandbox
//! started no command, serves the next run of the same workspace, limits and tools, and
//! no other. A binary of its own: the pool is one per process.

mod common;

use common::pooled_pid;
use praxis_core::ExecStatus;
use praxis_tools::worker::{WorkerClient, parked_pids};
use praxis_tools::{
    CaptureLimits, ExecContext, Fabric, Registry, ToolLimits, WorkerCommand, Workspace,
};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What one run saw of its worker.
struct Ran {
    pid: u32,
    earlier_runs: u32,
    /// The files its start capture found.
    captured: Vec<String>,
}

/// One run's worker use: its worker started (claimed or new), the workspace captured, each
/// call of `calls` made (each must succeed), and the run ended (its client dropped).
async fn run(
    command: &WorkerCommand,
    ws: &Path,
    limits: &ToolLimits,
    calls: &[(&str, serde_json::Value)],
) -> Ran {
    let client = Arc::new(WorkerClient::new(
        command.clone(),
        ws.canonicalize().unwrap(),
        limits.clone(),
    ));
    client.start().await.expect("the run's worker starts");
    let (manifest, _blobs) = client
        .capture(CaptureLimits::default())
        .await
        .expect("the workspace is captured");
    let mut ctx = ExecContext::new(Workspace::new(ws).unwrap());
    ctx.limits = limits.clone();
    ctx.fabric = Fabric::Worker(client.clone());
    let registry = Registry::builtin();
    for (tool, args) in calls {
        let o = registry.execute(&ctx, tool, args.clone()).await;
        assert_eq!(o.status, ExecStatus::Ok, "{tool}: {}", o.output);
    }
    let ran = Ran {
        pid: client.pid().expect("a worker runs"),
        earlier_runs: client.describe().earlier_runs,
        captured: manifest.into_keys().collect(),
    };
    drop(ctx);
    drop(client);
    ran
}

/// Waits until worker `pid` is kept after its run (true), or has exited (false).
async fn kept_or_ended(command: &WorkerCommand, pid: u32) -> bool {
    for _ in 0..400 {
        if parked_pids(command).contains(&pid) {
            return true;
        }
        if !common::alive(pid as i32) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("worker pid {pid} was neither kept nor ended after its run");
}

fn write(path: &str, content: &str) -> (&'static str, serde_json::Value) {
    ("fs_write", json!({"path": path, "content": content}))
}

fn shell(command: &str) -> (&'static str, serde_json::Value) {
    ("shell", json!({ "command": command }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_serves_the_next_run_of_the_same_workspace_and_settings_only() {
    if !common::require_sandbox("worker reuse") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let command = common::own_worker_command(dir.path(), "reused-worker");
    praxis_tools::worker::keep_warm(command.clone(), 1);
    pooled_pid(&command, &[]).await;
    let limits = ToolLimits::default();
    let roots = tempfile::tempdir().unwrap();
    let ws = roots.path().join("ws");
    std::fs::create_dir(&ws).unwrap();

    // A run with no command: its worker is kept, and serves the next run of the workspace,
    // which captures the workspace as it is now (not the first run's start).
    let first = run(&command, &ws, &limits, &[write("a.txt", "a\n")]).await;
    assert_eq!(first.earlier_runs, 0, "a new process");
    assert!(first.captured.is_empty());
    assert!(
        kept_or_ended(&command, first.pid).await,
        "kept after a clean run"
    );
    let second = run(&command, &ws, &limits, &[write("b.txt", "b\n")]).await;
    assert_eq!(second.pid, first.pid, "the kept worker serves the next run");
    assert_eq!(second.earlier_runs, 1);
    assert_eq!(second.captured, ["a.txt"]);
    assert!(
        !parked_pids(&command).contains(&first.pid),
        "claimed: kept no more"
    );
    assert!(kept_or_ended(&command, second.pid).await);

    // Another workspace, or other limits: another worker (the kept one stays kept).
    let other_ws = roots.path().join("other");
    std::fs::create_dir(&other_ws).unwrap();
    let elsewhere = run(&command, &other_ws, &limits, &[]).await;
    assert_ne!(elsewhere.pid, first.pid);
    assert_eq!(elsewhere.earlier_runs, 0);
    let mut networked = limits.clone();
    networked.sandbox.allow_network = true;
    let other_limits = run(&command, &ws, &networked, &[]).await;
    assert_ne!(other_limits.pid, first.pid);
    assert!(parked_pids(&command).contains(&first.pid));

    // The workspace made again at the same path is another directory: the kept worker's
    // Landlock rules are bound to the old one, so it does not serve it.
    std::fs::rename(&ws, roots.path().join("old")).unwrap();
    std::fs::create_dir(&ws).unwrap();
    let remade = run(&command, &ws, &limits, &[]).await;
    assert_ne!(remade.pid, first.pid);
    assert!(remade.captured.is_empty(), "{:?}", remade.captured);
    assert!(kept_or_ended(&command, remade.pid).await);

    // A run whose sandbox started a command: its worker ends with it (what the command
    // left, in its private home above all, is not the next run's to see).
    let with_command = run(
        &command,
        &ws,
        &limits,
        &[shell("echo left > \"$HOME/left\"")],
    )
    .await;
    assert_eq!(with_command.pid, remade.pid, "a kept worker took it");
    assert!(
        !kept_or_ended(&command, with_command.pid).await,
        "a worker whose sandbox ran a command is not kept"
    );
    let after = run(&command, &ws, &limits, &[shell("test ! -e \"$HOME/left\"")]).await;
    assert_ne!(after.pid, with_command.pid);
    assert_eq!(after.earlier_runs, 0);

    // A killed worker is not kept; nor is any once reuse is off.
    let killed = {
        let client = WorkerClient::new(command.clone(), ws.canonicalize().unwrap(), limits.clone());
        client.start().await.unwrap();
        client.kill();
        client.pid().unwrap()
    };
    assert!(!kept_or_ended(&command, killed).await);
    praxis_tools::worker::set_reuse(false);
    assert!(
        parked_pids(&command).is_empty(),
        "kept workers end when reuse is off"
    );
    assert!(common::wait_dead(first.pid as i32).await);
    let unkept = run(&command, &ws, &limits, &[]).await;
    assert!(!kept_or_ended(&command, unkept.pid).await);
    praxis_tools::worker::set_reuse(true);
    praxis_tools::worker::stop_warm();
}
