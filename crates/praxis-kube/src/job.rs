//! The Job (and its writ Secret) a run becomes.

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvFromSource, EnvVar, EnvVarSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile, Secret,
    SecretEnvSource, SecretKeySelector, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

/// The label every object of a run carries, with the run id as value.
pub const RUN_LABEL: &str = "praxis.dev/run-id";
/// Where the writ Secret is mounted, and the file `PRAXIS_WRIT` names.
pub const WRIT_DIR: &str = "/var/run/praxis/writ";
pub const WRIT_KEY: &str = "writ";
/// The pod's workspace and data dir (emptyDir volumes).
pub const WORKSPACE_DIR: &str = "/workspace";
pub const HOME_DIR: &str = "/var/lib/praxis";
/// The image's non-root user.
pub const RUN_AS_USER: i64 = 10001;

/// A Secret key a variable is read from.
#[derive(Clone, Debug, PartialEq)]
pub struct SecretRef {
    pub name: String,
    pub key: String,
}

/// CPU and memory requests and limits (Kubernetes quantities: `500m`, `2Gi`).
#[derive(Clone, Debug, PartialEq)]
pub struct Resources {
    pub cpu_request: String,
    pub cpu_limit: String,
    pub memory_request: String,
    pub memory_limit: String,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpu_request: "250m".into(),
            cpu_limit: "2".into(),
            memory_request: "512Mi".into(),
            memory_limit: "4Gi".into(),
        }
    }
}

/// The seccomp profile of the job's container. The sandbox inside installs its own
/// filters on top of whatever this allows; it needs `unshare`/`clone` with namespace flags
/// and the Landlock calls, which `RuntimeDefault` profiles of some runtimes refuse.
#[derive(Clone, Debug, PartialEq)]
pub enum Seccomp {
    RuntimeDefault,
    /// A profile file on the node, relative to the kubelet's seccomp directory
    /// (`deploy/kubernetes/seccomp/praxis.json` is one).
    Localhost(String),
}

/// What one run's Job needs.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRequest {
    pub run_id: String,
    pub namespace: String,
    pub image: String,
    /// The thoughtmesh settings, as the JSON text `praxis job` reads.
    pub model_config: String,
    pub objective: String,
    pub key_results: Option<String>,
    pub tools: Option<String>,
    /// The run's time limit: the Job's `activeDeadlineSeconds`.
    pub deadline_seconds: i64,
    pub resources: Resources,
    /// `PRAXIS_LEDGER_URL` (the shared ledger) comes from this Secret key.
    pub ledger_url: SecretRef,
    /// API keys (`OPENAI_API_KEY`, ...) as variables of this Secret, when the model needs one.
    pub model_credentials: Option<String>,
    pub service_account: String,
    /// `PRAXIS_TRUST_ANCHOR`: the public key (hex) the writ chains to. Public, so a plain
    /// variable; None: the pod's own configuration (e.g. an `envFrom` in a mutated image).
    pub trust_anchor: Option<String>,
    pub seccomp: Seccomp,
    /// `hostUsers: false`: the pod in its own user namespace (needs the cluster's support).
    pub pod_user_namespace: bool,
}

/// Object names derive from the run id (lower-case ULIDs fit DNS-1123 labels).
pub fn job_name(run_id: &str) -> String {
    format!("praxis-run-{run_id}")
}

pub fn writ_secret_name(run_id: &str) -> String {
    format!("praxis-writ-{run_id}")
}

fn labels(run_id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "praxis".to_string()),
        ("app.kubernetes.io/component".to_string(), "run".to_string()),
        (RUN_LABEL.to_string(), run_id.to_string()),
    ])
}

fn meta(name: String, request: &JobRequest) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(request.namespace.clone()),
        labels: Some(labels(&request.run_id)),
        ..ObjectMeta::default()
    }
}

