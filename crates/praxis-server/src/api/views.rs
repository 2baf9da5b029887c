//! The view of a run: the ledger plus what this process knows live.

use crate::api::dto::*;
use crate::api::{ApiError, DEFAULT_TENANT, Shared};
use crate::runs::{Counters, Digest, Ghost, Known, row_of};
use praxis_core::RunStatus;
use praxis_core::record::RunFinished;
use praxis_ledger::Entry;
use praxis_runtime::overview;
use serde::Deserialize;

impl Shared {
    /// The view of a run, from the ledger plus what this process knows live: made from
    /// memory when that is enough ([`Shared::memory_view`]), read otherwise.
    pub(crate) fn view(&self, id: &str, known: Known) -> Result<RunView, ApiError> {
        if let Some(view) = self.memory_view(id, &known) {
            return Ok(view);
        }
        match known {
            Known::Ghost(ghost) => Ok(ghost_view(id, ghost, self.manager.ledger.entries(id, 0)?)),
            Known::Active {
                tenant,
                hub,
                recovered,
                spec,
                since,
            } => {
                // Read before the ledger: entries up to it are durable, so a view read now
                // holds at least them, and stays right until the next entry.
                let seq = hub.durable_seq();
                let view = self.read_view(id, tenant, spec, since)?;
                hub.keep_view(seq, &view);
                Ok(active_view(view, &hub, recovered))
            }
            Known::Ended(_) => unreachable!("a kept end's view is made from memory"),
            Known::Unknown { recovered } => {
                let entries = self.manager.ledger.entries(id, 0)?;
                let row = row_of(&entries)
                    .ok_or_else(|| ApiError::not_found(format_args!("run {id}")))?;
                let tenant = self
                    .tokens
                    .run_tenant(id)?
                    .unwrap_or_else(|| DEFAULT_TENANT.into());
                let mut view = ledger_view(&row, &entries, tenant);
                view.recovery = recovered;
                Ok(view)
            }
            Known::Queued { .. } => unreachable!("a queued run's view is made from memory"),
        }
    }

    /// The view of a run `tenant` may see, when this server holds it and its view needs no
    /// read ([`Shared::memory_view`]); None otherwise (the caller reads, off the async
    /// threads): polling a live run never waits for the blocking pool.
    pub(crate) fn view_from_memory(
        &self,
        tenant: &crate::api::Tenant,
        id: &str,
    ) -> Option<RunView> {
        let known = self.manager.known(id);
        if known.tenant() != Some(tenant.0.as_str()) {
            return None;
        }
        self.memory_view(id, &known)
    }

    /// A held run's view made from memory: a queued run's from its request, a driven run's
    /// from its entries seen durable ([`Shared::held_view`]), a run driven here to its end
    /// from the same entries, kept ([`crate::runs::Ended`]). None when it needs a read.
    fn memory_view(&self, id: &str, known: &Known) -> Option<RunView> {
        match known {
            Known::Queued {
                tenant,
                task,
                workspace,
                provider,
                created_at,
                position,
            } => Some(RunView {
                phase: Some("queued".into()),
                queue_position: Some(*position),
                ..unrecorded_view(
                    id,
                    RunStatus::Queued,
                    tenant.clone(),
                    (task.clone(), workspace.clone(), provider.clone()),
                    created_at.clone(),
                )
            }),
            Known::Active {
                tenant,
                hub,
                recovered,
                ..
            } => {
                let view = self.held_view(hub.durable_seq(), hub, tenant)?;
                Some(active_view(view, hub, recovered.clone()))
            }
            Known::Ended(ended) => Some(ended.view.clone()),
            Known::Ghost(_) | Known::Unknown { .. } => None,
        }
    }

    /// The view of a run this server drives as of durable entry `seq` (without its live
    /// phase), from memory: the view kept for `seq`, else the one folded from the entries it
    /// saw become durable (then kept for `seq`). None when it saw none, or not all of them.
    fn held_view(&self, seq: u64, hub: &crate::runs::Hub, tenant: &str) -> Option<RunView> {
        if let Some(view) = hub.view_at(seq) {
            self.metrics.run_view_reused();
            return Some(view);
        }
        let view = hub
            .with_digest(|digest| digest.view(tenant.to_string()))
            .flatten()?;
        hub.keep_view(seq, &view);
        Some(view)
    }

    /// The view of a run this server drives (without its live phase) as its ledger has it
    /// now; from its recorded request while it has no entry yet.
    fn read_view(
        &self,
        id: &str,
        tenant: String,
        spec: praxis_core::RunSpec,
        since: String,
    ) -> Result<RunView, ApiError> {
        self.metrics.run_view_read();
        let mut entries = self.manager.ledger.entries(id, 0)?;
        let mut row = row_of(&entries);
        // "Interrupted" (no `run_finished`, no live drive) of a run this server
        // drives means its drive ended after the entries were read: read them again,
        // they hold its end now. Never report a live run as interrupted.
        if row
            .as_ref()
            .is_some_and(|r| r.finished.is_none() && overview(r).status == RunStatus::Interrupted)
        {
            entries = self.manager.ledger.entries(id, 0)?;
            row = row_of(&entries);
        }
        let view = match row {
            Some(row) => ledger_view(&row, &entries, tenant),
            None => unrecorded_view(
                id,
                RunStatus::Running,
                tenant,
                (spec.task, spec.workspace, spec.provider),
                since,
            ),
        };
        Ok(view)
    }
}

