//! The worker: a long-lived helper process (`praxis worker`) that executes every tool whose
//! [`Placement`] is the worker (every file tool, reads included, commands and `http`) for
//! one run, and tracks the run's workspace. It confines itself with Landlock to what those
//! tools need before it serves a call, and every command it starts is confined by the
//! sandbox.
//!
//! Protocol, on the worker's stdin/stdout: frames of a 4-byte big-endian length and that
//! many bytes of JSON, each an object with a `type`:
//! - runtime -> worker: `hello {workspace, limits}` once, then `call {id, tool, args,
//!   timeout_ms}` and `cancel {id}`;
//! - worker -> runtime: `ready {pid, layers}` (or `refused {message}`), then
//!   `result {id, observation}` per call, in completion order.
//!
//! Calls run concurrently; `cancel` (sent when the runtime drops a call) kills the call's
//! process group. If the worker dies, every call in flight is answered with an error
//! observation saying so, and the next call starts a new worker.

use crate::fabric::{self, Fabric, WorkerCommand};
use crate::tracker::{CaptureLimits, FileState, RefreshedState, TrackerState, WorkspaceTracker};
use crate::{ExecContext, Placement, Registry, ToolLimits, Workspace};
use praxis_core::{FileChange, Observation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// Largest frame either side accepts (an observation is capped far below this).
pub const MAX_FRAME: usize = 64 << 20;
/// How long a starting worker may take to answer `hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToWorker {
    Hello {
        workspace: PathBuf,
        limits: Box<ToolLimits>,
    },
    Call {
        id: u64,
        tool: String,
        args: Value,
        /// Time left until the run's deadline, if it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    Cancel {
        id: u64,
    },
    /// Capture the workspace's start state (answered by `blob`s, then `captured`).
    Capture {
        id: u64,
        limits: CaptureLimits,
    },
    /// Report what changed since the last capture or refresh (`blob`s, then `refreshed`).
    Refresh {
        id: u64,
        hints: Vec<String>,
    },
    /// Go on tracking from a state an earlier worker of this run reported (after a restart;
    /// sent before any call).
    Restore {
        limits: CaptureLimits,
        state: TrackerState,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromWorker {
    Ready {
        pid: u32,
        layers: Value,
    },
    Refused {
        message: String,
    },
    Result {
        id: u64,
        observation: Observation,
    },
    /// One blob of a `capture` or `refresh` answer (hex), before its final frame.
    Blob {
        id: u64,
        hex: String,
    },
    Captured {
        id: u64,
        manifest: Value,
        state: TrackerState,
    },
    Refreshed {
        id: u64,
        changes: Vec<FileChange>,
        delta: Vec<(String, Option<FileState>)>,
        state: RefreshedState,
    },
    /// A `capture` or `refresh` that could not be done.
    TrackFailed {
        id: u64,
        message: String,
    },
}

/// What a worker answered to one request.
#[derive(Debug)]
pub(crate) enum Answer {
    Observation(Observation),
    Captured {
        manifest: Value,
        state: TrackerState,
        blobs: Vec<Vec<u8>>,
    },
    Refreshed {
        changes: Vec<FileChange>,
        delta: Vec<(String, Option<FileState>)>,
        state: RefreshedState,
        blobs: Vec<Vec<u8>>,
    },
    TrackFailed(String),
}

/// Writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    out: &mut W,
    message: &T,
) -> io::Result<()> {
    let bytes = serde_json::to_vec(message).map_err(io::Error::other)?;
    if bytes.len() > MAX_FRAME {
        return Err(io::Error::other(format!(
            "frame of {} bytes exceeds the {MAX_FRAME}-byte limit",
            bytes.len()
        )));
    }
    // One write per frame: the reader wakes once, with the whole frame.
    let mut frame = Vec::with_capacity(4 + bytes.len());
    frame.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    frame.extend_from_slice(&bytes);
    out.write_all(&frame).await?;
    out.flush().await
}

/// Reads one frame; None at a clean end of stream (between frames).
pub async fn read_frame<R: AsyncRead + Unpin, T: DeserializeOwned>(
    input: &mut R,
) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {MAX_FRAME}-byte limit"),
        ));
    }
    let mut bytes = vec![0u8; len];
    input.read_exact(&mut bytes).await?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("bad frame: {e}")))
}

/// `praxis worker`: serves the protocol on this process's stdin/stdout until stdin closes.
pub async fn serve_stdio() -> io::Result<()> {
    // The runtime connects pipes: drive them from the reactor. tokio's `stdin()`/`stdout()`
    // hand every read and write to a blocking thread, which costs a thread hop per frame.
    match (stdio_pipe_in(), stdio_pipe_out()) {
        (Some(input), Some(output)) => serve(tokio::io::BufReader::new(input), output).await,
        _ => serve(tokio::io::stdin(), tokio::io::stdout()).await,
    }
}

