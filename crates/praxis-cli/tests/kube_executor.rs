//! `praxis serve` with `PRAXIS_EXECUTOR=kubernetes`, against the fake Kubernetes API server
//! (`praxis_kube::fake`; no live cluster runs here). The pod is played by `praxis job` run
//! with the environment of the Job the server created, against the same PostgreSQL ledger.
//!
//! The refusal without a shared ledger needs nothing; the rest needs PostgreSQL and a
//! binary built with `--features kubernetes`: `.ci/postgres` runs it with
//! `cargo test -p praxis-cli --features kubernetes --test kube_executor -- --include-ignored`.

mod common;

use common::{Praxis, text};

#[test]
fn serve_refuses_the_kubernetes_executor_without_the_shared_ledger() {
    let env = Praxis::new();
    let out = env
        .cmd(&["serve", "--bind", "127.0.0.1:0"])
        .env_remove("PRAXIS_LEDGER_URL")
        .env("PRAXIS_EXECUTOR", "kubernetes")
        .env("PRAXIS_KUBE_IMAGE", "registry.example/praxis:0.1.0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("PRAXIS_EXECUTOR=kubernetes") && stderr.contains("PRAXIS_LEDGER_URL"),
        "{stderr}"
    );
    // A bad executor setting is refused naming its variable, before anything starts.
    let out = env
        .cmd(&["serve", "--bind", "127.0.0.1:0"])
        .env("PRAXIS_EXECUTOR", "kubernetes")
        .env_remove("PRAXIS_KUBE_IMAGE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("PRAXIS_KUBE_IMAGE"),
        "{}",
        text(&out.stderr)
    );
}

#[cfg(feature = "kubernetes")]
mod with_postgres {
    use super::common::served::Served;
    use super::common::{Praxis, fresh_database, text};
    use praxis_kube::fake::FakeApi;
    use praxis_kube::job::{JobRequest, job_name, writ_secret_name};
    use serde_json::{Value, json};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    const NS: &str = "agents";
    const IMAGE: &str = "registry.example/praxis:0.1.0";

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn call(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
        runtime().block_on(async {
            let client = reqwest::Client::new();
            let request = match method {
                "POST" => client.post(url).json(&body.unwrap_or(json!({}))),
                _ => client.get(url),
            };
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        })
    }

    fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(v) = probe() {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The kinds of the events of `GET /v1/runs/{id}/events`, until the stream ends.
    fn follow(url: String, run_id: String) -> mpsc::Receiver<Vec<String>> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            runtime().block_on(async move {
                let response = reqwest::Client::new()
                    .get(format!("{url}/v1/runs/{run_id}/events"))
                    .send()
                    .await
                    .unwrap();
                let body = response.text().await.unwrap_or_default();
                let kinds = body
                    .split("\n\n")
                    .filter(|block| block.lines().any(|l| l.starts_with("id:")))
                    .filter_map(|block| {
                        block
                            .lines()
                            .find_map(|l| l.strip_prefix("event:").map(|v| v.trim().to_string()))
                    })
                    .collect();
                let _ = tx.send(kinds);
            });
        });
        rx
    }

    struct Cluster {
        fake: FakeApi,
        url: String,
        _served: Served,
        env: Praxis,
        db: String,
        ws: tempfile::TempDir,
    }

    impl Cluster {
        fn start() -> Cluster {
            let admin = std::env::var("PRAXIS_TEST_POSTGRES_URL").expect(
                "PRAXIS_TEST_POSTGRES_URL must name a PostgreSQL server (.ci/postgres sets it)",
            );
            let db = fresh_database(&admin);
            let env = Praxis::new();
            assert!(env.praxis(&["writ", "keygen"]).status.success());
            let fake = FakeApi::start();
            let kubeconfig = env.file("kubeconfig", &fake.kubeconfig(NS));
            let ws = tempfile::tempdir().unwrap();
            let mut cmd = env.cmd(&[]);
            cmd.env("PRAXIS_LEDGER_URL", &db)
                .env("PRAXIS_WORKSPACE_ROOTS", ws.path())
                .env("PRAXIS_EXECUTOR", "kubernetes")
                .env("PRAXIS_KUBE_IMAGE", IMAGE)
                .env("PRAXIS_KUBE_CONFIG", &kubeconfig)
                .env("PRAXIS_KUBE_MODEL_SECRET", "");
            let served = Served::start_with(cmd, &[]);
            Cluster {
                fake,
                url: served.url.clone(),
                _served: served,
                env,
                db,
                ws,
            }
        }

        fn create(&self, task: &str) -> String {
            let (status, created) = call(
                "POST",
                &format!("{}/v1/runs", self.url),
                Some(
                    json!({"task": task, "workspace": self.ws.path(), "provider": "mock",
                    "limits": {"max_seconds": 300}}),
                ),
            );
            assert_eq!(status, 201, "{created}");
            created["id"].as_str().unwrap().to_string()
        }

        fn job(&self, run_id: &str) -> Value {
            wait_for("the run's Job", || {
                self.fake.object("jobs", NS, &job_name(run_id))
            })
        }

        fn view(&self, run_id: &str) -> Value {
            let (status, view) = call("GET", &format!("{}/v1/runs/{run_id}", self.url), None);
            assert_eq!(status, 200, "{view}");
            view
        }

        fn wait_status(&self, run_id: &str, status: &str) -> Value {
            wait_for(&format!("run {run_id} {status}"), || {
                let view = self.view(run_id);
                (view["status"] == status).then_some(view)
            })
        }

        fn set_status(&self, run_id: &str, status: Value) {
            assert!(self.fake.set_job_status(NS, &job_name(run_id), status));
        }
    }

    fn env_of(job: &Value) -> Vec<(String, Value)> {
        job["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["name"].as_str().unwrap().to_string(), v.clone()))
            .collect()
    }

    fn value_of(job: &Value, name: &str) -> String {
        env_of(job)
            .into_iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v["value"].as_str().map(String::from))
            .unwrap_or_else(|| panic!("no {name} in {job:#}"))
    }

    #[test]
    #[ignore = "needs PostgreSQL: run by .ci/postgres"]
    fn a_run_becomes_a_job_whose_pod_records_it_and_its_status_flows_back() {
        let cluster = Cluster::start();
        let run_id = cluster.create("Summarize this repository");
        let job = cluster.job(&run_id);
        let secret = cluster
            .fake
            .object("secrets", NS, &writ_secret_name(&run_id))
            .expect("the writ Secret is created with the Job");

        // The body is what the builder makes for this run and these settings.
        let request = JobRequest {
            run_id: run_id.clone(),
            namespace: NS.into(),
            image: IMAGE.into(),
            model_config: value_of(&job, "THOUGHTMESH_MODEL_CONFIG"),
            objective: "Summarize this repository".into(),
            key_results: None,
            tools: None,
            deadline_seconds: 300,
            resources: praxis_kube::job::Resources::default(),
            ledger_url: praxis_kube::job::SecretRef {
                name: "praxis-ledger".into(),
                key: "url".into(),
            },
            model_credentials: None,
            service_account: "praxis-job".into(),
            trust_anchor: Some(value_of(&job, "PRAXIS_TRUST_ANCHOR")),
            seccomp: praxis_kube::job::Seccomp::RuntimeDefault,
            pod_user_namespace: false,
        };
        let token = secret["stringData"]["writ"].as_str().unwrap().to_string();
        let mut sent = job.clone();
        sent["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        assert_eq!(
            sent,
            serde_json::to_value(praxis_kube::job::job(&request)).unwrap()
        );
        let mut sent_secret = secret.clone();
        sent_secret["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        assert_eq!(
            sent_secret,
            serde_json::to_value(praxis_kube::job::writ_secret(&request, &token)).unwrap()
        );
        let model: Value = serde_json::from_str(&request.model_config).unwrap();
        assert_eq!(model["provider"], "mock", "{model}");
        assert_eq!(value_of(&job, "PRAXIS_RUN_ID"), run_id);

        // Not started yet: the run is there, its Job pending.
        wait_for("phase pending", || {
            (cluster.view(&run_id)["phase"] == "pending").then_some(())
        });
        let feed = follow(cluster.url.clone(), run_id.clone());

        // The pod: `praxis job` with the Job's environment (its Secret's values where it
        // names a Secret; paths of this machine for the pod's volumes).
        cluster.set_status(&run_id, json!({"active": 1}));
        wait_for("phase running", || {
            (cluster.view(&run_id)["phase"] == "running").then_some(())
        });
        let pod_home = tempfile::tempdir().unwrap();
        let pod_ws = tempfile::tempdir().unwrap();
        std::fs::write(
            pod_ws.path().join("README.md"),
            "# Tomlish\nA TOML parser.\n",
        )
        .unwrap();
        let writ_file = pod_home.path().join("writ");
        std::fs::write(&writ_file, &token).unwrap();
        let mut pod = cluster.env.cmd(&["job"]);
        for (name, var) in env_of(&job) {
            if let Some(value) = var["value"].as_str() {
                pod.env(&name, value);
            }
        }
        pod.env("PRAXIS_LEDGER_URL", &cluster.db)
            .env("PRAXIS_WRIT", &writ_file)
            .env("PRAXIS_HOME", pod_home.path())
            .env("PRAXIS_WORKSPACE", pod_ws.path());
        let out = pod.output().unwrap();
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{report:#} {}",
            text(&out.stderr)
        );
        assert_eq!(report["run_id"], run_id);

        // The Job completes: the ledger's record stands; the writ Secret is deleted.
        cluster.set_status(
            &run_id,
            json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}),
        );
        let view = cluster.wait_status(&run_id, "completed");
        assert!(
            view["final_answer"].as_str().unwrap().contains("TOML"),
            "{view}"
        );
        wait_for("the writ Secret deleted", || {
            cluster
                .fake
                .object("secrets", NS, &writ_secret_name(&run_id))
                .is_none()
                .then_some(())
        });
        // The live feed carried the pod's entries, relayed from the shared ledger.
        let kinds = feed.recv_timeout(Duration::from_secs(60)).unwrap();
        assert_eq!(
            kinds.first().map(String::as_str),
            Some("run_started"),
            "{kinds:?}"
        );
        assert!(kinds.iter().any(|k| k == "run_finished"), "{kinds:?}");
        // The pod's run recorded which sandbox layers it had.
        let (_, started) = call(
            "GET",
            &format!("{}/v1/runs/{run_id}/ledger", cluster.url),
            None,
        );
        let first: Value =
            serde_json::from_str(started.as_str().unwrap().lines().next().unwrap()).unwrap();
        assert!(
            first["payload"]["environment"]["sandbox"]["layers"].is_array(),
            "{first}"
        );

        // A Job that hits its deadline before the pod recorded anything: cancelled, why.
        let deadline = cluster.create("never started");
        cluster.job(&deadline);
        cluster.set_status(
            &deadline,
            json!({"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}),
        );
        let view = cluster.wait_status(&deadline, "cancelled");
        assert!(
            view["error"]
                .as_str()
                .unwrap()
                .contains("activeDeadlineSeconds"),
            "{view}"
        );

        // A Job that failed otherwise (the pod was OOM-killed, say): failed, with the reason.
        let failed = cluster.create("killed");
        cluster.job(&failed);
        cluster.set_status(
            &failed,
            json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}),
        );
        let view = cluster.wait_status(&failed, "failed");
        assert!(
            view["error"]
                .as_str()
                .unwrap()
                .contains("BackoffLimitExceeded"),
            "{view}"
        );

        // Cancel deletes the Job (propagation Background) and its writ Secret.
        let cancelled = cluster.create("cancel me");
        cluster.job(&cancelled);
        let (status, answer) = call(
            "POST",
            &format!("{}/v1/runs/{cancelled}/cancel", cluster.url),
            None,
        );
        assert_eq!(status, 202, "{answer}");
        let view = cluster.wait_status(&cancelled, "cancelled");
        assert!(
            view["error"].as_str().unwrap().contains("deleted"),
            "{view}"
        );
        assert!(
            cluster
                .fake
                .object("jobs", NS, &job_name(&cancelled))
                .is_none()
        );
        assert!(
            cluster
                .fake
                .object("secrets", NS, &writ_secret_name(&cancelled))
                .is_none()
        );
        let deletes: Vec<_> = cluster
            .fake
            .requests()
            .into_iter()
            .filter(|r| r.method == "DELETE" && r.name.as_deref() == Some(&job_name(&cancelled)))
            .collect();
        assert_eq!(deletes.len(), 1, "{deletes:#?}");
        assert_eq!(deletes[0].body["propagationPolicy"], "Background");
    }
}
