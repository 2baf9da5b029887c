//! The commands that only read the ledger (`ledger verify`, `ledger export`, `show`, `runs`,
//! `replay`, `world`) open it read-only: they work on a full disk and on a read-only copy of
//! a data dir, write nothing there, and refuse (naming the command that migrates) a ledger
//! with an older schema instead of migrating it.
//!
//! The full-disk and read-only-mount cases mount a small tmpfs, so they need root (CI runs
//! as root); elsewhere they print why they did not run, and fail when `CI=true`.

mod common;

use common::tmpfs::Tmpfs;
use common::{Praxis, text};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A data dir holding one finished run, and the run's id.
fn seeded() -> (Praxis, tempfile::TempDir, String) {
    let praxis = Praxis::new();
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("notes.txt"), "a file to summarize\n").unwrap();
    let summary = praxis.json(&[
        "run",
        "Summarize this repository",
        "--workspace",
        ws.path().to_str().unwrap(),
        "--json",
    ]);
    let run_id = summary["run_id"].as_str().unwrap().to_string();
    (praxis, ws, run_id)
}

fn read_only_commands(run_id: &str) -> Vec<Vec<String>> {
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        args(&["ledger", "verify", "--all"]),
        args(&["ledger", "verify", run_id]),
        args(&["ledger", "export", run_id]),
        args(&["show", run_id]),
        args(&["runs"]),
        args(&["replay", run_id]),
        args(&["world", run_id]),
    ]
}

/// Every file under `dir` with its bytes.
fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// Every file of `before` is in `after` with the same bytes; the only new files are an empty
/// WAL and its index (what a `readonly_shm` reader needs, made where an older client deleted
/// them).
fn assert_unchanged(before: &BTreeMap<PathBuf, Vec<u8>>, after: &BTreeMap<PathBuf, Vec<u8>>) {
    for (path, bytes) in before {
        assert!(
            after.get(path) == Some(bytes),
            "a read-only command changed {}",
            path.display()
        );
    }
    for (path, bytes) in after {
        if before.contains_key(path) {
            continue;
        }
        let name = path.to_string_lossy();
        assert!(
            name.ends_with("-shm") || (name.ends_with("-wal") && bytes.is_empty()),
            "a read-only command made {} ({} bytes)",
            name,
            bytes.len()
        );
    }
}

/// Runs every read-only command on the data dir `home`; each must succeed and say what a
/// healthy ledger says.
fn all_succeed(praxis: &Praxis, home: &Path, run_id: &str, case: &str) {
    for args in read_only_commands(run_id) {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = praxis.cmd(&argv).env("PRAXIS_HOME", home).output().unwrap();
        assert!(
            out.status.success(),
            "{case}: praxis {argv:?} failed: {}",
            text(&out.stderr)
        );
        let stdout = text(&out.stdout);
        match argv[0] {
            "ledger" if argv[1] == "verify" => assert!(stdout.contains("intact"), "{stdout}"),
            "ledger" => assert!(stdout.lines().count() > 3, "{case}: export: {stdout}"),
            "replay" => assert!(stdout.contains("matched"), "{case}: {stdout}"),
            "runs" => assert!(stdout.contains(run_id), "{case}: {stdout}"),
            _ => {}
        }
    }
}

