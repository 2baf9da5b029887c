//! The runtime's side of the worker: starts it, sends calls and tracking requests, restarts
//! it after a crash (restoring the tracker's state).

use super::protocol::{
    Answer, FromWorker, HELLO_TIMEOUT, HostFacts, ToWorker, WorkerSetup, read_frame, write_frame,
};
use super::{pool, process};
use crate::ToolLimits;
use crate::fabric::WorkerCommand;
use crate::manifest::ToolManifest;
use crate::tracker::{CaptureLimits, TrackerState};
use crate::tracking::CallChanges;
use praxis_core::Observation;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

type Pending = Arc<Mutex<PendingCalls>>;

#[derive(Default)]
struct PendingCalls {
    /// Set (under this lock) once the worker is gone: no call may wait on it after that.
    dead: bool,
    calls: HashMap<u64, oneshot::Sender<Result<Answer, String>>>,
    /// Blobs received for requests whose final frame has not come yet.
    blobs: HashMap<u64, Vec<Vec<u8>>>,
}

impl PendingCalls {
    /// Routes one frame from the worker to the request waiting for it.
    fn receive(&mut self, frame: FromWorker) {
        let (id, answer) = match frame {
            FromWorker::Blob { id, hex } => {
                if let Ok(bytes) = hex::decode(hex) {
                    self.blobs.entry(id).or_default().push(bytes);
                }
                return;
            }
            FromWorker::Result { id, observation } => (id, Answer::Observation(observation)),
            FromWorker::Captured {
                id,
                manifest,
                state,
            } => (
                id,
                Answer::Captured {
                    manifest,
                    state,
                    blobs: self.blobs.remove(&id).unwrap_or_default(),
                },
            ),
            FromWorker::Refreshed {
                id,
                changes,
                delta,
                state,
                git_removed,
            } => (
                id,
                Answer::Refreshed {
                    changes,
                    delta,
                    state,
                    git_removed,
                    blobs: self.blobs.remove(&id).unwrap_or_default(),
                },
            ),
            FromWorker::TrackFailed { id, message } => {
                self.blobs.remove(&id);
                (id, Answer::TrackFailed(message))
            }
            FromWorker::Released { id } => (id, Answer::Released(Ok(()))),
            FromWorker::NotReleased { id, why } => (id, Answer::Released(Err(why))),
            FromWorker::Ready { .. } | FromWorker::Refused { .. } => return,
        };
        if let Some(waiter) = self.calls.remove(&id) {
            let _ = waiter.send(Ok(answer));
        }
    }
}

/// One running worker process.
pub(super) struct Connection {
    tx: mpsc::UnboundedSender<ToWorker>,
    pending: Pending,
    dead: Arc<AtomicBool>,
    /// A request's caller went away before its answer (the worker was told to cancel it,
    /// and may still be finishing it): the worker serves no other run.
    abandoned: AtomicBool,
    pid: u32,
    /// Taking (dropping) it makes the reader kill the worker.
    kill: Mutex<Option<oneshot::Sender<()>>>,
    /// Becomes true once the worker process has exited and been reaped.
    exited: tokio::sync::watch::Receiver<bool>,
}

impl Connection {
    fn kill(&self) {
        self.dead.store(true, Ordering::SeqCst);
        if let Ok(mut kill) = self.kill.lock() {
            kill.take();
        }
    }

