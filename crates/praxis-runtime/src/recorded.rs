//! A run as recorded: its entries read back from the ledger, with typed access to payload
//! fields. Replay, world reconstruction, what-if checks and run diffs all read runs this way.

use praxis_ledger::{Entry, Ledger, LedgerError};
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("run {run_id} has no entries in the ledger")]
    RunNotFound { run_id: String },
    #[error("reading run {run_id} from the ledger: {source}")]
    Ledger {
        run_id: String,
        source: Box<LedgerError>,
    },
    #[error("run {run_id}, entry seq {seq} ({kind}): `{field}` is malformed: {reason}")]
    Malformed {
        run_id: String,
        seq: u64,
        kind: String,
        field: String,
        reason: String,
    },
}

/// A run's entries in seq order; `RunNotFound` when it has none.
pub fn load(ledger: &dyn Ledger, run_id: &str) -> Result<Vec<Entry>, RecordError> {
    let entries = ledger
        .entries(run_id, 0)
        .map_err(|source| RecordError::Ledger {
            run_id: run_id.to_string(),
            source: Box::new(source),
        })?;
    if entries.is_empty() {
        return Err(RecordError::RunNotFound {
            run_id: run_id.to_string(),
        });
    }
    Ok(entries)
}

/// Typed access to the payload fields of one run's entries; errors name run, seq and field.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    pub run_id: &'a str,
}

impl Reader<'_> {
    pub fn malformed(&self, entry: &Entry, field: &str, reason: impl Into<String>) -> RecordError {
        RecordError::Malformed {
            run_id: self.run_id.to_string(),
            seq: entry.seq,
            kind: entry.kind.clone(),
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    /// The payload field `name` of `entry`, which must be present and of type `T`.
    pub fn field<T: DeserializeOwned>(&self, entry: &Entry, name: &str) -> Result<T, RecordError> {
        let value = entry
            .payload
            .get(name)
            .ok_or_else(|| self.malformed(entry, name, "missing"))?;
        serde_json::from_value(value.clone())
            .map_err(|e| self.malformed(entry, name, e.to_string()))
    }

    /// A field the kernel leaves out when it is empty (or that older runs did not record).
    pub fn optional<T: DeserializeOwned + Default>(
        &self,
        entry: &Entry,
        name: &str,
    ) -> Result<T, RecordError> {
        match entry.payload.get(name) {
            None | Some(serde_json::Value::Null) => Ok(T::default()),
            Some(_) => self.field(entry, name),
        }
    }
}
