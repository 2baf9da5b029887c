//! A run as recorded: its entries read back from the ledger, as typed records
//! ([`praxis_core::record`]). Replay, world reconstruction, what-if checks and run diffs all read runs this way.

use praxis_core::Record;
use praxis_core::record::RunStarted;
use praxis_ledger::{Entry, Ledger, LedgerError};

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

/// The `run_started` record of `run_id` (its spec, host facts, writ and prices).
pub fn run_started(ledger: &dyn Ledger, run_id: &str) -> Result<RunStarted, RecordError> {
    let first = ledger
        .entries(run_id, 0)
        .map_err(|source| RecordError::Ledger {
            run_id: run_id.to_string(),
            source: Box::new(source),
        })?
        .into_iter()
        .next()
        .ok_or_else(|| RecordError::RunNotFound {
            run_id: run_id.to_string(),
        })?;
    Reader { run_id }.run_started(&first)
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

    /// The entry as a typed record; a payload that does not have its kind's shape is
    /// malformed.
    pub fn record(&self, entry: &Entry) -> Result<Record, RecordError> {
        Record::from_entry(&entry.kind, &entry.payload).map_err(|e| match e {
            praxis_core::record::RecordError::UnknownKind(kind) => {
                self.malformed(entry, "kind", format!("unknown record kind `{kind}`"))
            }
            praxis_core::record::RecordError::Malformed { field, reason, .. } => {
                self.malformed(entry, &field, reason)
            }
        })
    }

    /// The `run_started` record a run begins with.
    pub fn run_started(&self, entry: &Entry) -> Result<RunStarted, RecordError> {
        match self.record(entry)? {
            Record::RunStarted(started) => Ok(started),
            other => Err(self.malformed(
                entry,
                "kind",
                format!("expected `run_started`, got `{}`", other.kind()),
            )),
        }
    }
}
