//! A new run's first model call, made while its drive opens.
//!
//! Opening a drive (the run's worker and sandbox, the workspace capture) takes longer than a
//! fast model call, and the kernel's first request does not depend on either: it is the
//! system prompt (the spec, the offered tools, the start time), the history and the task.
//! So the runtime asks the kernel what the `Start` event will ask the model
//! ([`Kernel::first_model_request`], worked out on a copy), starts that call, and opens the
//! drive meanwhile. When the real kernel, given the real `Start`, asks for the same request,
//! the drive takes this call's reply instead of making another.
//!
//! What does not change: the run's first entries are recorded before what the reply leads
//! to (in the same commit, when the reply came first), and every entry is durable before
//! anything executes (the drive settles before each non-model command). What observers see
//! does not change either: the call's streamed deltas are held until the drive takes the
//! call, after it announced the call ([`LiveEvent::ModelCall`]). A drive that cannot open
//! drops the call (its request is abandoned, as a cancelled run's is): such a run records
//! nothing, as before.

use super::drive::call_model;
use super::{Cancel, RunObserver};
use crate::observer::LiveEvent;
use praxis_core::{Event, Kernel, Millis, ModelRequest};
use praxis_models::{DeltaSink, Provider};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// The first model call of a run, under way while its drive opens.
pub(crate) struct FirstCall<'a> {
    /// What it asked: the drive takes it only for this same request.
    request: ModelRequest,
    call: Pin<Box<dyn Future<Output = Event> + Send + 'a>>,
    /// Its outcome, once it came (the call future is not polled again).
    reply: Option<Event>,
    deltas: Arc<HeldDeltas<'a>>,
}

impl<'a> FirstCall<'a> {
    /// Starts the call the kernel's `Start` at `now` will ask for (None when that start asks
    /// for no model call, as a run with no budget left does).
    pub(crate) fn start(
        kernel: &Kernel,
        now: Millis,
        run_id: &'a str,
        provider: &'a dyn Provider,
        observer: &'a dyn RunObserver,
        cancel: &'a Cancel,
    ) -> Option<Self> {
        let request = kernel.first_model_request(now)?;
        let deltas = Arc::new(HeldDeltas {
            run_id,
            observer,
            held: Mutex::new(Some(Vec::new())),
        });
        let (asked, sink) = (request.clone(), deltas.clone());
        let call = Box::pin(async move { call_model(provider, &asked, &*sink, cancel).await });
        Some(FirstCall {
            request,
            call,
            reply: None,
            deltas,
        })
    }

    /// Runs `work` (the drive's opening) to its end while the call goes on. The call is
    /// polled first, so it is on its way before `work` does anything.
    pub(crate) async fn alongside<T>(&mut self, work: impl Future<Output = T>) -> T {
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                biased;
                reply = &mut self.call, if self.reply.is_none() => self.reply = Some(reply),
                out = &mut work => return out,
            }
        }
    }

    /// This call's reply if the drive's first request is `request` (the deltas it held go
    /// to the observer now, after the drive announced the call); None, and the call is
    /// dropped, if the drive asks something else.
    pub(crate) fn take(self, request: &ModelRequest) -> Option<Taken<'a>> {
        if self.request != *request {
            return None;
        }
        self.deltas.release();
        Some(match self.reply {
            Some(reply) => Taken::Came(reply),
            None => Taken::Coming(self.call),
        })
    }
}

/// The first call, taken by the drive.
pub(crate) enum Taken<'a> {
    /// Its reply came while the drive opened.
    Came(Event),
    /// It is still under way.
    Coming(Pin<Box<dyn Future<Output = Event> + Send + 'a>>),
}

/// Forwards a call's deltas to the run's observer, held until [`HeldDeltas::release`].
struct HeldDeltas<'a> {
    run_id: &'a str,
    observer: &'a dyn RunObserver,
    /// The deltas held so far; None once released (deltas then go straight through).
    held: Mutex<Option<Vec<Delta>>>,
}

enum Delta {
    Text(String),
    Reasoning(String),
    ToolArguments {
        index: usize,
        name: String,
        fragment: String,
    },
}

impl HeldDeltas<'_> {
    /// `live` to the observer, or what `owned` makes of it held.
    fn pass(&self, live: LiveEvent<'_>, owned: impl FnOnce() -> Delta) {
        if let Some(held) = self.held.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            held.push(owned());
            return;
        }
        self.observer.on_event(self.run_id, live);
    }

    /// Sends what was held, and every later delta as it comes.
    fn release(&self) {
        let held = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default();
        for delta in &held {
            let event = match delta {
                Delta::Text(text) => LiveEvent::Delta { text },
                Delta::Reasoning(text) => LiveEvent::ReasoningDelta { text },
                Delta::ToolArguments {
                    index,
                    name,
                    fragment,
                } => LiveEvent::ToolArgumentsDelta {
                    index: *index,
                    name,
                    fragment,
                },
            };
            self.observer.on_event(self.run_id, event);
        }
    }
}

impl DeltaSink for HeldDeltas<'_> {
    fn text(&self, text: &str) {
        self.pass(LiveEvent::Delta { text }, || Delta::Text(text.into()));
    }
    fn reasoning(&self, text: &str) {
        self.pass(LiveEvent::ReasoningDelta { text }, || {
            Delta::Reasoning(text.into())
        });
    }
    fn tool_arguments(&self, index: usize, name: &str, fragment: &str) {
        let live = LiveEvent::ToolArgumentsDelta {
            index,
            name,
            fragment,
        };
        self.pass(live, || Delta::ToolArguments {
            index,
            name: name.into(),
            fragment: fragment.into(),
        });
    }
}
