//! How a server is configured, where each setting comes from, and the production-mode
//! checks that refuse unsafe defaults (all of them at once, each naming its setting).

use praxis_core::PriceTable;
use praxis_ledger::checkpoint::CheckpointKey;
use praxis_runtime::{DataHome, WritGrant};
use praxis_tools::Registry;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The default listen address: loopback only.
pub const DEFAULT_BIND: &str = "127.0.0.1:3001";

/// Supplies the writ a new run acts under: `Some(token)` is a writ the client sent (paired
/// with the trust anchor it must chain to); `None` asks for the development writ. An error
/// is shown to the client (422).
pub type WritSource = Arc<dyn Fn(Option<&str>) -> anyhow::Result<WritGrant> + Send + Sync>;

/// `PRAXIS_AUTH`: `on`, `off`, or (unset) `auto`: on as soon as one API token exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthSetting {
    Auto,
    On,
    Off,
}

impl AuthSetting {
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(AuthSetting::Auto),
            "on" | "true" | "1" => Ok(AuthSetting::On),
            "off" | "false" | "0" => Ok(AuthSetting::Off),
            other => Err(format!(
                "PRAXIS_AUTH={other:?}: expected `on`, `off` or `auto`"
            )),
        }
    }
}

/// `PRAXIS_WORKSPACE_ROOTS`: the directories under which clients' workspaces may lie, a
/// list separated by `:`. An entry `TENANT=PATH` is a root of that tenant only; a plain
/// `PATH` is a root of every tenant. Without the setting, a development server accepts
/// workspaces under the directory it was started in (production mode requires it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkspaceRoots {
    /// Roots of every tenant.
    pub shared: Vec<PathBuf>,
    /// Roots of one tenant each.
    pub tenants: std::collections::BTreeMap<String, Vec<PathBuf>>,
    /// Whether `PRAXIS_WORKSPACE_ROOTS` set them (rather than the development default).
    pub explicit: bool,
}

impl WorkspaceRoots {
    pub fn parse(value: &str) -> Result<Self, String> {
        let mut roots = WorkspaceRoots {
            explicit: true,
            ..WorkspaceRoots::default()
        };
        for entry in value.split(':').map(str::trim).filter(|e| !e.is_empty()) {
            let (tenant, path) = match entry.split_once('=') {
                Some((tenant, path)) => (Some(tenant.trim()), path.trim()),
                None => (None, entry),
            };
            if !Path::new(path).is_absolute() {
                return Err(format!(
                    "PRAXIS_WORKSPACE_ROOTS: `{entry}`: a root must be an absolute path"
                ));
            }
            match tenant {
                Some("") => {
                    return Err(format!(
                        "PRAXIS_WORKSPACE_ROOTS: `{entry}`: empty tenant before `=`"
                    ));
                }
                Some(tenant) => roots
                    .tenants
                    .entry(tenant.to_string())
                    .or_default()
                    .push(PathBuf::from(path)),
                None => roots.shared.push(PathBuf::from(path)),
            }
        }
        if roots.shared.is_empty() && roots.tenants.is_empty() {
            return Err("PRAXIS_WORKSPACE_ROOTS: no root given".into());
        }
        Ok(roots)
    }

    /// The development default: the directory the server was started in.
    pub fn current_dir() -> Self {
        WorkspaceRoots {
            shared: std::env::current_dir().into_iter().collect(),
            ..WorkspaceRoots::default()
        }
    }

    /// Whether the canonical `path` lies under (or is) one of `tenant`'s roots (roots
    /// are canonicalized too; a missing root admits nothing).
    pub fn admits(&self, tenant: &str, path: &Path) -> bool {
        self.shared
            .iter()
            .chain(self.tenants.get(tenant).into_iter().flatten())
            .filter_map(|root| std::fs::canonicalize(root).ok())
            .any(|root| path.starts_with(root))
    }

