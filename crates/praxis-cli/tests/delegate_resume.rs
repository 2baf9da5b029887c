//! A parent killed (`kill -9`) while a `delegate` sub-run is in flight is charged that
//! sub-run's spending when it is resumed: the sub-run's own ledger entries say what it
//! consumed, and `run_resumed` records the charge, so replay reproduces it.

mod common;

use common::{Praxis, text};
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::{Duration, Instant};

const WRIT: &str = r#"
subject = "agent-1"
tenant = "default"
expires_in = "1h"
effect_ceiling = "exec"
[budget]
tool_calls = 20
model_calls = 20
[[tools]]
name = "fs_read"
paths = ["**"]
[[tools]]
name = "shell"
allow_commands = ["*"]
[[tools]]
name = "delegate"
"#;

fn sleep_running(arg: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
        std::fs::read(p.path().join("cmdline"))
            .map(|c| c.split(|b| *b == 0).any(|a| a == arg.as_bytes()) && c.starts_with(b"sleep"))
            .unwrap_or(false)
    })
}

#[test]
fn a_parent_resumed_after_dying_mid_delegation_is_charged_the_sub_runs_spending() {
    let env = Praxis::new();
    assert!(env.praxis(&["writ", "keygen"]).status.success());
    let writ = env.issue("parent", WRIT);
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("README.md"), "# r\n").unwrap();
    let marker = "31.4243"; // a sleep length unique to this test
    let child_writ = json!({"subject": "agent-1/helper", "tenant": "default", "expires_in": "10m",
        "effect_ceiling": "exec", "tools": [{"name": "fs_read", "paths": ["**"]},
        {"name": "shell", "allow_commands": ["*"]}]});
    let script = env.script(
        "parent.json",
        json!({
            "turns": [
                {"tool_calls": [{"id": "helper", "name": "delegate", "arguments": {"task": "work", "writ": child_writ}}]},
                {"content": "parent done"}
            ],
            "delegates": {
                "work": {"turns": [
                    {"tool_calls": [{"id": "r", "name": "fs_read", "arguments": {"path": "README.md"}}]},
                    {"tool_calls": [{"id": "s", "name": "shell", "arguments": {"command": format!("sleep {marker}")}}]},
                    {"content": "never"}
                ]}
            }
        }),
    );
    let mut parent = env
        .cmd(&[
            "run",
            "delegate",
            "-w",
            ws.path().to_str().unwrap(),
            "--script",
            script.to_str().unwrap(),
            "--writ",
            writ.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sleep_running(marker) {
        assert!(
            Instant::now() < deadline,
            "the sub-run's command never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    parent.kill().unwrap(); // SIGKILL, in the middle of the delegation
    parent.wait().unwrap();

    let runs = env.json(&["runs", "--json"]);
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    let parent_id = runs
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .find(|id| env.entries(id)[0]["payload"]["environment"]["parent"].is_null())
        .unwrap();
    let resumed = env
        .cmd(&[
            "resume",
            &parent_id,
            "--script",
            script.to_str().unwrap(),
            "--writ",
            writ.to_str().unwrap(),
            "--approve",
            "never",
        ])
        .output()
        .unwrap();
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    let entries = env.entries(&parent_id);
    let resumed: &Value = &entries
        .iter()
        .find(|e| e["kind"] == "run_resumed")
        .expect("a run_resumed entry")["payload"];
    assert_eq!(resumed["interrupted_call"], "helper");
    // The sub-run made 2 model calls and 2 tool calls (the read, the killed shell call).
    let charged = &resumed["interrupted_child_spent"];
    assert_eq!(
        (
            charged["tool_calls"].as_u64(),
            charged["model_calls"].as_u64()
        ),
        (Some(2), Some(2)),
        "{resumed}"
    );
    // Replay reproduces the charge.
    let replay = env.praxis(&["replay", &parent_id]);
    assert!(replay.status.success(), "{}", text(&replay.stdout));
}
