//! `praxis ledger migrate`, `praxis ledger copy --to postgres://…` and the PostgreSQL ledger
//! selected with PRAXIS_LEDGER_URL. The PostgreSQL half needs a server: `.ci/postgres` runs
//! it (`--include-ignored`) with PRAXIS_TEST_POSTGRES_URL set.

mod common;
use common::{Praxis, fresh_database, text};
use serde_json::Value;

fn mock_run(env: &Praxis, workspace: &std::path::Path) -> String {
    let out = env.praxis(&[
        "run",
        "Summarize this repository",
        "--workspace",
        workspace.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    summary["run_id"].as_str().unwrap().to_string()
}

fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("README.md"),
        "# praxis test\nA small project.\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("main.py"), "print('hello')\n").unwrap();
    dir
}

#[test]
fn migrate_reports_the_sqlite_schema_and_bad_urls_are_named() {
    let env = Praxis::new();
    let out = env.praxis(&["ledger", "migrate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("schema version 1"),
        "{}",
        text(&out.stdout)
    );

    let out = env
        .cmd(&["ledger", "verify", "--all"])
        .env("PRAXIS_LEDGER_URL", "mysql://ana:secret@db/praxis")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("PRAXIS_LEDGER_URL"), "{err}");
    assert!(!err.contains("secret"), "the password leaked: {err}");

    let out = env.praxis(&["ledger", "copy", "--to", "/tmp/elsewhere.db"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--to"), "{}", text(&out.stderr));
}

#[test]
#[ignore = "needs PostgreSQL: run by .ci/postgres"]
fn a_data_dir_copies_into_postgres_and_verifies_there() {
    let admin = std::env::var("PRAXIS_TEST_POSTGRES_URL")
        .expect("PRAXIS_TEST_POSTGRES_URL must name a PostgreSQL server (.ci/postgres sets it)");
    let url = fresh_database(&admin);
    let env = Praxis::new();
    let ws = workspace();
    let runs = [mock_run(&env, ws.path()), mock_run(&env, ws.path())];

    let out = env.praxis(&["ledger", "copy", "--to", &url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("2 runs"),
        "{}",
        text(&out.stdout)
    );

    let on_postgres = |args: &[&str]| {
        env.cmd(args)
            .env("PRAXIS_LEDGER_URL", &url)
            .output()
            .unwrap()
    };
    let out = on_postgres(&["ledger", "verify", "--all"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("2 runs checked, 0 problems"),
        "{}",
        text(&out.stdout)
    );
    // Byte for byte the same export from either store.
    for run in &runs {
        let from_pg = on_postgres(&["ledger", "export", run]);
        let from_sqlite = env.praxis(&["ledger", "export", run]);
        assert!(from_pg.status.success(), "{}", text(&from_pg.stderr));
        assert_eq!(text(&from_pg.stdout), text(&from_sqlite.stdout));
    }
    // Again: nothing new to copy.
    let out = env.praxis(&["ledger", "copy", "--to", &url]);
    assert!(
        text(&out.stdout).contains("0 entries"),
        "{}",
        text(&out.stdout)
    );

    let out = on_postgres(&["ledger", "migrate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("schema version 3 (this praxis knows 3)"),
        "{}",
        text(&out.stdout)
    );
}
