//! The SQLite ledger against real database files: what only SQLite has (files, WAL,
//! processes). What every backend must do is in backends.rs.

use praxis_ledger::{
    Entry, GENESIS_HASH, Ledger, LedgerError, NewEntry, SqliteLedger, VerifyReport, now_rfc3339,
    verify_entries,
};
use rusqlite::Connection;
use serde_json::{Value, json};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll, Wake};
use tempfile::TempDir;

fn entry(kind: &str, payload: Value) -> NewEntry {
    NewEntry {
        kind: kind.into(),
        payload,
        at: now_rfc3339(),
    }
}

fn notes(from: u64, n: u64) -> Vec<NewEntry> {
    (from..from + n)
        .map(|i| entry("note", json!({ "i": i })))
        .collect()
}

fn db() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/ledger.db");
    (dir, path)
}

fn count_entries(path: &Path, run_id: &str) -> i64 {
    let conn = Connection::open(path).unwrap();
    conn.query_row(
        "SELECT count(*) FROM entries WHERE run_id = ?1",
        [run_id],
        |r| r.get(0),
    )
    .unwrap()
}

fn assert_chained(entries: &[Entry], run_id: &str, n: u64) {
    assert_eq!(entries.len() as u64, n);
    let mut prev = GENESIS_HASH.to_string();
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.run_id, run_id);
        assert_eq!(e.seq, i as u64 + 1);
        assert_eq!(e.prev_hash, prev);
        assert_eq!(e.hash, e.computed_hash());
        prev = e.hash.clone();
    }
}

#[test]
fn replacing_a_blob_is_silently_ignored() {
    // The shared suite (backends.rs) covers UPDATE, DELETE and INSERT OR REPLACE of entries.
    let (_dir, path) = db();
    let ledger = SqliteLedger::open(&path).unwrap();
    ledger
        .append_blocking("r", notes(1, 2), vec![b"blob".to_vec()])
        .unwrap();
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "INSERT OR REPLACE INTO blobs (id, size, data) SELECT id, 1, x'00' FROM blobs",
    )
    .unwrap();
    assert_eq!(
        ledger.blob(&praxis_core::blob_id(b"blob")).unwrap(),
        Some(b"blob".to_vec())
    );
    assert_eq!(count_entries(&path, "r"), 2);
}

#[tokio::test]
async fn an_awaited_append_is_visible_to_a_new_connection() {
    let (_dir, path) = db();
    let ledger = SqliteLedger::open(&path).unwrap();
    for i in 1..=3 {
        ledger.append("d", notes(i, 1), vec![]).await.unwrap();
        assert_eq!(count_entries(&path, "d"), i as i64);
    }
    let mode: String = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn append_works_without_any_async_runtime() {
    let (_dir, path) = db();
    let ledger = SqliteLedger::open(&path).unwrap();
    let blocking = ledger.append_blocking("b", notes(1, 2), vec![]).unwrap();
    assert_eq!(blocking[1].seq, 2);
    // The future from `append` can be driven by any executor, here a bare thread-parking one.
    let polled = block_on(ledger.append("b", notes(3, 1), vec![])).unwrap();
    assert_eq!(polled[0].seq, 3);
    assert_eq!(polled[0].prev_hash, blocking[1].hash);
}

fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

#[tokio::test]
async fn dropping_the_ledger_finishes_queued_appends() {
    let (_dir, path) = db();
    let ledger = SqliteLedger::open(&path).unwrap();
    let pause = ledger.pause_writer();
    let pending: Vec<_> = (1..=5)
        .map(|i| ledger.append("q", notes(i, 1), vec![]))
        .collect();
    // Drop joins the writer even while a pause guard is alive.
    drop(ledger);
    drop(pause);
    for p in pending {
        p.await.unwrap();
    }
    assert_eq!(count_entries(&path, "q"), 5);
}

#[test]
fn health_counts_runs_entries_and_blobs() {
    let (_dir, path) = db();
    let ledger = SqliteLedger::open(&path).unwrap();
    ledger
        .append_blocking(
            "b",
            notes(1, 1),
            vec![b"hello".to_vec(), vec![0u8, 255, 1, 2]],
        )
        .unwrap();
    let health = ledger.check_health().unwrap();
    assert_eq!(health.quick_check, "ok");
    assert_eq!(health.journal_mode, "wal");
    assert_eq!((health.runs, health.entries, health.blobs), (1, 1, 2));
    assert_eq!(health.blob_bytes, 9);
    assert_eq!(health.schema_version, 1);
    assert!(health.file_bytes > 0);
    assert!(!health.sqlite_version.is_empty());
}

#[test]
fn bad_files_and_newer_schemas_are_refused_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![b'x'; 8192]).unwrap();
    let err = SqliteLedger::open(&garbage).unwrap_err();
    assert!(err.to_string().contains("garbage.db"), "{err}");

    let newer = dir.path().join("newer.db");
    drop(SqliteLedger::open(&newer).unwrap());
    Connection::open(&newer)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    match SqliteLedger::open(&newer) {
        Err(e @ LedgerError::SchemaTooNew { found: 99, .. }) => {
            assert!(e.to_string().contains("newer.db"), "{e}")
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }

    let blocked = dir.path().join("file");
    std::fs::write(&blocked, b"").unwrap();
    assert!(matches!(
        SqliteLedger::open(&blocked.join("ledger.db")),
        Err(LedgerError::CreateDir { .. })
    ));
}

