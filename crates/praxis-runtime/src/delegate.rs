//! `delegate`: a sub-run under an attenuation of its parent's writ. Its authority cannot
//! grow: the child block must not widen the parent's (see `praxis_writ::attenuate`), its
//! budgets are at most what the parent has left when it starts, and what it consumed comes
//! back in the execution (`Observation::child_spent`), where the parent's kernel adds it to
//! the parent's own spending, live and in replay alike.

use crate::driver::{
    ParentLink, RunContext, RunObserver, RunOptions, RuntimeError, WritGrant, now_millis,
};
use crate::replay::{self, ReplayReport, Until};
use praxis_core::record::RunStarted;
use praxis_core::{Contracts, ExecRequest, Observation, RunSpec, RunStatus, Spent};
use praxis_ledger::Ledger;
use praxis_tools::tools::delegate::DelegateArgs;
use praxis_writ::{Budget, WritSpec};
use serde::Deserialize;
use std::sync::Arc;
use std::time::SystemTime;

/// Runs `delegate` for run `run_id`, which has consumed `spent` so far (this call included):
/// attenuates the run's writ with the child's spec, its budgets capped to what the writ has
/// left, then drives the sub-run to its end; its answer is the observation.
pub(crate) async fn delegate(
    run_id: &str,
    observer: &dyn RunObserver,
    request: &ExecRequest,
    spent: Spent,
    context: &RunContext<'_>,
) -> Observation {
    let args: DelegateArgs = match serde_json::from_value(request.arguments.clone()) {
        Ok(args) => args,
        Err(e) => return Observation::error(format!("invalid delegate arguments: {e}")),
    };
    let Some(grant) = &context.options.writ else {
        return Observation::error(
            "delegate needs a run under a writ: there is nothing to attenuate",
        );
    };
    let mut child_spec = match WritSpec::from_json_str(&args.writ.to_string()) {
        Ok(spec) => spec,
        Err(e) => return Observation::error(format!("the sub-agent's writ spec is invalid: {e}")),
    };
    let now = SystemTime::now();
    let parent_writ = match praxis_writ::verify(&grant.token, &grant.anchor, now) {
        Ok(writ) => writ,
        Err(e) => return Observation::error(format!("delegation refused: {e}")),
    };
    child_spec.budget = child_spec
        .budget
        .within(&parent_writ.rules().remaining(&spent));
    let token = match praxis_writ::attenuate(&grant.token, &grant.anchor, &child_spec, now) {
        Ok(token) => token,
        Err(e) => return Observation::error(format!("delegation refused: {e}")),
    };
    let provider = match context.provider.for_delegate(&args.task) {
        Ok(provider) => provider,
        Err(e) => return Observation::error(format!("no cognition for the sub-agent: {e}")),
    };
    let parent = &context.options.spec;
    let remaining = request
        .deadline
        .map(|d| d.saturating_sub(now_millis()) / 1000);
    let spec = RunSpec {
        conversation: Default::default(),
        protocol: parent.protocol,
        compaction: parent.compaction.clone(),
        task: args.task,
        workspace: parent.workspace.clone(),
        provider: parent.provider.clone(),
        model: String::new(),
        tools: parent.tools.clone(),
        read_only: parent.read_only,
        limits: praxis_core::Limits {
            max_steps: args.max_steps.unwrap_or(10),
            max_seconds: remaining.or(parent.limits.max_seconds),
            ..parent.limits.clone()
        },
    };
    let child = RunOptions {
        writ: Some(WritGrant {
            token,
            anchor: grant.anchor.clone(),
        }),
        approver: context.options.approver.clone(),
        prices: context.options.prices.clone(),
        tool_limits: context.options.tool_limits.clone(),
        capture: context.options.capture.clone(),
        cancel: context.options.cancel.clone(),
        checkpoint_key: context.options.checkpoint_key.clone(),
        parent: Some(ParentLink {
            run_id: run_id.to_string(),
            call_id: request.call_id.clone(),
        }),
        ..RunOptions::new(spec, provider)
    };
    match context.runtime.run_boxed(child, observer).await {
        Ok(report) => {
            let r = &report.result;
            let detail = r
                .final_answer
                .as_deref()
                .or(r.error.as_deref())
                .unwrap_or("");
            let output = format!(
                "sub-run {} {}: {detail}",
                report.run_id,
                r.stop_reason.as_str()
            );
            let mut observation = if r.status == RunStatus::Completed {
                Observation::ok(output)
            } else {
                Observation::error(output)
            };
            observation.child_spent = Some(Box::new(report.spent));
            observation
        }
        Err(e) => {
            // How far it got is unknown: it is charged everything it was granted.
            let mut observation = Observation::error(format!("the sub-run could not run: {e}"));
            observation.child_spent = Some(Box::new(granted(&child_spec.budget)));
            observation
        }
    }
}

/// A budget as spending (limits absent count as nothing spent).
fn granted(budget: &Budget) -> Spent {
    Spent {
        tool_calls: budget.tool_calls.unwrap_or(0),
        model_calls: budget.model_calls.unwrap_or(0),
        model_tokens: budget.model_tokens.unwrap_or(0),
        wall_ms: 0,
        usd_micros: budget.usd_micros().unwrap_or(0),
        bytes_written: 0,
    }
}

/// What the sub-runs started by `delegate` call `call_id` of run `run_id` consumed, read from
/// their own records (each replayed to its end, its own sub-runs included): what the parent
/// is charged when it is resumed after dying with that call in flight, since no execution
/// will report it. None when the call started no sub-run.
pub(crate) fn interrupted_spent(
    ledger: &dyn Ledger,
    contracts: Arc<dyn Contracts>,
    run_id: &str,
    call_id: &str,
) -> Result<Option<Spent>, RuntimeError> {
    let ledger_error = RuntimeError::ledger(run_id);
    let mut total: Option<Spent> = None;
    for row in ledger.runs().map_err(ledger_error)? {
        let Ok(started) = RunStarted::deserialize(&row.started) else {
            continue;
        };
        let is_child = started
            .parent()
            .is_some_and(|p| p.run_id == run_id && p.call_id == call_id);
        if !is_child {
            continue;
        }
        let child = replay::restore(ledger, contracts.clone(), &row.run_id, Until::End)?;
        if let ReplayReport::Diverged { seq, detail, .. } = &child.report {
            return Err(RuntimeError::NotResumable {
                run_id: run_id.to_string(),
                why: format!(
                    "its sub-run {} does not replay at seq {seq} ({detail}), so what it spent is unknown",
                    row.run_id
                ),
            });
        }
        let spent = child.kernel.spent(now_millis());
        let sum = total.get_or_insert_with(Spent::default);
        sum.tool_calls = sum.tool_calls.saturating_add(spent.tool_calls);
        sum.model_calls = sum.model_calls.saturating_add(spent.model_calls);
        sum.model_tokens = sum.model_tokens.saturating_add(spent.model_tokens);
        sum.usd_micros = sum.usd_micros.saturating_add(spent.usd_micros);
    }
    Ok(total)
}
