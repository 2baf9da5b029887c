//! No other process can make the ledger's writer lose acknowledged entries.
//!
//! The attack this reproduces: POSIX locks belong to a process, so once anything in the
//! writer's process opens and closes `ledger.db` (a tool reading the file did), the writer
//! holds no lock on it any more. A second process that then opened and closed the ledger
//! found itself "last", checkpointed and deleted the WAL; the writer went on committing into
//! the deleted file, and after a restart those runs were gone while verification still
//! passed.
//!
//! The second process is this test binary again (`CHILD_ENV` says what it does).

use praxis_ledger::{Ledger, LedgerError, NewEntry, SqliteLedger, VerifyReport, now_rfc3339};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

const CHILD_ENV: &str = "PRAXIS_LEDGER_TEST_CHILD";
const CHILD_PATH_ENV: &str = "PRAXIS_LEDGER_TEST_CHILD_PATH";

fn notes(n: u64) -> Vec<NewEntry> {
    (0..n)
        .map(|i| NewEntry {
            kind: "note".into(),
            payload: json!({ "i": i }),
            at: now_rfc3339(),
        })
        .collect()
}

/// Not a test on its own: the body of the other processes.
#[test]
fn child_process_body() {
    let (Ok(mode), Ok(path)) = (std::env::var(CHILD_ENV), std::env::var(CHILD_PATH_ENV)) else {
        return;
    };
    let path = Path::new(&path);
    let ledger = match mode.as_str() {
        "crashing-writer" => return crashing_writer(path),
        // What `praxis runs` / `show` / `verify` do.
        "read-only" => SqliteLedger::open_read_only(path).unwrap(),
        // What another writer (a local `praxis run`, `praxis approve`) does.
        "writer" => SqliteLedger::open(path).unwrap(),
        other => panic!("unknown child mode {other}"),
    };
    assert!(!ledger.runs().unwrap().is_empty());
    drop(ledger);
}

/// The server: commits, loses its locks, and after the other process came and went commits
/// again, says so, and waits to be killed.
fn crashing_writer(path: &Path) {
    let ledger = SqliteLedger::open(path).unwrap();
    ledger
        .append_blocking("run-before", notes(3), vec![])
        .unwrap();
    // Drops every POSIX lock this process holds on the ledger and its WAL index, as any
    // close of them does (a tool that walked a directory holding the data dir did this).
    for file in [path.to_path_buf(), sibling(path, "-shm")] {
        drop(std::fs::File::open(file).unwrap());
    }
    println!("locks lost");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let acked = ledger
        .append_blocking("run-after", notes(5), vec![])
        .unwrap();
    assert_eq!(acked.len(), 5);
    println!("acknowledged");
    loop {
        std::thread::park();
    }
}

fn sibling(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

fn child(mode: &str, path: &Path) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "child_process_body",
            "--test-threads=1",
            "--nocapture",
            "--quiet",
        ])
        .env(CHILD_ENV, mode)
        .env(CHILD_PATH_ENV, path);
    command
}

fn read_until(lines: &mut impl BufRead, wanted: &str) {
    let mut line = String::new();
    loop {
        line.clear();
        assert_ne!(
            lines.read_line(&mut line).unwrap(),
            0,
            "the writer exited before {wanted:?}"
        );
        if line.trim() == wanted {
            return;
        }
    }
}

fn writer_survives_another_process(mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let mut writer = child("crashing-writer", &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(writer.stdout.take().unwrap());
    read_until(&mut out, "locks lost");

    let status = child(mode, &path).status().unwrap();
    assert!(status.success(), "the other process failed: {status}");
    assert!(
        sibling(&path, "-wal").exists(),
        "the other process deleted the WAL"
    );

    writeln!(writer.stdin.take().unwrap(), "go on").unwrap();
    read_until(&mut out, "acknowledged");
    // kill -9: no clean close, no last checkpoint.
    writer.kill().unwrap();
    writer.wait().unwrap();

    // The restart.
    let ledger = SqliteLedger::open_read_only(&path).unwrap();
    for (run, n) in [("run-before", 3u64), ("run-after", 5)] {
        assert_eq!(
            ledger.entries(run, 0).unwrap().len() as u64,
            n,
            "{run}: acknowledged entries are missing after a restart"
        );
        assert_eq!(
            ledger.verify_run(run).unwrap(),
            VerifyReport::Intact { entries: n }
        );
    }
}

#[test]
fn a_reading_process_cannot_make_the_writer_lose_entries() {
    writer_survives_another_process("read-only");
}

#[test]
fn a_second_writer_process_cannot_make_the_writer_lose_entries() {
    writer_survives_another_process("writer");
}

#[tokio::test]
async fn read_only_handles_cannot_append() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh/ledger.db");
    // A ledger that does not exist yet reads as empty.
    let reader = SqliteLedger::open_read_only(&path).unwrap();
    assert!(reader.is_read_only());
    assert!(reader.runs().unwrap().is_empty());
    let err = reader.append("r", notes(1), vec![]).await.unwrap_err();
    assert!(matches!(err, LedgerError::ReadOnly { .. }), "{err}");
    drop(reader);

    // It sees what a writer commits, while the writer is open. (Within one process the
    // writer opens first: SQLite shares one WAL-index mapping per file and process, and a
    // read-only first opener would make it read-only for the writer too.)
    let writer = SqliteLedger::open(&path).unwrap();
    let reader = SqliteLedger::open_read_only(&path).unwrap();
    writer.append("r", notes(2), vec![]).await.unwrap();
    assert_eq!(reader.entries("r", 0).unwrap().len(), 2);
    drop(reader);
    writer.append("r", notes(1), vec![]).await.unwrap();
    assert_eq!(writer.entries("r", 0).unwrap().len(), 3);
}

#[test]
fn a_ledger_whose_wal_files_were_deleted_still_opens_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    SqliteLedger::open(&path)
        .unwrap()
        .append_blocking("r", notes(2), vec![])
        .unwrap();
    // What an older praxis, or any other SQLite client, does when it closes last.
    let plain = rusqlite::Connection::open(&path).unwrap();
    let _: i64 = plain
        .query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
        .unwrap();
    drop(plain);
    assert!(!sibling(&path, "-shm").exists());
    let reader = SqliteLedger::open_read_only(&path).unwrap();
    assert_eq!(reader.entries("r", 0).unwrap().len(), 2);
}

#[test]
fn a_file_created_by_a_side_table_but_not_migrated_reads_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    // Another process's first handle may be a side table, before the ledger's own.
    drop(praxis_ledger::cancels::CancelStore::open(&path).unwrap());
    let reader = SqliteLedger::open_read_only(&path).unwrap();
    assert!(reader.runs().unwrap().is_empty());
}
