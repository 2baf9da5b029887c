//! Writs, budgets, approvals and delegation through the real `praxis` binary.

use serde_json::{Value, json};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

mod common;
use common::{Praxis, text};

struct Env {
    base: Praxis,
    ws: TempDir,
}

impl std::ops::Deref for Env {
    type Target = Praxis;
    fn deref(&self) -> &Praxis {
        &self.base
    }
}

impl Env {
    fn new() -> Self {
        let env = Env {
            base: Praxis::new(),
            ws: tempfile::tempdir().unwrap(),
        };
        std::fs::write(env.ws.path().join("README.md"), "# Governed\n").unwrap();
        std::fs::create_dir(env.ws.path().join("src")).unwrap();
        assert!(env.praxis(&["writ", "keygen"]).status.success());
        env
    }

    fn run_args(&self, writ: &Path, script: Value) -> Vec<String> {
        let script = self.file("script.json", &script.to_string());
        [
            "run",
            "governed task",
            "--workspace",
            self.ws.path().to_str().unwrap(),
            "--script",
            script.to_str().unwrap(),
            "--writ",
            writ.to_str().unwrap(),
            "--json",
        ]
        .map(String::from)
        .to_vec()
    }

    fn run(&self, writ: &Path, script: Value) -> (Output, Value) {
        let args = self.run_args(writ, script);
        let out = self
            .cmd(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .output()
            .unwrap();
        let summary = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out, summary)
    }
}

fn proposals(entries: &[Value]) -> Vec<&Value> {
    entries
        .iter()
        .filter(|e| e["kind"] == "proposal")
        .map(|e| &e["payload"])
        .collect()
}

const BASE: &str = r#"
subject = "agent-1"
tenant = "default"
expires_in = "1h"
effect_ceiling = "exec"
[budget]
tool_calls = 20
[[tools]]
name = "fs_read"
paths = ["**"]
[[tools]]
name = "fs_write"
paths = ["src/**"]
[[tools]]
name = "shell"
allow_commands = ["ls *", "cat *", "echo *"]
deny_commands = ["rm *"]
"#;