    /// Sends request `id` (`message`) and waits for its answer; dropping the future
    /// cancels it in the worker.
    async fn request(&self, id: u64, message: ToWorker) -> Result<Answer, Failure> {
        let (tx, rx) = oneshot::channel();
        let registered = match self.pending.lock() {
            Ok(mut p) if !p.dead => {
                p.calls.insert(id, tx);
                true
            }
            _ => false,
        };
        if !registered {
            return Err(Failure::Died(format!(
                "worker pid {} had already exited",
                self.pid
            )));
        }
        if self.tx.send(message).is_err() {
            if let Ok(mut p) = self.pending.lock() {
                p.calls.remove(&id);
            }
            return Err(Failure::Died("its input is closed".into()));
        }
        let mut guard = CancelOnDrop {
            conn: self,
            id,
            armed: true,
        };
        let answer = rx.await;
        guard.armed = false;
        match answer {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(why)) => Err(Failure::Died(why)),
            Err(_) => Err(Failure::Died("the connection was dropped".into())),
        }
    }

    /// Whether this worker may be asked to serve another run: alive, nothing pending, no
    /// request abandoned.
    fn may_serve_again(&self) -> bool {
        !self.dead.load(Ordering::SeqCst)
            && !self.abandoned.load(Ordering::SeqCst)
            && self
                .pending
                .lock()
                .is_ok_and(|p| !p.dead && p.calls.is_empty() && p.blobs.is_empty())
    }

    /// Ends its run in the worker (`release`): Ok once the worker said nothing of the run
    /// is left in it.
    async fn release(&self) -> Result<(), String> {
        let answer = tokio::time::timeout(
            RELEASE_WAIT,
            self.request(RELEASE_ID, ToWorker::Release { id: RELEASE_ID }),
        )
        .await
        .map_err(|_| format!("no answer within {} ms", RELEASE_WAIT.as_millis()))?;
        match answer {
            Ok(Answer::Released(released)) => released,
            Ok(other) => Err(format!("unexpected answer to release: {other:?}")),
            Err(failure) => Err(failure.describe("release the worker")),
        }
    }
}

/// The id of a `release` request (a client's own ids count up from 1).
const RELEASE_ID: u64 = u64::MAX;
/// How long a worker may take to answer `release` before it is ended instead.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

/// What a worker serves, all of which its sandbox and its own Landlock domain were made
/// for: a worker kept after its run serves only a run that is the same in all of it.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Serves {
    workspace: PathBuf,
    /// The workspace directory's device and inode when the client was made: a directory
    /// made again at the same path is another one, which the worker's Landlock rules (bound
    /// to the old one's inode) would not cover. None (it could not be read): no worker is
    /// kept for this client, nor taken.
    identity: Option<(u64, u64)>,
    limits: ToolLimits,
    manifests: Vec<ToolManifest>,
}

/// A live worker kept after its run for the next run it serves the same way (see
/// [`super::pool::park`]).
pub(super) struct Parked {
    conn: Arc<Connection>,
    serves: Serves,
    /// What its last client knew of it.
    info: Info,
}

impl Parked {
    /// Whether it was made for a run that needs `serves` (a kept worker's workspace was
    /// identified, see [`WorkerClient`]'s drop, so an equal `serves` was too).
    pub(super) fn fits(&self, serves: &Serves) -> bool {
        self.serves == *serves
    }

    /// Whether it is still alive with nothing pending.
    pub(super) fn may_serve(&self) -> bool {
        self.conn.may_serve_again()
    }

    pub(super) fn pid(&self) -> u32 {
        self.conn.pid
    }

    /// The runs it has served, the last one included.
    pub(super) fn runs_served(&self) -> u32 {
        self.info.earlier_runs + 1
    }
}

#[derive(Clone, Debug, Default)]
struct Info {
    pid: Option<u32>,
    layers: Value,
    starts: u32,
    /// Of `starts`, how many claimed a process started ahead of time.
    warm_starts: u32,
    /// The current worker was forked by its pool's fork server (not exec'd).
    forked: bool,
    /// What the current worker computed itself to get ready.
    setup: WorkerSetup,
    /// Runs the current worker process served before this one (0: a new process).
    earlier_runs: u32,
}

/// What a run records of its worker ([`WorkerClient::describe`]); read back, a field an
/// older run did not record is its default.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct WorkerDescription {
    /// The worker command (program and arguments).
    pub command: String,
    pub pid: Option<u32>,
    /// Worker processes started for the run (1 + restarts).
    pub starts: u32,
    /// Of `starts`, how many claimed a process started ahead of time.
    pub warm_starts: u32,
    /// The current worker was forked by its pool's fork server (not exec'd).
    pub forked: bool,
    /// The parts of its sandbox made while it waited for its run.
    pub made_ahead: Vec<String>,
    /// Its sandbox's spawner sets itself up at the run's first command.
    pub spawner_waits: bool,
    /// Runs the worker process served before this one, each released first (see
    /// [`super::pool`]): 0 for a new process.
    pub earlier_runs: u32,
}

