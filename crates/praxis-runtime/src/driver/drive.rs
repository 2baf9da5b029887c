//! One run's drive: the kernel's commands carried out in order, each batch of records made
//! durable before the command that follows it (write-ahead), the results fed back; and the
//! runtime's opening of a drive (the run's fabric and sandbox, the workspace captured).

use super::first_call::{FirstCall, Taken};
use super::{CHECKPOINT_EVERY, Cancel, RunOptions, RunReport, Runtime, RuntimeError};
use crate::approval::Approver;
use crate::observer::{LiveEvent, ObserverDeltas, RunObserver};
use praxis_core::record::Manifest;
use praxis_core::{
    Authority, Command, Effect, Event, ExecRequest, Kernel, KernelError, Millis, Observation, Spent,
};
use praxis_ledger::checkpoint::{CHECKPOINT_KIND, CheckpointKey, checkpoint_payload};
use praxis_ledger::{Attest, Entry, Ledger, LedgerError, NewEntry, now_rfc3339};
use praxis_models::{DeltaSink, Provider};
use praxis_tools::tools::delegate;
use praxis_tools::{ExecContext, Registry, Tracking, Workspace};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

impl Runtime {
    /// A driver for run `run_id` in `workspace`, with the workspace's state captured (the
    /// baseline for tracking what tools change). Returns the start manifest too.
    pub(super) async fn open_drive<'o>(
        &self,
        run_id: String,
        workspace: &Workspace,
        options: &RunOptions,
        authority: Option<&Arc<dyn Authority>>,
        observer: &'o dyn RunObserver,
    ) -> Result<(Drive<'o>, Manifest), RuntimeError> {
        let mut tool_limits = options.tool_limits.clone();
        // `.git` is read-only to commands unless the writ grants their tools write there.
        tool_limits.sandbox.git_writable |= authority.is_some_and(|writ| {
            writ.commands_write_git(&self.registry.names_with_effect(Effect::Exec))
        });
        // The data dir's blob cap: this run stores at most what is left of it.
        let stored = self
            .ledger
            .blob_bytes()
            .map_err(RuntimeError::ledger(&run_id))?;
        let mut limits = options.capture.clone().with_data_dir_holding(stored);
        // Git metadata a call plants is stripped after it, unless the writ grants commands
        // write access to `.git`.
        limits.git.sweep = !tool_limits.sandbox.git_writable;
        let driving = crate::live::Driving::start(&run_id);
        let mut drive = Drive {
            run_id,
            ledger: self.ledger.clone(),
            registry: self.registry.clone(),
            // The fabric (worker or in-process) and sandbox the settings in
            // `tool_limits.sandbox` ask for, as far as this host supports them; a worker
            // captures the workspace as soon as it is ready.
            ctx: ExecContext::for_run_capturing(
                workspace.clone(),
                tool_limits,
                self.registry.manifests(),
                limits.clone(),
            )
            .await,
            tracker: None,
            blobs: Vec::new(),
            in_flight: Vec::new(),
            observer,
            checkpoint_key: options.checkpoint_key.clone(),
            head: None,
            unattested: 0,
            _driving: driving,
        };
        // Where the run's file tools run (the worker, when it has one): this process never
        // opens a workspace file then.
        let (tracker, manifest, blobs) = Tracking::capture(&drive.ctx, limits)
            .await
            .map_err(RuntimeError::Capture)?;
        drive.tracker = Some(tracker);
        drive.blobs = blobs;
        Ok((drive, manifest))
    }

    pub(super) fn context<'a>(
        &'a self,
        options: &'a RunOptions,
        kernel: &Kernel,
    ) -> RunContext<'a> {
        RunContext {
            provider: &*options.provider,
            approver: &*options.approver,
            approval_timeout: kernel
                .authority()
                .and_then(|a| a.approval_timeout_ms())
                .map(Duration::from_millis),
            cancel: &options.cancel,
            runtime: self,
            options,
        }
    }
}

