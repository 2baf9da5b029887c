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
            match e.kind.as_str() {
                kinds::MODEL_RESPONSE => {
                    c.steps += 1;
                    if let Ok(Record::ModelResponse(response)) =
                        Record::from_entry(&e.kind, &e.payload)
                    {
                        c.input_tokens += response.usage.input_tokens;
                        c.output_tokens += response.usage.output_tokens;
                        c.cost_usd_micros += response.cost_usd_micros.unwrap_or(0);
                    }
                }
                kinds::EXECUTION => c.tool_calls += 1,
                _ => {}
            }
        }
        c
    }
}

/// A `RunRow` (what `overview` reads) built from one run's entries, so looking at one run
/// does not list every run.
pub(crate) fn row_of(entries: &[Entry]) -> Option<praxis_ledger::RunRow> {
    let first = entries.first()?;
    let last = entries.last()?;
    let finished: Option<Value> = entries
        .iter()
        .rev()
        .find(|e| e.kind == praxis_ledger::RUN_FINISHED_KIND)
        .map(|e| e.payload.clone());
    Some(praxis_ledger::RunRow {
        run_id: first.run_id.clone(),
        started_at: first.at.clone(),
        started: first.payload.clone(),
        finished,
        resumed: entries
            .iter()
            .rev()
            .find(|e| e.kind == praxis_ledger::RUN_RESUMED_KIND)
            .map(|e| e.payload.clone()),
        last_seq: last.seq,
        last_kind: last.kind.clone(),
    })
}
