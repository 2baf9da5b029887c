//! What the sandbox's integration tests share: the host check and running a script.

use praxis_sandbox::{Launch, Sandbox, SpawnCgroup, probe};
use std::path::Path;

/// Under CI a missing layer is a failure; elsewhere the test is skipped with a reason.
pub fn require_sandbox() -> bool {
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

/// Runs `script` with bash in `sandbox` and `cgroup`: (exit code, stdout, stderr).
pub fn run_in(
    sandbox: &Sandbox,
    cgroup: Option<&SpawnCgroup>,
    script: &str,
    cwd: &Path,
) -> (i32, String, String) {
    let args = ["-c".to_string(), script.to_string()];
    let env = sandbox.environment(&[("PATH".into(), "/usr/bin:/bin".into())]);
    let launch = Launch {
        program: Path::new("/bin/bash"),
        args: &args,
        env: &env,
        cwd,
        default_path: "/usr/bin:/bin",
    };
    let (status, out, err) = sandbox
        .launch(&launch, cgroup)
        .expect("spawn")
        .wait_with_output()
        .expect("wait");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

pub fn run(sandbox: &Sandbox, script: &str, cwd: &Path) -> (i32, String, String) {
    let cgroup = sandbox.spawn_cgroup().expect("cgroup");
    run_in(sandbox, cgroup.as_ref(), script, cwd)
}
