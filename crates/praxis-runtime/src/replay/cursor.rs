//! The recorded entries a replay consumes, and the kernel events rebuilt from them.

use super::{ReplayReport, first_difference};
use praxis_core::record::{CompactionRecord, Execution, RunFinished, kinds};
use praxis_core::{Event, ExecStatus, ModelResponse, Record, StopReason};
use praxis_ledger::{Entry, entry_hash};
use serde_json::Value;

/// The recorded entries and how far the replay has consumed them.
pub(super) struct Cursor<'a> {
    pub(super) entries: &'a [Entry],
    pub(super) next: usize,
    /// Seqs of the run's `checkpoint` entries, ascending (skipped, but counted).
    pub(super) checkpoints: &'a [u64],
}

impl<'a> Cursor<'a> {
    /// The next entry an event is rebuilt from (past `tools_changed` entries, which are fed
    /// to the kernel before that event).
    pub(super) fn peek(&self) -> Option<&'a Entry> {
        self.entries[self.next.min(self.entries.len())..]
            .iter()
            .find(|e| e.kind != kinds::TOOLS_CHANGED)
    }

    pub(super) fn peek_after(&self) -> Option<&'a Entry> {
        self.entries[self.next.min(self.entries.len())..]
            .iter()
            .filter(|e| e.kind != kinds::TOOLS_CHANGED)
            .nth(1)
    }

    /// The next entry, when it records a change of the outside tools.
    pub(super) fn tools_changed(&self) -> Option<&'a Entry> {
        self.entries
            .get(self.next)
            .filter(|e| e.kind == kinds::TOOLS_CHANGED)
    }

    /// Seq of the last consumed entry (0 before any).
    pub(super) fn last_seq(&self) -> u64 {
        self.next
            .checked_sub(1)
            .and_then(|i| self.entries.get(i))
            .map_or(0, |e| e.seq)
    }

    pub(super) fn unfinished(&self, what: String) -> ReplayReport {
        let last = self.last_seq();
        let checkpoints = self.checkpoints.iter().filter(|&&s| s < last).count();
        ReplayReport::Matched {
            entries: (self.next + checkpoints) as u64,
            unfinished: Some(what),
        }
    }

    /// The seq the next kernel record must have: after the last consumed one, past any
    /// checkpoints.
    pub(super) fn expected_seq(&self) -> u64 {
        let mut seq = self.last_seq() + 1;
        while self.checkpoints.contains(&seq) {
            seq += 1;
        }
        seq
    }

    /// Consumes the next recorded entry if the kernel's record reproduces it exactly;
    /// otherwise returns the divergence.
    pub(super) fn compare(&mut self, run_id: &str, kind: &str, got: Value) -> Option<ReplayReport> {
        let expected_seq = self.expected_seq();
        // The record has no entry where the kernel makes one; `record` says what it has.
        let missing = |got, record: String| {
            Some(ReplayReport::Diverged {
                seq: expected_seq,
                kind: kind.to_string(),
                expected: Value::Null,
                got,
                detail: format!(
                    "missing recorded entry: the kernel records `{kind}` here but the record \
                     {record}"
                ),
            })
        };
        let Some(recorded) = self.entries.get(self.next) else {
            return missing(got, format!("ends at seq {}", self.last_seq()));
        };
        if recorded.seq != expected_seq {
            return missing(got, format!("jumps to seq {}", recorded.seq));
        }
        if recorded.kind != kind {
            return Some(ReplayReport::Diverged {
                seq: recorded.seq,
                kind: recorded.kind.clone(),
                detail: format!("kind: expected `{}` got `{kind}`", recorded.kind),
                expected: recorded.payload.clone(),
                got,
            });
        }
        let hash = entry_hash(
            run_id,
            recorded.seq,
            kind,
            &recorded.at,
            &got,
            &recorded.prev_hash,
        );
        // The payloads are compared too: an entry edited in place (hash left alone) still
        // hashes as the kernel's payload would, yet is not what the kernel records.
        let difference = first_difference(&recorded.payload, &got, "payload");
        if difference.is_some() || hash != recorded.hash {
            let detail = match difference {
                Some(difference) => difference,
                // Same payload, different hash: the record itself does not hash to its contents.
                None => format!(
                    "the payloads are equal but the recorded hash {} does not match the entry's \
                     contents (run `praxis ledger verify`)",
                    recorded.hash
                ),
            };
            return Some(ReplayReport::Diverged {
                seq: recorded.seq,
                kind: recorded.kind.clone(),
                expected: recorded.payload.clone(),
                got,
                detail,
            });
        }
        self.next += 1;
        None
    }
}

/// The recorded entry is not the one the kernel's command calls for.
pub(super) fn unexpected(entry: &Entry, got: Value, what: String) -> ReplayReport {
    ReplayReport::Diverged {
        seq: entry.seq,
        kind: entry.kind.clone(),
        expected: entry.payload.clone(),
        got,
        detail: format!("{what} but the recorded entry is `{}`", entry.kind),
    }
}

pub(super) fn is_cancel(finished: &RunFinished) -> bool {
    finished.stop_reason == StopReason::Cancelled
}

// Events rebuilt from recorded records.

/// The answer to a compaction summary request, from the `compaction` entry it produced.
pub(super) fn summarized(compaction: CompactionRecord) -> Event {
    match compaction {
        CompactionRecord::Truncate {
            summary_error, now, ..
        } => Event::ModelFailed {
            now,
            error: summary_error.unwrap_or_default(),
        },
        CompactionRecord::Summarize {
            summary,
            model,
            usage,
            now,
            ..
        } => Event::ModelReplied {
            now,
            response: ModelResponse {
                content: summary,
                usage,
                model,
                ..Default::default()
            },
        },
    }
}

/// `Cancel` from a `run_finished` entry with stop reason `cancelled`.
pub(super) fn cancel(finished: &RunFinished) -> Event {
    Event::Cancel {
        now: finished.now,
        reason: finished.error.clone().unwrap_or_default(),
    }
}

/// The event answering an `Execute`, from its `execution` entry and the record after it,
/// which tells a cancel during the call from a tool that reported `cancelled` itself.
pub(super) fn tool_event(execution: Execution, after: Option<&Record>) -> Event {
    if execution.status == ExecStatus::Cancelled
        && let Some(Record::RunFinished(finished)) = after
        && is_cancel(finished)
    {
        let reason = finished.error.clone().unwrap_or_default();
        // The kernel itself records exactly this observation for a cancel during the call.
        if finished.now == execution.now && execution.output == format!("cancelled: {reason}") {
            return Event::Cancel {
                now: finished.now,
                reason,
            };
        }
    }
    Event::ToolFinished {
        now: execution.now,
        observation: execution.observation(),
        call_id: execution.call_id,
    }
}
