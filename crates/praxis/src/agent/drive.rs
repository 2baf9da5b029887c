//! The part of a run after its options are set, shared by [`Agent::run_with`] and
//! [`Agent::resume`]: the budget gate, the runtime's run or resume, then the ports
//! (usage, audit, critic, delivery) and the [`RunResult`] read back from the ledger.

use super::{Agent, AgentError, RunResult, Step, setting};
use crate::callbacks::{CallbackObserver, Callbacks};
use crate::ports::{Budget, Reservation, Review, RunSummary, Spend, UsageRecord};
use praxis_core::{Message, Record, Role, RunStatus};
use praxis_ledger::Entry;
use praxis_runtime::critic::Evidence;
use praxis_runtime::run_request::{self, Asked, RunRequest};
use praxis_runtime::{RunOptions, Runtime};
use std::path::PathBuf;

/// What the runtime is asked to do.
pub(super) enum Job<'a> {
    Run,
    /// Take up this interrupted run.
    Resume(&'a str),
}

impl Agent {
    /// Takes up run `run_id`, stopped before its end (its future dropped, its task aborted,
    /// the process killed with a durable agent), from the agent's checkpointer, by the
    /// runtime's resume rules: a model call in flight is asked again; a tool call in flight
    /// runs again only if it is read-only, anything else becomes an approval request for
    /// the agent's approver. The run keeps its recorded task, history, workspace and writ
    /// and goes on with the agent's provider; the result is the whole run's.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), praxis::AgentError> {
    /// let agent = praxis::Agent::builder().provider("mock").build()?;
    /// let callbacks = praxis::Callbacks::default();
    /// // A run stopped before its end, e.g. by a deadline: its future is dropped.
    /// let run = agent.run_with(&[], "Summarize this workspace", &callbacks, Default::default());
    /// let _ = tokio::time::timeout(std::time::Duration::from_millis(1), run).await;
    /// // Take up every run that stopped before its end.
    /// for run_id in agent.interrupted() {
    ///     let result = agent.resume(&run_id, Default::default()).await?;
    ///     println!("{run_id}: {:?}", result.stop_reason);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn resume(
        &self,
        run_id: &str,
        callbacks: Callbacks,
    ) -> Result<RunResult, AgentError> {
        let inner = &*self.inner;
        let ledger = inner.checkpointer.find(run_id).ok_or_else(|| {
            setting(
                "run_id",
                format!("the agent's checkpointer holds no run `{run_id}`"),
            )
        })?;
        let spec = praxis_runtime::recorded::run_started(&*ledger, run_id)
            .map_err(|e| setting("run_id", e.to_string()))?
            .spec;
        let mut options = self.options(&spec.task, PathBuf::from(&spec.workspace))?;
        options.run_id = Some(run_id.to_string());
        let runtime = self.runtime_over(ledger);
        let history = spec.conversation.history.len();
        self.drive(
            runtime,
            Job::Resume(run_id),
            options,
            &callbacks,
            history,
            &spec.task,
        )
        .await
    }

    /// The runs of the agent's checkpointer that stopped before their end, oldest first.
    pub fn interrupted(&self) -> Vec<String> {
        self.inner.checkpointer.interrupted()
    }

    /// The run's options, resolved the one way every surface does (`run_request`), with
    /// the agent's writ, approver, checkpoint key and tool limits.
    pub(super) fn options(&self, task: &str, workspace: PathBuf) -> Result<RunOptions, AgentError> {
        let inner = &*self.inner;
        let request = RunRequest {
            task: Asked::new(task.to_string(), "task"),
            workspace,
            cognition: inner.cognition.clone(),
            protocol: inner.protocol.clone().map(|p| Asked::new(p, "protocol")),
            tool_choice: None,
            max_steps: inner.max_steps.map(|n| Asked::new(n, "max_steps")),
            max_seconds: inner.max_seconds.map(|n| Asked::new(n, "max_seconds")),
            max_invalid_replies: None,
            tools: inner.tools.clone(),
            read_only: inner.read_only,
        };
        let resolved = run_request::resolve_in(inner.home.as_ref(), request, &inner.flags, &|k| {
            std::env::var(k).ok()
        })
        .map_err(|e| setting(e.field.unwrap_or("config"), e.message))?;
        let mut options = resolved.options;
        options.writ = Some(inner.writ.clone());
        options.approver = inner.approver.clone();
        options.checkpoint_key = Some(inner.checkpoint_key.clone());
        options.tool_limits = inner.tool_limits.clone();
        Ok(options)
    }

    /// The runtime a new run `run_id` is recorded by.
    pub(super) fn runtime_for(&self, run_id: &str) -> Runtime {
        self.runtime_over(self.inner.checkpointer.ledger_for(run_id))
    }

    fn runtime_over(&self, ledger: std::sync::Arc<dyn praxis_ledger::Ledger>) -> Runtime {
        match &self.inner.durable {
            Some(runtime) => runtime.clone(),
            None => Runtime::new(ledger, self.inner.registry.clone()),
        }
    }

    pub(super) async fn drive(
        &self,
        runtime: Runtime,
        job: Job<'_>,
        options: RunOptions,
        callbacks: &Callbacks,
        history: usize,
        task: &str,
    ) -> Result<RunResult, AgentError> {
        let inner = &*self.inner;
        let ports = &inner.ports;
        let provider = options.provider.clone();
        let held = Held::reserve(&*ports.budget, task)?;
        let observer = CallbackObserver::new(callbacks);
        let report = match job {
            Job::Run => {
                let run_id = options.run_id.clone();
                match runtime.run(options, &observer).await {
                    Ok(report) => report,
                    Err(e) => {
                        // A new run that failed to start or to go on: only an interrupted
                        // one is worth keeping.
                        if let Some(run_id) = run_id
                            && !inner.checkpointer.interrupted().contains(&run_id)
                        {
                            inner.checkpointer.finished(&run_id);
                        }
                        return Err(e.into());
                    }
                }
            }
            Job::Resume(run_id) => runtime.resume(run_id, options, &observer).await?,
        };
        // The run reached its end: there is nothing left to resume.
        inner.checkpointer.finished(&report.run_id);
        let entries = runtime.ledger().entries(&report.run_id, 0);
        let steps = steps(entries.as_deref().unwrap_or_default());
        held.commit(spend(&steps));
        let entries = entries?;
        for step in &steps {
            ports.usage.record(&UsageRecord {
                run_id: report.run_id.clone(),
                step: step.reply.step,
                model: step.reply.model.clone(),
                usage: step.reply.usage,
                cost_usd_micros: step.reply.cost_usd_micros,
            });
        }
        ports.audit.record(&report.run_id, &entries)?;
        let judgement = match &ports.critic {
            Some(Review {
                critic,
                key_results,
            }) if report.result.status == RunStatus::Completed => {
                let evidence = Evidence::of_run(&**runtime.ledger(), &report.run_id)
                    .map_err(|e| AgentError::Critic(e.to_string()))?;
                let judgement = match critic {
                    Some(critic) => critic.review(&evidence, key_results).await,
                    None => {
                        praxis_runtime::critic::Critic::new(provider)
                            .judge(&evidence, key_results)
                            .await
                    }
                };
                Some(judgement)
            }
            _ => None,
        };
        let new_messages = new_messages(&report.conversation, history, task);
        let mut result = RunResult {
            steps,
            run_id: report.run_id,
            text: report.result.final_answer,
            status: report.result.status,
            stop_reason: report.result.stop_reason,
            error: report.result.error,
            usage: report.result.usage,
            new_messages,
            entries,
            judgement,
            delivery_error: None,
        };
        if let Some(delivery) = &ports.delivery {
            let summary = RunSummary::of(&result);
            result.delivery_error = delivery
                .deliver(&summary)
                .await
                .err()
                .map(|e| e.to_string());
        }
        Ok(result)
    }
}

