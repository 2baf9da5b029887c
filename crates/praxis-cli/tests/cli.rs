//! End-to-end tests of the `praxis` binary: real processes, real SQLite files, real tools.

use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tempfile::TempDir;

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

    /// Runs a script in `workspace` with --json; returns (exit ok, summary).
    fn run_script(&self, workspace: &Path, script: Value) -> (bool, Value) {
        let file = self.script("script.json", script);
        let out = self.praxis(&[
            "run",
            "scripted task",
            "--workspace",
            workspace.to_str().unwrap(),
            "--script",
            file.to_str().unwrap(),
            "--json",
        ]);
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "bad --json output ({e}): {}\nstderr: {}",
                text(&out.stdout),
                text(&out.stderr)
            )
        });
        (out.status.success(), summary)
    }
}

fn of_kind<'a>(entries: &'a [Value], kind: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["kind"] == kind).collect()
}

fn rust_repo() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("README.md"),
        "# Tallyho\n\nTallyho counts words in files quickly.\n",
    )
    .unwrap();
    std::fs::write(
        p.join("Cargo.toml"),
        "[package]\nname = \"tallyho\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    std::fs::create_dir(p.join("src")).unwrap();
    std::fs::write(
        p.join("src/main.rs"),
        "fn main() {\n    // TODO: count faster\n}\n\npub struct Counter;\n",
    )
    .unwrap();
    dir
}

fn python_repo() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("README.md"),
        "# Snakepit\n\nA tiny web service for serpents.\n",
    )
    .unwrap();
    std::fs::write(p.join("pyproject.toml"), "[project]\nname = \"snakepit\"\n").unwrap();
    std::fs::write(
        p.join("main.py"),
        "def serve():\n    pass\n\nclass App:\n    pass\n# FIXME: auth\n# TODO: tests\n",
    )
    .unwrap();
    dir
}

