//! Policy what-if and run-to-run diff against real scripted runs: real tools, real writs,
//! real SQLite ledgers in tempdirs.

use praxis_core::{Authority, Limits, RunSpec};
use praxis_ledger::{Ledger, SqliteLedger};
use praxis_models::ScriptedProvider;
use praxis_runtime::compare::diff_runs;
use praxis_runtime::whatif::{ChangedVerdict, check};
use praxis_runtime::{NoObserver, RunOptions, Runtime, WritGrant};
use praxis_tools::Registry;
use praxis_writ::{IssuerKey, WritSpec, issue, verify};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

fn spec(workspace: &Path) -> RunSpec {
    RunSpec {
        conversation: Default::default(),
        protocol: Default::default(),
        compaction: None,
        task: "test".into(),
        workspace: workspace.display().to_string(),
        provider: "scripted".into(),
        model: String::new(),
        tools: None,
        read_only: false,
        limits: Limits::default(),
    }
}

fn writ_spec(tools: &str, budget: &str) -> WritSpec {
    let text = format!(
        "subject = \"agent\"\nexpires_in = \"1h\"\neffect_ceiling = \"exec\"\n{budget}\n{tools}"
    );
    WritSpec::from_toml_str(&text).unwrap()
}

const LOOSE: &str = r#"
[[tools]]
name = "fs_write"
paths = ["**"]
[[tools]]
name = "shell"
allow_commands = ["*"]
"#;

const STRICT: &str = r#"
[[tools]]
name = "fs_write"
paths = ["src/**"]
[[tools]]
name = "shell"
allow_commands = ["*"]
deny_commands = ["rm *"]
"#;

struct Setup {
    _home: tempfile::TempDir,
    ledger: Arc<SqliteLedger>,
    key: IssuerKey,
}

impl Setup {
    fn new() -> Self {
        let home = tempfile::tempdir().unwrap();
        let ledger = Arc::new(SqliteLedger::open(&home.path().join("l.db")).unwrap());
        Setup {
            _home: home,
            ledger,
            key: IssuerKey::generate(),
        }
    }

    fn token(&self, spec: &WritSpec) -> String {
        issue(spec, &self.key, SystemTime::now()).unwrap()
    }

    fn authority(&self, spec: &WritSpec) -> Arc<dyn Authority> {
        Arc::new(verify(&self.token(spec), &self.key.anchor(), SystemTime::now()).unwrap())
    }

    /// Runs `script` in a fresh workspace holding `README.md` under `writ`; returns the run id.
    async fn run(&self, writ: &WritSpec, script: Value) -> String {
        let ws = tempfile::tempdir().unwrap();
        std::fs::write(ws.path().join("README.md"), "# start\n").unwrap();
        std::fs::create_dir(ws.path().join("src")).unwrap();
        let provider =
            Arc::new(ScriptedProvider::from_json_str(&script.to_string(), "test").unwrap());
        let mut options = RunOptions::new(spec(ws.path()), provider);
        options.writ = Some(WritGrant {
            token: self.token(writ),
            anchor: self.key.anchor(),
        });
        let report = Runtime::new(self.ledger.clone(), Arc::new(Registry::builtin()))
            .run(options, &NoObserver)
            .await
            .unwrap();
        report.run_id
    }

    fn check(&self, run_id: &str, writ: Option<&WritSpec>) -> Vec<ChangedVerdict> {
        check(
            &*self.ledger,
            Arc::new(Registry::builtin()),
            run_id,
            writ.map(|w| self.authority(w)),
        )
        .unwrap()
    }

    /// Seqs of the run's proposal entries, in order.
    fn proposal_seqs(&self, run_id: &str) -> Vec<u64> {
        self.ledger
            .entries(run_id, 0)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "proposal")
            .map(|e| e.seq)
            .collect()
    }
}

fn call(id: &str, tool: &str, arguments: Value) -> Value {
    json!({"tool_calls": [{"id": id, "name": tool, "arguments": arguments}]})
}

/// Five proposals: src write, root write, rm, echo, a write outside the workspace.
fn five_proposals() -> Value {
    json!({"turns": [
        call("c1", "fs_write", json!({"path": "src/a.txt", "content": "a\n"})),
        call("c2", "fs_write", json!({"path": "notes.txt", "content": "n\n"})),
        call("c3", "shell", json!({"command": "rm -f notes.txt"})),
        call("c4", "shell", json!({"command": "echo hi"})),
        call("c5", "fs_write", json!({"path": "../outside.txt", "content": "x"})),
        {"content": "done"}
    ]})
}