/// A reactor-driven copy of this process's stdin, if it is a pipe.
fn stdio_pipe_in() -> Option<tokio::net::unix::pipe::Receiver> {
    let fd = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
    tokio::net::unix::pipe::Receiver::from_owned_fd(fd).ok()
}

/// A reactor-driven copy of this process's stdout, if it is a pipe.
fn stdio_pipe_out() -> Option<tokio::net::unix::pipe::Sender> {
    let fd = std::io::stdout().as_fd().try_clone_to_owned().ok()?;
    tokio::net::unix::pipe::Sender::from_owned_fd(fd).ok()
}

/// The worker loop over any pair of streams.
pub async fn serve<R, W>(mut input: R, mut output: W) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let Some(hello) = read_frame::<_, ToWorker>(&mut input).await? else {
        return Ok(());
    };
    let ToWorker::Hello { workspace, limits } = hello else {
        let message = "the first message must be `hello`".to_string();
        write_frame(&mut output, &FromWorker::Refused { message }).await?;
        return Ok(());
    };
    let workspace = match Workspace::new(&workspace) {
        Ok(ws) => ws,
        Err(e) => {
            let message = format!("workspace `{}`: {e}", workspace.display());
            write_frame(&mut output, &FromWorker::Refused { message }).await?;
            return Ok(());
        }
    };
    let mut ctx = ExecContext::new(workspace.clone());
    ctx.limits = *limits;
    ctx.fabric = Fabric::InProcess {
        reason: "inside the worker".into(),
    };
    fabric::confine_locally(&mut ctx);
    let mut layers = fabric::local_layers(&ctx);
    // Before any call is served: this process opens workspace files for the file tools, so
    // it is itself confined to what its tools and commands need (never the data dir).
    let confined = confine_self(&ctx);
    if let Value::Array(list) = &mut layers
        && let Ok(layer) = serde_json::to_value(&confined)
    {
        list.push(layer);
    }
    write_frame(
        &mut output,
        &FromWorker::Ready {
            pid: std::process::id(),
            layers,
        },
    )
    .await?;

    let ctx = Arc::new(ctx);
    let registry = Arc::new(Registry::builtin());
    let (tx, mut rx) = mpsc::unbounded_channel::<FromWorker>();
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            if write_frame(&mut output, &message).await.is_err() {
                // The runtime is gone; nobody is left to answer.
                break;
            }
        }
    });
    let tracker: SharedTracker = Arc::default();
    let mut calls: HashMap<u64, tokio::task::AbortHandle> = HashMap::new();
    loop {
        let message = match read_frame::<_, ToWorker>(&mut input).await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => {
                eprintln!("praxis worker: {e}; stopping");
                break;
            }
        };
        calls.retain(|_, h| !h.is_finished());
        match message {
            ToWorker::Call {
                id,
                tool,
                args,
                timeout_ms,
            } => {
                let (ctx, registry, tx) = (ctx.clone(), registry.clone(), tx.clone());
                let task = tokio::spawn(async move {
                    let placement = registry.get(&tool).map(|t| t.placement());
                    let observation = if placement == Some(Placement::Driver) {
                        Observation::error(format!(
                            "the worker does not execute `{tool}`: it runs in the runtime's \
                             driver"
                        ))
                    } else {
                        let mut ctx = (*ctx).clone();
                        ctx.deadline =
                            timeout_ms.map(|ms| Instant::now() + Duration::from_millis(ms));
                        registry.execute(&ctx, &tool, args).await
                    };
                    let _ = tx.send(FromWorker::Result { id, observation });
                });
                calls.insert(id, task.abort_handle());
            }
            ToWorker::Cancel { id } => {
                // Aborting drops the tool's future, which kills its process group.
                if let Some(handle) = calls.remove(&id) {
                    handle.abort();
                }
            }
            ToWorker::Capture { id, limits } => {
                let task = tokio::spawn(capture(
                    id,
                    workspace.clone(),
                    limits,
                    tracker.clone(),
                    tx.clone(),
                ));
                calls.insert(id, task.abort_handle());
            }
            ToWorker::Refresh { id, hints } => {
                let task = tokio::spawn(refresh(id, hints, tracker.clone(), tx.clone()));
                calls.insert(id, task.abort_handle());
            }
            ToWorker::Restore { limits, state } => {
                if let Ok(mut slot) = tracker.lock() {
                    *slot = Some(WorkspaceTracker::restore(&workspace, limits, state));
                }
            }
            ToWorker::Hello { .. } => {
                eprintln!("praxis worker: ignoring a second hello");
            }
        }
    }
    for (_, handle) in calls {
        handle.abort();
    }
    drop(tx);
    let _ = writer.await;
    Ok(())
}