/// What one run is driven with, besides its kernel and ledger.
pub(crate) struct RunContext<'a> {
    pub(crate) runtime: &'a Runtime,
    pub(crate) options: &'a RunOptions,
    pub(crate) provider: &'a dyn Provider,
    approver: &'a dyn Approver,
    approval_timeout: Option<Duration>,
    cancel: &'a Cancel,
}

pub(super) struct Drive<'o> {
    run_id: String,
    ledger: Arc<dyn Ledger>,
    registry: Arc<Registry>,
    pub(super) ctx: ExecContext,
    tracker: Option<Tracking>,
    /// Blob contents waiting to be appended with the next batch of records.
    blobs: Vec<Vec<u8>>,
    /// Batches submitted to the ledger and not yet known to be durable.
    in_flight: Vec<AppendFuture>,
    observer: &'o dyn RunObserver,
    checkpoint_key: Option<Arc<CheckpointKey>>,
    /// The last entry known to be durable: what a checkpoint signs.
    pub(super) head: Option<Entry>,
    /// Durable entries since the last checkpoint.
    pub(super) unattested: u64,
    /// This process drives the run while the drive lives (see `live`).
    _driving: crate::live::Driving,
}

impl Drive<'_> {
    /// Drives the run from event `first`; `first_call` is its first model call if it was
    /// made ahead ([`FirstCall`]).
    pub(super) async fn run(
        &mut self,
        kernel: &mut Kernel,
        first: Event,
        context: &RunContext<'_>,
        mut first_call: Option<FirstCall<'_>>,
    ) -> Result<RunReport, RuntimeError> {
        let (provider, cancel) = (context.provider, context.cancel);
        let mut event = first;
        // Records carried to the next event's batch (see `Taken::Came`).
        let mut carried = Vec::new();
        loop {
            // A tool list that changed is taken in before the event that leads to the next
            // model call, so that call offers the new tools.
            if matches!(
                event,
                Event::ToolFinished { .. } | Event::ApprovalDecided { .. }
            ) {
                self.follow_tool_changes(kernel).await?;
            }
            let commands = kernel
                .handle(event)
                .map_err(|source| RuntimeError::Kernel {
                    run_id: self.run_id.clone(),
                    source,
                })?;
            let mut batch = std::mem::take(&mut carried);
            let mut next = None;
            let mut carry = false;
            for command in commands {
                match command {
                    Command::Record(record) => batch.push(NewEntry {
                        kind: record.kind().to_string(),
                        payload: record.to_payload(),
                        at: now_rfc3339(),
                    }),
                    // A model call changes nothing in the world, so the records before it are
                    // made durable while the model thinks; the outcome waits for both.
                    Command::CallModel(request) => {
                        self.observer
                            .on_event(&self.run_id, LiveEvent::ModelCall { step: request.step });
                        let taken = first_call.take().and_then(|call| call.take(&request));
                        next = Some(match taken {
                            // A reply that came while the drive opened goes on at once; the
                            // records before it are committed with those it leads to, durable
                            // before the next act as always.
                            Some(Taken::Came(reply)) => {
                                carry = true;
                                reply
                            }
                            taken => {
                                self.submit(std::mem::take(&mut batch), None);
                                let sink = ObserverDeltas {
                                    run_id: &self.run_id,
                                    observer: self.observer,
                                };
                                let call = async {
                                    match taken {
                                        Some(Taken::Coming(call)) => call.await,
                                        _ => call_model(provider, &request, &sink, cancel).await,
                                    }
                                };
                                let pending = std::mem::take(&mut self.in_flight);
                                let (reply, durable) = tokio::join!(
                                    call,
                                    settle(pending, &self.run_id, self.observer)
                                );
                                self.settled(durable?);
                                reply
                            }
                        });
                    }
                    // Write-ahead: everything recorded so far is durable before the next act.
                    other => {
                        // The run's end is always attested, in the commit that makes it
                        // durable; during the run, at most every CHECKPOINT_EVERY entries (a
                        // signature per batch would be waste).
                        let finishing = matches!(other, Command::Finish(_));
                        let attest = if finishing { self.attestation() } else { None };
                        self.submit(std::mem::take(&mut batch), attest);
                        let pending = std::mem::take(&mut self.in_flight);
                        let settled = settle(pending, &self.run_id, self.observer).await?;
                        self.settled(settled);
                        if finishing || self.unattested >= CHECKPOINT_EVERY {
                            self.checkpoint().await?;
                        }
                        match other {
                            Command::Execute(request) => {
                                let spent = kernel.spent(now_millis());
                                next = Some(self.execute(request, spent, context).await?)
                            }
                            Command::AwaitApproval(proposal) => {
                                self.observer.on_event(
                                    &self.run_id,
                                    LiveEvent::AwaitingApproval {
                                        proposal: &proposal,
                                    },
                                );
                                let decision = context.approver.decide(
                                    &self.run_id,
                                    &proposal,
                                    context.approval_timeout,
                                );
                                next = Some(tokio::select! {
                                    biased;
                                    reason = Cancel::cancelled(cancel.0.subscribe()) => Event::Cancel { now: now_millis(), reason },
                                    outcome = decision => Event::ApprovalDecided {
                                        now: now_millis(),
                                        call_id: proposal.call_id.clone(),
                                        approved: outcome.approved,
                                        by: outcome.by,
                                        reason: outcome.reason,
                                    },
                                });
                            }
                            Command::Finish(result) => {
                                return Ok(RunReport {
                                    run_id: self.run_id.clone(),
                                    result,
                                    spent: kernel.spent(now_millis()),
                                    conversation: kernel.messages().clone(),
                                });
                            }
                            Command::Record(_) | Command::CallModel(_) => {
                                unreachable!("handled above")
                            }
                        }
                    }
                }
            }
            if carry {
                carried = batch;
            } else {
                self.submit(batch, None);
            }
            event = next.ok_or_else(|| RuntimeError::Kernel {
                run_id: self.run_id.clone(),
                source: KernelError::UnexpectedEvent {
                    event: "none",
                    phase: "stalled without a command",
                },
            })?;
        }
    }

    /// When the outside tools changed (an MCP server's list), refreshes them, hands the
    /// kernel the new registry (recorded as `tools_changed`) and runs calls with it.
    async fn follow_tool_changes(&mut self, kernel: &mut Kernel) -> Result<(), RuntimeError> {
        let Some((updates, seen)) = self.registry.updates().map(|(u, g)| (u.clone(), g)) else {
            return Ok(());
        };
        if updates.generation() == seen {
            return Ok(());
        }
        let refresh = updates.refresh().await;
        let (registry, _refused) = self
            .registry
            .with_outside_tools(refresh.tools, refresh.generation);
        self.registry = Arc::new(registry);
        let change = Event::ToolsChanged {
            now: now_millis(),
            source: refresh.source,
            contracts: praxis_core::ContractSet(self.registry.clone()),
        };
        let commands = kernel
            .handle(change)
            .map_err(|source| RuntimeError::Kernel {
                run_id: self.run_id.clone(),
                source,
            })?;
        let batch = commands
            .into_iter()
            .filter_map(|command| match command {
                Command::Record(record) => Some(NewEntry {
                    kind: record.kind().to_string(),
                    payload: record.to_payload(),
                    at: now_rfc3339(),
                }),
                _ => None,
            })
            .collect();
        self.submit(batch, None);
        Ok(())
    }

    /// Notes what `settle` made durable.
    fn settled(&mut self, settled: Settled) {
        self.unattested += settled.count;
        if let Some(last) = settled.last {
            if last.kind == CHECKPOINT_KIND {
                self.unattested = 0;
            }
            self.head = Some(last);
        }
    }

    /// Appends a `checkpoint` signing the durable head (nothing in flight: called right after
    /// a settle) and waits until it is durable. The driver writes it, not the kernel: it is an
    /// attestation of the record, not a decision.
    async fn checkpoint(&mut self) -> Result<(), RuntimeError> {
        let (Some(key), Some(head)) = (&self.checkpoint_key, &self.head) else {
            return Ok(());
        };
        if head.kind == CHECKPOINT_KIND || self.unattested == 0 {
            return Ok(());
        }
        let append = self.ledger.append(
            &self.run_id,
            vec![checkpoint_entry(key, &self.run_id, head)],
            Vec::new(),
        );
        let settled = settle(vec![append], &self.run_id, self.observer).await?;
        self.head = settled.last;
        self.unattested = 0;
        Ok(())
    }

    /// Queues a batch (with the blobs it references) in the ledger, with `attest` appended
    /// after it in the same commit; `settle` waits for it. The ledger takes requests in
    /// submission order, so the chain order is the kernel's.
    fn submit(&mut self, batch: Vec<NewEntry>, attest: Option<Attest>) {
        if batch.is_empty() {
            return;
        }
        let blobs = std::mem::take(&mut self.blobs);
        self.in_flight.push(
            self.ledger
                .append_attested(&self.run_id, batch, blobs, attest),
        );
    }

    /// A `checkpoint` signing a batch's last entry with the run's key, if it has one: the
    /// head and its signature durable together.
    fn attestation(&self) -> Option<Attest> {
        let key = self.checkpoint_key.clone()?;
        let run_id = self.run_id.clone();
        Some(Arc::new(move |head: &Entry| {
            checkpoint_entry(&key, &run_id, head)
        }))
    }

    /// Runs one call; `spent` is what the run has consumed so far (a `delegate` gives its
    /// sub-run at most what is left).
    async fn execute(
        &mut self,
        request: ExecRequest,
        spent: Spent,
        context: &RunContext<'_>,
    ) -> Result<Event, RuntimeError> {
        let cancel = context.cancel;
        self.observer.on_event(
            &self.run_id,
            LiveEvent::ToolStarted {
                call_id: &request.call_id,
                tool: &request.tool,
            },
        );
        self.ctx.deadline = request.deadline.map(instant_of);
        let started = Instant::now();
        let delegating = request.tool == delegate::NAME;
        // The run's deadline holds even while a tool hangs (a read blocked on a FIFO, a
        // stuck thread): the call is abandoned there and the kernel stops the run.
        let deadline_at = self.ctx.deadline;
        let deadline = async move {
            match deadline_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let ended = tokio::select! {
            biased;
            // Dropping the tool future kills its process group.
            reason = Cancel::cancelled(cancel.0.subscribe()) => Ended::Cancelled(reason),
            () = deadline => Ended::Deadline,
            // A sub-run shares the cancel handle and stops by itself.
            observation = crate::delegate::delegate(&self.run_id, self.observer, &request, spent, context), if delegating => Ended::Done(observation),
            observation = self.registry.execute(&self.ctx, &request.tool, request.arguments.clone()), if !delegating => Ended::Done(observation),
        };
        // At or past the deadline when it struck, so the kernel stops the run there.
        let mut now = now_millis();
        let mut observation = match ended {
            Ended::Done(observation) => observation,
            Ended::Cancelled(reason) => {
                // A call that does not answer its cancel (blocked in the kernel) dies with
                // its worker; the next call starts a new one.
                // The sweep waits until every process of the call is gone.
                if let Err(why) = self.ctx.abandon_calls_in_flight().await {
                    eprintln!(
                        "praxis: after the cancel, the call's processes were not confirmed \
                         gone before the git metadata sweep: {why}"
                    );
                }
                // What the cancelled call planted in git metadata is stripped all the same.
                if request.effect >= Effect::Write {
                    let mut dropped = Observation::error(String::new());
                    if let Err(e) = self.track_changes(&request, &mut dropped).await {
                        eprintln!("praxis: after the cancel: {e}");
                    } else if !dropped.git_removed.is_empty() {
                        eprintln!(
                            "praxis: after the cancel, removed git metadata the call planted: {}",
                            dropped.git_removed.join(", ")
                        );
                    }
                }
                return Ok(Event::Cancel { now, reason });
            }
            Ended::Deadline => {
                // The sweep below waits until every process of the call is gone.
                let confirmed = self.ctx.abandon_calls_in_flight().await;
                now = now.max(request.deadline.unwrap_or(0));
                let mut message = format!(
                    "`{}` was stopped at the run's deadline (max_seconds) and abandoned",
                    request.tool
                );
                if let Err(why) = confirmed {
                    message.push_str(&format!(
                        "; its processes were not confirmed gone before the git metadata \
                         sweep: {why}"
                    ));
                }
                Observation {
                    status: praxis_core::ExecStatus::Timeout,
                    ..Observation::error(message)
                }
            }
        };
        if observation.duration_ms == 0 {
            observation.duration_ms = started.elapsed().as_millis() as u64;
        }
        if request.effect >= Effect::Write || delegating {
            self.track_changes(&request, &mut observation).await?;
        }
        Ok(Event::ToolFinished {
            now: now.max(now_millis()),
            call_id: request.call_id,
            observation,
        })
    }

    /// Records which workspace files the call changed, storing their new contents as blobs.
    async fn track_changes(
        &mut self,
        request: &ExecRequest,
        observation: &mut Observation,
    ) -> Result<(), RuntimeError> {
        let Some(tracker) = &self.tracker else {
            return Ok(());
        };
        let hints: Vec<String> = request
            .resources
            .iter()
            .filter_map(|r| match r {
                praxis_core::Resource::Path {
                    path,
                    mode: praxis_core::AccessMode::Write,
                } => Some(path.clone()),
                _ => None,
            })
            .collect();
        let changed = tracker
            .refresh(hints)
            .await
            .map_err(RuntimeError::Capture)?;
        self.blobs.extend(changed.blobs);
        observation.files_changed = changed.files_changed;
        if !changed.git_removed.is_empty() {
            observation.output.push_str(&format!(
                "\n[praxis: removed git metadata this call planted, which the writ does not \
                 grant: {}]",
                changed.git_removed.join(", ")
            ));
        }
        observation.git_removed = changed.git_removed;
        Ok(())
    }
}

