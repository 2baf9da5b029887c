//! The executor's API client against the fake API server (no live cluster runs here):
//! what it creates is exactly the builder's Secret and Job, it follows the Job's status to
//! its end, and deletes the Job (propagation Background) and the Secret.
#![cfg(all(feature = "client", feature = "fake-api"))]

use k8s_openapi::api::batch::v1::Job;
use praxis_core::RunStatus;
use praxis_kube::client::{Cluster, KubeError};
use praxis_kube::fake::FakeApi;
use praxis_kube::job::{
    JobRequest, Resources, Seccomp, SecretRef, job, job_name, writ_secret, writ_secret_name,
};
use praxis_kube::status::{JobPhase, phase, run_status};
use serde_json::json;
use std::ops::ControlFlow;

const NS: &str = "agents";

fn request(run_id: &str) -> JobRequest {
    JobRequest {
        run_id: run_id.into(),
        namespace: NS.into(),
        image: "registry.example/praxis:0.1.0".into(),
        model_config: r#"{"provider":"mock","name":"mock"}"#.into(),
        objective: "Summarize the README".into(),
        key_results: None,
        tools: Some(r#"[{"name":"fs_read"}]"#.into()),
        deadline_seconds: 120,
        resources: Resources::default(),
        ledger_url: SecretRef {
            name: "praxis-ledger".into(),
            key: "url".into(),
        },
        model_credentials: None,
        service_account: "praxis-job".into(),
        trust_anchor: Some("cd".repeat(32)),
        seccomp: Seccomp::RuntimeDefault,
        pod_user_namespace: false,
    }
}

/// The client, through a kubeconfig file naming the fake (as `PRAXIS_KUBE_CONFIG` does).
async fn cluster(fake: &FakeApi) -> (Cluster, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, fake.kubeconfig(NS)).unwrap();
    let cluster = Cluster::from_kubeconfig(&path, None).await.unwrap();
    assert_eq!(cluster.namespace(), NS);
    (cluster, dir)
}

fn without_version(mut object: serde_json::Value) -> serde_json::Value {
    object["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    object
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_creates_the_builders_secret_and_job_and_delete_removes_both() {
    let fake = FakeApi::start();
    let (cluster, _dir) = cluster(&fake).await;
    let request = request("01run0000000000000000000a1");
    let (secret, job) = (writ_secret(&request, "WRIT-TOKEN"), job(&request));
    cluster.launch(&secret, &job).await.unwrap();

    let created: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(created.len(), 2, "{created:#?}");
    // The Secret first (the Job's pod mounts it), each body exactly the builder's object.
    assert_eq!(created[0].resource, "secrets");
    assert_eq!(created[0].body, serde_json::to_value(&secret).unwrap());
    assert_eq!(created[1].resource, "jobs");
    assert_eq!(created[1].namespace, NS);
    assert_eq!(created[1].body, serde_json::to_value(&job).unwrap());
    let stored = fake.object("jobs", NS, &job_name(&request.run_id)).unwrap();
    assert_eq!(without_version(stored), serde_json::to_value(&job).unwrap());

    cluster.delete(&request.run_id).await.unwrap();
    let deletes: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 2, "{deletes:#?}");
    let job_delete = deletes.iter().find(|r| r.resource == "jobs").unwrap();
    assert_eq!(
        job_delete.name.as_deref(),
        Some(job_name(&request.run_id).as_str())
    );
    assert_eq!(job_delete.body["propagationPolicy"], "Background");
    let secret_delete = deletes.iter().find(|r| r.resource == "secrets").unwrap();
    assert_eq!(
        secret_delete.name.as_deref(),
        Some(writ_secret_name(&request.run_id).as_str())
    );
    assert!(
        fake.object("jobs", NS, &job_name(&request.run_id))
            .is_none()
    );
    assert!(
        fake.object("secrets", NS, &writ_secret_name(&request.run_id))
            .is_none()
    );
    // Deleting what is gone already is not an error.
    cluster.delete(&request.run_id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_job_takes_its_writ_secret_with_it() {
    let fake = FakeApi::start();
    let (cluster, _dir) = cluster(&fake).await;
    fake.refuse_jobs();
    let request = request("01run0000000000000000000b2");
    let e = cluster
        .launch(&writ_secret(&request, "T"), &job(&request))
        .await
        .unwrap_err();
    assert!(matches!(e, KubeError::Api { .. }), "{e}");
    assert!(
        e.to_string().contains("creating Job praxis-run-01run"),
        "{e}"
    );
    assert!(
        fake.object("secrets", NS, &writ_secret_name(&request.run_id))
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_a_job_sees_each_status_until_it_ends() {
    let fake = FakeApi::start();
    let (cluster, _dir) = cluster(&fake).await;
    for (run_id, end, expected) in [
        (
            "01run0000000000000000000c3",
            json!({"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}),
            RunStatus::Cancelled,
        ),
        (
            "01run0000000000000000000c4",
            json!({"conditions": [{"type": "Complete", "status": "True", "reason": "CompletionsReached"}], "succeeded": 1}),
            RunStatus::Failed,
        ),
    ] {
        let request = request(run_id);
        cluster
            .launch(&writ_secret(&request, "T"), &job(&request))
            .await
            .unwrap();
        let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
        let follower = cluster.clone();
        let run = run_id.to_string();
        let following = tokio::spawn(async move {
            follower
                .follow(&run, move |job: &Job| {
                    let now = phase(job);
                    let _ = seen_tx.send(now.clone());
                    match now {
                        JobPhase::Pending | JobPhase::Active => ControlFlow::Continue(()),
                        _ => ControlFlow::Break(job.clone()),
                    }
                })
                .await
        });
        // Each change is sent only after the follower saw the state before it.
        assert_eq!(seen_rx.recv().await, Some(JobPhase::Pending));
        assert!(fake.set_job_status(NS, &job_name(run_id), json!({"active": 1})));
        assert_eq!(seen_rx.recv().await, Some(JobPhase::Active));
        assert!(fake.set_job_status(NS, &job_name(run_id), end));
        let ended = following.await.unwrap().unwrap();
        // No run_finished in the ledger: the Job's end decides, with the reason.
        let (status, why) = run_status(&ended, None);
        assert_eq!(status, expected);
        assert!(why.is_some());
        // The ledger's record wins over the Job's status.
        assert_eq!(
            run_status(&ended, Some(RunStatus::Completed)),
            (RunStatus::Completed, None)
        );
    }
    // A watch was opened (the status came from events, not only from reads).
    assert!(fake.requests().iter().any(|r| r.method == "WATCH"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_deleted_by_someone_else_ends_the_follow_with_an_error() {
    let fake = FakeApi::start();
    let (cluster, _dir) = cluster(&fake).await;
    let request = request("01run0000000000000000000d5");
    cluster
        .launch(&writ_secret(&request, "T"), &job(&request))
        .await
        .unwrap();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let follower = cluster.clone();
    let following = tokio::spawn(async move {
        follower
            .follow("01run0000000000000000000d5", move |_job: &Job| {
                let _ = seen_tx.send(());
                ControlFlow::<()>::Continue(())
            })
            .await
    });
    seen_rx.recv().await.unwrap();
    cluster.delete(&request.run_id).await.unwrap();
    let e = following.await.unwrap().unwrap_err();
    assert!(matches!(e, KubeError::Deleted(_)), "{e}");
}
