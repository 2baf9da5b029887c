//! The worker process: calls round-trip over the framed protocol; a worker killed mid-call
//! fails that call (never loses it) and the next call runs on a new worker.

mod common;

use common::{pids_in, pooled_pid, wait_dead_in};
use praxis_core::ExecStatus;
use praxis_tools::worker::{ToWorker, WorkerClient};
use praxis_tools::{ExecContext, Fabric, Registry, ToolLimits, WorkerCommand, Workspace};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn client(ws: &std::path::Path) -> WorkerClient {
    WorkerClient::new(
        WorkerCommand {
            program: env!("CARGO_BIN_EXE_praxis-worker").into(),
            args: Vec::new(),
        },
        ws.canonicalize().unwrap(),
        ToolLimits::default(),
    )
}

#[tokio::test]
async fn calls_round_trip_through_the_registry() {
    let ws = tempfile::tempdir().unwrap();
    let worker = Arc::new(client(ws.path()));
    worker.start().await.expect("worker starts");
    let worker_pid = worker.pid().expect("pid");
    assert_ne!(worker_pid, std::process::id());
    let mut ctx = ExecContext::new(Workspace::new(ws.path()).unwrap());
    ctx.fabric = Fabric::Worker(worker.clone());
    let registry = Registry::builtin();

    // The shell's parent is the worker, not this process. (In its PID namespace a command
    // sees its parent, outside, as 0: look it up from here.)
    let command = "readlink /proc/self/ns/pid > ns; echo $$ > pid.tmp; mv pid.tmp pid; sleep 1";
    let call = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            Registry::builtin()
                .execute(&ctx, "shell", json!({ "command": command }))
                .await
        })
    };
    let pidfile = ws.path().join("pid");
    for _ in 0..400 {
        if pidfile.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let ns = std::fs::read_to_string(ws.path().join("ns")).unwrap();
    let shell = common::host_pid_in(ns.trim(), pids_in(&pidfile)[0]).expect("shell running");
    assert_eq!(common::parent_of(shell as u32), Some(worker_pid));
    let obs = call.await.unwrap();
    assert_eq!(obs.status, ExecStatus::Ok, "{}", obs.output);

    let obs = registry
        .execute(
            &ctx,
            "fs_write",
            json!({"path": "a/b.txt", "content": "one\n"}),
        )
        .await;
    assert_eq!(obs.output, "wrote 4 bytes to a/b.txt (created)");
    let obs = registry
        .execute(
            &ctx,
            "fs_patch",
            json!({"path": "a/b.txt", "edits": [{"search": "one", "replace": "two"}]}),
        )
        .await;
    assert_eq!(obs.status, ExecStatus::Ok, "{}", obs.output);
    assert_eq!(
        std::fs::read_to_string(ws.path().join("a/b.txt")).unwrap(),
        "two\n"
    );
    // Reads run in the worker too; errors come back as observations.
    let obs = registry
        .execute(&ctx, "fs_read", json!({"path": "a/b.txt"}))
        .await;
    assert_eq!(obs.output, "two\n");
    let obs = registry
        .execute(&ctx, "fs_write", json!({"path": "../x", "content": ""}))
        .await;
    assert_eq!(obs.status, ExecStatus::Error);
    assert!(obs.output.contains(".."), "{}", obs.output);
    let obs = worker
        .execute("fs_read", json!({"path": "a/b.txt"}), None)
        .await;
    assert_eq!(obs.output, "two\n");

    // The worker reports the layers it applies to the commands it starts.
    let layers = worker.layers();
    let names: Vec<&str> = layers
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["name"].as_str())
        .collect();
    if praxis_sandbox::probe().sandbox_available() {
        assert!(
            names.contains(&"landlock") && names.contains(&"seccomp"),
            "{layers}"
        );
        // And really applies them.
        let obs = registry
            .execute(&ctx, "shell", json!({"command": "cat /etc/shadow"}))
            .await;
        assert_eq!(obs.status, ExecStatus::Error, "{}", obs.output);
        assert!(obs.output.contains("Permission denied"), "{}", obs.output);
    }
    assert_eq!(worker.starts(), 1);
}

