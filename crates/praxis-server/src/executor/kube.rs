//! The Kubernetes executor: each new run becomes a writ Secret and a Job running
//! `praxis job` (`PRAXIS_RUN_ID` = the run's id) against the shared ledger.

use super::{Executor, KubeSettings, RemoteEnd, SeccompSetting};
use crate::runs::{Hub, Live, row_of};
use praxis_core::RunStatus;
use praxis_kube::client::Cluster;
use praxis_kube::job::{JobRequest, Resources, Seccomp, SecretRef, job, writ_secret};
use praxis_kube::status::{JobPhase, phase, run_status};
use praxis_ledger::Ledger;
use praxis_runtime::RunOptions;
use praxis_runtime::job::config::{ModelConfig, ProviderKind, ToolConfig};
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct KubeExecutor {
    settings: KubeSettings,
    cluster: Cluster,
    ledger: Arc<dyn Ledger>,
    /// How often the run's new entries are read for its live followers.
    poll: Duration,
}

impl KubeExecutor {
    /// A client from `PRAXIS_KUBE_CONFIG`, else the in-cluster configuration or `KUBECONFIG`.
    pub async fn connect(
        settings: KubeSettings,
        ledger: Arc<dyn Ledger>,
        poll: Duration,
    ) -> Result<Self, String> {
        let cluster = match &settings.kubeconfig {
            Some(path) => Cluster::from_kubeconfig(path, settings.namespace.clone()).await,
            None => Cluster::infer(settings.namespace.clone()).await,
        }
        .map_err(|e| format!("PRAXIS_EXECUTOR=kubernetes: {e}"))?;
        Ok(KubeExecutor {
            settings,
            cluster,
            ledger,
            poll,
        })
    }
}

/// The Job request of a run, and the writ token for its Secret. Refused (the reason) when
/// the run cannot be expressed to `praxis job`.
pub(crate) fn job_request(
    settings: &KubeSettings,
    namespace: &str,
    run_id: &str,
    options: &RunOptions,
) -> Result<(JobRequest, String), String> {
    let spec = &options.spec;
    let writ = options
        .writ
        .as_ref()
        .ok_or("the Kubernetes executor passes the run's writ to its pod, and this run has none")?;
    let provider: ProviderKind = serde_json::from_value(serde_json::Value::String(
        spec.provider.clone(),
    ))
    .map_err(|_| {
        format!(
            "provider `{}` cannot run in a Job (praxis job knows mock, openai, anthropic, ollama)",
            spec.provider
        )
    })?;
    if provider == ProviderKind::Scripted {
        return Err(
            "a scripted run cannot run in a Job: its script is not passed to the pod".into(),
        );
    }
    let model = ModelConfig {
        provider,
        name: spec.model.clone(),
        api_key: None,
        base_url: None,
    };
    let tools = spec
        .tools
        .as_ref()
        .map(|names| {
            let tools: Vec<ToolConfig> = names
                .iter()
                .map(|name| ToolConfig {
                    name: name.clone(),
                    config: None,
                })
                .collect();
            serde_json::to_string(&tools)
        })
        .transpose()
        .map_err(|e| e.to_string())?;
    let deadline_seconds = spec
        .limits
        .max_seconds
        .and_then(|s| i64::try_from(s).ok())
        .unwrap_or(settings.deadline_seconds);
    let request = JobRequest {
        run_id: run_id.to_string(),
        namespace: namespace.to_string(),
        image: settings.image.clone(),
        model_config: serde_json::to_string(&model).map_err(|e| e.to_string())?,
        objective: spec.task.clone(),
        key_results: None,
        tools,
        deadline_seconds,
        resources: Resources {
            cpu_request: settings.cpu_request.clone(),
            cpu_limit: settings.cpu_limit.clone(),
            memory_request: settings.memory_request.clone(),
            memory_limit: settings.memory_limit.clone(),
        },
        ledger_url: SecretRef {
            name: settings.ledger_secret.0.clone(),
            key: settings.ledger_secret.1.clone(),
        },
        model_credentials: settings.model_secret.clone(),
        service_account: settings.service_account.clone(),
        trust_anchor: Some(writ.anchor.public_hex()),
        seccomp: match &settings.seccomp {
            SeccompSetting::RuntimeDefault => Seccomp::RuntimeDefault,
            SeccompSetting::Localhost(path) => Seccomp::Localhost(path.clone()),
        },
        pod_user_namespace: settings.user_namespace,
    };
    Ok((request, writ.token.clone()))
}