/// The Secret holding the run's writ token (mounted read-only into the pod, never an
/// environment variable, so it is not in the pod spec or `/proc/*/environ`).
pub fn writ_secret(request: &JobRequest, token: &str) -> Secret {
    Secret {
        metadata: meta(writ_secret_name(&request.run_id), request),
        type_: Some("Opaque".into()),
        immutable: Some(true),
        string_data: Some(BTreeMap::from([(WRIT_KEY.to_string(), token.to_string())])),
        ..Secret::default()
    }
}

fn var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

fn quantities(cpu: &str, memory: &str) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_string(), Quantity(cpu.to_string())),
        ("memory".to_string(), Quantity(memory.to_string())),
    ])
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

/// The Job running `praxis job` for `request`. It is not retried (`backoffLimit: 0`): a
/// second pod would start the objective again, so taking over an interrupted run is the
/// server's resume, which never re-runs a tool call silently.
pub fn job(request: &JobRequest) -> Job {
    let mut env = vec![
        var("THOUGHTMESH_MODEL_CONFIG", &request.model_config),
        var("THOUGHTMESH_OBJECTIVE", &request.objective),
        var("PRAXIS_WRIT", &format!("{WRIT_DIR}/{WRIT_KEY}")),
        var("PRAXIS_WORKSPACE", WORKSPACE_DIR),
        var("PRAXIS_HOME", HOME_DIR),
        // `praxis job` records the run the server created under this id.
        var("PRAXIS_RUN_ID", &request.run_id),
        EnvVar {
            name: "PRAXIS_LEDGER_URL".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: request.ledger_url.name.clone(),
                    key: request.ledger_url.key.clone(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        },
    ];
    if let Some(key_results) = &request.key_results {
        env.push(var("THOUGHTMESH_KEY_RESULTS", key_results));
    }
    if let Some(tools) = &request.tools {
        env.push(var("THOUGHTMESH_TOOLS", tools));
    }
    if let Some(anchor) = &request.trust_anchor {
        env.push(var("PRAXIS_TRUST_ANCHOR", anchor));
    }
    let seccomp = match &request.seccomp {
        Seccomp::RuntimeDefault => SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        },
        Seccomp::Localhost(path) => SeccompProfile {
            type_: "Localhost".into(),
            localhost_profile: Some(path.clone()),
        },
    };
    let container = Container {
        name: "praxis".into(),
        image: Some(request.image.clone()),
        args: Some(vec!["job".into()]),
        env: Some(env),
        env_from: request.model_credentials.as_ref().map(|name| {
            vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: name.clone(),
                    optional: Some(false),
                }),
                ..EnvFromSource::default()
            }]
        }),
        resources: Some(ResourceRequirements {
            requests: Some(quantities(
                &request.resources.cpu_request,
                &request.resources.memory_request,
            )),
            limits: Some(quantities(
                &request.resources.cpu_limit,
                &request.resources.memory_limit,
            )),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            mount("writ", WRIT_DIR, true),
            mount("workspace", WORKSPACE_DIR, false),
            mount("home", HOME_DIR, false),
            mount("tmp", "/tmp", false),
        ]),
        ..Container::default()
    };
    let pod = PodSpec {
        restart_policy: Some("Never".into()),
        service_account_name: Some(request.service_account.clone()),
        // The job talks to the ledger, not to the Kubernetes API.
        automount_service_account_token: Some(false),
        // SIGTERM at the deadline; `praxis job` records and exits within 5 s.
        termination_grace_period_seconds: Some(10),
        host_users: request.pod_user_namespace.then_some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS_USER),
            run_as_group: Some(RUN_AS_USER),
            fs_group: Some(RUN_AS_USER),
            seccomp_profile: Some(seccomp),
            ..PodSecurityContext::default()
        }),
        containers: vec![container],
        volumes: Some(vec![
            Volume {
                name: "writ".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(writ_secret_name(&request.run_id)),
                    default_mode: Some(0o400),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            },
            empty_dir("workspace"),
            empty_dir("home"),
            empty_dir("tmp"),
        ]),
        ..PodSpec::default()
    };
    Job {
        metadata: meta(job_name(&request.run_id), request),
        spec: Some(JobSpec {
            active_deadline_seconds: Some(request.deadline_seconds),
            backoff_limit: Some(0),
            ttl_seconds_after_finished: Some(3600),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&request.run_id)),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn request() -> JobRequest {
        JobRequest {
            run_id: "01jd8k2q9x".into(),
            namespace: "agents".into(),
            image: "registry.example/praxis:0.1.0".into(),
            model_config: r#"{"provider":"openai","name":"gpt-4.1-mini"}"#.into(),
            objective: "Fix the failing test".into(),
            key_results: Some(r#"[{"text":"tests pass","check":"cargo test"}]"#.into()),
            tools: None,
            deadline_seconds: 900,
            resources: Resources::default(),
            ledger_url: SecretRef {
                name: "praxis-ledger".into(),
                key: "url".into(),
            },
            model_credentials: Some("praxis-model-keys".into()),
            service_account: "praxis-job".into(),
            trust_anchor: Some("ab".repeat(32)),
            seccomp: Seccomp::Localhost("praxis.json".into()),
            pod_user_namespace: true,
        }
    }

    fn env(job: &Job) -> BTreeMap<String, EnvVar> {
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        pod.containers[0]
            .env
            .iter()
            .flatten()
            .map(|v| (v.name.clone(), v.clone()))
            .collect()
    }

    #[test]
    fn the_job_runs_praxis_job_with_the_deadline_limits_and_the_writ_from_its_secret() {
        let request = request();
        let job = job(&request);
        // Round trip through the API's JSON: the object is a valid `batch/v1` Job.
        let value = serde_json::to_value(&job).unwrap();
        assert_eq!(value["apiVersion"], "batch/v1");
        assert_eq!(value["kind"], "Job");
        let back: Job = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(back, job);

        let spec = job.spec.as_ref().unwrap();
        assert_eq!(spec.active_deadline_seconds, Some(900));
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(job.metadata.name.as_deref(), Some("praxis-run-01jd8k2q9x"));
        assert_eq!(job.metadata.namespace.as_deref(), Some("agents"));
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.host_users, Some(false));
        let security = pod.security_context.as_ref().unwrap();
        assert_eq!(security.run_as_non_root, Some(true));
        assert_eq!(
            security
                .seccomp_profile
                .as_ref()
                .unwrap()
                .localhost_profile
                .as_deref(),
            Some("praxis.json")
        );
        let container = &pod.containers[0];
        assert_eq!(container.args, Some(vec!["job".to_string()]));
        let limits = container
            .resources
            .as_ref()
            .unwrap()
            .limits
            .as_ref()
            .unwrap();
        assert_eq!(limits["memory"], Quantity("4Gi".into()));
        assert_eq!(limits["cpu"], Quantity("2".into()));

        let env = env(&job);
        assert_eq!(
            env["THOUGHTMESH_OBJECTIVE"].value.as_deref(),
            Some("Fix the failing test")
        );
        assert!(env.contains_key("THOUGHTMESH_KEY_RESULTS"));
        assert!(!env.contains_key("THOUGHTMESH_TOOLS"));
        assert_eq!(env["PRAXIS_RUN_ID"].value.as_deref(), Some("01jd8k2q9x"));
        assert_eq!(
            env["PRAXIS_TRUST_ANCHOR"].value.as_deref(),
            Some("ab".repeat(32).as_str())
        );
        assert_eq!(
            env["PRAXIS_WRIT"].value.as_deref(),
            Some("/var/run/praxis/writ/writ")
        );
        let ledger = env["PRAXIS_LEDGER_URL"].value_from.as_ref().unwrap();
        assert_eq!(
            ledger.secret_key_ref.as_ref().unwrap().name,
            "praxis-ledger"
        );
        // The writ is a mounted Secret file, never a variable's value.
        assert!(env.values().all(|v| v.value.as_deref() != Some("TOKEN")));
        let writ = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "writ")
            .unwrap();
        assert_eq!(
            writ.secret.as_ref().unwrap().secret_name.as_deref(),
            Some("praxis-writ-01jd8k2q9x")
        );
        let mounts = container.volume_mounts.as_ref().unwrap();
        let writ_mount = mounts.iter().find(|m| m.name == "writ").unwrap();
        assert_eq!(writ_mount.read_only, Some(true));
    }

    #[test]
    fn the_writ_secret_holds_the_token_under_the_mounted_key() {
        let request = request();
        let secret = writ_secret(&request, "TOKEN");
        let value = serde_json::to_value(&secret).unwrap();
        assert_eq!(value["apiVersion"], "v1");
        assert_eq!(value["kind"], "Secret");
        assert_eq!(value["stringData"][WRIT_KEY], "TOKEN");
        assert_eq!(value["metadata"]["labels"][RUN_LABEL], "01jd8k2q9x");
        let job = job(&request);
        assert!(!serde_json::to_string(&job).unwrap().contains("TOKEN"));
    }

    #[test]
    fn runtime_default_seccomp_and_host_users_are_left_to_the_cluster() {
        let request = JobRequest {
            seccomp: Seccomp::RuntimeDefault,
            pod_user_namespace: false,
            key_results: None,
            model_credentials: None,
            ..request()
        };
        let job = job(&request);
        let pod = job.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.host_users, None);
        assert_eq!(
            pod.security_context.unwrap().seccomp_profile.unwrap().type_,
            "RuntimeDefault"
        );
        assert_eq!(pod.containers[0].env_from, None);
    }

    /// `deploy/kubernetes/job-template.json` and `writ-secret-template.json` are this
    /// builder's output for an example run (validated by `.ci/kube` with
    /// kubernetes-validate); `PRAXIS_UPDATE_KUBE=1` rewrites them.
    #[test]
    fn the_deployed_templates_are_what_the_builder_makes() {
        let request = JobRequest {
            run_id: "01example0000000000000000".into(),
            namespace: "praxis".into(),
            image: "registry.example/praxis:0.1.0".into(),
            model_config: r#"{"provider":"openai","name":"gpt-4.1-mini"}"#.into(),
            objective: "Make the failing test pass".into(),
            key_results: Some(
                r#"["The fix is explained",{"text":"tests pass","check":"cargo test"}]"#.into(),
            ),
            tools: Some(r#"[{"name":"fs_read"},{"name":"fs_patch","config":{"paths":["src/**"]}},{"name":"test_run"}]"#.into()),
            deadline_seconds: 1800,
            resources: Resources::default(),
            ledger_url: SecretRef {
                name: "praxis-ledger".into(),
                key: "url".into(),
            },
            model_credentials: Some("praxis-model-keys".into()),
            service_account: "praxis-job".into(),
            trust_anchor: Some("ab".repeat(32)),
            seccomp: Seccomp::Localhost("praxis.json".into()),
            pod_user_namespace: true,
        };
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes");
        for (file, object) in [
            (
                "job-template.json",
                serde_json::to_value(job(&request)).unwrap(),
            ),
            (
                "writ-secret-template.json",
                serde_json::to_value(writ_secret(&request, "WRIT-TOKEN")).unwrap(),
            ),
        ] {
            let text = serde_json::to_string_pretty(&object).unwrap() + "\n";
            let path = dir.join(file);
            if std::env::var_os("PRAXIS_UPDATE_KUBE").is_some() {
                std::fs::write(&path, &text).unwrap();
            }
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            assert_eq!(
                on_disk, text,
                "{file} is stale: rerun with PRAXIS_UPDATE_KUBE=1"
            );
        }
    }
}
