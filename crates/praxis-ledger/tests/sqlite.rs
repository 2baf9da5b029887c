//! The SQLite ledger against real database files.

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

#[tokio::test]
async fn batches_to_two_runs_form_two_intact_chains() {
    let (_dir, path) = db();
    let ledger = SqliteLedger::open(&path).unwrap();
    let a1 = ledger.append("run-a", notes(1, 3), vec![]).await.unwrap();
    let b1 = ledger.append("run-b", notes(1, 2), vec![]).await.unwrap();
    let a2 = ledger.append("run-a", notes(4, 2), vec![]).await.unwrap();
    let b2 = ledger.append("run-b", notes(3, 1), vec![]).await.unwrap();

    // What append returned is what is stored.
    let a = ledger.entries("run-a", 0).unwrap();
    let b = ledger.entries("run-b", 0).unwrap();
    assert_eq!(a, [a1, a2].concat());
    assert_eq!(b, [b1, b2].concat());
    assert_chained(&a, "run-a", 5);
    assert_chained(&b, "run-b", 3);
    assert_eq!(a[3].payload, json!({ "i": 4 }));

    assert_eq!(
        ledger.verify_run("run-a").unwrap(),
        VerifyReport::Intact { entries: 5 }
    );
    assert_eq!(
        ledger.verify_run("run-b").unwrap(),
        VerifyReport::Intact { entries: 3 }
    );
    // `after_seq` tails the run.
    let tail = ledger.entries("run-a", 3).unwrap();
    assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
    assert!(ledger.entries("run-a", u64::MAX).unwrap().is_empty());
    assert!(ledger.entries("no-such-run", 0).unwrap().is_empty());
    assert!(matches!(
        ledger.verify_run("no-such-run"),
        Err(LedgerError::RunNotFound { .. })
    ));

    let stats = ledger.stats();
    assert_eq!(stats.entries, 8);
    assert_eq!(stats.requests, 4);
}

#[tokio::test]
async fn payloads_read_back_exactly_including_floats() {
    let (_dir, path) = db();
    let ledger = SqliteLedger::open(&path).unwrap();
    let payload = json!({
        "floats": [0.1, 1e-7, 1.2345678901234567e300, -0.0, 5e-324, 0.30000000000000004],
        "ints": [u64::MAX, i64::MIN, 0],
        "text": "ünïcødé \u{0} \" \\ \n",
        "nested": { "z": null, "a": [true, false, {}] },
    });
    let written = ledger
        .append("floats", vec![entry("note", payload.clone())], vec![])
        .await
        .unwrap();
    let read = ledger.entries("floats", 0).unwrap();
    assert_eq!(read, written);
    assert_eq!(read[0].payload, payload);
    assert_eq!(
        ledger.verify_run("floats").unwrap(),
        VerifyReport::Intact { entries: 1 }
    );
}

/// A run of five entries in a closed ledger file, ready to be tampered with.
fn five_entry_run() -> (TempDir, PathBuf) {
    let (dir, path) = db();
    let ledger = SqliteLedger::open(&path).unwrap();
    ledger.append_blocking("t", notes(1, 5), vec![]).unwrap();
    drop(ledger);
    (dir, path)
}

fn tamper(path: &Path, sql: &str) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("DROP TRIGGER entries_no_update; DROP TRIGGER entries_no_delete;")
        .unwrap();
    conn.execute_batch(sql).unwrap();
}

fn broken_seq(path: &Path) -> (u64, String) {
    let ledger = SqliteLedger::open(path).unwrap();
    match ledger.verify_run("t").unwrap() {
        VerifyReport::Broken { seq, problem } => (seq, problem),
        intact => panic!("tampering went unnoticed: {intact:?}"),
    }
}

