//! A run driven from outside, one call at a time: an MCP client's session (`praxis mcp
//! serve`). The client takes the model's place: each call it makes is handed to the kernel
//! as the model's next tool call, so it is compiled by its contract, judged under the run's
//! policy, writ and budget, executed in the run's worker and ledgered exactly like a
//! model's. When the client goes away the "model" answers with a final text and the run
//! completes; a process killed mid-session leaves a run the usual resume rules call
//! interrupted.
//!
//! Nothing here knows MCP: a surface starts a [`Session`] with the client's name, calls
//! [`Session::call`] per request and reads a typed [`CallOutcome`] back.

use crate::{LiveEvent, RunObserver, RunOptions, RunReport, Runtime, RuntimeError};
use praxis_core::record::{Record, VerdictKind};
pub use praxis_core::session::{CallOutcome, SessionClient};
use praxis_core::{ExecStatus, ModelRequest, ModelResponse, ToolCall};
use praxis_models::{BoxFuture, DeltaSink, ModelError, Provider};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// The provider name a session's run records (`run_started.spec.provider`).
pub const PROVIDER: &str = "session";

/// The "final answer" a session's run ends with when its client goes away.
pub const ENDED: &str = "The client ended the session.";

/// A call waiting for the kernel.
struct Incoming {
    tool: String,
    arguments: Value,
    reply: oneshot::Sender<CallOutcome>,
}

/// Replies owed, by call id, and why the run ended once it has.
#[derive(Default)]
struct Owed {
    replies: HashMap<String, oneshot::Sender<CallOutcome>>,
    ended: Option<String>,
}

type SharedOwed = Arc<Mutex<Owed>>;

fn lock(owed: &SharedOwed) -> std::sync::MutexGuard<'_, Owed> {
    owed.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One client's run.
pub struct Session {
    run_id: String,
    /// Dropped when the client goes away: the run's "model" then ends it.
    calls: Mutex<Option<mpsc::Sender<Incoming>>>,
    owed: SharedOwed,
    run: tokio::sync::Mutex<Option<tokio::task::JoinHandle<Result<RunReport, RuntimeError>>>>,
}

impl Session {
    /// Starts the run for `client`. `options` is a resolved run (writ, approver, limits,
    /// checkpoint key); its provider and model are replaced by the client.
    pub fn start(
        runtime: Runtime,
        mut options: RunOptions,
        client: SessionClient,
        observer: Arc<dyn RunObserver>,
    ) -> Session {
        let (calls, incoming) = mpsc::channel(1);
        let owed = SharedOwed::default();
        let model = format!("{} {}", client.name, client.version);
        options.spec.provider = PROVIDER.to_string();
        options.spec.model = model.clone();
        // The client's calls are the conversation: nothing to summarise for it.
        options.spec.compaction = None;
        options.provider = Arc::new(ClientProvider {
            model,
            incoming: tokio::sync::Mutex::new(incoming),
            owed: owed.clone(),
        });
        options.client = Some(client);
        let run_id = options.run_id.get_or_insert_with(crate::new_run_id).clone();
        let observer = SessionObserver {
            inner: observer,
            owed: owed.clone(),
        };
        let run = tokio::spawn(async move { runtime.run(options, &observer).await });
        Session {
            run_id,
            calls: Mutex::new(Some(calls)),
            owed,
            run: tokio::sync::Mutex::new(Some(run)),
        }
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Proposes `tool` with `arguments` as the client's next call and waits for what became
    /// of it (an approval included). Calls are taken one at a time, in the order they come.
    pub async fn call(&self, tool: &str, arguments: Value) -> CallOutcome {
        let (reply, answer) = oneshot::channel();
        let incoming = Incoming {
            tool: tool.to_string(),
            arguments,
            reply,
        };
        let calls = self
            .calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let sent = match calls {
            Some(calls) => calls.send(incoming).await.is_ok(),
            None => false,
        };
        match (sent, answer.await) {
            (true, Ok(outcome)) => outcome,
            _ => CallOutcome::RunEnded {
                why: self.ended_why(),
            },
        }
    }

    fn ended_why(&self) -> String {
        lock(&self.owed)
            .ended
            .clone()
            .unwrap_or_else(|| format!("run {} has ended", self.run_id))
    }

    /// Ends the session: the run completes with [`ENDED`] as its final answer (unless it
    /// ended before) and its report is returned (None: another caller ended it; it has
    /// ended by the time this returns either way).
    pub async fn end(&self) -> Option<Result<RunReport, RuntimeError>> {
        self.calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        // Held while the run ends: a second caller waits for it, then finds nothing to end.
        let mut run = self.run.lock().await;
        let ending = run.take()?;
        Some(match ending.await {
            Ok(report) => report,
            Err(join) => Err(RuntimeError::Session(join.to_string())),
        })
    }
}

/// The client in the model's place: each reply is the client's next call.
struct ClientProvider {
    model: String,
    incoming: tokio::sync::Mutex<mpsc::Receiver<Incoming>>,
    owed: SharedOwed,
}

impl Provider for ClientProvider {
    fn name(&self) -> &str {
        PROVIDER
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn complete<'a>(
        &'a self,
        request: &'a ModelRequest,
        _deltas: &'a dyn DeltaSink,
    ) -> BoxFuture<'a, Result<ModelResponse, ModelError>> {
        Box::pin(async move {
            let reply = |content: String, tool_calls: Vec<ToolCall>| ModelResponse {
                content,
                tool_calls,
                model: self.model.clone(),
                ..ModelResponse::default()
            };
            if request.is_compaction() {
                return Ok(reply("(calls of an outside client)".into(), Vec::new()));
            }
            let next = self.incoming.lock().await.recv().await;
            let Some(call) = next else {
                return Ok(reply(ENDED.into(), Vec::new()));
            };
            // One call per model step, so the step numbers the calls of the run.
            let id = format!("call-{}", request.step);
            lock(&self.owed).replies.insert(id.clone(), call.reply);
            Ok(reply(
                String::new(),
                vec![ToolCall {
                    id,
                    name: call.tool,
                    arguments: call.arguments,
                }],
            ))
        })
    }