#[test]
fn writ_lifecycle_and_every_refusal() {
    let env = Env::new();
    let writ = env.issue("base", BASE);
    let ok = env.praxis(&["writ", "verify", writ.to_str().unwrap()]);
    assert!(ok.status.success(), "{}", text(&ok.stdout));
    let shown = text(
        &env.praxis(&["writ", "inspect", writ.to_str().unwrap()])
            .stdout,
    );
    assert!(
        shown.contains("agent-1") && shown.contains("src/**") && shown.contains("rm *"),
        "{shown}"
    );

    let token = std::fs::read_to_string(&writ).unwrap().trim().to_string();
    let refused = |name: &str, token: &str| {
        let file = env.file(name, token);
        let out = env.praxis(&["writ", "verify", file.to_str().unwrap()]);
        assert!(!out.status.success(), "{name} was accepted");
        text(&out.stdout) + &text(&out.stderr)
    };
    // Tampered: one character in the middle changed.
    let mut tampered: Vec<char> = token.chars().collect();
    let mid = tampered.len() / 2;
    tampered[mid] = if tampered[mid] == 'A' { 'B' } else { 'A' };
    refused("tampered.writ", &tampered.into_iter().collect::<String>());
    // Truncated.
    refused("truncated.writ", &token[..token.len() / 2]);
    // Signed by another issuer: a wrong anchor.
    let other = Env::new();
    let foreign = other.issue("foreign", BASE);
    let why = refused(
        "foreign.writ",
        std::fs::read_to_string(foreign).unwrap().trim(),
    );
    assert!(
        why.to_lowercase().contains("anchor") || why.to_lowercase().contains("issuer"),
        "{why}"
    );
    // Expired and not yet valid.
    let expired = env.issue(
        "expired",
        &BASE.replace(
            "expires_in = \"1h\"",
            "expires_at = \"2020-01-01T00:00:00Z\"",
        ),
    );
    let why = refused(
        "expired2.writ",
        std::fs::read_to_string(expired).unwrap().trim(),
    );
    assert!(why.contains("expired"), "{why}");
    let future = env.issue(
        "future",
        &BASE.replace(
            "expires_in = \"1h\"",
            "not_before = \"2999-01-01T00:00:00Z\"\nexpires_at = \"2999-02-01T00:00:00Z\"",
        ),
    );
    let why = refused(
        "future2.writ",
        std::fs::read_to_string(future).unwrap().trim(),
    );
    assert!(
        why.to_lowercase().contains("not yet valid") || why.contains("not_before"),
        "{why}"
    );
    // A spec with an unknown field is refused naming it.
    let bad = env.file("bad.toml", &format!("{BASE}\nsubjekt = \"x\"\n"));
    let out = env.praxis(&["writ", "issue", "--spec", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("subjekt"),
        "{}",
        text(&out.stderr)
    );
    // A forged writ is refused before anything runs.
    let forged = env.file("forged2.writ", &token[..token.len() - 8]);
    let (out, _) = env.run(&forged, json!({"turns": [{"content": "done"}]}));
    assert!(!out.status.success());
    let runs: Value = serde_json::from_slice(&env.praxis(&["runs", "--json"]).stdout).unwrap();
    assert_eq!(
        runs.as_array().unwrap().len(),
        0,
        "a run was recorded under a forged writ"
    );
}

#[test]
fn attenuation_narrows_and_refuses_to_widen() {
    let env = Env::new();
    let writ = env.issue("base", BASE);
    let wider = env.file(
        "wider.toml",
        &BASE.replace("paths = [\"src/**\"]", "paths = [\"**\"]"),
    );
    let out = env.praxis(&[
        "writ",
        "attenuate",
        writ.to_str().unwrap(),
        "--spec",
        wider.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("paths"), "{}", text(&out.stderr));
    let narrower = env.file(
        "narrow.toml",
        "subject = \"agent-1/child\"\ntenant = \"default\"\nexpires_in = \"10m\"\neffect_ceiling = \"read\"\n[budget]\ntool_calls = 5\n[[tools]]\nname = \"fs_read\"\npaths = [\"src/**\"]\n",
    );
    let out = env.praxis(&[
        "writ",
        "attenuate",
        writ.to_str().unwrap(),
        "--spec",
        narrower.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let child = env.file("child.writ", &text(&out.stdout));
    assert!(
        env.praxis(&["writ", "verify", child.to_str().unwrap()])
            .status
            .success()
    );
    // The child cannot write, even where the parent could.
    let (out, summary) = env.run(
        &child,
        json!({"turns": [
            {"tool_calls": [{"id": "w", "name": "fs_write", "arguments": {"path": "src/a.txt", "content": "x"}}]},
            {"content": "done"}
        ]}),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let entries = env.entries(summary["run_id"].as_str().unwrap());
    assert_eq!(proposals(&entries)[0]["verdict"], "deny");
    assert!(!env.ws.path().join("src/a.txt").exists());
}

#[test]
fn the_writ_governs_paths_commands_and_records_itself() {
    let env = Env::new();
    let writ = env.issue("base", BASE);
    let (out, summary) = env.run(
        &writ,
        json!({"turns": [
            {"tool_calls": [
                {"id": "in", "name": "fs_write", "arguments": {"path": "src/ok.txt", "content": "ok\n"}},
                {"id": "out", "name": "fs_write", "arguments": {"path": "README.md", "content": "pwned"}},
                {"id": "sneaky", "name": "shell", "arguments": {"command": "ls; rm -rf src"}},
                {"id": "subst", "name": "shell", "arguments": {"command": "echo $(rm -rf src)"}},
                {"id": "fine", "name": "shell", "arguments": {"command": "ls src && cat README.md"}},
                {"id": "unlisted", "name": "grep", "arguments": {"pattern": "x"}}
            ]},
            {"content": "done"}
        ]}),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let entries = env.entries(summary["run_id"].as_str().unwrap());
    assert!(
        entries[0]["payload"]["writ"]["id"].is_string(),
        "writ not recorded: {}",
        entries[0]
    );
    let rule = |id: &str| {
        let p = proposals(&entries)
            .into_iter()
            .find(|p| p["call_id"] == id)
            .unwrap()
            .clone();
        (
            p["verdict"].as_str().unwrap().to_string(),
            p["rule"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(rule("in").0, "allow");
    assert_eq!(rule("out"), ("deny".into(), "writ.paths".into()));
    assert_eq!(rule("sneaky"), ("deny".into(), "writ.commands".into()));
    assert_eq!(rule("subst"), ("deny".into(), "writ.commands".into()));
    assert_eq!(rule("fine").0, "allow");
    assert_eq!(rule("unlisted"), ("deny".into(), "writ.tools".into()));
    assert_eq!(
        std::fs::read_to_string(env.ws.path().join("README.md")).unwrap(),
        "# Governed\n"
    );
    assert!(env.ws.path().join("src").exists());
}

#[test]
fn a_budget_exhausted_mid_run_stops_it_before_the_call_runs() {
    let env = Env::new();
    let writ = env.issue("tight", &BASE.replace("tool_calls = 20", "tool_calls = 2"));
    let (out, summary) = env.run(
        &writ,
        json!({"turns": [
            {"tool_calls": [{"id": "a", "name": "fs_read", "arguments": {"path": "README.md"}}]},
            {"tool_calls": [{"id": "b", "name": "shell", "arguments": {"command": "echo one > src/one.txt"}}]},
            {"tool_calls": [{"id": "c", "name": "shell", "arguments": {"command": "echo two > src/two.txt"}}]},
            {"content": "never reached"}
        ]}),
    );
    assert!(!out.status.success());
    assert_eq!(summary["stop_reason"], "budget_exhausted");
    let entries = env.entries(summary["run_id"].as_str().unwrap());
    let last = proposals(&entries).last().copied().unwrap().clone();
    assert_eq!(
        (last["call_id"].as_str(), last["rule"].as_str()),
        (Some("c"), Some("writ.budget.tool_calls"))
    );
    assert!(env.ws.path().join("src/one.txt").exists());
    assert!(
        !env.ws.path().join("src/two.txt").exists(),
        "the over-budget call ran"
    );
}

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

#[test]
fn approvals_from_another_process_resume_the_run() {
    let env = Env::new();
    let writ = env.issue(
        "approve",
        &format!("{BASE}\n[approvals]\ntools = [\"fs_write\"]\ntimeout_seconds = 120\n"),
    );
    for (decision, reason) in [("approve", ""), ("deny", "not today")] {
        let _ = std::fs::remove_file(env.ws.path().join("src/gated.txt"));
        let args = env.run_args(
            &writ,
            json!({"turns": [
                {"tool_calls": [{"id": "w", "name": "fs_write", "arguments": {"path": "src/gated.txt", "content": "x"}}]},
                {"content": "finished"}
            ]}),
        );
        let child = env
            .cmd(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .arg("--approve")
            .arg("ask")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pending: Value = wait_for("a pending approval", || {
            let list: Value =
                serde_json::from_slice(&env.praxis(&["approvals", "--json"]).stdout).ok()?;
            list.as_array()
                .filter(|a| !a.is_empty())
                .map(|a| a[0].clone())
        });
        let run_id = pending["run_id"].as_str().unwrap().to_string();
        assert_eq!(pending["tool"], "fs_write");
        let runs: Value = serde_json::from_slice(&env.praxis(&["runs", "--json"]).stdout).unwrap();
        assert_eq!(runs[0]["status"], "awaiting_approval");
        let mut cmd = env.cmd(&[decision, &run_id[..10]]);
        cmd.env("PRAXIS_OPERATOR", "alice");
        if decision == "deny" {
            cmd.args(["--reason", reason]);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "run failed: {}", text(&out.stderr));
        let entries = env.entries(&run_id);
        let decided = entries
            .iter()
            .find(|e| e["kind"] == "approval_decided")
            .unwrap();
        assert_eq!(decided["payload"]["by"], "alice");
        assert_eq!(decided["payload"]["approved"], decision == "approve");
        assert!(entries.iter().any(|e| e["kind"] == "approval_requested"));
        assert_eq!(
            env.ws.path().join("src/gated.txt").exists(),
            decision == "approve"
        );
        if decision == "deny" {
            let model_saw = entries.iter().filter(|e| e["kind"] == "execution").count();
            assert_eq!(model_saw, 0, "a denied proposal executed");
        }
    }
}

#[test]
fn delegation_attenuates_and_a_child_cannot_exceed_its_parent() {
    let env = Env::new();
    let parent_spec = format!("{BASE}\n[[tools]]\nname = \"delegate\"\n");
    let writ = env.issue("parent", &parent_spec);
    let child_writ = json!({"subject": "agent-1/helper", "tenant": "default", "expires_in": "10m",
        "effect_ceiling": "read", "budget": {"tool_calls": 5}, "tools": [{"name": "fs_read", "paths": ["**"]}]});
    let wider_writ = json!({"subject": "agent-1/greedy", "tenant": "default", "expires_in": "10m",
        "effect_ceiling": "network", "budget": {"tool_calls": 5}, "tools": [{"name": "fs_write", "paths": ["**"]}]});
    let (out, summary) = env.run(
        &writ,
        json!({
            "turns": [
                {"tool_calls": [{"id": "greedy", "name": "delegate", "arguments": {"task": "take over", "writ": wider_writ}}]},
                {"tool_calls": [{"id": "helper", "name": "delegate", "arguments": {"task": "read the readme", "writ": child_writ}}]},
                {"content": "parent done"}
            ],
            "delegates": {
                "read the readme": {"turns": [
                    {"tool_calls": [{"id": "r", "name": "fs_read", "arguments": {"path": "README.md"}}]},
                    {"tool_calls": [{"id": "w", "name": "fs_write", "arguments": {"path": "src/x.txt", "content": "x"}}]},
                    {"content": "the readme says Governed"}
                ]}
            }
        }),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let parent_id = summary["run_id"].as_str().unwrap();
    let entries = env.entries(parent_id);
    let executions: Vec<&Value> = entries
        .iter()
        .filter(|e| e["kind"] == "execution")
        .map(|e| &e["payload"])
        .collect();
    assert_eq!(executions[0]["status"], "error");
    assert!(
        executions[0]["output"]
            .as_str()
            .unwrap()
            .contains("refused"),
        "{}",
        executions[0]
    );
    let helper_out = executions[1]["output"].as_str().unwrap();
    assert!(
        helper_out.contains("completed") && helper_out.contains("Governed"),
        "{helper_out}"
    );
    // The child run is linked to its parent and could not write.
    let child_id = helper_out.split_whitespace().nth(1).unwrap();
    let child = env.entries(child_id);
    assert_eq!(
        child[0]["payload"]["environment"]["parent"]["run_id"],
        parent_id
    );
    let child_write = proposals(&child)
        .into_iter()
        .find(|p| p["tool"] == "fs_write")
        .unwrap()
        .clone();
    assert_eq!(child_write["verdict"], "deny");
    assert!(!env.ws.path().join("src/x.txt").exists());
}

#[test]
fn without_a_writ_a_development_writ_is_issued_and_recorded() {
    let env = Env::new();
    let out = env.praxis(&[
        "run",
        "Summarize",
        "--workspace",
        env.ws.path().to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("development writ"));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entries = env.entries(summary["run_id"].as_str().unwrap());
    assert!(entries[0]["payload"]["writ"]["id"].is_string());
}

#[test]
fn a_writ_can_send_budget_overruns_to_a_person_instead_of_stopping() {
    let env = Env::new();
    let spec =
        BASE.replace("tool_calls = 20", "tool_calls = 1") + "\n[approvals]\nbudgets = true\n";
    let writ = env.issue("overrun", &spec);
    let script = json!({"turns": [
        {"tool_calls": [{"id": "a", "name": "fs_read", "arguments": {"path": "README.md"}}]},
        {"tool_calls": [{"id": "b", "name": "fs_read", "arguments": {"path": "README.md"}}]},
        {"content": "done"}
    ]});
    for (mode, executed) in [("auto", 2), ("never", 1)] {
        let args = env.run_args(&writ, script.clone());
        let out = env
            .cmd(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .args(["--approve", mode])
            .output()
            .unwrap();
        assert!(out.status.success(), "{mode}: {}", text(&out.stderr));
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["stop_reason"], "completed");
        let entries = env.entries(summary["run_id"].as_str().unwrap());
        let over = proposals(&entries)[1].clone();
        assert_eq!(
            (over["verdict"].as_str(), over["rule"].as_str()),
            (Some("needs_approval"), Some("writ.budget.tool_calls"))
        );
        assert_eq!(
            entries.iter().filter(|e| e["kind"] == "execution").count(),
            executed,
            "{mode}"
        );
    }
}

/// Every run started under `root` (itself and its sub-runs, found through the `sub-run ID`
/// answers of its `delegate` executions), with its entries.
fn run_tree(env: &Env, root: &str) -> Vec<(String, Vec<Value>)> {
    let mut runs = Vec::new();
    let mut queue = vec![root.to_string()];
    while let Some(id) = queue.pop() {
        let entries = env.entries(&id);
        for e in entries.iter().filter(|e| e["kind"] == "execution") {
            if let Some(child) = e["payload"]["output"]
                .as_str()
                .and_then(|o| o.strip_prefix("sub-run "))
                .and_then(|o| o.split_whitespace().next())
            {
                queue.push(child.to_string());
            }
        }
        runs.push((id, entries));
    }
    runs
}

fn count(runs: &[(String, Vec<Value>)], kind: &str) -> usize {
    runs.iter()
        .map(|(_, entries)| entries.iter().filter(|e| e["kind"] == kind).count())
        .sum()
}

/// Issue 12, finding 5: three delegates under `tool_calls = 3, model_calls = 6` made 12 tool
/// calls and 16 model calls, because every sub-run started its budget at zero. A child now
/// gets at most what its parent has left, and its spending counts against the parent.
#[test]
fn delegates_cannot_spend_more_than_their_parents_budget() {
    let env = Env::new();
    let parent_spec = r#"
subject = "agent-1"
tenant = "default"
expires_in = "1h"
effect_ceiling = "read"
[budget]
tool_calls = 3
model_calls = 6
[[tools]]
name = "fs_read"
paths = ["**"]
[[tools]]
name = "delegate"
"#;
    let writ = env.issue("tight", parent_spec);
    // Each child asks for the parent's whole budget, as the attack did.
    let child_writ = json!({"subject": "agent-1/helper", "tenant": "default",
        "effect_ceiling": "read", "budget": {"tool_calls": 3, "model_calls": 6},
        "tools": [{"name": "fs_read", "paths": ["**"]}]});
    let reader = json!({"turns": [
        {"tool_calls": [{"id": "r1", "name": "fs_read", "arguments": {"path": "README.md"}}]},
        {"tool_calls": [{"id": "r2", "name": "fs_read", "arguments": {"path": "README.md"}}]},
        {"tool_calls": [{"id": "r3", "name": "fs_read", "arguments": {"path": "README.md"}}]},
        {"content": "read it"}
    ]});
    let delegate = |id: &str, task: &str| json!({"tool_calls": [{"id": id, "name": "delegate", "arguments": {"task": task, "writ": child_writ}}]});
    let (out, summary) = env.run(
        &writ,
        json!({
            "turns": [delegate("d1", "one"), delegate("d2", "two"), delegate("d3", "three"), {"content": "done"}],
            "delegates": {"one": reader, "two": reader, "three": reader}
        }),
    );
    // The run ends `budget_exhausted`, which exits non-zero.
    let parent_id = summary["run_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no summary: {}", text(&out.stderr)));
    let runs = run_tree(&env, parent_id);
    let tool_calls = count(&runs, "execution");
    let model_calls = count(&runs, "model_response");
    assert!(
        tool_calls <= 3 && model_calls <= 6,
        "{tool_calls} tool calls and {model_calls} model calls under budgets of 3 and 6 ({} runs)",
        runs.len()
    );
    // The first child was granted only what was left, and the parent was charged for it.
    let first = &runs[0].1;
    let execution = first
        .iter()
        .find(|e| e["kind"] == "execution")
        .map(|e| &e["payload"])
        .unwrap();
    assert_eq!(execution["child_spent"]["tool_calls"], 2, "{execution}");
    assert_eq!(summary["stop_reason"], "budget_exhausted", "{summary}");
    let child = runs
        .iter()
        .find(|(id, _)| id != parent_id)
        .map(|(_, entries)| entries)
        .unwrap();
    let granted = &child[0]["payload"]["writ"]["blocks"][1]["budget"];
    assert_eq!(
        (
            granted["tool_calls"].as_u64(),
            granted["model_calls"].as_u64()
        ),
        (Some(2), Some(5)),
        "{granted}"
    );
    // Replay reproduces the parent's charged spending exactly.
    let replay = env.praxis(&["replay", parent_id, "--json"]);
    assert!(replay.status.success(), "{}", text(&replay.stderr));
    let report: Value = serde_json::from_slice(&replay.stdout).unwrap();
    assert_eq!(report["status"], "matched", "{report}");
}

/// `praxis writ attenuate` refuses a child that would let a person approve going over the
/// parent's hard budgets (with `--approve auto`, 9 tool calls ran under `tool_calls = 5`).
#[test]
fn attenuate_refuses_to_turn_hard_budgets_into_approvals() {
    let env = Env::new();
    let writ = env.issue("hard", &BASE.replace("tool_calls = 20", "tool_calls = 5"));
    let child = env.file(
        "soft.toml",
        r#"
subject = "agent-1/soft"
tenant = "default"
effect_ceiling = "read"
[budget]
tool_calls = 5
[[tools]]
name = "fs_read"
paths = ["**"]
[approvals]
budgets = true
"#,
    );
    let out = env.praxis(&[
        "writ",
        "attenuate",
        writ.to_str().unwrap(),
        "--spec",
        child.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("approvals.budgets") && stderr.contains("widen"),
        "{stderr}"
    );
}