/// The runtime's side of the worker: starts it, sends calls, restarts it after a crash.
pub struct WorkerClient {
    command: WorkerCommand,
    /// The workspace, limits and manifest tools (besides the built-ins) the worker serves.
    serves: Serves,
    conn: tokio::sync::Mutex<Option<Arc<Connection>>>,
    info: Mutex<Info>,
    next_id: AtomicU64,
    /// The workspace tracker's limits and state as the worker last reported them, restored
    /// into a worker that replaces a dead one.
    tracking: Mutex<Option<(CaptureLimits, TrackerState)>>,
    /// The capture the first worker is asked for right after its `hello`
    /// ([`WorkerClient::capturing_at_start`]), then its answer, until
    /// [`WorkerClient::capture`] takes it.
    early_capture: Mutex<EarlyCapture>,
}

/// A capture asked for with the first `hello` (see [`WorkerClient::capturing_at_start`]).
#[derive(Default)]
enum EarlyCapture {
    #[default]
    None,
    /// To ask for with the first worker's `hello`.
    Asked(CaptureLimits),
    /// Sent: its answer comes on this receiver.
    Sent(CaptureLimits, oneshot::Receiver<Result<Answer, String>>),
}

impl std::fmt::Debug for WorkerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerClient")
            .field("command", &self.command)
            .field("workspace", &self.serves.workspace)
            .finish()
    }
}

impl WorkerClient {
    /// A client for a worker serving `workspace` under `limits`; nothing starts until
    /// [`WorkerClient::start`] or the first call.
    pub fn new(command: WorkerCommand, workspace: PathBuf, limits: ToolLimits) -> Self {
        use std::os::unix::fs::MetadataExt;
        let identity = std::fs::metadata(&workspace)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        WorkerClient {
            command,
            serves: Serves {
                workspace,
                identity,
                limits,
                manifests: Vec::new(),
            },
            conn: tokio::sync::Mutex::new(None),
            info: Mutex::new(Info::default()),
            next_id: AtomicU64::new(1),
            tracking: Mutex::new(None),
            early_capture: Mutex::new(EarlyCapture::None),
        }
    }

    /// The first worker is asked to capture the workspace under `limits` in the same write
    /// as its `hello`: it does so once it is ready, without waiting for the runtime to read
    /// `ready` and ask. [`WorkerClient::capture`] with the same limits takes that answer.
    pub fn capturing_at_start(self, limits: CaptureLimits) -> Self {
        if let Ok(mut early) = self.early_capture.lock() {
            *early = EarlyCapture::Asked(limits);
        }
        self
    }

    /// The worker also runs these manifest tools (the run's registry's).
    pub fn with_manifests(mut self, manifests: Vec<ToolManifest>) -> Self {
        self.serves.manifests = manifests;
        self
    }

    /// Starts the worker now (if it is not running) and waits for its `ready`.
    pub async fn start(&self) -> Result<(), String> {
        self.connection().await.map(drop)
    }

    /// The pid of the current worker process, if one runs.
    pub fn pid(&self) -> Option<u32> {
        self.info.lock().map(|i| i.pid).unwrap_or(None)
    }

    /// How many worker processes were started (1 + restarts).
    pub fn starts(&self) -> u32 {
        self.info.lock().map(|i| i.starts).unwrap_or(0)
    }

    /// Of [`WorkerClient::starts`], how many claimed a worker process started ahead of
    /// time ([`super::keep_warm`]).
    pub fn warm_starts(&self) -> u32 {
        self.info.lock().map(|i| i.warm_starts).unwrap_or(0)
    }