    /// `a, b, acme=c` for messages.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .shared
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        for (tenant, paths) in &self.tenants {
            parts.extend(paths.iter().map(|p| format!("{tenant}={}", p.display())));
        }
        parts.join(", ")
    }
}

pub struct ServerConfig {
    pub home: DataHome,
    /// Where clients' workspaces may lie (`PRAXIS_WORKSPACE_ROOTS`).
    pub workspace_roots: WorkspaceRoots,
    pub auth: AuthSetting,
    /// Browser origins allowed by CORS (`PRAXIS_ALLOWED_ORIGINS`, comma-separated); empty:
    /// no cross-origin access.
    pub allowed_origins: Vec<String>,
    /// Runs executing at once across tenants (`--max-runs`, `PRAXIS_MAX_RUNS`; default
    /// [`DEFAULT_MAX_RUNS`]); None (`0`): unbounded. More wait in the queue, tenants in turn.
    pub max_runs: Option<usize>,
    /// Runs executing at once per tenant (`--max-runs-per-tenant`); None: unbounded.
    pub max_runs_per_tenant: Option<usize>,
    /// Runs of one provider executing at once (`PRAXIS_MAX_RUNS_PER_PROVIDER`); runs
    /// waiting for it take turns by tenant. None: unbounded.
    pub max_runs_per_provider: Option<usize>,
    /// Runs that may wait for a slot (`--queue`); beyond it, creates get 429.
    pub queue_capacity: usize,
    /// `PRAXIS_MODE=production`.
    pub production: bool,
    /// Largest request body accepted (413 beyond).
    pub body_limit: usize,
    /// Interval of SSE heartbeat comments.
    pub heartbeat: Duration,
    /// Live events buffered per run for followers; a follower that falls further behind is
    /// dropped and resumes from the ledger with Last-Event-ID.
    pub follower_buffer: usize,
    /// How often a follower of a run driven by another process re-reads the ledger.
    pub poll_interval: Duration,
    /// How long shutdown waits for connections and cancelled runs.
    pub shutdown_grace: Duration,
    /// With a PostgreSQL ledger: how long a run's lease lasts without renewal
    /// (`PRAXIS_LEASE_SECONDS`). The driver renews it every third of that; another server
    /// takes a run over once its lease has expired.
    pub lease: Duration,
    /// A connection must send a whole request head within this time, including the wait
    /// for the next request on a kept-alive connection, and a request body must not pause
    /// longer (`PRAXIS_HEADER_TIMEOUT`, seconds); beyond it the connection is closed.
    pub header_read_timeout: Duration,
    /// Connections open at once that have not sent an authenticated request yet
    /// (`PRAXIS_MAX_UNAUTHENTICATED`); beyond it new connections get 503 and are closed.
    pub max_unauthenticated: usize,
    /// `Retry-After` seconds on 429.
    pub retry_after_secs: u64,
    /// Where writs come from; None: runs without a writ (only the run's own policy).
    pub writs: Option<WritSource>,
    /// Whether the writ trust anchor was configured explicitly (`PRAXIS_TRUST_ANCHOR`)
    /// rather than being the development key generated in `$PRAXIS_HOME/keys`.
    pub explicit_trust_anchor: bool,
    pub checkpoint_key: Option<Arc<CheckpointKey>>,
    pub prices: PriceTable,
    pub registry: Arc<Registry>,
    /// Where new runs execute (`PRAXIS_EXECUTOR`, `PRAXIS_KUBE_*`).
    pub executor: crate::executor::ExecutorSetting,
    /// A run's tool worker may serve the next run of the same workspace and settings once
    /// released (`PRAXIS_WORKER_REUSE`, default on; see `praxis_tools::worker`); off: a new
    /// worker process for every run.
    pub worker_reuse: bool,
}

/// An on/off setting's value (`on`, `off`, `true`, `false`, `1`, `0`, `yes`, `no`); the error
/// names the variable. Every on/off environment setting of the server is read with it.
pub(crate) fn switch(name: &str, value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" => Ok(false),
        _ => Err(format!(
            "{name}={value:?}: expected `on` or `off` (or true/false, 1/0, yes/no)"
        )),
    }
}

