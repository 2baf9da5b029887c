//! [`Callbacks`]: what a caller hears while a run goes on. Every callback is optional.

use praxis_core::record::{Execution, ModelResponseRecord, ProposalRecord};
use praxis_core::{Record, StopReason, Usage};
use praxis_runtime::{LiveEvent, RunObserver};
use std::sync::Mutex;

/// A callback taking a borrowed value.
type Borrowing<T> = Option<Box<dyn for<'a> Fn(&'a T) + Send + Sync>>;

/// Callbacks for one run, all optional, called on the runtime's task as things happen.
///
/// Order within a step (one model call): `on_step_start(step)`, the streamed
/// `on_reasoning_delta` and `on_delta` fragments, then when the reply is durable in the
/// ledger `on_step_usage(step, usage)` and `on_step_end(reply)`, then for each call of the
/// reply `on_tool_call(proposal)` (with the verdict) and, when it ran, `on_tool_result`.
/// A step's results always come before the next step's `on_step_start`.
/// `on_turn_end(stop_reason)` comes last, once.
///
/// ```
/// let callbacks = praxis::Callbacks::default()
///     .on_delta(|text| print!("{text}"))
///     .on_reasoning_delta(|text| eprint!("{text}"))
///     .on_tool_call(|call| eprintln!("{} -> {:?}", call.tool, call.verdict))
///     .on_turn_end(|reason| eprintln!("stopped: {}", reason.as_str()));
/// # drop(callbacks);
/// ```
#[derive(Default)]
pub struct Callbacks {
    delta: Borrowing<str>,
    reasoning_delta: Borrowing<str>,
    step_start: Option<Box<dyn Fn(u32) + Send + Sync>>,
    step_end: Borrowing<ModelResponseRecord>,
    step_usage: Option<Box<dyn Fn(u32, Usage) + Send + Sync>>,
    tool_call: Borrowing<ProposalRecord>,
    tool_result: Borrowing<Execution>,
    turn_end: Option<Box<dyn Fn(StopReason) + Send + Sync>>,
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident, $field:ident, $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, f: impl for<'a> Fn(&'a $ty) + Send + Sync + 'static) -> Self {
            self.$field = Some(Box::new(f));
            self
        }
    };
}

impl Callbacks {
    setter!(
        /// Each fragment of the reply's text as it streams.
        on_delta, delta, str
    );
    setter!(
        /// Each fragment of the model's reasoning as it streams (Anthropic thinking,
        /// `reasoning_content` of OpenAI-compatible servers, Ollama `thinking`).
        on_reasoning_delta, reasoning_delta, str
    );
    setter!(
        /// The model's reply as recorded: step, text, tool calls, usage, reasoning.
        on_step_end, step_end, ModelResponseRecord
    );
    setter!(
        /// A call the model proposed, with the kernel's verdict (`verdict`, `rule`, `reason`).
        on_tool_call, tool_call, ProposalRecord
    );
    setter!(
        /// A call that ran: status, exit code, output (capped), files changed.
        on_tool_result, tool_result, Execution
    );

    /// The runtime is about to call the model for step `step` (1-based; 0 is a
    /// compaction summary request).
    pub fn on_step_start(mut self, f: impl Fn(u32) + Send + Sync + 'static) -> Self {
        self.step_start = Some(Box::new(f));
        self
    }

    /// The tokens step `step` used (right before `on_step_end`).
    pub fn on_step_usage(mut self, f: impl Fn(u32, Usage) + Send + Sync + 'static) -> Self {
        self.step_usage = Some(Box::new(f));
        self
    }

    /// Why the run stopped (`Completed` when the model gave its final answer).
    pub fn on_turn_end(mut self, f: impl Fn(StopReason) + Send + Sync + 'static) -> Self {
        self.turn_end = Some(Box::new(f));
        self
    }
}

/// The runtime observer that calls a run's [`Callbacks`].
///
/// The driver makes a step's records durable while the next model call is already under
/// way, so `execution` entries can arrive after the next `ModelCall`. The observer holds
/// that step's start back until the step's first output (a delta, its reply or error, or
/// the run's end), so callers see a step's results before the next step starts.
pub(crate) struct CallbackObserver<'c> {
    callbacks: &'c Callbacks,
    pending_start: Mutex<Option<u32>>,
}

impl<'c> CallbackObserver<'c> {
    pub(crate) fn new(callbacks: &'c Callbacks) -> Self {
        CallbackObserver {
            callbacks,
            pending_start: Mutex::new(None),
        }
    }

    fn start_pending_step(&self) {
        let step = self
            .pending_start
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let (Some(step), Some(f)) = (step, &self.callbacks.step_start) {
            f(step);
        }
    }
}

impl RunObserver for CallbackObserver<'_> {
    fn on_event(&self, _run_id: &str, event: LiveEvent<'_>) {
        let c = self.callbacks;
        match event {
            LiveEvent::ModelCall { step } => {
                self.start_pending_step();
                *self.pending_start.lock().unwrap_or_else(|p| p.into_inner()) = Some(step);
            }
            LiveEvent::Delta { text } => {
                self.start_pending_step();
                call(&c.delta, text);
            }
            LiveEvent::ReasoningDelta { text } => {
                self.start_pending_step();
                call(&c.reasoning_delta, text);
            }
            LiveEvent::ToolArgumentsDelta { .. } => self.start_pending_step(),
            LiveEvent::Entry(entry) => {
                // A record this version cannot read is not a callback's business.
                let Ok(record) = Record::from_entry(&entry.kind, &entry.payload) else {
                    return;
                };
                match &record {
                    Record::ModelResponse(reply) => {
                        self.start_pending_step();
                        if let Some(f) = &c.step_usage {
                            f(reply.step, reply.usage);
                        }
                        call(&c.step_end, reply);
                    }
                    Record::Proposal(proposal) => call(&c.tool_call, proposal),
                    Record::Execution(execution) => call(&c.tool_result, execution),
                    Record::ModelError(_) | Record::InvalidOutput(_) => self.start_pending_step(),
                    Record::RunFinished(finished) => {
                        self.start_pending_step();
                        if let Some(f) = &c.turn_end {
                            f(finished.stop_reason);
                        }
                    }
                    _ => {}
                }
            }
            LiveEvent::ToolStarted { .. } | LiveEvent::AwaitingApproval { .. } => {
                self.start_pending_step()
            }
        }
    }
}

fn call<T: ?Sized>(f: &Borrowing<T>, value: &T) {
    if let Some(f) = f {
        f(value);
    }
}