    /// Whether the current worker was forked by its pool's fork server (not exec'd).
    pub fn forked(&self) -> bool {
        self.info.lock().map(|i| i.forked).unwrap_or(false)
    }

    /// What the current worker computed itself to get ready (see [`WorkerSetup`]).
    pub fn setup(&self) -> WorkerSetup {
        self.info
            .lock()
            .map(|i| i.setup.clone())
            .unwrap_or_default()
    }

    /// The sandbox layers the worker reported in its `ready`.
    pub fn layers(&self) -> Value {
        self.info
            .lock()
            .map(|i| i.layers.clone())
            .unwrap_or(Value::Null)
    }

    /// What a run records of its worker (`run_started.environment.sandbox.worker`).
    pub fn describe(&self) -> WorkerDescription {
        let info = self.info.lock().map(|i| i.clone()).unwrap_or_default();
        WorkerDescription {
            command: format!(
                "{} {}",
                self.command.program.display(),
                self.command.args.join(" ")
            ),
            pid: info.pid,
            starts: info.starts,
            warm_starts: info.warm_starts,
            forked: info.forked,
            made_ahead: info.setup.made_ahead,
            spawner_waits: info.setup.spawner_waits,
            earlier_runs: info.earlier_runs,
        }
    }

    async fn connection(&self) -> Result<Arc<Connection>, String> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref()
            && !conn.dead.load(Ordering::SeqCst)
        {
            return Ok(conn.clone());
        }
        *slot = None;
        let conn = match pool::claim_parked(&self.command, &self.serves) {
            Some(parked) => self.adopt(parked)?,
            None => Arc::new(self.spawn().await?),
        };
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Takes over a worker kept after an earlier run served the same way: it is ready
    /// (confined, its sandbox made), so what `spawn` sends after its handshake goes at once.
    fn adopt(&self, parked: Parked) -> Result<Arc<Connection>, String> {
        let Parked { conn, info, .. } = parked;
        if let Ok(mut mine) = self.info.lock() {
            *mine = Info {
                starts: mine.starts + 1,
                warm_starts: mine.warm_starts + 1,
                earlier_runs: info.earlier_runs + 1,
                ..info
            };
        }
        let capture = self.capture_with_hello(&conn.pending);
        let restore = self.tracking.lock().ok().and_then(|t| t.clone());
        let restore = restore.map(|(limits, state)| ToWorker::Restore { limits, state });
        for message in capture.into_iter().chain(restore) {
            conn.tx
                .send(message)
                .map_err(|_| format!("worker pid {}: its input is closed", conn.pid))?;
        }
        Ok(conn)
    }

