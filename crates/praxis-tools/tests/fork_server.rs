//! The pool's fork server (a test binary of its own: the pool is one per process). Pooled
//! workers are forked by it as children of the runtime; a worker command that cannot be a
//! fork server, or a fork server that dies, leaves the pool exec'ing its workers, and runs
//! never notice.

mod common;

use common::pooled_pid;
use praxis_core::ExecStatus;
use praxis_tools::worker::{WorkerClient, keep_warm, stop_warm};
use praxis_tools::{ExecContext, Fabric, Registry, ToolLimits, WorkerCommand, Workspace};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Starts a run's worker on `command` in `ws` and calls `tool` with `args` through it: the
/// worker and the observation.
async fn call(
    command: &WorkerCommand,
    ws: &Path,
    tool: &str,
    args: serde_json::Value,
) -> (Arc<WorkerClient>, praxis_core::Observation) {
    let worker = Arc::new(WorkerClient::new(
        command.clone(),
        ws.canonicalize().unwrap(),
        ToolLimits::default(),
    ));
    worker.start().await.expect("the run's worker starts");
    let mut ctx = ExecContext::new(Workspace::new(ws).unwrap());
    ctx.fabric = Fabric::Worker(worker.clone());
    let o = Registry::builtin().execute(&ctx, tool, args).await;
    (worker, o)
}

/// Starts a run's worker on `command` in `ws`, writes a file through it, and returns it.
async fn run_writes(command: &WorkerCommand, ws: &Path) -> Arc<WorkerClient> {
    let args = json!({"path": "f.txt", "content": "x\n"});
    let (worker, o) = call(command, ws, "fs_write", args).await;
    assert_eq!(o.status, ExecStatus::Ok, "{}", o.output);
    assert_eq!(std::fs::read_to_string(ws.join("f.txt")).unwrap(), "x\n");
    worker
}

/// Runs `script` through a run's worker on `command` in `ws`: the pid of the worker and
/// what the command printed.
async fn run_shell(command: &WorkerCommand, ws: &Path, script: &str) -> (Option<u32>, String) {
    let (worker, o) = call(command, ws, "shell", json!({ "command": script })).await;
    (worker.pid(), o.output)
}

/// What each descriptor of process `pid` refers to.
fn fds_of(pid: u32) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .collect()
}

/// How many descriptors of worker `pid` refer to its stdin's pipe and to its stdout's.
fn pipe_copies(pid: u32) -> (usize, usize) {
    let fds = fds_of(pid);
    let copies = |fd: u32| {
        let pipe = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap();
        fds.iter().filter(|held| **held == pipe).count()
    };
    (copies(0), copies(1))
}

/// The pids of this process's children whose command line holds `arg`.
fn children_with_arg(arg: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|line| line.split(|&b| b == 0).any(|a| a == arg.as_bytes()))
                && common::parent_of(pid) == Some(std::process::id())
        })
        .collect()
}