#[tokio::test]
async fn a_killed_worker_fails_the_call_in_flight_and_the_next_call_restarts_it() {
    let ws = tempfile::tempdir().unwrap();
    let worker = Arc::new(client(ws.path()));
    worker.start().await.expect("worker starts");
    let first = worker.pid().expect("pid");

    let call = {
        let worker = worker.clone();
        tokio::spawn(async move {
            worker
                .execute(
                    "shell",
                    json!({"command": "readlink /proc/self/ns/pid > ns; echo $$ > pid.tmp; mv pid.tmp pid; sleep 300"}),
                    None,
                )
                .await
        })
    };
    let pidfile = ws.path().join("pid");
    for _ in 0..400 {
        if pidfile.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let command_pid = pids_in(&pidfile)[0];
    // Its pid as the command sees it, in its PID namespace.
    let ns = std::fs::read_to_string(ws.path().join("ns")).unwrap();
    let ns = ns.trim();
    // SAFETY: kill(2) on the worker we started.
    assert_eq!(unsafe { libc::kill(first as i32, libc::SIGKILL) }, 0);

    let obs = call.await.unwrap();
    assert_eq!(obs.status, ExecStatus::Error);
    assert!(
        obs.output
            .contains("the tool worker died while running `shell`"),
        "{}",
        obs.output
    );
    assert!(obs.output.contains("signal: 9"), "{}", obs.output);
    // The command it was running died with it.
    assert!(
        wait_dead_in(ns, command_pid).await,
        "command {command_pid} survived"
    );

    let obs = worker
        .execute("shell", json!({"command": "echo again"}), None)
        .await;
    assert_eq!(
        (obs.status, obs.output.as_str()),
        (ExecStatus::Ok, "again\n")
    );
    let second = worker.pid().expect("pid");
    assert_ne!(first, second);
    assert_eq!(worker.starts(), 2);
}

#[tokio::test]
async fn dropping_a_call_cancels_it_in_the_worker() {
    let ws = tempfile::tempdir().unwrap();
    let worker = client(ws.path());
    let pidfile = ws.path().join("pid");
    {
        let call = worker.execute(
            "shell",
            json!({"command": "readlink /proc/self/ns/pid > ns; echo $$ > pid.tmp; mv pid.tmp pid; sleep 300"}),
            None,
        );
        tokio::pin!(call);
        loop {
            tokio::select! {
                obs = &mut call => panic!("finished early: {obs:?}"),
                _ = tokio::time::sleep(Duration::from_millis(25)) => {
                    if pidfile.exists() { break; }
                }
            }
        }
    }
    let command_pid = pids_in(&pidfile)[0];
    // Its pid as the command sees it, in its PID namespace.
    let ns = std::fs::read_to_string(ws.path().join("ns")).unwrap();
    let ns = ns.trim();
    assert!(
        wait_dead_in(ns, command_pid).await,
        "cancelled command {command_pid} survived"
    );
    // The worker itself lives on.
    let obs = worker
        .execute("shell", json!({"command": "echo alive"}), None)
        .await;
    assert_eq!(obs.output, "alive\n");
    assert_eq!(worker.starts(), 1);
}

#[tokio::test]
async fn a_worker_that_cannot_start_is_an_error_observation() {
    let ws = tempfile::tempdir().unwrap();
    let worker = WorkerClient::new(
        WorkerCommand {
            program: "/nonexistent/praxis-worker".into(),
            args: Vec::new(),
        },
        ws.path().to_path_buf(),
        ToolLimits::default(),
    );
    let err = worker.start().await.unwrap_err();
    assert!(err.contains("/nonexistent/praxis-worker"), "{err}");
    let obs = worker
        .execute("shell", json!({"command": "true"}), None)
        .await;
    assert_eq!(obs.status, ExecStatus::Error);
    assert!(
        obs.output.contains("could not be started"),
        "{}",
        obs.output
    );
}

/// A call that cannot answer its cancel (a read blocked in the kernel) is stopped by killing
/// the worker (`kill`, what the driver does at a cancel or the run's deadline): the call in
/// flight ends with an error, what it started dies, and the next call gets a new worker.
#[tokio::test]
async fn killing_the_worker_ends_the_call_in_flight_and_the_next_call_restarts_it() {
    let ws = tempfile::tempdir().unwrap();
    let worker = Arc::new(client(ws.path()));
    worker.start().await.expect("worker starts");
    let first = worker.pid().expect("pid");
    let call = {
        let worker = worker.clone();
        tokio::spawn(async move {
            worker
                .execute(
                    "shell",
                    json!({"command": "readlink /proc/self/ns/pid > ns; echo $$ > pid.tmp; mv pid.tmp pid; sleep 300"}),
                    None,
                )
                .await
        })
    };
    let pidfile = ws.path().join("pid");
    for _ in 0..400 {
        if pidfile.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let command_pid = pids_in(&pidfile)[0];
    // Its pid as the command sees it, in its PID namespace.
    let ns = std::fs::read_to_string(ws.path().join("ns")).unwrap();
    let ns = ns.trim();
    worker.kill();
    let obs = call.await.unwrap();
    assert_eq!(obs.status, ExecStatus::Error, "{}", obs.output);
    assert!(
        obs.output
            .contains("the tool worker died while running `shell`"),
        "{}",
        obs.output
    );
    assert!(
        common::wait_dead(first as i32).await,
        "worker {first} survived"
    );
    assert!(
        wait_dead_in(ns, command_pid).await,
        "command {command_pid} survived"
    );
    let obs = worker
        .execute("shell", json!({"command": "echo again"}), None)
        .await;
    assert_eq!(obs.output, "again\n");
    assert_ne!(worker.pid(), Some(first));
    assert_eq!(worker.starts(), 2);
}

/// A run ends by killing its worker, which therefore never removes its sandbox's private
/// home itself: the runtime made the directory the home is in, and removes it once the
/// worker has exited (before this, every run left a `praxis-home-*` in the temp dir).
#[tokio::test]
async fn a_killed_workers_private_home_is_removed() {
    let ws = tempfile::tempdir().unwrap();
    let worker = client(ws.path());
    let obs = worker
        .execute(
            "shell",
            json!({"command": "echo $HOME; touch $HOME/left"}),
            None,
        )
        .await;
    assert_eq!(obs.status, ExecStatus::Ok, "{}", obs.output);
    let home = std::path::PathBuf::from(obs.output.trim());
    assert!(home.join("left").exists(), "{}", home.display());
    let parent = home.parent().unwrap().to_path_buf();
    let name = parent.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("praxis-worker-"), "{}", home.display());
    worker
        .kill_and_confirm(Duration::from_secs(5))
        .await
        .expect("worker gone");
    assert!(!parent.exists(), "{} is left", parent.display());
    // The next worker gets a home of its own, removed in turn.
    let obs = worker
        .execute("shell", json!({"command": "echo $HOME"}), None)
        .await;
    let second = std::path::PathBuf::from(obs.output.trim());
    assert!(second.exists() && !second.starts_with(&parent));
    drop(worker);
    for _ in 0..200 {
        if !second.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(!second.exists(), "{} is left", second.display());
}

/// The worker is told the run's manifest tools and runs them there (a worker that was not
/// told would answer "unknown tool").
#[tokio::test]
async fn the_worker_runs_manifest_tools_it_was_told() {
    let ws = tempfile::tempdir().unwrap();
    let manifest = praxis_tools::manifest::parse(
        std::path::Path::new("/tools/hi.toml"),
        "name = \"hi\"\ndescription = \"d\"\neffect = \"read\"\ncommand = [\"printf\", \"%s|\", \"{who}\"]\n\
         [args]\ntype = \"object\"\n[args.properties.who]\ntype = \"string\"\n",
    )
    .unwrap();
    let registry = Registry::with_manifests(vec![manifest.clone()]).unwrap();
    let mut ctx = ExecContext::new(Workspace::new(ws.path()).unwrap());
    let told = Arc::new(client(ws.path()).with_manifests(vec![manifest]));
    ctx.fabric = Fabric::Worker(told);
    let o = registry
        .execute(&ctx, "hi", json!({"who": "; touch pwned"}))
        .await;
    assert_eq!(o.status, ExecStatus::Ok, "{}", o.output);
    assert_eq!(o.output, "; touch pwned|");
    assert!(!ws.path().join("pwned").exists());
    ctx.fabric = Fabric::Worker(Arc::new(client(ws.path())));
    let o = registry.execute(&ctx, "hi", json!({"who": "x"})).await;
    assert_eq!(o.status, ExecStatus::Error);
    assert!(o.output.contains("unknown tool `hi`"), "{}", o.output);
}

/// A worker started ahead of time is claimed by the next run that starts one, leaves the
/// pool (a second run claims another, started in its place), and serves only the run that
/// claimed it. A command that is not pooled is started on demand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_claim_workers_started_ahead_and_never_share_one() {
    let dir = tempfile::tempdir().unwrap();
    let command = common::own_worker_command(dir.path(), "pooled-worker");
    praxis_tools::worker::keep_warm(command.clone(), 1);
    let first = pooled_pid(&command, &[]).await;

    let (ws_a, ws_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let run = |ws: &std::path::Path| {
        let worker = WorkerClient::new(
            command.clone(),
            ws.canonicalize().unwrap(),
            ToolLimits::default(),
        );
        let mut ctx = ExecContext::new(Workspace::new(ws).unwrap());
        let worker = Arc::new(worker);
        ctx.fabric = Fabric::Worker(worker.clone());
        (worker, ctx)
    };
    let (a, ctx_a) = run(ws_a.path());
    a.start().await.expect("the first run's worker starts");
    assert_eq!(
        a.pid(),
        Some(first),
        "the first run claims the pooled worker"
    );
    assert_eq!((a.starts(), a.warm_starts()), (1, 1));
    // The pool's fork server forked it, as a child of this process (not of the fork
    // server): this process waits for it and signals it as for one it exec'd.
    assert!(a.forked(), "a pooled worker is forked");
    assert_eq!(common::parent_of(first), Some(std::process::id()));
    assert!(!praxis_tools::worker::ready_pids(&command).contains(&first));
    // While it waited, it made what its run's sandbox needs that does not depend on the
    // run, and the run's sandbox took each part.
    let host = praxis_sandbox::probe();
    let mut expected = Vec::new();
    // Not where its runtime had seen a spawner start when it prepared: its own then makes
    // its network namespace at the run's first command.
    if host.user_namespaces && !a.setup().spawner_waits {
        expected.push("network_namespace");
    }
    if host.landlock_abi.is_some() {
        expected.extend(["landlock", "worker_landlock"]);
    }
    expected.sort();
    assert_eq!(a.setup().made_ahead, expected);
    // Its host facts came with its `prepare` (its `hello` carries none): it computed none.
    assert_eq!((a.setup().host_probes, a.setup().etc_walks), (0, 0));

    let second = pooled_pid(&command, &[first]).await;
    let (b, ctx_b) = run(ws_b.path());
    b.start().await.expect("the second run's worker starts");
    assert_eq!(
        b.pid(),
        Some(second),
        "the second run claims the replacement"
    );
    assert_eq!(b.warm_starts(), 1);
    assert_ne!(a.pid(), b.pid());

    // Each serves its own run's workspace only.
    let registry = Registry::builtin();
    for (ctx, content) in [(&ctx_a, "a\n"), (&ctx_b, "b\n")] {
        let o = registry
            .execute(
                ctx,
                "fs_write",
                json!({"path": "f.txt", "content": content}),
            )
            .await;
        assert_eq!(o.status, ExecStatus::Ok, "{}", o.output);
    }
    assert_eq!(
        std::fs::read_to_string(ws_a.path().join("f.txt")).unwrap(),
        "a\n"
    );
    assert_eq!(
        std::fs::read_to_string(ws_b.path().join("f.txt")).unwrap(),
        "b\n"
    );

    praxis_tools::worker::stop_warm();
    assert!(praxis_tools::worker::ready_pids(&command).is_empty());
    let (c, _ctx_c) = run(ws_a.path());
    c.start().await.expect("a worker starts on demand");
    assert_eq!((c.starts(), c.warm_starts()), (1, 0));
    assert!(!c.forked(), "a worker started on demand is exec'd");

    // Pooled for another runtime (another server in this process): not handed to this one.
    let (pid_tx, pid_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let elsewhere_command = command.clone();
    let other = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            praxis_tools::worker::keep_warm(elsewhere_command.clone(), 1);
            pid_tx
                .send(pooled_pid(&elsewhere_command, &[]).await)
                .unwrap();
        });
        let _ = done_rx.recv();
    });
    let elsewhere = tokio::task::spawn_blocking(move || pid_rx.recv().unwrap())
        .await
        .unwrap();
    let (d, _ctx_d) = run(ws_b.path());
    d.start().await.expect("a worker starts on demand");
    assert_eq!(d.warm_starts(), 0);
    assert_ne!(d.pid(), Some(elsewhere));
    praxis_tools::worker::stop_warm();
    done_tx.send(()).unwrap();
    other.join().unwrap();
}