    /// The capture to send with this `hello`, if one was asked for and not sent yet (only
    /// the first worker's: a replacement is restored instead); its answer is registered in
    /// `pending`.
    fn capture_with_hello(&self, pending: &Pending) -> Option<ToWorker> {
        let mut early = self.early_capture.lock().ok()?;
        let EarlyCapture::Asked(limits) = std::mem::take(&mut *early) else {
            return None;
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        pending.lock().ok()?.calls.insert(id, tx);
        *early = EarlyCapture::Sent(limits.clone(), rx);
        Some(ToWorker::Capture { id, limits })
    }

    async fn spawn(&self) -> Result<Connection, String> {
        let program = &self.command.program;
        // A process started ahead of time when this command is pooled, else a new one.
        let (mut child, warm) = match pool::claim(&self.command) {
            Some(child) => (child, true),
            None => (
                process::exec(&self.command)
                    .map_err(|e| format!("cannot start `{}`: {e}", program.display()))?,
                false,
            ),
        };
        let (Some(mut stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("the worker's pipes are missing".into());
        };
        // The worker's private home goes in here, removed once the worker has exited: a
        // killed worker (the end of a run whose worker is not kept) cannot remove it itself.
        let home_parent = praxis_sandbox::WorkerHome::new().map_err(|e| {
            format!(
                "cannot make the worker's home directory in `{}`: {e}",
                std::env::temp_dir().display()
            )
        })?;
        let hello = ToWorker::Hello {
            workspace: self.serves.workspace.clone(),
            limits: Box::new(self.serves.limits.clone()),
            manifests: self.serves.manifests.clone(),
            // A pooled worker took them with its `prepare`.
            host: (!warm).then(|| Box::new(HostFacts::of_this_process())),
            home_parent: Some(home_parent.path().to_path_buf()),
        };
        // The answers to requests sent before `ready` is read (the early capture) wait here
        // until the reader below takes the worker's frames.
        let pending: Pending = Arc::default();
        let capture = self.capture_with_hello(&pending);
        let handshake = async {
            write_frame(&mut stdin, &hello).await?;
            if let Some(capture) = &capture {
                write_frame(&mut stdin, capture).await?;
            }
            read_frame::<_, FromWorker>(&mut stdout).await
        };
        let (pid, layers, setup) = match tokio::time::timeout(HELLO_TIMEOUT, handshake).await {
            Err(_) => return Err(format!("`{}` did not answer hello", program.display())),
            Ok(Err(e)) => return Err(format!("`{}`: {e}", program.display())),
            Ok(Ok(None)) => {
                let status = child
                    .wait()
                    .await
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                return Err(format!(
                    "`{}` exited before answering hello ({status})",
                    program.display()
                ));
            }
            Ok(Ok(Some(FromWorker::Ready { pid, layers, setup }))) => (pid, layers, setup),
            Ok(Ok(Some(FromWorker::Refused { message }))) => {
                return Err(format!("the worker refused to start: {message}"));
            }
            Ok(Ok(Some(other))) => return Err(format!("unexpected first answer {other:?}")),
        };
        // Later workers' spawners may wait for their runs' first commands.
        if setup.spawner_proven {
            praxis_sandbox::note_spawner_proven();
        }
        if let Ok(mut info) = self.info.lock() {
            info.pid = Some(pid);
            info.layers = layers;
            info.starts += 1;
            info.warm_starts += u32::from(warm);
            info.forked = child.forked;
            info.setup = setup;
        }
        // A replacement worker goes on tracking where the dead one stopped.
        let restore = self.tracking.lock().ok().and_then(|t| t.clone());
        if let Some((limits, state)) = restore {
            write_frame(&mut stdin, &ToWorker::Restore { limits, state })
                .await
                .map_err(|e| format!("`{}`: {e}", program.display()))?;
        }

        let (tx, mut rx) = mpsc::unbounded_channel::<ToWorker>();
        tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                if write_frame(&mut stdin, &message).await.is_err() {
                    break;
                }
            }
        });
        let dead = Arc::new(AtomicBool::new(false));
        let (kill_tx, mut kill_rx) = oneshot::channel::<()>();
        let (exited_tx, exited) = tokio::sync::watch::channel(false);
        let (reader_pending, reader_dead) = (pending.clone(), dead.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    frame = read_frame::<_, FromWorker>(&mut stdout) => match frame {
                        Ok(Some(frame)) => {
                            if let Ok(mut pending) = reader_pending.lock() {
                                pending.receive(frame);
                            }
                        }
                        Ok(None) | Err(_) => break,
                    },
                    _ = &mut kill_rx => {
                        let _ = child.start_kill();
                        break;
                    }
                }
            }
            reader_dead.store(true, Ordering::SeqCst);
            let status = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
                Ok(Ok(status)) => status.to_string(),
                _ => {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                    "stopped answering; killed".to_string()
                }
            };
            // Gone before anyone is told the worker exited; removed off the async threads.
            let _ = tokio::task::spawn_blocking(move || drop(home_parent)).await;
            let _ = exited_tx.send(true);
            let waiters: Vec<_> = match reader_pending.lock() {
                Ok(mut p) => {
                    p.dead = true;
                    p.calls.drain().map(|(_, w)| w).collect()
                }
                Err(_) => Vec::new(),
            };
            for waiter in waiters {
                let _ = waiter.send(Err(format!("worker pid {pid}: {status}")));
            }
        });
        Ok(Connection {
            tx,
            pending,
            dead,
            abandoned: AtomicBool::new(false),
            pid,
            kill: Mutex::new(Some(kill_tx)),
            exited,
        })
    }

    /// Kills the current worker process, and with it every call in flight (a call blocked
    /// in the kernel cannot answer a cancel); the next call starts a new worker.
    pub fn kill(&self) {
        if let Ok(slot) = self.conn.try_lock()
            && let Some(conn) = slot.as_ref()
        {
            conn.kill();
        }
    }

    /// Kills the current worker like [`WorkerClient::kill`], then waits (at most `wait`)
    /// until the worker is reaped and every process of its commands is gone: the processes
    /// left in its commands' cgroups are killed and must leave them (see
    /// [`praxis_sandbox::end_commands_of`]). After `Ok`, nothing a call of that worker
    /// started can write any more; `Err` says what could not be confirmed.
    pub async fn kill_and_confirm(&self, wait: Duration) -> Result<(), String> {
        let until = tokio::time::Instant::now() + wait;
        let conn = match tokio::time::timeout_at(until, self.conn.lock()).await {
            Ok(slot) => slot.clone(),
            Err(_) => return Err("the tool worker's connection stayed busy".into()),
        };
        let Some(conn) = conn else {
            return Ok(());
        };
        conn.kill();
        let mut exited = conn.exited.clone();
        let reaped = matches!(
            tokio::time::timeout_at(until, exited.wait_for(|gone| *gone)).await,
            Ok(Ok(_))
        );
        if !reaped {
            return Err(format!(
                "worker pid {} was not seen to exit within {} ms",
                conn.pid,
                wait.as_millis()
            ));
        }
        let owner = conn.pid;
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        let ended =
            tokio::task::spawn_blocking(move || praxis_sandbox::end_commands_of(owner, left))
                .await
                .map_err(|e| format!("waiting for the commands of worker pid {owner}: {e}"))?;
        match ended {
            praxis_sandbox::CommandsEnded::Gone { .. } => Ok(()),
            praxis_sandbox::CommandsEnded::StillRunning { pids } => Err(format!(
                "processes of worker pid {owner}'s commands were still running after {} ms \
                 (pids {pids:?})",
                wait.as_millis()
            )),
            praxis_sandbox::CommandsEnded::Unknown { why } => Err(format!(
                "the end of worker pid {owner}'s commands cannot be seen on this host ({why}); \
                 they die with their PID namespace"
            )),
        }
    }

    /// Runs one call in the worker. Never panics: a worker that cannot start or dies
    /// mid-call yields an error observation saying so.
    pub async fn execute(&self, tool: &str, args: Value, deadline: Option<Instant>) -> Observation {
        let timeout_ms = deadline.map(|d| {
            u64::try_from(d.saturating_duration_since(Instant::now()).as_millis())
                .unwrap_or(u64::MAX)
        });
        let call = |id| ToWorker::Call {
            id,
            tool: tool.to_string(),
            args,
            timeout_ms,
        };
        match self.request(call).await {
            Ok(Answer::Observation(observation)) => observation,
            Ok(other) => {
                Observation::error(format!("the tool worker answered `{tool}` with {other:?}"))
            }
            Err(Failure::NotStarted(e)) => Observation::error(format!(
                "`{tool}` was not run: the tool worker could not be started: {e}"
            )),
            Err(Failure::Died(why)) => Observation::error(format!(
                "the tool worker died while running `{tool}` ({why}); the call did not \
                 complete and was not retried; the next call starts a new worker"
            )),
        }
    }

    /// Captures the workspace's start state in the worker (the runtime never opens a
    /// workspace file): the manifest and the distinct blobs, as
    /// [`WorkspaceTracker::capture`] returns them. The worker keeps the tracker; this client
    /// keeps its state (no contents), so a restarted worker goes on from it.
    pub async fn capture(
        &self,
        limits: CaptureLimits,
    ) -> Result<(praxis_core::record::Manifest, Vec<Vec<u8>>), String> {
        let early = match self.early_capture.lock().as_deref_mut() {
            Ok(early) => std::mem::take(early),
            Err(_) => EarlyCapture::None,
        };
        // Asked for with the worker's `hello`: its answer is on its way (if that worker
        // died meanwhile, the capture is asked again, of the worker that replaces it).
        let early = match early {
            EarlyCapture::Sent(asked, answer) if asked == limits => answer.await.ok(),
            _ => None,
        };
        let answer = match early {
            Some(Ok(answer)) => Ok(answer),
            _ => {
                let sent = limits.clone();
                self.request(move |id| ToWorker::Capture { id, limits: sent })
                    .await
            }
        };
        match answer.map_err(|f| f.describe("capture the workspace"))? {
            Answer::Captured {
                manifest,
                state,
                blobs,
            } => {
                if let Ok(mut tracking) = self.tracking.lock() {
                    *tracking = Some((limits, state));
                }
                Ok((manifest, blobs))
            }
            Answer::TrackFailed(why) => Err(why),
            other => Err(format!("unexpected answer to capture: {other:?}")),
        }
    }

    /// What changed since the last capture or refresh ([`WorkspaceTracker::refresh`]), read
    /// in the worker.
    pub async fn refresh(&self, hints: Vec<String>) -> Result<CallChanges, String> {
        match self
            .request(move |id| ToWorker::Refresh { id, hints })
            .await
            .map_err(|f| f.describe("track the workspace"))?
        {
            Answer::Refreshed {
                changes,
                delta,
                state: refreshed,
                blobs,
                git_removed,
            } => {
                if let Ok(mut tracking) = self.tracking.lock()
                    && let Some((_, state)) = tracking.as_mut()
                {
                    state.apply(delta, &refreshed);
                }
                Ok(CallChanges {
                    files_changed: changes,
                    blobs,
                    git_removed,
                })
            }
            Answer::TrackFailed(why) => Err(why),
            other => Err(format!("unexpected answer to refresh: {other:?}")),
        }
    }

    /// Sends one request (made from its id) and waits for its answer; dropping the future
    /// cancels it in the worker.
    async fn request(&self, make: impl FnOnce(u64) -> ToWorker) -> Result<Answer, Failure> {
        let conn = self.connection().await.map_err(Failure::NotStarted)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        conn.request(id, make(id)).await
    }
}

