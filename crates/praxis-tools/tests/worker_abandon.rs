//! A call abandoned at a cancel or at the run's deadline (the driver kills its worker) is
//! confirmed gone before the git metadata sweep that follows: `kill_and_confirm` returns
//! only once no process the call started can write, so nothing it planted comes back after
//! the sweep. Its own test binary: the second round sets the debug-build switch that keeps
//! the sandbox's spawner from starting (commands then have no PID namespace, so a detached
//! process would outlive its killed worker but for the confirmation).

mod common;

use praxis_core::ExecStatus;
use praxis_tools::worker::WorkerClient;
use praxis_tools::{CaptureLimits, ToolLimits, WorkerCommand};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn client(ws: &Path) -> WorkerClient {
    WorkerClient::new(
        WorkerCommand {
            program: env!("CARGO_BIN_EXE_praxis-worker").into(),
            args: Vec::new(),
        },
        ws.canonicalize().unwrap(),
        ToolLimits::default(),
    )
}

/// A command whose detached loop (own session, SIGTERM and SIGHUP ignored) keeps planting
/// an executable hook in a new git directory and appending to `beat`.
const PLANTER: &str = "setsid sh -c 'trap \"\" TERM HUP; while :; do mkdir -p sub/.git/hooks; \
     printf \"#!/bin/sh\\ntouch planted-ran\\n\" > sub/.git/hooks/pre-commit; \
     chmod +x sub/.git/hooks/pre-commit; echo x >> beat; done' </dev/null >/dev/null 2>&1 & \
     sleep 300";

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

async fn abandon_then_sweep(round: &str, pid_namespace: bool) {
    let ws = tempfile::tempdir().unwrap();
    let worker = Arc::new(client(ws.path()));
    worker.start().await.expect("worker starts");
    // The round is what it says: commands with or without the spawner's PID namespace (a
    // spawner that would set itself up at the first command counts as one).
    let layers: Vec<praxis_sandbox::Layer> = serde_json::from_value(worker.layers()).unwrap();
    let layer = layers.iter().find(|l| l.name == "pid_namespace");
    assert_eq!(
        layer.is_some_and(|l| l.active),
        pid_namespace,
        "{round}: {layer:?}"
    );
    worker
        .capture(CaptureLimits::default())
        .await
        .expect("capture");
    let call = {
        let worker = worker.clone();
        tokio::spawn(async move {
            worker
                .execute("shell", json!({"command": PLANTER}), None)
                .await
        })
    };
    let beat = ws.path().join("beat");
    for _ in 0..400 {
        if size(&beat) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(size(&beat) > 0, "{round}: the planter never started");

    worker
        .kill_and_confirm(Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{round}: not confirmed: {e}"));
    // Confirmed gone: the loop never writes again.
    let at_confirm = size(&beat);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        size(&beat),
        at_confirm,
        "{round}: the abandoned call's loop still wrote after it was confirmed gone"
    );
    let obs = call.await.unwrap();
    assert_eq!(obs.status, ExecStatus::Error, "{round}: {}", obs.output);

    // The sweep (in a new worker) strips the hook, and nothing plants it again.
    let changes = worker.refresh(vec![]).await.expect("refresh");
    assert!(
        changes
            .git_removed
            .iter()
            .any(|p| p.starts_with("sub/.git")),
        "{round}: {:?}",
        changes.git_removed
    );
    let hook = ws.path().join("sub/.git/hooks/pre-commit");
    assert!(!hook.exists(), "{round}: the hook survived the sweep");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !hook.exists(),
        "{round}: the hook came back after the sweep"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn an_abandoned_call_is_gone_before_its_sweep_with_or_without_a_pid_namespace() {
    if !common::require_sandbox("abandoned call") {
        return;
    }
    if let Some(why) = praxis_sandbox::probe().pids_cgroup_why {
        let why =
            format!("abandoned call: the end of commands is seen in their pids cgroup: {why}");
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{why}");
        }
        eprintln!("skipped: {why}");
        return;
    }
    abandon_then_sweep("with the spawner's PID namespace", true).await;
    // SAFETY: this binary's only test, and no other thread reads the environment now (the
    // previous round's worker is gone; the next one is started after this).
    unsafe { std::env::set_var("PRAXIS_NO_SPAWNER_FOR_TESTS", "1") };
    abandon_then_sweep("without a spawner (no PID namespace)", false).await;
}