const CHILD_DB: &str = "PRAXIS_LEDGER_TEST_CHILD_DB";
const PER_PROCESS: u64 = 40;

/// Not a test on its own: the body of the second process in
/// `two_processes_appending_to_one_run_keep_it_chained`.
#[test]
fn child_process_appender() {
    let Some(path) = std::env::var_os(CHILD_DB) else {
        return;
    };
    let ledger = SqliteLedger::open(Path::new(&path)).unwrap();
    for i in 0..PER_PROCESS {
        ledger
            .append_blocking("shared", vec![entry("child", json!(i))], vec![])
            .unwrap();
    }
}

#[test]
fn two_processes_appending_to_one_run_keep_it_chained() {
    let (_dir, path) = db();
    let ledger = SqliteLedger::open(&path).unwrap();
    ledger
        .append_blocking("shared", notes(1, 1), vec![])
        .unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_process_appender", "--test-threads", "1"])
        .env(CHILD_DB, &path)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for i in 0..PER_PROCESS {
        ledger
            .append_blocking("shared", vec![entry("parent", json!(i))], vec![])
            .unwrap();
    }
    assert!(child.wait().unwrap().success());

    let entries = ledger.entries("shared", 0).unwrap();
    assert_chained(&entries, "shared", 1 + 2 * PER_PROCESS);
    assert_eq!(
        verify_entries(&entries),
        VerifyReport::Intact {
            entries: 1 + 2 * PER_PROCESS
        }
    );
    let from_child = entries.iter().filter(|e| e.kind == "child").count() as u64;
    assert_eq!(from_child, PER_PROCESS);
}

/// The data dir's blob bytes (summed at every run start for its cap) come from a covering
/// index, not from a walk over every blob's row, and count each distinct blob once.
#[test]
fn blob_bytes_are_summed_from_an_index() {
    let (_dir, path) = db();
    let ledger = SqliteLedger::open(&path).unwrap();
    let blobs = vec![b"alpha".to_vec(), b"beta!!".to_vec(), b"alpha".to_vec()];
    block_on(ledger.append("r", notes(1, 1), blobs)).unwrap();
    assert_eq!(ledger.blob_bytes().unwrap(), 11);
    let conn = Connection::open(&path).unwrap();
    let plan: Vec<String> = conn
        .prepare("EXPLAIN QUERY PLAN SELECT coalesce(sum(size), 0) FROM blobs")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        plan.iter()
            .any(|step| step.contains("COVERING INDEX blobs_size")),
        "{plan:?}"
    );
}
