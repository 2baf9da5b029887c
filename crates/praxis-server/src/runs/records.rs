//! What a run's entries say, read without listing every run.

use super::*;

/// Counters of a run, from its entries: model calls, tool executions, token usage.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, utoipa::ToSchema)]
pub struct Counters {
    pub steps: u64,
    pub tool_calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Money the model calls cost by the run's price table, in millionths of a US dollar.
    pub cost_usd_micros: u64,
}

impl Counters {
    pub fn from_entries(entries: &[Entry]) -> Self {
        let mut c = Counters::default();
        for e in entries {
            c.add(e);
        }
        c
    }

    /// Counts one more entry.
    fn add(&mut self, e: &Entry) {
        match e.kind.as_str() {
            kinds::MODEL_RESPONSE => {
                self.steps += 1;
                if let Ok(Record::ModelResponse(response)) = Record::from_entry(&e.kind, &e.payload)
                {
                    self.input_tokens += response.usage.input_tokens;
                    self.output_tokens += response.usage.output_tokens;
                    self.cost_usd_micros += response.cost_usd_micros.unwrap_or(0);
                }
            }
            kinds::EXECUTION => self.tool_calls += 1,
            _ => {}
        }
    }
}

/// What a run's view needs of its entries (its row, counters and end time), folded one
/// entry at a time: the same as reading them all again, kept by a server that saw every
/// entry of a run it drives (see `Hub`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Digest {
    first: Option<Entry>,
    finished: Option<Entry>,
    resumed: Option<Value>,
    last: Option<(u64, String)>,
    pub counters: Counters,
}

impl Digest {
    /// The seq of the last entry added (0: none).
    pub(crate) fn last_seq(&self) -> u64 {
        self.last.as_ref().map_or(0, |(seq, _)| *seq)
    }

    pub(crate) fn add(&mut self, e: &Entry) {
        self.note(e);
        self.counters.add(e);
    }

    /// Takes in what the run's row needs of `e` (not its counters).
    fn note(&mut self, e: &Entry) {
        if self.first.is_none() {
            self.first = Some(e.clone());
        }
        match e.kind.as_str() {
            praxis_ledger::RUN_FINISHED_KIND => self.finished = Some(e.clone()),
            praxis_ledger::RUN_RESUMED_KIND => self.resumed = Some(e.payload.clone()),
            _ => {}
        }
        self.last = Some((e.seq, e.kind.clone()));
    }

    /// The run's row (None before its first entry).
    pub(crate) fn row(&self) -> Option<praxis_ledger::RunRow> {
        let first = self.first.as_ref()?;
        let (last_seq, last_kind) = self.last.clone()?;
        Some(praxis_ledger::RunRow {
            run_id: first.run_id.clone(),
            started_at: first.at.clone(),
            started: first.payload.clone(),
            finished: self.finished.as_ref().map(|e| e.payload.clone()),
            resumed: self.resumed.clone(),
            last_seq,
            last_kind,
        })
    }

    /// When its `run_finished` was recorded.
    pub(crate) fn ended_at(&self) -> Option<String> {
        self.finished.as_ref().map(|e| e.at.clone())
    }
}

/// A `RunRow` (what `overview` reads) built from one run's entries, so looking at one run
/// does not list every run.
pub(crate) fn row_of(entries: &[Entry]) -> Option<praxis_ledger::RunRow> {
    let mut digest = Digest::default();
    for e in entries {
        digest.note(e);
    }
    digest.row()
}
