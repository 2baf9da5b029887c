//! The HTTP API end to end: a real server on 127.0.0.1:0 in this process, driven over HTTP
//! with reqwest; real runs (scripted provider, real tools, real SQLite ledger).
//!
//! `#[tokio::test]` runs on one thread: the server's tasks and the test's client share it,
//! which makes "a follower is slower than the live channel" deterministic where a test
//! needs it.

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use praxis_ledger::tokens::TokenStore;
use praxis_runtime::{DataHome, WritGrant};
use praxis_server::{RunView, Server, ServerConfig, ServerError, WorkspaceRoots};
use praxis_writ::{IssuerKey, WritSpec};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tempfile::TempDir;

struct Harness {
    home: TempDir,
    ws: TempDir,
    server: Option<Server>,
    url: String,
    http: reqwest::Client,
    key: Arc<IssuerKey>,
    token: Option<String>,
}

impl Harness {
    async fn start(configure: impl FnOnce(&mut ServerConfig)) -> Harness {
        let home = tempfile::tempdir().unwrap();
        let ws = tempfile::tempdir().unwrap();
        std::fs::write(ws.path().join("README.md"), "# Served\n").unwrap();
        let key = Arc::new(IssuerKey::generate());
        let mut config = ServerConfig::new(DataHome::at(home.path()));
        config.workspace_roots = WorkspaceRoots::parse(ws.path().to_str().unwrap()).unwrap();
        let writ_key = key.clone();
        config.writs = Some(Arc::new(move |token: Option<&str>| {
            let token = match token {
                Some(t) => t.to_string(),
                None => praxis_writ::issue(
                    &WritSpec::development("test"),
                    &writ_key,
                    SystemTime::now(),
                )?,
            };
            Ok(WritGrant {
                token,
                anchor: writ_key.anchor(),
            })
        }));
        configure(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server::start(listener, config).await.unwrap();
        Harness {
            url: server.url(),
            server: Some(server),
            home,
            ws,
            http: reqwest::Client::new(),
            key,
            token: None,
        }
    }

    fn tokens(&self) -> TokenStore {
        TokenStore::open(&self.home.path().join("ledger.db")).unwrap()
    }

    fn req(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let b = self.http.request(method, format!("{}{path}", self.url));
        match token.or(self.token.as_deref()) {
            Some(t) => b.bearer_auth(t),
            None => b,
        }
    }

    async fn get_as(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let r = self
            .req(reqwest::Method::GET, path, token)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.get_as(path, None).await
    }

    async fn post_as(&self, path: &str, body: Value, token: Option<&str>) -> (StatusCode, Value) {
        let r = self
            .req(reqwest::Method::POST, path, token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.post_as(path, body, None).await
    }

    /// `POST /v1/approvals/{approval}` (a run id, or `run:call`) with `decision`.
    async fn decide(&self, approval: &str, decision: Value) -> (StatusCode, Value) {
        self.post(&format!("/v1/approvals/{approval}"), decision)
            .await
    }

    /// The Prometheus exposition of `GET /metrics`.
    async fn metrics(&self) -> String {
        self.req(reqwest::Method::GET, "/metrics", None)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    fn writ(&self, spec: &WritSpec) -> String {
        praxis_writ::issue(spec, &self.key, SystemTime::now()).unwrap()
    }

    /// A run with the given script in the test workspace; returns its id.
    async fn create(&self, script: Value, extra: Value) -> String {
        let mut body = json!({
            "task": "served task",
            "workspace": self.ws.path().to_str().unwrap(),
            "script": script,
        });
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            body[k] = v;
        }
        let (status, created) = self.post("/v1/runs", body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["id"].as_str().unwrap().to_string()
    }

    async fn wait_status(&self, id: &str, wanted: &[&str]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, view) = self.get(&format!("/v1/runs/{id}")).await;
            assert_eq!(status, StatusCode::OK, "{view}");
            if wanted.contains(&view["status"].as_str().unwrap_or("")) {
                return view;
            }
            assert!(
                Instant::now() < deadline,
                "run {id} never reached {wanted:?}: {view}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_approval(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, list) = self.get("/v1/approvals").await;
            if let Some(a) = list["approvals"]
                .as_array()
                .and_then(|a| a.iter().find(|a| a["run_id"] == id))
            {
                return a.clone();
            }
            assert!(Instant::now() < deadline, "no approval for {id}: {list}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn export(&self, id: &str) -> Vec<Value> {
        let r = self
            .req(reqwest::Method::GET, &format!("/v1/runs/{id}/ledger"), None)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.text()
            .await
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Reads one SSE connection to its end (or until `stop_after` entries): the entries as
    /// (id, kind, data) and the number of deltas seen.
    async fn feed(
        &self,
        id: &str,
        last_event_id: Option<u64>,
        stop_after: Option<usize>,
    ) -> (Vec<(u64, String, Value)>, usize) {
        let mut req = self.req(reqwest::Method::GET, &format!("/v1/runs/{id}/events"), None);
        if let Some(last) = last_event_id {
            req = req.header("Last-Event-ID", last.to_string());
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let mut events = r.bytes_stream().eventsource();
        let (mut entries, mut deltas) = (Vec::new(), 0);
        while let Some(event) = events.next().await {
            let event = event.unwrap();
            if event.event == "delta" {
                let delta: Value = serde_json::from_str(&event.data).unwrap();
                assert!(delta["text"].is_string(), "{delta}");
                deltas += 1;
                continue;
            }
            let data: Value = serde_json::from_str(&event.data).unwrap();
            entries.push((event.id.parse().unwrap(), event.event.clone(), data));
            if stop_after.is_some_and(|n| entries.len() >= n) {
                break;
            }
        }
        (entries, deltas)
    }

    async fn stop(mut self) -> TempDir {
        self.server.take().unwrap().shutdown().await.unwrap();
        self.home
    }
}

fn answer_script(answer: &str) -> Value {
    json!({"turns": [
        {"content": "", "tool_calls": [{"id": "c1", "name": "fs_read", "arguments": {"path": "README.md"}}]},
        {"content": answer},
    ]})
}

fn write_script() -> Value {
    json!({"turns": [
        {"content": "", "tool_calls": [{"id": "w1", "name": "fs_write", "arguments": {"path": "out.txt", "content": "written\n"}}]},
        {"content": "wrote out.txt"},
    ]})
}

fn approval_writ_spec() -> WritSpec {
    let mut spec = WritSpec::development("test");
    spec.approvals.tools = vec!["fs_write".into()];
    spec
}

/// The same writ, issued for `tenant`.
fn approval_writ_for(tenant: &str) -> WritSpec {
    let mut spec = approval_writ_spec();
    spec.tenant = tenant.into();
    spec
}

#[tokio::test]
async fn run_lifecycle_with_an_inline_script() {
    let h = Harness::start(|_| {}).await;
    let id = h
        .create(
            answer_script("the readme says Served"),
            json!({"limits": {"max_steps": 5, "max_seconds": 60}}),
        )
        .await;
    let view = h.wait_status(&id, &["completed", "failed"]).await;
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["final_answer"], "the readme says Served");
    assert_eq!(view["stop_reason"], "completed");
    assert_eq!(view["steps"], 2);
    assert_eq!(view["tool_calls"], 1);
    assert_eq!(view["id"], id);
    assert_eq!(view["tenant"], "default");

    // The ledger export is the JSONL of `praxis ledger export`: a verified chain ending in
    // `run_finished` and its signed checkpoint... (no checkpoint key here: run_finished).
    let entries = h.export(&id).await;
    assert_eq!(entries[0]["kind"], "run_started");
    assert!(entries.iter().any(|e| e["kind"] == "run_finished"));
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["seq"], i as u64 + 1);
        assert_eq!(e["run_id"], id);
    }

    // A finished run's feed replays every entry, ids = seq, event = kind, data = export line,
    // and ends.
    let (feed, _) = h.feed(&id, None, None).await;
    assert_eq!(feed.len(), entries.len());
    for ((seq, kind, data), exported) in feed.iter().zip(&entries) {
        assert_eq!(*seq, exported["seq"].as_u64().unwrap());
        assert_eq!(kind, exported["kind"].as_str().unwrap());
        assert_eq!(data, exported);
    }

    // Lists, filters and paging.
    let (_, list) = h.get("/v1/runs?status=completed").await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["runs"][0]["id"], id);
    let (_, list) = h.get("/v1/runs?status=running").await;
    assert_eq!(list["total"], 0);
    let id2 = h.create(answer_script("second"), json!({})).await;
    h.wait_status(&id2, &["completed"]).await;
    let (_, page) = h.get("/v1/runs?limit=1&offset=1").await;
    assert_eq!(page["total"], 2);
    assert_eq!(page["runs"].as_array().unwrap().len(), 1);
    assert_eq!(
        page["runs"][0]["id"], id,
        "newest first: the second page holds the first run"
    );
    let (status, err) = h.get("/v1/runs?status=sleeping").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["field"], "status");

    // Tools, writ verification, metrics, OpenAPI.
    let (_, tools) = h.get("/v1/tools").await;
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"fs_read") && names.contains(&"shell"),
        "{names:?}"
    );
    assert_eq!(tools["tools"][0]["parameters"]["type"], "object");
    assert_eq!(tools["tools"][0]["source"], "built-in");
    let good = h.writ(&WritSpec::development("x"));
    let (_, verdict) = h.post("/v1/writs/verify", json!({"writ": good})).await;
    assert_eq!(verdict["valid"], true, "{verdict}");
    assert_eq!(verdict["writ"]["subject"], "developer@x");
    let foreign = praxis_writ::issue(
        &WritSpec::development("x"),
        &IssuerKey::generate(),
        SystemTime::now(),
    )
    .unwrap();
    let (_, verdict) = h.post("/v1/writs/verify", json!({"writ": foreign})).await;
    assert_eq!(verdict["valid"], false);
    assert!(verdict["error"].as_str().unwrap().len() > 5);
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("praxis_runs{status=\"completed\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("praxis_active_runs 0"));
    assert!(
        metrics.contains(
            "praxis_http_requests_total{method=\"POST\",route=\"/v1/runs\",status=\"201\"} 2"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("praxis_ledger_entries_appended_total"));
    let (_, doc) = h.get("/openapi.json").await;
    for path in [
        "/v1/runs",
        "/v1/runs/{id}",
        "/v1/runs/{id}/events",
        "/v1/approvals/{id}",
        "/v1/writs/verify",
        "/ready",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["CreateRun"].is_object());
    assert!(doc["paths"]["/v1/schema/records"].is_object());
    // The published record and feed schemas, as committed in the repository.
    for (route, file) in [
        ("/v1/schema/records", "records.schema.json"),
        ("/v1/schema/feed", "feed.schema.json"),
    ] {
        let (status, schema) = h.get(route).await;
        assert_eq!(status, StatusCode::OK, "{route}");
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../schema")
            .join(file);
        let committed: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(schema, committed, "{route}");
    }
    // Without a token (auth is off here) readiness says nothing else.
    let (status, ready) = h.get("/ready").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ready, json!({"status": "ready"}));
    h.stop().await;
}

