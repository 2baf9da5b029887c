//! Commands that try to get out, run through the real `shell` tool with the sandbox on.
//! Each attempt must be blocked and the observation must say so; each has a control that
//! shows the same action succeeding where it is permitted (so every test can fail).

mod common;

use common::{
    confined, pid_ns, pids_in, require_layer, require_sandbox, shell, unconfined, wait_dead_in,
};
use praxis_core::{ExecStatus, Observation};
use serde_json::json;
use std::io::ErrorKind;
use std::net::TcpListener;

fn assert_blocked(obs: &Observation, marker: &str) {
    assert_eq!(obs.status, ExecStatus::Error, "{}", obs.output);
    assert!(!obs.output.contains(marker), "leaked: {}", obs.output);
    assert!(
        obs.output.contains("Permission denied") || obs.output.contains("not permitted"),
        "{}",
        obs.output
    );
    assert!(obs.output.contains("[sandbox: "), "{}", obs.output);
}

#[tokio::test]
async fn reads_outside_the_workspace_are_denied() {
    if !require_sandbox("reads") {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let sibling = tempfile::tempdir().unwrap();
    std::fs::write(sibling.path().join("secret.txt"), "SIBLING-SECRET").unwrap();
    std::fs::write(ws.path().join("mine.txt"), "MY-FILE").unwrap();
    let ctx = confined(ws.path(), |_| {});

    let obs = shell(&ctx, "cat /etc/shadow", 30).await;
    assert_blocked(&obs, "root:");
    let secret = sibling.path().join("secret.txt");
    let obs = shell(&ctx, &format!("cat {}", secret.display()), 30).await;
    assert_blocked(&obs, "SIBLING-SECRET");
    let obs = shell(&ctx, &format!("ls {}", sibling.path().display()), 30).await;
    assert_blocked(&obs, "secret.txt");

    // Control: inside the workspace, and the same sibling file unconfined.
    let obs = shell(&ctx, "cat mine.txt", 30).await;
    assert_eq!(
        (obs.status, obs.output.as_str()),
        (ExecStatus::Ok, "MY-FILE")
    );
    let obs = shell(
        &unconfined(ws.path()),
        &format!("cat {}", secret.display()),
        30,
    )
    .await;
    assert_eq!(obs.output, "SIBLING-SECRET");
}

#[tokio::test]
async fn writes_outside_the_workspace_are_denied() {
    if !require_sandbox("writes") {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let sibling = tempfile::tempdir().unwrap();
    let ctx = confined(ws.path(), |_| {});
    let target = sibling.path().join("planted.txt");
    let obs = shell(&ctx, &format!("echo pwned > {}", target.display()), 30).await;
    assert_blocked(&obs, "pwned");
    assert!(!target.exists());
    let obs = shell(&ctx, "touch /tmp/praxis-sandbox-escape-test", 30).await;
    assert_blocked(&obs, "\0");
    assert!(!std::path::Path::new("/tmp/praxis-sandbox-escape-test").exists());

    // Control: writing inside the workspace and in the private HOME/TMPDIR works.
    let obs = shell(
        &ctx,
        "mkdir -p sub && echo ok > sub/f && cat sub/f && echo t > \"$TMPDIR/x\" && echo h > \"$HOME/y\" && cat \"$TMPDIR/x\" \"$HOME/y\"",
        30,
    )
    .await;
    assert_eq!(
        (obs.status, obs.output.as_str()),
        (ExecStatus::Ok, "ok\nt\nh\n")
    );
    assert!(ws.path().join("sub/f").exists());
}

#[tokio::test]
async fn a_planted_symlink_pointing_out_leads_nowhere() {
    if !require_sandbox("symlink") {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let sibling = tempfile::tempdir().unwrap();
    std::fs::write(sibling.path().join("secret.txt"), "LINKED-SECRET").unwrap();
    std::os::unix::fs::symlink(sibling.path().join("secret.txt"), ws.path().join("leak")).unwrap();
    std::os::unix::fs::symlink(sibling.path(), ws.path().join("outdir")).unwrap();
    let ctx = confined(ws.path(), |_| {});
    let obs = shell(&ctx, "cat leak", 30).await;
    assert_blocked(&obs, "LINKED-SECRET");
    let obs = shell(&ctx, "echo pwned > outdir/new.txt", 30).await;
    assert_blocked(&obs, "pwned");
    assert!(!sibling.path().join("new.txt").exists());
    // A link the command makes itself does not help either.
    let obs = shell(
        &ctx,
        &format!(
            "ln -s {} mine && cat mine",
            sibling.path().join("secret.txt").display()
        ),
        30,
    )
    .await;
    assert_blocked(&obs, "LINKED-SECRET");

    // Control: a link inside pointing inside works.
    std::fs::write(ws.path().join("real.txt"), "INSIDE").unwrap();
    let obs = shell(&ctx, "ln -s real.txt alias && cat alias", 30).await;
    assert_eq!(
        (obs.status, obs.output.as_str()),
        (ExecStatus::Ok, "INSIDE")
    );
}

/// A listener that counts the connections it accepted.
fn listener(addr: &str) -> Option<TcpListener> {
    let l = TcpListener::bind(addr).ok()?;
    l.set_nonblocking(true).ok()?;
    Some(l)
}

fn accepted(l: &TcpListener) -> usize {
    let mut n = 0;
    loop {
        match l.accept() {
            Ok(_) => n += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return n,
            Err(_) => return n,
        }
    }
}

#[tokio::test]
async fn network_is_unreachable_from_commands() {
    if !require_sandbox("network") {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let v4 = listener("127.0.0.1:0").expect("loopback listener");
    let v6 = listener("[::1]:0");
    let port4 = v4.local_addr().unwrap().port();
    let ctx = confined(ws.path(), |_| {});

    // python3: loopback first; only when that was blocked, the metadata address (so a
    // broken sandbox never sends a packet toward it from this host).
    let script = format!(
        r#"
import socket, sys
def attempt(family, addr):
    try:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(2)
        s.connect(addr)
        return "CONNECTED"
    except OSError as e:
        return "blocked: " + str(e)
r = attempt(socket.AF_INET, ("127.0.0.1", {port4}))
print("127.0.0.1", r)
if r == "CONNECTED":
    sys.exit(3)
print("169.254.169.254", attempt(socket.AF_INET, ("169.254.169.254", 80)))
print("::1", attempt(socket.AF_INET6, ("::1", {port6})))
sys.exit(1)
"#,
        port6 = v6.as_ref().map_or(9, |l| l.local_addr().unwrap().port())
    );
    std::fs::write(ws.path().join("net.py"), script).unwrap();
    let obs = shell(&ctx, "python3 net.py", 30).await;
    assert_eq!(obs.exit_code, Some(1), "{}", obs.output);
    assert!(!obs.output.contains("CONNECTED"), "{}", obs.output);
    for target in [
        "127.0.0.1 blocked",
        "169.254.169.254 blocked",
        "::1 blocked",
    ] {
        assert!(obs.output.contains(target), "{target}: {}", obs.output);
    }
    assert!(obs.output.contains("not permitted"), "{}", obs.output);
    let obs = shell(
        &ctx,
        &format!("exec 3<>/dev/tcp/127.0.0.1/{port4} && echo CONNECTED"),
        30,
    )
    .await;
    assert_eq!(obs.status, ExecStatus::Error, "{}", obs.output);
    assert!(!obs.output.contains("CONNECTED"), "{}", obs.output);
    assert_eq!(accepted(&v4), 0);
    if let Some(v6) = &v6 {
        assert_eq!(accepted(v6), 0);
    }

    // Control: the same connection succeeds when the run allows the network.
    let open = confined(ws.path(), |l| l.sandbox.allow_network = true);
    let obs = shell(
        &open,
        &format!("exec 3<>/dev/tcp/127.0.0.1/{port4} && echo CONNECTED"),
        30,
    )
    .await;
    assert_eq!(
        (obs.status, obs.output.as_str()),
        (ExecStatus::Ok, "CONNECTED\n")
    );
    assert_eq!(accepted(&v4), 1);
}

#[tokio::test]
async fn a_fork_bomb_hits_the_process_limit_and_leaves_nothing_behind() {
    if !require_sandbox("fork bomb") {
        return;
    }
    let host = praxis_sandbox::probe();
    if host.uid == 0 && host.pids_cgroup.is_none() {
        // RLIMIT_NPROC does not bind uid 0: without a pids cgroup nothing would stop it.
        let why = "fork bomb: running as root without a pids cgroup; refusing to run it";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("skipped: {why}");
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let ctx = confined(ws.path(), |l| l.sandbox.resources.processes = 32);

    // Counted: fork until refused, record every child.
    let script = r#"
import os, time
n = 0
while n < 1000:
    try:
        pid = os.fork()
    except OSError as e:
        print("refused after", n, "forks:", e)
        break
    if pid == 0:
        time.sleep(300)
        os._exit(0)
    with open("children", "a") as f:
        f.write(str(pid) + "\n")
    n += 1
"#;
    std::fs::write(ws.path().join("fork.py"), script).unwrap();
    let obs = shell(&ctx, "python3 fork.py", 60).await;
    assert!(obs.output.contains("refused after"), "{}", obs.output);
    assert!(
        obs.output.contains("Resource temporarily unavailable"),
        "{}",
        obs.output
    );
    let children = pids_in(&ws.path().join("children"));
    assert!(
        !children.is_empty() && children.len() < 32,
        "{}",
        children.len()
    );
    let ns = pid_ns(&ctx).await;
    for pid in children {
        assert!(wait_dead_in(&ns, pid).await, "child {pid} survived");
    }

    // The classic bomb: bounded, killed at the timeout, nothing left. (The timeout leaves
    // room to reach the limit on a host busy with the rest of the test suite.) Every level
    // waits for its children, so the tree stands until the timeout: without that, the
    // command could end before reaching the limit (orphans are reaped at once by the PID
    // namespace's init, so they no longer pile up as zombies counted by the cgroup).
    let obs = shell(&ctx, "b() { echo $BASHPID >> bombs; b | b & wait; }; b", 8).await;
    assert!(
        obs.output.contains("Resource temporarily unavailable"),
        "{}",
        obs.output
    );
    let bombs = pids_in(&ws.path().join("bombs"));
    assert!(!bombs.is_empty());
    for pid in bombs {
        assert!(wait_dead_in(&ns, pid).await, "bomb process {pid} survived");
    }

    // Control: under the limit, forking works.
    let obs = shell(
        &ctx,
        "for i in 1 2 3 4; do (true) & done; wait; echo forked",
        30,
    )
    .await;
    assert_eq!(
        (obs.status, obs.output.as_str()),
        (ExecStatus::Ok, "forked\n")
    );
}

#[tokio::test]
async fn a_gigabyte_of_output_is_capped() {
    if !require_sandbox("output flood") {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let mut ctx = confined(ws.path(), |_| {});
    ctx.limits.output_bytes = 4096;
    let obs = shell(&ctx, "head -c 1000000000 /dev/zero | tr '\\0' a", 120).await;
    assert!(obs.output.len() < 4096 + 200, "{}", obs.output.len());
    if obs.status == ExecStatus::Ok {
        assert_eq!(obs.truncated_bytes, 1_000_000_000 - 4096);
    } else {
        assert_eq!(obs.status, ExecStatus::Timeout, "{}", obs.output);
    }
    assert!(obs.output.contains("bytes cut"), "{}", &obs.output[..200]);
}

#[tokio::test]
async fn sleeping_past_the_timeout_kills_every_descendant() {
    if !require_sandbox("timeout") {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let ctx = confined(ws.path(), |_| {});
    // One grandchild in the group, one that left it with setsid.
    let obs = shell(
        &ctx,
        "sleep 300 & echo $! >> pids; setsid sleep 300 & echo $! >> pids; sleep 1; echo started; wait",
        2,
    )
    .await;
    assert_eq!(obs.status, ExecStatus::Timeout, "{}", obs.output);
    assert!(obs.output.contains("timed out after 2s"), "{}", obs.output);
    let pids = pids_in(&ws.path().join("pids"));
    assert_eq!(pids.len(), 2, "{pids:?}");
    let ns = pid_ns(&ctx).await;
    for pid in pids {
        assert!(
            wait_dead_in(&ns, pid).await,
            "descendant {pid} survived the timeout"
        );
    }
}

#[tokio::test]
async fn parent_secrets_are_not_visible() {
    if !require_sandbox("secrets") {
        return;
    }
    // SAFETY: this test binary's other tests read the environment through std only.
    unsafe { std::env::set_var("PRAXIS_TEST_SECRET", "hunter2-adversarial") };
    let ws = tempfile::tempdir().unwrap();
    let ctx = confined(ws.path(), |_| {});
    // A variable this process was started with (so it is in /proc/<pid>/environ, which
    // set_var does not update) and that the scrubbed environment does not pass on.
    let initial = std::fs::read("/proc/self/environ").unwrap_or_default();
    let inherited = [
        "PATH",
        "HOME",
        "LANG",
        "TERM",
        "USER",
        "LOGNAME",
        "CARGO_HOME",
        "RUSTUP_HOME",
    ];
    let marker = initial
        .split(|b| *b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok())
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, v)| !inherited.contains(k) && v.len() > 3)
        .map(|(k, v)| format!("{k}={v}"));
    // This process is the parent (CLONE_PARENT); in a PID namespace the command sees it as
    // 0, so it is named by its host pid.
    let obs = shell(
        &ctx,
        &format!("env; cat /proc/{}/environ", std::process::id()),
        30,
    )
    .await;
    assert!(
        !obs.output.contains("hunter2-adversarial"),
        "{}",
        obs.output
    );
    assert!(!obs.output.contains("PRAXIS_TEST_SECRET"), "{}", obs.output);
    assert!(obs.output.contains("Permission denied"), "{}", obs.output);
    let Some(marker) = marker else {
        eprintln!("control skipped: this process has no variable beyond the scrubbed set");
        return;
    };
    assert!(
        !obs.output.contains(&marker),
        "{marker} leaked: {}",
        obs.output
    );
    // Control: unconfined, the parent's environ file is readable (the check can fail).
    let obs = shell(
        &unconfined(ws.path()),
        "cat /proc/$PPID/environ | tr '\\0' '\\n'",
        30,
    )
    .await;
    assert!(obs.output.contains(&marker), "{marker}: {}", obs.output);
}

#[tokio::test]
async fn dangerous_system_calls_are_refused() {
    if !require_sandbox("seccomp") {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let ctx = confined(ws.path(), |l| l.sandbox.allow_network = true);
    let script = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
# Harmless forms: a new user namespace for this process only, PTRACE_TRACEME, and a mount
# that a process without a mount namespace of its own could not make anyway.
calls = [("unshare", lambda: libc.unshare(0x10000000)),
         ("ptrace", lambda: libc.ptrace(0, 0, 0, 0)),
         ("mount", lambda: libc.mount(b"none", b"/nonexistent-praxis", b"tmpfs", 0, None))]
for name, call in calls[: int(sys.argv[1])]:
    rc = call()
    print(name, rc, os.strerror(ctypes.get_errno()))
"#;
    std::fs::write(ws.path().join("sys.py"), script).unwrap();
    let obs = shell(&ctx, "python3 sys.py 3", 30).await;
    for name in ["unshare", "ptrace", "mount"] {
        assert!(
            obs.output
                .contains(&format!("{name} -1 Operation not permitted")),
            "{name}: {}",
            obs.output
        );
    }
    // Control: unconfined, unshare of a user namespace works on this host.
    let obs = shell(&unconfined(ws.path()), "python3 sys.py 1", 30).await;
    assert!(obs.output.contains("unshare 0 "), "{}", obs.output);
}

#[tokio::test]
async fn unix_sockets_outside_the_workspace_and_other_families_are_refused() {
    if !require_sandbox("unix sockets") {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let ctx = confined(ws.path(), |_| {});
    if !require_layer(&ctx, "mount_namespace") || !require_layer(&ctx, "socket_families") {
        return;
    }
    // Host sockets in /tmp, outside the workspace (like ssh-agent's or a database's).
    let host = tempfile::tempdir_in("/tmp").unwrap();
    let stream_path = host.path().join("agent.sock");
    let dgram_path = host.path().join("log.sock");
    let stream = std::os::unix::net::UnixListener::bind(&stream_path).unwrap();
    stream.set_nonblocking(true).unwrap();
    let dgram = std::os::unix::net::UnixDatagram::bind(&dgram_path).unwrap();
    dgram.set_nonblocking(true).unwrap();
    let script = format!(
        r#"
import socket
def attempt(name, make):
    try:
        make()
        print(name, "OPEN")
    except OSError as e:
        print(name, "blocked:", e)
def stream():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect("{stream}")
def dgram():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(b"PING", "{dgram}")
attempt("stream", stream)
attempt("dgram", dgram)
attempt("vsock", lambda: socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM))
attempt("netlink", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))
attempt("packet", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
# Controls: a socketpair, and a server and client on a socket in the workspace.
a, b = socket.socketpair()
a.sendall(b"pair-ok"); print(b.recv(16).decode())
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind("here.sock"); srv.listen(1)
cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
cli.connect("here.sock")
conn, _ = srv.accept(); cli.sendall(b"workspace-ok"); print(conn.recv(16).decode())
"#,
        stream = stream_path.display(),
        dgram = dgram_path.display()
    );
    std::fs::write(ws.path().join("unix.py"), script).unwrap();
    let obs = shell(&ctx, "python3 unix.py", 30).await;
    assert_eq!(obs.status, ExecStatus::Ok, "{}", obs.output);
    assert!(!obs.output.contains("OPEN"), "{}", obs.output);
    for line in [
        "stream blocked: [Errno 2] No such file or directory",
        "dgram blocked: [Errno 2] No such file or directory",
        "vsock blocked: [Errno 1] Operation not permitted",
        "netlink blocked: [Errno 1] Operation not permitted",
        "packet blocked: [Errno 1] Operation not permitted",
        "pair-ok",
        "workspace-ok",
    ] {
        assert!(obs.output.contains(line), "{line}: {}", obs.output);
    }
    assert!(
        stream.accept().is_err(),
        "a command reached the host socket"
    );
    assert!(dgram.recv(&mut [0u8; 16]).is_err(), "a datagram arrived");

    // Control: unconfined, the same script reaches both host sockets.
    let obs = shell(
        &unconfined(ws.path()),
        "rm -f here.sock; python3 unix.py",
        30,
    )
    .await;
    assert!(obs.output.contains("stream OPEN"), "{}", obs.output);
    assert!(obs.output.contains("dgram OPEN"), "{}", obs.output);
    assert!(stream.accept().is_ok());
    let mut got = [0u8; 16];
    let n = dgram.recv(&mut got).unwrap();
    assert_eq!(&got[..n], b"PING");
}

#[tokio::test]
async fn commands_see_no_host_process() {
    if !require_sandbox("pid namespace") {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let ctx = confined(ws.path(), |_| {});
    if !require_layer(&ctx, "pid_namespace") {
        return;
    }
    let me = std::process::id();
    let script = format!(
        "cat /proc/{me}/cmdline; echo; ls /proc | grep -c '^[0-9]*$'; \
         cat /proc/*/cmdline | tr '\\0' ' '; echo; cat /proc/self/status | grep ^Pid; \
         head -c 4 /proc/1/environ && echo INIT-ENV\"\"IRON"
    );
    let obs = shell(&ctx, &script, 30).await;
    let own_cmdline = std::fs::read("/proc/self/cmdline").unwrap();
    let own = String::from_utf8_lossy(own_cmdline.split(|b| *b == 0).next().unwrap());
    assert!(!obs.output.contains(own.as_ref()), "{own}: {}", obs.output);
    assert!(
        obs.output.contains("No such file or directory"),
        "{}",
        obs.output
    );
    // Only the namespace's init, the shell and its children are there.
    let count: usize = obs
        .output
        .lines()
        .find_map(|l| l.trim().parse().ok())
        .expect("a process count");
    assert!(count < 10, "{count} processes visible: {}", obs.output);
    // The namespace's init is a copy of the runtime: its memory stays closed.
    assert!(!obs.output.contains("INIT-ENVIRON"), "{}", obs.output);
    // Control: the command reads its own /proc, and unconfined this process is visible.
    assert!(obs.output.contains("Pid:"), "{}", obs.output);
    let obs = shell(&unconfined(ws.path()), &script, 30).await;
    assert!(obs.output.contains(own.as_ref()), "{own}: {}", obs.output);
}

#[tokio::test]
async fn git_is_read_only_to_commands_unless_granted() {
    if !require_sandbox("read-only .git") {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(ws.path().join(".git/hooks")).unwrap();
    std::fs::write(ws.path().join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    let ctx = confined(ws.path(), |_| {});
    if !require_layer(&ctx, "mount_namespace") {
        return;
    }
    let hook = ws.path().join(".git/hooks/pre-commit");
    let absolute = format!("echo x > {}", hook.display());
    for attack in [
        "echo x > .git/hooks/pre-commit",
        absolute.as_str(),
        "cd .git/hooks && printf '#!/bin/sh\\ntouch pwned\\n' > pre-commit && chmod +x pre-commit",
        "rm .git/HEAD",
        "mv .git .git-old",
    ] {
        let obs = shell(&ctx, attack, 30).await;
        assert_eq!(obs.status, ExecStatus::Error, "{attack}: {}", obs.output);
        assert!(
            obs.output.contains("Read-only file system") || obs.output.contains("busy"),
            "{attack}: {}",
            obs.output
        );
    }
    assert!(!hook.exists());
    assert!(ws.path().join(".git/HEAD").exists());
    // Control: reading .git and writing elsewhere in the workspace work.
    let obs = shell(
        &ctx,
        "cat .git/HEAD && echo y > other.txt && cat other.txt",
        30,
    )
    .await;
    assert_eq!(
        (obs.status, obs.output.as_str()),
        (ExecStatus::Ok, "ref: refs/heads/main\ny\n")
    );
    // Control: a run that grants .git may write the hook.
    let open = confined(ws.path(), |l| l.sandbox.git_writable = true);
    let obs = shell(&open, "echo x > .git/hooks/pre-commit", 30).await;
    assert_eq!(obs.status, ExecStatus::Ok, "{}", obs.output);
    assert!(hook.exists());
}

#[tokio::test]
async fn a_command_beyond_its_memory_bound_is_killed_and_told() {
    if !require_sandbox("memory bound") {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let ctx = confined(ws.path(), |l| l.sandbox.resources.memory_bytes = 64 << 20);
    if !require_layer(&ctx, "memory_cgroup") {
        return;
    }
    // Written, not just reserved: the pages are charged.
    let grab = |mib: u32| format!("python3 -c 'b = b\"x\" * ({mib} << 20); print(len(b) >> 20)'");
    let obs = shell(&ctx, &grab(512), 60).await;
    assert_eq!(obs.status, ExecStatus::Error, "{}", obs.output);
    assert!(
        obs.output
            .contains("killed: the command exceeded its memory bound of 64 MiB"),
        "{}",
        obs.output
    );
    assert!(!obs.output.contains("512\n"), "{}", obs.output);
    // Control: within the bound the same allocation works.
    let obs = shell(&ctx, &grab(16), 60).await;
    assert_eq!((obs.status, obs.output.as_str()), (ExecStatus::Ok, "16\n"));
}

#[tokio::test]
async fn commands_die_with_the_process_that_owns_their_sandbox() {
    use praxis_tools::worker::WorkerClient;
    use praxis_tools::{ToolLimits, WorkerCommand};
    if !require_sandbox("commands outliving their owner") {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    // The sandbox's owner is a worker process, which this test can kill like a runtime.
    let worker = std::sync::Arc::new(WorkerClient::new(
        WorkerCommand {
            program: env!("CARGO_BIN_EXE_praxis-worker").into(),
            args: Vec::new(),
        },
        ws.path().canonicalize().unwrap(),
        ToolLimits::default(),
    ));
    worker.start().await.expect("worker starts");
    // A side effect that would come after the owner died: in a subshell, which the kernel's
    // parent-death signal of the command itself does not reach.
    let command = "readlink /proc/self/ns/pid > ns; (sleep 3; touch marker) & \
                   echo $! > pid.tmp; mv pid.tmp pid; wait";
    let call = {
        let worker = worker.clone();
        tokio::spawn(async move {
            worker
                .execute("shell", json!({ "command": command }), None)
                .await
        })
    };
    let pidfile = ws.path().join("pid");
    for _ in 0..400 {
        if pidfile.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let ns = std::fs::read_to_string(ws.path().join("ns")).unwrap();
    let ns = ns.trim();
    let inner = pids_in(&pidfile)[0];
    assert!(common::alive_in(ns, inner), "the subshell runs");
    let owner = worker.pid().expect("worker pid") as i32;
    // SAFETY: kill(2) on the worker this test started.
    assert_eq!(unsafe { libc::kill(owner, libc::SIGKILL) }, 0);
    let obs = call.await.unwrap();
    assert_eq!(obs.status, ExecStatus::Error, "{}", obs.output);
    assert!(
        wait_dead_in(ns, inner).await,
        "the subshell survived its owner"
    );
    // Bounded wait past the moment the subshell would have written its marker.
    let marker = ws.path().join("marker");
    for _ in 0..80 {
        assert!(
            !marker.exists(),
            "a command finished its work after its owner died"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!marker.exists());
}