/// Relays the entries the pod records to the run's live followers, in seq order.
struct Relay {
    ledger: Arc<dyn Ledger>,
    run_id: String,
    hub: Arc<Hub>,
    last: u64,
    /// The run's status in the ledger, after the last read.
    recorded: Option<RunStatus>,
}

impl Relay {
    async fn pull(&mut self) {
        let (ledger, run_id, after) = (self.ledger.clone(), self.run_id.clone(), self.last);
        let read = tokio::task::spawn_blocking(move || {
            let new = ledger.entries(&run_id, after)?;
            // The status needs the whole run (its first and last entries).
            let status = if new.is_empty() {
                None
            } else {
                let all = ledger.entries(&run_id, 0)?;
                row_of(&all).map(|row| praxis_runtime::overview(&row).status)
            };
            Ok::<_, praxis_ledger::LedgerError>((new, status))
        })
        .await;
        match read {
            Ok(Ok((new, status))) => {
                for entry in new {
                    self.last = entry.seq;
                    self.hub.send(Live::Entry(Arc::new(entry)));
                }
                if status.is_some() {
                    self.recorded = status;
                }
            }
            Ok(Err(e)) => eprintln!(
                "praxis serve: run {}: reading its entries: {e}",
                self.run_id
            ),
            Err(e) => eprintln!(
                "praxis serve: run {}: reading its entries: {e}",
                self.run_id
            ),
        }
    }

    /// Whether the run recorded its end.
    fn finished(&self) -> bool {
        self.recorded.is_some_and(|s| {
            !matches!(
                s,
                RunStatus::Queued
                    | RunStatus::Running
                    | RunStatus::AwaitingApproval
                    | RunStatus::Interrupted
            )
        })
    }
}

enum Ended {
    Job(Box<Result<k8s_openapi::api::batch::v1::Job, praxis_kube::client::KubeError>>),
    Cancelled(String),
}

impl KubeExecutor {
    async fn run(&self, run_id: String, options: RunOptions, hub: Arc<Hub>) -> RemoteEnd {
        let (request, token) =
            match job_request(&self.settings, self.cluster.namespace(), &run_id, &options) {
                Ok(made) => made,
                Err(why) => return Some((RunStatus::Failed, why)),
            };
        if let Err(e) = self
            .cluster
            .launch(&writ_secret(&request, &token), &job(&request))
            .await
        {
            return Some((RunStatus::Failed, e.to_string()));
        }
        hub.set("pending", None);
        let mut relay = Relay {
            ledger: self.ledger.clone(),
            run_id: run_id.clone(),
            hub: hub.clone(),
            last: 0,
            recorded: None,
        };
        let phases = hub.clone();
        let follow = self.cluster.follow(&run_id, move |job| match phase(job) {
            JobPhase::Pending => {
                phases.set("pending", None);
                ControlFlow::Continue(())
            }
            JobPhase::Active => {
                phases.set("running", None);
                ControlFlow::Continue(())
            }
            JobPhase::Succeeded | JobPhase::Failed { .. } => ControlFlow::Break(job.clone()),
        });
        tokio::pin!(follow);
        let mut ticks = tokio::time::interval(self.poll);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let ended = loop {
            tokio::select! {
                ended = &mut follow => break Ended::Job(Box::new(ended)),
                reason = options.cancel.wait() => break Ended::Cancelled(reason),
                _ = ticks.tick() => relay.pull().await,
            }
        };
        let ended = match ended {
            Ended::Job(ended) => Ok(*ended),
            Ended::Cancelled(reason) => Err(reason),
        };
        match ended {
            Ok(Ok(job)) => {
                // The Job stays for its logs until its TTL; the writ is not needed anymore.
                if let Err(e) = self.cluster.delete_secret(&run_id).await {
                    eprintln!("praxis serve: run {run_id}: {e}");
                }
                relay.pull().await;
                let (status, why) = run_status(&job, relay.recorded);
                why.map(|why| (status, why))
            }
            Ok(Err(e)) => {
                let _ = self.cluster.delete(&run_id).await;
                relay.pull().await;
                (!relay.finished()).then(|| (RunStatus::Failed, e.to_string()))
            }
            Err(reason) if reason == crate::SHUTDOWN_REASON => {
                // This server stops (a rolling update, say): the pod goes on recording the
                // run in the shared ledger; only a cancel deletes a Job.
                eprintln!("praxis serve: run {run_id}: no longer followed here; its Job runs on");
                None
            }
            Err(reason) => {
                let deleted = match self.cluster.delete(&run_id).await {
                    Ok(()) => "its Job and writ Secret were deleted".to_string(),
                    Err(e) => format!("deleting its Job failed: {e}"),
                };
                relay.pull().await;
                (!relay.finished()).then(|| (RunStatus::Cancelled, format!("{reason}; {deleted}")))
            }
        }
    }
}

