//! [`MemoryLedger`]: the ledger of a stateless embedding (the `praxis` library's default).
//! Same chain, same hashes, same validation as [`crate::SqliteLedger`], held in this
//! process's memory: "durable" means the entries are in the map when an append resolves.
//! Nothing survives the process; use the SQLite ledger when the record must.

use crate::rows::{validate_entry, validate_run_id};
use crate::{
    Attest, BoxFuture, Entry, GENESIS_HASH, Ledger, LedgerError, NewEntry, Pending,
    RUN_FINISHED_KIND, RUN_RESUMED_KIND, RunRow, VerifyReport, canonical_json,
    hash_with_canonical_payload, verify_entries,
};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;

/// What an error of the in-memory ledger names where the SQLite one names its file.
pub const MEMORY_PATH: &str = ":memory:";

#[derive(Default)]
struct State {
    /// Entries by run, in seq order.
    runs: HashMap<String, Vec<Entry>>,
    /// Run ids in the order their first entry was appended.
    order: Vec<String>,
    blobs: BTreeMap<String, Vec<u8>>,
    blob_bytes: u64,
}

/// An in-memory, hash-chained ledger. Appends to one ledger are serialised, so concurrent
/// runs each keep an intact chain.
#[derive(Default)]
pub struct MemoryLedger {
    state: Mutex<State>,
}

impl MemoryLedger {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-appended chain: entries are
        // pushed only after every one of them was built.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn append_now(
        &self,
        run_id: &str,
        entries: Vec<NewEntry>,
        blobs: Vec<Vec<u8>>,
        attest: Option<Attest>,
    ) -> Result<Vec<Entry>, LedgerError> {
        validate_run_id(run_id)?;
        let mut state = self.state();
        let (mut seq, mut prev_hash) = match state.runs.get(run_id).and_then(|c| c.last()) {
            Some(last) => (last.seq, last.hash.clone()),
            None => (0, GENESIS_HASH.to_string()),
        };
        let mut out = Vec::with_capacity(entries.len() + 1);
        let mut pending = Pending::new(entries, attest);
        // Every entry is built (and checked) before any is stored.
        while let Some((index, entry)) = pending.next(&out) {
            validate_entry(run_id, index, &entry)?;
            seq += 1;
            let hash = hash_with_canonical_payload(
                run_id,
                seq,
                &entry.kind,
                &entry.at,
                &canonical_json(&entry.payload),
                &prev_hash,
            );
            out.push(Entry {
                run_id: run_id.to_string(),
                seq,
                kind: entry.kind,
                at: entry.at,
                prev_hash: std::mem::replace(&mut prev_hash, hash.clone()),
                hash,
                payload: entry.payload,
            });
        }
        for blob in blobs {
            let id = praxis_core::blob_id(&blob);
            if !state.blobs.contains_key(&id) {
                state.blob_bytes += blob.len() as u64;
                state.blobs.insert(id, blob);
            }
        }
        if !out.is_empty() && !state.runs.contains_key(run_id) {
            state.order.push(run_id.to_string());
        }
        if !out.is_empty() {
            state
                .runs
                .entry(run_id.to_string())
                .or_default()
                .extend(out.iter().cloned());
        }
        Ok(out)
    }
}

fn not_found(run_id: &str) -> LedgerError {
    LedgerError::RunNotFound {
        path: PathBuf::from(MEMORY_PATH),
        prefix: run_id.to_string(),
    }
}

impl Ledger for MemoryLedger {
    fn append_attested(
        &self,
        run_id: &str,
        entries: Vec<NewEntry>,
        blobs: Vec<Vec<u8>>,
        attest: Option<Attest>,
    ) -> BoxFuture<'static, Result<Vec<Entry>, LedgerError>> {
        // Applied when called, as the trait asks ("queued when this is called").
        Box::pin(std::future::ready(
            self.append_now(run_id, entries, blobs, attest),
        ))
    }

    fn entries(&self, run_id: &str, after_seq: u64) -> Result<Vec<Entry>, LedgerError> {
        Ok(self
            .state()
            .runs
            .get(run_id)
            .map(|chain| {
                chain
                    .iter()
                    .filter(|e| e.seq > after_seq)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    fn runs(&self) -> Result<Vec<RunRow>, LedgerError> {
        let state = self.state();
        let latest = |chain: &[Entry], kind: &str| {
            chain
                .iter()
                .rev()
                .find(|e| e.kind == kind)
                .map(|e| e.payload.clone())
        };
        let mut rows: Vec<RunRow> = state
            .order
            .iter()
            .filter_map(|run_id| {
                let chain = state.runs.get(run_id)?;
                let (first, last) = (chain.first()?, chain.last()?);
                Some(RunRow {
                    run_id: run_id.clone(),
                    started_at: first.at.clone(),
                    started: first.payload.clone(),
                    finished: latest(chain, RUN_FINISHED_KIND),
                    resumed: latest(chain, RUN_RESUMED_KIND),
                    last_seq: last.seq,
                    last_kind: last.kind.clone(),
                })
            })
            .collect();
        // Newest first, as the SQLite ledger lists them (ties: the later insert first).
        rows.reverse();
        rows.sort_by(|a, b| b.started_at.cmp(&a.started_at));
        Ok(rows)
    }

    fn blob(&self, id: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        Ok(self.state().blobs.get(id).cloned())
    }

    fn blob_bytes(&self) -> Result<u64, LedgerError> {
        Ok(self.state().blob_bytes)
    }

    fn verify_run(&self, run_id: &str) -> Result<VerifyReport, LedgerError> {
        let state = self.state();
        let chain = state.runs.get(run_id).ok_or_else(|| not_found(run_id))?;
        Ok(verify_entries(chain))
    }

    fn verify_blobs(&self) -> Result<Vec<String>, LedgerError> {
        // Blobs are stored under the id computed from their bytes and never changed.
        Ok(self
            .state()
            .blobs
            .iter()
            .filter(|(id, data)| praxis_core::blob_id(data) != **id)
            .map(|(id, _)| id.clone())
            .collect())
    }

    fn blob_ids(&self) -> Result<Vec<String>, LedgerError> {
        Ok(self.state().blobs.keys().cloned().collect())
    }

    fn find_run(&self, prefix: &str) -> Result<String, LedgerError> {
        if prefix.is_empty() {
            return Err(LedgerError::InvalidRunId {
                run_id: String::new(),
                reason: "a run id (or a unique prefix of one) is required".into(),
            });
        }
        let state = self.state();
        let exact = state.runs.contains_key(prefix);
        let mut candidates: Vec<String> = state
            .order
            .iter()
            .filter(|id| id.starts_with(prefix))
            .cloned()
            .collect();
        candidates.sort();
        candidates.truncate(crate::rows::SHOWN + 1);
        crate::rows::pick_run(std::path::Path::new(MEMORY_PATH), prefix, exact, candidates)
    }

    fn location(&self) -> String {
        MEMORY_PATH.to_string()
    }
}
