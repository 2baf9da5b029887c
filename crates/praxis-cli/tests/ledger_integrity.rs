//! No other process can make the server lose ledger entries (issue 12, finding 4).
//!
//! The server runs under load (runs created over HTTP) while 20 read commands of the CLI
//! open and close the same ledger. Before the load, a run whose workspace is the data dir
//! reads `ledger.db` and `ledger.db-shm` with `fs_read`: opening and closing them in the
//! server's process dropped the server's POSIX locks, and the next CLI command that closed
//! the ledger deleted the WAL the server went on committing into. (Once workspaces inside
//! the data dir are refused, that run is refused and the rest of the test still holds.)
//! Then `kill -9`: every run the server acknowledged (201, then `completed`) must be on disk
//! and verify, and a restarted server must know it.

use serde_json::{Value, json};
use std::time::{Duration, Instant};

mod common;
use common::served::Served;
use common::{Praxis, text};

const RUNS: usize = 40;
const CLI_COMMANDS: usize = 20;

struct Api {
    url: String,
    client: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Api {
    fn new(url: &str) -> Self {
        Api {
            url: url.to_string(),
            client: reqwest::Client::new(),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    fn create(&self, body: &Value) -> (u16, Value) {
        self.rt.block_on(async {
            let r = self
                .client
                .post(format!("{}/v1/runs", self.url))
                .json(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
        })
    }

    fn status(&self, run: &str) -> Value {
        self.rt.block_on(async {
            let r = self
                .client
                .get(format!("{}/v1/runs/{run}", self.url))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "GET run {run}");
            r.json().await.unwrap()
        })
    }

    fn wait_settled(&self, run: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let status = self.status(run)["status"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if !["queued", "running", "awaiting_approval"].contains(&status.as_str()) {
                return status;
            }
            assert!(Instant::now() < deadline, "run {run} never settled");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn run_body(task: &str, workspace: &str, turns: Value) -> Value {
    json!({ "task": task, "workspace": workspace, "script": { "turns": turns } })
}

#[test]
fn cli_commands_and_a_crash_lose_no_acknowledged_run() {
    let praxis = Praxis::new();
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("notes.txt"), "load\n").unwrap();
    let ws = ws.path().to_str().unwrap().to_string();
    let home = praxis.home.path().to_str().unwrap().to_string();

    let server = Served::start(&praxis, &[]);
    let api = Api::new(&server.url);
    let mut acknowledged = Vec::new();

    // The server opens and closes its own ledger files, as a tool would.
    let read_ledger = json!([
        {"tool_calls": [
            {"id": "a", "name": "fs_read", "arguments": {"path": "ledger.db"}},
            {"id": "b", "name": "fs_read", "arguments": {"path": "ledger.db-shm"}}
        ]},
        {"content": "read"}
    ]);
    let (code, created) = api.create(&run_body("read the ledger", &home, read_ledger));
    if code == 201 {
        let id = created["id"].as_str().unwrap().to_string();
        let status = api.wait_settled(&id);
        eprintln!("the run reading the ledger files ended {status}");
        if status == "completed" {
            acknowledged.push(id);
        }
    } else {
        eprintln!("a workspace in the data dir was refused ({code}): {created}");
    }

    // Load: runs created over HTTP, each with a tool call, while CLI commands read the
    // ledger; a CLI command after every other run.
    let turns = json!([
        {"tool_calls": [{"id": "r", "name": "fs_read", "arguments": {"path": "notes.txt"}}]},
        {"content": "done"}
    ]);
    let commands: [&[&str]; 5] = [
        &["runs", "--json"],
        &["ledger", "verify", "--all"],
        &["runs"],
        &["doctor"],
        &["runs", "--limit", "3"],
    ];
    let mut created_ids = Vec::new();
    let mut cli_done = 0;
    for i in 0..RUNS {
        let (code, created) = api.create(&run_body(&format!("load {i}"), &ws, turns.clone()));
        assert_eq!(code, 201, "{created}");
        created_ids.push(created["id"].as_str().unwrap().to_string());
        if i % 2 == 1 && cli_done < CLI_COMMANDS {
            // The previous run has started writing (show and export need its first entry);
            // the one just created is still going.
            api.wait_settled(&created_ids[i - 1]);
            let out = match cli_done % 4 {
                // Commands on a run the server has written.
                3 => praxis.praxis(&["ledger", "export", &created_ids[i - 1]]),
                2 => praxis.praxis(&["show", &created_ids[i - 1], "--json"]),
                _ => praxis.praxis(commands[cli_done % commands.len()]),
            };
            assert!(
                out.status.success(),
                "CLI command {cli_done} failed: {}",
                text(&out.stderr)
            );
            cli_done += 1;
        }
    }
    assert_eq!(cli_done, CLI_COMMANDS);
    for id in &created_ids {
        let status = api.wait_settled(id);
        assert_eq!(status, "completed", "run {id}");
        acknowledged.push(id.clone());
    }

    server.crash();

    // Every acknowledged run is on disk and its chain is intact.
    let listed: Vec<String> = praxis
        .json(&["runs", "--json", "--limit", "1000"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect();
    for id in &acknowledged {
        assert!(
            listed.contains(id),
            "acknowledged run {id} is missing from the ledger"
        );
        let out = praxis.praxis(&["ledger", "verify", id]);
        assert!(
            out.status.success() && text(&out.stdout).contains("intact"),
            "run {id}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let entries = praxis.entries(id);
        assert!(
            entries.iter().any(|e| e["kind"] == "run_finished"),
            "run {id} lost its last entries"
        );
    }
    let out = praxis.praxis(&["ledger", "verify", "--all"]);
    assert!(out.status.success(), "{}", text(&out.stdout));

    // A restarted server knows every one of them, finished.
    let server = Served::start(&praxis, &[]);
    let api = Api::new(&server.url);
    for id in &acknowledged {
        assert_eq!(
            api.status(id)["status"],
            "completed",
            "run {id} after the restart"
        );
    }
}
