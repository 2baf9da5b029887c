//! The local run commands on a PostgreSQL ledger (`PRAXIS_LEDGER_URL`): run, runs, show,
//! replay, resume, verify, export with the run's lease; read-only commands that do not
//! write; and `praxis ledger copy` both ways with the side tables. They need a server:
//! `.ci/postgres` runs them (`--include-ignored`) with PRAXIS_TEST_POSTGRES_URL set.

mod common;
use common::{Praxis, fresh_database, text};
use praxis_ledger::PostgresLedger;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn admin_url() -> String {
    std::env::var("PRAXIS_TEST_POSTGRES_URL")
        .expect("PRAXIS_TEST_POSTGRES_URL must name a PostgreSQL server (.ci/postgres sets it)")
}

/// `praxis ARGS` in `env`'s home, on the ledger `url` names (SQLite when None).
fn cmd(env: &Praxis, url: Option<&str>, args: &[&str]) -> Command {
    let mut cmd = env.cmd(args);
    match url {
        Some(url) => cmd.env("PRAXIS_LEDGER_URL", url),
        None => cmd.env_remove("PRAXIS_LEDGER_URL"),
    };
    cmd
}

fn ok(env: &Praxis, url: Option<&str>, args: &[&str]) -> Output {
    let out = cmd(env, url, args).output().unwrap();
    assert!(
        out.status.success(),
        "praxis {args:?} failed: {}",
        text(&out.stderr)
    );
    out
}

fn json_of(env: &Praxis, url: Option<&str>, args: &[&str]) -> Value {
    serde_json::from_slice(&ok(env, url, args).stdout).unwrap()
}

fn slow_script(env: &Praxis) -> PathBuf {
    env.script(
        "slow.json",
        json!({"turns": [
            {"tool_calls": [{"id": "s1", "name": "shell", "arguments": {"command": "sleep 30 && echo ran >> log.txt"}}]},
            {"content": "finished"}
        ]}),
    )
}

/// Starts a scripted run whose first tool call sleeps, waits until its proposal is durable,
/// and returns the still running child and the run id.
fn start_slow_run(
    env: &Praxis,
    url: Option<&str>,
    ws: &Path,
    script: &Path,
    lease_seconds: &str,
) -> (std::process::Child, String) {
    let before: Vec<String> = runs(env, url).into_iter().map(|r| r.0).collect();
    let child = cmd(
        env,
        url,
        &[
            "run",
            "slow",
            "-w",
            ws.to_str().unwrap(),
            "--script",
            script.to_str().unwrap(),
            "--approve",
            "auto",
            "--json",
        ],
    )
    .env("PRAXIS_LEASE_SECONDS", lease_seconds)
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    // Hang guard only: the proposal is durable within moments of the start.
    let give_up = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < give_up, "the run never proposed its call");
        std::thread::sleep(Duration::from_millis(100));
        let Some((id, _)) = runs(env, url).into_iter().find(|r| !before.contains(&r.0)) else {
            continue;
        };
        let out = cmd(env, url, &["ledger", "export", &id]).output().unwrap();
        if text(&out.stdout).contains("\"kind\":\"execution\"")
            || !text(&out.stdout).contains("\"kind\":\"proposal\"")
        {
            continue;
        }
        return (child, id);
    }
}

