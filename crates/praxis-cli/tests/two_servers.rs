//! Two `praxis serve` processes on one PostgreSQL ledger: a run created on A is followed
//! (SSE) and approved on B; A is killed with SIGKILL; B takes the run over by its lease and
//! finishes it; the chain verifies and the effect ran exactly once. Needs PostgreSQL:
//! `.ci/postgres` runs it (`--include-ignored`) with PRAXIS_TEST_POSTGRES_URL set.

mod common;

use common::served::Served;
use common::{Praxis, fresh_database, text};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One HTTP call; the status and the JSON body.
fn call(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let (status, text) = call_text(method, url, body);
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The API token of tenant `ops`, made with `praxis token create` on the shared database.
static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn call_text(method: &str, url: &str, body: Option<Value>) -> (u16, String) {
    call_as(TOKEN.get().map_or("", |t| t.as_str()), method, url, body)
}

fn call_as(token: &str, method: &str, url: &str, body: Option<Value>) -> (u16, String) {
    runtime().block_on(async {
        let client = reqwest::Client::new();
        let request = match method {
            "POST" => client.post(url).json(&body.unwrap_or(json!({}))),
            _ => client.get(url),
        }
        .bearer_auth(token);
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    })
}

fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Follows `GET {url}/v1/runs/{id}/events` on a thread of its own; sends each event's
/// `(id, event)` until the stream ends.
fn follow(url: String, run_id: String) -> mpsc::Receiver<(u64, String)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        runtime().block_on(async move {
            let mut response = reqwest::Client::new()
                .get(format!("{url}/v1/runs/{run_id}/events"))
                .bearer_auth(TOKEN.get().unwrap())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 200);
            let mut buffer = String::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    let field = |name: &str| {
                        block
                            .lines()
                            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
                    };
                    if let (Some(id), Some(event)) = (field("id:"), field("event:"))
                        && tx.send((id.parse().unwrap(), event)).is_err()
                    {
                        return;
                    }
                }
            }
        });
    });
    rx
}

