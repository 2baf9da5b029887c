//! Taking a run over: a new driver resuming it after its driver died, or its history
//! continuing as a new run (a branch); and the `run_started` record both begin with.

use super::{Command, Kernel, Phase, kernel_rules, record};
use crate::authority::Spent;
use crate::policy::Policy;
use crate::record::{
    ApprovalRequested, BranchOrigin, Manifest, Record, RunResumed, RunStarted, WaitingFor,
    WorkspaceSnapshot,
};
use crate::types::*;
use serde_json::Value;

impl Kernel {
    /// Takes up a run after its driver died. A model call in flight is simply asked again
    /// (it changed nothing); a tool call in flight is marked interrupted and re-run only if it
    /// is read-only, otherwise only after approval; a pending approval is asked for again.
    /// What sub-runs of an interrupted `delegate` call consumed (`child_spent`) is charged
    /// here, since no execution will report it.
    pub(super) fn resume(
        &mut self,
        now: Millis,
        environment: Value,
        child_spent: Option<Spent>,
        out: &mut Vec<Command>,
    ) {
        let (waiting_for, interrupted_call) = match &self.phase {
            Phase::AwaitingModel | Phase::AwaitingSummary { .. } => (WaitingFor::Model, None),
            Phase::AwaitingTool(p, _) => (WaitingFor::Tool, Some(p.call_id.clone())),
            Phase::AwaitingApproval(p, _) => (WaitingFor::Approval, Some(p.call_id.clone())),
            Phase::NotStarted | Phase::Finished => unreachable!("guarded by the caller"),
        };
        if let Some(child) = &child_spent {
            self.charge_delegated(child);
        }
        record(
            out,
            Record::RunResumed(RunResumed {
                environment,
                waiting_for,
                interrupted_call,
                interrupted_child_spent: child_spent.map(Box::new),
                now,
            }),
        );
        if let Err(reason) = self.policy.within_deadline(self.started, now) {
            return self.finish(now, reason, None, None, out);
        }
        match std::mem::replace(&mut self.phase, Phase::AwaitingModel) {
            Phase::AwaitingModel => out.push(Command::CallModel(self.current_request())),
            Phase::AwaitingSummary { cut, tokens_before } => {
                out.push(Command::CallModel(self.summary_request(cut)));
                self.phase = Phase::AwaitingSummary { cut, tokens_before };
            }
            Phase::AwaitingTool(proposal, source) if proposal.effect == Effect::Read => {
                self.execute(now, proposal, source, out);
            }
            Phase::AwaitingTool(proposal, source) => {
                let reason = format!(
                    "the runtime stopped while `{}` ran, so it may have run partly; it is run \
                     again only if approved",
                    proposal.tool
                );
                record(
                    out,
                    Record::ApprovalRequested(ApprovalRequested {
                        call_id: proposal.call_id.clone(),
                        rule: Some(kernel_rules::RESUME_INTERRUPTED_CALL.into()),
                        reason: Some(reason.clone()),
                    }),
                );
                let suspended = Proposal {
                    verdict: Verdict::NeedsApproval {
                        rule: kernel_rules::RESUME_INTERRUPTED_CALL.into(),
                        reason,
                    },
                    ..proposal
                };
                out.push(Command::AwaitApproval(suspended.clone()));
                self.phase = Phase::AwaitingApproval(suspended, source);
            }
            Phase::AwaitingApproval(proposal, source) => {
                out.push(Command::AwaitApproval(proposal.clone()));
                self.phase = Phase::AwaitingApproval(proposal, source);
            }
            Phase::NotStarted | Phase::Finished => unreachable!("guarded by the caller"),
        }
    }

    /// Continues this kernel's history as a new run (see [`Event::Branch`]). The new run's
    /// chain starts with its own `run_started` naming the origin; the interrupted model call
    /// is asked again of the branch's model. Wall time counts from the branch.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn branch(
        &mut self,
        now: Millis,
        spec: RunSpec,
        environment: Value,
        origin: BranchOrigin,
        note: Option<String>,
        workspace_files: Option<Manifest>,
        out: &mut Vec<Command>,
    ) {
        self.policy = Policy::for_run(&spec);
        self.spec = spec;
        self.started = now;
        let mut text = format!(
            "[praxis] This run continues run {} from entry {} as a branch. The workspace is now {} \
             (its files are as they were at that point).",
            origin.run_id, origin.seq, self.spec.workspace
        );
        self.record_start(now, environment, Some(origin), workspace_files, out);
        if let Some(note) = note {
            text.push_str("\n\n");
            text.push_str(&note);
        }
        self.push_message(Message::new(Role::User, text));
        out.push(Command::CallModel(self.current_request()));
    }

    /// `run_started` (and the start manifest) of a run or a branch.
    pub(super) fn record_start(
        &self,
        now: Millis,
        environment: Value,
        branch: Option<BranchOrigin>,
        workspace_files: Option<Manifest>,
        out: &mut Vec<Command>,
    ) {
        record(
            out,
            Record::RunStarted(RunStarted {
                spec: self.spec.clone(),
                environment,
                writ: self.authority.as_ref().map(|a| a.describe()),
                prices: self.prices.clone(),
                branch,
                now,
                tools: self.contracts.recorded_specs(),
            }),
        );
        if let Some(files) = workspace_files {
            record(out, Record::WorkspaceSnapshot(WorkspaceSnapshot { files }));
        }
    }
}
