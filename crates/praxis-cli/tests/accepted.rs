//! A run answered 201 is never forgotten: one accepted while every slot was busy, whose
//! server is killed (or stopped) before the run's first entry, starts when the server is
//! back, under the id its client holds, and runs once. A queued run its client cancelled
//! does not.

mod common;

use common::Praxis;
use common::crash::wait_for;
use common::served::{Served, call};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// One shell step appending `mark` to `marks.txt`, then `sleep`, then the end.
fn body(task: &str, ws: &Path, mark: &str, sleep: u32) -> Value {
    json!({
        "task": task,
        "workspace": ws,
        "script": {"turns": [
            {"tool_calls": [{"id": "m", "name": "shell",
                "arguments": {"command": format!("echo {mark} >> marks.txt && sleep {sleep}")}}]},
            {"content": "done"}
        ]}
    })
}

fn workspace(dirs: &Path, name: &str) -> PathBuf {
    let ws = dirs.join(name);
    std::fs::create_dir_all(&ws).unwrap();
    ws
}

fn marks(ws: &Path) -> String {
    std::fs::read_to_string(ws.join("marks.txt")).unwrap_or_default()
}

/// `POST /v1/runs`: the run id and the status it was accepted with.
fn create(url: &str, body: Value) -> (String, String) {
    let (code, reply) = call("POST", &format!("{url}/v1/runs"), Some(body));
    assert_eq!(code, 201, "{reply}");
    let reply: Value = serde_json::from_str(&reply).unwrap();
    (
        reply["id"].as_str().unwrap().to_string(),
        reply["status"].as_str().unwrap().to_string(),
    )
}

fn view(url: &str, id: &str) -> (u16, Value) {
    let (code, reply) = call("GET", &format!("{url}/v1/runs/{id}"), None);
    (code, serde_json::from_str(&reply).unwrap_or(Value::Null))
}

/// `praxis serve` with one run slot; a first run holding it (inside its `sleep`).
fn serve_with_slot_taken(praxis: &Praxis, dirs: &Path, holder: &str) -> Served {
    let mut cmd = praxis.cmd(&[]);
    cmd.env("PRAXIS_WORKSPACE_ROOTS", dirs)
        .env("PRAXIS_MAX_RUNS", "1");
    let server = Served::start_with(cmd, &[]);
    let ws = workspace(dirs, holder);
    let (_, status) = create(&server.url, body(holder, &ws, holder, 120));
    assert_eq!(status, "running");
    wait_for("the holder's command", 60, || {
        (!marks(&ws).is_empty()).then_some(())
    });
    server
}

fn restart(praxis: &Praxis, dirs: &Path) -> Served {
    let mut cmd = praxis.cmd(&[]);
    cmd.env("PRAXIS_WORKSPACE_ROOTS", dirs);
    Served::start_with(cmd, &[])
}

/// The run starts on the restarted server, says why, runs its command once and completes.
fn runs_once_after_restart(praxis: &Praxis, url: &str, id: &str, ws: &Path, mark: &str) {
    let (code, seen) = view(url, id);
    assert_eq!(
        code, 200,
        "the accepted run is unknown after the restart: {seen}"
    );
    assert!(
        seen["recovery"]
            .as_str()
            .is_some_and(|r| r.contains("started now")),
        "{seen}"
    );
    wait_for("the accepted run to complete", 60, || {
        (view(url, id).1["status"] == "completed").then_some(())
    });
    assert_eq!(marks(ws), format!("{mark}\n"), "its command ran once");
    let out = praxis.praxis(&["ledger", "verify", id]);
    assert!(out.status.success(), "{}", common::text(&out.stderr));
}

#[test]
fn a_queued_run_killed_with_its_server_starts_when_the_server_is_back() {
    let praxis = Praxis::new();
    let dirs = tempfile::tempdir().unwrap();
    let server = serve_with_slot_taken(&praxis, dirs.path(), "holder");
    let ws = workspace(dirs.path(), "waiting");
    let (id, status) = create(&server.url, body("waiting", &ws, "waiting", 0));
    assert_eq!(status, "queued");
    // Cancelled by its client while queued: it must stay so.
    let cancelled_ws = workspace(dirs.path(), "cancelled");
    let (cancelled, _) = create(
        &server.url,
        body("cancelled", &cancelled_ws, "cancelled", 0),
    );
    let (code, reply) = call(
        "POST",
        &format!("{}/v1/runs/{cancelled}/cancel", server.url),
        Some(json!({})),
    );
    assert!(code < 300, "{code} {reply}");
    server.crash();
    assert_eq!(marks(&ws), "", "the queued run ran before the crash");

    let server = restart(&praxis, dirs.path());
    runs_once_after_restart(&praxis, &server.url, &id, &ws, "waiting");
    assert_eq!(marks(&cancelled_ws), "", "a cancelled run was started");
    assert_ne!(view(&server.url, &cancelled).1["status"], "running");
}

#[test]
fn a_queued_run_of_a_stopped_server_starts_when_the_server_is_back() {
    let praxis = Praxis::new();
    let dirs = tempfile::tempdir().unwrap();
    let server = serve_with_slot_taken(&praxis, dirs.path(), "holder");
    let ws = workspace(dirs.path(), "waiting");
    let (id, status) = create(&server.url, body("waiting", &ws, "waiting", 0));
    assert_eq!(status, "queued");
    server.signal("-TERM");
    let (_, log) = server.wait();
    assert_eq!(marks(&ws), "", "the queued run ran before the stop: {log}");

    let server = restart(&praxis, dirs.path());
    runs_once_after_restart(&praxis, &server.url, &id, &ws, "waiting");
}
