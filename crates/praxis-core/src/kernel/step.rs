//! A step of the run: the model request it makes, the reply taken apart into intents,
//! each intent judged and executed or refused, and the run's end.

use super::intents::{Reply, intents_of};
use super::{Command, ExecRequest, Judgement, Kernel, Phase, judge, record};
use crate::authority::{Authorization, AuthzRequest};
use crate::cmd;
use crate::policy::rules;
use crate::record::{
    ApprovalRequested, InvalidOutput, ModelResponseRecord, ProposalRecord, Record, RunFinished,
    RunResult,
};
use crate::types::*;

impl Kernel {
    /// The model request for the current step, built from the conversation so far.
    pub(super) fn current_request(&self) -> ModelRequest {
        ModelRequest {
            step: self.steps,
            messages: self.messages.clone(),
            tools: self.offered.clone(),
        }
    }

    pub(super) fn next_step(&mut self, now: Millis, out: &mut Vec<Command>) {
        if let Err(reason) = self.policy.before_step(self.steps + 1, self.started, now) {
            return self.finish(now, reason, None, None, out);
        }
        if let Some(authority) = &self.authority {
            match authority.before_model_call(now, &self.spent(now)) {
                Authorization::Exhausted { rule, reason } => {
                    let error = format!("{rule}: {reason}");
                    return self.finish(now, StopReason::BudgetExhausted, None, Some(error), out);
                }
                Authorization::Verdict(Verdict::Deny { rule, reason }) => {
                    let error = format!("{rule}: {reason}");
                    return self.finish(now, StopReason::Denied, None, Some(error), out);
                }
                Authorization::Verdict(_) => {}
            }
        }
        self.steps += 1;
        self.phase = Phase::AwaitingModel;
        if !self.compact(now, out) {
            out.push(Command::CallModel(self.current_request()));
        }
    }

    pub(super) fn on_reply(
        &mut self,
        now: Millis,
        response: ModelResponse,
        out: &mut Vec<Command>,
    ) {
        self.usage.add(response.usage);
        let cost = self.prices.cost_micros(&response.model, response.usage);
        self.usd_micros += cost;
        record(
            out,
            Record::ModelResponse(ModelResponseRecord {
                step: self.steps,
                model: response.model.clone(),
                content: response.content.clone(),
                tool_calls: response.tool_calls.clone(),
                usage: response.usage,
                reasoning: response.reasoning.clone(),
                // What the call cost by the run's price table (absent for unpriced models).
                cost_usd_micros: (cost > 0).then_some(cost),
                now,
            }),
        );
        self.push_message(Message {
            role: Role::Assistant,
            content: response.content.clone(),
            tool_calls: response.tool_calls.clone(),
            tool_call_id: None,
            reasoning: response.reasoning.clone(),
        });
        if let Err(reason) = self.policy.within_deadline(self.started, now) {
            return self.finish(now, reason, None, None, out);
        }
        match intents_of(self.steps, &response) {
            Reply::Final(answer) => {
                self.finish(now, StopReason::Completed, Some(answer), None, out);
            }
            Reply::Unusable(why) => self.unusable(now, why, out),
            Reply::Intents(intents) => {
                self.pending = intents.into();
                self.reply_usable = false;
                self.advance(now, out);
            }
        }
    }

