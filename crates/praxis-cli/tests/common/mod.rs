//! What the end-to-end tests of the `praxis` binary share: a fresh praxis home, and the
//! binary run in it with nothing of the developer's environment that would redirect it
//! (a server, a token, a trust anchor, a mode).
// Each test binary uses a part of this module.
#![allow(dead_code)]

pub mod crash;
pub mod served;
pub mod tmpfs;

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use tempfile::TempDir;

pub struct Praxis {
    pub home: TempDir,
}

impl Praxis {
    pub fn new() -> Self {
        Praxis {
            home: tempfile::tempdir().unwrap(),
        }
    }

    /// `praxis ARGS` in this home, stdin closed.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_praxis"));
        cmd.args(args)
            .env("PRAXIS_HOME", self.home.path())
            .env_remove("PRAXIS_TRUST_ANCHOR")
            .env_remove("PRAXIS_SERVER")
            .env_remove("PRAXIS_TOKEN")
            .env_remove("PRAXIS_MODE")
            .env_remove("PRAXIS_AUTH")
            .env_remove("PRAXIS_WORKSPACE_ROOTS")
            .env_remove("PRAXIS_TOOL_MANIFEST_DIRS")
            .stdin(Stdio::null());
        cmd
    }

    pub fn praxis(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("praxis runs")
    }

    /// Writes `text` to `name` in the home.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.home.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Writes a script (or any JSON) to `name` in the home.
    pub fn script(&self, name: &str, script: Value) -> PathBuf {
        self.file(name, &script.to_string())
    }

    /// The JSON a successful `praxis ARGS` prints.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.praxis(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            text(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// A run's entries, as `praxis ledger export` prints them.
    pub fn entries(&self, run_id: &str) -> Vec<Value> {
        let out = self.praxis(&["ledger", "export", run_id]);
        assert!(out.status.success(), "export failed: {}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// A writ issued from the TOML `spec` (needs `praxis writ keygen` first), as a file.
    pub fn issue(&self, name: &str, spec: &str) -> PathBuf {
        let spec_file = self.file(&format!("{name}.toml"), spec);
        let out = self.praxis(&["writ", "issue", "--spec", spec_file.to_str().unwrap()]);
        assert!(out.status.success(), "issue failed: {}", text(&out.stderr));
        self.file(&format!("{name}.writ"), &text(&out.stdout))
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The admin URL of the PostgreSQL server PRAXIS_TEST_POSTGRES_URL names; None (the test
/// skips, saying so) when it is not set, which fails under `CI=true`.
pub fn postgres_admin_url() -> Option<String> {
    let Ok(admin) = std::env::var("PRAXIS_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PRAXIS_TEST_POSTGRES_URL is not set under CI=true: .ci/postgres starts a cluster for it"
        );
        eprintln!("skipped: PRAXIS_TEST_POSTGRES_URL is not set");
        return None;
    };
    Some(admin)
}

/// Creates a database of its own on the server PRAXIS_TEST_POSTGRES_URL names.
pub fn fresh_database(admin: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let db = format!(
        "praxis_cli_{}_{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let sql = format!("DROP DATABASE IF EXISTS {db} WITH (FORCE); CREATE DATABASE {db}");
    let admin = admin.to_string();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            for statement in sql.split("; ") {
                client.batch_execute(statement).await.unwrap();
            }
        });
    let base = admin.split_once('?').map_or(admin.as_str(), |(b, _)| b);
    let (host, _) = base.rsplit_once('/').unwrap();
    format!("{host}/{db}")
}
