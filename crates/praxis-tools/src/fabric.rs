//! The tool fabric: where tools run (in this process, or in the run's confined worker
//! process) and how the commands they start are confined.
//!
//! Selection (`SandboxSettings::fabric`):
//! - `worker`: the worker process when a worker command is found, else in-process (said so
//!   in the report);
//! - `in-process`: here. This cannot confine the runtime process (which holds the data dir)
//!   against a file tool's resolver bug: it is for tests and development;
//! - `auto` (default): `worker` when the host has Landlock and seccomp and a worker command
//!   is found, otherwise `in-process`.
//!
//! With the worker, every tool whose [`crate::Placement`] is `Worker` (every file tool,
//! reads included) and the workspace tracker run there, and the worker Landlocks itself to
//! the run's grants before serving a call; the runtime process never opens a workspace
//! file. `run_started.environment.tool_fabric` records which fabric a run used.
//!
//! Either way every `shell`/`test_run` command is confined by the sandbox when
//! `confine` is on (the default) and the host supports it.

use crate::manifest::ToolManifest;
use crate::worker::WorkerClient;
use crate::{CaptureLimits, ExecContext, ToolLimits, Workspace};
use praxis_sandbox::ssrf::AddressGuard;
use praxis_sandbox::{ResourceLimits, Sandbox, SandboxPolicy, probe};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering as AtomicOrdering};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FabricChoice {
    #[default]
    Auto,
    InProcess,
    Worker,
}

impl std::str::FromStr for FabricChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(FabricChoice::Auto),
            "in-process" => Ok(FabricChoice::InProcess),
            "worker" => Ok(FabricChoice::Worker),
            other => Err(format!(
                "unknown tool fabric `{other}`; expected auto, in-process or worker"
            )),
        }
    }
}

/// How to start the worker: a program and its arguments (`praxis worker`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl WorkerCommand {
    /// `praxis worker`, found as this executable (when it is `praxis`) or as a `praxis`
    /// next to it or one directory up (Cargo's `target/debug/deps` test binaries).
    pub fn discover() -> Option<WorkerCommand> {
        let exe = std::env::current_exe().ok()?;
        let praxis = |dir: &Path| {
            let candidate = dir.join("praxis");
            candidate.is_file().then_some(candidate)
        };
        let program = if exe.file_name().is_some_and(|n| n == "praxis") {
            exe.clone()
        } else {
            let dir = exe.parent()?;
            praxis(dir).or_else(|| dir.parent().and_then(praxis))?
        };
        Some(WorkerCommand {
            program,
            args: vec!["worker".into()],
        })
    }
}

/// The run's sandbox settings (part of [`ToolLimits`], so sub-runs inherit them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxSettings {
    pub fabric: FabricChoice,
    /// Confine `shell`/`test_run` commands (Landlock, seccomp, namespaces, rlimits).
    pub confine: bool,
    /// Commands may use the network (no network namespace, no socket filter).
    pub allow_network: bool,
    pub resources: ResourceLimits,
    /// Extra read+execute and read-write grants for confined commands.
    pub read_paths: Vec<PathBuf>,
    pub write_paths: Vec<PathBuf>,
    /// Paths no grant may expose, besides the defaults (`~/.ssh`, the data dir, ...).
    pub deny_paths: Vec<PathBuf>,
    /// Commands may write the workspace's `.git` (default: read-only for them).
    pub git_writable: bool,
    /// The `http` tool's address guard; opening loopback pairs is for local tests only.
    pub http: AddressGuard,
    /// How to start the worker (default: [`WorkerCommand::discover`]).
    pub worker: Option<WorkerCommand>,
}

/// This process's default fabric: set by `praxis run --fabric`, else `PRAXIS_FABRIC`, else
/// `auto`. (0 = not set.)
static DEFAULT_FABRIC: AtomicU8 = AtomicU8::new(0);

/// Makes `choice` the fabric of every `SandboxSettings::default()` from now on.
pub fn set_default_fabric(choice: FabricChoice) {
    let code = match choice {
        FabricChoice::Auto => 1,
        FabricChoice::InProcess => 2,
        FabricChoice::Worker => 3,
    };
    DEFAULT_FABRIC.store(code, AtomicOrdering::Relaxed);
}

fn default_fabric() -> FabricChoice {
    match DEFAULT_FABRIC.load(AtomicOrdering::Relaxed) {
        1 => FabricChoice::Auto,
        2 => FabricChoice::InProcess,
        3 => FabricChoice::Worker,
        // A malformed PRAXIS_FABRIC is not silently ignored: `praxis doctor` and the run's
        // report show the fabric actually used; here it falls back to auto.
        _ => std::env::var("PRAXIS_FABRIC")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_default(),
    }
}

/// How many worker processes `praxis serve` keeps started ahead of its runs.
pub const WARM_WORKERS: usize = 2;