impl Executor for KubeExecutor {
    fn drive(
        self: Arc<Self>,
        run_id: String,
        options: RunOptions,
        hub: Arc<Hub>,
    ) -> Pin<Box<dyn Future<Output = RemoteEnd> + Send>> {
        Box::pin(async move { self.run(run_id, options, hub).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use praxis_runtime::WritGrant;

    fn options(spec: serde_json::Value, writ: bool) -> (RunOptions, String) {
        let spec: praxis_core::RunSpec = serde_json::from_value(spec).unwrap();
        let mut options = RunOptions::new(spec, Arc::new(praxis_models::MockProvider::new()));
        let key = praxis_writ::IssuerKey::generate();
        if writ {
            let token = praxis_writ::issue(
                &praxis_writ::WritSpec::development("test"),
                &key,
                std::time::SystemTime::now(),
            )
            .unwrap();
            options.writ = Some(WritGrant {
                token,
                anchor: key.anchor(),
            });
        }
        (options, key.public_hex())
    }

    #[test]
    fn a_runs_options_become_the_job_request_praxis_job_reads() {
        let mut settings = KubeSettings::new("registry.example/praxis:1");
        settings.seccomp = SeccompSetting::Localhost("praxis.json".into());
        settings.memory_limit = "8Gi".into();
        let (run, anchor) = options(
            serde_json::json!({"task": "Fix the test", "workspace": "/w", "provider": "ollama",
                "model": "qwen3", "tools": ["fs_read", "shell"],
                "limits": {"max_steps": 5, "max_seconds": 120, "max_invalid_replies": 3}}),
            true,
        );
        let (request, token) = job_request(&settings, "agents", "01abc", &run).unwrap();
        assert_eq!(token, run.writ.as_ref().unwrap().token);
        assert_eq!(request.run_id, "01abc");
        assert_eq!(request.namespace, "agents");
        assert_eq!(request.objective, "Fix the test");
        assert_eq!(
            request.model_config,
            r#"{"provider":"ollama","name":"qwen3"}"#
        );
        assert_eq!(
            request.tools.as_deref(),
            Some(r#"[{"name":"fs_read"},{"name":"shell"}]"#)
        );
        // The run's own time limit is the Job's deadline.
        assert_eq!(request.deadline_seconds, 120);
        assert_eq!(request.trust_anchor, Some(anchor));
        assert_eq!(request.resources.memory_limit, "8Gi");
        assert_eq!(request.seccomp, Seccomp::Localhost("praxis.json".into()));
        assert_eq!(
            request.model_credentials.as_deref(),
            Some("praxis-model-keys")
        );

        // Without a time limit of its own, the setting's.
        let (run, _) = options(
            serde_json::json!({"task": "t", "workspace": "/w", "provider": "mock",
                "limits": {"max_steps": 5, "max_seconds": null, "max_invalid_replies": 3}}),
            true,
        );
        let (request, _) = job_request(&settings, "agents", "01abc", &run).unwrap();
        assert_eq!(request.deadline_seconds, 3600);
        assert_eq!(request.tools, None);

        // What `praxis job` could not do is refused with the reason.
        let scripted = serde_json::json!({"task": "t", "workspace": "/w", "provider": "scripted"});
        let why = job_request(&settings, "a", "r", &options(scripted, true).0).unwrap_err();
        assert!(why.contains("script"), "{why}");
        let unknown = serde_json::json!({"task": "t", "workspace": "/w", "provider": "vllm"});
        let why = job_request(&settings, "a", "r", &options(unknown, true).0).unwrap_err();
        assert!(why.contains("`vllm`"), "{why}");
        let no_writ = serde_json::json!({"task": "t", "workspace": "/w", "provider": "mock"});
        let why = job_request(&settings, "a", "r", &options(no_writ, false).0).unwrap_err();
        assert!(why.contains("writ"), "{why}");
    }
}