#[test]
fn tampering_with_the_file_is_located_at_the_first_bad_seq() {
    let cases = [
        (
            "UPDATE entries SET payload = '{\"i\":99}' WHERE run_id = 't' AND seq = 3",
            3,
            "hash",
        ),
        (
            "UPDATE entries SET at = '2001-01-01T00:00:00.000Z' WHERE run_id = 't' AND seq = 2",
            2,
            "hash",
        ),
        (
            "UPDATE entries SET kind = 'forged' WHERE run_id = 't' AND seq = 4",
            4,
            "hash",
        ),
        (
            "DELETE FROM entries WHERE run_id = 't' AND seq = 3",
            3,
            "missing",
        ),
        // Swapping two entries' hashes: the first of them no longer matches its contents.
        (
            "UPDATE entries SET hash = CASE seq
                 WHEN 2 THEN (SELECT hash FROM entries WHERE run_id = 't' AND seq = 3)
                 ELSE (SELECT hash FROM entries WHERE run_id = 't' AND seq = 2) END
             WHERE run_id = 't' AND seq IN (2, 3)",
            2,
            "hash",
        ),
        (
            "UPDATE entries SET payload = 'not json' WHERE run_id = 't' AND seq = 5",
            5,
            "JSON",
        ),
    ];
    for (sql, seq, word) in cases {
        let (_dir, path) = five_entry_run();
        {
            let ledger = SqliteLedger::open(&path).unwrap();
            assert_eq!(
                ledger.verify_run("t").unwrap(),
                VerifyReport::Intact { entries: 5 }
            );
        }
        tamper(&path, sql);
        let (found, problem) = broken_seq(&path);
        assert_eq!(found, seq, "{sql}: {problem}");
        assert!(problem.contains(word), "{sql}: {problem}");
    }
}

#[test]
fn rewriting_an_entry_with_a_recomputed_hash_breaks_the_next_link() {
    let (_dir, path) = five_entry_run();
    let ledger = SqliteLedger::open(&path).unwrap();
    let mut forged = ledger.entries("t", 0).unwrap()[1].clone();
    drop(ledger);
    forged.payload = json!({ "i": "forged" });
    forged.hash = forged.computed_hash();
    tamper(
        &path,
        &format!(
            "UPDATE entries SET payload = '{}', hash = '{}' WHERE run_id = 't' AND seq = 2",
            serde_json::to_string(&forged.payload).unwrap(),
            forged.hash
        ),
    );
    let (seq, problem) = broken_seq(&path);
    assert_eq!(seq, 3, "{problem}");
    assert!(problem.contains("prev_hash"), "{problem}");
}

