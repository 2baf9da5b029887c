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
//! call, after it announced the call ([`crate::observer::LiveEvent::ModelCall`]). A drive
//! that cannot open drops the call (its request is abandoned, as a cancelled run's is): such
//! a run records nothing, as before.

use super::drive::call_model;
use super::{Cancel, RunObserver};
use crate::observer::ObserverDeltas;
use praxis_core::{Event, Kernel, Millis, ModelRequest};
use praxis_models::{Delta, DeltaSink, Provider};
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
            live: ObserverDeltas { run_id, observer },
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
    live: ObserverDeltas<'a>,
    /// The deltas held so far; None once released (deltas then go straight through).
    held: Mutex<Option<Vec<Delta>>>,
}

impl HeldDeltas<'_> {
    /// Holds what `owned` makes of a delta while deltas are held; false once released.
    fn hold(&self, owned: impl FnOnce() -> Delta) -> bool {
        match self.held.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(held) => {
                held.push(owned());
                true
            }
            None => false,
        }
    }

    /// Sends what was held, and every later delta as it comes.
    fn release(&self) {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner()).take();
        for delta in held.unwrap_or_default() {
            delta.send_to(&self.live);
        }
    }
}

impl DeltaSink for HeldDeltas<'_> {
    fn text(&self, text: &str) {
        if !self.hold(|| Delta::Text(text.into())) {
            self.live.text(text);
        }
    }
    fn reasoning(&self, text: &str) {
        if !self.hold(|| Delta::Reasoning(text.into())) {
            self.live.reasoning(text);
        }
    }
    fn tool_arguments(&self, index: usize, name: &str, fragment: &str) {
        let owned = || Delta::ToolArguments {
            index,
            name: name.into(),
            fragment: fragment.into(),
        };
        if !self.hold(owned) {
            self.live.tool_arguments(index, name, fragment);
        }
    }
}
