//! Where a new run executes: in this process (`PRAXIS_EXECUTOR=local`, the default), or as
//! a Kubernetes Job running `praxis job` against the shared ledger
//! (`PRAXIS_EXECUTOR=kubernetes`, cargo feature `kubernetes`).
//!
//! With the Kubernetes executor the server still admits the run (limits, queue, tenant,
//! writ, the one run-request resolver), but instead of driving it, it creates the run's
//! writ Secret and Job (`praxis_kube::job`), relays the entries the pod records in the
//! shared ledger to the run's live followers, feeds the Job's status into the run's
//! (`praxis_kube::status`), and on cancel deletes the Job and the Secret. Settings are
//! parsed here, whatever the build; the executor itself is in `kube.rs`.

#[cfg(feature = "kubernetes")]
pub(crate) mod kube;

use crate::runs::Hub;
use praxis_core::RunStatus;
use praxis_runtime::RunOptions;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

/// `PRAXIS_EXECUTOR`.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum ExecutorSetting {
    /// Runs are driven in this process.
    #[default]
    Local,
    /// Each new run is a Kubernetes Job.
    Kubernetes(Box<KubeSettings>),
}

/// The seccomp profile of run pods (`PRAXIS_KUBE_SECCOMP`).
#[derive(Clone, Debug, PartialEq)]
pub enum SeccompSetting {
    RuntimeDefault,
    /// `localhost/PATH`: a profile file on the node, relative to the kubelet's directory.
    Localhost(String),
}

/// The Kubernetes executor's settings, each from its `PRAXIS_KUBE_*` variable.
#[derive(Clone, Debug, PartialEq)]
pub struct KubeSettings {
    /// `PRAXIS_KUBE_IMAGE` (required): the image whose entrypoint is `praxis`.
    pub image: String,
    /// `PRAXIS_KUBE_NAMESPACE`; unset: the namespace of the client configuration (in a
    /// pod, its own).
    pub namespace: Option<String>,
    /// `PRAXIS_KUBE_CONFIG`: a kubeconfig file; unset: the in-cluster service account,
    /// else `KUBECONFIG` / `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// `PRAXIS_KUBE_LEDGER_SECRET` (`NAME:KEY`, default `praxis-ledger:url`): where the pod
    /// reads `PRAXIS_LEDGER_URL`.
    pub ledger_secret: (String, String),
    /// `PRAXIS_KUBE_MODEL_SECRET` (default `praxis-model-keys`; empty: none): a Secret
    /// whose keys become the pod's variables (`OPENAI_API_KEY`, ...).
    pub model_secret: Option<String>,
    /// `PRAXIS_KUBE_SERVICE_ACCOUNT` (default `praxis-job`).
    pub service_account: String,
    pub seccomp: SeccompSetting,
    /// `PRAXIS_KUBE_USER_NAMESPACE=true`: `hostUsers: false`.
    pub user_namespace: bool,
    /// `PRAXIS_KUBE_CPU_REQUEST`, `_CPU_LIMIT`, `_MEMORY_REQUEST`, `_MEMORY_LIMIT`.
    pub cpu_request: String,
    pub cpu_limit: String,
    pub memory_request: String,
    pub memory_limit: String,
    /// `PRAXIS_KUBE_DEADLINE_SECONDS` (default 3600): `activeDeadlineSeconds` of a run
    /// without its own `max_seconds`.
    pub deadline_seconds: i64,
}

impl KubeSettings {
    /// Defaults around `image`.
    pub fn new(image: impl Into<String>) -> Self {
        KubeSettings {
            image: image.into(),
            namespace: None,
            kubeconfig: None,
            ledger_secret: ("praxis-ledger".into(), "url".into()),
            model_secret: Some("praxis-model-keys".into()),
            service_account: "praxis-job".into(),
            seccomp: SeccompSetting::RuntimeDefault,
            user_namespace: false,
            cpu_request: "250m".into(),
            cpu_limit: "2".into(),
            memory_request: "512Mi".into(),
            memory_limit: "4Gi".into(),
            deadline_seconds: 3600,
        }
    }
}

/// A Kubernetes quantity as the API accepts it (`500m`, `2`, `1.5`, `512Mi`, `4G`).
fn quantity(name: &str, value: &str) -> Result<String, String> {
    let v = value.trim();
    let digits = v.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &v[digits.len()..];
    let number_ok = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.matches('.').count() <= 1
        && !digits.starts_with('.')
        && !digits.ends_with('.');
    let suffixes = ["", "m", "k", "M", "G", "T", "Ki", "Mi", "Gi", "Ti"];
    if number_ok && suffixes.contains(&suffix) {
        Ok(v.to_string())
    } else {
        Err(format!(
            "{name}={value:?}: expected a Kubernetes quantity (e.g. 500m, 2, 512Mi, 4Gi)"
        ))
    }
}

