//! Offline verification of an export: chains with signed checkpoints, as
//! `praxis ledger export` writes them, and the edits an attacker might make.

use praxis_ledger::checkpoint::{
    CHECKPOINT_KIND, CheckpointKey, checkpoint_payload, parse_export, verify_export,
};
use praxis_ledger::{Entry, GENESIS_HASH, entry_hash};
use serde_json::{Value, json};

/// Appends an entry to `chain` (of run `run_id`), linking and hashing it as the ledger does.
fn push(chain: &mut Vec<Entry>, run_id: &str, kind: &str, payload: Value) {
    let seq = chain.len() as u64 + 1;
    let prev_hash = chain
        .last()
        .map_or(GENESIS_HASH.to_string(), |e| e.hash.clone());
    let at = format!("2026-11-21T10:00:{:02}.000Z", seq % 60);
    let hash = entry_hash(run_id, seq, kind, &at, &payload, &prev_hash);
    chain.push(Entry {
        run_id: run_id.into(),
        seq,
        kind: kind.into(),
        at,
        prev_hash,
        hash,
        payload,
    });
}

fn push_checkpoint(chain: &mut Vec<Entry>, run_id: &str, key: &CheckpointKey) {
    let head = chain.last().unwrap();
    let payload = checkpoint_payload(key, run_id, head.seq, &head.hash);
    push(chain, run_id, CHECKPOINT_KIND, payload);
}

/// A run of `n` entries with a checkpoint in the middle and one at the end.
fn run(run_id: &str, n: u64, key: &CheckpointKey) -> Vec<Entry> {
    let mut chain = Vec::new();
    for i in 1..=n {
        push(
            &mut chain,
            run_id,
            "note",
            json!({ "i": i, "text": format!("entry {i}") }),
        );
        if i == n / 2 {
            push_checkpoint(&mut chain, run_id, key);
        }
    }
    push_checkpoint(&mut chain, run_id, key);
    chain
}

fn export(entries: &[Entry]) -> String {
    entries
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect()
}

fn problem(entries: &[Entry], key: &CheckpointKey) -> String {
    let report = verify_export(entries, &key.public_hex());
    assert!(!report.ok(), "{report:?}");
    report
        .runs
        .iter()
        .find_map(|r| r.problem.clone())
        .expect("a failing run names its problem")
}

#[test]
fn an_intact_export_of_two_runs_verifies() {
    let key = CheckpointKey::generate().unwrap();
    let mut entries = run("run-a", 6, &key);
    entries.extend(run("run-b", 3, &key));
    let parsed = parse_export(&export(&entries)).unwrap();
    assert_eq!(parsed, entries);
    let report = verify_export(&parsed, &key.public_hex());
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.runs.len(), 2);
    assert_eq!(report.runs[0].run_id, "run-a");
    assert_eq!(report.runs[0].entries, 8);
    assert_eq!(report.runs[0].checkpoints, 2);
    assert_eq!(report.runs[1].checkpoints, 2);
}

#[test]
fn a_one_byte_edit_in_any_payload_is_caught() {
    let key = CheckpointKey::generate().unwrap();
    let good = run("run-a", 6, &key);
    for index in 0..good.len() {
        let text = export(&good);
        let line = serde_json::to_string(&good[index]).unwrap();
        // Change the first character of the payload's first string value.
        let payload_at = line.find("\"payload\":").unwrap();
        let target = payload_at + line[payload_at..].find(":\"").unwrap() + 2;
        let mut bytes = line.clone().into_bytes();
        bytes[target] = if bytes[target] == b'1' { b'2' } else { b'1' };
        let edited_line = String::from_utf8(bytes).unwrap();
        let edited = text.replacen(&line, &edited_line, 1);
        assert_ne!(edited, text);
        let entries = parse_export(&edited).unwrap();
        let p = problem(&entries, &key);
        assert!(p.contains(&format!("seq {}", good[index].seq)), "{p}");
    }
}

#[test]
fn a_payload_edit_with_rehashed_chain_is_caught_by_the_signature() {
    let key = CheckpointKey::generate().unwrap();
    let good = run("run-a", 4, &key);
    // Rewrite entry 1 and recompute every hash after it: the chain is consistent again,
    // but the checkpoints no longer sign its head.
    let mut forged = Vec::new();
    for entry in &good {
        let mut payload = entry.payload.clone();
        if entry.seq == 1 {
            payload = json!({ "i": 1, "text": "forged" });
        }
        push(&mut forged, "run-a", &entry.kind, payload);
    }
    let p = problem(&forged, &key);
    assert!(p.contains("checkpoint"), "{p}");
}

#[test]
fn dropping_the_final_checkpoint_or_more_is_caught() {
    let key = CheckpointKey::generate().unwrap();
    let good = run("run-a", 6, &key);
    let p = problem(&good[..good.len() - 1], &key);
    assert!(
        p.contains("the last 3 entries of run run-a are not covered by a signed checkpoint"),
        "{p}"
    );
    let p = problem(&good[..good.len() - 2], &key);
    assert!(p.contains("the last 2 entries"), "{p}");
}

#[test]
fn a_checkpoint_signed_by_another_key_is_caught_and_names_that_key() {
    let key = CheckpointKey::generate().unwrap();
    let other = CheckpointKey::generate().unwrap();
    let mut entries = run("run-a", 4, &key);
    entries.pop();
    push_checkpoint(&mut entries, "run-a", &other);
    let p = problem(&entries, &key);
    assert!(p.contains(&other.public_hex()[..16]), "{p}");
    assert!(p.contains(&format!("seq {}", entries.len())), "{p}");
    // Claiming the trusted key while signing with another: the signature fails.
    let mut entries = run("run-a", 4, &key);
    let last = entries.pop().unwrap();
    push_checkpoint(&mut entries, "run-a", &other);
    let mut payload = entries.pop().unwrap().payload;
    payload["key"] = last.payload["key"].clone();
    push(&mut entries, "run-a", CHECKPOINT_KIND, payload);
    let p = problem(&entries, &key);
    assert!(p.contains("signature does not verify"), "{p}");
}

#[test]
fn a_malformed_line_or_bad_key_is_refused() {
    let e = parse_export("{\"run_id\":\"x\"}\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 1"), "{e}");
    let key = CheckpointKey::generate().unwrap();
    let report = verify_export(&run("r", 2, &key), "not-a-key");
    assert!(!report.ok());
    assert!(verify_export(&[], &key.public_hex()).runs.is_empty());
    assert!(!verify_export(&[], &key.public_hex()).ok());
}
