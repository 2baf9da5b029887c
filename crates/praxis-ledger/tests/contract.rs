//! The `Ledger` contract, run against every implementation (SQLite and in-memory): chains,
//! tails, validation, blobs, run listing, concurrent appends.

use praxis_ledger::{
    Entry, GENESIS_HASH, Ledger, LedgerError, MemoryLedger, NewEntry, SqliteLedger, VerifyReport,
};
use serde_json::{Value, json};
use std::sync::Arc;

fn entry(kind: &str, payload: Value) -> NewEntry {
    NewEntry::now(kind, payload)
}

fn notes(from: u64, n: u64) -> Vec<NewEntry> {
    (from..from + n)
        .map(|i| entry("note", json!({ "i": i })))
        .collect()
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

/// Each implementation, fresh (the tempdir lives as long as the ledger).
fn ledgers() -> Vec<(&'static str, Arc<dyn Ledger>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteLedger::open(&dir.path().join("ledger.db")).unwrap();
    vec![
        ("sqlite", Arc::new(sqlite) as Arc<dyn Ledger>, Some(dir)),
        ("memory", Arc::new(MemoryLedger::new()), None),
    ]
}

#[tokio::test]
async fn batches_to_two_runs_form_two_intact_chains() {
    for (name, ledger, _dir) in ledgers() {
        let a1 = ledger.append("run-a", notes(1, 3), vec![]).await.unwrap();
        let b1 = ledger.append("run-b", notes(1, 2), vec![]).await.unwrap();
        let a2 = ledger.append("run-a", notes(4, 2), vec![]).await.unwrap();
        let a = ledger.entries("run-a", 0).unwrap();
        assert_eq!(a, [a1, a2].concat(), "{name}");
        assert_eq!(ledger.entries("run-b", 0).unwrap(), b1, "{name}");
        assert_chained(&a, "run-a", 5);
        assert_eq!(a[3].payload, json!({ "i": 4 }), "{name}");
        assert_eq!(
            ledger.verify_run("run-a").unwrap(),
            VerifyReport::Intact { entries: 5 },
            "{name}"
        );
        let tail = ledger.entries("run-a", 3).unwrap();
        assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
        assert!(ledger.entries("no-such-run", 0).unwrap().is_empty());
        assert!(
            matches!(
                ledger.verify_run("no-such-run"),
                Err(LedgerError::RunNotFound { .. })
            ),
            "{name}"
        );
    }
}

#[tokio::test]
async fn payloads_read_back_exactly_and_hash_canonically() {
    for (name, ledger, _dir) in ledgers() {
        let payload = json!({
            "floats": [0.1, 1e-7, -0.0, 5e-324, 0.30000000000000004],
            "ints": [u64::MAX, i64::MIN, 0],
            "text": "ünïcødé \u{0} \" \\ \n",
            "nested": { "z": null, "a": [true, false, {}] },
        });
        let written = ledger
            .append("floats", vec![entry("note", payload.clone())], vec![])
            .await
            .unwrap();
        let read = ledger.entries("floats", 0).unwrap();
        assert_eq!(read, written, "{name}");
        assert_eq!(read[0].payload, payload, "{name}");
        assert_eq!(
            read[0].hash,
            praxis_ledger::entry_hash("floats", 1, "note", &read[0].at, &payload, GENESIS_HASH),
            "{name}"
        );
    }
}

#[tokio::test]
async fn invalid_run_ids_and_entries_are_refused_and_nothing_of_the_append_is_kept() {
    for (name, ledger, _dir) in ledgers() {
        for bad in ["", "a/b", "run id", &"x".repeat(300)] {
            let result = ledger.append(bad, notes(1, 1), vec![]).await;
            assert!(
                matches!(result, Err(LedgerError::InvalidRunId { .. })),
                "{name}: {bad:?} -> {result:?}"
            );
        }
        let mut batch = notes(1, 2);
        batch.push(NewEntry {
            kind: "note".into(),
            payload: json!({}),
            at: "yesterday".into(),
        });
        let result = ledger.append("r", batch, vec![b"blob".to_vec()]).await;
        assert!(
            matches!(result, Err(LedgerError::InvalidEntry { index: 2, .. })),
            "{name}: {result:?}"
        );
        assert!(ledger.entries("r", 0).unwrap().is_empty(), "{name}");
        let bad_kind = vec![entry("no spaces", json!({}))];
        assert!(matches!(
            ledger.append("r", bad_kind, vec![]).await,
            Err(LedgerError::InvalidEntry { index: 0, .. })
        ));
    }
}

#[tokio::test]
async fn blobs_are_stored_once_under_their_content_address() {
    for (name, ledger, _dir) in ledgers() {
        let before = ledger.blob_bytes().unwrap();
        ledger
            .append("b", notes(1, 1), vec![b"hello".to_vec(), b"hello".to_vec()])
            .await
            .unwrap();
        ledger
            .append("c", notes(1, 1), vec![b"hello".to_vec(), b"abc".to_vec()])
            .await
            .unwrap();
        let id = praxis_core::blob_id(b"hello");
        assert_eq!(
            ledger.blob(&id).unwrap().as_deref(),
            Some(&b"hello"[..]),
            "{name}"
        );
        assert_eq!(ledger.blob("0".repeat(64).as_str()).unwrap(), None);
        assert_eq!(ledger.blob_bytes().unwrap() - before, 8, "{name}");
    }
}

#[tokio::test]
async fn runs_are_listed_newest_first_with_their_finish_and_resume() {
    for (name, ledger, _dir) in ledgers() {
        let at = |s: &str| NewEntry {
            kind: "run_started".into(),
            payload: json!({ "task": s }),
            at: format!("2026-11-21T10:00:0{s}.000Z"),
        };
        ledger.append("old", vec![at("1")], vec![]).await.unwrap();
        ledger.append("new", vec![at("2")], vec![]).await.unwrap();
        let finished = NewEntry::now("run_finished", json!({ "status": "completed" }));
        let resumed = NewEntry::now("run_resumed", json!({ "pid": 7 }));
        ledger
            .append("old", vec![resumed, finished], vec![])
            .await
            .unwrap();
        let runs = ledger.runs().unwrap();
        let ids: Vec<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, ["new", "old"], "{name}");
        let old = &runs[1];
        assert_eq!(old.started, json!({ "task": "1" }));
        assert_eq!(
            old.finished,
            Some(json!({ "status": "completed" })),
            "{name}"
        );
        assert_eq!(old.resumed, Some(json!({ "pid": 7 })), "{name}");
        assert_eq!((old.last_seq, old.last_kind.as_str()), (3, "run_finished"));
        assert_eq!(runs[0].finished, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_to_one_run_stay_chained() {
    for (name, ledger, _dir) in ledgers() {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let ledger = ledger.clone();
                tokio::spawn(async move { ledger.append("busy", notes(i * 4, 4), vec![]).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let all = ledger.entries("busy", 0).unwrap();
        assert_chained(&all, "busy", 32);
        assert_eq!(
            ledger.verify_run("busy").unwrap(),
            VerifyReport::Intact { entries: 32 },
            "{name}"
        );
    }
}
