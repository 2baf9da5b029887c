//! The ledger suite every backend must pass: SQLite always, PostgreSQL when
//! `PRAXIS_TEST_POSTGRES_URL` is set (`.ci/postgres` sets it; under `CI=true` it must be).

mod common;

use common::{Backend, assert_chained, entry, notes};
use praxis_ledger::{Ledger, LedgerError, NewEntry, VerifyReport};
use serde_json::json;
use std::sync::Arc;

/// Run by `.ci/postgres` (`--include-ignored`): there PostgreSQL must not be skipped.
#[test]
#[ignore = "needs PostgreSQL: run by .ci/postgres"]
fn postgres_backend_is_present() {
    let names: Vec<_> = Backend::all().iter().map(|b| b.name()).collect();
    assert_eq!(
        names,
        ["sqlite", "postgres"],
        "{} must name a PostgreSQL server",
        common::POSTGRES_URL_VAR
    );
}

#[tokio::test]
async fn batches_to_two_runs_form_two_intact_chains() {
    for backend in Backend::all() {
        let ledger = backend.open();
        let a1 = ledger.append("run-a", notes(1, 3), vec![]).await.unwrap();
        let b1 = ledger.append("run-b", notes(1, 2), vec![]).await.unwrap();
        let a2 = ledger.append("run-a", notes(4, 2), vec![]).await.unwrap();
        let b2 = ledger.append("run-b", notes(3, 1), vec![]).await.unwrap();

        // What append returned is what is stored.
        let a = ledger.entries("run-a", 0).unwrap();
        let b = ledger.entries("run-b", 0).unwrap();
        assert_eq!(a, [a1, a2].concat(), "{}", backend.name());
        assert_eq!(b, [b1, b2].concat());
        assert_chained(&a, "run-a", 5);
        assert_chained(&b, "run-b", 3);
        assert_eq!(a[3].payload, json!({ "i": 4 }));
        assert_eq!(
            ledger.verify_run("run-a").unwrap(),
            VerifyReport::Intact { entries: 5 }
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
        assert_eq!(
            (stats.entries, stats.requests),
            (8, 4),
            "{}",
            backend.name()
        );
    }
}

#[tokio::test]
async fn payloads_read_back_exactly_including_floats() {
    for backend in Backend::all() {
        let ledger = backend.open();
        let payload = json!({
            "floats": [0.1, 1e-7, 1.2345678901234567e300, -0.0, 5e-324, 0.30000000000000004],
            "ints": [u64::MAX, i64::MIN, 0],
            "text": "ünïcødé \u{1} \" \\ \n",
            "nested": { "z": null, "a": [true, false, {}] },
        });
        let written = ledger
            .append("floats", vec![entry("note", payload.clone())], vec![])
            .await
            .unwrap();
        // A new handle reads what the database holds, not a cache.
        drop(ledger);
        let ledger = backend.open();
        let read = ledger.entries("floats", 0).unwrap();
        assert_eq!(read, written, "{}", backend.name());
        assert_eq!(read[0].payload, payload);
        assert_eq!(
            ledger.verify_run("floats").unwrap(),
            VerifyReport::Intact { entries: 1 }
        );
    }
}

fn five_entry_run(backend: &Backend) {
    let ledger = backend.open();
    ledger.append_now("t", notes(1, 5), vec![]).unwrap();
}

fn broken_seq(backend: &Backend) -> (u64, String) {
    match backend.open().verify_run("t").unwrap() {
        VerifyReport::Broken { seq, problem } => (seq, problem),
        intact => panic!("{}: tampering went unnoticed: {intact:?}", backend.name()),
    }
}

#[test]
fn tampering_with_the_store_is_located_at_the_first_bad_seq() {
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
        for backend in Backend::all() {
            five_entry_run(&backend);
            assert_eq!(
                backend.open().verify_run("t").unwrap(),
                VerifyReport::Intact { entries: 5 }
            );
            backend.tamper(sql);
            let (found, problem) = broken_seq(&backend);
            assert_eq!(found, seq, "{}: {sql}: {problem}", backend.name());
            assert!(problem.contains(word), "{sql}: {problem}");
        }
    }
}