/// Runs executing at once unless `PRAXIS_MAX_RUNS` says otherwise.
pub const DEFAULT_MAX_RUNS: usize = 32;

impl ServerConfig {
    /// Defaults for a data directory: auth auto, no CORS, [`DEFAULT_MAX_RUNS`] runs at once,
    /// no writs.
    pub fn new(home: DataHome) -> Self {
        ServerConfig {
            home,
            workspace_roots: WorkspaceRoots::current_dir(),
            auth: AuthSetting::Auto,
            allowed_origins: Vec::new(),
            max_runs: Some(DEFAULT_MAX_RUNS),
            max_runs_per_tenant: None,
            max_runs_per_provider: None,
            queue_capacity: 64,
            production: false,
            body_limit: 1024 * 1024,
            heartbeat: Duration::from_secs(15),
            follower_buffer: 1024,
            poll_interval: Duration::from_millis(250),
            shutdown_grace: Duration::from_secs(10),
            lease: Duration::from_secs(15),
            header_read_timeout: Duration::from_secs(30),
            max_unauthenticated: 256,
            retry_after_secs: 5,
            writs: None,
            explicit_trust_anchor: false,
            checkpoint_key: None,
            prices: PriceTable::default(),
            registry: Arc::new(Registry::builtin()),
            executor: crate::executor::ExecutorSetting::Local,
            worker_reuse: true,
        }
    }

    /// The server `praxis serve` runs for `home`: the environment applied (see
    /// [`ServerConfig::apply_env`]), writs from the home's writ source (a client's writ
    /// checked against the configured trust anchor; without one, a development writ of the
    /// local key), the home's checkpoint key and price table.
    pub fn from_home(home: DataHome) -> Result<Self, crate::ServerError> {
        let mut config = ServerConfig::new(home.clone());
        config.apply_env().map_err(crate::ServerError::Config)?;
        let writ_home = home.clone();
        config.writs = Some(Arc::new(move |token: Option<&str>| {
            Ok(writ_home.writ_grant(token, &|k| std::env::var(k).ok())?)
        }));
        config.checkpoint_key = Some(Arc::new(home.checkpoint_key()?.0));
        config.prices = home.prices()?;
        config.registry = Arc::new(
            praxis_runtime::tool_set::registry_from_env(&home)
                .map_err(|e| crate::ServerError::Config(e.to_string()))?,
        );
        Ok(config)
    }