impl Drop for WorkerClient {
    /// The run is over: its worker is kept for the next run served the same way when its
    /// pool keeps workers and the worker says nothing of this run is left in it (see
    /// [`super::pool::park`]); otherwise it is killed, as is a worker whose connection is
    /// dropped.
    fn drop(&mut self) {
        let Some(conn) = self.conn.get_mut().take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.serves.identity.is_none() || !conn.may_serve_again() || !pool::parks(&self.command)
        {
            return;
        }
        let info = self.info.lock().map(|i| i.clone()).unwrap_or_default();
        let serves = std::mem::take(&mut self.serves);
        let command = self.command.clone();
        runtime.spawn(async move {
            // Not released (a command ran, say): `conn`, its last handle, is dropped here
            // and the worker killed, as at the end of any run whose worker is not kept.
            if conn.release().await.is_ok() {
                pool::park(&command, Parked { conn, serves, info });
            }
        });
    }
}

/// Why a request got no answer.
enum Failure {
    NotStarted(String),
    Died(String),
}

impl Failure {
    fn describe(self, what: &str) -> String {
        match self {
            Failure::NotStarted(e) => {
                format!("could not {what}: the tool worker could not be started: {e}")
            }
            Failure::Died(why) => format!("could not {what}: the tool worker died ({why})"),
        }
    }
}

/// Tells the worker to cancel a call whose caller went away.
struct CancelOnDrop<'a> {
    conn: &'a Connection,
    id: u64,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.conn.abandoned.store(true, Ordering::SeqCst);
            if let Ok(mut p) = self.conn.pending.lock() {
                p.calls.remove(&self.id);
            }
            let _ = self.conn.tx.send(ToWorker::Cancel { id: self.id });
        }
    }
}
