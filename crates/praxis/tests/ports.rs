//! The ports wired through the Agent builder, each with its default and a custom one:
//! audit, budget, critic, delivery (file and a signed webhook that fails at first), usage.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use praxis::ports::{
    Audit, AuditError, Budget, Critic, JsonlFile, LedgerAudit, RunSummary, SpendCap, UsageRecord,
    UsageSink, UsageTotals, Webhook,
};
use praxis::{Agent, AgentError, Judgement, KeyResult, StopReason};
use praxis_runtime::critic::Evidence;
use sha2::Sha256;
use std::path::Path;
use std::sync::{Arc, Mutex};

fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README.md"), "# Example\nA tiny project.\n").unwrap();
    dir
}

fn mock(dir: &Path) -> praxis::AgentBuilder {
    Agent::builder().provider("mock").workspace(dir)
}

#[tokio::test]
async fn the_ledger_audit_verifies_and_keeps_every_run_and_a_failing_audit_fails_the_call() {
    let dir = workspace();
    let audit = Arc::new(LedgerAudit::default());
    let agent = mock(dir.path()).audit(audit.clone()).build().unwrap();
    let a = agent
        .run(&[], "Summarize", Default::default())
        .await
        .unwrap();
    let b = agent.run(&[], "Again", Default::default()).await.unwrap();
    let mut ids = vec![a.run_id.clone(), b.run_id.clone()];
    ids.sort();
    assert_eq!(audit.run_ids(), ids);
    assert_eq!(audit.entries(&a.run_id).unwrap(), a.entries);

    // A tampered record is refused.
    let mut tampered = a.entries.clone();
    tampered[1].payload = serde_json::json!({"forged": true});
    assert!(matches!(
        audit.record(&a.run_id, &tampered),
        Err(AuditError::Broken { .. })
    ));

    struct Refuse;
    impl Audit for Refuse {
        fn record(&self, run_id: &str, _: &[praxis_ledger::Entry]) -> Result<(), AuditError> {
            Err(AuditError::Other(format!("store down for {run_id}")))
        }
    }
    let agent = mock(dir.path()).audit(Arc::new(Refuse)).build().unwrap();
    let err = agent
        .run(&[], "Summarize", Default::default())
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::Audit(_)), "{err}");
}

#[tokio::test]
async fn the_budget_gates_each_run_and_commits_what_it_spent() {
    let dir = workspace();
    // Learn what one run spends (the mock is deterministic).
    let probe = Arc::new(SpendCap::new(u64::MAX, 1));
    let agent = mock(dir.path()).budget(probe.clone()).build().unwrap();
    let first = agent
        .run(&[], "Summarize", Default::default())
        .await
        .unwrap();
    let one_run = first.usage.input_tokens + first.usage.output_tokens;
    assert!(one_run > 0);
    assert_eq!(
        probe.spent().usage,
        first.usage,
        "the actual spend is committed"
    );

    // A cap that fits exactly one run: the second is refused before it starts.
    let cap = Arc::new(SpendCap::new(one_run, 1));
    let agent = mock(dir.path()).budget(cap.clone()).build().unwrap();
    agent
        .run(&[], "Summarize", Default::default())
        .await
        .unwrap();
    let err = agent
        .run(&[], "Summarize", Default::default())
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::Budget(_)), "{err}");
    assert!(err.to_string().contains("over the cap"), "{err}");
    assert_eq!(
        cap.spent().usage,
        first.usage,
        "the refused run spent nothing"
    );
}

#[test]
fn reservations_of_concurrent_runs_count_against_the_cap_until_committed() {
    let cap = SpendCap::new(100, 40);
    let a = cap.reserve("a").unwrap();
    let b = cap.reserve("b").unwrap();
    assert!(cap.reserve("c").is_err(), "80 held + 40 > 100");
    cap.commit(a, praxis::ports::Spend::default());
    let c = cap.reserve("c").unwrap();
    assert_ne!(b.id, c.id);
    let dollars = SpendCap::new(u64::MAX, 1).max_usd_micros(5);
    let r = dollars.reserve("x").unwrap();
    dollars.commit(
        r,
        praxis::ports::Spend {
            cost_usd_micros: 5,
            ..Default::default()
        },
    );
    assert!(dollars.reserve("y").is_err());
}