/// The `checkpoint` entry signing `head` with the run's key.
fn checkpoint_entry(key: &CheckpointKey, run_id: &str, head: &Entry) -> NewEntry {
    NewEntry::now(
        CHECKPOINT_KIND,
        checkpoint_payload(key, run_id, head.seq, &head.hash),
    )
}

/// How a tool call ended in the driver.
enum Ended {
    Done(Observation),
    Cancelled(String),
    /// The run's deadline struck while the call ran.
    Deadline,
}

/// One model call, streaming deltas to `sink`; a cancel wins over a slow model.
pub(super) async fn call_model(
    provider: &dyn Provider,
    request: &praxis_core::ModelRequest,
    sink: &dyn DeltaSink,
    cancel: &Cancel,
) -> Event {
    // Biased towards the cancel: a run cancelled before the call starts never makes it.
    tokio::select! {
        biased;
        reason = Cancel::cancelled(cancel.0.subscribe()) => Event::Cancel { now: now_millis(), reason },
        reply = provider.complete(request, sink) => match reply {
            Ok(response) => Event::ModelReplied { now: now_millis(), response },
            Err(error) => Event::ModelFailed { now: now_millis(), error: error.to_string() },
        },
    }
}

/// What a `settle` made durable.
struct Settled {
    count: u64,
    last: Option<Entry>,
}

/// Waits until every submitted batch is durable, telling the observer about each entry.
async fn settle(
    pending: Vec<AppendFuture>,
    run_id: &str,
    observer: &dyn RunObserver,
) -> Result<Settled, RuntimeError> {
    let mut settled = Settled {
        count: 0,
        last: None,
    };
    for append in pending {
        let entries = append.await.map_err(RuntimeError::ledger(run_id))?;
        for entry in &entries {
            observer.on_event(run_id, LiveEvent::Entry(entry));
        }
        settled.count += entries.len() as u64;
        if let Some(last) = entries.into_iter().next_back() {
            settled.last = Some(last);
        }
    }
    Ok(settled)
}

type AppendFuture = praxis_ledger::BoxFuture<'static, Result<Vec<Entry>, LedgerError>>;

pub(crate) fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

fn instant_of(at: Millis) -> Instant {
    let now = now_millis();
    if at >= now {
        Instant::now() + Duration::from_millis(at - now)
    } else {
        Instant::now()
    }
}