#[test]
fn the_store_refuses_update_and_delete() {
    let (_dir, path) = db();
    let ledger = SqliteLedger::open(&path).unwrap();
    ledger
        .append_blocking("r", notes(1, 2), vec![b"blob".to_vec()])
        .unwrap();
    let conn = Connection::open(&path).unwrap();
    for sql in [
        "UPDATE entries SET payload = '{}' WHERE seq = 1",
        "DELETE FROM entries WHERE seq = 2",
        "UPDATE blobs SET data = x'00'",
        "DELETE FROM blobs",
        // INSERT OR REPLACE deletes the old row first: refused too.
        "INSERT OR REPLACE INTO entries (run_id, seq, kind, at, payload, prev_hash, hash)
             SELECT run_id, seq, kind, at, '{}', prev_hash, hash FROM entries WHERE seq = 1",
    ] {
        let err = conn.execute_batch(sql).unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    // Replacing a blob is silently ignored: the stored bytes stay.
    conn.execute_batch(
        "INSERT OR REPLACE INTO blobs (id, size, data) SELECT id, 1, x'00' FROM blobs",
    )
    .unwrap();
    assert_eq!(
        ledger.blob(&praxis_core::blob_id(b"blob")).unwrap(),
        Some(b"blob".to_vec())
    );
    assert_eq!(count_entries(&path, "r"), 2);
    assert_eq!(
        ledger.verify_run("r").unwrap(),
        VerifyReport::Intact { entries: 2 }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_appends_are_committed_together() {
    let (_dir, path) = db();
    let ledger = Arc::new(SqliteLedger::open(&path).unwrap());
    ledger.append("g", notes(0, 1), vec![]).await.unwrap();
    let before = ledger.stats();

    let pause = ledger.pause_writer();
    // `append` queues the request when called; the tasks only wait for the reply.
    let tasks: Vec<_> = (1..=32)
        .map(|i| tokio::spawn(ledger.append("g", notes(i, 1), vec![])))
        .collect();
    drop(pause);
    let mut seqs = Vec::new();
    for task in tasks {
        let entries = task.await.unwrap().unwrap();
        seqs.push(entries[0].seq);
    }
    let after = ledger.stats();
    assert_eq!(after.commits - before.commits, 1, "{before:?} -> {after:?}");
    assert_eq!(after.requests - before.requests, 32);
    assert_eq!(after.entries - before.entries, 32);
    seqs.sort_unstable();
    assert_eq!(seqs, (2..=33).collect::<Vec<u64>>());
    assert_chained(&ledger.entries("g", 0).unwrap(), "g", 33);
}

#[tokio::test]
async fn a_failing_request_does_not_fail_the_rest_of_its_group() {
    let (_dir, path) = db();
    let ledger = SqliteLedger::open(&path).unwrap();
    let before = ledger.stats();
    let orphan = b"only in a failed request".to_vec();

    let pause = ledger.pause_writer();
    let ok_first = ledger.append("ok", notes(1, 1), vec![]);
    // Its first entry and its blob are written before the second entry fails: both must be
    // rolled back.
    let bad_kind = ledger.append(
        "mixed",
        vec![entry("note", json!(1)), entry("bad kind", json!(2))],
        vec![orphan.clone()],
    );
    let empty_id = ledger.append("", notes(1, 1), vec![]);
    let bad_time = ledger.append(
        "mixed",
        vec![NewEntry {
            kind: "note".into(),
            payload: json!(3),
            at: "yesterday".into(),
        }],
        vec![],
    );
    let ok_after = ledger.append("mixed", notes(4, 2), vec![b"kept".to_vec()]);
    drop(pause);

    assert_eq!(ok_first.await.unwrap()[0].seq, 1);
    match bad_kind.await {
        Err(LedgerError::InvalidEntry {
            run_id,
            index,
            reason,
        }) => {
            assert_eq!((run_id.as_str(), index), ("mixed", 1));
            assert!(reason.contains("bad kind"), "{reason}");
        }
        other => panic!("expected InvalidEntry, got {other:?}"),
    }
    assert!(matches!(
        empty_id.await,
        Err(LedgerError::InvalidRunId { run_id, .. }) if run_id.is_empty()
    ));
    match bad_time.await {
        Err(e @ LedgerError::InvalidEntry { .. }) => {
            assert!(e.to_string().contains("\"yesterday\""), "{e}")
        }
        other => panic!("expected InvalidEntry, got {other:?}"),
    }
    // The failed requests' seqs were rolled back, so this one starts the run.
    let kept = ok_after.await.unwrap();
    assert_eq!(kept.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);

    let after = ledger.stats();
    assert_eq!(after.commits - before.commits, 1);
    assert_eq!(after.requests - before.requests, 5);
    assert_eq!(after.entries - before.entries, 3);
    assert_eq!(after.blobs - before.blobs, 1);
    assert_eq!(ledger.entries("mixed", 0).unwrap(), kept);
    assert_eq!(ledger.blob(&praxis_core::blob_id(&orphan)).unwrap(), None);
    assert_eq!(
        ledger.blob(&praxis_core::blob_id(b"kept")).unwrap(),
        Some(b"kept".to_vec())
    );
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

#[tokio::test]
async fn reopening_continues_the_chain_and_lists_runs_newest_first() {
    let (_dir, path) = db();
    let at = |t: &str| format!("2026-11-21T{t}.000Z");
    {
        let ledger = SqliteLedger::open(&path).unwrap();
        let first = NewEntry {
            kind: "run_started".into(),
            payload: json!({ "task": "old" }),
            at: at("10:00:00"),
        };
        ledger.append("old", vec![first], vec![]).await.unwrap();
    }
    let ledger = SqliteLedger::open(&path).unwrap();
    let start_new = NewEntry {
        kind: "run_started".into(),
        payload: json!({ "task": "new" }),
        at: at("11:00:00"),
    };
    ledger.append("new", vec![start_new], vec![]).await.unwrap();
    ledger.append("old", notes(2, 1), vec![]).await.unwrap();
    let finish = NewEntry {
        kind: "run_finished".into(),
        payload: json!({ "status": "completed" }),
        at: at("11:00:05"),
    };
    ledger.append("new", vec![finish], vec![]).await.unwrap();
    drop(ledger);

    let ledger = SqliteLedger::open(&path).unwrap();
    assert_chained(&ledger.entries("old", 0).unwrap(), "old", 2);
    let runs = ledger.runs().unwrap();
    let ids: Vec<_> = runs.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(ids, ["new", "old"]);
    assert_eq!(runs[0].started, json!({ "task": "new" }));
    assert_eq!(runs[0].started_at, at("11:00:00"));
    assert_eq!(runs[0].finished, Some(json!({ "status": "completed" })));
    assert_eq!(
        (runs[0].last_seq, runs[0].last_kind.as_str()),
        (2, "run_finished")
    );
    assert_eq!(runs[1].finished, None);
    assert_eq!((runs[1].last_seq, runs[1].last_kind.as_str()), (2, "note"));
}

#[test]
fn find_run_resolves_unique_prefixes() {
    let (_dir, path) = db();
    let ledger = SqliteLedger::open(&path).unwrap();
    for id in ["abc123", "abc456", "xyz", "ab"] {
        ledger.append_blocking(id, notes(1, 1), vec![]).unwrap();
    }
    assert_eq!(ledger.find_run("abc1").unwrap(), "abc123");
    assert_eq!(ledger.find_run("xyz").unwrap(), "xyz");
    assert_eq!(ledger.find_run("x").unwrap(), "xyz");
    // An exact id wins over the longer ids it is a prefix of.
    assert_eq!(ledger.find_run("ab").unwrap(), "ab");
    match ledger.find_run("abc") {
        Err(e @ LedgerError::AmbiguousRun { .. }) => {
            let message = e.to_string();
            assert!(message.contains("abc123, abc456"), "{message}");
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
        other => panic!("expected AmbiguousRun, got {other:?}"),
    }
    assert!(matches!(
        ledger.find_run("nope"),
        Err(LedgerError::RunNotFound { prefix, .. }) if prefix == "nope"
    ));
    // LIKE/GLOB metacharacters are not wildcards.
    assert!(matches!(
        ledger.find_run("a%"),
        Err(LedgerError::RunNotFound { .. })
    ));
    assert!(matches!(
        ledger.find_run(""),
        Err(LedgerError::InvalidRunId { .. })
    ));
}

#[test]
fn blobs_are_stored_once_and_verified() {
    let (_dir, path) = db();
    let ledger = SqliteLedger::open(&path).unwrap();
    let hello = b"hello".to_vec();
    let world = vec![0u8, 255, 1, 2];
    ledger
        .append_blocking(
            "b",
            notes(1, 1),
            vec![hello.clone(), hello.clone(), world.clone()],
        )
        .unwrap();
    assert_eq!(ledger.stats().blobs, 2);
    // Blobs alone, without entries.
    ledger
        .append_blocking("b", vec![], vec![hello.clone()])
        .unwrap();
    assert_eq!(ledger.stats().blobs, 2);
    let hello_id = praxis_core::blob_id(&hello);
    let world_id = praxis_core::blob_id(&world);
    assert_eq!(ledger.blob(&hello_id).unwrap(), Some(hello));
    assert_eq!(ledger.blob(&world_id).unwrap(), Some(world));
    assert_eq!(ledger.blob(&"f".repeat(64)).unwrap(), None);
    assert!(ledger.verify_blobs().unwrap().is_empty());

    let health = ledger.check_health().unwrap();
    assert_eq!(health.quick_check, "ok");
    assert_eq!(health.journal_mode, "wal");
    assert_eq!((health.runs, health.entries, health.blobs), (1, 1, 2));
    assert_eq!(health.blob_bytes, 9);
    assert_eq!(health.schema_version, 1);
    assert!(health.file_bytes > 0);
    assert!(!health.sqlite_version.is_empty());

    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("DROP TRIGGER blobs_no_update").unwrap();
    conn.execute(
        "UPDATE blobs SET data = ?1 WHERE id = ?2",
        rusqlite::params![b"jello".to_vec(), hello_id],
    )
    .unwrap();
    assert_eq!(ledger.verify_blobs().unwrap(), vec![hello_id]);
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
