//! The API calls of the server's Kubernetes executor (cargo feature `client`): create a
//! run's writ Secret and Job, follow the Job's status, delete both. Nothing else: the
//! server's Role allows exactly these verbs in one namespace (`deploy/kubernetes/rbac.yaml`).

use crate::job::{job_name, writ_secret_name};
use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, Config};
use std::ops::ControlFlow;
use std::time::Duration;

/// Why a call to the API server failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// No usable configuration (in-cluster service account, or `KUBECONFIG`).
    #[error("Kubernetes client configuration: {0}")]
    Config(String),
    /// The API server refused or could not be reached.
    #[error("Kubernetes API: {action}: {source}")]
    Api {
        action: String,
        #[source]
        source: kube::Error,
    },
    /// The Job was deleted (by someone else) before it ended.
    #[error("the Job {0} was deleted before it ended")]
    Deleted(String),
}

fn api_error(action: impl Into<String>) -> impl FnOnce(kube::Error) -> KubeError {
    let action = action.into();
    move |source| KubeError::Api { action, source }
}

/// A client bound to the namespace run Jobs live in.
#[derive(Clone)]
pub struct Cluster {
    jobs: Api<Job>,
    secrets: Api<Secret>,
    namespace: String,
}

impl Cluster {
    /// The in-cluster configuration (the pod's service account), else `KUBECONFIG` /
    /// `~/.kube/config`; the namespace is `namespace` or the configuration's.
    pub async fn infer(namespace: Option<String>) -> Result<Self, KubeError> {
        let config = Config::infer()
            .await
            .map_err(|e| KubeError::Config(e.to_string()))?;
        Self::from_config(config, namespace)
    }

    /// The kubeconfig file at `path` (its current context).
    pub async fn from_kubeconfig(
        path: &std::path::Path,
        namespace: Option<String>,
    ) -> Result<Self, KubeError> {
        let kubeconfig = kube::config::Kubeconfig::read_from(path)
            .map_err(|e| KubeError::Config(format!("{}: {e}", path.display())))?;
        let config =
            Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| KubeError::Config(format!("{}: {e}", path.display())))?;
        Self::from_config(config, namespace)
    }

    /// A client of `config` (tests point it at a fake API server).
    pub fn from_config(config: Config, namespace: Option<String>) -> Result<Self, KubeError> {
        let namespace = namespace.unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config).map_err(|e| KubeError::Config(e.to_string()))?;
        Ok(Cluster {
            jobs: Api::namespaced(client.clone(), &namespace),
            secrets: Api::namespaced(client, &namespace),
            namespace,
        })
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Creates the writ Secret, then the Job. If the Job is refused, the Secret is deleted
    /// again (a token must not outlive its run's chance to start).
    pub async fn launch(&self, secret: &Secret, job: &Job) -> Result<(), KubeError> {
        let secret_name = secret.metadata.name.clone().unwrap_or_default();
        self.secrets
            .create(&PostParams::default(), secret)
            .await
            .map_err(api_error(format!("creating Secret {secret_name}")))?;
        let job_name = job.metadata.name.clone().unwrap_or_default();
        if let Err(source) = self.jobs.create(&PostParams::default(), job).await {
            let _ = self
                .secrets
                .delete(&secret_name, &DeleteParams::default())
                .await;
            return Err(KubeError::Api {
                action: format!("creating Job {job_name}"),
                source,
            });
        }
        Ok(())
    }

    /// Follows the Job of `run_id`: `update` sees its state now and after every change,
    /// until it breaks with a value. A watch that ends (the API server closes them after a
    /// while) or expires is started again from a fresh read.
    pub async fn follow<T>(
        &self,
        run_id: &str,
        mut update: impl FnMut(&Job) -> ControlFlow<T>,
    ) -> Result<T, KubeError> {
        let name = job_name(run_id);
        let mut retries = 0u32;
        loop {
            let job = match self.jobs.get_opt(&name).await {
                Ok(Some(job)) => job,
                Ok(None) => return Err(KubeError::Deleted(name)),
                Err(e) if retries < 5 => {
                    retries += 1;
                    eprintln!("praxis serve: reading Job {name}: {e}; retrying");
                    tokio::time::sleep(Duration::from_secs(u64::from(retries))).await;
                    continue;
                }
                Err(e) => return Err(api_error(format!("reading Job {name}"))(e)),
            };
            if let ControlFlow::Break(value) = update(&job) {
                return Ok(value);
            }
            let version = job.metadata.resource_version.clone().unwrap_or_default();
            let params = WatchParams::default().fields(&format!("metadata.name={name}"));
            let mut events = match self.jobs.watch(&params, &version).await {
                Ok(events) => events.boxed(),
                Err(e) if retries < 5 => {
                    retries += 1;
                    eprintln!("praxis serve: watching Job {name}: {e}; retrying");
                    tokio::time::sleep(Duration::from_secs(u64::from(retries))).await;
                    continue;
                }
                Err(e) => return Err(api_error(format!("watching Job {name}"))(e)),
            };
            retries = 0;
            loop {
                match events.try_next().await {
                    Ok(Some(WatchEvent::Added(job) | WatchEvent::Modified(job))) => {
                        if let ControlFlow::Break(value) = update(&job) {
                            return Ok(value);
                        }
                    }
                    Ok(Some(WatchEvent::Deleted(_))) => return Err(KubeError::Deleted(name)),
                    Ok(Some(WatchEvent::Bookmark(_))) => {}
                    // Expired (410) or another error, or the watch ended: read again.
                    Ok(Some(WatchEvent::Error(_))) | Ok(None) | Err(_) => break,
                }
            }
            // A watch that keeps ending at once must not spin.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Deletes the writ Secret of `run_id` (once its Job ended, the token is not needed).
    pub async fn delete_secret(&self, run_id: &str) -> Result<(), KubeError> {
        let secret = writ_secret_name(run_id);
        ignore_missing(
            self.secrets
                .delete(&secret, &DeleteParams::default())
                .await
                .map(drop),
        )
        .map_err(api_error(format!("deleting Secret {secret}")))
    }

    /// Deletes the Job of `run_id` (its pod with it: propagation Background) and its writ
    /// Secret. Either being gone already is not an error.
    pub async fn delete(&self, run_id: &str) -> Result<(), KubeError> {
        let job = job_name(run_id);
        let secret = writ_secret_name(run_id);
        let deleted = self.jobs.delete(&job, &DeleteParams::background()).await;
        let secret_deleted = self.secrets.delete(&secret, &DeleteParams::default()).await;
        ignore_missing(deleted.map(drop)).map_err(api_error(format!("deleting Job {job}")))?;
        ignore_missing(secret_deleted.map(drop))
            .map_err(api_error(format!("deleting Secret {secret}")))
    }
}

fn ignore_missing(result: Result<(), kube::Error>) -> Result<(), kube::Error> {
    match result {
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        other => other,
    }
}