/// `(run id, status)` of every run, newest first.
fn runs(env: &Praxis, url: Option<&str>) -> Vec<(String, String)> {
    let out = cmd(env, url, &["runs", "--json"]).output().unwrap();
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    rows.as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    (
                        r["run_id"].as_str().unwrap_or_default().to_string(),
                        r["status"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn status_of(env: &Praxis, url: Option<&str>, run: &str) -> String {
    runs(env, url)
        .into_iter()
        .find(|r| r.0 == run)
        .unwrap_or_else(|| panic!("run {run} is not listed"))
        .1
}

fn killed_slow_run(env: &Praxis, url: Option<&str>, ws: &Path, script: &Path) -> String {
    let (mut child, run_id) = start_slow_run(env, url, ws, script, "1");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    run_id
}

fn resume(env: &Praxis, url: Option<&str>, run: &str, script: &Path) -> Value {
    json_of(
        env,
        url,
        &[
            "resume",
            run,
            "--script",
            script.to_str().unwrap(),
            "--approve",
            "never",
            "--json",
        ],
    )
}

fn table_exists(url: &str, table: &str) -> bool {
    let (url, table) = (url.to_string(), table.to_string());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let row = client
                .query_one("SELECT to_regclass($1::text)::text", &[&table])
                .await
                .unwrap();
            row.get::<_, Option<String>>(0).is_some()
        })
}

#[test]
#[ignore = "needs PostgreSQL: run by .ci/postgres"]
fn local_run_commands_work_on_postgres_and_hold_the_run_lease() {
    let url = fresh_database(&admin_url());
    let pg = Some(url.as_str());
    let env = Praxis::new();
    let ws = tempfile::tempdir().unwrap();
    let script = slow_script(&env);

    // A read-only command does not migrate (or write anything to) the database.
    let out = cmd(&env, pg, &["runs"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("praxis ledger migrate"),
        "{}",
        text(&out.stderr)
    );
    assert!(!table_exists(&url, "praxis_schema_migrations"));
    assert!(!table_exists(&url, "entries"));

    // A local run on PostgreSQL holds the run's lease while it is alive.
    let (mut child, run_id) = start_slow_run(&env, pg, ws.path(), &script, "1");
    let observer = PostgresLedger::connect_as(&url, Some("server-x".into())).unwrap();
    let lease = observer
        .lease(&run_id)
        .unwrap()
        .expect("the run has a lease");
    assert!(lease.owner.starts_with("local:"), "{lease:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status_of(&env, pg, &run_id), "interrupted");

    // Once the dead process's lease expired, a server may take the run; while it holds
    // it, a local resume is refused, naming the holder.
    let give_up = Instant::now() + Duration::from_secs(60);
    while !observer
        .acquire_lease(&run_id, Duration::from_secs(3600))
        .unwrap()
    {
        assert!(
            Instant::now() < give_up,
            "the dead run's lease never expired"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = cmd(
        &env,
        pg,
        &[
            "resume",
            &run_id,
            "--script",
            script.to_str().unwrap(),
            "--approve",
            "never",
        ],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("driven by server-x"),
        "{}",
        text(&out.stderr)
    );
    observer.release_lease(&run_id).unwrap();

    let resumed = resume(&env, pg, &run_id, &script);
    assert_eq!(resumed["status"], "completed", "{resumed}");
    let lease = observer.lease(&run_id).unwrap().unwrap();
    assert!(lease.owner.starts_with("local:"), "{lease:?}");
    assert!(lease.expired, "a finished local run lets its lease expire");
    assert!(
        !ws.path().join("log.txt").exists(),
        "the killed call ran again"
    );

    // The reading commands on the same database.
    assert_eq!(status_of(&env, pg, &run_id), "completed");
    let shown = json_of(&env, pg, &["show", &run_id, "--json"]);
    assert_eq!(shown["run"]["run_id"], run_id.as_str());
    assert!(
        shown["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "run_resumed")
    );
    ok(&env, pg, &["replay", &run_id]);
    ok(&env, pg, &["world", &run_id]);
    let out = ok(&env, pg, &["ledger", "verify", "--all"]);
    assert!(
        text(&out.stdout).contains("1 runs checked, 0 problems"),
        "{}",
        text(&out.stdout)
    );
    let export = ok(&env, pg, &["ledger", "export", &run_id]);
    assert!(text(&export.stdout).contains("\"kind\":\"run_finished\""));
    // `praxis cancel` from another terminal reaches a local run through PostgreSQL's
    // cancel-request table.
    let (mut child, running) = start_slow_run(&env, pg, ws.path(), &script, "15");
    let out = ok(&env, pg, &["cancel", &running, "--reason", "enough"]);
    assert!(
        text(&out.stdout).contains("cancelled"),
        "{}",
        text(&out.stdout)
    );
    assert!(!child.wait().unwrap().success());
    assert_eq!(status_of(&env, pg, &running), "cancelled");
    // Everything went to PostgreSQL: the data dir has no SQLite ledger.
    assert!(!env.home.path().join("ledger.db").exists());
}

#[test]
#[ignore = "needs PostgreSQL: run by .ci/postgres"]
fn ledger_copy_moves_runs_and_side_tables_both_ways() {
    let url = fresh_database(&admin_url());
    let pg = Some(url.as_str());
    let a = Praxis::new();
    let ws = tempfile::tempdir().unwrap();
    let script = slow_script(&a);
    let first = killed_slow_run(&a, None, ws.path(), &script);
    let second = killed_slow_run(&a, None, ws.path(), &script);
    let token = text(&ok(&a, None, &["token", "create", "--tenant", "ops"]).stdout)
        .trim()
        .to_string();
    praxis_ledger::tokens::TokenStore::open(&a.home.path().join("ledger.db"))
        .unwrap()
        .set_run_tenant(&first, "ops")
        .unwrap();

    // SQLite -> PostgreSQL, then again: nothing more.
    let out = ok(&a, None, &["ledger", "copy", "--to", &url]);
    let said = text(&out.stdout);
    assert!(said.contains("2 runs (0 already there)"), "{said}");
    assert!(said.contains("1 tokens, 1 run owners"), "{said}");
    let out = ok(&a, None, &["ledger", "copy", "--to", &url]);
    let said = text(&out.stdout);
    assert!(
        said.contains("2 runs (2 already there), 0 entries, 0 blobs, 0 tokens, 0 run owners"),
        "{said}"
    );
    let store = PostgresLedger::connect(&url)
        .map(std::sync::Arc::new)
        .unwrap();
    assert_eq!(
        store.tokens().tenant_for(&token).unwrap().as_deref(),
        Some("ops")
    );
    assert_eq!(
        store.tokens().run_tenant(&first).unwrap().as_deref(),
        Some("ops")
    );

    // On PostgreSQL: listed, shown, resumable.
    assert_eq!(status_of(&a, pg, &first), "interrupted");
    let shown = json_of(&a, pg, &["show", &first, "--json"]);
    assert_eq!(shown["run"]["run_id"], first.as_str());
    let resumed = resume(&a, pg, &first, &script);
    assert_eq!(resumed["status"], "completed", "{resumed}");

    // PostgreSQL -> a fresh data dir's SQLite: listed, shown, resumable, tokens work.
    let b = Praxis::new();
    let out = ok(&b, None, &["ledger", "copy", "--from", &url]);
    let said = text(&out.stdout);
    assert!(said.contains("2 runs (0 already there)"), "{said}");
    assert!(said.contains("1 tokens, 1 run owners"), "{said}");
    let out = ok(&b, None, &["ledger", "copy", "--from", &url]);
    assert!(
        text(&out.stdout).contains("0 entries, 0 blobs, 0 tokens, 0 run owners"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(status_of(&b, None, &first), "completed");
    assert_eq!(status_of(&b, None, &second), "interrupted");
    let shown = json_of(&b, None, &["show", &second, "--json"]);
    assert_eq!(shown["run"]["run_id"], second.as_str());
    let resumed = resume(&b, None, &second, &script);
    assert_eq!(resumed["status"], "completed", "{resumed}");
    let out = ok(&b, None, &["ledger", "verify", "--all"]);
    assert!(
        text(&out.stdout).contains("2 runs checked, 0 problems"),
        "{}",
        text(&out.stdout)
    );
    let tokens = praxis_ledger::tokens::TokenStore::open(&b.home.path().join("ledger.db")).unwrap();
    assert_eq!(tokens.tenant_for(&token).unwrap().as_deref(), Some("ops"));

    // Back again: PostgreSQL holds `second` as it was before B resumed it, so B's longer
    // chain extends it and only the new entries are appended.
    let out = ok(&b, None, &["ledger", "copy", "--to", &url]);
    assert!(
        text(&out.stdout).contains("2 runs (1 already there)"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(status_of(&a, pg, &second), "completed");
}
