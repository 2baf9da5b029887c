//! The worker: a long-lived helper process (`praxis worker`) that executes the side-effecting
//! tools (`shell`, `test_run`, `fs_write`, `fs_patch`, `http`) for one run, with every
//! command it starts confined by the sandbox.
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

use crate::fabric::{self, Fabric, WORKER_TOOLS, WorkerCommand};
use crate::{ExecContext, Registry, ToolLimits, Workspace};
use praxis_core::Observation;
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
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromWorker {
    Ready { pid: u32, layers: Value },
    Refused { message: String },
    Result { id: u64, observation: Observation },
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
    // Dies with the runtime, and its commands with it.
    praxis_sandbox::exit_with_parent()?;
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
    let layers = fabric::local_layers(&ctx);
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
                    let observation = if WORKER_TOOLS.contains(&tool.as_str()) {
                        let mut ctx = (*ctx).clone();
                        ctx.deadline =
                            timeout_ms.map(|ms| Instant::now() + Duration::from_millis(ms));
                        registry.execute(&ctx, &tool, args).await
                    } else {
                        Observation::error(format!(
                            "the worker does not execute `{tool}` (it runs: {})",
                            WORKER_TOOLS.join(", ")
                        ))
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

type Pending = Arc<Mutex<PendingCalls>>;

#[derive(Default)]
struct PendingCalls {
    /// Set (under this lock) once the worker is gone: no call may wait on it after that.
    dead: bool,
    calls: HashMap<u64, oneshot::Sender<Result<Observation, String>>>,
}

/// One running worker process.
struct Connection {
    tx: mpsc::UnboundedSender<ToWorker>,
    pending: Pending,
    dead: Arc<AtomicBool>,
    pid: u32,
    /// Dropping it makes the reader kill the worker.
    _kill: oneshot::Sender<()>,
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
                        Ok(Some(FromWorker::Result { id, observation })) => {
                            let waiter = reader_pending.lock().ok().and_then(|mut p| p.calls.remove(&id));
                            if let Some(waiter) = waiter {
                                let _ = waiter.send(Ok(observation));
                            }
                        }
                        Ok(Some(_)) => {}
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
            _kill: kill_tx,
        })
    }

    /// Runs one call in the worker. Never panics: a worker that cannot start or dies
    /// mid-call yields an error observation saying so.
    pub async fn execute(&self, tool: &str, args: Value, deadline: Option<Instant>) -> Observation {
        let conn = match self.connection().await {
            Ok(conn) => conn,
            Err(e) => {
                return Observation::error(format!(
                    "`{tool}` was not run: the tool worker could not be started: {e}"
                ));
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let registered = match conn.pending.lock() {
            Ok(mut p) if !p.dead => {
                p.calls.insert(id, tx);
                true
            }
            _ => false,
        };
        let died = |why: &str| {
            Observation::error(format!(
                "the tool worker died while running `{tool}` ({why}); the call did not \
                 complete and was not retried; the next call starts a new worker"
            ))
        };
        if !registered {
            return died(&format!("worker pid {} had already exited", conn.pid));
        }
        let timeout_ms = deadline.map(|d| {
            u64::try_from(d.saturating_duration_since(Instant::now()).as_millis())
                .unwrap_or(u64::MAX)
        });
        let call = ToWorker::Call {
            id,
            tool: tool.to_string(),
            args,
            timeout_ms,
        };
        if conn.tx.send(call).is_err() {
            if let Ok(mut p) = conn.pending.lock() {
                p.calls.remove(&id);
            }
            return died("its input is closed");
        }
        let mut guard = CancelOnDrop {
            conn: &conn,
            id,
            armed: true,
        };
        let answer = rx.await;
        guard.armed = false;
        match answer {
            Ok(Ok(observation)) => observation,
            Ok(Err(why)) => died(&why),
            Err(_) => died("the connection was dropped"),
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
