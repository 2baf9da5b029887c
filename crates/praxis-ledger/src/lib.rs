//! Praxis ledger: the append-only, hash-chained record of every run.
//!
//! Each run is a chain of entries numbered from 1; every entry carries the hash of the
//! previous one (or [`GENESIS_HASH`] for seq 1) and its own hash, which covers every other
//! field. Payloads are opaque JSON here: the ledger knows nothing about models or tools.
//! Blobs (file contents and the like) are stored once under their content address.
//!
//! [`SqliteLedger`] is the embedded store: one writer thread with group commit, durable
//! (fsync'd) before an append resolves.

pub mod approvals;
pub mod cancels;
pub mod checkpoint;
mod connection;
pub mod copy;
mod error;
mod memory;
mod postgres;
mod read_only;
mod rows;
mod side_db;
mod side_schema;
mod sqlite;
pub mod tokens;

pub use error::LedgerError;
pub use memory::{MEMORY_PATH, MemoryLedger};
pub use postgres::{
    CANCELS_CHANNEL, ENTRIES_CHANNEL, LeaseState, Notice, PostgresLedger, is_postgres_url,
    redact_url,
};
pub use sqlite::{HealthReport, LedgerStats, SqliteLedger, WriterPause};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::pin::Pin;

/// `prev_hash` of the first entry of every run.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The entry kind whose payload [`RunRow::finished`] reports.
pub const RUN_FINISHED_KIND: &str = praxis_core::record::kinds::RUN_FINISHED;
/// Kind of the entry a new driver records when it takes over a run whose driver died.
pub const RUN_RESUMED_KIND: &str = praxis_core::record::kinds::RUN_RESUMED;

/// An entry to append; the ledger assigns run id, seq and hashes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewEntry {
    pub kind: String,
    pub payload: Value,
    /// RFC 3339 UTC time, as [`now_rfc3339`] writes it.
    pub at: String,
}

impl NewEntry {
    /// An entry stamped with the current time.
    pub fn now(kind: impl Into<String>, payload: Value) -> Self {
        NewEntry {
            kind: kind.into(),
            payload,
            at: now_rfc3339(),
        }
    }
}

/// Makes the entry appended after a batch from the batch's last entry, in the same
/// transaction: a run's checkpoint signing its head (see [`Ledger::append_attested`]).
pub type Attest = std::sync::Arc<dyn Fn(&Entry) -> NewEntry + Send + Sync>;

/// A batch's entries in order, then the entry its [`Attest`] makes of the last one
/// appended (none when nothing was): what each store's append loop takes, one at a time.
pub(crate) struct Pending {
    entries: std::iter::Enumerate<std::vec::IntoIter<NewEntry>>,
    attest: Option<Attest>,
}

impl Pending {
    pub(crate) fn new(entries: Vec<NewEntry>, attest: Option<Attest>) -> Self {
        Pending {
            entries: entries.into_iter().enumerate(),
            attest,
        }
    }

    /// The next entry to append and its index in the batch; `appended` is what this batch
    /// appended so far.
    pub(crate) fn next(&mut self, appended: &[Entry]) -> Option<(usize, NewEntry)> {
        if let Some(next) = self.entries.next() {
            return Some(next);
        }
        let attest = self.attest.take()?;
        let last = appended.last()?;
        Some((appended.len(), attest(last)))
    }
}

/// A recorded entry. Field order matters: `serde_json::to_string(&entry)` is the line format
/// of `praxis ledger export`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub run_id: String,
    pub seq: u64,
    pub kind: String,
    pub at: String,
    pub prev_hash: String,
    pub hash: String,
    pub payload: Value,
}

impl Entry {
    /// The hash this entry's contents call for (equal to `hash` unless it was tampered with).
    pub fn computed_hash(&self) -> String {
        entry_hash(
            &self.run_id,
            self.seq,
            &self.kind,
            &self.at,
            &self.payload,
            &self.prev_hash,
        )
    }
}

/// The result of checking a run's chain.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum VerifyReport {
    Intact { entries: u64 },
    Broken { seq: u64, problem: String },
}