#[test]
fn rewriting_an_entry_with_a_recomputed_hash_breaks_the_next_link() {
    for backend in Backend::all() {
        five_entry_run(&backend);
        let mut forged = backend.open().entries("t", 0).unwrap()[1].clone();
        forged.payload = json!({ "i": "forged" });
        forged.hash = forged.computed_hash();
        backend.tamper(&format!(
            "UPDATE entries SET payload = '{}', hash = '{}' WHERE run_id = 't' AND seq = 2",
            serde_json::to_string(&forged.payload).unwrap(),
            forged.hash
        ));
        let (seq, problem) = broken_seq(&backend);
        assert_eq!(seq, 3, "{}: {problem}", backend.name());
        assert!(problem.contains("prev_hash"), "{problem}");
    }
}

#[test]
fn the_database_refuses_update_delete_and_overwrite() {
    for backend in Backend::all() {
        let ledger = backend.open();
        ledger
            .append_now("r", notes(1, 2), vec![b"blob".to_vec()])
            .unwrap();
        let mut statements = vec![
            "UPDATE entries SET payload = '{}' WHERE seq = 1",
            "DELETE FROM entries WHERE seq = 2",
            "UPDATE blobs SET data = 'x'",
            "DELETE FROM blobs",
        ];
        statements.extend(match backend {
            // INSERT OR REPLACE deletes the old row first: refused too.
            Backend::Sqlite { .. } => [
                "INSERT OR REPLACE INTO entries (run_id, seq, kind, at, payload, prev_hash, hash)
                     SELECT run_id, seq, kind, at, '{}', prev_hash, hash FROM entries WHERE seq = 1",
            ]
            .as_slice(),
            Backend::Postgres { .. } => [
                "TRUNCATE entries",
                "TRUNCATE blobs",
                "INSERT INTO entries (run_id, seq, kind, at, payload, prev_hash, hash)
                     SELECT run_id, seq, kind, at, '{}', prev_hash, hash FROM entries WHERE seq = 1
                     ON CONFLICT (run_id, seq) DO UPDATE SET payload = excluded.payload",
            ]
            .as_slice(),
        });
        for sql in statements {
            let err = backend.execute(sql).unwrap_err();
            assert!(
                err.contains("append-only"),
                "{}: {sql}: {err}",
                backend.name()
            );
        }
        // A plain insert of an existing seq collides.
        assert!(
            backend
                .execute(
                    "INSERT INTO entries (run_id, seq, kind, at, payload, prev_hash, hash)
                     SELECT run_id, seq, kind, at, '{}', prev_hash, hash FROM entries WHERE seq = 1",
                )
                .is_err()
        );
        assert_eq!(
            ledger.blob(&praxis_core::blob_id(b"blob")).unwrap(),
            Some(b"blob".to_vec())
        );
        assert_eq!(
            ledger.verify_run("r").unwrap(),
            VerifyReport::Intact { entries: 2 }
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_appends_are_committed_together() {
    for backend in Backend::all() {
        let ledger: Arc<dyn common::Store> = Arc::from(backend.open());
        ledger.append("g", notes(0, 1), vec![]).await.unwrap();
        let before = ledger.stats();
        let pause = ledger.pause_writer();
        // The writer takes the first request and waits; the rest queue behind it.
        let first = ledger.append("g", notes(1, 1), vec![]);
        let tasks: Vec<_> = (2..=32)
            .map(|i| tokio::spawn(ledger.append("g", notes(i, 1), vec![])))
            .collect();
        drop(pause);
        let mut seqs = vec![first.await.unwrap()[0].seq];
        for task in tasks {
            seqs.push(task.await.unwrap().unwrap()[0].seq);
        }
        let after = ledger.stats();
        assert_eq!(
            after.commits - before.commits,
            1,
            "{}: {before:?} -> {after:?}",
            backend.name()
        );
        assert_eq!(after.requests - before.requests, 32);
        seqs.sort_unstable();
        assert_eq!(seqs, (2..=33).collect::<Vec<u64>>());
        assert_chained(&ledger.entries("g", 0).unwrap(), "g", 33);
    }
}

#[tokio::test]
async fn a_failing_request_does_not_fail_the_rest_of_its_group() {
    for backend in Backend::all() {
        let ledger = backend.open();
        let before = ledger.stats();
        let orphan = b"only in a failed request".to_vec();
        let pause = ledger.pause_writer();
        let ok_first = ledger.append("ok", notes(1, 1), vec![]);
        // Its first entry and its blob are written before the second entry fails: both
        // must be rolled back.
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
        assert!(matches!(
            bad_kind.await,
            Err(LedgerError::InvalidEntry { index: 1, .. })
        ));
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
        assert_eq!(after.requests - before.requests, 5, "{}", backend.name());
        assert_eq!(after.entries - before.entries, 3);
        assert_eq!(after.blobs - before.blobs, 1);
        assert_eq!(ledger.entries("mixed", 0).unwrap(), kept);
        assert_eq!(ledger.blob(&praxis_core::blob_id(&orphan)).unwrap(), None);
    }
}

#[tokio::test]
async fn reopening_continues_the_chain_and_lists_runs_newest_first() {
    let at = |t: &str| format!("2026-11-21T{t}.000Z");
    for backend in Backend::all() {
        {
            let ledger = backend.open();
            let first = NewEntry {
                kind: "run_started".into(),
                payload: json!({ "task": "old" }),
                at: at("10:00:00"),
            };
            ledger.append("old", vec![first], vec![]).await.unwrap();
        }
        let ledger = backend.open();
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

        let ledger = backend.open();
        assert_chained(&ledger.entries("old", 0).unwrap(), "old", 2);
        let runs = ledger.runs().unwrap();
        let ids: Vec<_> = runs.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, ["new", "old"], "{}", backend.name());
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
}

#[test]
fn find_run_resolves_unique_prefixes() {
    for backend in Backend::all() {
        let ledger = backend.open();
        for id in ["abc123", "abc456", "xyz", "ab"] {
            ledger.append_now(id, notes(1, 1), vec![]).unwrap();
        }
        assert_eq!(ledger.find_run("abc1").unwrap(), "abc123");
        assert_eq!(ledger.find_run("x").unwrap(), "xyz");
        // An exact id wins over the longer ids it is a prefix of.
        assert_eq!(ledger.find_run("ab").unwrap(), "ab");
        match ledger.find_run("abc") {
            Err(e @ LedgerError::AmbiguousRun { .. }) => {
                let message = e.to_string();
                assert!(message.contains("abc123, abc456"), "{message}");
                assert!(message.contains(&ledger.location()), "{message}");
            }
            other => panic!("expected AmbiguousRun, got {other:?}"),
        }
        assert!(matches!(
            ledger.find_run("nope"),
            Err(LedgerError::RunNotFound { prefix, .. }) if prefix == "nope"
        ));
        // LIKE/GLOB metacharacters are not wildcards.
        for pattern in ["a%", "a_c", "a*"] {
            assert!(
                matches!(
                    ledger.find_run(pattern),
                    Err(LedgerError::RunNotFound { .. })
                ),
                "{}: {pattern}",
                backend.name()
            );
        }
        assert!(matches!(
            ledger.find_run(""),
            Err(LedgerError::InvalidRunId { .. })
        ));
    }
}

#[test]
fn blobs_are_stored_once_summed_and_verified() {
    for backend in Backend::all() {
        let ledger = backend.open();
        let hello = b"hello".to_vec();
        let world = vec![0u8, 255, 1, 2];
        ledger
            .append_now(
                "b",
                notes(1, 1),
                vec![hello.clone(), hello.clone(), world.clone()],
            )
            .unwrap();
        assert_eq!(ledger.stats().blobs, 2, "{}", backend.name());
        // Blobs alone, without entries.
        ledger.append_now("b", vec![], vec![hello.clone()]).unwrap();
        assert_eq!(ledger.stats().blobs, 2);
        let hello_id = praxis_core::blob_id(&hello);
        let world_id = praxis_core::blob_id(&world);
        assert_eq!(ledger.blob(&hello_id).unwrap(), Some(hello));
        assert_eq!(ledger.blob(&world_id).unwrap(), Some(world));
        assert_eq!(ledger.blob(&"f".repeat(64)).unwrap(), None);
        assert_eq!(ledger.blob_bytes().unwrap(), 9);
        let mut ids = vec![hello_id.clone(), world_id];
        ids.sort();
        assert_eq!(ledger.blob_ids().unwrap(), ids);
        assert!(ledger.verify_blobs().unwrap().is_empty());

        let hex_jello = "6a656c6c6f";
        backend.tamper(&match backend {
            Backend::Sqlite { .. } => {
                format!("UPDATE blobs SET data = x'{hex_jello}' WHERE id = '{hello_id}'")
            }
            Backend::Postgres { .. } => {
                format!("UPDATE blobs SET data = '\\x{hex_jello}' WHERE id = '{hello_id}'")
            }
        });
        assert_eq!(ledger.verify_blobs().unwrap(), vec![hello_id]);
    }
}

/// Two handles (two servers, or two processes) appending to one run at once keep it one
/// chain: each append reads the head inside its own transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_appending_to_one_run_keep_it_chained() {
    for backend in Backend::all() {
        let a: Arc<dyn common::Store> = Arc::from(backend.open());
        let b: Arc<dyn common::Store> = Arc::from(backend.open());
        let mut tasks = Vec::new();
        for i in 0..40 {
            let handle = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(handle.append("shared", notes(i, 2), vec![])));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_chained(&a.entries("shared", 0).unwrap(), "shared", 80);
        assert_eq!(
            b.verify_run("shared").unwrap(),
            VerifyReport::Intact { entries: 80 },
            "{}",
            backend.name()
        );
    }
}

/// `praxis ledger copy`: a SQLite store moves into each backend with every hash unchanged,
/// a second copy adds nothing, and a source whose chain is broken is refused.
#[tokio::test]
async fn a_sqlite_store_copies_into_every_backend_hash_for_hash() {
    use praxis_ledger::copy::{CopyError, copy_all};
    let dir = tempfile::tempdir().unwrap();
    let source = praxis_ledger::SqliteLedger::open(&dir.path().join("ledger.db")).unwrap();
    source
        .append("first", notes(1, 3), vec![b"one".to_vec(), b"two".to_vec()])
        .await
        .unwrap();
    source
        .append("second", vec![entry("note", json!({ "f": 0.1 }))], vec![])
        .await
        .unwrap();
    for backend in Backend::all() {
        let target = backend.open();
        // The source grows below, so each backend finds more in it.
        let total = ["first", "second"]
            .iter()
            .map(|run| source.entries(run, 0).unwrap().len() as u64)
            .sum::<u64>();
        let report = copy_all(&source, target.as_ref()).await.unwrap();
        assert_eq!(
            (report.runs, report.entries, report.blobs),
            (2, total, 2),
            "{}",
            backend.name()
        );
        for run in ["first", "second"] {
            assert_eq!(
                target.entries(run, 0).unwrap(),
                source.entries(run, 0).unwrap()
            );
        }
        assert_eq!(
            target.blob(&praxis_core::blob_id(b"two")).unwrap(),
            Some(b"two".to_vec())
        );
        let again = copy_all(&source, target.as_ref()).await.unwrap();
        assert_eq!(
            (again.entries, again.blobs, again.runs_already_there),
            (0, 0, 2)
        );
        // More in the source later: only the new tail moves.
        source.append("first", notes(4, 1), vec![]).await.unwrap();
        let tail = copy_all(&source, target.as_ref()).await.unwrap();
        assert_eq!(tail.entries, 1);
        assert_eq!(
            target.entries("first", 0).unwrap(),
            source.entries("first", 0).unwrap()
        );
    }
    // A target that holds something else under a run id keeps it and says so.
    for backend in Backend::all() {
        let target = backend.open();
        target.append_now("second", notes(9, 1), vec![]).unwrap();
        assert!(matches!(
            copy_all(&source, target.as_ref()).await,
            Err(CopyError::Diverged { seq: 1, .. })
        ));
    }
    drop(source);
    let conn = rusqlite::Connection::open(dir.path().join("ledger.db")).unwrap();
    conn.execute_batch(
        "DROP TRIGGER entries_no_update; UPDATE entries SET payload = '{\"i\":7}' WHERE run_id = 'first' AND seq = 2",
    )
    .unwrap();
    let source = praxis_ledger::SqliteLedger::open(&dir.path().join("ledger.db")).unwrap();
    for backend in Backend::all() {
        let target = backend.open();
        assert!(matches!(
            copy_all(&source, target.as_ref()).await,
            Err(CopyError::SourceBroken { seq: 2, .. })
        ));
        assert!(target.entries("first", 0).unwrap().is_empty());
    }
}

/// The token store of `backend`'s database, through the handle a server uses.
fn tokens(backend: &Backend) -> praxis_ledger::tokens::TokenStore {
    match backend {
        Backend::Sqlite { path, .. } => praxis_ledger::tokens::TokenStore::open(path).unwrap(),
        Backend::Postgres { .. } => {
            Arc::new(praxis_ledger::PostgresLedger::connect(&backend.url()).unwrap()).tokens()
        }
    }
}

#[test]
fn an_accepted_run_is_kept_with_its_owner_until_forgotten() {
    for backend in Backend::all() {
        let (a, b) = (tokens(&backend), tokens(&backend));
        assert!(a.accepted_runs().unwrap().is_empty(), "{}", backend.name());
        a.accept_run("r1", "acme", r#"{"task":"one"}"#).unwrap();
        a.accept_run("r2", "globex", r#"{"task":"two"}"#).unwrap();
        // Seen by another handle (another server or a restarted one), with the owner.
        let accepted = b.accepted_runs().unwrap();
        let seen: Vec<_> = accepted
            .iter()
            .map(|r| (r.run_id.as_str(), r.tenant.as_str(), r.request.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("r1", "acme", r#"{"task":"one"}"#),
                ("r2", "globex", r#"{"task":"two"}"#)
            ],
            "{}",
            backend.name()
        );
        assert_eq!(b.run_tenant("r2").unwrap().as_deref(), Some("globex"));
        b.forget_accepted("r1").unwrap();
        b.forget_accepted("never-accepted").unwrap();
        let left: Vec<_> = a
            .accepted_runs()
            .unwrap()
            .into_iter()
            .map(|r| r.run_id)
            .collect();
        assert_eq!(left, ["r2"], "{}", backend.name());
        // The owner stays: it decides who may read the run for good.
        assert_eq!(a.run_tenant("r1").unwrap().as_deref(), Some("acme"));
    }
}

/// An attested batch: its entries, then the entry its `Attest` makes of the last of them (here
/// a checkpoint signing it), chained, in one commit; an empty batch attests nothing. The same
/// from the in-memory ledger.
#[tokio::test]
async fn an_attested_batch_and_its_attestation_are_one_commit() {
    use praxis_ledger::checkpoint::{
        CHECKPOINT_KIND, CheckpointKey, checkpoint_payload, verify_export,
    };
    use praxis_ledger::{Attest, Entry, MemoryLedger};
    let key = Arc::new(CheckpointKey::generate().unwrap());
    let signing = key.clone();
    let attest: Attest = Arc::new(move |head: &Entry| {
        NewEntry::now(
            CHECKPOINT_KIND,
            checkpoint_payload(&signing, &head.run_id, head.seq, &head.hash),
        )
    });
    let check = |name: &str, got: Vec<Entry>, all: Vec<Entry>| {
        let kinds: Vec<&str> = got.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["note", "note", CHECKPOINT_KIND], "{name}");
        assert_chained(&all, "att", 5);
        assert_eq!(all[3..], got[1..], "{name}");
        let report = verify_export(&all, &key.public_hex());
        assert!(report.ok(), "{name}: {report:?}");
    };
    for backend in Backend::all() {
        let ledger: Arc<dyn common::Store> = Arc::from(backend.open());
        ledger.append("att", notes(1, 2), vec![]).await.unwrap();
        let before = ledger.stats();
        let got = ledger
            .append_attested("att", notes(3, 2), vec![], Some(attest.clone()))
            .await
            .unwrap();
        let after = ledger.stats();
        assert_eq!(
            (
                after.commits - before.commits,
                after.entries - before.entries
            ),
            (1, 3),
            "{}",
            backend.name()
        );
        check(backend.name(), got, ledger.entries("att", 0).unwrap());
        let nothing = ledger
            .append_attested("att", vec![], vec![], Some(attest.clone()))
            .await
            .unwrap();
        assert!(nothing.is_empty(), "{}", backend.name());
        assert_eq!(ledger.entries("att", 0).unwrap().len(), 5);
    }
    let memory = MemoryLedger::new();
    memory.append("att", notes(1, 2), vec![]).await.unwrap();
    let got = memory
        .append_attested("att", notes(3, 2), vec![], Some(attest))
        .await
        .unwrap();
    check("memory", got, memory.entries("att", 0).unwrap());
}