#[tokio::test]
async fn the_usage_sink_gets_one_record_per_model_call() {
    #[derive(Default)]
    struct Log(Mutex<Vec<UsageRecord>>);
    impl UsageSink for Log {
        fn record(&self, record: &UsageRecord) {
            self.0.lock().unwrap().push(record.clone());
        }
    }
    let dir = workspace();
    let log = Arc::new(Log::default());
    let agent = mock(dir.path()).usage_sink(log.clone()).build().unwrap();
    let result = agent
        .run(&[], "Summarize", Default::default())
        .await
        .unwrap();
    let records = log.0.lock().unwrap().clone();
    assert_eq!(records.len(), result.steps.len());
    assert!(records.len() >= 2);
    for (record, step) in records.iter().zip(&result.steps) {
        assert_eq!(record.run_id, result.run_id);
        assert_eq!(record.step, step.reply.step);
        assert_eq!(record.usage, step.reply.usage);
    }

    let totals = Arc::new(UsageTotals::default());
    let agent = mock(dir.path()).usage_sink(totals.clone()).build().unwrap();
    let a = agent
        .run(&[], "Summarize", Default::default())
        .await
        .unwrap();
    let b = agent
        .run(&[], "Summarize", Default::default())
        .await
        .unwrap();
    let all = totals.totals();
    assert_eq!(all.len(), 1, "{all:?}");
    let (usage, _) = all.values().next().unwrap();
    assert_eq!(
        usage.input_tokens,
        a.usage.input_tokens + b.usage.input_tokens
    );
}

#[tokio::test]
async fn the_default_critic_is_the_runtime_critic_and_a_custom_one_gets_the_ledger_evidence() {
    let dir = workspace();
    let agent = mock(dir.path())
        .critic(vec![
            KeyResult::text("README: tiny project"),
            KeyResult::text("Kubernetes deployment manifest"),
        ])
        .build()
        .unwrap();
    let result = agent
        .run(&[], "Summarize", Default::default())
        .await
        .unwrap();
    let verdicts = result.judgement.expect("judged").verdicts;
    assert_eq!(verdicts.len(), 2);
    assert!(verdicts[0].met, "{:?}", verdicts[0]);
    assert!(
        verdicts[0].evidence.iter().all(|q| q.seq.is_some()),
        "quotes point into the ledger"
    );
    assert!(!verdicts[1].met, "{:?}", verdicts[1]);

    struct Seen(Mutex<Option<(Evidence, usize)>>);
    impl Critic for Seen {
        fn review<'a>(
            &'a self,
            evidence: &'a Evidence,
            key_results: &'a [KeyResult],
        ) -> praxis::ports::BoxFuture<'a, Judgement> {
            *self.0.lock().unwrap() = Some((evidence.clone(), key_results.len()));
            Box::pin(async { Judgement::default() })
        }
    }
    let seen = Arc::new(Seen(Mutex::new(None)));
    let agent = mock(dir.path())
        .critic_with(seen.clone(), vec![KeyResult::text("anything")])
        .build()
        .unwrap();
    let result = agent
        .run(&[], "Summarize", Default::default())
        .await
        .unwrap();
    let (evidence, n) = seen.0.lock().unwrap().take().expect("reviewed");
    assert_eq!(n, 1);
    let answer = result.text.unwrap();
    assert!(evidence.items.iter().any(|i| i.text == answer));
}

#[tokio::test]
async fn a_file_delivery_appends_one_summary_per_run() {
    let dir = workspace();
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("runs.jsonl");
    let agent = mock(dir.path())
        .delivery(Arc::new(JsonlFile(path.clone())))
        .build()
        .unwrap();
    let a = agent
        .run(&[], "Summarize", Default::default())
        .await
        .unwrap();
    let b = agent.run(&[], "Again", Default::default()).await.unwrap();
    assert_eq!(a.delivery_error, None);
    let lines: Vec<RunSummary> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, vec![RunSummary::of(&a), RunSummary::of(&b)]);
    assert_eq!(lines[0].stop_reason, StopReason::Completed);

    // A file that cannot be written is reported, and the result still comes back.
    let agent = mock(dir.path())
        .delivery(Arc::new(JsonlFile(
            out.path().join("missing/dir/runs.jsonl"),
        )))
        .build()
        .unwrap();
    let c = agent
        .run(&[], "Summarize", Default::default())
        .await
        .unwrap();
    assert!(c.delivery_error.unwrap().contains("missing/dir"));
    assert!(c.text.is_some());
}

/// What the receiver saw of each delivery: its attempt header, whether the signature
/// matched, the body.
type Seen = Arc<Mutex<Vec<(String, bool, Vec<u8>)>>>;

