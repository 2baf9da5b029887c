//! `praxis replay` and `praxis world` end to end: real processes, real SQLite files, real tools.

use serde_json::{Value, json};
use std::path::Path;

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

    /// Runs a script in `workspace`; returns the run id.
    fn run_script(&self, workspace: &Path, script: Value) -> String {
        let file = self.home.path().join("script.json");
        std::fs::write(&file, script.to_string()).unwrap();
        let out = self.praxis(&[
            "run",
            "scripted task",
            "--workspace",
            workspace.to_str().unwrap(),
            "--script",
            file.to_str().unwrap(),
            "--json",
        ]);
        assert!(out.status.success(), "run failed: {}", text(&out.stderr));
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
        summary["run_id"].as_str().unwrap().to_string()
    }
}

fn editing_script() -> Value {
    json!({"turns": [
        {"tool_calls": [{"id": "w", "name": "fs_write", "arguments": {"path": "notes.txt", "content": "first\n"}}]},
        {"tool_calls": [{"id": "p", "name": "fs_patch", "arguments": {"path": "notes.txt", "edits": [{"search": "first", "replace": "second"}]}}]},
        {"content": "<cmd>rm old.txt</cmd>"},
        {"content": "done"}
    ]})
}

#[test]
fn replay_of_a_fresh_run_matches_every_entry() {
    let env = Env::new();
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("old.txt"), "old\n").unwrap();
    let run_id = env.run_script(ws.path(), editing_script());
    let n = env.entries(&run_id).len();

    let out = env.praxis(&["replay", &run_id[..10]]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("replay of {run_id}: matched {n} entries\n")
    );
    let out = env.praxis(&["replay", &run_id, "--json"]);
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report,
        json!({"status": "matched", "run_id": run_id, "entries": n, "unfinished": null})
    );

    let out = env.praxis(&["replay", "nosuchrun"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("nosuchrun"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn replay_reports_an_edited_proposal_at_its_seq_and_exits_1() {
    let env = Env::new();
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("old.txt"), "old\n").unwrap();
    let run_id = env.run_script(ws.path(), editing_script());
    let seq = env
        .entries(&run_id)
        .iter()
        .find(|e| e["kind"] == "proposal" && e["payload"]["call_id"] == "w")
        .unwrap()["seq"]
        .as_u64()
        .unwrap();
    let db = rusqlite::Connection::open(env.home.path().join("ledger.db")).unwrap();
    // The store's append-only guard has to go before a tamperer can rewrite a decision.
    db.execute("DROP TRIGGER entries_no_update", []).unwrap();
    let changed = db
        .execute(
            "UPDATE entries SET payload = replace(payload, '\"verdict\":\"allow\"', '\"verdict\":\"deny\"') \
             WHERE run_id = ?1 AND seq = ?2",
            rusqlite::params![run_id, seq as i64],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);

    let out = env.praxis(&["replay", &run_id]);
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out.stdout);
    assert!(
        report.starts_with(&format!(
            "replay of {run_id}: diverged at seq {seq} (kind proposal): \
             payload.verdict: expected \"deny\" got \"allow\"\n"
        )),
        "{report}"
    );
    let out = env.praxis(&["replay", &run_id, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "diverged");
    assert_eq!(report["seq"], seq);
    assert_eq!(report["got"]["verdict"], "allow");
}

#[test]
fn world_shows_files_as_of_an_entry_from_the_ledger_alone() {
    let env = Env::new();
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("old.txt"), "old\n").unwrap();
    let run_id = env.run_script(ws.path(), editing_script());
    let executions: Vec<u64> = env
        .entries(&run_id)
        .iter()
        .filter(|e| e["kind"] == "execution")
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(executions.len(), 3);
    // The ledger is the only source: the workspace is gone.
    drop(ws);

    let content = |seq: u64, path: &str| {
        env.praxis(&["world", &run_id, "--at", &seq.to_string(), "--path", path])
    };
    let out = content(executions[0], "notes.txt");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "first\n");
    let out = content(executions[1], "notes.txt");
    assert_eq!(text(&out.stdout), "second\n");
    let out = content(executions[1], "old.txt");
    assert_eq!(text(&out.stdout), "old\n");

    // Did not exist yet (before the write) / any more (after the rm): exit 1, said on stderr.
    let out = content(executions[0] - 1, "notes.txt");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).contains("`notes.txt` did not exist at seq"),
        "{}",
        text(&out.stderr)
    );
    let out = content(executions[2], "old.txt");
    assert_eq!(out.status.code(), Some(1));

    let out = env.praxis(&["world", &run_id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "notes.txt\nold.txt (deleted)\n");
    let out = env.praxis(&["world", &run_id, "--at", &executions[0].to_string()]);
    assert_eq!(text(&out.stdout), "notes.txt\n");

    let out = env.praxis(&["world", &run_id, "--diff"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "--- /dev/null\n+++ b/notes.txt\n@@ -0,0 +1 @@\n+second\n\
         --- a/old.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-old\n"
    );

    let out = env.praxis(&["world", &run_id, "--at", "9999"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("9999"), "{}", text(&out.stderr));
}