/// One run as `runs()` lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunRow {
    pub run_id: String,
    /// `at` of the run's first entry.
    pub started_at: String,
    /// Payload of the run's first entry.
    pub started: Value,
    /// Payload of its `run_finished` entry, if any.
    pub finished: Option<Value>,
    /// Payload of its latest `run_resumed` entry, if a new driver took it over.
    pub resumed: Option<Value>,
    pub last_seq: u64,
    pub last_kind: String,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait Ledger: Send + Sync {
    /// Appends entries to a run (assigning seq, prev_hash, hash) together with content-addressed
    /// blobs, in ONE transaction; resolves only when that transaction is durable (fsync'd).
    /// The request is queued when this is called, not when the future is first polled.
    fn append(
        &self,
        run_id: &str,
        entries: Vec<NewEntry>,
        blobs: Vec<Vec<u8>>,
    ) -> BoxFuture<'static, Result<Vec<Entry>, LedgerError>> {
        self.append_attested(run_id, entries, blobs, None)
    }
    /// [`Ledger::append`], and with `attest`, after `entries` and in the same transaction,
    /// the entry it makes of the last of them (a run's checkpoint signing its head): the
    /// head and its attestation become durable together, with one commit. Resolves with
    /// every entry appended, the attestation last; nothing is attested when `entries` is
    /// empty. Each store implements this; `append` is this without `attest`.
    fn append_attested(
        &self,
        run_id: &str,
        entries: Vec<NewEntry>,
        blobs: Vec<Vec<u8>>,
        attest: Option<Attest>,
    ) -> BoxFuture<'static, Result<Vec<Entry>, LedgerError>>;
    /// The run's entries with `seq > after_seq`, ordered by seq.
    fn entries(&self, run_id: &str, after_seq: u64) -> Result<Vec<Entry>, LedgerError>;
    /// Every run, newest first.
    fn runs(&self) -> Result<Vec<RunRow>, LedgerError>;
    fn blob(&self, id: &str) -> Result<Option<Vec<u8>>, LedgerError>;
    /// Bytes of content in the blob store (every run of the data dir), for its cap.
    fn blob_bytes(&self) -> Result<u64, LedgerError>;
    fn verify_run(&self, run_id: &str) -> Result<VerifyReport, LedgerError>;
    /// Ids of stored blobs whose content no longer hashes to their id (or whose recorded
    /// size no longer matches).
    fn verify_blobs(&self) -> Result<Vec<String>, LedgerError>;
    /// Every stored blob id, in order (for copying a store).
    fn blob_ids(&self) -> Result<Vec<String>, LedgerError>;
    /// Resolves a full run id or a unique prefix of one.
    fn find_run(&self, prefix: &str) -> Result<String, LedgerError>;
    /// Where the store is, for messages: a file path, or a database URL without password.
    fn location(&self) -> String;
}

/// Current UTC time, RFC 3339 with millisecond precision, e.g. `2026-11-21T10:00:00.123Z`.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// JSON with object keys sorted by their bytes at every level and no whitespace; strings
/// and numbers are written exactly as serde_json writes them. The sort is done here, so the
/// result does not depend on serde_json's `preserve_order` feature.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut fields: Vec<(&String, &Value)> = map.iter().collect();
            // `str` orders by bytes, which is what we promise.
            fields.sort_unstable_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
            out.push('{');
            for (i, (key, item)) in fields.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::String(s) => write_string(s, out),
        // `Value`'s Display writes scalars with serde_json's own serializer.
        Value::Null | Value::Bool(_) | Value::Number(_) => out.push_str(&value.to_string()),
    }
}

fn write_string(s: &str, out: &mut String) {
    // Display of a `Value::String` is serde_json's escaping; it borrows nothing we keep.
    out.push_str(&Value::String(s.to_owned()).to_string());
}

/// Lowercase hex SHA-256 of the canonical JSON of
/// `{"at","kind","payload","prev_hash","run_id","seq"}`: the hash covers every other field.
pub fn entry_hash(
    run_id: &str,
    seq: u64,
    kind: &str,
    at: &str,
    payload: &Value,
    prev_hash: &str,
) -> String {
    hash_with_canonical_payload(run_id, seq, kind, at, &canonical_json(payload), prev_hash)
}