/// A run must not reach the data dir (signing keys, ledger) through `--workspace`.
#[test]
fn a_workspace_reaching_the_data_dir_is_refused() {
    let env = Env::new();
    let home = env.home.path().to_path_buf();
    // Makes the keys, so there is something to steal.
    let out = env.praxis(&["writ", "keygen"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let elsewhere = tempfile::tempdir().unwrap();
    let link = elsewhere.path().join("link");
    std::os::unix::fs::symlink(&home, &link).unwrap();
    let home_name = home.file_name().unwrap().to_str().unwrap();
    let script = env.script(
        "steal.json",
        json!({"turns": [
            {"content": "", "tool_calls": [{"id": "c1", "name": "fs_read", "arguments": {"path": "keys/issuer.key"}}]},
            {"content": "done"},
        ]}),
    );
    for workspace in [
        home.clone(),
        home.join("keys"),
        home.parent().unwrap().to_path_buf(),
        link.clone(),
        elsewhere.path().join("..").join(home_name),
    ] {
        let out = env.praxis(&[
            "run",
            "read the key",
            "--workspace",
            workspace.to_str().unwrap(),
            "--script",
            script.to_str().unwrap(),
            "--json",
        ]);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{}: ran", workspace.display());
        assert!(
            stderr.contains("--workspace") && stderr.contains("praxis data directory"),
            "{}: {stderr}",
            workspace.display()
        );
    }
    // Nothing ran: the ledger holds no run.
    let out = env.praxis(&["runs", "--json"]);
    assert!(
        !text(&out.stdout).contains("read the key"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn mock_run_summarizes_what_it_actually_read_and_differs_between_repos() {
    let env = Env::new();
    let (rust, python) = (rust_repo(), python_repo());
    let run = |dir: &Path| {
        env.praxis(&[
            "run",
            "Summarize this repository",
            "--workspace",
            dir.to_str().unwrap(),
        ])
    };
    let a = run(rust.path());
    let b = run(python.path());
    assert!(a.status.success(), "stderr: {}", text(&a.stderr));
    assert!(b.status.success(), "stderr: {}", text(&b.stderr));
    let (a, b) = (text(&a.stdout), text(&b.stdout));
    assert!(a.contains("Tallyho") && a.contains("tallyho"), "{a}");
    assert!(b.contains("Snakepit") && b.contains("snakepit"), "{b}");
    assert!(!a.contains("Snakepit") && !b.contains("Tallyho"));
    assert_ne!(a, b);
}

#[test]
fn mock_run_over_this_repository_with_json_summary() {
    let env = Env::new();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = env.praxis(&[
        "run",
        "Summarize this repository",
        "--workspace",
        repo.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "run_id",
        "status",
        "stop_reason",
        "final_answer",
        "steps",
        "usage",
    ] {
        assert!(summary.get(key).is_some(), "missing {key} in {summary}");
    }
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["stop_reason"], "completed");
    assert!(summary["final_answer"].as_str().unwrap().contains("praxis"));
    assert!(summary["steps"].as_u64().unwrap() >= 3);
    // Progress went to stderr, one line per durable entry.
    let progress = text(&out.stderr);
    assert!(
        progress.contains("repo_map") && progress.contains("→ allow"),
        "{progress}"
    );
}

#[test]
fn scripted_run_records_the_whole_pipeline_and_file_changes() {
    let env = Env::new();
    let ws = rust_repo();
    let script = json!({"turns": [
        {"content": "Reading first.", "tool_calls": [{"id": "c1", "name": "fs_read", "arguments": {"path": "README.md"}}]},
        {"tool_calls": [{"id": "c2", "name": "fs_write", "arguments": {"path": "notes/plan.txt", "content": "step one\n"}}]},
        {"tool_calls": [{"id": "c3", "name": "fs_patch", "arguments": {"path": "notes/plan.txt", "edits": [{"search": "one", "replace": "two"}]}}]},
        {"content": "Now a command: <cmd>cat notes/plan.txt && echo hi > made-by-shell.txt</cmd>"},
        {"content": "Plan written and checked."}
    ]});
    let (ok, summary) = env.run_script(ws.path(), script);
    assert!(ok, "{summary}");
    assert_eq!(summary["final_answer"], "Plan written and checked.");
    assert_eq!(summary["steps"], 5);
    assert_eq!(
        std::fs::read_to_string(ws.path().join("notes/plan.txt")).unwrap(),
        "step two\n"
    );

    let entries = env.entries(summary["run_id"].as_str().unwrap());
    for e in &entries {
        for key in [
            "run_id",
            "seq",
            "kind",
            "at",
            "prev_hash",
            "hash",
            "payload",
        ] {
            assert!(e.get(key).is_some(), "entry lacks {key}: {e}");
        }
    }
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"run_started"));
    // The run ends with run_finished, then the runtime's signed checkpoint over it.
    assert_eq!(kinds.last(), Some(&"checkpoint"));
    assert_eq!(kinds[kinds.len() - 2], "run_finished");
    // Write-ahead: each execution follows its own proposal.
    for (i, e) in entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e["kind"] == "execution")
    {
        let call = &e["payload"]["call_id"];
        let p = entries[..i]
            .iter()
            .rev()
            .find(|p| p["kind"] == "proposal" && &p["payload"]["call_id"] == call);
        assert_eq!(
            p.expect("proposal before execution")["payload"]["verdict"],
            "allow"
        );
    }
    let proposals = of_kind(&entries, "proposal");
    let tools: Vec<&str> = proposals
        .iter()
        .map(|p| p["payload"]["tool"].as_str().unwrap())
        .collect();
    assert_eq!(tools, vec!["fs_read", "fs_write", "fs_patch", "shell"]);
    assert_eq!(
        proposals[3]["payload"]["arguments"]["command"],
        "cat notes/plan.txt && echo hi > made-by-shell.txt"
    );
    let executions = of_kind(&entries, "execution");
    assert!(
        executions.iter().all(|e| e["payload"]["status"] == "ok"),
        "{executions:?}"
    );
    assert_eq!(executions[3]["payload"]["exit_code"], 0);
    // Files changed are recorded with content-addressed before/after blobs.
    let changed = |i: usize| executions[i]["payload"]["files_changed"].clone();
    assert_eq!(changed(1)[0]["path"], "notes/plan.txt");
    assert!(changed(1)[0]["before"].is_null());
    assert_eq!(changed(2)[0]["before"], changed(1)[0]["after"]);
    assert_eq!(changed(3)[0]["path"], "made-by-shell.txt");
    let finished = of_kind(&entries, "run_finished")[0];
    assert_eq!(finished["payload"]["stop_reason"], "completed");
    assert_eq!(
        finished["payload"]["final_answer"],
        "Plan written and checked."
    );
    // The model saw the shell output wrapped in <result>.
    let show = text(
        &env.praxis(&["show", summary["run_id"].as_str().unwrap()])
            .stdout,
    );
    assert!(
        show.contains("shell") && show.contains("completed"),
        "{show}"
    );
}

#[test]
fn escapes_and_bad_calls_are_rejected_recorded_and_the_run_recovers() {
    let env = Env::new();
    let ws = rust_repo();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "TOP SECRET").unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        ws.path().join("link.txt"),
    )
    .unwrap();
    let script = json!({"turns": [
        {"tool_calls": [
            {"id": "dots", "name": "fs_read", "arguments": {"path": "../../../../etc/passwd"}},
            {"id": "abs", "name": "fs_read", "arguments": {"path": "/etc/shadow"}},
            {"id": "proc", "name": "fs_read", "arguments": {"path": "/proc/self/environ"}},
            {"id": "link", "name": "fs_read", "arguments": {"path": "link.txt"}},
            {"id": "unknown", "name": "rm_rf", "arguments": {}},
            {"id": "schema", "name": "fs_read", "arguments": {"path": 42}}
        ]},
        {"content": "Recovered: nothing outside the workspace was read."}
    ]});
    let (ok, summary) = env.run_script(ws.path(), script);
    assert!(ok, "{summary}");
    let entries = env.entries(summary["run_id"].as_str().unwrap());
    let all = serde_json::to_string(&entries).unwrap();
    assert!(!all.contains("TOP SECRET"), "secret leaked into the ledger");
    let proposals = of_kind(&entries, "proposal");
    let by_id = |id: &str| {
        proposals
            .iter()
            .find(|p| p["payload"]["call_id"] == id)
            .unwrap()["payload"]
            .clone()
    };
    for id in ["dots", "abs", "proc"] {
        assert_eq!(by_id(id)["verdict"], "deny", "{id}");
        assert_eq!(by_id(id)["rule"], "workspace_confinement", "{id}");
    }
    assert_eq!(by_id("unknown")["rule"], "contract");
    assert!(
        by_id("unknown")["reason"]
            .as_str()
            .unwrap()
            .contains("unknown tool `rm_rf`")
    );
    assert_eq!(by_id("schema")["rule"], "contract");
    assert!(
        by_id("schema")["reason"].as_str().unwrap().contains("path"),
        "{}",
        by_id("schema")
    );
    // The symlink passes the lexical check but the tool fabric refuses to follow it out.
    assert_eq!(by_id("link")["verdict"], "allow");
    let link_exec = of_kind(&entries, "execution")
        .into_iter()
        .find(|e| e["payload"]["call_id"] == "link")
        .unwrap();
    assert_eq!(link_exec["payload"]["status"], "error");
    assert!(
        link_exec["payload"]["output"]
            .as_str()
            .unwrap()
            .contains("symlink"),
        "{link_exec}"
    );
}

