//! What both stores share about stored rows: turning them back into entries, checking
//! what an append may contain, resolving run-id prefixes, verifying a stored chain.

use crate::error::LedgerError;
use crate::{Entry, NewEntry, VerifyReport, verify_entries};
use serde_json::Value;
use std::path::Path;

pub(crate) const MAX_RUN_ID_LEN: usize = 128;
pub(crate) const MAX_KIND_LEN: usize = 64;
/// Most candidates an ambiguous run-id prefix lists.
pub(crate) const SHOWN: usize = 10;

pub(crate) struct RawRow {
    pub(crate) seq: i64,
    pub(crate) kind: String,
    pub(crate) at: String,
    pub(crate) payload: String,
    pub(crate) prev_hash: String,
    pub(crate) hash: String,
}

impl RawRow {
    /// The entry, or why the stored row cannot be one.
    pub(crate) fn into_entry(self, run_id: &str) -> Result<Entry, (i64, String)> {
        let seq = u64::try_from(self.seq)
            .map_err(|_| (self.seq, format!("negative seq {}", self.seq)))?;
        let payload: Value = serde_json::from_str(&self.payload)
            .map_err(|e| (self.seq, format!("payload is not valid JSON: {e}")))?;
        Ok(Entry {
            run_id: run_id.to_string(),
            seq,
            kind: self.kind,
            at: self.at,
            prev_hash: self.prev_hash,
            hash: self.hash,
            payload,
        })
    }
}

/// The chain check of stored rows: the first unreadable row breaks it where no earlier
/// link does.
pub(crate) fn verify_rows(rows: Vec<RawRow>, run_id: &str) -> VerifyReport {
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        match row.into_entry(run_id) {
            Ok(entry) => entries.push(entry),
            Err((seq, problem)) => {
                // An earlier break is the first one; otherwise this row is.
                return match verify_entries(&entries) {
                    broken @ VerifyReport::Broken { .. } => broken,
                    VerifyReport::Intact { .. } => VerifyReport::Broken {
                        seq: u64::try_from(seq).unwrap_or(0),
                        problem,
                    },
                };
            }
        }
    }
    verify_entries(&entries)
}

/// The run a prefix names: itself when `exact`, else the one candidate (at most
/// [`SHOWN`] + 1 were asked for).
pub(crate) fn pick_run(
    store: &Path,
    prefix: &str,
    exact: bool,
    mut candidates: Vec<String>,
) -> Result<String, LedgerError> {
    if exact {
        return Ok(prefix.to_string());
    }
    match candidates.len() {
        0 => Err(LedgerError::RunNotFound {
            path: store.to_path_buf(),
            prefix: prefix.to_string(),
        }),
        1 => Ok(candidates.remove(0)),
        n => {
            candidates.truncate(SHOWN);
            Err(LedgerError::AmbiguousRun {
                path: store.to_path_buf(),
                prefix: prefix.to_string(),
                candidates,
                more: n > SHOWN,
            })
        }
    }
}

/// A run's summary as stored: payloads still text.
pub(crate) struct RawRun {
    pub(crate) run_id: String,
    pub(crate) at: String,
    pub(crate) started: String,
    pub(crate) last_seq: i64,
    pub(crate) last_kind: String,
    pub(crate) finished: Option<String>,
    pub(crate) resumed: Option<String>,
}

impl RawRun {
    pub(crate) fn into_run_row(self, store: &Path) -> Result<crate::RunRow, LedgerError> {
        let corrupt = |seq: i64, reason: String| LedgerError::Corrupt {
            path: store.to_path_buf(),
            run_id: self.run_id.clone(),
            seq,
            reason,
        };
        let started = serde_json::from_str(&self.started)
            .map_err(|e| corrupt(1, format!("payload is not valid JSON: {e}")))?;
        let payload = |text: Option<&str>, kind: &str| {
            text.map(serde_json::from_str).transpose().map_err(|e| {
                corrupt(
                    self.last_seq,
                    format!("{kind} payload is not valid JSON: {e}"),
                )
            })
        };
        let finished = payload(self.finished.as_deref(), "run_finished")?;
        let resumed = payload(self.resumed.as_deref(), "run_resumed")?;
        let last_seq = u64::try_from(self.last_seq)
            .map_err(|_| corrupt(self.last_seq, "negative seq".into()))?;
        Ok(crate::RunRow {
            run_id: self.run_id.clone(),
            started_at: self.at.clone(),
            started,
            finished,
            resumed,
            last_seq,
            last_kind: self.last_kind.clone(),
        })
    }
}

pub(crate) fn validate_run_id(run_id: &str) -> Result<(), LedgerError> {
    let reason = if run_id.is_empty() {
        Some("it is empty".to_string())
    } else if run_id.len() > MAX_RUN_ID_LEN {
        Some(format!("it is longer than {MAX_RUN_ID_LEN} bytes"))
    } else {
        run_id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
            .map(|c| {
                format!(
                    "it contains {c:?}; only ASCII letters, digits, '.', '_', ':' and '-' are allowed"
                )
            })
    };
    match reason {
        Some(reason) => Err(LedgerError::InvalidRunId {
            run_id: run_id.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

pub(crate) fn validate_entry(
    run_id: &str,
    index: usize,
    entry: &NewEntry,
) -> Result<(), LedgerError> {
    let kind = &entry.kind;
    let reason = if kind.is_empty() {
        Some("its kind is empty".to_string())
    } else if kind.len() > MAX_KIND_LEN {
        Some(format!("its kind is longer than {MAX_KIND_LEN} bytes"))
    } else if let Some(c) = kind
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        Some(format!(
            "its kind {kind:?} contains {c:?}; only ASCII letters, digits, '_', '.' and '-' are allowed"
        ))
    } else if let Err(e) = humantime::parse_rfc3339(&entry.at) {
        Some(format!(
            "its time {:?} is not an RFC 3339 UTC time like 2026-11-21T10:00:00.000Z: {e}",
            entry.at
        ))
    } else {
        None
    };
    match reason {
        Some(reason) => Err(LedgerError::InvalidEntry {
            run_id: run_id.to_string(),
            index,
            reason,
        }),
        None => Ok(()),
    }
}
