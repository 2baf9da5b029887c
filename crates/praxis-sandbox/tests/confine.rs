//! The sandbox applied to real processes started the way the runtime starts them
//! ([`Sandbox::launch`]: through the sandbox's spawner); the tool-level adversarial suite
//! lives in praxis-tools.

mod common;

use common::{require_sandbox, run, run_in};
use praxis_sandbox::{Sandbox, SandboxPolicy, probe};

#[test]
fn confines_files_and_network_but_not_the_workspace() {
    if !require_sandbox() {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "s3cret").unwrap();
    let sandbox = Sandbox::new(SandboxPolicy::new(ws.path())).unwrap();
    let report = sandbox.report();
    for layer in [
        "landlock",
        "seccomp",
        "user_namespace",
        "network_namespace",
        "rlimits",
        "mount_namespace",
        "pid_namespace",
        "socket_families",
    ] {
        assert!(
            report.layer(layer).is_some_and(|l| l.active),
            "{layer}: {report:?}"
        );
    }
    // The memory bound needs a delegated memory controller: reported either way, and
    // required under CI.
    let memory = report
        .layer("memory_cgroup")
        .expect("memory_cgroup reported");
    if !memory.active {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "memory_cgroup: {memory:?}"
        );
        eprintln!("memory bound unavailable here: {}", memory.detail);
    }
    let script = format!(
        "echo inside > f.txt && cat f.txt; cat /etc/hostname >/dev/null && echo etc-ok; \
         cat /etc/shadow 2>/dev/null && echo SHADOW-READ; cat {o}/secret 2>/dev/null && echo OUT-READ; \
         echo x > {o}/new 2>/dev/null && echo OUT-WRITE; echo $HOME; \
         python3 -c 'import socket; socket.socket()' 2>/dev/null && echo SOCKET; true",
        o = outside.path().display()
    );
    let (code, out, err) = run(&sandbox, &script, ws.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("inside"), "{out}{err}");
    assert!(out.contains("etc-ok"), "{out}{err}");
    assert!(!out.contains("SHADOW-READ"), "{out}");
    assert!(!out.contains("OUT-READ"), "{out}");
    assert!(!out.contains("OUT-WRITE"), "{out}");
    assert!(!out.contains("SOCKET"), "{out}");
    assert!(out.contains(&sandbox.home().display().to_string()), "{out}");
    assert!(!outside.path().join("new").exists());
}

fn ns_of(link: &str) -> String {
    std::fs::read_link(link)
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

#[test]
fn commands_share_an_empty_network_namespace_they_cannot_change() {
    if !require_sandbox() {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::new(SandboxPolicy::new(ws.path())).unwrap();
    let netns = sandbox.report().layer("network_namespace").unwrap();
    assert!(netns.active && netns.detail.contains("once"), "{netns:?}");
    // Bringing `lo` up needs CAP_NET_ADMIN over the namespace; the ioctl works on any
    // socket family, so an AF_UNIX socket is enough to try.
    let script = "readlink /proc/self/ns/net /proc/self/ns/user; cat /proc/net/dev; \
        python3 - <<'PY'\n\
import socket, fcntl, struct\n\
s = socket.socket(socket.AF_UNIX)\n\
req = struct.pack('16sh14x', b'lo', 1)\n\
try:\n    fcntl.ioctl(s, 0x8914, req); print('LO-UP')\n\
except PermissionError: print('lo-refused')\n\
flags = struct.unpack('16sh14x', fcntl.ioctl(s, 0x8913, struct.pack('16sh14x', b'lo', 0)))[1]\n\
print('lo-flags', flags & 1)\n\
PY";
    let (code1, out1, err1) = run(&sandbox, script, ws.path());
    let (code2, out2, err2) = run(&sandbox, script, ws.path());
    assert_eq!((code1, code2), (0, 0), "{out1}{err1}{out2}{err2}");
    let lines1: Vec<&str> = out1.lines().collect();
    let lines2: Vec<&str> = out2.lines().collect();
    // Same network namespace for both commands, not the host's.
    assert_eq!(lines1[0], lines2[0]);
    assert_ne!(lines1[0], ns_of("/proc/self/ns/net"));
    // A user namespace that is not the host's (the sandbox's, shared by its commands
    // through the spawner), which holds no capability over the network namespace.
    assert_ne!(lines1[1], ns_of("/proc/self/ns/user"));
    if sandbox.has_spawner() {
        assert_eq!(lines1[1], lines2[1]);
    }
    for out in [&out1, &out2] {
        let interfaces: Vec<&str> = out
            .lines()
            .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim()))
            .filter(|name| !name.contains(' ') && !name.contains('|') && !name.is_empty())
            .filter(|name| !name.starts_with("net") && !name.starts_with("user"))
            .collect();
        assert_eq!(interfaces, ["lo"], "{out}");
        assert!(out.contains("lo-refused"), "{out}");
        assert!(!out.contains("LO-UP"), "{out}");
        assert!(out.contains("lo-flags 0"), "{out}");
    }
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|s| !s.trim_start().starts_with('Z'))
    })
}

/// `pid`'s pid in its innermost PID namespace (the last field of its `NSpid` line).
fn ns_pid(pid: i32) -> Option<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

#[test]
fn emptied_cgroups_are_reused_and_escapees_still_killed() {
    if !require_sandbox() || probe().pids_cgroup.is_none() {
        eprintln!("skipped: no pids cgroup");
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::new(SandboxPolicy::new(ws.path())).unwrap();
    let first_path = {
        let mut cgroup = sandbox.spawn_cgroup().unwrap().unwrap();
        let (code, out, err) = run_in(&sandbox, Some(&cgroup), "true", ws.path());
        assert_eq!(code, 0, "{out}{err}");
        let path = cgroup.path().to_path_buf();
        assert!(cgroup.try_finish_now());
        path
    };
    assert!(first_path.is_dir(), "kept for reuse");

    // The next command gets the same, empty cgroup; what escapes its group is still found
    // there and killed.
    let mut cgroup = sandbox.spawn_cgroup().unwrap().unwrap();
    assert_eq!(cgroup.path(), first_path);
    assert!(cgroup.pids().is_empty());
    let (_, out, _) = run_in(
        &sandbox,
        Some(&cgroup),
        "setsid sleep 60 >/dev/null 2>&1 </dev/null & echo $!",
        ws.path(),
    );
    // The command names it by its pid in the command's PID namespace (where there is
    // one); the cgroup lists host pids. The same process: the last NSpid field.
    let inner: i32 = out.trim().parse().unwrap();
    let pids = cgroup.pids();
    assert_eq!(pids.len(), 1, "{pids:?}");
    let escapee = pids[0];
    assert!(alive(escapee));
    assert_eq!(ns_pid(escapee), Some(inner));
    assert!(
        !cgroup.try_finish_now(),
        "an occupied cgroup is not released"
    );
    assert_eq!(cgroup.finish(), 1);
    assert!(!alive(escapee));
    drop(cgroup);

    drop(sandbox);
    assert!(
        !first_path.exists(),
        "the sandbox removes the cgroups it kept"
    );
}