#[test]
fn three_unusable_replies_end_the_run_with_invalid_output_limit() {
    let env = Env::new();
    let ws = rust_repo();
    let script = json!({"turns": [{"content": ""}, {"content": "<cmd>ls"}, {"tool_calls": [{"name": "nope"}]}]});
    let (ok, summary) = env.run_script(ws.path(), script);
    assert!(!ok);
    assert_eq!(summary["stop_reason"], "invalid_output_limit");
    assert_eq!(summary["status"], "failed");
}

#[test]
fn running_out_of_script_turns_fails_clearly() {
    let env = Env::new();
    let ws = rust_repo();
    let script =
        json!({"turns": [{"tool_calls": [{"id": "a", "name": "list_files", "arguments": {}}]}]});
    let (ok, summary) = env.run_script(ws.path(), script);
    assert!(!ok);
    assert_eq!(summary["stop_reason"], "failed");
    assert!(
        summary["error"].as_str().unwrap().contains("turn"),
        "{summary}"
    );
}

#[test]
fn malformed_script_is_refused_before_anything_runs() {
    let env = Env::new();
    let ws = rust_repo();
    let file = env.home.path().join("bad.json");
    std::fs::write(&file, r#"{"turns": [{"contnet": "typo"}]}"#).unwrap();
    let out = env.praxis(&[
        "run",
        "x",
        "--workspace",
        ws.path().to_str().unwrap(),
        "--script",
        file.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("bad.json") && err.contains("contnet"), "{err}");
    let runs: Value = serde_json::from_slice(&env.praxis(&["runs", "--json"]).stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 0);
}

#[test]
fn shell_timeouts_and_huge_outputs_are_capped_and_recorded() {
    let env = Env::new();
    let ws = rust_repo();
    let script = json!({"turns": [
        {"tool_calls": [{"id": "slow", "name": "shell", "arguments": {"command": "sleep 20", "timeout_secs": 1}}]},
        {"tool_calls": [{"id": "big", "name": "shell", "arguments": {"command": "yes praxis | head -c 5000000"}}]},
        {"content": "done"}
    ]});
    let started = Instant::now();
    let (ok, summary) = env.run_script(ws.path(), script);
    assert!(ok, "{summary}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the timeout did not stop the sleep"
    );
    let entries = env.entries(summary["run_id"].as_str().unwrap());
    let executions = of_kind(&entries, "execution");
    assert_eq!(executions[0]["payload"]["status"], "timeout");
    let big = &executions[1]["payload"];
    assert!(
        big["truncated_bytes"].as_u64().unwrap() > 4_000_000,
        "{big}"
    );
    assert!(big["output"].as_str().unwrap().contains("bytes cut"));
    assert!(big["output"].as_str().unwrap().len() < 200_000);
}

#[test]
fn ledger_verify_detects_a_hand_edited_entry() {
    let env = Env::new();
    let ws = rust_repo();
    let out = env.praxis(&[
        "run",
        "Summarize",
        "--workspace",
        ws.path().to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success());
    let run_id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let ok = env.praxis(&["ledger", "verify", &run_id]);
    assert!(ok.status.success(), "{}", text(&ok.stdout));
    assert!(env.praxis(&["ledger", "verify", "--all"]).status.success());

    let db = rusqlite::Connection::open(env.home.path().join("ledger.db")).unwrap();
    // The store refuses edits through SQL...
    assert!(
        db.execute("UPDATE entries SET kind = 'x' WHERE seq = 3", [])
            .is_err()
    );
    // ...so a tamperer removes the guard first; the chain still tells.
    let triggers: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for t in triggers {
        db.execute(&format!("DROP TRIGGER {t}"), []).unwrap();
    }
    let changed = db
        .execute("UPDATE entries SET payload = replace(payload, 'Summarize', 'Exfiltrate') WHERE run_id = ?1 AND seq = 1", [&run_id])
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);
    let bad = env.praxis(&["ledger", "verify", &run_id]);
    assert!(!bad.status.success());
    let report = text(&bad.stdout);
    assert!(
        report.contains(&run_id) && report.contains("seq 1"),
        "{report}"
    );
    assert!(!env.praxis(&["ledger", "verify", "--all"]).status.success());
}

#[test]
fn killing_praxis_during_a_shell_call_leaves_a_durable_proposal_and_an_unfinished_run() {
    let env = Env::new();
    let ws = rust_repo();
    let marker = "30.4242"; // a sleep length unique to this test, to find the process
    let script = env.script(
        "slow.json",
        json!({"turns": [{"tool_calls": [{"id": "slow", "name": "shell", "arguments": {"command": format!("sleep {marker}")}}]}, {"content": "never"}]}),
    );
    let mut child = env
        .cmd(&[
            "run",
            "slow",
            "--workspace",
            ws.path().to_str().unwrap(),
            "--script",
            script.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the shell command is actually running.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sleep_running(marker) {
        assert!(Instant::now() < deadline, "the shell tool never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up or record anything more
    child.wait().unwrap();

    let runs: Value = serde_json::from_slice(&env.praxis(&["runs", "--json"]).stdout).unwrap();
    let run = &runs[0];
    assert_eq!(run["status"], "interrupted", "{run}");
    let run_id = run["run_id"].as_str().unwrap();
    let entries = env.entries(run_id);
    let proposal = of_kind(&entries, "proposal")[0];
    assert_eq!(proposal["payload"]["tool"], "shell");
    assert_eq!(proposal["payload"]["verdict"], "allow");
    assert!(of_kind(&entries, "execution").is_empty());
    assert!(of_kind(&entries, "run_finished").is_empty());
    assert!(env.praxis(&["ledger", "verify", run_id]).status.success());
    let show = text(&env.praxis(&["show", run_id]).stdout);
    assert!(
        show.contains("IN FLIGHT") && show.contains("interrupted"),
        "{show}"
    );
    // The orphaned command dies with its parent (parent-death signal).
    let deadline = Instant::now() + Duration::from_secs(10);
    while sleep_running(marker) {
        assert!(
            Instant::now() < deadline,
            "the shell command outlived the killed runtime"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sleep_running(arg: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
        std::fs::read(p.path().join("cmdline"))
            .map(|c| c.split(|b| *b == 0).any(|a| a == arg.as_bytes()) && c.starts_with(b"sleep"))
            .unwrap_or(false)
    })
}

#[test]
fn doctor_reports_health_and_sandbox_features() {
    let env = Env::new();
    let out = env.praxis(&["doctor", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["data_dir"], env.home.path().display().to_string());
    assert!(report["sandbox_features"].get("landlock_abi").is_some());
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true)
    );
}

/// `praxis doctor` says, before any run, whether the sandbox's spawner can start (without
/// it the worker runs without Landlock) and which layers a run will have; the prediction
/// matches what a run then records. The missing spawner is made with a debug-build switch.
#[test]
fn doctor_says_ahead_which_layers_a_run_gets_and_when_no_spawner_can_start() {
    let env = Env::new();
    let doctor = |no_spawner: bool| -> (bool, Value) {
        let mut cmd = env.cmd(&["doctor", "--json"]);
        if no_spawner {
            cmd.env("PRAXIS_NO_SPAWNER_FOR_TESTS", "1");
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            serde_json::from_slice(&out.stdout).unwrap(),
        )
    };
    let spawner = |report: &Value| -> Value {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "spawner")
            .cloned()
            .unwrap_or(Value::Null)
    };
    let worker_landlock = |report: &Value| -> Value {
        report["sandbox_features"]["run_layers"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["name"] == "worker_landlock"))
            .map_or(Value::Null, |l| l["active"].clone())
    };
    let (healthy, report) = doctor(false);
    assert!(
        !spawner(&report).is_null(),
        "doctor has no spawner check: {report}"
    );
    if spawner(&report)["ok"] != true {
        let message = format!("no spawner on this host: {report}");
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "{message}"
        );
        eprintln!("skipping: {message}");
        return;
    }
    assert!(healthy, "{report}");
    assert_eq!(worker_landlock(&report), true, "{report}");

    let (healthy, broken) = doctor(true);
    assert!(
        !healthy,
        "a host without a spawner is reported as unhealthy: {broken}"
    );
    let check = spawner(&broken);
    assert_eq!(check["ok"], false, "{broken}");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("WITHOUT Landlock"),
        "{check}"
    );
    assert_eq!(worker_landlock(&broken), false, "{broken}");

    // What a run records agrees with the prediction, both ways.
    let ws = tempfile::tempdir().unwrap();
    for (no_spawner, predicted) in [(false, true), (true, false)] {
        let script = env.script(
            "layers.json",
            json!({"turns": [
                {"tool_calls": [{"id": "1", "name": "shell", "arguments": {"command": "true"}}]},
                {"content": "done"}
            ]}),
        );
        let mut cmd = env.cmd(&["run", "layers", "--json", "--script"]);
        cmd.arg(&script)
            .arg("-w")
            .arg(ws.path())
            .env_remove("PRAXIS_FABRIC");
        if no_spawner {
            cmd.env("PRAXIS_NO_SPAWNER_FOR_TESTS", "1");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
        let entries = env.entries(summary["run_id"].as_str().unwrap());
        let recorded = entries.iter().find_map(|e| {
            e["payload"]["environment"]["sandbox"]["layers"]
                .as_array()
                .and_then(|l| l.iter().find(|l| l["name"] == "worker_landlock"))
                .map(|l| l["active"].clone())
        });
        assert_eq!(
            recorded,
            Some(Value::Bool(predicted)),
            "no_spawner={no_spawner}: {entries:?}"
        );
    }
}

#[test]
fn every_command_has_help_with_examples() {
    let env = Env::new();
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["runs", "--help"],
        vec!["show", "--help"],
        vec!["ledger", "export", "--help"],
        vec!["ledger", "verify", "--help"],
        vec!["doctor", "--help"],
        vec!["tools", "--help"],
        vec!["bench", "--help"],
        vec!["replay", "--help"],
        vec!["world", "--help"],
        vec!["diff", "--help"],
        vec!["policy", "check", "--help"],
        vec!["ledger", "key", "--help"],
        vec!["writ", "keygen", "--help"],
        vec!["writ", "issue", "--help"],
        vec!["writ", "inspect", "--help"],
        vec!["writ", "verify", "--help"],
        vec!["writ", "attenuate", "--help"],
        vec!["approvals", "--help"],
        vec!["approve", "--help"],
        vec!["deny", "--help"],
        vec!["mcp", "serve", "--help"],
    ] {
        let out = env.praxis(&args);
        assert!(out.status.success(), "{args:?}");
        assert!(
            text(&out.stdout).contains("Examples:"),
            "{args:?} has no examples"
        );
    }
}

#[test]
fn unknown_run_ids_and_bad_workspaces_are_clear_errors() {
    let env = Env::new();
    let out = env.praxis(&["show", "nosuchrun"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("nosuchrun"),
        "{}",
        text(&out.stderr)
    );
    let out = env.praxis(&["run", "x", "--workspace", "/definitely/not/here"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("/definitely/not/here"));
    let out = env.praxis(&["run", "x", "--provider", "gpt-9"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("gpt-9"));
}

#[test]
fn tools_lists_every_tool_with_effect_source_and_schema() {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Listed {
        name: String,
        effect: String,
        source: String,
        description: String,
        input_schema: Value,
    }
    let env = Env::new();
    let out = env.praxis(&["tools", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: Vec<Listed> = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = listed.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "delegate",
            "fs_patch",
            "fs_read",
            "fs_write",
            "grep",
            "http",
            "list_files",
            "repo_map",
            "shell",
            "test_run"
        ]
    );
    let write = listed.iter().find(|t| t.name == "fs_write").unwrap();
    assert_eq!(
        (write.effect.as_str(), write.source.as_str()),
        ("write", "built-in")
    );
    assert!(!write.description.is_empty());
    let schema: praxis_core::ToolSpec = serde_json::from_value(json!({
        "name": write.name, "description": write.description, "effect": "write",
        "parameters": write.input_schema,
    }))
    .unwrap();
    assert_eq!(
        schema.parameters,
        praxis_tools::ToolContract::spec(
            praxis_tools::Registry::builtin()
                .get("fs_write")
                .unwrap()
                .as_ref()
        )
        .parameters
    );

    let out = env.praxis(&["tools"]);
    assert!(out.status.success());
    let table = text(&out.stdout);
    assert!(table.starts_with("NAME"), "{table}");
    for name in names {
        assert!(
            table.contains(&format!("\n{name} ")),
            "{name} missing: {table}"
        );
    }
    assert!(
        table.contains("fs_write    write    built-in  content*: string"),
        "{table}"
    );
}
