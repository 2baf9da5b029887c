//! The console's server side (issue 14): the embedded app under `/ui/` with its security
//! headers, the origin check on every mutating route, and the API the console added
//! (`/v1/session`, `/v1/runs/{id}/verify`, `/v1/runs/{id}/whatif`, cost and end time).

use praxis_ledger::tokens::TokenStore;
use praxis_runtime::{DataHome, WritGrant};
use praxis_server::{CONSOLE_CSP, Server, ServerConfig, WorkspaceRoots};
use praxis_writ::{IssuerKey, WritSpec};
use reqwest::{Method, StatusCode, redirect};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tempfile::TempDir;

struct Console {
    home: TempDir,
    ws: TempDir,
    url: String,
    http: reqwest::Client,
    key: Arc<IssuerKey>,
    _server: Server,
}

impl Console {
    async fn start(configure: impl FnOnce(&mut ServerConfig)) -> Console {
        let home = tempfile::tempdir().unwrap();
        let ws = tempfile::tempdir().unwrap();
        std::fs::write(ws.path().join("README.md"), "# Console\n").unwrap();
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
        Console {
            url: server.url(),
            _server: server,
            home,
            ws,
            http: reqwest::Client::builder()
                .redirect(redirect::Policy::none())
                .build()
                .unwrap(),
            key,
        }
    }