/// A driven run's view with what the server knows live: its phase and recovery.
fn active_view(mut view: RunView, hub: &crate::runs::Hub, recovered: Option<String>) -> RunView {
    live_view(&mut view, hub.state());
    view.recovery = recovered;
    view
}

/// A run with no entry yet, as its request has it: `asked` is its task, workspace and
/// provider, `since` when it was accepted.
fn unrecorded_view(
    id: &str,
    status: RunStatus,
    tenant: String,
    asked: (String, String, String),
    since: String,
) -> RunView {
    let (task, workspace, provider) = asked;
    RunView {
        id: id.into(),
        status: status.as_str().into(),
        phase: None,
        active_tool: None,
        stop_reason: None,
        final_answer: None,
        error: None,
        steps: 0,
        tool_calls: 0,
        usage: UsageView::default(),
        task,
        workspace,
        provider,
        started_at: since,
        ended_at: None,
        cost_usd_micros: 0,
        last_seq: 0,
        tenant,
        queue_position: None,
        recovery: None,
    }
}

/// A run this server drives, beyond its ledger: its driver task is alive, so it is not
/// interrupted even if the drive itself just ended without `run_finished` (the task records
/// how it failed when it returns); and its live phase (the ledger's last entry is not
/// always the request: a resumed run waits again after `run_resumed`).
pub(crate) fn live_view(view: &mut RunView, live: crate::runs::LiveState) {
    if view.status == RunStatus::Interrupted.as_str() {
        view.status = RunStatus::Running.as_str().into();
    }
    if live.phase == "awaiting_approval" && view.status == RunStatus::Running.as_str() {
        view.status = RunStatus::AwaitingApproval.as_str().into();
    }
    view.phase = Some(live.phase.to_string());
    view.active_tool = live.active_tool;
}

pub(crate) fn ledger_view(
    row: &praxis_ledger::RunRow,
    entries: &[Entry],
    tenant: String,
) -> RunView {
    view_of(
        row,
        &Counters::from_entries(entries),
        finished_at(entries),
        tenant,
    )
}

impl Digest {
    /// The view of the run whose entries were folded here (None before its first entry).
    pub(crate) fn view(&self, tenant: String) -> Option<RunView> {
        let row = self.row()?;
        Some(view_of(&row, &self.counters, self.ended_at(), tenant))
    }
}

/// A run's view from its row, its counters and when it ended.
fn view_of(
    row: &praxis_ledger::RunRow,
    counters: &Counters,
    ended_at: Option<String>,
    tenant: String,
) -> RunView {
    let o = overview(row);
    let finished = row
        .finished
        .as_ref()
        .and_then(|f| RunFinished::deserialize(f).ok());
    let finished = finished.as_ref();
    let usage = finished
        .map(|f| UsageView {
            input_tokens: f.usage.input_tokens,
            output_tokens: f.usage.output_tokens,
        })
        .unwrap_or(UsageView {
            input_tokens: counters.input_tokens,
            output_tokens: counters.output_tokens,
        });
    RunView {
        id: o.run_id,
        status: o.status.as_str().into(),
        phase: None,
        active_tool: None,
        stop_reason: o.stop_reason,
        final_answer: o.final_answer,
        error: o.error,
        steps: finished.map_or(counters.steps, |f| u64::from(f.steps)),
        tool_calls: finished.map_or(counters.tool_calls, |f| u64::from(f.tool_calls)),
        usage,
        task: o.task,
        workspace: o.workspace,
        provider: o.provider,
        started_at: o.started_at,
        ended_at,
        cost_usd_micros: counters.cost_usd_micros,
        last_seq: o.last_seq,
        tenant,
        queue_position: None,
        recovery: None,
    }
}

pub(crate) fn ghost_view(id: &str, ghost: Ghost, entries: Vec<Entry>) -> RunView {
    let counters = Counters::from_entries(&entries);
    RunView {
        id: id.into(),
        status: ghost.status.as_str().into(),
        phase: None,
        active_tool: None,
        stop_reason: Some(
            match ghost.status {
                RunStatus::Cancelled => "cancelled",
                _ => "failed",
            }
            .into(),
        ),
        final_answer: None,
        error: ghost.error,
        steps: counters.steps,
        tool_calls: counters.tool_calls,
        usage: UsageView {
            input_tokens: counters.input_tokens,
            output_tokens: counters.output_tokens,
        },
        task: ghost.task,
        workspace: ghost.workspace,
        provider: ghost.provider,
        started_at: ghost.created_at,
        ended_at: finished_at(&entries).or_else(|| entries.last().map(|e| e.at.clone())),
        cost_usd_micros: counters.cost_usd_micros,
        last_seq: entries.last().map_or(0, |e| e.seq),
        tenant: ghost.tenant,
        queue_position: None,
        recovery: None,
    }
}

/// When the run's `run_finished` was recorded.
/// The cost and end time of a view built from a ledger row alone, from the run's entries.
pub(crate) fn fill_from_entries(view: &mut RunView, entries: &[Entry]) {
    view.cost_usd_micros = Counters::from_entries(entries).cost_usd_micros;
    view.ended_at = finished_at(entries);
}

fn finished_at(entries: &[Entry]) -> Option<String> {
    entries
        .iter()
        .rev()
        .find(|e| e.kind == praxis_core::record::kinds::RUN_FINISHED)
        .map(|e| e.at.clone())
}
