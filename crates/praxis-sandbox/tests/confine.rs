//! The sandbox applied to real processes spawned with std's Command (the tool-level
//! adversarial suite lives in praxis-tools).

use praxis_sandbox::{Sandbox, SandboxPolicy, probe};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Under CI a missing layer is a failure; elsewhere the test is skipped with a reason.
fn require_sandbox() -> bool {
    let host = probe();
    if host.sandbox_available() && host.user_namespaces {
        return true;
    }
    let why = format!("host lacks sandbox layers: {host:?}");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}");
    }
    eprintln!("skipped: {why}");
    false
}

fn run(sandbox: &Sandbox, script: &str, cwd: &std::path::Path) -> (i32, String, String) {
    let cgroup = sandbox.spawn_cgroup().expect("cgroup");
    let mut cmd = Command::new("/bin/bash");
    cmd.args(["-c", script])
        .current_dir(cwd)
        .env_clear()
        .envs(sandbox.environment(&[("PATH".into(), "/usr/bin:/bin".into())]));
    unsafe { cmd.pre_exec(sandbox.child_hook(cgroup.as_ref())) };
    let out = cmd.output().expect("spawn");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

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
    ] {
        assert!(
            report.layer(layer).is_some_and(|l| l.active),
            "{layer}: {report:?}"
        );
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