/// [`entry_hash`] for a payload already in canonical form (the writer has it anyway).
/// Keys are written in sorted order by hand; a test checks this equals `canonical_json`.
pub(crate) fn hash_with_canonical_payload(
    run_id: &str,
    seq: u64,
    kind: &str,
    at: &str,
    payload_canonical: &str,
    prev_hash: &str,
) -> String {
    let mut pre = String::with_capacity(payload_canonical.len() + 256);
    pre.push_str("{\"at\":");
    write_string(at, &mut pre);
    pre.push_str(",\"kind\":");
    write_string(kind, &mut pre);
    pre.push_str(",\"payload\":");
    pre.push_str(payload_canonical);
    pre.push_str(",\"prev_hash\":");
    write_string(prev_hash, &mut pre);
    pre.push_str(",\"run_id\":");
    write_string(run_id, &mut pre);
    pre.push_str(",\"seq\":");
    pre.push_str(&seq.to_string());
    pre.push('}');
    hex::encode(Sha256::digest(pre.as_bytes()))
}

/// Checks one run's entries: seq contiguous from 1, one run id, each prev_hash equal to the
/// previous entry's hash (GENESIS for seq 1), each hash recomputing from the contents.
/// Reports the first bad seq; a missing entry is reported as its own (absent) seq.
pub fn verify_entries(entries: &[Entry]) -> VerifyReport {
    let mut prev_hash = GENESIS_HASH;
    let run_id = entries.first().map(|e| e.run_id.as_str()).unwrap_or("");
    for (index, entry) in entries.iter().enumerate() {
        let expected_seq = index as u64 + 1;
        if entry.seq != expected_seq {
            let problem = if entry.seq > expected_seq {
                format!(
                    "entry {expected_seq} is missing (the next stored entry is {})",
                    entry.seq
                )
            } else {
                format!(
                    "entry out of order: found seq {} where {expected_seq} was expected",
                    entry.seq
                )
            };
            return VerifyReport::Broken {
                seq: expected_seq,
                problem,
            };
        }
        if entry.run_id != run_id {
            return VerifyReport::Broken {
                seq: entry.seq,
                problem: format!("entry belongs to run {:?}, not {run_id:?}", entry.run_id),
            };
        }
        if entry.prev_hash != prev_hash {
            return VerifyReport::Broken {
                seq: entry.seq,
                problem: format!(
                    "prev_hash {} does not link to the previous entry's hash {prev_hash}",
                    entry.prev_hash
                ),
            };
        }
        let computed = entry.computed_hash();
        if entry.hash != computed {
            return VerifyReport::Broken {
                seq: entry.seq,
                problem: format!(
                    "hash {} does not match the entry's contents (they hash to {computed})",
                    entry.hash
                ),
            };
        }
        prev_hash = &entry.hash;
    }
    VerifyReport::Intact {
        entries: entries.len() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(run_id: &str, n: u64) -> Vec<Entry> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let payload = json!({ "n": seq, "text": format!("entry {seq}") });
                let at = format!("2026-11-21T10:00:0{seq}.000Z");
                let hash = entry_hash(run_id, seq, "note", &at, &payload, &prev);
                let entry = Entry {
                    run_id: run_id.into(),
                    seq,
                    kind: "note".into(),
                    at,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                    payload,
                };
                prev = hash;
                entry
            })
            .collect()
    }

    #[test]
    fn canonical_json_sorts_keys_recursively_and_ignores_insertion_order() {
        let a: Value = serde_json::from_str(
            r#"{"b":1,"a":{"z":[3,{"y":null,"x":true}],"é":"\n\"q\""},"A":-0.5}"#,
        )
        .unwrap();
        let b: Value = serde_json::from_str(
            r#"{ "A": -0.5, "a": {"é":"\n\"q\"", "z": [3, {"x": true, "y": null}]}, "b": 1 }"#,
        )
        .unwrap();
        let expected = r#"{"A":-0.5,"a":{"z":[3,{"x":true,"y":null}],"é":"\n\"q\""},"b":1}"#;
        assert_eq!(canonical_json(&a), expected);
        assert_eq!(canonical_json(&b), expected);
        // Scalars exactly as serde_json writes them.
        for v in [
            json!(1e300),
            json!(0.1),
            json!(u64::MAX),
            json!(i64::MIN),
            json!("\u{1}"),
        ] {
            assert_eq!(canonical_json(&v), serde_json::to_string(&v).unwrap());
        }
    }

    #[test]
    fn entry_hash_is_the_canonical_json_of_all_fields() {
        let payload = json!({ "b": [1, 2], "a": "x" });
        let object = json!({
            "seq": 7, "run_id": "r1", "prev_hash": GENESIS_HASH, "payload": payload,
            "kind": "note", "at": "2026-11-21T10:00:00.000Z",
        });
        let expected = hex::encode(Sha256::digest(canonical_json(&object).as_bytes()));
        assert_eq!(
            entry_hash(
                "r1",
                7,
                "note",
                "2026-11-21T10:00:00.000Z",
                &payload,
                GENESIS_HASH
            ),
            expected
        );
    }

    #[test]
    fn entry_hash_test_vector_is_pinned() {
        // Computed once (and cross-checked with Python's json.dumps(sort_keys=True,
        // separators=(",", ":")) + hashlib.sha256); a change here means the hashing scheme
        // changed and every existing ledger would stop verifying.
        let hash = entry_hash(
            "01jrun",
            1,
            "run_started",
            "2026-11-21T10:00:00.000Z",
            &json!({ "task": "say hi", "limits": { "max_steps": 3 }, "ratio": 0.25 }),
            GENESIS_HASH,
        );
        assert_eq!(
            hash,
            "b019eaf188072239df9bb1deda9f5adbc2454170901db090814d7615387f44e3"
        );
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(
            verify_entries(&chain("r", 5)),
            VerifyReport::Intact { entries: 5 }
        );
        assert_eq!(verify_entries(&[]), VerifyReport::Intact { entries: 0 });
    }

    fn broken_at(entries: &[Entry]) -> u64 {
        match verify_entries(entries) {
            VerifyReport::Broken { seq, .. } => seq,
            other => panic!("expected a broken chain, got {other:?}"),
        }
    }

    #[test]
    fn every_kind_of_tampering_is_located() {
        let good = chain("r", 5);

        let mut e = good.clone();
        e[2].payload = json!({ "n": 3, "text": "changed" });
        assert_eq!(broken_at(&e), 3);

        let mut e = good.clone();
        e[1].at = "2026-11-21T11:00:00.000Z".into();
        assert_eq!(broken_at(&e), 2);

        let mut e = good.clone();
        e[3].kind = "other".into();
        assert_eq!(broken_at(&e), 4);

        let mut e = good.clone();
        e.remove(2);
        assert_eq!(broken_at(&e), 3);

        let mut e = good.clone();
        e[4].run_id = "other".into();
        assert_eq!(broken_at(&e), 5);

        // Rewriting an entry and recomputing its own hash still breaks the next link.
        let mut e = good.clone();
        e[1].payload = json!("forged");
        e[1].hash = e[1].computed_hash();
        assert_eq!(broken_at(&e), 3);

        let mut e = good.clone();
        e[0].prev_hash = "1".repeat(64);
        e[0].hash = e[0].computed_hash();
        assert_eq!(broken_at(&e), 1);

        let mut e = good;
        let h = e[1].hash.clone();
        e[1].hash = e[2].hash.clone();
        e[2].hash = h;
        assert_eq!(broken_at(&e), 2);
    }

    #[test]
    fn verify_report_serializes_with_a_status_tag() {
        assert_eq!(
            serde_json::to_string(&VerifyReport::Broken {
                seq: 3,
                problem: "x".into()
            })
            .unwrap(),
            r#"{"status":"broken","seq":3,"problem":"x"}"#
        );
        assert_eq!(
            serde_json::to_string(&VerifyReport::Intact { entries: 2 }).unwrap(),
            r#"{"status":"intact","entries":2}"#
        );
    }

    #[test]
    fn entry_export_line_keeps_field_order() {
        let e = &chain("r", 1)[0];
        let line = serde_json::to_string(e).unwrap();
        assert!(
            line.starts_with(r#"{"run_id":"r","seq":1,"kind":"note","at":"#),
            "{line}"
        );
        assert!(line.contains(r#""payload":{"#));
        let back: Entry = serde_json::from_str(&line).unwrap();
        assert_eq!(&back, e);
    }

    #[test]
    fn now_is_rfc3339_utc_with_millis() {
        let now = now_rfc3339();
        assert_eq!(now.len(), "2026-11-21T10:00:00.000Z".len(), "{now}");
        assert!(now.ends_with('Z'));
        humantime::parse_rfc3339(&now).unwrap();
    }
}