impl ExecutorSetting {
    /// Reads `PRAXIS_EXECUTOR` and, for `kubernetes`, the `PRAXIS_KUBE_*` settings; every
    /// error names its variable.
    pub fn from_env(raw: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let var = |name: &str| raw(name).filter(|v| !v.trim().is_empty());
        match var("PRAXIS_EXECUTOR")
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("local") => return Ok(ExecutorSetting::Local),
            Some("kubernetes") | Some("k8s") => {}
            Some(other) => {
                return Err(format!(
                    "PRAXIS_EXECUTOR={other:?}: expected `local` or `kubernetes`"
                ));
            }
        }
        let image = var("PRAXIS_KUBE_IMAGE").ok_or(
            "PRAXIS_KUBE_IMAGE: unset; PRAXIS_EXECUTOR=kubernetes needs the image run Jobs use (e.g. registry.example/praxis:0.1.0)",
        )?;
        let mut s = KubeSettings::new(image.trim());
        s.namespace = var("PRAXIS_KUBE_NAMESPACE").map(|v| v.trim().to_string());
        s.kubeconfig = var("PRAXIS_KUBE_CONFIG").map(PathBuf::from);
        if let Some(v) = var("PRAXIS_KUBE_LEDGER_SECRET") {
            s.ledger_secret = match v.trim().split_once(':') {
                Some((name, key)) if !name.is_empty() && !key.is_empty() => {
                    (name.to_string(), key.to_string())
                }
                _ => {
                    return Err(format!(
                        "PRAXIS_KUBE_LEDGER_SECRET={v:?}: expected NAME:KEY (e.g. praxis-ledger:url)"
                    ));
                }
            };
        }
        if let Some(v) = raw("PRAXIS_KUBE_MODEL_SECRET") {
            // Set to empty: no model Secret.
            s.model_secret = Some(v.trim().to_string()).filter(|v| !v.is_empty());
        }
        if let Some(v) = var("PRAXIS_KUBE_SERVICE_ACCOUNT") {
            s.service_account = v.trim().to_string();
        }
        if let Some(v) = var("PRAXIS_KUBE_SECCOMP") {
            let v = v.trim();
            s.seccomp = match v.strip_prefix("localhost/") {
                Some(path) if !path.is_empty() && !path.contains("..") => {
                    SeccompSetting::Localhost(path.to_string())
                }
                _ if v.eq_ignore_ascii_case("runtime-default") => SeccompSetting::RuntimeDefault,
                _ => {
                    return Err(format!(
                        "PRAXIS_KUBE_SECCOMP={v:?}: expected `runtime-default` or `localhost/PROFILE` (e.g. localhost/praxis.json)"
                    ));
                }
            };
        }
        if let Some(v) = var("PRAXIS_KUBE_USER_NAMESPACE") {
            s.user_namespace = crate::config::switch("PRAXIS_KUBE_USER_NAMESPACE", &v)?;
        }
        for (name, field) in [
            ("PRAXIS_KUBE_CPU_REQUEST", &mut s.cpu_request),
            ("PRAXIS_KUBE_CPU_LIMIT", &mut s.cpu_limit),
            ("PRAXIS_KUBE_MEMORY_REQUEST", &mut s.memory_request),
            ("PRAXIS_KUBE_MEMORY_LIMIT", &mut s.memory_limit),
        ] {
            if let Some(v) = var(name) {
                *field = quantity(name, &v)?;
            }
        }
        if let Some(v) = var("PRAXIS_KUBE_DEADLINE_SECONDS") {
            s.deadline_seconds = v
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=7 * 24 * 3600).contains(n))
                .ok_or_else(|| {
                    format!("PRAXIS_KUBE_DEADLINE_SECONDS={v:?}: expected 1 to 604800 seconds")
                })?;
        }
        Ok(ExecutorSetting::Kubernetes(Box::new(s)))
    }
}

/// How a run placed elsewhere ended, when the ledger does not say it: the status and why.
pub(crate) type RemoteEnd = Option<(RunStatus, String)>;

/// Runs a new run somewhere else than this process.
pub(crate) trait Executor: Send + Sync {
    /// Places the run, follows it until it ends (or `options.cancel` fires), relaying what
    /// it records to `hub`. Returns how it ended when the ledger has no `run_finished`.
    fn drive(
        self: Arc<Self>,
        run_id: String,
        options: RunOptions,
        hub: Arc<Hub>,
    ) -> Pin<Box<dyn Future<Output = RemoteEnd> + Send>>;
}