/// A worker takes its runtime's host facts (the host probe, the readable part of /etc its
/// grants cover) instead of computing them again: the runtime computes them once per
/// process, however many workers it starts.
#[tokio::test]
async fn workers_take_the_host_facts_of_their_runtime() {
    let mut proven = false;
    for _ in 0..2 {
        let ws = tempfile::tempdir().unwrap();
        let worker = client(ws.path());
        worker.start().await.expect("worker starts");
        let setup = worker.setup();
        assert_eq!((setup.host_probes, setup.etc_walks), (0, 0));
        // Started for this run: nothing was made before it was known.
        assert!(setup.made_ahead.is_empty(), "{:?}", setup.made_ahead);
        // Once a worker's spawner has started with every layer, the runtime knows, and the
        // next worker's spawner waits for its run's first command.
        if proven {
            assert!(setup.spawner_waits, "{setup:?}");
        }
        // The run's record says so (`run_started.environment.sandbox.worker`).
        assert_eq!(worker.describe().spawner_waits, setup.spawner_waits);
        if setup.spawner_waits {
            // Its first command forks the spawner, from a thread the worker's own Landlock
            // does not bind: it still makes every namespace, and the command gets every
            // layer (its own PID namespace: no process of the host in sight).
            let obs = worker
                .execute(
                    "shell",
                    json!({"command": "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; \
                        ps -e --no-headers | wc -l; cat /etc/shadow >/dev/null 2>&1 || echo shadow-denied"}),
                    None,
                )
                .await;
            assert_eq!(obs.status, ExecStatus::Ok, "{}", obs.output);
            for layer in ["NoNewPrivs:\t1", "Seccomp:\t2", "shadow-denied"] {
                assert!(obs.output.contains(layer), "{layer}: {}", obs.output);
            }
            let processes: u32 = obs.output.lines().nth(2).unwrap().trim().parse().unwrap();
            assert!(processes <= 5, "{}", obs.output);
        }
        proven = setup.spawner_proven;
        assert!(!proven || praxis_sandbox::spawner_proven());
        assert!(
            proven || std::env::var_os("CI").is_none(),
            "no spawner started in CI: {:?}",
            worker.layers()
        );
    }
    // This process probed and walked once, for both.
    assert_eq!(praxis_sandbox::host_probes(), 1);
    assert_eq!(praxis_sandbox::etc_walks(), 1);
}