    /// Applies the environment: `PRAXIS_AUTH`, `PRAXIS_ALLOWED_ORIGINS`, `PRAXIS_MODE`,
    /// `PRAXIS_MAX_RUNS`, `PRAXIS_MAX_RUNS_PER_TENANT`, `PRAXIS_MAX_RUNS_PER_PROVIDER`, `PRAXIS_QUEUE`,
    /// `PRAXIS_HEADER_TIMEOUT`, `PRAXIS_MAX_UNAUTHENTICATED`, `PRAXIS_LEASE_SECONDS`,
    /// `PRAXIS_TRUST_ANCHOR` (presence only), `PRAXIS_WORKER_REUSE`. Command-line flags are
    /// applied after this.
    pub fn apply_env(&mut self) -> Result<(), String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        if let Some(v) = var("PRAXIS_AUTH") {
            self.auth = AuthSetting::parse(&v)?;
        }
        if let Some(v) = var("PRAXIS_ALLOWED_ORIGINS") {
            self.allowed_origins = parse_origins(&v)?;
        }
        if let Some(v) = var("PRAXIS_WORKER_REUSE") {
            self.worker_reuse = switch("PRAXIS_WORKER_REUSE", &v)?;
        }
        if let Some(v) = var("PRAXIS_MODE") {
            self.production = match v.trim().to_ascii_lowercase().as_str() {
                "production" | "prod" => true,
                "development" | "dev" => false,
                other => {
                    return Err(format!(
                        "PRAXIS_MODE={other:?}: expected `production` or `development`"
                    ));
                }
            };
        }
        let count = |name: &str, v: String| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| format!("{name}={v:?}: expected a whole number"))
        };
        if let Some(v) = var("PRAXIS_MAX_RUNS") {
            self.max_runs = Some(count("PRAXIS_MAX_RUNS", v)?).filter(|n| *n > 0);
        }
        if let Some(v) = var("PRAXIS_MAX_RUNS_PER_TENANT") {
            self.max_runs_per_tenant =
                Some(count("PRAXIS_MAX_RUNS_PER_TENANT", v)?).filter(|n| *n > 0);
        }
        if let Some(v) = var("PRAXIS_MAX_RUNS_PER_PROVIDER") {
            self.max_runs_per_provider =
                Some(count("PRAXIS_MAX_RUNS_PER_PROVIDER", v)?).filter(|n| *n > 0);
        }
        if let Some(v) = var("PRAXIS_QUEUE") {
            self.queue_capacity = count("PRAXIS_QUEUE", v)?;
        }
        if let Some(v) = var("PRAXIS_LEASE_SECONDS") {
            let secs = count("PRAXIS_LEASE_SECONDS", v)?;
            if !(1..=3600).contains(&secs) {
                return Err(format!(
                    "PRAXIS_LEASE_SECONDS={secs}: expected 1 to 3600 seconds"
                ));
            }
            self.lease = Duration::from_secs(secs as u64);
        }
        if let Some(v) = var("PRAXIS_HEADER_TIMEOUT") {
            let secs = count("PRAXIS_HEADER_TIMEOUT", v)?;
            if secs == 0 {
                return Err(
                    "PRAXIS_HEADER_TIMEOUT=0: a timeout of at least 1 second is needed".into(),
                );
            }
            self.header_read_timeout = Duration::from_secs(secs as u64);
        }
        if let Some(v) = var("PRAXIS_MAX_UNAUTHENTICATED") {
            let n = count("PRAXIS_MAX_UNAUTHENTICATED", v)?;
            if n == 0 {
                return Err("PRAXIS_MAX_UNAUTHENTICATED=0: no client could ever connect".into());
            }
            self.max_unauthenticated = n;
        }
        self.explicit_trust_anchor = var("PRAXIS_TRUST_ANCHOR").is_some();
        if let Some(v) = var("PRAXIS_WORKSPACE_ROOTS") {
            self.workspace_roots = WorkspaceRoots::parse(&v)?;
        }
        self.executor = crate::executor::ExecutorSetting::from_env(&|k| std::env::var(k).ok())?;
        Ok(())
    }

    /// Every reason production mode refuses this configuration (empty: none). `auth_on` is
    /// whether authentication is effectively on (tokens exist, or `PRAXIS_AUTH=on`).
    pub fn production_problems(&self, auth_on: bool, sandbox: &serde_json::Value) -> Vec<String> {
        let mut problems = Vec::new();
        if !auth_on {
            problems.push(match self.auth {
                AuthSetting::Off => "PRAXIS_AUTH=off: authentication is off; production requires it (unset PRAXIS_AUTH or set it to `on`, and create tokens with `praxis token create --tenant T`)".to_string(),
                _ => "PRAXIS_AUTH: authentication is off (no API token exists); set PRAXIS_AUTH=on and create tokens with `praxis token create --tenant T`".to_string(),
            });
        }
        if self.allowed_origins.is_empty() {
            problems.push(
                "PRAXIS_ALLOWED_ORIGINS: no explicit browser origins; list the origins allowed to call the API (comma-separated, e.g. https://console.example.com)".into(),
            );
        }
        problems.extend(sandbox_problems(sandbox));
        if !self.explicit_trust_anchor {
            problems.push(format!(
                "PRAXIS_TRUST_ANCHOR: unset, so writs would be checked against the development signing key generated in {}; set it to the public key (hex or file) of the issuer key you manage",
                self.home.root().join("keys").display()
            ));
        }
        let ledger = self.home.ledger_path();
        if let Some(tmp) = temporary_root(&ledger) {
            problems.push(format!(
                "PRAXIS_HOME: the ledger {} is on a temporary path ({}); point PRAXIS_HOME at durable storage",
                ledger.display(),
                tmp.display()
            ));
        }
        if !self.workspace_roots.explicit {
            problems.push(
                "PRAXIS_WORKSPACE_ROOTS: unset, so clients' workspaces would be accepted anywhere under the directory the server was started in; list the directories workspaces may lie under (`:`-separated, `TENANT=PATH` for one tenant's)".into(),
            );
        }
        if self.max_runs.is_none() {
            problems.push(
                "PRAXIS_MAX_RUNS (--max-runs) is 0: concurrency is unbounded; set a limit".into(),
            );
        }
        if self.max_runs_per_tenant.is_none() {
            problems.push(
                "PRAXIS_MAX_RUNS_PER_TENANT (--max-runs-per-tenant): per-tenant concurrency is unbounded; set a limit".into(),
            );
        }
        problems
    }
}