/// Folds the WAL into the database file and lets a plain SQLite client delete the WAL and
/// its index on close: what an older praxis, `sqlite3` or a backup tool leaves behind.
fn checkpoint_away_the_wal(ledger: &Path) {
    let conn = rusqlite::Connection::open(ledger).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    assert!(!sibling(ledger, "-wal").exists());
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn read_only_commands_write_nothing_to_the_data_dir() {
    let (praxis, _ws, run_id) = seeded();
    let home = praxis.home.path().to_path_buf();
    let before = contents(&home);
    all_succeed(&praxis, &home, &run_id, "a writable data dir");
    assert_unchanged(&before, &contents(&home));
}

#[test]
fn a_missing_ledger_reads_as_empty_and_is_not_created() {
    let praxis = Praxis::new();
    let out = praxis.praxis(&["runs"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = praxis.praxis(&["ledger", "verify", "--all"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("0 runs checked"),
        "{}",
        text(&out.stdout)
    );
    assert!(!praxis.home.path().join("ledger.db").exists());
}

#[test]
fn an_old_schema_is_refused_with_the_command_that_migrates_it_and_left_as_it_was() {
    let (praxis, _ws, run_id) = seeded();
    let home = praxis.home.path();
    let ledger = home.join("ledger.db");
    // An older schema: the version the ledger's migrations count is behind this praxis's.
    rusqlite::Connection::open(&ledger)
        .unwrap()
        .execute_batch("PRAGMA user_version = 0")
        .unwrap();
    let before = contents(home);
    for args in read_only_commands(&run_id) {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = praxis.praxis(&argv);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "praxis {argv:?} read an old schema");
        assert!(
            stderr.contains("schema version 0") && stderr.contains("`praxis ledger migrate`"),
            "praxis {argv:?}: {stderr}"
        );
    }
    assert_unchanged(&before, &contents(home));

    // The same file at the current version reads again: nothing else was touched.
    rusqlite::Connection::open(&ledger)
        .unwrap()
        .execute_batch("PRAGMA user_version = 1")
        .unwrap();
    all_succeed(&praxis, home, &run_id, "back at the current version");
}

#[test]
fn read_only_commands_work_on_a_full_disk() {
    let (praxis, _ws, run_id) = seeded();
    let Some(fs) = Tmpfs::mount("4m") else { return };
    // With the WAL beside the ledger (a data dir in use), and without it (checkpointed away
    // by another client: the case that used to fail with "disk is full").
    let with_wal = fs.path().join("with-wal");
    let without_wal = fs.path().join("without-wal");
    copy_dir(praxis.home.path(), &with_wal);
    copy_dir(praxis.home.path(), &without_wal);
    checkpoint_away_the_wal(&without_wal.join("ledger.db"));
    fs.fill();
    let (before_with, before_without) = (contents(&with_wal), contents(&without_wal));
    all_succeed(&praxis, &with_wal, &run_id, "full disk, WAL present");
    all_succeed(&praxis, &without_wal, &run_id, "full disk, WAL deleted");
    assert_unchanged(&before_with, &contents(&with_wal));
    assert_unchanged(&before_without, &contents(&without_wal));
}

#[test]
fn read_only_commands_work_on_a_read_only_copy_of_the_data_dir() {
    let (praxis, _ws, run_id) = seeded();
    let Some(fs) = Tmpfs::mount("8m") else {
        return;
    };
    let with_wal = fs.path().join("with-wal");
    let without_wal = fs.path().join("without-wal");
    copy_dir(praxis.home.path(), &with_wal);
    copy_dir(praxis.home.path(), &without_wal);
    checkpoint_away_the_wal(&without_wal.join("ledger.db"));
    fs.remount_read_only();
    all_succeed(&praxis, &with_wal, &run_id, "read-only mount, WAL present");
    all_succeed(
        &praxis,
        &without_wal,
        &run_id,
        "read-only mount, WAL deleted",
    );
}

/// Without root, a copy with its write permissions removed (root ignores them: the mounts
/// above cover it).
#[test]
fn read_only_commands_work_on_a_copy_without_write_permission() {
    let uid = Command::new("id").arg("-u").output().unwrap();
    if text(&uid.stdout).trim() == "0" {
        eprintln!("skipped: root ignores file permissions (the read-only mount test covers it)");
        return;
    }
    let (praxis, _ws, run_id) = seeded();
    let copies = tempfile::tempdir().unwrap();
    let home = copies.path().join("home");
    copy_dir(praxis.home.path(), &home);
    checkpoint_away_the_wal(&home.join("ledger.db"));
    let chmod = |mode: &str| {
        let status = Command::new("chmod")
            .args(["-R", mode])
            .arg(&home)
            .status()
            .unwrap();
        assert!(status.success());
    };
    chmod("a-w");
    let before = contents(&home);
    all_succeed(&praxis, &home, &run_id, "no write permission");
    let after = contents(&home);
    chmod("u+w");
    assert_unchanged(&before, &after);
}

/// `praxis show RUN | head`: a printing command whose reader goes away ends as Unix tools
/// do (SIGPIPE), without a panic.
#[test]
fn a_printing_command_ends_quietly_when_its_reader_goes_away() {
    use std::os::unix::process::ExitStatusExt;
    let (praxis, _ws, id) = seeded();
    for args in [
        &["show", id.as_str()][..],
        &["ledger", "export", id.as_str()][..],
    ] {
        let mut child = praxis
            .cmd(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader is gone before the command writes (it is still starting).
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = text(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            out.status.signal() == Some(13) || out.status.success(),
            "{args:?}: {} {stderr}",
            out.status
        );
    }
}