/// For a server: keeps `size` worker processes of the default worker command started ahead
/// of the runs that will claim them ([`crate::worker::keep_warm`]), when a run with default
/// sandbox settings would use the worker fabric, and computes the host facts every worker is
/// handed ([`crate::worker::HostFacts`]) now rather than in the first run. Returns the
/// pooled command (None: runs start their workers on demand).
pub fn keep_default_workers_warm(size: usize) -> Option<WorkerCommand> {
    let settings = SandboxSettings::default();
    let worker_fabric = match settings.fabric {
        FabricChoice::InProcess => false,
        FabricChoice::Worker => true,
        FabricChoice::Auto => probe().sandbox_available(),
    };
    let command = settings
        .worker
        .or_else(WorkerCommand::discover)
        .filter(|_| worker_fabric)?;
    crate::worker::HostFacts::of_this_process();
    crate::worker::keep_warm(command.clone(), size);
    Some(command)
}

/// Before a run starts: a warning when commands would not be fully confined on this host
/// with `settings` (None when every layer is available).
pub fn host_warning(settings: &SandboxSettings) -> Option<String> {
    if !settings.confine {
        return Some("sandbox switched off (confine = false): commands run unconfined".into());
    }
    let host = probe();
    let mut missing = Vec::new();
    if host.landlock_abi.is_none() {
        missing.push("landlock (kernel has none)".to_string());
    }
    if !host.seccomp {
        missing.push("seccomp (kernel has none)".to_string());
    }
    if let Some(why) = &host.user_namespaces_why {
        missing.push(format!("user+network namespaces ({why})"));
    }
    if host.uid == 0
        && let Some(why) = &host.pids_cgroup_why
    {
        missing.push(format!("process limit for uid 0 ({why})"));
    }
    if let Some(why) = &host.memory_cgroup_why {
        missing.push(format!("memory bound per command ({why})"));
    }
    (!missing.is_empty()).then(|| {
        format!(
            "sandbox layers unavailable on this host: {}; the run records this in its \
             run_started environment",
            missing.join("; ")
        )
    })
}

impl Default for SandboxSettings {
    fn default() -> Self {
        SandboxSettings {
            fabric: default_fabric(),
            confine: true,
            allow_network: false,
            resources: ResourceLimits::default(),
            read_paths: Vec::new(),
            write_paths: Vec::new(),
            deny_paths: Vec::new(),
            git_writable: false,
            http: AddressGuard::default(),
            worker: None,
        }
    }
}

impl SandboxSettings {
    /// The sandbox policy for commands run in `workspace`.
    pub fn policy(&self, workspace: &Path) -> SandboxPolicy {
        let mut policy = SandboxPolicy::new(workspace);
        policy.allow_network = self.allow_network;
        policy.limits = self.resources.clone();
        policy.read_paths = self.read_paths.clone();
        policy.write_paths = self.write_paths.clone();
        policy.deny_paths.extend(self.deny_paths.iter().cloned());
        policy.git_writable = self.git_writable;
        policy
    }
}

/// Where side-effecting tools run.
#[derive(Clone, Debug)]
pub enum Fabric {
    InProcess { reason: String },
    Worker(Arc<WorkerClient>),
}

impl Fabric {
    pub fn name(&self) -> &'static str {
        match self {
            Fabric::InProcess { .. } => "in-process",
            Fabric::Worker(_) => "worker",
        }
    }
}

impl ExecContext {
    /// After the driver abandoned a call (cancel, the run's deadline): a worker is killed
    /// with whatever it still runs, since a call blocked in the kernel cannot answer a
    /// cancel, and this returns once the worker and every process of its commands are
    /// confirmed gone ([`WorkerClient::kill_and_confirm`], at most [`ABANDON_WAIT`]), so a
    /// sweep after it races nothing of the call. `Err` says what could not be confirmed.
    /// In-process calls were dropped already, which kills their commands' cgroups; a
    /// thread blocked in a read stays blocked (one reason the in-process fabric is for
    /// tests and development).
    pub async fn abandon_calls_in_flight(&self) -> Result<(), String> {
        match &self.fabric {
            Fabric::Worker(worker) => worker.kill_and_confirm(ABANDON_WAIT).await,
            Fabric::InProcess { .. } => Ok(()),
        }
    }
}

/// How long an abandoned call's worker and commands may take to be gone.
pub const ABANDON_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Builds a confined in-process sandbox per `limits`, or the reason there is none.
pub fn local_sandbox(workspace: &Workspace, limits: &ToolLimits) -> Result<Arc<Sandbox>, String> {
    sandbox_with_home_in(workspace, limits, None)
}

/// [`local_sandbox`], its private home made in `home_parent` (default: the temp dir).
fn sandbox_with_home_in(
    workspace: &Workspace,
    limits: &ToolLimits,
    home_parent: Option<&Path>,
) -> Result<Arc<Sandbox>, String> {
    if let Some(why) = sandbox_refusal(limits) {
        return Err(why);
    }
    let mut policy = limits.sandbox.policy(workspace.root());
    policy.home_parent = home_parent.map(Path::to_path_buf);
    Sandbox::new(policy)
        .map(Arc::new)
        .map_err(|e| format!("sandbox could not be prepared: {e}"))
}

