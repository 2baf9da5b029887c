//! Helpers shared by the sandbox test files.
#![allow(dead_code)]

use praxis_core::{ExecStatus, Observation};
use praxis_tools::{ExecContext, Registry, ToolLimits, Workspace};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// Whether the host has every layer these tests exercise. Under CI (`CI=true`) a missing
/// layer fails the test; elsewhere it is skipped with the reason printed.
pub fn require_sandbox(what: &str) -> bool {
    let host = praxis_sandbox::probe();
    if host.sandbox_available() && host.user_namespaces {
        return true;
    }
    let why = format!("{what}: host lacks sandbox layers: {host:?}");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}");
    }
    eprintln!("skipped: {why}");
    false
}

/// An in-process context whose commands are confined.
pub fn confined(ws: &Path, configure: impl FnOnce(&mut ToolLimits)) -> ExecContext {
    let workspace = Workspace::new(ws).expect("workspace");
    let mut ctx = ExecContext::new(workspace.clone());
    configure(&mut ctx.limits);
    ctx.sandbox = Some(
        praxis_tools::fabric::local_sandbox(&workspace, &ctx.limits).expect("sandbox prepared"),
    );
    ctx
}

/// An in-process, unconfined context (the control).
pub fn unconfined(ws: &Path) -> ExecContext {
    ExecContext::new(Workspace::new(ws).expect("workspace"))
}

/// A pid is alive if /proc lists it and it is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some('Z') | Some('X'))
        }
        Err(_) => false,
    }
}

/// SIGKILL delivery is asynchronous: a liveness bound, not a performance assertion.
pub async fn wait_dead(pid: i32) -> bool {
    for _ in 0..200 {
        if !alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The parent pid of process `pid` (`/proc/PID/stat`'s fourth field); None once it is gone.
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (second field) may hold spaces: count from its closing paren.
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(1)?.parse().ok()
}

pub fn pids_in(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The host pid of the live process that is `inner` in the PID namespace `ns` (as
/// `readlink /proc/self/ns/pid` prints it inside): confined commands see their own pids.
pub fn host_pid_in(ns: &str, inner: i32) -> Option<i32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid = entry.file_name().to_string_lossy().parse::<i32>().ok()?;
            let in_ns = std::fs::read_link(format!("/proc/{pid}/ns/pid"))
                .is_ok_and(|link| link.to_string_lossy() == ns);
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let id = status
                .lines()
                .find_map(|l| l.strip_prefix("NSpid:"))
                .and_then(|ids| ids.split_whitespace().last())
                .and_then(|id| id.parse::<i32>().ok());
            (in_ns && id == Some(inner) && alive(pid)).then_some(pid)
        })
}

/// Whether the process that is `inner` in the PID namespace `ns` is alive.
pub fn alive_in(ns: &str, inner: i32) -> bool {
    host_pid_in(ns, inner).is_some()
}

/// [`wait_dead`] for a pid seen inside the PID namespace `ns`.
pub async fn wait_dead_in(ns: &str, inner: i32) -> bool {
    for _ in 0..200 {
        if !alive_in(ns, inner) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The PID namespace of the context's commands (they name processes by their pids there).
pub async fn pid_ns(ctx: &ExecContext) -> String {
    let obs = shell(ctx, "readlink /proc/self/ns/pid", 30).await;
    assert_eq!(obs.status, ExecStatus::Ok, "{}", obs.output);
    obs.output.trim().to_string()
}

/// Runs `command` through the real `shell` tool.
pub async fn shell(ctx: &ExecContext, command: &str, timeout: u64) -> Observation {
    Registry::builtin()
        .execute(
            ctx,
            "shell",
            json!({"command": command, "timeout_secs": timeout}),
        )
        .await
}

/// Under CI a layer the sandbox reports inactive is a failure; elsewhere the test is
/// skipped with the reason.
pub fn require_layer(ctx: &ExecContext, layer: &str) -> bool {
    let sandbox = ctx.sandbox.as_ref().expect("confined context");
    match sandbox.report().layer(layer) {
        Some(l) if l.active => true,
        other => {
            let why = format!("{layer} not active on this host: {other:?}");
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
            eprintln!("skipped: {why}");
            false
        }
    }
}

/// Polls until the pool holds a process of `command` other than `not`; its pid.
pub async fn pooled_pid(command: &praxis_tools::WorkerCommand, not: &[u32]) -> u32 {
    for _ in 0..1200 {
        if let Some(pid) = praxis_tools::worker::ready_pids(command)
            .into_iter()
            .find(|p| !not.contains(p))
        {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no worker was started ahead of time");
}

/// The worker binary under a program path of its own, `dir/name`: no other test starts that
/// command, so a pool kept for it is the caller's.
pub fn own_worker_command(dir: &Path, name: &str) -> praxis_tools::WorkerCommand {
    let program = dir.join(name);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_praxis-worker"), &program).unwrap();
    praxis_tools::WorkerCommand {
        program,
        args: Vec::new(),
    }
}
