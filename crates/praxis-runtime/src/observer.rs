//! What a run shows while it goes on: live events for observers (the CLI's progress, the
//! server's feed), and the delta sink that forwards streamed model output to them.

use praxis_ledger::Entry;
use praxis_models::DeltaSink;

/// What observers see while a run goes on.
#[derive(Debug)]
pub enum LiveEvent<'a> {
    /// An entry that is now durable in the ledger.
    Entry(&'a Entry),
    /// The runtime is waiting for model call `step`.
    ModelCall { step: u32 },
    /// Streamed model text (not ledgered; the assembled response is).
    Delta { text: &'a str },
    /// Streamed model reasoning (Anthropic thinking, `reasoning_content` of
    /// OpenAI-compatible servers, Ollama `thinking`); ledgered only as part of the reply.
    ReasoningDelta { text: &'a str },
    /// A streamed fragment of tool call `index`'s argument JSON (not ledgered either).
    ToolArgumentsDelta {
        index: usize,
        name: &'a str,
        fragment: &'a str,
    },
    /// A tool started executing.
    ToolStarted { call_id: &'a str, tool: &'a str },
    /// The run is suspended until `proposal` is approved or denied.
    AwaitingApproval { proposal: &'a praxis_core::Proposal },
}

pub trait RunObserver: Send + Sync {
    fn on_event(&self, run_id: &str, event: LiveEvent<'_>);
}

pub struct NoObserver;
impl RunObserver for NoObserver {
    fn on_event(&self, _: &str, _: LiveEvent<'_>) {}
}

/// Forwards a model call's streamed deltas to the run's observer.
pub(crate) struct ObserverDeltas<'a> {
    pub run_id: &'a str,
    pub observer: &'a dyn RunObserver,
}

impl DeltaSink for ObserverDeltas<'_> {
    fn text(&self, delta: &str) {
        self.observer
            .on_event(self.run_id, LiveEvent::Delta { text: delta });
    }
    fn reasoning(&self, delta: &str) {
        self.observer
            .on_event(self.run_id, LiveEvent::ReasoningDelta { text: delta });
    }
    fn tool_arguments(&self, index: usize, name: &str, fragment: &str) {
        self.observer.on_event(
            self.run_id,
            LiveEvent::ToolArgumentsDelta {
                index,
                name,
                fragment,
            },
        );
    }
}