/// The run's workspace tracker, in the worker (the runtime never opens a workspace file).
type SharedTracker = Arc<Mutex<Option<WorkspaceTracker>>>;

/// Sends `blobs` as `blob` frames of request `id`.
fn send_blobs(id: u64, blobs: Vec<Vec<u8>>, tx: &mpsc::UnboundedSender<FromWorker>) {
    for blob in blobs {
        let _ = tx.send(FromWorker::Blob {
            id,
            hex: hex::encode(blob),
        });
    }
}

async fn capture(
    id: u64,
    workspace: Workspace,
    limits: CaptureLimits,
    tracker: SharedTracker,
    tx: mpsc::UnboundedSender<FromWorker>,
) {
    let captured = tokio::task::spawn_blocking(move || {
        let (fresh, manifest, blobs) = WorkspaceTracker::capture(&workspace, limits);
        let state = fresh.state();
        if let Ok(mut slot) = tracker.lock() {
            *slot = Some(fresh);
        }
        (manifest, state, blobs)
    })
    .await;
    let message = match captured {
        Ok((manifest, state, blobs)) => {
            send_blobs(id, blobs, &tx);
            FromWorker::Captured {
                id,
                manifest,
                state,
            }
        }
        Err(e) => FromWorker::TrackFailed {
            id,
            message: format!("the capture failed: {e}"),
        },
    };
    let _ = tx.send(message);
}

async fn refresh(
    id: u64,
    hints: Vec<String>,
    tracker: SharedTracker,
    tx: mpsc::UnboundedSender<FromWorker>,
) {
    let refreshed = tokio::task::spawn_blocking(move || {
        let mut slot = tracker.lock().map_err(|_| "the tracker is poisoned")?;
        let tracker = slot.as_mut().ok_or("nothing was captured yet")?;
        Ok::<_, &str>(tracker.refresh_tracked(&hints))
    })
    .await;
    let message = match refreshed {
        Ok(Ok(refreshed)) => {
            send_blobs(id, refreshed.blobs, &tx);
            FromWorker::Refreshed {
                id,
                changes: refreshed.changes,
                delta: refreshed.delta,
                state: refreshed.state,
            }
        }
        Ok(Err(why)) => FromWorker::TrackFailed {
            id,
            message: why.to_string(),
        },
        Err(e) => FromWorker::TrackFailed {
            id,
            message: format!("the refresh failed: {e}"),
        },
    };
    let _ = tx.send(message);
}

/// Landlocks this process per the run's sandbox (see
/// [`praxis_sandbox::Sandbox::confine_current_process`]); the layer says what was applied.
fn confine_self(ctx: &ExecContext) -> praxis_sandbox::Layer {
    let inactive = |detail: String| praxis_sandbox::Layer {
        name: "worker_landlock".into(),
        active: false,
        detail,
    };
    match &ctx.sandbox {
        Some(sandbox) => sandbox
            .confine_current_process()
            .unwrap_or_else(|e| inactive(format!("the worker could not confine itself: {e}"))),
        None => inactive(format!(
            "the worker itself is unconfined: {}",
            ctx.unconfined_because
                .as_deref()
                .unwrap_or("no sandbox for this run")
        )),
    }
}

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
            } => (
                id,
                Answer::Refreshed {
                    changes,
                    delta,
                    state,
                    blobs: self.blobs.remove(&id).unwrap_or_default(),
                },
            ),
            FromWorker::TrackFailed { id, message } => {
                self.blobs.remove(&id);
                (id, Answer::TrackFailed(message))
            }
            FromWorker::Ready { .. } | FromWorker::Refused { .. } => return,
        };
        if let Some(waiter) = self.calls.remove(&id) {
            let _ = waiter.send(Ok(answer));
        }
    }
}

/// One running worker process.
struct Connection {
    tx: mpsc::UnboundedSender<ToWorker>,
    pending: Pending,
    dead: Arc<AtomicBool>,
    pid: u32,
    /// Taking (dropping) it makes the reader kill the worker.
    kill: Mutex<Option<oneshot::Sender<()>>>,
}

