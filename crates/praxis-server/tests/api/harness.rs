//! The harness: a real server on 127.0.0.1:0 in this process, a reqwest client, and the
//! scripts and writs the tests share.

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use praxis_ledger::tokens::TokenStore;
use praxis_runtime::{DataHome, WritGrant};
use praxis_server::{Server, ServerConfig, WorkspaceRoots};
use praxis_writ::{IssuerKey, WritSpec};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tempfile::TempDir;

pub(crate) struct Harness {
    pub(crate) home: TempDir,
    pub(crate) ws: TempDir,
    pub(crate) server: Option<Server>,
    pub(crate) url: String,
    pub(crate) http: reqwest::Client,
    pub(crate) key: Arc<IssuerKey>,
    pub(crate) token: Option<String>,
}

impl Harness {
    pub(crate) async fn start(configure: impl FnOnce(&mut ServerConfig)) -> Harness {
        let home = tempfile::tempdir().unwrap();
        let ws = tempfile::tempdir().unwrap();
        std::fs::write(ws.path().join("README.md"), "# Served\n").unwrap();
        let key = Arc::new(IssuerKey::generate());
        Self::start_on(home, ws, key, configure).await
    }

    /// Stops this server and starts a new one on the same data dir, workspace and key.
    pub(crate) async fn restart(mut self) -> Harness {
        self.server.take().unwrap().shutdown().await.unwrap();
        Self::start_on(self.home, self.ws, self.key, |_| {}).await
    }

    async fn start_on(
        home: tempfile::TempDir,
        ws: tempfile::TempDir,
        key: Arc<IssuerKey>,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Harness {
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

    pub(crate) fn tokens(&self) -> TokenStore {
        TokenStore::open(&self.home.path().join("ledger.db")).unwrap()
    }

    pub(crate) fn req(
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

    pub(crate) async fn get_as(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let r = self
            .req(reqwest::Method::GET, path, token)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.get_as(path, None).await
    }

    pub(crate) async fn post_as(
        &self,
        path: &str,
        body: Value,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let r = self
            .req(reqwest::Method::POST, path, token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.post_as(path, body, None).await
    }

    /// `POST /v1/approvals/{approval}` (a run id, or `run:call`) with `decision`.
    pub(crate) async fn decide(&self, approval: &str, decision: Value) -> (StatusCode, Value) {
        self.post(&format!("/v1/approvals/{approval}"), decision)
            .await
    }

    /// The Prometheus exposition of `GET /metrics`.
    pub(crate) async fn metrics(&self) -> String {
        self.req(reqwest::Method::GET, "/metrics", None)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub(crate) fn writ(&self, spec: &WritSpec) -> String {
        praxis_writ::issue(spec, &self.key, SystemTime::now()).unwrap()
    }

    /// A run with the given script in the test workspace; returns its id.
    pub(crate) async fn create(&self, script: Value, extra: Value) -> String {
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

    pub(crate) async fn wait_status(&self, id: &str, wanted: &[&str]) -> Value {
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

    pub(crate) async fn wait_approval(&self, id: &str) -> Value {
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

    pub(crate) async fn export(&self, id: &str) -> Vec<Value> {
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
    pub(crate) async fn feed(
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

    pub(crate) async fn stop(mut self) -> TempDir {
        self.server.take().unwrap().shutdown().await.unwrap();
        self.home
    }
}

pub(crate) fn answer_script(answer: &str) -> Value {
    json!({"turns": [
        {"content": "", "tool_calls": [{"id": "c1", "name": "fs_read", "arguments": {"path": "README.md"}}]},
        {"content": answer},
    ]})
}

pub(crate) fn write_script() -> Value {
    json!({"turns": [
        {"content": "", "tool_calls": [{"id": "w1", "name": "fs_write", "arguments": {"path": "out.txt", "content": "written\n"}}]},
        {"content": "wrote out.txt"},
    ]})
}

pub(crate) fn approval_writ_spec() -> WritSpec {
    let mut spec = WritSpec::development("test");
    spec.approvals.tools = vec!["fs_write".into()];
    spec
}

/// The same writ, issued for `tenant`.
pub(crate) fn approval_writ_for(tenant: &str) -> WritSpec {
    let mut spec = approval_writ_spec();
    spec.tenant = tenant.into();
    spec
}

/// The seq of the first entry of `kind` in an export.
pub(crate) fn first_seq(entries: &[Value], kind: &str) -> u64 {
    entries
        .iter()
        .find(|e| e["kind"] == kind)
        .and_then(|e| e["seq"].as_u64())
        .unwrap_or_else(|| panic!("no {kind} entry"))
}

/// Every property name a schema of the OpenAPI document lists (across `oneOf` variants).
pub(crate) fn schema_properties(doc: &Value, name: &str) -> std::collections::BTreeSet<String> {
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
