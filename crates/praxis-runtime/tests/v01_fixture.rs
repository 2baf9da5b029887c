//! Records written by v0.1 stay readable, byte for byte: the data dir in `fixtures/v0.1/`
//! was made by the v0.1 binary (before records were typed). Every chain verifies, every run
//! exports the same bytes, replays to a match, reads back as typed records that serialize to
//! the same canonical JSON (so the same hashes), and the export verifies offline.

use praxis_core::Record;
use praxis_core::record::FeedEvent;
use praxis_ledger::checkpoint::{parse_export, verify_export};
use praxis_ledger::{Ledger, SqliteLedger, VerifyReport, canonical_json, entry_hash};
use praxis_runtime::replay::{ReplayReport, replay};
use praxis_tools::Registry;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0.1")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The fixture's data dir, copied (opening a ledger may write to it).
fn ledger() -> (tempfile::TempDir, SqliteLedger) {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture().join("home"), dir.path());
    let ledger = SqliteLedger::open(&dir.path().join("ledger.db")).unwrap();
    (dir, ledger)
}

fn run_ids(ledger: &SqliteLedger) -> Vec<String> {
    let mut ids: Vec<String> = ledger
        .runs()
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    ids.sort();
    ids
}

#[test]
fn v01_chains_verify_and_export_byte_for_byte() {
    let (_dir, ledger) = ledger();
    let ids = run_ids(&ledger);
    assert_eq!(
        ids.len(),
        11,
        "the fixture holds 10 runs and one delegated child"
    );
    let mut export = Vec::new();
    for run_id in &ids {
        assert!(
            matches!(
                ledger.verify_run(run_id).unwrap(),
                VerifyReport::Intact { .. }
            ),
            "{run_id}"
        );
        // `praxis ledger export RUN`: one serialized entry per line.
        for entry in ledger.entries(run_id, 0).unwrap() {
            serde_json::to_writer(&mut export, &entry).unwrap();
            export.push(b'\n');
        }
    }
    let committed = std::fs::read(fixture().join("export.jsonl")).unwrap();
    assert!(export == committed, "the export differs from v0.1's");
}

#[test]
fn v01_export_verifies_offline_with_the_public_key() {
    let text = std::fs::read_to_string(fixture().join("export.jsonl")).unwrap();
    let key = std::fs::read_to_string(fixture().join("runtime.pub")).unwrap();
    let report = verify_export(&parse_export(&text).unwrap(), &key);
    assert_eq!(report.runs.len(), 11);
    assert!(report.ok(), "{report:?}");
}

#[test]
fn v01_runs_replay_to_a_match() {
    let (_dir, ledger) = ledger();
    for run_id in run_ids(&ledger) {
        match replay(&ledger, Arc::new(Registry::builtin()), &run_id).unwrap() {
            ReplayReport::Matched {
                unfinished: None, ..
            } => {}
            other => panic!("run {run_id} does not replay: {other:?}"),
        }
    }
}

/// Every v0.1 payload reads into a typed record and writes back identical: same JSON, same
/// canonical form, same entry hash.
#[test]
fn v01_payloads_round_trip_through_typed_records() {
    let text = std::fs::read_to_string(fixture().join("export.jsonl")).unwrap();
    let entries = parse_export(&text).unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    for entry in &entries {
        let record = Record::from_entry(&entry.kind, &entry.payload)
            .unwrap_or_else(|e| panic!("{} seq {}: {e}", entry.run_id, entry.seq));
        kinds.insert(record.kind());
        let again = record.to_payload();
        assert_eq!(again, entry.payload, "{} seq {}", entry.run_id, entry.seq);
        assert_eq!(canonical_json(&again), canonical_json(&entry.payload));
        let hash = entry_hash(
            &entry.run_id,
            entry.seq,
            record.kind(),
            &entry.at,
            &again,
            &entry.prev_hash,
        );
        assert_eq!(hash, entry.hash, "{} seq {}", entry.run_id, entry.seq);
    }
    // The fixture covers every kind.
    assert_eq!(kinds.len(), 13, "{kinds:?}");
}

/// Each export line (the data of a feed entry event) has the shape the published feed
/// schema describes ([`FeedEvent`]).
#[test]
fn v01_export_lines_are_feed_entry_events() {
    let text = std::fs::read_to_string(fixture().join("export.jsonl")).unwrap();
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let event: FeedEvent = serde_json::from_value(value.clone()).unwrap();
        assert!(matches!(event, FeedEvent::Entry(_)), "{line}");
        assert_eq!(serde_json::to_value(&event).unwrap(), value);
    }
}
