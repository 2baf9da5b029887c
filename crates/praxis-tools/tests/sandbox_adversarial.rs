//! Commands that try to get out, run through the real `shell` tool with the sandbox on.
//! Each attempt must be blocked and the observation must say so; each has a control that
//! shows the same action succeeding where it is permitted (so every test can fail).

mod common;

use common::{confined, pids_in, require_sandbox, unconfined, wait_dead_in};
use praxis_core::{ExecStatus, Observation};
use praxis_tools::{ExecContext, Registry};
use serde_json::json;
use std::io::ErrorKind;
use std::net::TcpListener;

/// The PID namespace of the context's commands (they name processes by their pids there).
async fn pid_ns(ctx: &ExecContext) -> String {
    let obs = shell(ctx, "readlink /proc/self/ns/pid", 30).await;
    assert_eq!(obs.status, ExecStatus::Ok, "{}", obs.output);
    obs.output.trim().to_string()
}

async fn shell(ctx: &ExecContext, command: &str, timeout: u64) -> Observation {
    Registry::builtin()
        .execute(
            ctx,
            "shell",
            json!({"command": command, "timeout_secs": timeout}),
        )
        .await
}

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
    // room to reach the limit on a host busy with the rest of the test suite.)
    let obs = shell(&ctx, "b() { echo $BASHPID >> bombs; b | b & }; b; wait", 8).await;
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
    let obs = shell(&ctx, "env; cat /proc/$PPID/environ", 30).await;
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