/// A receiver that checks the signature with its own HMAC and answers 503 to the first
/// `fail_first` deliveries.
#[derive(Clone)]
struct Receiver {
    secret: &'static [u8],
    fail_first: usize,
    seen: Seen,
    final_status: StatusCode,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut mac = Hmac::<Sha256>::new_from_slice(r.secret).unwrap();
    mac.update(&body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let signed = headers
        .get("x-praxis-signature")
        .and_then(|v| v.to_str().ok())
        == Some(expected.as_str());
    let attempt = headers
        .get("x-praxis-attempt")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut seen = r.seen.lock().unwrap();
    seen.push((attempt, signed, body.to_vec()));
    if !signed {
        StatusCode::UNAUTHORIZED
    } else if seen.len() <= r.fail_first {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        r.final_status
    }
}

async fn start(receiver: Receiver) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(receiver);
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn fast(mut hook: Webhook) -> Webhook {
    hook.base_delay = std::time::Duration::from_millis(5);
    hook.max_delay = std::time::Duration::from_millis(20);
    hook.max_attempts = 4;
    hook
}

#[tokio::test]
async fn the_webhook_signs_retries_with_backoff_and_is_delivered_on_the_third_attempt() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let url = start(Receiver {
        secret: b"s3cret",
        fail_first: 2,
        seen: seen.clone(),
        final_status: StatusCode::NO_CONTENT,
    })
    .await;
    let dir = workspace();
    let hook = fast(Webhook::new(&url, "s3cret").unwrap());
    let agent = mock(dir.path()).delivery(Arc::new(hook)).build().unwrap();
    let result = agent
        .run(&[], "Summarize", Default::default())
        .await
        .unwrap();
    assert_eq!(result.delivery_error, None);
    let seen = seen.lock().unwrap().clone();
    let attempts: Vec<&str> = seen.iter().map(|(a, _, _)| a.as_str()).collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    assert!(seen.iter().all(|(_, signed, _)| *signed));
    let summary: RunSummary = serde_json::from_slice(&seen[2].2).unwrap();
    assert_eq!(summary, RunSummary::of(&result));
}

#[tokio::test]
async fn the_webhook_gives_up_after_its_attempts_and_does_not_retry_a_refusal() {
    let dir = workspace();
    // Always 503: every attempt is made, then the error says how many.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let url = start(Receiver {
        secret: b"k",
        fail_first: usize::MAX,
        seen: seen.clone(),
        final_status: StatusCode::OK,
    })
    .await;
    let agent = mock(dir.path())
        .delivery(Arc::new(fast(Webhook::new(&url, "k").unwrap())))
        .build()
        .unwrap();
    let result = agent
        .run(&[], "Summarize", Default::default())
        .await
        .unwrap();
    let error = result.delivery_error.unwrap();
    assert!(
        error.contains("failed 4 times") && error.contains("503"),
        "{error}"
    );
    assert_eq!(seen.lock().unwrap().len(), 4);

    // The wrong secret: the receiver answers 401, which is final.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let url = start(Receiver {
        secret: b"right",
        fail_first: 0,
        seen: seen.clone(),
        final_status: StatusCode::OK,
    })
    .await;
    let agent = mock(dir.path())
        .delivery(Arc::new(fast(Webhook::new(&url, "wrong").unwrap())))
        .build()
        .unwrap();
    let result = agent
        .run(&[], "Summarize", Default::default())
        .await
        .unwrap();
    assert!(result.delivery_error.unwrap().contains("HTTP 401"));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].1);
}

#[test]
fn webhook_settings_and_signatures_are_checked() {
    for bad in [
        "",
        "not a url",
        "ftp://host/x",
        "file:///etc/passwd",
        "http://",
    ] {
        assert!(Webhook::new(bad, "k").is_err(), "{bad:?}");
    }
    assert!(
        Webhook::new("http://127.0.0.1:1/x", "").is_err(),
        "empty secret"
    );
    let sig = Webhook::signature(b"k", b"body");
    assert!(Webhook::verify(b"k", b"body", &sig));
    assert!(!Webhook::verify(b"k", b"body!", &sig));
    assert!(!Webhook::verify(b"other", b"body", &sig));
    assert!(!Webhook::verify(
        b"k",
        b"body",
        sig.trim_start_matches("sha256=")
    ));
    assert!(!Webhook::verify(b"k", b"body", "sha256=zz"));
}