impl Connection {
    fn kill(&self) {
        self.dead.store(true, Ordering::SeqCst);
        if let Ok(mut kill) = self.kill.lock() {
            kill.take();
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Info {
    pid: Option<u32>,
    layers: Value,
    starts: u32,
}

/// The runtime's side of the worker: starts it, sends calls, restarts it after a crash.
pub struct WorkerClient {
    command: WorkerCommand,
    workspace: PathBuf,
    limits: ToolLimits,
    conn: tokio::sync::Mutex<Option<Arc<Connection>>>,
    info: Mutex<Info>,
    next_id: AtomicU64,
    /// The workspace tracker's limits and state as the worker last reported them, restored
    /// into a worker that replaces a dead one.
    tracking: Mutex<Option<(CaptureLimits, TrackerState)>>,
}

impl std::fmt::Debug for WorkerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerClient")
            .field("command", &self.command)
            .field("workspace", &self.workspace)
            .finish()
    }
}

impl WorkerClient {
    /// A client for a worker serving `workspace` under `limits`; nothing starts until
    /// [`WorkerClient::start`] or the first call.
    pub fn new(command: WorkerCommand, workspace: PathBuf, limits: ToolLimits) -> Self {
        WorkerClient {
            command,
            workspace,
            limits,
            conn: tokio::sync::Mutex::new(None),
            info: Mutex::new(Info::default()),
            next_id: AtomicU64::new(1),
            tracking: Mutex::new(None),
        }
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

    /// The sandbox layers the worker reported in its `ready`.
    pub fn layers(&self) -> Value {
        self.info
            .lock()
            .map(|i| i.layers.clone())
            .unwrap_or(Value::Null)
    }

    pub fn describe(&self) -> Value {
        let info = self.info.lock().map(|i| i.clone()).unwrap_or_default();
        json!({
            "command": format!("{} {}", self.command.program.display(), self.command.args.join(" ")),
            "pid": info.pid,
            "starts": info.starts,
        })
    }

    async fn connection(&self) -> Result<Arc<Connection>, String> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref()
            && !conn.dead.load(Ordering::SeqCst)
        {
            return Ok(conn.clone());
        }
        *slot = None;
        let conn = Arc::new(self.spawn().await?);
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn spawn(&self) -> Result<Connection, String> {
        let program = &self.command.program;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&self.command.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        // SAFETY: only async-signal-safe prctl in the child.
        unsafe {
            cmd.pre_exec(|| {
                // The worker must not outlive the runtime.
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start `{}`: {e}", program.display()))?;
        let (Some(mut stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("the worker's pipes are missing".into());
        };
        let hello = ToWorker::Hello {
            workspace: self.workspace.clone(),
            limits: Box::new(self.limits.clone()),
        };
        let handshake = async {
            write_frame(&mut stdin, &hello).await?;
            read_frame::<_, FromWorker>(&mut stdout).await
        };
        let (pid, layers) = match tokio::time::timeout(HELLO_TIMEOUT, handshake).await {
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
            Ok(Ok(Some(FromWorker::Ready { pid, layers }))) => (pid, layers),
            Ok(Ok(Some(FromWorker::Refused { message }))) => {
                return Err(format!("the worker refused to start: {message}"));
            }
            Ok(Ok(Some(other))) => return Err(format!("unexpected first answer {other:?}")),
        };
        if let Ok(mut info) = self.info.lock() {
            info.pid = Some(pid);
            info.layers = layers;
            info.starts += 1;
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
        let pending: Pending = Arc::default();
        let dead = Arc::new(AtomicBool::new(false));
        let (kill_tx, mut kill_rx) = oneshot::channel::<()>();
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
                    "stopped answering; killed".to_string()
                }
            };
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
            pid,
            kill: Mutex::new(Some(kill_tx)),
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
    pub async fn capture(&self, limits: CaptureLimits) -> Result<(Value, Vec<Vec<u8>>), String> {
        let sent = limits.clone();
        match self
            .request(move |id| ToWorker::Capture { id, limits: sent })
            .await
            .map_err(|f| f.describe("capture the workspace"))?
        {
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
    pub async fn refresh(
        &self,
        hints: Vec<String>,
    ) -> Result<(Vec<FileChange>, Vec<Vec<u8>>), String> {
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
            } => {
                if let Ok(mut tracking) = self.tracking.lock()
                    && let Some((_, state)) = tracking.as_mut()
                {
                    state.apply(delta, &refreshed);
                }
                Ok((changes, blobs))
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
        let (tx, rx) = oneshot::channel();
        let registered = match conn.pending.lock() {
            Ok(mut p) if !p.dead => {
                p.calls.insert(id, tx);
                true
            }
            _ => false,
        };
        if !registered {
            return Err(Failure::Died(format!(
                "worker pid {} had already exited",
                conn.pid
            )));
        }
        if conn.tx.send(make(id)).is_err() {
            if let Ok(mut p) = conn.pending.lock() {
                p.calls.remove(&id);
            }
            return Err(Failure::Died("its input is closed".into()));
        }
        let mut guard = CancelOnDrop {
            conn: &conn,
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
            if let Ok(mut p) = self.conn.pending.lock() {
                p.calls.remove(&self.id);
            }
            let _ = self.conn.tx.send(ToWorker::Cancel { id: self.id });
        }
    }
}