    fn send(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url))
    }

    async fn json(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let r = req.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    fn writ(&self, spec: &WritSpec) -> String {
        praxis_writ::issue(spec, &self.key, SystemTime::now()).unwrap()
    }

    fn run_body(&self) -> Value {
        json!({
            "task": "write a note",
            "workspace": self.ws.path().to_str().unwrap(),
            "script": {"turns": [
                {"tool_calls": [{"id": "w1", "name": "fs_write", "arguments": {"path": "note.txt", "content": "hello\n"}}]},
                {"content": "Wrote the note."}
            ]},
        })
    }

    async fn wait_finished(&self, id: &str, token: Option<&str>) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut req = self.send(Method::GET, &format!("/v1/runs/{id}"));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let (status, view) = self.json(req).await;
            assert_eq!(status, StatusCode::OK, "{view}");
            if ["completed", "failed", "cancelled"].contains(&view["status"].as_str().unwrap()) {
                return view;
            }
            assert!(Instant::now() < deadline, "run {id} never finished: {view}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn total_runs(&self) -> u64 {
        let (_, list) = self.json(self.send(Method::GET, "/v1/runs")).await;
        list["total"].as_u64().unwrap()
    }
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn the_app_and_its_deep_links_are_served_with_a_strict_policy() {
    let c = Console::start(|_| {}).await;
    let index = c.send(Method::GET, "/ui/").send().await.unwrap();
    assert_eq!(index.status(), StatusCode::OK);
    assert!(header(&index, "content-type").starts_with("text/html"));
    let csp = header(&index, "content-security-policy").to_string();
    assert_eq!(csp, CONSOLE_CSP);
    for required in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(csp.contains(required), "{csp} lacks {required}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(header(&index, "x-frame-options"), "DENY");
    assert_eq!(header(&index, "x-content-type-options"), "nosniff");
    assert_eq!(header(&index, "referrer-policy"), "no-referrer");
    let html = index.text().await.unwrap();
    // No inline script: every script element loads a file of this origin.
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    assert!(html.contains(r#"<script type="module" src="/ui/app.js"></script>"#));

    // A deep link loads the same app.
    let deep = c
        .send(Method::GET, "/ui/runs/some-run-id")
        .send()
        .await
        .unwrap();
    assert_eq!(deep.status(), StatusCode::OK);
    assert_eq!(header(&deep, "content-security-policy"), CONSOLE_CSP);
    assert_eq!(deep.text().await.unwrap(), html);

    let js = c.send(Method::GET, "/ui/app.js").send().await.unwrap();
    assert_eq!(js.status(), StatusCode::OK);
    assert!(header(&js, "content-type").starts_with("text/javascript"));
    let js = js.text().await.unwrap();
    assert!(js.len() > 1000, "the bundle is embedded");
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ] {
        assert!(!js.contains(sink), "the bundle uses {sink}");
    }
    let css = c.send(Method::GET, "/ui/app.css").send().await.unwrap();
    assert!(header(&css, "content-type").starts_with("text/css"));

    let bare = c.send(Method::GET, "/ui").send().await.unwrap();
    assert!(bare.status().is_redirection());
    assert_eq!(header(&bare, "location"), "/ui/");

    // API answers can be neither framed nor rendered as a document.
    let api = c.send(Method::GET, "/v1/runs").send().await.unwrap();
    assert_eq!(
        header(&api, "content-security-policy"),
        praxis_server::API_CSP
    );
    assert_eq!(header(&api, "x-frame-options"), "DENY");
    assert_eq!(header(&api, "x-content-type-options"), "nosniff");
}

#[tokio::test]
async fn with_auth_on_the_app_loads_but_the_api_tells_nothing_without_a_token() {
    let c = Console::start(|_| {}).await;
    let token = TokenStore::open(&c.home.path().join("ledger.db"))
        .unwrap()
        .create("acme")
        .unwrap();
    let (status, _) = c.json(c.send(Method::GET, "/ui/runs/x")).await;
    assert_eq!(status, StatusCode::OK, "the static app holds no data");
    for token in [None, Some("wrong-token")] {
        let mut req = c.send(Method::GET, "/v1/session");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let (status, body) = c.json(req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body.get("tenant").is_none());
    }
    let (status, session) = c
        .json(c.send(Method::GET, "/v1/session").bearer_auth(&token))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(session, json!({"tenant": "acme", "auth": true}));
}

#[tokio::test]
async fn mutating_routes_refuse_other_origins() {
    let c = Console::start(|config| {
        config.allowed_origins = vec!["https://console.example.com".into()];
    })
    .await;
    let own = c.url.clone();
    let create = |origin: Option<&str>, site: Option<&str>| {
        let mut req = c.send(Method::POST, "/v1/runs").json(&c.run_body());
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(s) = site {
            req = req.header("sec-fetch-site", s);
        }
        req
    };
    for (origin, site) in [
        (Some("https://evil.example"), None),
        (Some("null"), None),
        (Some("http://127.0.0.1.evil.example"), None),
        (None, Some("cross-site")),
        (Some("https://evil.example"), Some("same-origin")),
    ] {
        let (status, body) = c.json(create(origin, site)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin:?} {site:?}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("refused"),
            "{body}"
        );
    }
    assert_eq!(c.total_runs().await, 0, "no refused request created a run");

    // A bodiless POST needs no CORS preflight, so only the origin check stops it.
    let (status, created) = c.json(create(Some(&own), Some("same-origin"))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let cancel = format!("/v1/runs/{id}/cancel");
    let (status, _) = c
        .json(
            c.send(Method::POST, &cancel)
                .header("origin", "https://evil.example"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = c
        .json(
            c.send(Method::POST, &format!("/v1/approvals/{id}"))
                .header("origin", "https://evil.example")
                .json(&json!({"decision": "approve"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A listed origin and a client without Origin (the CLI) pass the check.
    let (status, _) = c
        .json(create(Some("https://console.example.com"), None))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = c.json(create(None, None)).await;
    assert_eq!(status, StatusCode::CREATED);
    // Reading stays governed by CORS alone.
    let r = c
        .send(Method::GET, "/v1/runs")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn chain_check_what_if_cost_and_end_time_of_a_run() {
    let c = Console::start(|_| {}).await;
    let (status, created) = c
        .json(c.send(Method::POST, "/v1/runs").json(&c.run_body()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let view = c.wait_finished(&id, None).await;
    assert_eq!(view["status"], "completed", "{view}");
    assert!(
        view["ended_at"]
            .as_str()
            .is_some_and(|t| t >= view["started_at"].as_str().unwrap())
    );
    assert!(view["cost_usd_micros"].is_u64(), "{view}");
    // The runs list shows the same end time and cost as the run's own view.
    let (status, list) = c.json(c.send(Method::GET, "/v1/runs")).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let listed = list["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id.as_str())
        .expect("the run is listed");
    assert_eq!(listed["ended_at"], view["ended_at"], "{listed}");
    assert_eq!(
        listed["cost_usd_micros"], view["cost_usd_micros"],
        "{listed}"
    );

    let (status, verdict) = c
        .json(c.send(Method::GET, &format!("/v1/runs/{id}/verify")))
        .await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    assert_eq!(verdict["intact"], true);
    assert_eq!(verdict["run_id"], id.as_str());
    assert_eq!(
        verdict["entries"].as_u64().unwrap(),
        view["last_seq"].as_u64().unwrap()
    );

    // A writ without fs_write would have denied the write the run made.
    let mut narrow = WritSpec::development("test");
    narrow.tools.retain(|t| t.name != "fs_write");
    let (status, answer) = c
        .json(
            c.send(Method::POST, &format!("/v1/runs/{id}/whatif"))
                .json(&json!({"writ": c.writ(&narrow)})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let changed = answer["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{answer}");
    assert_eq!(changed[0]["tool"], "fs_write");
    assert_eq!(changed[0]["before"], "allow");
    assert_eq!(changed[0]["after"], "deny");
    // The same writ the run had changes nothing.
    let (_, same) = c
        .json(
            c.send(Method::POST, &format!("/v1/runs/{id}/whatif"))
                .json(&json!({"writ": c.writ(&WritSpec::development("test"))})),
        )
        .await;
    assert_eq!(same["changed"], json!([]), "{same}");
    // Refusals name the field.
    let mut other = WritSpec::development("test");
    other.tenant = "someone-else".into();
    for writ in [String::new(), "not a writ".into(), c.writ(&other)] {
        let (status, body) = c
            .json(
                c.send(Method::POST, &format!("/v1/runs/{id}/whatif"))
                    .json(&json!({"writ": writ})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["field"], "writ");
    }

    // Another tenant sees neither.
    let token = TokenStore::open(&c.home.path().join("ledger.db"))
        .unwrap()
        .create("acme")
        .unwrap();
    for (method, path) in [
        (Method::GET, format!("/v1/runs/{id}/verify")),
        (Method::POST, format!("/v1/runs/{id}/whatif")),
    ] {
        let (status, _) = c
            .json(
                c.send(method, &path)
                    .bearer_auth(&token)
                    .json(&json!({"writ": c.writ(&narrow)})),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}