    fn for_delegate(&self, _task: &str) -> Result<Arc<dyn Provider>, ModelError> {
        Err(ModelError::Config(
            "`delegate` has no model to give its sub-agent in an outside client's session".into(),
        ))
    }
}

/// Answers each call from the records that settle it, then passes every event on.
struct SessionObserver {
    inner: Arc<dyn RunObserver>,
    owed: SharedOwed,
}

impl SessionObserver {
    fn settle(&self, call_id: &str, outcome: CallOutcome) {
        if let Some(reply) = lock(&self.owed).replies.remove(call_id) {
            let _ = reply.send(outcome);
        }
    }
}

impl RunObserver for SessionObserver {
    fn on_event(&self, run_id: &str, event: LiveEvent<'_>) {
        if let LiveEvent::Entry(entry) = &event {
            match Record::from_entry(&entry.kind, &entry.payload) {
                Ok(Record::Proposal(p)) if p.verdict == VerdictKind::Deny => self.settle(
                    &p.call_id,
                    CallOutcome::Refused {
                        rule: p.rule,
                        reason: p.reason,
                    },
                ),
                Ok(Record::ApprovalDecided(d)) if !d.approved => self.settle(
                    &d.call_id,
                    CallOutcome::Refused {
                        rule: "approval".into(),
                        reason: format!("denied by {}: {}", d.by, d.reason),
                    },
                ),
                Ok(Record::Execution(e)) => self.settle(
                    &e.call_id,
                    CallOutcome::Ran {
                        output: e.output,
                        failed: e.status != ExecStatus::Ok,
                    },
                ),
                Ok(Record::RunFinished(f)) => {
                    let why = match f.error {
                        Some(error) => {
                            format!("run {run_id} ended ({}): {error}", f.stop_reason.as_str())
                        }
                        None => format!("run {run_id} ended ({})", f.stop_reason.as_str()),
                    };
                    let mut owed = lock(&self.owed);
                    owed.ended = Some(why.clone());
                    for (_, reply) in owed.replies.drain() {
                        let _ = reply.send(CallOutcome::RunEnded { why: why.clone() });
                    }
                }
                _ => {}
            }
        }
        self.inner.on_event(run_id, event);
    }
}