/// A worker whose runtime is gone before it runs (its parent is not the pid it was told)
/// ends at once, even with its stdin still open: it is never left serving nobody.
#[test]
fn a_worker_whose_runtime_is_gone_ends_at_once() {
    use std::process::{Command, Stdio};
    let mut worker = Command::new(env!("CARGO_BIN_EXE_praxis-worker"))
        // Not this test's pid: as if the runtime that started it had died.
        .env("PRAXIS_WORKER_PARENT", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = worker.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = worker.kill();
            panic!("the worker went on waiting for a runtime that is gone");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1));
    // Told its real parent, it waits for its hello.
    let mut waiting = Command::new(env!("CARGO_BIN_EXE_praxis-worker"))
        .env("PRAXIS_WORKER_PARENT", std::process::id().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        waiting.try_wait().unwrap().is_none(),
        "it ended without cause"
    );
    drop(waiting.stdin.take());
    assert!(waiting.wait().unwrap().success());
}

/// The frames a worker was sent, in order.
fn frames(recorded: &[u8]) -> Vec<ToWorker> {
    let (mut frames, mut at) = (Vec::new(), 0);
    while at + 4 <= recorded.len() {
        let len = u32::from_be_bytes(recorded[at..at + 4].try_into().unwrap()) as usize;
        frames.push(serde_json::from_slice(&recorded[at + 4..at + 4 + len]).unwrap());
        at += 4 + len;
    }
    frames
}

