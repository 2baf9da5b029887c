//! `praxis policy check` and `praxis diff` through the real `praxis` binary.

use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

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
        let env = Env {
            base: Praxis::new(),
        };
        assert!(env.praxis(&["writ", "keygen"]).status.success());
        env
    }

    /// Runs `script` in a fresh workspace under `writ`; returns the run id.
    fn run(&self, writ: &Path, script: Value) -> String {
        let ws = tempfile::tempdir().unwrap();
        std::fs::write(ws.path().join("README.md"), "# start\n").unwrap();
        let script = self.file("script.json", &script.to_string());
        let out = self.praxis(&[
            "run",
            "task",
            "--workspace",
            ws.path().to_str().unwrap(),
            "--script",
            script.to_str().unwrap(),
            "--writ",
            writ.to_str().unwrap(),
            "--json",
        ]);
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        assert_eq!(summary["status"], "completed", "{}", text(&out.stderr));
        summary["run_id"].as_str().unwrap().to_string()
    }

    fn proposal_seqs(&self, run_id: &str) -> Vec<u64> {
        text(&self.praxis(&["ledger", "export", run_id]).stdout)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|e| e["kind"] == "proposal")
            .map(|e| e["seq"].as_u64().unwrap())
            .collect()
    }
}

fn call(id: &str, tool: &str, arguments: Value) -> Value {
    json!({"tool_calls": [{"id": id, "name": tool, "arguments": arguments}]})
}

const LOOSE: &str = r#"
subject = "agent"
expires_in = "1h"
effect_ceiling = "exec"
[[tools]]
name = "fs_write"
paths = ["**"]
[[tools]]
name = "shell"
allow_commands = ["*"]
"#;

const STRICT: &str = r#"
subject = "agent"
expires_in = "1h"
effect_ceiling = "exec"
[[tools]]
name = "fs_write"
paths = ["src/**"]
[[tools]]
name = "shell"
allow_commands = ["*"]
deny_commands = ["rm *"]
"#;

#[test]
fn policy_check_lists_the_verdicts_a_stricter_writ_would_change() {
    let env = Env::new();
    let loose = env.issue("loose", LOOSE);
    let strict = env.issue("strict", STRICT);
    let run_id = env.run(
        &loose,
        json!({"turns": [
            call("c1", "fs_write", json!({"path": "src/a.txt", "content": "a\n"})),
            call("c2", "fs_write", json!({"path": "notes.txt", "content": "n\n"})),
            call("c3", "shell", json!({"command": "rm -f notes.txt"})),
            call("c4", "shell", json!({"command": "echo hi"})),
            {"content": "done"}
        ]}),
    );
    let seqs = env.proposal_seqs(&run_id);
    assert_eq!(seqs.len(), 4);

    let out = env.praxis(&[
        "policy",
        "check",
        &run_id,
        "--writ",
        strict.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    // The fixed shape: exactly these keys.
    for item in list {
        let mut keys: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["after", "before", "reason", "seq", "tool"]);
    }
    assert_eq!(
        (
            &list[0]["seq"],
            &list[0]["tool"],
            &list[0]["before"],
            &list[0]["after"]
        ),
        (
            &json!(seqs[1]),
            &json!("fs_write"),
            &json!("allow"),
            &json!("deny")
        )
    );
    assert!(
        list[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("writ.paths")
    );
    assert_eq!(
        (&list[1]["seq"], &list[1]["tool"], &list[1]["after"]),
        (&json!(seqs[2]), &json!("shell"), &json!("deny"))
    );
    assert!(
        list[1]["reason"]
            .as_str()
            .unwrap()
            .starts_with("writ.commands")
    );

    // Readable form: a row per change and the count; the same writ changes nothing.
    let out = env.praxis(&[
        "policy",
        "check",
        &run_id,
        "--writ",
        strict.to_str().unwrap(),
    ]);
    let shown = text(&out.stdout);
    assert!(out.status.success());
    assert!(
        shown.contains("allow -> deny") && shown.contains("writ.commands"),
        "{shown}"
    );
    assert!(shown.contains("2 verdict(s)"), "{shown}");
    let out = env.praxis(&[
        "policy",
        "check",
        &run_id,
        "--writ",
        loose.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).trim(), "[]");

    // A writ from another issuer is refused, naming the flag.
    let other = tempfile::tempdir().unwrap();
    let foreign = Command::new(env!("CARGO_BIN_EXE_praxis"))
        .args(["writ", "keygen"])
        .env("PRAXIS_HOME", other.path())
        .output()
        .unwrap();
    assert!(foreign.status.success());
    let spec = env.file("foreign.toml", STRICT);
    let out = Command::new(env!("CARGO_BIN_EXE_praxis"))
        .args(["writ", "issue", "--spec", spec.to_str().unwrap()])
        .env("PRAXIS_HOME", other.path())
        .output()
        .unwrap();
    let foreign = env.file("foreign.writ", &text(&out.stdout));
    let out = env.praxis(&[
        "policy",
        "check",
        &run_id,
        "--writ",
        foreign.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--writ"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn diff_shows_the_common_prefix_the_divergence_and_the_world_difference() {
    let env = Env::new();
    let writ = env.issue("loose", LOOSE);
    let shared = || {
        vec![
            call(
                "c1",
                "fs_write",
                json!({"path": "src/a.txt", "content": "shared\n"}),
            ),
            call("c2", "shell", json!({"command": "echo hi"})),
        ]
    };
    let mut a = shared();
    a.push(call(
        "c3",
        "fs_write",
        json!({"path": "src/b.txt", "content": "one\ntwo\n"}),
    ));
    a.push(json!({"content": "done"}));
    let mut b = shared();
    b.push(call(
        "c3",
        "fs_write",
        json!({"path": "src/b.txt", "content": "one\nTWO\n"}),
    ));
    b.push(call("c4", "shell", json!({"command": "echo more"})));
    b.push(json!({"content": "done"}));
    let run_a = env.run(&writ, json!({ "turns": a }));
    let run_b = env.run(&writ, json!({ "turns": b }));

    let out = env.praxis(&["diff", &run_a, &run_b, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["common_prefix"], 2);
    assert_eq!(d["divergence"]["index"], 3);
    assert_eq!(
        d["divergence"]["a"]["calls"][0]["arguments"]["content"],
        "one\ntwo\n"
    );
    assert_eq!(d["rest_a"], json!(["answer"]));
    assert_eq!(d["rest_b"], json!(["shell allow ok", "answer"]));
    let files = d["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0]["path"], "src/b.txt");

    let out = env.praxis(&["diff", &run_a, &run_b]);
    let shown = text(&out.stdout);
    assert!(out.status.success());
    assert!(shown.contains("common prefix: 2 step(s)"), "{shown}");
    assert!(shown.contains("first divergence at step 3"), "{shown}");
    assert!(
        shown.contains("+++ b/src/b.txt") && shown.contains("+TWO"),
        "{shown}"
    );

    let out = env.praxis(&["diff", &run_a, "nosuchrun"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("nosuchrun"),
        "{}",
        text(&out.stderr)
    );
}
