//! `praxis branch` and `praxis resume` end to end: real processes (one killed with SIGKILL),
//! real SQLite files, real tools.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;
use common::{Praxis, text};

struct Env {
    base: Praxis,
}

impl std::ops::Deref for Env {
    type Target = Praxis;
    fn deref(&self) -> &Praxis {
        &self.base
    }
}

impl Env {
    fn new() -> Self {
        Env {
            base: Praxis::new(),
        }
    }

    fn assert_verifies_and_replays(&self, run_id: &str) {
        let out = self.praxis(&["ledger", "verify", run_id]);
        assert!(out.status.success(), "verify: {}", text(&out.stdout));
        let out = self.praxis(&["replay", run_id]);
        assert!(
            out.status.success(),
            "replay: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
}

fn kinds(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect()
}

#[test]
fn a_branch_continues_from_the_world_at_that_entry_and_links_its_history() {
    let env = Env::new();
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("a.txt"), "start\n").unwrap();
    let origin_script = env.script(
        "origin.json",
        json!({"turns": [
            {"tool_calls": [{"id": "w1", "name": "fs_write", "arguments": {"path": "a.txt", "content": "one\n"}}]},
            {"tool_calls": [{"id": "w2", "name": "fs_write", "arguments": {"path": "a.txt", "content": "two\n"}}]},
            {"content": "origin done"}
        ]}),
    );
    let origin = env.json(&[
        "run",
        "edit",
        "-w",
        ws.path().to_str().unwrap(),
        "--script",
        origin_script.to_str().unwrap(),
        "--json",
    ]);
    let origin_id = origin["run_id"].as_str().unwrap();
    let origin_entries = env.entries(origin_id);
    // Branch at the second model reply: its batch (reply + proposal) cannot be split, so the
    // history ends just before it, after the first write.
    let second_reply = origin_entries
        .iter()
        .filter(|e| e["kind"] == "model_response")
        .nth(1)
        .unwrap()["seq"]
        .as_u64()
        .unwrap();
    let branch_script = env.script(
        "branch.json",
        json!({"turns": [
            {"tool_calls": [{"id": "r1", "name": "fs_read", "arguments": {"path": "a.txt"}}]},
            {"content": "branch done"}
        ]}),
    );
    let spare = tempfile::tempdir().unwrap();
    let branch_ws = spare.path().join("branch-ws");
    let branch = env.json(&[
        "branch",
        &origin_id[..12],
        "--at",
        &second_reply.to_string(),
        "--script",
        branch_script.to_str().unwrap(),
        "--workspace",
        branch_ws.to_str().unwrap(),
        "--task",
        "Check the file instead.",
        "--json",
    ]);
    assert_eq!(branch["status"], "completed", "{branch}");
    assert_eq!(branch["final_answer"], "branch done");
    assert_eq!(branch["branch_of"], origin_id);
    assert_eq!(branch["branched_at"], second_reply - 1);
    let branch_id = branch["run_id"].as_str().unwrap();
    assert_ne!(branch_id, origin_id);

    // The branch's workspace started as the origin's world after the first write.
    let entries = env.entries(branch_id);
    let read = entries.iter().find(|e| e["kind"] == "execution").unwrap();
    assert_eq!(read["payload"]["output"], "one\n", "{read}");
    assert_eq!(
        std::fs::read_to_string(branch_ws.join("a.txt")).unwrap(),
        "one\n"
    );
    // The origin's workspace is untouched by the branch.
    assert_eq!(
        std::fs::read_to_string(ws.path().join("a.txt")).unwrap(),
        "two\n"
    );
    // Its chain starts afresh and links to the origin entry by seq and hash.
    assert_eq!(
        kinds(&entries)[..3],
        ["run_started", "workspace_snapshot", "model_response"]
    );
    let link = &entries[0]["payload"]["branch"];
    let linked = &origin_entries[(second_reply - 2) as usize];
    assert_eq!(link["run_id"], origin_id);
    assert_eq!(link["seq"], linked["seq"]);
    assert_eq!(link["hash"], linked["hash"]);
    // The history's model calls count: the branch asked step 2 again, then step 3.
    assert_eq!(entries[2]["payload"]["step"], 2);
    env.assert_verifies_and_replays(branch_id);
    env.assert_verifies_and_replays(origin_id);

    // The world of the branch is rebuilt from its own snapshot.
    let out = env.praxis(&["world", branch_id, "--at", "2", "--path", "a.txt"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "one\n");
}

#[test]
fn branch_refuses_points_it_cannot_start_from() {
    let env = Env::new();
    let ws = tempfile::tempdir().unwrap();
    let script = env.script("s.json", json!({"turns": [{"content": "done"}]}));
    let origin = env.json(&[
        "run",
        "t",
        "-w",
        ws.path().to_str().unwrap(),
        "--script",
        script.to_str().unwrap(),
        "--json",
    ]);
    let id = origin["run_id"].as_str().unwrap();
    let branch = |at: &str, workspace: &Path| {
        env.praxis(&[
            "branch",
            id,
            "--at",
            at,
            "--script",
            script.to_str().unwrap(),
            "--workspace",
            workspace.to_str().unwrap(),
            "--json",
        ])
    };
    let spare = tempfile::tempdir().unwrap();
    let fresh = spare.path().join("w1");
    // Entry 1 is run_started: the run had not asked the model yet.
    let out = branch("1", &fresh);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("the earliest such point is seq 2"),
        "{}",
        text(&out.stderr)
    );
    let out = branch("999", &fresh);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("seq 1 to"),
        "{}",
        text(&out.stderr)
    );
    // A workspace that holds files is never overwritten.
    let busy = tempfile::tempdir().unwrap();
    std::fs::write(busy.path().join("mine.txt"), "keep").unwrap();
    let out = branch("2", busy.path());
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not empty"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(busy.path().join("mine.txt")).unwrap(),
        "keep"
    );
    // The data dir is out of reach: the branch's world is never written into it.
    for inside in [env.home.path().join("w2"), env.home.path().join("keys/w3")] {
        let out = branch("2", &inside);
        assert!(!out.status.success());
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("--workspace") && stderr.contains("praxis data directory"),
            "{stderr}"
        );
        assert!(!inside.exists());
    }
    // Entry 2 works.
    let out = branch("2", &fresh);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Starts a run whose first tool call is slow, kills the process with SIGKILL once that
