//! `praxis doctor`: what this host and data directory offer, as data (the CLI presents it).

use crate::DataHome;
use praxis_ledger::SqliteLedger;
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct DoctorReport {
    pub praxis_version: String,
    pub data_dir: String,
    pub checks: Vec<Check>,
    /// OS sandbox layers the host kernel offers (the runtime does not use them yet).
    pub sandbox_features: Value,
}

impl DoctorReport {
    pub fn healthy(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

fn check(name: &str, result: Result<String, String>) -> Check {
    match result {
        Ok(detail) => Check {
            name: name.into(),
            ok: true,
            detail,
        },
        Err(detail) => Check {
            name: name.into(),
            ok: false,
            detail,
        },
    }
}

pub fn report(home: &DataHome) -> DoctorReport {
    let mut checks = Vec::new();
    let dir = home.root();
    checks.push(check(
        "data dir",
        std::fs::create_dir_all(dir)
            .and_then(|()| tempfile::tempfile_in(dir).map(drop))
            .map(|()| format!("{} (writable)", dir.display()))
            .map_err(|e| {
                format!(
                    "{}: {e} (set PRAXIS_HOME to a writable directory)",
                    dir.display()
                )
            }),
    ));
    let ledger_path = home.ledger_path();
    checks.push(check(
        "ledger",
        SqliteLedger::open(&ledger_path)
            .and_then(|ledger| ledger.check_health())
            .map(|h| serde_json::to_string(&h).unwrap_or_default())
            .map_err(|e| format!("{}: {e}", ledger_path.display())),
    ));
    checks.push(check(
        "bash",
        std::process::Command::new("bash")
            .arg("--version")
            .output()
            .map_err(|e| format!("bash not runnable: {e} (the shell tool needs it)"))
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            }),
    ));
    DoctorReport {
        praxis_version: env!("CARGO_PKG_VERSION").into(),
        data_dir: dir.display().to_string(),
        checks,
        sandbox_features: sandbox_features(),
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Probes the kernel's sandboxing primitives without changing anything.
pub fn sandbox_features() -> Value {
    // landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) returns the ABI version.
    let landlock_abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    let user_namespaces = read_trimmed("/proc/sys/user/max_user_namespaces")
        .and_then(|n| n.parse::<u64>().ok())
        .is_some_and(|n| n > 0)
        && read_trimmed("/proc/sys/kernel/unprivileged_userns_clone").is_none_or(|v| v == "1");
    let seccomp = read_trimmed("/proc/self/status")
        .is_some_and(|s| s.lines().any(|l| l.starts_with("Seccomp:")));
    json!({
        "landlock_abi": if landlock_abi > 0 { json!(landlock_abi) } else { Value::Null },
        "user_namespaces": user_namespaces,
        "seccomp": seccomp,
        "cgroup_v2": std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists(),
        "in_use": "none: tools run in-process with the runtime's privileges (process groups, timeouts, output caps and a clean environment only)",
    })
}