/// `a,b , c` -> origins, each checked to be `scheme://host[:port]` (what browsers send).
pub fn parse_origins(value: &str) -> Result<Vec<String>, String> {
    let mut origins = Vec::new();
    for origin in value.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let rest = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() && !host.contains('/') && origin != "*" => {
                origins.push(origin.to_string())
            }
            _ => {
                return Err(format!(
                    "PRAXIS_ALLOWED_ORIGINS: {origin:?} is not an origin (expected scheme://host[:port], no path, no wildcard)"
                ));
            }
        }
    }
    Ok(origins)
}

/// Parses `--bind`/`PRAXIS_BIND`.
pub fn parse_bind(value: &str) -> Result<SocketAddr, String> {
    value
        .trim()
        .parse()
        .map_err(|e| format!("bind address {value:?}: {e} (expected e.g. 127.0.0.1:3001)"))
}

/// What production refuses about the tool fabric, from
/// `praxis_runtime::doctor::sandbox_features()`.
fn sandbox_problems(features: &serde_json::Value) -> Vec<String> {
    let mut problems = Vec::new();
    let in_use = match &features["in_use"] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "none".into(),
        other => other.to_string(),
    };
    // `default_fabric` says it outright; older reports only had the `in_use` text.
    let in_process = match features["default_fabric"].as_str() {
        Some(fabric) => fabric != "worker",
        None => {
            let lowered = in_use.to_ascii_lowercase();
            lowered.starts_with("none") || lowered.contains("in-process") || in_use.is_empty()
        }
    };
    if in_process {
        problems.push(format!(
            "tool fabric: tools run in-process without an OS sandbox (sandbox in use: {in_use:?}); production needs the sandboxed worker"
        ));
    }
    let missing: Vec<&str> = [
        ("landlock", features["landlock_abi"].is_null()),
        ("user namespaces", features["user_namespaces"] != true),
        ("seccomp", features["seccomp"] != true),
    ]
    .into_iter()
    .filter(|(_, missing)| *missing)
    .map(|(name, _)| name)
    .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "sandbox layers: this host does not offer {} (see `praxis doctor`)",
            missing.join(", ")
        ));
    }
    problems
}