/// A budget reservation, given back with nothing spent if the run's future is dropped or
/// fails (a resumed run commits the spending of the whole run, its first part included).
struct Held<'b> {
    budget: &'b dyn Budget,
    reservation: Option<Reservation>,
}

impl<'b> Held<'b> {
    fn reserve(budget: &'b dyn Budget, task: &str) -> Result<Self, AgentError> {
        Ok(Held {
            budget,
            reservation: Some(budget.reserve(task)?),
        })
    }

    fn commit(mut self, spent: Spend) {
        if let Some(reservation) = self.reservation.take() {
            self.budget.commit(reservation, spent);
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(reservation) = self.reservation.take() {
            self.budget.commit(reservation, Spend::default());
        }
    }
}

/// The turns after the system prompt and the history (the task first).
fn new_messages(conversation: &[Message], history: usize, task: &str) -> Vec<Message> {
    let start = 1 + history;
    match conversation.get(start) {
        Some(first) if first.role == Role::User && first.content == task.trim() => {
            conversation[start..].to_vec()
        }
        _ => conversation.iter().skip(1).cloned().collect(),
    }
}

/// What the steps' model calls spent.
fn spend(steps: &[Step]) -> Spend {
    let mut spent = Spend::default();
    for step in steps {
        spent.usage.add(step.reply.usage);
        spent.cost_usd_micros += step.reply.cost_usd_micros.unwrap_or(0);
    }
    spent
}

/// The run's steps, from its typed records.
fn steps(entries: &[Entry]) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for entry in entries {
        match Record::from_entry(&entry.kind, &entry.payload) {
            Ok(Record::ModelResponse(reply)) => steps.push(Step {
                reply,
                calls: Vec::new(),
                results: Vec::new(),
            }),
            Ok(Record::Proposal(call)) => {
                if let Some(step) = steps.last_mut() {
                    step.calls.push(call);
                }
            }
            Ok(Record::Execution(result)) => {
                if let Some(step) = steps.last_mut() {
                    step.results.push(result);
                }
            }
            _ => {}
        }
    }
    steps
}