/// One test, in two parts (the pool is one per process): a worker command that cannot be
/// a fork server (here a wrapper that refuses the argument) is pooled as before, each
/// worker exec'd; a pool's workers are forked by its fork server, as this process's
/// children; once the fork server is gone, the pool exec's them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_workers_are_forked_and_exec_d_where_no_fork_server_serves() {
    // A directory on PATH is one of the common grants the fork server opens for its
    // workers (the only test of this binary: nothing else reads PATH meanwhile).
    let on_path = tempfile::tempdir().unwrap();
    let granted = on_path.path().join("bin");
    std::fs::create_dir(&granted).unwrap();
    std::fs::write(granted.join("f"), "one\n").unwrap();
    let path = format!(
        "{}:{}",
        granted.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // SAFETY: no other thread reads or writes the environment yet.
    unsafe { std::env::set_var("PATH", path) };
    let refusing_dir = tempfile::tempdir().unwrap();
    let program = refusing_dir.path().join("no-fork-server");
    std::fs::write(
        &program,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = --fork-server ] && exit 3; done\nexec {} \"$@\"\n",
            env!("CARGO_BIN_EXE_praxis-worker")
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &program,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let refusing = WorkerCommand {
        program,
        args: Vec::new(),
    };
    keep_warm(refusing.clone(), 1);
    let first = pooled_pid(&refusing, &[]).await;
    let ws = tempfile::tempdir().unwrap();
    let a = run_writes(&refusing, ws.path()).await;
    assert_eq!(
        (a.pid(), a.forked(), a.warm_starts()),
        (Some(first), false, 1)
    );
    // Measured once it served a call (a pooled worker waits at idle priority, and on a busy
    // host may not have run at all before its claim): compared below with a forked one's.
    let exec_d_copies = pipe_copies(first);
    // An exec'd worker opens the paths of its common grants itself.
    assert!(a.setup().grant_paths_opened > 0, "{:?}", a.setup());
    stop_warm();

    let dir = tempfile::tempdir().unwrap();
    let command = common::own_worker_command(dir.path(), "pooled-worker");
    keep_warm(command.clone(), 1);
    let first = pooled_pid(&command, &[]).await;
    // A forked worker keeps the fork server's command line: tell them apart by the pool.
    let servers: Vec<_> = children_with_arg("--fork-server")
        .into_iter()
        .filter(|pid| *pid != first)
        .collect();
    assert_eq!(servers.len(), 1, "one fork server: {servers:?}");
    // The worker is this process's child.
    assert_eq!(common::parent_of(first), Some(std::process::id()));
    let server_socket = std::fs::read_link(format!("/proc/{}/fd/0", servers[0])).unwrap();
    // It opened the common grants' paths once for its workers.
    assert!(fds_of(servers[0]).contains(&Path::new("/usr").to_path_buf()));
    // A rule binds the file opened, and the fork server opens them again once they are a
    // second old: a granted directory replaced since is granted to workers forked later.
    let read = format!("cat {}/f", granted.display());
    let ws = tempfile::tempdir().unwrap();
    let (pid, out) = run_shell(&command, ws.path(), &read).await;
    assert_eq!((pid, out.as_str()), (Some(first), "one\n"));
    std::fs::rename(&granted, on_path.path().join("old")).unwrap();
    std::fs::create_dir(&granted).unwrap();
    std::fs::write(granted.join("f"), "two\n").unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The worker pooled before the swap keeps what it was given; the one forked after the
    // second passed reads the new directory.
    let waiting = pooled_pid(&command, &[first]).await;
    let _ = run_shell(&command, ws.path(), "true").await;
    let fresh = pooled_pid(&command, &[first, waiting]).await;
    let (pid, out) = run_shell(&command, ws.path(), &read).await;
    assert_eq!((pid, out.as_str()), (Some(fresh), "two\n"));
    let first = pooled_pid(&command, &[first, waiting, fresh]).await;

    let (ws_a, ws_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // The fork server dies before the next worker is forked.
    assert_eq!(unsafe { libc::kill(servers[0] as i32, libc::SIGKILL) }, 0);
    for _ in 0..200 {
        if !common::alive(servers[0] as i32) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let a = run_writes(&command, ws_a.path()).await;
    assert_eq!(
        (a.pid(), a.forked(), a.warm_starts()),
        (Some(first), true, 1)
    );
    // It holds its pipes as often as an exec'd worker does (the copies the fork server
    // received are closed) and nothing else of the fork server's, its socket included.
    assert_eq!(
        (pipe_copies(first), fds_of(first).contains(&server_socket)),
        (exec_d_copies, false),
        "pipe copies, the server's socket"
    );
    // A forked worker adds its common grants from the paths its fork server opened once,
    // opens none of them itself, and keeps none of those descriptors once its rules hold
    // them (the fork server held one for /usr, say).
    assert_eq!(a.setup().grant_paths_opened, 0, "{:?}", a.setup());
    assert!(!fds_of(first).contains(&Path::new("/usr").to_path_buf()));
    // Its replacement could not be forked: it was exec'd, and the run does not notice.
    let second = pooled_pid(&command, &[first]).await;
    let b = run_writes(&command, ws_b.path()).await;
    assert_eq!(
        (b.pid(), b.forked(), b.warm_starts()),
        (Some(second), false, 1)
    );
    stop_warm();
}