/// call's proposal is durable, and returns the run id.
fn killed_during_a_slow_tool(env: &Env, ws: &Path, script: &Path) -> String {
    let mut child = env
        .cmd(&[
            "run",
            "slow",
            "-w",
            ws.to_str().unwrap(),
            "--script",
            script.to_str().unwrap(),
            "--json",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Hang guard only: the proposal is durable within moments of the start.
    let give_up = Instant::now() + Duration::from_secs(60);
    let run_id = loop {
        assert!(
            Instant::now() < give_up,
            "the run never proposed its tool call"
        );
        std::thread::sleep(Duration::from_millis(100));
        let out = env.praxis(&["runs", "--json"]);
        let runs: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let Some(id) = runs[0]["run_id"].as_str() else {
            continue;
        };
        if env.entries(id).iter().any(|e| e["kind"] == "proposal") {
            break id.to_string();
        }
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    run_id
}

fn slow_script(env: &Env) -> PathBuf {
    env.script(
        "slow.json",
        json!({"turns": [
            {"tool_calls": [{"id": "s1", "name": "shell", "arguments": {"command": "sleep 5 && echo ran >> log.txt"}}]},
            {"tool_calls": [{"id": "r1", "name": "shell", "arguments": {"command": "cat log.txt || echo no log"}}]},
            {"content": "finished"}
        ]}),
    )
}

#[test]
fn a_killed_run_resumes_without_silently_rerunning_its_tool() {
    let env = Env::new();
    let ws = tempfile::tempdir().unwrap();
    let script = slow_script(&env);
    let run_id = killed_during_a_slow_tool(&env, ws.path(), &script);
    let runs = env.json(&["runs", "--json"]);
    assert_eq!(runs[0]["status"], "interrupted", "{runs}");

    // Scripts are not recorded: resuming a scripted run needs the script again.
    let out = env.praxis(&["resume", &run_id, "--approve", "never"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--script"),
        "{}",
        text(&out.stderr)
    );

    let resumed = env.json(&[
        "resume",
        &run_id,
        "--script",
        script.to_str().unwrap(),
        "--approve",
        "never",
        "--json",
    ]);
    assert_eq!(resumed["status"], "completed", "{resumed}");
    assert_eq!(resumed["run_id"], run_id.as_str());
    // The interrupted shell call was neither finished by the dead process nor run again.
    assert!(!ws.path().join("log.txt").exists());
    let entries = env.entries(&run_id);
    let k = kinds(&entries);
    let resumed_at = k.iter().position(|&k| k == "run_resumed").unwrap();
    assert_eq!(
        k[resumed_at..resumed_at + 3],
        ["run_resumed", "approval_requested", "approval_decided"]
    );
    assert_eq!(entries[resumed_at]["payload"]["interrupted_call"], "s1");
    assert_eq!(entries[resumed_at + 2]["payload"]["approved"], false);
    env.assert_verifies_and_replays(&run_id);

    // A finished run is not resumed again.
    let out = env.praxis(&["resume", &run_id, "--script", script.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("it is completed"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_approved_interrupted_call_runs_exactly_once_more() {
    let env = Env::new();
    let ws = tempfile::tempdir().unwrap();
    let script = slow_script(&env);
    let run_id = killed_during_a_slow_tool(&env, ws.path(), &script);
    let resumed = env.json(&[
        "resume",
        &run_id,
        "--script",
        script.to_str().unwrap(),
        "--approve",
        "auto",
        "--json",
    ]);
    assert_eq!(resumed["status"], "completed", "{resumed}");
    assert_eq!(
        std::fs::read_to_string(ws.path().join("log.txt")).unwrap(),
        "ran\n"
    );
    env.assert_verifies_and_replays(&run_id);
}