#[tokio::test]
async fn a_stricter_writ_flags_exactly_the_proposals_it_would_deny() {
    let s = Setup::new();
    let loose = writ_spec(LOOSE, "");
    let run_id = s.run(&loose, five_proposals()).await;
    let seqs = s.proposal_seqs(&run_id);
    assert_eq!(seqs.len(), 5);

    let changed = s.check(&run_id, Some(&writ_spec(STRICT, "")));
    let summary: Vec<(u64, &str, &str, &str)> = changed
        .iter()
        .map(|c| {
            let rule = c.reason.split(':').next().unwrap();
            (c.seq, c.before.as_str(), c.after.as_str(), rule)
        })
        .collect();
    // The escape was already denied by the run's own confinement: unchanged.
    assert_eq!(
        summary,
        vec![
            (seqs[1], "allow", "deny", "writ.paths"),
            (seqs[2], "allow", "deny", "writ.commands"),
        ]
    );
    assert_eq!(changed[0].tool, "fs_write");
    assert_eq!(changed[1].tool, "shell");
    assert!(changed[1].reason.contains("rm"), "{}", changed[1].reason);

    // The same writ decides the same: nothing changes.
    assert_eq!(s.check(&run_id, Some(&loose)), vec![]);
}

#[tokio::test]
async fn a_looser_writ_reports_allow_after_with_the_old_rule() {
    let s = Setup::new();
    let run_id = s.run(&writ_spec(STRICT, ""), five_proposals()).await;
    let seqs = s.proposal_seqs(&run_id);
    let changed = s.check(&run_id, Some(&writ_spec(LOOSE, "")));
    let summary: Vec<(u64, &str, &str)> = changed
        .iter()
        .map(|c| (c.seq, c.before.as_str(), c.after.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![(seqs[1], "deny", "allow"), (seqs[2], "deny", "allow")]
    );
    assert!(
        changed[0].reason.starts_with("was writ.paths"),
        "{}",
        changed[0].reason
    );
    assert!(
        changed[1].reason.starts_with("was writ.commands"),
        "{}",
        changed[1].reason
    );

    // Without any writ only the run's own policy judges: the same two become allowed.
    let unwritten: Vec<u64> = s.check(&run_id, None).iter().map(|c| c.seq).collect();
    assert_eq!(unwritten, vec![seqs[1], seqs[2]]);
}

#[tokio::test]
async fn a_tighter_budget_is_exhausted_at_the_proposal_that_would_exceed_it() {
    let s = Setup::new();
    let run_id = s.run(&writ_spec(LOOSE, ""), five_proposals()).await;
    let seqs = s.proposal_seqs(&run_id);
    // Two tool calls: the first two run, the third (rm) would exceed the budget; the fourth
    // too; the fifth was already denied by confinement.
    let changed = s.check(&run_id, Some(&writ_spec(LOOSE, "[budget]\ntool_calls = 2")));
    let summary: Vec<(u64, &str, &str)> = changed
        .iter()
        .map(|c| (c.seq, c.before.as_str(), c.after.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![(seqs[2], "allow", "deny"), (seqs[3], "allow", "deny")]
    );
    for c in &changed {
        assert!(
            c.reason.starts_with("writ.budget.tool_calls") && c.reason.contains("budget exhausted"),
            "{}",
            c.reason
        );
    }
    // A budget the run fitted in exactly changes nothing.
    let exact = writ_spec(LOOSE, "[budget]\ntool_calls = 4");
    assert_eq!(s.check(&run_id, Some(&exact)), vec![]);
}

#[tokio::test]
async fn approval_rules_show_as_needs_approval() {
    let s = Setup::new();
    let run_id = s.run(&writ_spec(LOOSE, ""), five_proposals()).await;
    let seqs = s.proposal_seqs(&run_id);
    let approvals = format!("{LOOSE}\n[approvals]\ntools = [\"shell\"]\n");
    let changed = s.check(&run_id, Some(&writ_spec(&approvals, "")));
    let summary: Vec<(u64, &str, &str)> = changed
        .iter()
        .map(|c| (c.seq, c.before.as_str(), c.after.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (seqs[2], "allow", "needs_approval"),
            (seqs[3], "allow", "needs_approval")
        ]
    );
    assert!(
        changed[0].reason.starts_with("writ.approvals"),
        "{}",
        changed[0].reason
    );
}

#[tokio::test]
async fn what_if_names_an_unknown_run() {
    let s = Setup::new();
    let error = check(&*s.ledger, Arc::new(Registry::builtin()), "nope", None).unwrap_err();
    assert!(error.to_string().contains("nope"), "{error}");
}

#[tokio::test]
async fn two_runs_sharing_two_steps_diverge_at_the_third() {
    let s = Setup::new();
    let writ = writ_spec(LOOSE, "");
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
    a.push(call(
        "c4",
        "fs_write",
        json!({"path": "README.md", "content": "# A\n"}),
    ));
    a.push(json!({"content": "done A"}));
    let mut b = shared();
    b.push(call(
        "c3",
        "fs_write",
        json!({"path": "src/b.txt", "content": "one\nTWO\n"}),
    ));
    b.push(call(
        "c4",
        "fs_write",
        json!({"path": "extra.txt", "content": "b only\n"}),
    ));
    b.push(call("c5", "shell", json!({"command": "echo again"})));
    b.push(json!({"content": "done B"}));
    let run_a = s.run(&writ, json!({ "turns": a })).await;
    let run_b = s.run(&writ, json!({ "turns": b })).await;

    let diff = diff_runs(&*s.ledger, &run_a, &run_b).unwrap();
    assert_eq!(diff.common_prefix, 2);
    assert_eq!((diff.steps_a, diff.steps_b), (5, 6));
    let divergence = diff.divergence.as_ref().unwrap();
    assert_eq!(divergence.index, 3);
    let (da, db) = (
        divergence.a.as_ref().unwrap(),
        divergence.b.as_ref().unwrap(),
    );
    assert_eq!(da.calls[0].arguments["content"], "one\ntwo\n");
    assert_eq!(db.calls[0].arguments["content"], "one\nTWO\n");
    assert_eq!(da.calls[0].status.as_deref(), Some("ok"));
    assert_eq!(diff.rest_a, vec!["fs_write allow ok", "answer"]);
    assert_eq!(
        diff.rest_b,
        vec!["fs_write allow ok", "shell allow ok", "answer"]
    );
    assert_eq!(diff.end_a.as_deref(), Some("completed"));

    let files: Vec<(&str, &str)> = diff
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.change.as_str()))
        .collect();
    assert_eq!(
        files,
        vec![
            ("README.md", "differs"),
            ("extra.txt", "only_b"),
            ("src/b.txt", "differs")
        ]
    );
    let b_txt = diff.files[2].diff.as_deref().unwrap();
    assert!(
        b_txt.contains("--- a/src/b.txt") && b_txt.contains("-two") && b_txt.contains("+TWO"),
        "{b_txt}"
    );
    let extra = diff.files[1].diff.as_deref().unwrap();
    assert!(
        extra.contains("--- /dev/null") && extra.contains("+b only"),
        "{extra}"
    );

    // A run compared with itself: no divergence, no file difference.
    let same = diff_runs(&*s.ledger, &run_a, &run_a).unwrap();
    assert_eq!((same.common_prefix, same.divergence), (5, None));
    assert!(same.files.is_empty() && same.rest_a.is_empty());
}

/// A proposal its tool's contract rejected was never judged (it records no time or
/// consumption): what-if leaves it alone and still judges the rest, instead of failing on
/// the fields a contract rejection does not have.
#[tokio::test]
async fn what_if_skips_contract_rejections_and_judges_the_rest() {
    let s = Setup::new();
    let script = json!({"turns": [
        call("c1", "no_such_tool", json!({"x": 1})),
        call("c2", "fs_write", json!({"path": "notes.txt", "content": "n\n"})),
        {"content": "done"}
    ]});
    let run_id = s.run(&writ_spec(LOOSE, ""), script).await;
    let seqs = s.proposal_seqs(&run_id);
    assert_eq!(seqs.len(), 2);
    let changed = s.check(&run_id, Some(&writ_spec(STRICT, "")));
    let summary: Vec<(u64, &str, &str)> = changed
        .iter()
        .map(|c| (c.seq, c.before.as_str(), c.after.as_str()))
        .collect();
    assert_eq!(summary, vec![(seqs[1], "allow", "deny")]);
}