#[tokio::test]
async fn reconnecting_with_last_event_id_loses_nothing_and_repeats_nothing() {
    let h = Harness::start(|_| {}).await;
    let writ = h.writ(&approval_writ_spec());
    // The run stops at the approval, so the first connection ends mid-run for sure.
    let id = h.create(write_script(), json!({"writ": writ})).await;
    h.wait_approval(&id).await;
    let (first, _) = h.feed(&id, None, Some(3)).await;
    assert_eq!(first.iter().map(|e| e.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    // A second follower, from the start, in parallel with the rest of the run.
    let all = async { h.feed(&id, None, None).await.0 };
    let rest = async { h.feed(&id, Some(3), None).await.0 };
    let raw = async {
        h.req(reqwest::Method::GET, &format!("/v1/runs/{id}/events"), None)
            .header("Last-Event-ID", "3")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let approve = async {
        tokio::task::yield_now().await;
        let (status, answer) = h.decide(&id, json!({"decision": "approve"})).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    };
    let (all, rest, raw, ()) = tokio::join!(all, rest, raw, approve);
    // On the wire: entries carry `id: SEQ` and `event: KIND`; deltas carry no id, so they
    // never move a client's resumption point.
    let blocks: Vec<&str> = raw.split("\n\n").filter(|b| !b.trim().is_empty()).collect();
    let deltas = blocks.iter().filter(|b| b.contains("event: delta")).count();
    assert!(deltas > 0, "no deltas streamed live:\n{raw}");
    for block in &blocks {
        if block.contains("event: delta") {
            assert!(!block.lines().any(|l| l.starts_with("id:")), "{block}");
        } else if !block.starts_with(':') {
            assert!(block.lines().any(|l| l.starts_with("id: ")), "{block}");
        }
    }
    let joined: Vec<u64> = first.iter().chain(&rest).map(|e| e.0).collect();
    let export = h.export(&id).await;
    let expected: Vec<u64> = (1..=export.len() as u64).collect();
    assert_eq!(
        joined, expected,
        "the resumed feed has a gap or a duplicate"
    );
    assert_eq!(all.iter().map(|e| e.0).collect::<Vec<_>>(), expected);
    // Both followers saw the same entries, byte for byte the export.
    for ((_, _, a), b) in first.iter().chain(&rest).zip(&all) {
        assert_eq!(a, &b.2);
    }
    for ((_, _, a), b) in all.iter().zip(&export) {
        assert_eq!(a, b);
    }
    assert!(all.iter().any(|e| e.1 == "approval_decided"));
    assert!(all.iter().any(|e| e.1 == "run_finished"));
    h.stop().await;
}

#[tokio::test]
async fn a_follower_too_slow_for_the_live_channel_is_dropped_and_resumes_from_the_ledger() {
    // A live buffer of one event: the batch after the approval (several entries, and the
    // streamed deltas of the reply) overflows it before this single-threaded test reads.
    let h = Harness::start(|c| c.follower_buffer = 1).await;
    let writ = h.writ(&approval_writ_spec());
    let id = h.create(write_script(), json!({"writ": writ})).await;
    h.wait_approval(&id).await;
    let follow = async {
        let mut seen: Vec<(u64, String, Value)> = Vec::new();
        let mut connections = 0;
        loop {
            connections += 1;
            let (part, _) = h.feed(&id, seen.last().map(|e| e.0), None).await;
            seen.extend(part);
            if seen.iter().any(|e| e.1 == "run_finished") {
                return (seen, connections);
            }
            assert!(connections < 50, "never reached run_finished: {seen:?}");
        }
    };
    let approve = async {
        tokio::task::yield_now().await;
        h.decide(&id, json!({"decision": "approve", "reason": "ok"}))
            .await
    };
    let ((seen, connections), (status, _)) = tokio::join!(follow, approve);
    assert_eq!(status, StatusCode::OK);
    assert!(connections > 1, "the slow follower was never dropped");
    let export = h.export(&id).await;
    let run_finished = export
        .iter()
        .position(|e| e["kind"] == "run_finished")
        .unwrap();
    let seqs: Vec<u64> = seen.iter().map(|e| e.0).collect();
    assert_eq!(seqs, (1..=run_finished as u64 + 1).collect::<Vec<_>>());
    let metrics = h.metrics().await;
    assert!(!metrics.contains("praxis_sse_dropped_total 0"), "{metrics}");
    h.stop().await;
}

/// A polled run's view is read from the ledger once per entry: asked again before its next
/// entry, it is the view kept at the last one (`praxis_run_views_reused_total` counts them),
/// and the next entry makes the next view new.
#[tokio::test]
async fn a_polled_run_this_server_drives_never_reads_its_ledger() {
    let h = Harness::start(|_| {}).await;
    let counter = |name: &'static str| {
        let h = &h;
        async move {
            let metrics = h.metrics().await;
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .unwrap_or_else(|| panic!("no {name} in {metrics}"))
                .parse::<u64>()
                .unwrap()
        }
    };
    let writ = h.writ(&approval_writ_spec());
    let id = h.create(write_script(), json!({"writ": writ})).await;
    h.wait_approval(&id).await;
    h.wait_status(&id, &["awaiting_approval"]).await;
    // Waiting for its approval: no entry comes, the view is the one kept.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, waiting) = h.get(&format!("/v1/runs/{id}")).await;
    let before = counter("praxis_run_views_reused_total").await;
    for _ in 0..3 {
        let (status, view) = h.get(&format!("/v1/runs/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(view, waiting);
    }
    assert_eq!(counter("praxis_run_views_reused_total").await, before + 3);
    let (status, _) = h
        .decide(&format!("{id}:w1"), json!({"decision": "approve"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let run_view = |view: Value| serde_json::from_value::<RunView>(view).expect("a run view");
    let (waiting, done) = (
        run_view(waiting),
        run_view(h.wait_status(&id, &["completed", "failed"]).await),
    );
    assert_eq!(done.status, "completed", "{done:?}");
    assert!(done.last_seq > waiting.last_seq, "{done:?}");
    // Every view of it while it ran was made from the entries this server saw durable.
    assert_eq!(counter("praxis_run_views_read_total").await, 0);
    // The same as its ledger says, once the run is no longer driven here.
    let from_ledger = loop {
        let (_, view) = h.get(&format!("/v1/runs/{id}")).await;
        let view = run_view(view);
        if view.phase.is_none() {
            break view;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut polled = done;
    polled.phase = None;
    polled.active_tool = None;
    assert_eq!(
        serde_json::to_value(&polled).unwrap(),
        serde_json::to_value(&from_ledger).unwrap()
    );
    h.stop().await;
}

/// Polling a live run waits for no thread of the blocking pool: with every one of them
/// taken (by slow ledger reads, say), a run this server drives is still answered from what
/// it saw become durable.
#[test]
fn a_live_run_is_answered_while_the_blocking_pool_is_taken() {
    const BLOCKING: usize = 2;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(BLOCKING)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let h = Harness::start(|_| {}).await;
        let writ = h.writ(&approval_writ_spec());
        let id = h.create(write_script(), json!({"writ": writ})).await;
        h.wait_approval(&id).await;
        let waiting = h.wait_status(&id, &["awaiting_approval"]).await;
        // Every blocking thread held until `release` is dropped.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let held = Arc::new(std::sync::Mutex::new(held));
        let (taken_tx, mut taken) = tokio::sync::mpsc::unbounded_channel();
        let blockers: Vec<_> = (0..BLOCKING)
            .map(|_| {
                let (held, taken_tx) = (held.clone(), taken_tx.clone());
                tokio::task::spawn_blocking(move || {
                    taken_tx.send(()).unwrap();
                    // Each waits for the channel's end, one after the other.
                    let _ = held.lock().unwrap().recv();
                })
            })
            .collect();
        for _ in 0..BLOCKING {
            taken.recv().await.unwrap();
        }
        let polled = tokio::time::timeout(Duration::from_secs(5), h.get(&format!("/v1/runs/{id}")))
            .await
            .expect("a poll of a live run waited for the blocking pool");
        assert_eq!(polled.0, StatusCode::OK);
        assert_eq!(polled.1, waiting);
        drop(release);
        for blocker in blockers {
            blocker.await.unwrap();
        }
        let (status, _) = h
            .decide(&format!("{id}:w1"), json!({"decision": "approve"}))
            .await;
        assert_eq!(status, StatusCode::OK);
        let done = h.wait_status(&id, &["completed", "failed"]).await;
        assert_eq!(done["status"], "completed", "{done}");
        h.stop().await;
    });
}

#[tokio::test]
async fn approvals_over_http() {
    let h = Harness::start(|_| {}).await;
    let writ = h.writ(&approval_writ_spec());
    let id = h.create(write_script(), json!({"writ": writ})).await;
    let pending = h.wait_approval(&id).await;
    assert_eq!(pending["tool"], "fs_write");
    assert_eq!(pending["call_id"], "w1");
    assert_eq!(pending["arguments"]["path"], "out.txt");
    assert_eq!(pending["id"], format!("{id}:w1"));
    let view = h.wait_status(&id, &["awaiting_approval"]).await;
    assert_eq!(view["phase"], "awaiting_approval");
    assert_eq!(view["active_tool"], "fs_write");
    let (status, err) = h
        .decide(&format!("{id}:w1"), json!({"decision": "maybe"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["field"], "decision");
    let (status, answer) = h
        .decide(
            &format!("{id}:w1"),
            json!({"decision": "approve", "reason": "looks fine"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["by"], "api:default");
    let (status, _) = h
        .decide(&format!("{id}:w1"), json!({"decision": "deny"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "a decision is final");
    let view = h.wait_status(&id, &["completed", "failed"]).await;
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(
        std::fs::read_to_string(h.ws.path().join("out.txt")).unwrap(),
        "written\n"
    );
    let export = h.export(&id).await;
    let decided = export
        .iter()
        .find(|e| e["kind"] == "approval_decided")
        .unwrap();
    assert_eq!(decided["payload"]["approved"], true);
    assert_eq!(decided["payload"]["by"], "api:default");
    let (_, list) = h.get("/v1/approvals").await;
    assert_eq!(list["approvals"], json!([]));

    // Denied: the model sees the denial, nothing is written.
    std::fs::remove_file(h.ws.path().join("out.txt")).unwrap();
    let id = h.create(write_script(), json!({"writ": writ})).await;
    h.wait_approval(&id).await;
    let (status, _) = h
        .decide(&id, json!({"decision": "deny", "reason": "not today"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    h.wait_status(&id, &["completed", "failed"]).await;
    assert!(!h.ws.path().join("out.txt").exists());
    h.stop().await;
}

#[tokio::test]
async fn auth_401_and_tenant_isolation_on_every_run_route() {
    let mut h = Harness::start(|_| {}).await;
    let store = h.tokens();
    let a = store.create("acme").unwrap();
    let b = store.create("globex").unwrap();

    // Auth is on as soon as a token exists; health and readiness stay open.
    let (status, err) = h.get("/v1/runs").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(err["error"].as_str().unwrap().contains("Bearer"));
    let (status, _) = h.get_as("/v1/runs", Some("prx_0000")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let r = h
        .req(reqwest::Method::GET, "/v1/runs", None)
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(h.get("/health").await.0, StatusCode::OK);
    assert_eq!(h.get("/ready").await.0, StatusCode::OK);
    for path in [
        "/metrics",
        "/openapi.json",
        "/v1/tools",
        "/v1/approvals",
        "/v1/runs/x",
    ] {
        assert_eq!(h.get(path).await.0, StatusCode::UNAUTHORIZED, "{path}");
    }

    // Tenant A: one run waiting for approval, one finished.
    h.token = Some(a.clone());
    let writ = h.writ(&approval_writ_for("acme"));
    let waiting = h.create(write_script(), json!({"writ": writ})).await;
    h.wait_approval(&waiting).await;
    let done = h.create(answer_script("done"), json!({})).await;
    let view = h.wait_status(&done, &["completed"]).await;
    assert_eq!(view["tenant"], "acme");

    let routes: Vec<(reqwest::Method, String, Value)> = vec![
        (
            reqwest::Method::GET,
            format!("/v1/runs/{done}"),
            Value::Null,
        ),
        (
            reqwest::Method::GET,
            format!("/v1/runs/{done}/events"),
            Value::Null,
        ),
        (
            reqwest::Method::GET,
            format!("/v1/runs/{done}/ledger"),
            Value::Null,
        ),
        (
            reqwest::Method::POST,
            format!("/v1/runs/{done}/resume"),
            json!({}),
        ),
        (
            reqwest::Method::GET,
            format!("/v1/runs/{done}/world"),
            Value::Null,
        ),
        (
            reqwest::Method::GET,
            format!("/v1/runs/{done}/world?at=1&path=README.md"),
            Value::Null,
        ),
        (
            reqwest::Method::GET,
            format!("/v1/runs/{done}/diff/{done}"),
            Value::Null,
        ),
        (
            reqwest::Method::POST,
            format!("/v1/runs/{done}/replay"),
            json!({}),
        ),
        (
            reqwest::Method::POST,
            format!("/v1/runs/{done}/branch"),
            json!({"at": 2, "script": answer_script("stolen")}),
        ),
        (
            reqwest::Method::GET,
            format!("/v1/runs/{waiting}"),
            Value::Null,
        ),
        (
            reqwest::Method::GET,
            format!("/v1/runs/{waiting}/events?after=999"),
            Value::Null,
        ),
        (
            reqwest::Method::GET,
            format!("/v1/runs/{waiting}/ledger"),
            Value::Null,
        ),
        (
            reqwest::Method::POST,
            format!("/v1/approvals/{waiting}:w1"),
            json!({"decision": "deny", "reason": "b"}),
        ),
        (
            reqwest::Method::POST,
            format!("/v1/approvals/{waiting}"),
            json!({"decision": "deny", "reason": "b"}),
        ),
        (
            reqwest::Method::POST,
            format!("/v1/runs/{waiting}/cancel"),
            json!({}),
        ),
    ];
    for (method, path, body) in &routes {
        let mut req = h.req(method.clone(), path, Some(&b));
        if !body.is_null() {
            req = req.json(body);
        }
        let r = req.send().await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::NOT_FOUND,
            "tenant B got {} for {method} {path}",
            r.status()
        );
        let err: Value = r.json().await.unwrap();
        assert!(err["error"].is_string());
    }
    // B's lists show nothing of A's (its refused branch included).
    let (_, list) = h.get_as("/v1/runs", Some(&b)).await;
    assert_eq!(list["total"], 0, "{list}");
    // A diff is refused when either run is another tenant's.
    let (status, created) = h
        .post_as(
            "/v1/runs",
            json!({"task": "b's own", "script": answer_script("mine")}),
            Some(&b),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let own = created["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while h.get_as(&format!("/v1/runs/{own}"), Some(&b)).await.1["status"] != "completed" {
        assert!(Instant::now() < deadline, "B's run never completed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for path in [
        format!("/v1/runs/{own}/diff/{done}"),
        format!("/v1/runs/{done}/diff/{own}"),
    ] {
        let (status, err) = h.get_as(&path, Some(&b)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {err}");
        let (status, err) = h.get_as(&path, Some(&a)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path} as A: {err}");
    }
    let (status, err) = h
        .get_as(&format!("/v1/runs/{own}/diff/{own}"), Some(&b))
        .await;
    assert_eq!(status, StatusCode::OK, "B diffs its own runs: {err}");
    let (_, list) = h.get_as("/v1/approvals", Some(&b)).await;
    assert_eq!(list["approvals"], json!([]));
    // A still sees and decides its own (B's denial attempts changed nothing).
    for (method, path, _) in routes
        .iter()
        .filter(|(m, p, _)| *m == reqwest::Method::GET && !p.contains("events"))
    {
        let r = h.req(method.clone(), path, None).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    let (_, list) = h.get("/v1/approvals").await;
    assert_eq!(list["approvals"].as_array().unwrap().len(), 1);
    let (status, _) = h.post(&format!("/v1/runs/{done}/resume"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, answer) = h.decide(&waiting, json!({"decision": "approve"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["by"], "api:acme");
    let view = h.wait_status(&waiting, &["completed", "failed"]).await;
    assert_eq!(view["status"], "completed");
    let (status, _) = h
        .post(&format!("/v1/runs/{waiting}/cancel"), json!({}))
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a finished run cannot be cancelled"
    );
    h.stop().await;
}

/// A run's end is durable (and seen) before its driver has torn its worker down: a cancel
/// in between is refused like any cancel of a finished run, never answered "cancelling".
/// Two threads, so the client's cancel can land while the driver is still tearing down
/// (without the check, most runs of this test hit that window at least once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_seen_ended_is_not_cancelled_while_its_driver_tears_down() {
    // As `praxis serve` does: each run's end is attested by a checkpoint after `run_finished`.
    let key = praxis_ledger::checkpoint::CheckpointKey::generate().unwrap();
    let h = Harness::start(|c| c.checkpoint_key = Some(Arc::new(key))).await;
    let first = h.create(write_script(), json!({})).await;
    let (entries, _) = h.feed(&first, None, None).await;
    let kinds: Vec<&str> = entries.iter().map(|(_, kind, _)| kind.as_str()).collect();
    assert_eq!(kinds[kinds.len() - 2..], ["run_finished", "checkpoint"]);
    for _ in 0..50 {
        let id = h.create(write_script(), json!({})).await;
        // The feed hands over `run_finished` as soon as it is durable; the cancel follows.
        let (seen, _) = h.feed(&id, None, Some(entries.len() - 1)).await;
        assert_eq!(seen.last().unwrap().1, "run_finished");
        let cancel = || async {
            let (status, answer) = h.post(&format!("/v1/runs/{id}/cancel"), json!({})).await;
            assert_eq!(status, StatusCode::CONFLICT, "{answer}");
            let error = answer["error"].as_str().unwrap();
            assert!(error.contains("status completed"), "{answer}");
        };
        cancel().await;
        // And once its end is attested (the checkpoint after `run_finished`).
        while !h
            .export(&id)
            .await
            .iter()
            .any(|e| e["kind"] == "checkpoint")
        {
            tokio::task::yield_now().await;
        }
        cancel().await;
    }
    h.stop().await;
}

#[tokio::test]
async fn bad_input_gets_clear_status_codes_and_json_errors() {
    let h = Harness::start(|c| c.body_limit = 64 * 1024).await;
    let ws = h.ws.path().to_str().unwrap().to_string();
    let cases: Vec<(Value, StatusCode, Option<&str>)> = vec![
        (
            json!({"task": 5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("task"),
        ),
        (
            json!({"workspace": ws}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("task"),
        ),
        (
            json!({"task": "t", "colour": "red"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("colour"),
        ),
        (
            json!({"task": "  "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("task"),
        ),
        (
            json!({"task": "t", "max_steps": -1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("max_steps"),
        ),
        (
            json!({"task": "t", "max_steps": 2, "limits": {"max_steps": 3}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("max_steps"),
        ),
        (
            json!({"task": "t", "limits": {"steps": 3}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("limits.steps"),
        ),
        (
            json!({"task": "t", "max_steps": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("max_steps"),
        ),
        (
            json!({"task": "t", "workspace": "/definitely/not/here"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("workspace"),
        ),
        (
            json!({"task": "t", "workspace": ws, "protocol": "xml"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("protocol"),
        ),
        (
            json!({"task": "t", "workspace": ws, "limits": {"max_steps": 0}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("limits.max_steps"),
        ),
        (
            json!({"task": "t", "script": {"turns": "no"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("script"),
        ),
        (
            json!({"task": "t", "script": {"turns": []}, "provider": "mock"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("provider"),
        ),
        (
            json!({"task": "t", "provider": "oracle"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("provider"),
        ),
        (
            json!({"task": "t", "writ": "not-a-writ"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("writ"),
        ),
        (
            json!({"task": "t", "approve": "sometimes"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("approve"),
        ),
    ];
    for (body, expected, field) in cases {
        let (status, err) = h.post("/v1/runs", body.clone()).await;
        assert_eq!(status, expected, "{body} -> {err}");
        assert!(
            err["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{err}"
        );
        assert_eq!(err["field"].as_str(), field, "{body} -> {err}");
    }
    // Malformed JSON, wrong content type, oversized body.
    let r = h
        .req(reqwest::Method::POST, "/v1/runs", None)
        .header("content-type", "application/json")
        .body("{\"task\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    let r = h
        .req(reqwest::Method::POST, "/v1/runs", None)
        .body("task=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = json!({"task": "x".repeat(100 * 1024)});
    let (status, err) = h.post("/v1/runs", big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(err["error"].as_str().unwrap().contains("too large"));
    // Unknown runs and routes.
    for path in [
        "/v1/runs/01nosuchrun",
        "/v1/runs/01nosuchrun/events",
        "/v1/runs/01nosuchrun/ledger",
        "/v1/runs/..%2F..%2Fetc",
        "/v2/runs",
    ] {
        let (status, err) = h.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(err["error"].is_string(), "{path}: {err}");
    }
    let (status, _) = h.post("/v1/runs/01nosuchrun/cancel", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = h
        .post("/v1/approvals/01nosuchrun", json!({"decision": "approve"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let r = h
        .req(reqwest::Method::GET, "/v1/runs/01x/events", None)
        .header("Last-Event-ID", "soon")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "unknown run first");
    let r = h
        .req(reqwest::Method::DELETE, "/v1/runs", None)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    // Still serving.
    let id = h.create(answer_script("fine"), json!({})).await;
    assert_eq!(
        h.wait_status(&id, &["completed"]).await["final_answer"],
        "fine"
    );
    h.stop().await;
}

#[tokio::test]
async fn concurrency_limits_queue_then_429_with_retry_after() {
    let h = Harness::start(|c| {
        c.max_runs = Some(1);
        c.queue_capacity = 1;
        c.retry_after_secs = 7;
    })
    .await;
    let writ = h.writ(&approval_writ_spec());
    // The first run holds the only slot while it waits for approval.
    let first = h.create(write_script(), json!({"writ": writ})).await;
    h.wait_approval(&first).await;
    let body = json!({"task": "queued", "workspace": h.ws.path().to_str().unwrap(), "script": answer_script("second")});
    let (status, queued) = h.post("/v1/runs", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["queue_position"], 1);
    let second = queued["id"].as_str().unwrap().to_string();
    let (_, view) = h.get(&format!("/v1/runs/{second}")).await;
    assert_eq!(view["status"], "queued");
    let r = h
        .req(reqwest::Method::POST, "/v1/runs", None)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "7");
    assert!(
        r.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("queue is full")
    );
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("praxis_queue_depth 1") && metrics.contains("praxis_active_runs 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("praxis_runs{status=\"queued\"} 1"),
        "{metrics}"
    );

    // A follower of the queued run waits for it; cancelling the first frees the slot.
    let follow = async { h.feed(&second, None, None).await.0 };
    let cancel = async {
        tokio::task::yield_now().await;
        h.post(&format!("/v1/runs/{first}/cancel"), json!({})).await
    };
    let (feed, (status, answer)) = tokio::join!(follow, cancel);
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["status"], "cancelling");
    assert_eq!(feed.first().unwrap().1, "run_started");
    assert!(feed.iter().any(|e| e.1 == "run_finished"));
    let view = h.wait_status(&first, &["cancelled"]).await;
    assert!(
        view["error"]
            .as_str()
            .unwrap()
            .contains("cancelled through the API"),
        "{view}"
    );
    assert_eq!(
        h.wait_status(&second, &["completed"]).await["final_answer"],
        "second"
    );

    // A queued run can be cancelled before it starts.
    let blocker = h.create(write_script(), json!({"writ": writ})).await;
    h.wait_approval(&blocker).await;
    let (_, queued) = h.post("/v1/runs", body).await;
    let third = queued["id"].as_str().unwrap().to_string();
    let (status, answer) = h.post(&format!("/v1/runs/{third}/cancel"), json!({})).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (StatusCode::ACCEPTED, Some("cancelled"))
    );
    let (_, view) = h.get(&format!("/v1/runs/{third}")).await;
    assert_eq!(view["status"], "cancelled");
    h.stop().await;
}

#[tokio::test]
async fn the_run_queue_serves_tenants_in_turn_within_the_global_bound() {
    let mut h = Harness::start(|c| c.max_runs = Some(1)).await;
    let a = h.tokens().create("acme").unwrap();
    let b = h.tokens().create("globex").unwrap();
    h.token = Some(a.clone());
    let writ = h.writ(&approval_writ_for("acme"));
    // acme's first run holds the only slot while it waits for approval.
    let held = h.create(write_script(), json!({"writ": writ})).await;
    h.wait_approval(&held).await;
    // acme bursts three runs, then globex queues three.
    let mut runs: Vec<(&str, String, &str)> = Vec::new();
    for (name, token) in [
        ("a1", &a),
        ("a2", &a),
        ("a3", &a),
        ("b1", &b),
        ("b2", &b),
        ("b3", &b),
    ] {
        let body = json!({"task": name, "workspace": h.ws.path().to_str().unwrap(), "script": answer_script(name)});
        let (status, created) = h.post_as("/v1/runs", body, Some(token)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["status"], "queued");
        runs.push((name, created["id"].as_str().unwrap().to_string(), token));
    }
    // The queue's order: tenants in turn, globex first (acme was served last).
    let mut positions = Vec::new();
    for (name, id, token) in &runs {
        let (_, view) = h.get_as(&format!("/v1/runs/{id}"), Some(token)).await;
        assert_eq!(view["status"], "queued", "{view}");
        positions.push((view["queue_position"].as_u64().unwrap(), *name));
    }
    positions.sort();
    let queued: Vec<&str> = positions.iter().map(|p| p.1).collect();
    assert_eq!(queued, ["b1", "a1", "b2", "a2", "b3", "a3"]);

    // Free the slot: the runs go one at a time, in that order.
    let (status, _) = h.post(&format!("/v1/runs/{held}/cancel"), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    for (name, id, token) in &runs {
        h.token = Some(token.to_string());
        assert_eq!(
            h.wait_status(id, &["completed"]).await["final_answer"],
            *name
        );
    }
    let ledger = praxis_ledger::SqliteLedger::open(&h.home.path().join("ledger.db")).unwrap();
    let span = |id: &str| {
        let (mut start, mut end) = (None, None);
        for entry in praxis_ledger::Ledger::entries(&ledger, id, 0).unwrap() {
            match praxis_core::Record::from_entry(&entry.kind, &entry.payload).unwrap() {
                praxis_core::Record::RunStarted(s) => start = Some(s.now),
                praxis_core::Record::RunFinished(f) => end = Some(f.now),
                _ => {}
            }
        }
        (start.unwrap(), end.unwrap())
    };
    let mut spans: Vec<(u64, u64, &str)> = runs
        .iter()
        .map(|(name, id, _)| {
            let (start, end) = span(id);
            (start, end, *name)
        })
        .collect();
    let (held_start, held_end) = span(&held);
    spans.push((held_start, held_end, "held"));
    spans.sort();
    let started: Vec<&str> = spans.iter().map(|s| s.2).collect();
    assert_eq!(started, ["held", "b1", "a1", "b2", "a2", "b3", "a3"]);
    // The most runs at once, from the records' times (an end before a start at the same
    // millisecond): the bound.
    let mut edges: Vec<(u64, i32)> = spans
        .iter()
        .flat_map(|(start, end, _)| [(*start, 1), (*end, -1)])
        .collect();
    edges.sort();
    let (mut now, mut most) = (0, 0);
    for (_, delta) in edges {
        now += delta;
        most = most.max(now);
    }
    assert_eq!(most, 1);
    h.stop().await;
}

#[tokio::test]
async fn per_tenant_limit_lets_other_tenants_through() {
    let mut h = Harness::start(|c| {
        c.max_runs = Some(4);
        c.max_runs_per_tenant = Some(1);
    })
    .await;
    let a = h.tokens().create("acme").unwrap();
    let b = h.tokens().create("globex").unwrap();
    let writ = h.writ(&approval_writ_for("acme"));
    h.token = Some(a.clone());
    let held = h.create(write_script(), json!({"writ": writ})).await;
    h.wait_approval(&held).await;
    let body = json!({"task": "t", "workspace": h.ws.path().to_str().unwrap(), "script": answer_script("ok")});
    let (_, queued) = h.post("/v1/runs", body.clone()).await;
    assert_eq!(queued["status"], "queued", "acme is at its limit");
    let (_, other) = h.post_as("/v1/runs", body, Some(&b)).await;
    assert_eq!(other["status"], "running", "globex is not");
    h.stop().await;
}

#[tokio::test]
async fn shutdown_cancels_running_runs_with_a_reason() {
    let h = Harness::start(|c| c.shutdown_grace = Duration::from_secs(20)).await;
    let writ = h.writ(&approval_writ_spec());
    let id = h.create(write_script(), json!({"writ": writ})).await;
    h.wait_approval(&id).await;
    // A client that connects to the feed and never reads must not keep the server up.
    let mut idle = tokio::net::TcpStream::connect(h.url.trim_start_matches("http://"))
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut idle,
        format!("GET /v1/runs/{id}/events HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let home = h.stop().await;
    let ledger = praxis_ledger::SqliteLedger::open(&home.path().join("ledger.db")).unwrap();
    let entries = praxis_ledger::Ledger::entries(&ledger, &id, 0).unwrap();
    let finished = entries
        .iter()
        .find(|e| e.kind == "run_finished")
        .expect("run_finished recorded");
    assert_eq!(finished.payload["status"], "cancelled");
    assert!(
        finished.payload["error"]
            .as_str()
            .unwrap()
            .contains(praxis_server::SHUTDOWN_REASON)
    );
}

/// A tenant must not reach the data dir (the issuer key, the ledger) through its workspace,
/// nor work outside the workspace roots.
#[tokio::test]
async fn workspaces_reaching_the_data_dir_or_outside_the_roots_are_refused() {
    let h = Harness::start(|_| {}).await;
    let home = h.home.path().to_path_buf();
    std::fs::create_dir_all(home.join("keys")).unwrap();
    let home_name = home.file_name().unwrap().to_str().unwrap().to_string();
    // A symlink inside the accepted root, pointing at the data dir.
    let link = h.ws.path().join("link-to-home");
    std::os::unix::fs::symlink(&home, &link).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let cases = [
        (home.clone(), "the praxis data directory"),
        (home.join("keys"), "the praxis data directory"),
        (home.join("workspaces/x"), "the praxis data directory"),
        (
            home.parent().unwrap().to_path_buf(),
            "the praxis data directory",
        ),
        (link.clone(), "the praxis data directory"),
        (link.join("keys"), "the praxis data directory"),
        (
            h.ws.path().join("..").join(&home_name),
            "the praxis data directory",
        ),
        (elsewhere.path().to_path_buf(), "PRAXIS_WORKSPACE_ROOTS"),
        (
            h.ws.path()
                .join("..")
                .join(elsewhere.path().file_name().unwrap()),
            "PRAXIS_WORKSPACE_ROOTS",
        ),
    ];
    std::fs::create_dir_all(home.join("workspaces/x")).unwrap();
    for (workspace, why) in cases {
        let body = json!({"task": "read the key", "workspace": workspace.to_str().unwrap(),
            "script": {"turns": [{"content": "done"}]}});
        let (status, err) = h.post("/v1/runs", body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}: {err}",
            workspace.display()
        );
        assert_eq!(err["field"], "workspace", "{err}");
        assert!(
            err["error"].as_str().unwrap().contains(why),
            "{}: {err}",
            workspace.display()
        );
    }
    // The accepted root still works.
    let id = h.create(answer_script("ok"), json!({})).await;
    assert_eq!(
        h.wait_status(&id, &["completed"]).await["status"],
        "completed"
    );
    h.stop().await;
}

/// A writ issued for one tenant does not start runs for another tenant's token.
#[tokio::test]
async fn a_writ_for_another_tenant_is_refused_naming_both() {
    let mut h = Harness::start(|_| {}).await;
    let acme = h.tokens().create("acme").unwrap();
    h.token = Some(acme);
    let foreign = h.writ(&approval_writ_for("globex"));
    let body = json!({"task": "t", "workspace": h.ws.path().to_str().unwrap(),
        "script": answer_script("ok"), "writ": foreign});
    let (status, err) = h.post("/v1/runs", body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["field"], "writ");
    let message = err["error"].as_str().unwrap();
    assert!(
        message.contains("`globex`") && message.contains("`acme`"),
        "{message}"
    );
    // Its own tenant's writ is accepted.
    let own = h.writ(&approval_writ_for("acme"));
    let id = h.create(answer_script("ok"), json!({"writ": own})).await;
    assert_eq!(
        h.wait_status(&id, &["completed"]).await["status"],
        "completed"
    );
    h.stop().await;
}

#[tokio::test]
async fn production_mode_names_every_offending_setting() {
    let home = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(DataHome::at(home.path()));
    config.production = true;
    // PRAXIS_MAX_RUNS=0: unbounded (the default is a bound).
    config.max_runs = None;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let problems = match Server::start(listener, config).await {
        Err(ServerError::Production(problems)) => problems,
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("production mode started with every unsafe default"),
    };
    let text = problems.join("\n");
    // The tool fabric is refused only where this host cannot sandbox the worker.
    let sandboxed = praxis_runtime::doctor::sandbox_features()["default_fabric"] == "worker";
    assert_eq!(text.contains("tool fabric"), !sandboxed, "{text}");
    for setting in [
        "PRAXIS_AUTH",
        "PRAXIS_ALLOWED_ORIGINS",
        "PRAXIS_TRUST_ANCHOR",
        "PRAXIS_HOME",
        "PRAXIS_MAX_RUNS ",
        "PRAXIS_MAX_RUNS_PER_TENANT",
    ] {
        assert!(text.contains(setting), "{setting} not named:\n{text}");
    }
    // Fixing settings removes exactly their refusals.
    TokenStore::open(&home.path().join("ledger.db"))
        .unwrap()
        .create("ops")
        .unwrap();
    let mut config = ServerConfig::new(DataHome::at(home.path()));
    config.production = true;
    config.allowed_origins = vec!["https://console.example".into()];
    config.max_runs = Some(2);
    config.max_runs_per_tenant = Some(1);
    let left = praxis_server::production_problems(&config)
        .unwrap()
        .join("\n");
    for fixed in ["PRAXIS_AUTH", "PRAXIS_ALLOWED_ORIGINS", "PRAXIS_MAX_RUNS"] {
        assert!(!left.contains(fixed), "{fixed} still refused:\n{left}");
    }
    assert!(left.contains("PRAXIS_TRUST_ANCHOR") && left.contains("PRAXIS_HOME"));
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let h = Harness::start(|c| c.allowed_origins = vec!["https://console.example".into()]).await;
    let preflight = |origin: &'static str| {
        h.req(reqwest::Method::OPTIONS, "/v1/runs", None)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let ok = preflight("https://console.example").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://console.example"
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    h.stop().await;
}

/// The seq of the first entry of `kind` in an export.
fn first_seq(entries: &[Value], kind: &str) -> u64 {
    entries
        .iter()
        .find(|e| e["kind"] == kind)
        .and_then(|e| e["seq"].as_u64())
        .unwrap_or_else(|| panic!("no {kind} entry"))
}

/// Every property name a schema of the OpenAPI document lists (across `oneOf` variants).
fn schema_properties(doc: &Value, name: &str) -> std::collections::BTreeSet<String> {
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "schema {name} missing");
    let variants: Vec<&Value> = match schema["oneOf"].as_array() {
        Some(variants) => variants.iter().collect(),
        None => vec![schema],
    };
    variants
        .iter()
        .flat_map(|v| v["properties"].as_object().cloned().unwrap_or_default())
        .map(|(k, _)| k)
        .collect()
}

#[tokio::test]
async fn world_diff_replay_and_branch_over_http() {
    let h = Harness::start(|_| {}).await;
    let origin = h.create(write_script(), json!({"approve": "auto"})).await;
    let view = h.wait_status(&origin, &["completed", "failed"]).await;
    assert_eq!(view["status"], "completed", "{view}");
    let entries = h.export(&origin).await;
    let last = entries.len() as u64;
    let first_reply = first_seq(&entries, "model_response");
    let executed = first_seq(&entries, "execution");

    // The listing at the end: what the run changed, and every file with its blob.
    let (status, world) = h.get(&format!("/v1/runs/{origin}/world")).await;
    assert_eq!(status, StatusCode::OK, "{world}");
    assert_eq!(world["run_id"], origin);
    assert_eq!(world["at"], last);
    assert_eq!(world["changed"], json!(["out.txt"]));
    assert!(world["files"]["out.txt"].is_string(), "{world}");
    assert!(world["files"]["README.md"].is_string(), "{world}");
    // Before the write executed, the file did not exist.
    let (status, before) = h
        .get(&format!("/v1/runs/{origin}/world?at={}", executed - 1))
        .await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert_eq!(before["changed"], json!([]));
    assert!(before["files"].get("out.txt").is_none(), "{before}");

    // One file's content, as text; a file that did not exist then is a 404 naming `path`.
    let r = h
        .req(
            reqwest::Method::GET,
            &format!("/v1/runs/{origin}/world?at={executed}&path=out.txt"),
            None,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(r.text().await.unwrap(), "written\n");
    let (status, err) = h
        .get(&format!("/v1/runs/{origin}/world?at=1&path=out.txt"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    assert_eq!(err["field"], "path");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("did not exist at seq 1")
    );

    // The diff from the start, as `praxis world --diff` prints it.
    let (status, diff) = h.get(&format!("/v1/runs/{origin}/world?diff=true")).await;
    assert_eq!(status, StatusCode::OK, "{diff}");
    let text = diff["diff"].as_str().unwrap();
    assert!(text.contains("--- /dev/null"), "{text}");
    assert!(text.contains("+++ b/out.txt"), "{text}");
    assert!(text.contains("+written"), "{text}");
    let (_, early) = h
        .get(&format!(
            "/v1/runs/{origin}/world?diff=true&at={}",
            executed - 1
        ))
        .await;
    assert_eq!(early["diff"], "", "nothing changed yet: {early}");

    // Bad inputs name their field; unknown runs are 404.
    for (query, field) in [
        ("at=abc", "at"),
        ("at=0", "at"),
        (&*format!("at={}", last + 1), "at"),
        ("diff=maybe", "diff"),
        ("diff=true&path=out.txt", "diff"),
    ] {
        let (status, err) = h.get(&format!("/v1/runs/{origin}/world?{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {err}");
        assert_eq!(err["field"], field, "{query}: {err}");
    }
    for path in [
        "/v1/runs/01nosuchrun/world".to_string(),
        format!("/v1/runs/01nosuchrun/diff/{origin}"),
        format!("/v1/runs/{origin}/diff/01nosuchrun"),
    ] {
        let (status, err) = h.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {err}");
    }
    for path in ["/v1/runs/01nosuchrun/replay", "/v1/runs/01nosuchrun/branch"] {
        let (status, err) = h.post(path, json!({"at": 1})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {err}");
    }

    // Replay re-derives every entry.
    let (status, replayed) = h
        .post(&format!("/v1/runs/{origin}/replay"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{replayed}");
    assert_eq!(replayed["status"], "matched", "{replayed}");
    assert_eq!(replayed["entries"], last);
    assert_eq!(replayed["run_id"], origin);
    assert_eq!(replayed["unfinished"], Value::Null);

    // Branch errors are refused before anything starts.
    let other_script = json!({"turns": [
        {"content": "", "tool_calls": [{"id": "w1", "name": "fs_write", "arguments": {"path": "out.txt", "content": "branched\n"}}]},
        {"content": "wrote another out.txt"},
    ]});
    let branch_path = format!("/v1/runs/{origin}/branch");
    let mut bad: Vec<(Value, &str)> = vec![
        (json!({"script": other_script}), "at"),
        (json!({"at": 0, "script": other_script}), "at"),
        (json!({"at": last + 1, "script": other_script}), "at"),
        (json!({"at": "two", "script": other_script}), "at"),
        (
            json!({"at": first_reply - 1, "provider": "nonesuch"}),
            "provider",
        ),
        (
            json!({"at": first_reply - 1, "script": {"turns": 3}}),
            "script",
        ),
        (
            json!({"at": first_reply - 1, "script": other_script, "max_steps": 0}),
            "max_steps",
        ),
        (
            json!({"at": first_reply - 1, "script": other_script, "colour": "red"}),
            "colour",
        ),
    ];
    if first_reply >= 3 {
        // Before the first point where the run waited for the model.
        bad.push((json!({"at": first_reply - 2, "script": other_script}), "at"));
    }
    for (body, field) in &bad {
        let (status, err) = h.post(&branch_path, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {err}");
        assert_eq!(err["field"], *field, "{body}: {err}");
    }
    let (_, list) = h.get("/v1/runs").await;
    assert_eq!(list["total"], 1, "no refused branch left a run: {list}");

    // A branch from before the first reply, with another script: a new run in the
    // caller's tenant, in its own workspace holding the origin's world at that point.
    let (status, branched) = h
        .post(
            &branch_path,
            json!({"at": first_reply - 1, "script": other_script, "approve": "auto",
                   "task": "write something else"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{branched}");
    let branch = branched["id"].as_str().unwrap().to_string();
    assert_ne!(branch, origin);
    assert_eq!(branched["branch_of"], origin);
    assert_eq!(branched["branched_at"], first_reply - 1);
    let view = h.wait_status(&branch, &["completed", "failed"]).await;
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["final_answer"], "wrote another out.txt");
    assert_eq!(view["tenant"], "default");
    let workspace = std::path::PathBuf::from(branched["workspace"].as_str().unwrap());
    assert!(workspace.starts_with(h.home.path().join("workspaces")));
    assert_eq!(
        std::fs::read_to_string(workspace.join("out.txt")).unwrap(),
        "branched\n"
    );
    assert_eq!(
        std::fs::read_to_string(workspace.join("README.md")).unwrap(),
        "# Served\n"
    );
    // Its feed and ledger work like any run's; its history starts with the branch record.
    let (feed, _) = h.feed(&branch, None, None).await;
    assert_eq!(feed[0].1, "run_started");
    let link = &feed[0].2["payload"]["branch"];
    assert_eq!(link["run_id"], origin, "{}", feed[0].2);
    assert_eq!(link["seq"], first_reply - 1);
    let r = h
        .req(
            reqwest::Method::GET,
            &format!("/v1/runs/{branch}/world?path=out.txt"),
            None,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "branched\n");
    let (status, replayed) = h
        .post(&format!("/v1/runs/{branch}/replay"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{replayed}");
    assert_eq!(replayed["status"], "matched", "{replayed}");

    // The two runs part at their first step, and leave different out.txt behind.
    let (status, diff) = h.get(&format!("/v1/runs/{origin}/diff/{branch}")).await;
    assert_eq!(status, StatusCode::OK, "{diff}");
    assert_eq!(diff["run_a"], origin);
    assert_eq!(diff["run_b"], branch);
    assert_eq!(diff["common_prefix"], 0, "{diff}");
    assert_eq!(diff["divergence"]["index"], 1, "{diff}");
    assert_eq!(diff["files"][0]["path"], "out.txt", "{diff}");
    assert_eq!(diff["files"][0]["change"], "differs", "{diff}");
    let (_, same) = h.get(&format!("/v1/runs/{origin}/diff/{origin}")).await;
    assert_eq!(same["divergence"], Value::Null, "{same}");

    // The OpenAPI document has the routes, and its schemas name the fields the bodies have.
    let (_, doc) = h.get("/openapi.json").await;
    for path in [
        "/v1/runs/{id}/world",
        "/v1/runs/{id}/diff/{other}",
        "/v1/runs/{id}/replay",
        "/v1/runs/{id}/branch",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    for (schema, body) in [
        ("RunDiff", &diff),
        ("Divergence", &diff["divergence"]),
        ("Step", &diff["divergence"]["a"]),
        ("StepCall", &diff["divergence"]["a"]["calls"][0]),
        ("FileDifference", &diff["files"][0]),
        ("Replayed", &replayed),
        ("WorldView", &world),
        ("Branched", &branched),
    ] {
        let documented = schema_properties(&doc, schema);
        let actual: std::collections::BTreeSet<String> =
            body.as_object().unwrap().keys().cloned().collect();
        assert!(
            actual.is_subset(&documented),
            "{schema}: body has {actual:?}, the document lists {documented:?}"
        );
    }
    assert_eq!(
        schema_properties(&doc, "RunDiff"),
        diff.as_object().unwrap().keys().cloned().collect(),
        "RunDiff documents exactly its fields"
    );
    h.stop().await;
}

/// `PRAXIS_MAX_RUNS_PER_PROVIDER`: runs of one provider wait in its lane, keyed by tenant.
/// Each run here holds the provider until its write is approved, so the test sees, at
/// every point, which runs have started: never more than the bound, and the two tenants'
/// waiting runs take turns although one tenant asked first for all of its runs.
#[tokio::test]
async fn runs_of_one_provider_are_bounded_and_tenants_take_turns() {
    let h = Harness::start(|c| c.max_runs_per_provider = Some(1)).await;
    let acme = h.tokens().create("acme").unwrap();
    let globex = h.tokens().create("globex").unwrap();
    let body = |tenant: &str| {
        json!({"task": format!("{tenant} task"), "workspace": h.ws.path().to_str().unwrap(),
               "script": write_script(), "writ": h.writ(&approval_writ_for(tenant))})
    };
    let view = |id: String, token: String| {
        let h = &h;
        async move {
            let (status, view) = h.get_as(&format!("/v1/runs/{id}"), Some(&token)).await;
            assert_eq!(status, StatusCode::OK, "{view}");
            view
        }
    };
    let mut runs: Vec<(&str, String, String)> = Vec::new();
    for (tenant, token) in [
        ("acme", &acme),
        ("acme", &acme),
        ("acme", &acme),
        ("globex", &globex),
        ("globex", &globex),
    ] {
        let (status, created) = h.post_as("/v1/runs", body(tenant), Some(token)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["id"].as_str().unwrap().to_string();
        if runs.is_empty() {
            // The first run holds the provider before the others ask for it.
            let deadline = Instant::now() + Duration::from_secs(60);
            while view(id.clone(), token.clone()).await["status"] != "awaiting_approval" {
                assert!(Instant::now() < deadline, "the first run never started");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        runs.push((tenant, token.clone(), id));
    }
    // A run waiting for its provider has no entry yet: the list shows it all the same (one
    // tenant's runs only), with what it was asked.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, list) = h.get_as("/v1/runs", Some(&acme)).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let listed: Vec<&Value> = list["runs"].as_array().unwrap().iter().collect();
        let waiting = listed
            .iter()
            .filter(|v| v["phase"] == "waiting_for_provider")
            .count();
        if waiting == 2 {
            assert!(listed.iter().all(|v| v["task"] == "acme task"), "{list}");
            for (tenant, _, id) in &runs {
                let shown = listed.iter().any(|v| v["id"] == id.as_str());
                assert_eq!(shown, *tenant == "acme", "run {id} of {tenant}: {list}");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "acme's waiting runs never listed: {list}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut order = Vec::new();
    let mut max_started = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !runs.is_empty() {
        assert!(Instant::now() < deadline, "runs left: {runs:?}");
        let mut views = Vec::new();
        for (_, token, id) in &runs {
            views.push(view(id.clone(), token.clone()).await);
        }
        // Started: it has ledger entries. Waiting: its phase says so.
        let started: Vec<usize> = (0..runs.len())
            .filter(|&i| views[i]["last_seq"].as_u64().unwrap_or(0) > 0)
            .collect();
        max_started = max_started.max(started.len());
        let waiting = views
            .iter()
            .filter(|v| v["phase"] == "waiting_for_provider")
            .count();
        let holder = (0..runs.len()).find(|&i| views[i]["status"] == "awaiting_approval");
        let Some(i) = holder else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        if waiting + 1 < runs.len() {
            // A run not yet waiting in the lane; look again.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let (tenant, token, id) = runs.remove(i);
        order.push(tenant);
        let (status, answer) = h
            .post_as(
                &format!("/v1/approvals/{id}:w1"),
                json!({"decision": "approve"}),
                Some(&token),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let finish = Instant::now() + Duration::from_secs(60);
        while view(id.clone(), token.clone()).await["status"] != "completed" {
            assert!(Instant::now() < finish, "run {id} did not complete");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(max_started, 1, "one run of the provider at a time");
    assert_eq!(order, ["acme", "globex", "acme", "globex", "acme"]);
    h.stop().await;
}