/// Gives `ctx` its own sandbox (its private home in `home_parent`, default the temp dir),
/// or records why it has none.
pub(crate) fn confine_locally(ctx: &mut ExecContext, home_parent: Option<&Path>) {
    match sandbox_with_home_in(&ctx.workspace, &ctx.limits, home_parent) {
        Ok(sandbox) => ctx.sandbox = Some(sandbox),
        Err(why) => ctx.unconfined_because = Some(why),
    }
}

/// Why `limits` on this host rule out a sandbox (None: one can be built). Cheap: nothing is
/// built.
fn sandbox_refusal(limits: &ToolLimits) -> Option<String> {
    if !limits.sandbox.confine {
        return Some("confinement switched off for this run (confine = false)".into());
    }
    let host = probe();
    (!host.sandbox_available()).then(|| {
        format!(
            "this host lacks Landlock or seccomp (landlock ABI {:?}, seccomp {})",
            host.landlock_abi, host.seccomp
        )
    })
}

pub(crate) async fn for_run(
    workspace: Workspace,
    limits: ToolLimits,
    manifests: &[ToolManifest],
    capture: Option<CaptureLimits>,
) -> ExecContext {
    let settings = limits.sandbox.clone();
    let host = probe();
    let command = settings.worker.clone().or_else(WorkerCommand::discover);
    let mut ctx = ExecContext::new(workspace.clone());
    ctx.limits = limits.clone();
    let want_worker = match settings.fabric {
        FabricChoice::InProcess => Err("in-process fabric requested".to_string()),
        FabricChoice::Worker => Ok(()),
        FabricChoice::Auto if !host.sandbox_available() => Err(
            "auto: this host lacks Landlock or seccomp, so the worker would add no boundary"
                .to_string(),
        ),
        FabricChoice::Auto => Ok(()),
    };
    let worker = match (want_worker, command) {
        (Err(why), _) => Err(why),
        (Ok(()), None) => Err(
            "worker unavailable: no `praxis` executable found to run `praxis worker`".to_string(),
        ),
        (Ok(()), Some(command)) => {
            let mut client = WorkerClient::new(command, workspace.root().to_path_buf(), limits)
                .with_manifests(manifests.to_vec());
            if let Some(capture) = capture {
                client = client.capturing_at_start(capture);
            }
            match client.start().await {
                Ok(()) => Ok(Arc::new(client)),
                Err(e) => Err(format!("worker unavailable: {e}")),
            }
        }
    };
    match worker {
        Ok(client) => ctx.fabric = Fabric::Worker(client),
        Err(reason) => {
            ctx.fabric = Fabric::InProcess { reason };
            confine_locally(&mut ctx, None);
        }
    }
    ctx
}

/// The layers this context's own sandbox applies (a single inactive `sandbox` layer with
/// the reason when commands run unconfined).
pub(crate) fn local_layers(ctx: &ExecContext) -> Value {
    match &ctx.sandbox {
        Some(sandbox) => json!(sandbox.report().layers),
        None => {
            // Not built here just to learn why: that would start a spawner for nothing.
            let why = ctx
                .unconfined_because
                .clone()
                .or_else(|| sandbox_refusal(&ctx.limits))
                .unwrap_or_else(|| "not prepared for this context".into());
            json!([{
                "name": "sandbox",
                "active": false,
                "detail": format!("commands run unconfined: {why}"),
            }])
        }
    }
}

pub(crate) fn report(ctx: &ExecContext) -> Value {
    let settings = &ctx.limits.sandbox;
    let mut report = json!({
        "fabric": ctx.fabric.name(),
        "network": if settings.allow_network { "allowed" } else { "denied" },
    });
    match &ctx.fabric {
        Fabric::InProcess { reason } => {
            report["fabric_reason"] = json!(reason);
            report["layers"] = local_layers(ctx);
            if let Some(sandbox) = &ctx.sandbox
                && !sandbox.report().dropped_grants.is_empty()
            {
                report["dropped_grants"] = json!(sandbox.report().dropped_grants);
            }
        }
        Fabric::Worker(client) => {
            report["fabric_reason"] = json!(match settings.fabric {
                FabricChoice::Worker => "worker requested",
                _ => "auto: the host supports the sandbox",
            });
            report["worker"] = json!(client.describe());
            report["layers"] = client.layers();
        }
    }
    let unavailable: Vec<String> = report["layers"]
        .as_array()
        .map(|layers| {
            layers
                .iter()
                .filter(|l| l["active"] == json!(false))
                .map(|l| {
                    format!(
                        "{} ({})",
                        l["name"].as_str().unwrap_or("?"),
                        l["detail"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    report["unavailable"] = json!(unavailable);
    report
}

/// One line for the start of a run when the boundary is weaker than it could be: the
/// layers that are not active (None when all are).
pub fn warning(report: &Value) -> Option<String> {
    let missing: Vec<&str> = report["unavailable"]
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .filter(|l| !l.starts_with("network_namespace (not applied: network allowed"))
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "tool fabric {}; sandbox layers not active: {}",
            report["fabric"].as_str().unwrap_or("?"),
            missing.join("; ")
        )
    })
}