/// The temporary directory `path` lies under, if any (`/tmp`, `/var/tmp`, `$TMPDIR`).
fn temporary_root(path: &Path) -> Option<PathBuf> {
    let mut roots = vec![PathBuf::from("/tmp"), PathBuf::from("/var/tmp")];
    roots.push(std::env::temp_dir());
    if let Some(dir) = std::env::var_os("TMPDIR").filter(|v| !v.is_empty()) {
        roots.push(PathBuf::from(dir));
    }
    // The ledger may not exist yet: resolve the nearest existing ancestor.
    let resolved = path
        .ancestors()
        .find_map(|a| std::fs::canonicalize(a).ok().map(|c| (a, c)))
        .map(|(a, c)| c.join(path.strip_prefix(a).unwrap_or(Path::new(""))))
        .unwrap_or_else(|| path.to_path_buf());
    roots.into_iter().find(|root| {
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.clone());
        resolved.starts_with(&root) || path.starts_with(&root)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_on_off_setting_takes_the_usual_words_and_names_itself_otherwise() {
        for on in ["on", "ON", " true", "1", "yes"] {
            assert_eq!(switch("PRAXIS_WORKER_REUSE", on), Ok(true), "{on}");
        }
        for off in ["off", "False", "0", "no "] {
            assert_eq!(switch("PRAXIS_WORKER_REUSE", off), Ok(false), "{off}");
        }
        let err = switch("PRAXIS_WORKER_REUSE", "sometimes").unwrap_err();
        assert!(
            err.starts_with("PRAXIS_WORKER_REUSE=\"sometimes\""),
            "{err}"
        );
    }
    use serde_json::json;

    #[test]
    fn origins_are_checked() {
        assert_eq!(
            parse_origins(" https://a.example , http://localhost:5173").unwrap(),
            vec!["https://a.example", "http://localhost:5173"]
        );
        assert!(parse_origins("*").is_err());
        assert!(parse_origins("https://a.example/path").is_err());
        assert!(parse_origins("a.example").is_err());
        assert!(parse_origins("").unwrap().is_empty());
    }

    #[test]
    fn production_names_every_problem_at_once() {
        let mut config = ServerConfig::new(DataHome::at("/tmp/praxis-prod-check"));
        config.max_runs = None;
        let sandbox = json!({"in_use": "none: in-process", "landlock_abi": null, "user_namespaces": false, "seccomp": true});
        let problems = config.production_problems(false, &sandbox).join("\n");
        for setting in [
            "PRAXIS_AUTH",
            "PRAXIS_ALLOWED_ORIGINS",
            "tool fabric",
            "landlock, user namespaces",
            "PRAXIS_TRUST_ANCHOR",
            "PRAXIS_HOME",
            "PRAXIS_MAX_RUNS ",
            "PRAXIS_MAX_RUNS_PER_TENANT",
            "PRAXIS_WORKSPACE_ROOTS",
        ] {
            assert!(
                problems.contains(setting),
                "{setting} missing in:\n{problems}"
            );
        }
        config.allowed_origins = vec!["https://a.example".into()];
        config.max_runs = Some(4);
        config.max_runs_per_tenant = Some(2);
        config.explicit_trust_anchor = true;
        config.workspace_roots = WorkspaceRoots::parse("/srv/ws:acme=/srv/acme").unwrap();
        let sandbox = json!({"in_use": "worker: …", "default_fabric": "worker", "landlock_abi": 7, "user_namespaces": true, "seccomp": true});
        let left = config.production_problems(true, &sandbox);
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(left[0].starts_with("PRAXIS_HOME"));
    }

    #[test]
    fn workspace_roots_parse() {
        let roots = WorkspaceRoots::parse("/srv/a: acme=/srv/acme :/srv/b").unwrap();
        assert_eq!(
            roots.shared,
            vec![PathBuf::from("/srv/a"), PathBuf::from("/srv/b")]
        );
        assert_eq!(roots.tenants["acme"], vec![PathBuf::from("/srv/acme")]);
        assert!(roots.explicit);
        assert!(WorkspaceRoots::parse("relative").is_err());
        assert!(WorkspaceRoots::parse("=/x").is_err());
        assert!(WorkspaceRoots::parse(" : ").is_err());
    }

    #[test]
    fn auth_setting_parses() {
        assert_eq!(AuthSetting::parse("ON").unwrap(), AuthSetting::On);
        assert_eq!(AuthSetting::parse("off").unwrap(), AuthSetting::Off);
        assert_eq!(AuthSetting::parse("").unwrap(), AuthSetting::Auto);
        assert!(AuthSetting::parse("maybe").is_err());
    }
}
