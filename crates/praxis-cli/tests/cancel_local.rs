//! `praxis cancel RUN` without a server, between two real processes: the one driving the
//! run and the one asking to cancel it.

use serde_json::{Value, json};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{Praxis, text};

fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Env {
    praxis: Praxis,
    ws: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Env {
            praxis: Praxis::new(),
            ws: tempfile::tempdir().unwrap(),
        }
    }

    /// `praxis run TASK` whose one tool call sleeps, in the background.
    fn slow_run(&self, task: &str) -> (Child, String) {
        let script = self.praxis.script(
            &format!("{}.json", task.replace(' ', "_")),
            json!({"turns": [
                {"tool_calls": [{"id": "s", "name": "shell", "arguments": {"command": "sleep 30"}}]},
                {"content": "slept"}
            ]}),
        );
        let child = self
            .praxis
            .cmd(&[
                "run",
                task,
                "--workspace",
                self.ws.path().to_str().unwrap(),
                "--script",
                script.to_str().unwrap(),
                "--json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let run_id = wait_for("the run to start", || {
            let runs = self.praxis.json(&["runs", "--json"]);
            runs.as_array()?
                .iter()
                .find(|r| r["task"] == task && r["status"] == "running")
                .map(|r| r["run_id"].as_str().unwrap().to_string())
        });
        (child, run_id)
    }
}

#[test]
fn cancel_reaches_the_local_driver_and_records_why_and_who() {
    let env = Env::new();
    let (driver, run_id) = env.slow_run("slow task");

    let out = env
        .praxis
        .cmd(&["cancel", &run_id[..10], "--reason", "wrong task"])
        .env("USER", "ana")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout).trim(), format!("run {run_id} cancelled"));

    let out = driver.wait_with_output().unwrap();
    let summary: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)));
    assert_eq!(summary["status"], "cancelled", "{summary}");

    let finished = env
        .praxis
        .entries(&run_id)
        .into_iter()
        .find(|e| e["kind"] == "run_finished")
        .expect("run_finished recorded");
    let recorded = finished["payload"].to_string();
    assert!(recorded.contains("wrong task"), "{recorded}");
    assert!(recorded.contains("ana (praxis cancel"), "{recorded}");
    let out = env.praxis.praxis(&["ledger", "verify", &run_id]);
    assert!(out.status.success(), "{}", text(&out.stdout));

    // A run that already ended has nothing to cancel.
    let out = env.praxis.praxis(&["cancel", &run_id]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("already ended"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_run_whose_driver_is_gone_gets_a_clear_answer() {
    let env = Env::new();
    let (mut driver, run_id) = env.slow_run("orphan task");
    driver.kill().unwrap();
    driver.wait().unwrap();
    let out = env.praxis.praxis(&["cancel", &run_id]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("interrupted") && stderr.contains("gone"),
        "{stderr}"
    );
}
