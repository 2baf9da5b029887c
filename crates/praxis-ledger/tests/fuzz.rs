//! Fuzz target (proptest; see tests/fuzz_support.rs at the workspace root for the modes):
//! offline verification of a ledger export. A mutated export never verifies, whatever was
//! changed: a byte of its text, an entry dropped, moved, duplicated or edited and rehashed.

#[path = "../../../tests/fuzz_support.rs"]
mod fuzz_support;

use fuzz_support::{fuzz, mutate, mutations};
use praxis_ledger::checkpoint::{
    CHECKPOINT_KIND, CheckpointKey, checkpoint_payload, parse_export, verify_export,
};
use praxis_ledger::{Entry, GENESIS_HASH, entry_hash};
use proptest::prelude::*;
use serde_json::{Value, json};

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

/// Two runs of `n` entries each, each with a checkpoint in the middle and one at the end.
fn export_of(key: &CheckpointKey, n: u64) -> Vec<Entry> {
    let mut all = Vec::new();
    for run_id in ["01run-a", "01run-b"] {
        let mut chain = Vec::new();
        for i in 1..=n {
            push(
                &mut chain,
                run_id,
                "note",
                json!({"i": i, "text": format!("entry {i}"), "n": 1.5}),
            );
            if i == n / 2 || i == n {
                let head = chain.last().unwrap();
                let payload = checkpoint_payload(key, run_id, head.seq, &head.hash);
                push(&mut chain, run_id, CHECKPOINT_KIND, payload);
            }
        }
        all.extend(chain);
    }
    all
}

fn text_of(entries: &[Entry]) -> String {
    entries
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect()
}

fn runs_of(entries: &[Entry]) -> Vec<&str> {
    let mut runs: Vec<&str> = entries.iter().map(|e| e.run_id.as_str()).collect();
    runs.sort();
    runs.dedup();
    runs
}

/// Every run of `entries` is a prefix of the same run in `original`: an earlier export, which
/// verifies when each run ends at a checkpoint (found by this target: a cut right after a
/// mid-run checkpoint is an export taken at that checkpoint).
fn is_earlier_export(entries: &[Entry], original: &[Entry]) -> bool {
    let (now, then) = (by_run(entries), by_run(original));
    now.len() == then.len() && now.iter().zip(&then).all(|(a, b)| b.starts_with(a))
}

/// Each run's entries in order: an export whose runs are interleaved differently is the same
/// export (verification groups by run).
fn by_run(entries: &[Entry]) -> Vec<Vec<&Entry>> {
    runs_of(entries)
        .into_iter()
        .map(|run| entries.iter().filter(|e| e.run_id == run).collect())
        .collect()
}

/// A change at the level of entries.
#[derive(Clone, Debug)]
enum Edit {
    Drop(usize),
    Duplicate(usize),
    Swap(usize, usize),
    /// Changes the payload and recomputes this entry's hash (not the ones after it).
    Rehash(usize),
    /// Rebuilds the whole chain of the entry's run from this entry on with the edit (the
    /// checkpoint signatures then no longer match).
    Rebuild(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::Drop),
        any::<usize>().prop_map(Edit::Duplicate),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::Swap(a, b)),
        any::<usize>().prop_map(Edit::Rehash),
        any::<usize>().prop_map(Edit::Rebuild),
    ]
}

fn apply(entries: &mut Vec<Entry>, edit: &Edit) {
    let n = entries.len();
    match *edit {
        Edit::Drop(i) => {
            entries.remove(i % n);
        }
        Edit::Duplicate(i) => {
            let e = entries[i % n].clone();
            entries.insert(i % n, e);
        }
        Edit::Swap(a, b) => entries.swap(a % n, b % n),
        Edit::Rehash(i) => {
            let e = &mut entries[i % n];
            e.payload = json!({"edited": true});
            e.hash = entry_hash(&e.run_id, e.seq, &e.kind, &e.at, &e.payload, &e.prev_hash);
        }
        Edit::Rebuild(i) => {
            let i = i % n;
            entries[i].payload = json!({"edited": true});
            let run = entries[i].run_id.clone();
            let mut prev = entries[i].prev_hash.clone();
            for e in entries.iter_mut().skip(i).filter(|e| e.run_id == run) {
                e.prev_hash = prev;
                e.hash = entry_hash(&e.run_id, e.seq, &e.kind, &e.at, &e.payload, &e.prev_hash);
                prev = e.hash.clone();
            }
        }
    }
}

#[test]
fn fuzz_a_mutated_export_never_verifies() {
    let key = CheckpointKey::generate().unwrap();
    let original = export_of(&key, 6);
    let text = text_of(&original);
    assert!(verify_export(&original, &key.public_hex()).ok());
    fuzz(
        "ledger export: text mutations",
        file!(),
        512,
        mutations(),
        |mutations| {
            let mutated = mutate(text.as_bytes(), &mutations);
            let Ok(mutated) = String::from_utf8(mutated) else {
                return Ok(());
            };
            let Ok(entries) = parse_export(&mutated) else {
                return Ok(());
            };
            // Text that reads back as the same entries (a space between JSON tokens, a
            // blank line) is the same export. A run left out entirely is not detectable
            // from the others (the README says so); the rest must fail.
            if by_run(&entries) == by_run(&original)
                || is_earlier_export(&entries, &original)
                || runs_of(&entries) != runs_of(&original)
            {
                return Ok(());
            }
            prop_assert!(
                !verify_export(&entries, &key.public_hex()).ok(),
                "a mutated export verified: {mutated}"
            );
            Ok(())
        },
    );
    fuzz(
        "ledger export: entry edits",
        file!(),
        512,
        proptest::collection::vec(edit(), 1..4),
        |edits| {
            let mut entries = original.clone();
            for e in &edits {
                if entries.is_empty() {
                    break;
                }
                apply(&mut entries, e);
            }
            if by_run(&entries) == by_run(&original)
                || is_earlier_export(&entries, &original)
                || runs_of(&entries) != runs_of(&original)
            {
                return Ok(());
            }
            prop_assert!(!verify_export(&entries, &key.public_hex()).ok());
            Ok(())
        },
    );
}
