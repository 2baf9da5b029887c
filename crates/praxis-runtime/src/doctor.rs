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
    /// OS sandbox layers the host kernel offers and the fabric runs get by default.
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

/// The provider specs this build knows, with the presets' servers and which of their
/// variables are set (never a key).
pub fn providers_check(settings: &praxis_models::ProviderSettings) -> Check {
    let mut lines: Vec<String> = praxis_models::KNOWN_PROVIDERS
        .iter()
        .filter(|spec| {
            !praxis_models::PRESETS
                .iter()
                .any(|p| spec.starts_with(p.name))
        })
        .map(|spec| spec.to_string())
        .collect();
    lines.extend(praxis_models::PRESETS.iter().map(|p| p.describe(settings)));
    check("providers", Ok(lines.join("; ")))
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
        SqliteLedger::open_read_only(&ledger_path)
            .and_then(|ledger| ledger.check_health())
            .map(|h| serde_json::to_string(&h).unwrap_or_default())
            .map_err(|e| format!("{}: {e}", ledger_path.display())),
    ));
    checks.push(check(
        "tool manifests",
        crate::tool_set::registry_from_env(home)
            .map(|registry| {
                let names: Vec<&str> = registry
                    .manifests()
                    .iter()
                    .map(|m| m.spec.name.as_str())
                    .collect();
                match names.is_empty() {
                    true => "none".to_string(),
                    false => names.join(", "),
                }
            })
            .map_err(|e| e.to_string()),
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
    checks.push(providers_check(&praxis_models::ProviderSettings::from_env()));
    let host = praxis_tools::sandbox::probe();
    checks.push(check(
        "sandbox",
        if host.sandbox_available() {
            Ok(format!(
                "landlock ABI {}, seccomp, user namespaces {}",
                host.landlock_abi.unwrap_or(0),
                if host.user_namespaces { "yes" } else { "no" }
            ))
        } else {
            Err(format!(
                "commands would run unconfined: landlock ABI {:?}, seccomp {} (needs Linux \
                 5.13+ with Landlock enabled)",
                host.landlock_abi, host.seccomp
            ))
        },
    ));
    if host.sandbox_available() {
        checks.push(spawner_check());
    }
    DoctorReport {
        praxis_version: env!("CARGO_PKG_VERSION").into(),
        data_dir: dir.display().to_string(),
        checks,
        sandbox_features: sandbox_features(),
    }
}

/// The sandbox a run gets here, made for real for a scratch workspace (the default
/// settings: network denied), then dropped; None with the reason when none can be made.
fn trial_sandbox() -> Result<praxis_tools::Sandbox, String> {
    let scratch = tempfile::tempdir().map_err(|e| format!("no scratch directory: {e}"))?;
    praxis_tools::Sandbox::new(praxis_tools::SandboxSettings::default().policy(scratch.path()))
        .map_err(|e| format!("the sandbox could not be prepared: {e}"))
}

/// Whether the sandbox's spawner starts. Without it a run's worker does not Landlock itself
/// (its commands set up their namespaces from it, which a Landlock domain forbids) and
/// commands get no PID namespace: said here, before any run.
fn spawner_check() -> Check {
    let sandbox = match trial_sandbox() {
        Ok(sandbox) => sandbox,
        Err(why) => return check("spawner", Err(why)),
    };
    let report = sandbox.report();
    check(
        "spawner",
        match sandbox.has_spawner() {
            true => Ok(
                "starts: commands inherit every layer from it, and a run's worker \
                 Landlocks itself"
                    .into(),
            ),
            false => Err(format!(
                "no spawner can start ({}): a run's worker would run WITHOUT Landlock (its \
                 file tools confined by descriptors only, openat2 beneath the workspace) and \
                 commands without a PID namespace",
                report.launcher
            )),
        },
    )
}

/// The layers a run would have on this host (a trial sandbox's report, plus the worker's
/// own Landlock, which needs the spawner), as `{name, active, detail}`.
fn run_layers() -> Value {
    let sandbox = match trial_sandbox() {
        Ok(sandbox) => sandbox,
        Err(why) => return json!([{"name": "sandbox", "active": false, "detail": why}]),
    };
    let report = sandbox.report();
    let landlock = report.layer("landlock").is_some_and(|l| l.active);
    let spawner = sandbox.has_spawner();
    let mut layers = json!(report.layers);
    if let Some(list) = layers.as_array_mut() {
        list.push(json!({
            "name": "worker_landlock",
            "active": landlock && spawner,
            "detail": match (landlock, spawner) {
                (true, true) => "the worker Landlocks itself to the run's workspace before it \
                                 serves a call",
                (false, _) => "no Landlock on this host",
                (true, false) => "not applied: no spawner can start (see the `spawner` check)",
            },
        }));
    }
    layers
}

/// What sandbox layers this host offers, tested for real (see `praxis_sandbox::probe`),
/// and which fabric runs get by default. Keys read by production checks: `landlock_abi`
/// (null when missing), `seccomp`, `user_namespaces` (booleans) and `in_use`.
pub fn sandbox_features() -> Value {
    use praxis_tools::sandbox::probe;
    let host = probe();
    let worker = praxis_tools::WorkerCommand::discover();
    let available = host.sandbox_available();
    let active = |on: bool, what: &str, why: Option<&String>| {
        if on {
            what.to_string()
        } else {
            why.cloned().unwrap_or_else(|| "unavailable".into())
        }
    };
    let layers = [
        ("landlock", host.landlock_abi.is_some()),
        ("seccomp", host.seccomp),
        ("user+net namespaces", host.user_namespaces),
        ("pids cgroup", host.pids_cgroup.is_some()),
    ]
    .iter()
    .map(|(name, on)| format!("{name} {}", if *on { "on" } else { "off" }))
    .collect::<Vec<_>>()
    .join(", ");
    let in_use = match (&worker, available) {
        (Some(_), true) => format!(
            "worker: every tool but `delegate` (file tools included) and the workspace \
             tracker run in a per-run `praxis worker` Landlocked to the run's workspace; \
             commands confined ({layers}, rlimits, scrubbed env, private HOME/TMPDIR)"
        ),
        (None, true) => format!(
            "in-process fabric (no `praxis` executable found for the worker); commands \
             confined ({layers}, rlimits, scrubbed env, private HOME/TMPDIR)"
        ),
        (_, false) => "in-process fabric without an OS sandbox: this host lacks Landlock or \
             seccomp; commands get process groups, timeouts, output caps and a clean \
             environment only"
            .to_string(),
    };
    json!({
        "landlock_abi": host.landlock_abi,
        "seccomp": host.seccomp,
        "user_namespaces": host.user_namespaces,
        "network_namespace": active(
            host.user_namespaces,
            "a new, empty network namespace per command unless the run allows network",
            host.user_namespaces_why.as_ref(),
        ),
        "pids_cgroup": match &host.pids_cgroup {
            Some(dir) => json!(dir.display().to_string()),
            None => json!(host.pids_cgroup_why),
        },
        "memory_cgroup": match (&host.pids_cgroup, &host.memory_cgroup) {
            (Some(_), Some(dir)) => json!(dir.display().to_string()),
            (None, _) => json!("unavailable: it is set up with the pids cgroup"),
            (_, None) => json!(host.memory_cgroup_why),
        },
        "mount_namespace": active(
            host.mount_namespaces,
            "private /tmp, /run, /var/run and /dev/shm when the network is denied, and a \
             the workspace's git directories (its .git and nested ones) read-only, for every command",
            host.user_namespaces_why.as_ref(),
        ),
        "pid_namespace": active(
            host.pid_namespaces && host.mount_namespaces,
            "a PID namespace with its own /proc for the commands of a sandbox's spawner; \
             they die with it",
            host.user_namespaces_why.as_ref(),
        ),
        "socket_families": active(
            host.seccomp,
            "socket() only for AF_UNIX, and AF_INET, AF_INET6 and NETLINK_ROUTE when the \
             run allows the network",
            None,
        ),
        "rlimits": if host.uid == 0 {
            "cpu, address space, open files, processes, file size (RLIMIT_NPROC does not bind \
             uid 0: the pids cgroup bounds processes)"
        } else {
            "cpu, address space, open files, processes, file size"
        },
        "worker": match &worker {
            Some(cmd) => json!(format!(
                "{} {}",
                cmd.program.display(),
                cmd.args.join(" ")
            )),
            None => json!("unavailable: no `praxis` executable found"),
        },
        "default_fabric": if worker.is_some() && available { "worker" } else { "in-process" },
        "run_layers": if available { run_layers() } else { json!([]) },
        "in_use": in_use,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_lists_the_presets_and_their_variables_but_no_key() {
        let settings = praxis_models::ProviderSettings::from_vars(|k| match k {
            "HF_TOKEN" => Some("hf_secret".into()),
            "VLLM_BASE_URL" => Some("http://gpu:8000/v1".into()),
            _ => None,
        });
        let c = providers_check(&settings);
        for expected in [
            "openai:MODEL",
            "ollama:MODEL",
            "huggingface:MODEL at https://router.huggingface.co/v1, HF_TOKEN set",
            "lmstudio:MODEL at http://localhost:1234/v1, no key",
            "vllm:MODEL at VLLM_BASE_URL set",
            "llamacpp:MODEL at LLAMACPP_BASE_URL unset",
        ] {
            assert!(c.detail.contains(expected), "{expected} in {}", c.detail);
        }
        assert!(!c.detail.contains("hf_secret"));
    }
}
