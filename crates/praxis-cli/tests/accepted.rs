//! A run answered 201 is never forgotten: one accepted while every slot was busy, whose
//! server is killed (or stopped) before the run's first entry, starts when the server is
//! back, under the id its client holds, and runs once. A queued run its client cancelled
//! does not. On a shared PostgreSQL ledger another server starts it once the dead one's
//! lease on it expires (`.ci/postgres` runs that test with `--include-ignored`).

mod common;

use common::Praxis;
use common::crash::wait_for;
use common::served::{Served, call};
use serde::Deserialize;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// What the tests read of the server's answers: `POST /v1/runs` (id, status), a run's
/// view (status, recovery; empty for an error body), a chain verdict (intact).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Answer {
    id: String,
    status: String,
    recovery: Option<String>,
    intact: bool,
}

/// `POST /v1/runs`: the run id and the status it was accepted with.
fn create(url: &str, body: Value) -> (String, String) {
    let (code, reply) = call("POST", &format!("{url}/v1/runs"), Some(body));
    assert_eq!(code, 201, "{reply}");
    let reply: Answer = serde_json::from_str(&reply).unwrap();
    (reply.id, reply.status)
}

fn view(url: &str, id: &str) -> (u16, Answer) {
    let (code, reply) = call("GET", &format!("{url}/v1/runs/{id}"), None);
    (code, serde_json::from_str(&reply).unwrap_or_default())
}

/// `praxis serve` (on `ledger_url` if given) with one run slot; a first run holding it
/// (inside its `sleep`).
fn serve_with_slot_taken(
    praxis: &Praxis,
    dirs: &Path,
    holder: &str,
    ledger_url: Option<&str>,
) -> Served {
    let mut cmd = server_command(praxis, dirs, ledger_url);
    cmd.env("PRAXIS_MAX_RUNS", "1");
    let server = Served::start_with(cmd, &[]);
    let ws = workspace(dirs, holder);
    let (_, status) = create(&server.url, body(holder, &ws, holder, 120));
    assert_eq!(status, "running");
    wait_for("the holder's command", 60, || {
        (!marks(&ws).is_empty()).then_some(())
    });
    server
}

fn server_command(praxis: &Praxis, dirs: &Path, ledger_url: Option<&str>) -> Command {
    let mut cmd = praxis.cmd(&[]);
    cmd.env("PRAXIS_WORKSPACE_ROOTS", dirs);
    if let Some(url) = ledger_url {
        cmd.env("PRAXIS_LEDGER_URL", url)
            .env("PRAXIS_LEASE_SECONDS", "2");
    }
    cmd
}

fn restart(praxis: &Praxis, dirs: &Path) -> Served {
    Served::start_with(server_command(praxis, dirs, None), &[])
}

/// The run starts on the restarted server, says why, runs its command once and completes.
fn runs_once_after_restart(url: &str, id: &str, ws: &Path, mark: &str) {
    let (code, seen) = view(url, id);
    assert_eq!(
        code, 200,
        "the accepted run is unknown after the restart: {seen:?}"
    );
    runs_once(url, id, ws, mark, &seen);
}

/// The run (its view `seen`) says it was started again, completes, ran its command once.
fn runs_once(url: &str, id: &str, ws: &Path, mark: &str, seen: &Answer) {
    assert!(
        seen.recovery
            .as_deref()
            .is_some_and(|r| r.contains("started now")),
        "{seen:?}"
    );
    wait_for("the accepted run to complete", 60, || {
        (view(url, id).1.status == "completed").then_some(())
    });
    assert_eq!(marks(ws), format!("{mark}\n"), "its command ran once");
    // The chain verifies, on whichever ledger the server uses.
    let (code, verdict) = call("GET", &format!("{url}/v1/runs/{id}/verify"), None);
    let intact = serde_json::from_str::<Answer>(&verdict).unwrap().intact;
    assert_eq!((code, intact), (200, true), "{verdict}");
}

#[test]
#[ignore = "needs PostgreSQL: run by .ci/postgres with PRAXIS_TEST_POSTGRES_URL"]
fn a_queued_run_of_a_killed_server_is_started_by_another_on_postgres() {
    let Some(admin) = common::postgres_admin_url() else {
        return;
    };
    let db = common::fresh_database(&admin);
    let praxis = Praxis::new();
    let dirs = tempfile::tempdir().unwrap();
    let a = serve_with_slot_taken(&praxis, dirs.path(), "holder", Some(&db));
    let b = Served::start_with(server_command(&praxis, dirs.path(), Some(&db)), &[]);
    let ws = workspace(dirs.path(), "waiting");
    let (id, status) = create(&a.url, body("waiting", &ws, "waiting", 0));
    assert_eq!(status, "queued");
    // While A lives (renewing its lease on the queued run), B does not start it.
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert_eq!(
        marks(&ws),
        "",
        "another server started a run its server still holds"
    );
    a.crash();
    // B takes it up once A's lease expires.
    let seen = wait_for("B to start the accepted run", 60, || {
        let (code, seen) = view(&b.url, &id);
        (code == 200 && seen.recovery.is_some()).then_some(seen)
    });
    runs_once(&b.url, &id, &ws, "waiting", &seen);
}

/// A SQLite server with its one slot taken and a run `waiting` queued behind it: the data
/// dir, the workspaces' directory, the server, the queued run's workspace and id.
fn one_run_queued() -> (Praxis, tempfile::TempDir, Served, PathBuf, String) {
    let praxis = Praxis::new();
    let dirs = tempfile::tempdir().unwrap();
    let server = serve_with_slot_taken(&praxis, dirs.path(), "holder", None);
    let ws = workspace(dirs.path(), "waiting");
    let (id, status) = create(&server.url, body("waiting", &ws, "waiting", 0));
    assert_eq!(status, "queued");
    (praxis, dirs, server, ws, id)
}

#[test]
fn a_queued_run_killed_with_its_server_starts_when_the_server_is_back() {
    let (praxis, dirs, server, ws, id) = one_run_queued();
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
    runs_once_after_restart(&server.url, &id, &ws, "waiting");
    assert_eq!(marks(&cancelled_ws), "", "a cancelled run was started");
    assert_ne!(view(&server.url, &cancelled).1.status, "running");
}

#[test]
fn a_queued_run_of_a_stopped_server_starts_when_the_server_is_back() {
    let (praxis, dirs, server, ws, id) = one_run_queued();
    server.signal("-TERM");
    let (_, log) = server.wait();
    assert_eq!(marks(&ws), "", "the queued run ran before the stop: {log}");

    let server = restart(&praxis, dirs.path());
    runs_once_after_restart(&server.url, &id, &ws, "waiting");
}
