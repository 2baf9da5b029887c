//! Who may do what: tokens and tenants, input errors, workspace roots, production mode, CORS.

use crate::harness::*;
use praxis_ledger::tokens::TokenStore;
use praxis_runtime::DataHome;
use praxis_server::{Server, ServerConfig, ServerError};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

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