fn pending(url: &str, run_id: &str) -> Vec<Value> {
    let (status, list) = call("GET", &format!("{url}/v1/approvals"), None);
    assert_eq!(status, 200, "{list}");
    list["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["run_id"] == run_id)
        .cloned()
        .collect()
}

fn kinds(url: &str, run_id: &str) -> Vec<String> {
    let (status, lines) = call_text("GET", &format!("{url}/v1/runs/{run_id}/ledger"), None);
    assert_eq!(status, 200, "{lines}");
    lines
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
#[ignore = "needs PostgreSQL: run by .ci/postgres"]
fn a_run_survives_its_server_being_killed() {
    let admin = std::env::var("PRAXIS_TEST_POSTGRES_URL")
        .expect("PRAXIS_TEST_POSTGRES_URL must name a PostgreSQL server (.ci/postgres sets it)");
    let db = fresh_database(&admin);
    // Both servers share the home's keys (writs, checkpoints); the ledger is PostgreSQL.
    let env = Praxis::new();
    let ws = tempfile::tempdir().unwrap();
    assert!(env.praxis(&["writ", "keygen"]).status.success());
    let writ = env.issue(
        "approve",
        "subject = \"agent\"\ntenant = \"ops\"\nexpires_in = \"1h\"\neffect_ceiling = \"exec\"\n[[tools]]\nname = \"shell\"\n[approvals]\ntools = [\"shell\"]\n",
    );
    let writ = std::fs::read_to_string(writ).unwrap();
    // Tokens live in the shared database: made once, good on every server.
    let token = |tenant: &str| {
        let out = env
            .cmd(&["token", "create", "--tenant", tenant])
            .env("PRAXIS_LEDGER_URL", &db)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    };
    TOKEN.set(token("ops")).unwrap();
    let other = token("globex");
    let serve = || {
        let mut cmd = env.cmd(&[]);
        cmd.env("PRAXIS_LEDGER_URL", &db)
            .env("PRAXIS_LEASE_SECONDS", "2")
            .env("PRAXIS_WORKSPACE_ROOTS", ws.path());
        Served::start_with(cmd, &[])
    };
    let a = serve();
    let b = serve();
    let (a_url, b_url) = (a.url.clone(), b.url.clone());

    // Created on A: an effect that needs approval, then a second command that needs one.
    let effect = ws.path().join("effect.txt");
    let (status, created) = call(
        "POST",
        &format!("{a_url}/v1/runs"),
        Some(json!({
            "task": "append a line, then read it back",
            "workspace": ws.path(),
            "provider": "scripted",
            "script": {"turns": [
                {"tool_calls": [{"id": "effect", "name": "shell",
                    "arguments": {"command": "echo effect >> effect.txt"}}]},
                {"tool_calls": [{"id": "check", "name": "shell",
                    "arguments": {"command": "cat effect.txt"}}]},
                {"content": "appended once"},
            ]},
            "writ": writ.trim(),
            "approve": "wait",
        })),
    );
    assert_eq!(status, 201, "{created}");
    let run_id = created["id"].as_str().unwrap().to_string();

    // B sees it (once A wrote its first entry), follows it and approves the effect; A
    // (the driver) runs it.
    let view = wait_for("the run, on B", || {
        let (status, view) = call("GET", &format!("{b_url}/v1/runs/{run_id}"), None);
        (status == 200).then_some(view)
    });
    assert_eq!(view["tenant"], "ops", "{view}");
    // Another tenant sees nothing of it on either server.
    for url in [&a_url, &b_url] {
        let (status, _) = call_as(&other, "GET", &format!("{url}/v1/runs/{run_id}"), None);
        assert_eq!(status, 404);
    }
    let feed = follow(b_url.clone(), run_id.clone());
    let first = wait_for("the effect's approval request, on B", || {
        pending(&b_url, &run_id).into_iter().next()
    });
    assert_eq!(first["call_id"], "effect");
    let (status, decided) = call(
        "POST",
        &format!("{b_url}/v1/approvals/{run_id}"),
        Some(json!({"decision": "approve", "reason": "fine"})),
    );
    assert_eq!(status, 200, "{decided}");
    let second = wait_for("the second approval request, on B", || {
        pending(&b_url, &run_id)
            .into_iter()
            .find(|p| p["call_id"] == "check")
    });
    assert_eq!(second["tool"], "shell");
    assert_eq!(lines_of(&effect), ["effect"], "A ran the effect");
    assert!(!kinds(&b_url, &run_id).contains(&"run_resumed".to_string()));

    // A dies without a word while the run waits.
    a.crash();

    // B takes the run over once A's lease expires; its resumed driver asks again for the
    // approval that was pending, which B's operator gives.
    wait_for("B to take the run over", || {
        kinds(&b_url, &run_id)
            .contains(&"run_resumed".to_string())
            .then_some(())
    });
    wait_for("the pending approval after the takeover", || {
        pending(&b_url, &run_id)
            .into_iter()
            .find(|p| p["call_id"] == "check")
    });
    let (status, decided) = call(
        "POST",
        &format!("{b_url}/v1/approvals/{run_id}"),
        Some(json!({"decision": "approve"})),
    );
    assert_eq!(status, 200, "{decided}");
    let view = wait_for("the run to finish on B", || {
        let (_, view) = call("GET", &format!("{b_url}/v1/runs/{run_id}"), None);
        (view["status"] != "running"
            && view["status"] != "awaiting_approval"
            && view["status"] != "interrupted")
            .then_some(view)
    });
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["final_answer"], "appended once", "{view}");

    // The effect ran exactly once, though its run changed servers.
    assert_eq!(lines_of(&effect), ["effect"]);

    // B's follower saw every entry once, in order, across the takeover, to the end.
    let mut seen = Vec::new();
    while let Ok((seq, kind)) = feed.recv_timeout(Duration::from_secs(30)) {
        seen.push((seq, kind));
        if seen.last().is_some_and(|(_, k)| k == "run_finished") {
            break;
        }
    }
    let all = kinds(&b_url, &run_id);
    let finished = all.iter().position(|k| k == "run_finished").unwrap();
    assert_eq!(
        seen,
        all[..=finished]
            .iter()
            .enumerate()
            .map(|(i, k)| (i as u64 + 1, k.clone()))
            .collect::<Vec<_>>()
    );
    let executions = all.iter().filter(|k| *k == "execution").count();
    assert_eq!(executions, 2, "{all:?}");

    // The chain verifies.
    let out = env
        .cmd(&["ledger", "verify", "--all"])
        .env("PRAXIS_LEDGER_URL", &db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    drop(b);
}
