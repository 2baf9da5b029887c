//! Bounds: concurrency, the run queue and its tenant turns, provider limits, shutdown.

use crate::harness::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

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