    /// Handles pending intents until one needs the outside world or none are left.
    pub(super) fn advance(&mut self, now: Millis, out: &mut Vec<Command>) {
        while let Some(intent) = self.pending.pop_front() {
            // What the proposal is judged with is recorded with it (audits, what-if checks).
            let spent = self.spent(now);
            let judgement = judge(
                &*self.contracts,
                &self.policy,
                self.authority.as_deref(),
                &intent.tool,
                &intent.arguments,
                now,
                &spent,
            );
            let (compiled, verdict, exhausted) = match judgement {
                Judgement::Rejected(error) => {
                    let reason = error.to_string();
                    record(
                        out,
                        Record::Proposal(ProposalRecord::contract_rejected(
                            &intent,
                            rules::CONTRACT,
                            reason.clone(),
                        )),
                    );
                    self.observe(
                        &intent.call_id,
                        intent.source,
                        format!("rejected: {reason}"),
                    );
                    continue;
                }
                Judgement::Judged { compiled, verdict } => (compiled, verdict, None),
                // Recorded as denied, and the run ends with the budget that ran out.
                Judgement::Exhausted {
                    compiled,
                    rule,
                    reason,
                } => {
                    let error = format!("{rule}: {reason}");
                    (compiled, Verdict::deny(&rule, reason), Some(error))
                }
            };
            self.reply_usable = true;
            let proposal = Proposal {
                call_id: intent.call_id,
                tool: intent.tool,
                arguments: intent.arguments,
                effect: compiled.effect,
                resources: compiled.resources,
                verdict,
            };
            let payload = ProposalRecord::judged(&proposal, intent.source, now, spent);
            record(out, Record::Proposal(payload));
            if let Some(error) = exhausted {
                return self.finish(now, StopReason::BudgetExhausted, None, Some(error), out);
            }
            match &proposal.verdict {
                Verdict::Allow { .. } => {
                    return self.execute(now, proposal, intent.source, out);
                }
                Verdict::Deny { rule, reason } => {
                    self.observe(
                        &proposal.call_id,
                        intent.source,
                        format!("denied by policy ({rule}): {reason}"),
                    );
                }
                Verdict::NeedsApproval { .. } => {
                    record(
                        out,
                        Record::ApprovalRequested(ApprovalRequested {
                            call_id: proposal.call_id.clone(),
                            rule: None,
                            reason: None,
                        }),
                    );
                    out.push(Command::AwaitApproval(proposal.clone()));
                    self.phase = Phase::AwaitingApproval(proposal, intent.source);
                    return;
                }
            }
        }
        // Every intent of the reply is handled: report back and ask the model again.
        if !self.cmd_results.is_empty() {
            let results = std::mem::take(&mut self.cmd_results).join("\n");
            self.push_message(Message::new(Role::User, results));
        }
        if self.reply_usable {
            self.invalid_in_row = 0;
            self.next_step(now, out);
        } else {
            self.unusable(now, "no tool call in the reply could be used".into(), out);
        }
    }

    pub(super) fn recheck(&self, now: Millis, proposal: &Proposal) -> Authorization {
        let Some(authority) = &self.authority else {
            return Authorization::Verdict(Verdict::allow(rules::DEFAULT_ALLOW));
        };
        let resources = self.policy.normalized(&proposal.resources);
        authority.authorize(&AuthzRequest {
            tool: &proposal.tool,
            arguments: &proposal.arguments,
            effect: proposal.effect,
            resources: &resources,
            now,
            spent: &self.spent(now),
        })
    }

    pub(super) fn execute(
        &mut self,
        now: Millis,
        proposal: Proposal,
        source: IntentSource,
        out: &mut Vec<Command>,
    ) {
        if let Err(reason) = self.policy.within_deadline(self.started, now) {
            return self.finish(now, reason, None, None, out);
        }
        self.tool_calls += 1;
        out.push(Command::Execute(ExecRequest {
            call_id: proposal.call_id.clone(),
            tool: proposal.tool.clone(),
            arguments: proposal.arguments.clone(),
            effect: proposal.effect,
            resources: proposal.resources.clone(),
            deadline: self.policy.deadline(self.started),
        }));
        self.phase = Phase::AwaitingTool(proposal, source);
    }

    pub(super) fn unusable(&mut self, now: Millis, why: String, out: &mut Vec<Command>) {
        self.invalid_in_row += 1;
        record(
            out,
            Record::InvalidOutput(InvalidOutput {
                step: self.steps,
                reason: why.clone(),
                in_a_row: self.invalid_in_row,
            }),
        );
        if self.invalid_in_row >= self.spec.limits.max_invalid_replies {
            let error = format!(
                "{} unusable model replies in a row; last: {why}",
                self.invalid_in_row
            );
            return self.finish(now, StopReason::InvalidOutputLimit, None, Some(error), out);
        }
        self.push_message(Message::new(
            Role::User,
            format!(
                "Your last reply could not be used: {why}. Reply with a tool call, a {} block, \
                 or a plain-text final answer.",
                cmd::format_cmd("command")
            ),
        ));
        self.next_step(now, out);
    }

    pub(super) fn observe(&mut self, call_id: &str, source: IntentSource, text: String) {
        match source {
            IntentSource::ToolCall => self.push_message(Message::tool_result(call_id, text)),
            IntentSource::CmdBlock => self.cmd_results.push(cmd::format_result(&text, None)),
        }
    }

    pub(super) fn finish(
        &mut self,
        now: Millis,
        reason: StopReason,
        answer: Option<String>,
        error: Option<String>,
        out: &mut Vec<Command>,
    ) {
        let result = RunResult {
            status: RunStatus::after(reason),
            stop_reason: reason,
            final_answer: answer,
            error,
            steps: self.steps,
            tool_calls: self.tool_calls,
            usage: self.usage,
        };
        record(
            out,
            Record::RunFinished(RunFinished::new(result.clone(), now)),
        );
        self.phase = Phase::Finished;
        self.pending.clear();
        out.push(Command::Finish(result));
    }
}