/// A run's worker is asked to capture the workspace in the same write as its `hello`, so it
/// captures as soon as it is ready: the capture frame goes before anything sent after
/// `ready`, once, and the run's capture takes its answer.
#[tokio::test]
async fn the_start_capture_is_sent_with_the_hello() {
    let (dir, ws) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(ws.path().join("a.txt"), "before\n").unwrap();
    let recorded = dir.path().join("frames");
    // The worker itself (its parent is this process), reading through a `tee` that keeps
    // what it is sent.
    let command = WorkerCommand {
        program: "bash".into(),
        args: vec![
            "-c".into(),
            r#"exec "$1" < <(exec tee "$0")"#.into(),
            recorded.display().to_string(),
            env!("CARGO_BIN_EXE_praxis-worker").into(),
        ],
    };
    let limits = praxis_tools::CaptureLimits::default();
    let worker = Arc::new(
        WorkerClient::new(
            command,
            ws.path().canonicalize().unwrap(),
            ToolLimits::default(),
        )
        .capturing_at_start(limits.clone()),
    );
    worker.start().await.expect("worker starts");
    let mut ctx = ExecContext::new(Workspace::new(ws.path()).unwrap());
    ctx.fabric = Fabric::Worker(worker.clone());
    let obs = Registry::builtin()
        .execute(&ctx, "fs_read", json!({"path": "a.txt"}))
        .await;
    assert_eq!(obs.status, ExecStatus::Ok, "{}", obs.output);
    let (manifest, blobs) = worker.capture(limits).await.unwrap();
    assert!(manifest.contains_key("a.txt"), "{manifest:?}");
    assert_eq!(blobs, vec![b"before\n".to_vec()]);
    worker
        .kill_and_confirm(Duration::from_secs(10))
        .await
        .unwrap();
    let sent = frames(&std::fs::read(&recorded).unwrap());
    assert!(
        matches!(
            sent[..],
            [
                ToWorker::Hello { .. },
                ToWorker::Capture { .. },
                ToWorker::Call { .. }
            ]
        ),
        "{sent:?}"
    );
}
