//! `praxis serve` as a real child process, driven by the `praxis` client commands
//! (`run/runs/status/follow/approvals/approve/cancel --server`): shared state between
//! processes, tokens, signals, a crash (`kill -9`) and a restart.

use praxis_core::record::Record;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

mod common;
use common::served::Served;
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
        std::fs::write(env.ws.path().join("README.md"), "# Served\n").unwrap();
        env
    }

    fn praxis_as(&self, token: &str, args: &[&str]) -> Output {
        self.cmd(args).env("PRAXIS_TOKEN", token).output().unwrap()
    }

    fn serve(&self, extra: &[&str]) -> Served {
        let mut cmd = self.cmd(&[]);
        cmd.env("PRAXIS_WORKSPACE_ROOTS", self.ws.path());
        Served::start_with(cmd, extra)
    }

    fn script(&self, name: &str, turns: Value) -> String {
        self.file(name, &json!({ "turns": turns }).to_string())
            .to_str()
            .unwrap()
            .to_string()
    }

    fn run_args<'a>(&'a self, url: &'a str, script: &'a str) -> Vec<&'a str> {
        vec![
            "run",
            "served task",
            "--server",
            url,
            "--workspace",
            self.ws.path().to_str().unwrap(),
            "--script",
            script,
            "--json",
        ]
    }

    fn status(&self, token: &str, url: &str, run: &str) -> Value {
        let out = self.praxis_as(token, &["status", run, "--server", url, "--json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn wait_status(&self, token: &str, url: &str, run: &str, wanted: &[&str]) -> Value {
        wait_for(&format!("run {run} in {wanted:?}"), || {
            let v = self.status(token, url, run);
            wanted
                .contains(&v["status"].as_str().unwrap_or(""))
                .then_some(v)
        })
    }
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

fn token(env: &Env, tenant: &str) -> String {
    let out = env.praxis(&["token", "create", "--tenant", tenant]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.lines().count(),
        1,
        "only the token on stdout: {stdout:?}"
    );
    let token = stdout.trim().to_string();
    assert!(token.starts_with("prx_"), "{token}");
    token
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn run_follow_status_runs_through_the_server() {
    let env = Env::new();
    let server = env.serve(&[]);
    let url = server.url.as_str();
    let acme = token(&env, "acme");
    let script = env.script(
        "answer.json",
        json!([
            {"tool_calls": [{"id": "c1", "name": "fs_read", "arguments": {"path": "README.md"}}]},
            {"content": "it says Served"},
        ]),
    );

    // A token exists, so the server wants one.
    let out = env.praxis(&env.run_args(url, &script));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("401"), "{}", text(&out.stderr));

    let out = env.praxis_as(&acme, &env.run_args(url, &script));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["final_answer"], "it says Served");
    assert_eq!(summary["steps"], 2);
    assert!(
        text(&out.stderr).contains("model calls fs_read"),
        "progress lines: {}",
        text(&out.stderr)
    );
    let run_id = summary["run_id"].as_str().unwrap().to_string();

    // The same summary shape as a local `praxis run --json`.
    let local = env.praxis(&[
        "run",
        "local task",
        "--workspace",
        env.ws.path().to_str().unwrap(),
        "--script",
        &script,
        "--json",
    ]);
    let local: Value = serde_json::from_slice(&local.stdout).unwrap();
    assert_eq!(keys(&summary), keys(&local));

    // Two clients following the same run see the same entries: the ledger export.
    let follow = |t: &str| env.praxis_as(t, &["follow", &run_id, "--server", url, "--json"]);
    let (a, b) = (follow(&acme), follow(&acme));
    assert!(a.status.success(), "{}", text(&a.stderr));
    let export = env.praxis(&["ledger", "export", &run_id]);
    assert_eq!(text(&a.stdout), text(&export.stdout));
    assert_eq!(text(&a.stdout), text(&b.stdout));
    // Locally too.
    let local_follow = env.praxis(&["follow", &run_id, "--json"]);
    assert_eq!(text(&local_follow.stdout), text(&export.stdout));

    let status = env.status(&acme, url, &run_id);
    assert_eq!(status["status"], "completed");
    assert_eq!(status["tenant"], "acme");
    let out = env.praxis_as(&acme, &["runs", "--server", url, "--json"]);
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        runs.as_array().unwrap().len(),
        1,
        "the local run is not acme's: {runs}"
    );
    assert_eq!(runs[0]["run_id"], run_id);

    // Another tenant sees none of it.
    let globex = token(&env, "globex");
    let out = env.praxis_as(&globex, &["status", &run_id, "--server", url]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("404"), "{}", text(&out.stderr));
    let out = env.praxis_as(&globex, &["runs", "--server", url, "--json"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        json!([])
    );

    // SIGTERM: exit 0.
    server.signal("-TERM");
    let (status, log) = server.wait();
    assert!(status.success(), "{log}");
}

#[test]
fn approve_and_cancel_from_other_terminals() {
    let env = Env::new();
    assert!(env.praxis(&["writ", "keygen"]).status.success());
    let spec = env.file(
        "approve.toml",
        "subject = \"agent\"\ntenant = \"ops\"\nexpires_in = \"1h\"\neffect_ceiling = \"exec\"\n[[tools]]\nname = \"fs_write\"\npaths = [\"**\"]\n[[tools]]\nname = \"shell\"\n[approvals]\ntools = [\"fs_write\"]\n",
    );
    let out = env.praxis(&["writ", "issue", "--spec", spec.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let writ = env.file("approve.writ", &text(&out.stdout));
    let server = env.serve(&[]);
    let url = server.url.clone();
    let tok = token(&env, "ops");
    let script = env.script(
        "write.json",
        json!([
            {"tool_calls": [{"id": "w1", "name": "fs_write", "arguments": {"path": "out.txt", "content": "ok\n"}}]},
            {"content": "wrote it"},
        ]),
    );
    let mut args = env.run_args(&url, &script);
    args.extend(["--writ", writ.to_str().unwrap()]);
    let runner = env
        .cmd(&args)
        .env("PRAXIS_TOKEN", &tok)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pending: Value = wait_for("a pending approval", || {
        let out = env.praxis_as(&tok, &["approvals", "--server", &url, "--json"]);
        let list: Value = serde_json::from_slice(&out.stdout).ok()?;
        list.as_array()
            .filter(|a| !a.is_empty())
            .map(|a| a[0].clone())
    });
    assert_eq!(pending["tool"], "fs_write");
    let run_id = pending["run_id"].as_str().unwrap().to_string();
    let out = env.praxis_as(
        &tok,
        &["approve", &run_id, "--server", &url, "--reason", "fine"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("approved w1"),
        "{}",
        text(&out.stdout)
    );
    let done = runner.wait_with_output().unwrap();
    assert!(done.status.success(), "{}", text(&done.stderr));
    let summary: Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(summary["status"], "completed");
    assert!(
        text(&done.stderr).contains("approve"),
        "{}",
        text(&done.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(env.ws.path().join("out.txt")).unwrap(),
        "ok\n"
    );

    // Cancel a run sleeping in a tool, from another terminal.
    let slow = env.script(
        "slow.json",
        json!([
            {"tool_calls": [{"id": "s1", "name": "shell", "arguments": {"command": "sleep 30"}}]},
            {"content": "never"},
        ]),
    );
    let runner = env
        .cmd(&env.run_args(&url, &slow))
        .env("PRAXIS_TOKEN", &tok)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run_id = wait_for("the slow run", || {
        let out = env.praxis_as(&tok, &["runs", "--server", &url, "--json"]);
        let runs: Value = serde_json::from_slice(&out.stdout).ok()?;
        runs.as_array()?
            .iter()
            .find(|r| r["status"] == "running")
            .map(|r| r["run_id"].as_str().unwrap().to_string())
    });
    wait_for("the shell tool to start", || {
        (env.status(&tok, &url, &run_id)["phase"] == "tool").then_some(())
    });
    let out = env.praxis_as(&tok, &["cancel", &run_id, "--server", &url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let done = runner.wait_with_output().unwrap();
    assert!(!done.status.success());
    let summary: Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(summary["status"], "cancelled", "{summary}");
    assert!(
        summary["error"]
            .as_str()
            .unwrap()
            .contains("cancelled through the API")
    );
    drop(server);
}

#[test]
fn sigterm_cancels_running_runs_and_exits_zero() {
    let env = Env::new();
    let server = env.serve(&[]);
    let url = server.url.clone();
    let tok = token(&env, "ops");
    let slow = env.script(
        "slow.json",
        json!([{"tool_calls": [{"id": "s1", "name": "shell", "arguments": {"command": "sleep 30"}}]}, {"content": "never"}]),
    );
    let runner = env
        .cmd(&env.run_args(&url, &slow))
        .env("PRAXIS_TOKEN", &tok)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run_id = wait_for("the run to start its tool", || {
        let out = env.praxis_as(&tok, &["runs", "--server", &url, "--json"]);
        let runs: Value = serde_json::from_slice(&out.stdout).ok()?;
        let id = runs.as_array()?.first()?["run_id"].as_str()?.to_string();
        (env.status(&tok, &url, &id)["phase"] == "tool").then_some(id)
    });
    server.signal("-TERM");
    let (status, log) = server.wait();
    assert!(status.success(), "{log}");
    let done = runner.wait_with_output().unwrap();
    let summary: Value = serde_json::from_slice(&done.stdout).unwrap_or(Value::Null);
    assert_eq!(summary["status"], "cancelled", "{}", text(&done.stderr));
    let export = env.praxis(&["ledger", "export", &run_id]);
    let finished: Value = text(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["kind"] == "run_finished")
        .expect("run_finished recorded");
    assert_eq!(finished["payload"]["status"], "cancelled");
    assert!(
        finished["payload"]["error"]
            .as_str()
            .unwrap()
            .contains("server shutting down")
    );
    assert!(env.praxis(&["ledger", "verify", &run_id]).status.success());
}

/// `kill -9` the server while runs sit in a slow tool or wait for approval; restart it.
/// A run the server can rebuild the cognition of (mock) is resumed by itself; scripted runs
/// stay interrupted until resumed over HTTP with their script. Every chain verifies, and no
/// tool ran twice (each command appends one line to a file in the workspace).
#[test]
fn crash_and_restart_resumes_or_marks_interrupted_and_no_tool_runs_twice() {
    let env = Env::new();
    assert!(env.praxis(&["writ", "keygen"]).status.success());
    let spec = env.file(
        "gate.toml",
        "subject = \"agent\"\ntenant = \"ops\"\nexpires_in = \"1h\"\neffect_ceiling = \"exec\"\n[[tools]]\nname = \"repo_map\"\n[[tools]]\nname = \"list_files\"\n[[tools]]\nname = \"fs_read\"\npaths = [\"**\"]\n[[tools]]\nname = \"grep\"\n[approvals]\ntools = [\"repo_map\"]\n",
    );
    let out = env.praxis(&["writ", "issue", "--spec", spec.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let gate = env.file("gate.writ", &text(&out.stdout));
    let server = env.serve(&[]);
    let url = server.url.clone();
    let tok = token(&env, "ops");
    let turns = json!([
        {"tool_calls": [{"id": "m1", "name": "shell", "arguments": {"command": "echo ran >> marks.txt && sleep 2"}}]},
        {"content": "marked"},
    ]);
    let slow = env.script("mark.json", turns.clone());
    let spawn = |args: &[&str]| {
        env.cmd(args)
            .env("PRAXIS_TOKEN", &tok)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut runners: Vec<Child> = (0..2).map(|_| spawn(&env.run_args(&url, &slow))).collect();
    let ws = env.ws.path().to_str().unwrap();
    runners.push(spawn(&[
        "run",
        "inspect",
        "--server",
        &url,
        "--workspace",
        ws,
        "--provider",
        "mock",
        "--writ",
        gate.to_str().unwrap(),
        "--json",
    ]));
    let runs = || -> Vec<Value> {
        let out = env.praxis_as(&tok, &["runs", "--server", &url, "--json"]);
        serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    };
    let (scripted, mock): (Vec<String>, String) = wait_for("three runs in place", || {
        let all = runs();
        let scripted: Vec<String> = all
            .iter()
            .filter(|r| r["task"] == "served task")
            .map(|r| r["run_id"].as_str().unwrap().to_string())
            .collect();
        let mock = all.iter().find(|r| r["task"] == "inspect")?["run_id"]
            .as_str()?
            .to_string();
        let in_tool = scripted.len() == 2
            && scripted
                .iter()
                .all(|id| env.status(&tok, &url, id)["phase"] == "tool");
        let waiting = env.status(&tok, &url, &mock)["status"] == "awaiting_approval";
        (in_tool && waiting).then_some((scripted, mock))
    });
    // Both commands are past their `echo` (and inside `sleep`).
    wait_for("both marks", || {
        (count_marks(env.ws.path()) == 2).then_some(())
    });
    server.signal("-KILL");
    let _ = server.wait();
    for mut r in runners {
        let _ = r.kill();
        let _ = r.wait();
    }
    assert_eq!(
        count_marks(env.ws.path()),
        2,
        "each command ran once before the crash"
    );

    let server = env.serve(&[]);
    let url = server.url.clone();
    // Scripted runs: interrupted (scripts are not recorded), saying how to resume them.
    for id in &scripted {
        let view = env.status(&tok, &url, id);
        assert_eq!(view["status"], "interrupted", "{view}");
        assert!(
            view["recovery"].as_str().unwrap().contains("script"),
            "{view}"
        );
    }
    // The mock run was resumed by the server itself and asks again before anything runs.
    let view = env.status(&tok, &url, &mock);
    assert!(
        view["recovery"]
            .as_str()
            .is_some_and(|r| r.contains("resumed")),
        "{view}"
    );
    wait_for("the resumed run to settle", || {
        let status = env.status(&tok, &url, &mock)["status"].clone();
        if status == "awaiting_approval" {
            let _ = env.praxis_as(&tok, &["approve", &mock, "--server", &url]);
        }
        (status == "completed").then_some(())
    });
    // Resume one scripted run over HTTP, refusing to re-run its in-flight command.
    let client = reqwest::Client::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, body) = rt.block_on(async {
        let r = client
            .post(format!("{url}/v1/runs/{}/resume", scripted[0]))
            .bearer_auth(&tok)
            .json(&json!({"script": {"turns": turns}, "approve": "never"}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    });
    assert_eq!(status, 202, "{body}");
    let view = env.wait_status(&tok, &url, &scripted[0], &["completed", "failed"]);
    assert_eq!(view["final_answer"], "marked", "{view}");
    assert_eq!(
        env.status(&tok, &url, &scripted[1])["status"],
        "interrupted"
    );

    let out = env.praxis(&["ledger", "verify", "--all"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert_eq!(count_marks(env.ws.path()), 2, "no tool ran twice");
    drop(server);
}

fn count_marks(ws: &Path) -> usize {
    std::fs::read_to_string(ws.join("marks.txt"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[test]
fn production_mode_refuses_to_start_naming_each_setting() {
    let env = Env::new();
    let out = env
        .cmd(&["serve", "--bind", "127.0.0.1:0"])
        .env("PRAXIS_MODE", "production")
        // 0: unbounded (the default is a bound).
        .env("PRAXIS_MAX_RUNS", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    for setting in [
        "PRAXIS_AUTH",
        "PRAXIS_ALLOWED_ORIGINS",
        "PRAXIS_TRUST_ANCHOR",
        "PRAXIS_HOME",
        "PRAXIS_MAX_RUNS ",
        "PRAXIS_MAX_RUNS_PER_TENANT",
        "PRAXIS_WORKSPACE_ROOTS",
    ] {
        assert!(stderr.contains(setting), "{setting} not named:\n{stderr}");
    }
    // Settings given: only what is still wrong is named.
    let out = env
        .cmd(&[
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--max-runs",
            "4",
            "--max-runs-per-tenant",
            "2",
        ])
        .env("PRAXIS_MODE", "production")
        .env("PRAXIS_AUTH", "on")
        .env("PRAXIS_ALLOWED_ORIGINS", "https://console.example")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    for fixed in ["PRAXIS_AUTH", "PRAXIS_ALLOWED_ORIGINS", "PRAXIS_MAX_RUNS"] {
        assert!(!stderr.contains(fixed), "{fixed} still named:\n{stderr}");
    }
    assert!(stderr.contains("PRAXIS_TRUST_ANCHOR"));
}

/// The same request through `praxis run` and over HTTP starts the same run: the two
/// `run_started` payloads differ only in ids, times and host facts. In particular the
/// home's `[compaction]`, `[prices]` and `[limits]`, and the request's protocol, tool
/// choice and time limit, apply over HTTP as they do locally.
#[test]
fn the_same_request_locally_and_over_http_starts_the_same_run() {
    let env = Env::new();
    env.file(
        "praxis.toml",
        "[model]\ncontext_window = 64000\n[compaction]\nmode = \"truncate\"\nthreshold_percent = 60\n[limits]\nmax_steps = 12\n[prices.mock]\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n",
    );
    assert!(env.praxis(&["writ", "keygen"]).status.success());
    let ws = env.ws.path().to_str().unwrap().to_string();
    let args = vec![
        "run",
        "Summarize this repository",
        "--workspace",
        &ws,
        "--provider",
        "mock",
        "--protocol",
        "cmd",
        "--tool-choice",
        "auto",
        "--max-seconds",
        "120",
        "--approve",
        "never",
        "--json",
    ];
    let local = env.json(&args);
    let server = env.serve(&[]);
    let mut remote_args = args.clone();
    remote_args.extend(["--server", server.url.as_str()]);
    let remote = env.json(&remote_args);
    let started = |summary: &Value| {
        let id = summary["run_id"].as_str().unwrap();
        let entries = env.entries(id);
        assert_eq!(entries[0]["kind"], "run_started");
        let mut payload = entries[0]["payload"].clone();
        let object = payload.as_object_mut().unwrap();
        // Times and host facts.
        object.remove("now");
        object.remove("environment");
        // The development writ is issued per run: its id and times differ.
        if let Some(writ) = object.get_mut("writ").and_then(Value::as_object_mut) {
            for field in ["id", "issued_at", "expires_at", "revocation_ids"] {
                writ.remove(field);
            }
            for block in writ["blocks"].as_array_mut().into_iter().flatten() {
                block.as_object_mut().map(|b| b.remove("expires_at"));
            }
        }
        payload
    };
    let (local, remote) = (started(&local), started(&remote));
    assert_eq!(local, remote);
    // What the configuration set is there, on both.
    assert_eq!(local["spec"]["protocol"], "cmd");
    assert_eq!(local["spec"]["limits"]["max_steps"], 12);
    assert_eq!(local["spec"]["limits"]["max_seconds"], 120);
    assert_eq!(local["spec"]["compaction"]["context_window"], 64000);
    assert_eq!(local["prices"]["mock"]["input_per_mtok"], 1.0);
}

/// `praxis serve` keeps a run's worker for the next run of the same workspace and settings
/// (one that started no command), and each run records it: the worker's pid and how many
/// runs it served before. `PRAXIS_WORKER_REUSE=off` gives every run a new worker.
#[test]
fn a_served_runs_worker_serves_the_next_run_of_its_workspace_unless_reuse_is_off() {
    let host = praxis_tools::sandbox::probe();
    if !host.sandbox_available() {
        let message = format!("no worker fabric on this host: {host:?}");
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
        eprintln!("skipping: {message}");
        return;
    }
    let env = Env::new();
    let script = env.script(
        "write.json",
        json!([
            {"tool_calls": [{"id": "c1", "name": "fs_write",
                             "arguments": {"path": "out.txt", "content": "x\n"}}]},
            {"content": "written"},
        ]),
    );
    // The part of the host facts (an open shape in `run_started`) read here.
    #[derive(serde::Deserialize)]
    struct Environment {
        sandbox: Sandbox,
    }
    #[derive(serde::Deserialize)]
    struct Sandbox {
        worker: praxis_tools::worker::WorkerDescription,
    }
    // Each run's worker: (pid, runs it served before).
    let workers = |server: &Served| -> Vec<(u32, u32)> {
        (0..3)
            .map(|_| {
                let out = env.praxis(&env.run_args(&server.url, &script));
                assert!(out.status.success(), "{}", text(&out.stderr));
                let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(summary["status"], "completed");
                let entries = env.entries(summary["run_id"].as_str().unwrap());
                let entry: praxis_ledger::Entry =
                    serde_json::from_value(entries[0].clone()).unwrap();
                let Ok(Record::RunStarted(started)) =
                    Record::from_entry(&entry.kind, &entry.payload)
                else {
                    panic!("not a run_started: {}", entry.kind);
                };
                let Environment { sandbox } = serde_json::from_value(started.environment).unwrap();
                let pid = sandbox.worker.pid.expect("the worker's pid is recorded");
                (pid, sandbox.worker.earlier_runs)
            })
            .collect()
    };

    let server = env.serve(&[]);
    let kept = workers(&server);
    server.signal("-TERM");
    assert!(server.wait().0.success());
    assert_eq!(kept[0].1, 0, "{kept:?}");
    for (i, (pid, earlier)) in kept.iter().enumerate().skip(1) {
        assert_eq!(
            *pid, kept[0].0,
            "the first run's worker serves run {i}: {kept:?}"
        );
        assert_eq!(*earlier, i as u32, "{kept:?}");
    }

    let mut cmd = env.cmd(&[]);
    cmd.env("PRAXIS_WORKSPACE_ROOTS", env.ws.path())
        .env("PRAXIS_WORKER_REUSE", "off");
    let server = Served::start_with(cmd, &[]);
    let fresh = workers(&server);
    server.signal("-TERM");
    assert!(server.wait().0.success());
    let pids: BTreeSet<u32> = fresh.iter().map(|(pid, _)| *pid).collect();
    assert_eq!(pids.len(), fresh.len(), "a new worker per run: {fresh:?}");
    assert!(fresh.iter().all(|(_, earlier)| *earlier == 0), "{fresh:?}");
}