/// Why the server refuses to start with `setting` on a ledger that is (`shared`) or is not
/// the shared PostgreSQL one.
pub(crate) fn refusal(setting: &ExecutorSetting, shared: bool) -> Option<String> {
    match setting {
        ExecutorSetting::Local => None,
        ExecutorSetting::Kubernetes(_) if !shared => Some(
            "PRAXIS_EXECUTOR=kubernetes needs the shared PostgreSQL ledger: set PRAXIS_LEDGER_URL=postgres://… (the Job's pod records the run there, and every server reads it)".into(),
        ),
        ExecutorSetting::Kubernetes(_) if !cfg!(feature = "kubernetes") => Some(
            "PRAXIS_EXECUTOR=kubernetes: this build of praxis has no Kubernetes executor (build it with `--features kubernetes`, as the release image is)".into(),
        ),
        ExecutorSetting::Kubernetes(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<ExecutorSetting, String> {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        ExecutorSetting::from_env(&|k| map.get(k).map(|v| v.to_string()))
    }

    #[test]
    fn the_executor_settings_parse_and_every_error_names_its_variable() {
        assert_eq!(parse(&[]).unwrap(), ExecutorSetting::Local);
        assert_eq!(
            parse(&[("PRAXIS_EXECUTOR", "local")]).unwrap(),
            ExecutorSetting::Local
        );
        let e = parse(&[("PRAXIS_EXECUTOR", "kubernetes")]).unwrap_err();
        assert!(e.starts_with("PRAXIS_KUBE_IMAGE"), "{e}");
        let ExecutorSetting::Kubernetes(s) = parse(&[
            ("PRAXIS_EXECUTOR", "Kubernetes"),
            ("PRAXIS_KUBE_IMAGE", "registry.example/praxis:1"),
            ("PRAXIS_KUBE_NAMESPACE", "agents"),
            ("PRAXIS_KUBE_LEDGER_SECRET", "db:dsn"),
            ("PRAXIS_KUBE_SECCOMP", "localhost/praxis.json"),
            ("PRAXIS_KUBE_USER_NAMESPACE", "true"),
            ("PRAXIS_KUBE_MEMORY_LIMIT", "8Gi"),
            ("PRAXIS_KUBE_CPU_REQUEST", "1.5"),
            ("PRAXIS_KUBE_DEADLINE_SECONDS", "600"),
        ])
        .unwrap() else {
            panic!("kubernetes")
        };
        assert_eq!(s.image, "registry.example/praxis:1");
        assert_eq!(s.namespace.as_deref(), Some("agents"));
        assert_eq!(s.ledger_secret, ("db".into(), "dsn".into()));
        assert_eq!(s.seccomp, SeccompSetting::Localhost("praxis.json".into()));
        assert!(s.user_namespace);
        assert_eq!(s.memory_limit, "8Gi");
        assert_eq!(s.cpu_request, "1.5");
        assert_eq!(s.deadline_seconds, 600);
        let image = ("PRAXIS_KUBE_IMAGE", "i");
        for (var, bad) in [
            ("PRAXIS_EXECUTOR", "docker"),
            ("PRAXIS_KUBE_LEDGER_SECRET", "nokey"),
            ("PRAXIS_KUBE_SECCOMP", "unconfined"),
            ("PRAXIS_KUBE_SECCOMP", "localhost/../../etc/x"),
            ("PRAXIS_KUBE_USER_NAMESPACE", "maybe"),
            ("PRAXIS_KUBE_MEMORY_LIMIT", "4 GiB"),
            ("PRAXIS_KUBE_CPU_LIMIT", "-1"),
            ("PRAXIS_KUBE_CPU_LIMIT", ".5"),
            ("PRAXIS_KUBE_DEADLINE_SECONDS", "0"),
            ("PRAXIS_KUBE_DEADLINE_SECONDS", "soon"),
        ] {
            let mut vars = vec![("PRAXIS_EXECUTOR", "kubernetes"), image];
            vars.retain(|(k, _)| *k != var);
            vars.push((var, bad));
            let e = parse(&vars).expect_err(bad);
            assert!(e.starts_with(var), "{var}={bad}: {e}");
        }
    }

    #[test]
    fn kubernetes_is_refused_without_the_shared_ledger() {
        let kube = ExecutorSetting::Kubernetes(Box::new(KubeSettings::new("i")));
        assert!(refusal(&ExecutorSetting::Local, false).is_none());
        let why = refusal(&kube, false).unwrap();
        assert!(why.contains("PRAXIS_LEDGER_URL"), "{why}");
        assert_eq!(refusal(&kube, true).is_none(), cfg!(feature = "kubernetes"));
    }
}
