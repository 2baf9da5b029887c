//! The worker's side: `praxis worker` confines itself, then serves calls and tracking.

use super::protocol::{FromWorker, PARENT_ENV, ToWorker, WorkerSetup, read_frame, write_frame};
use crate::fabric::{self, Fabric};
use crate::tracker::{CaptureLimits, WorkspaceTracker};
use crate::tracking::git_protected;
use crate::{ExecContext, Placement, Registry, Workspace};
use praxis_core::Observation;
use serde_json::Value;
use std::collections::HashMap;
use std::io;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// `praxis worker`: serves the protocol on this process's stdin/stdout until stdin closes.
pub async fn serve_stdio() -> io::Result<()> {
    // Dies with the runtime, and its commands with it; at once if the runtime that started
    // it is gone already.
    let runtime = std::env::var(PARENT_ENV)
        .ok()
        .and_then(|pid| pid.parse::<libc::pid_t>().ok());
    praxis_sandbox::exit_with_parent(runtime)?;
    // The runtime connects pipes: drive them from the reactor. tokio's `stdin()`/`stdout()`
    // hand every read and write to a blocking thread, which costs a thread hop per frame.
    // Both or neither: making one non-blocking and reading the other with blocking calls
    // would fail them with EAGAIN.
    if is_pipe(std::io::stdin().as_fd())
        && is_pipe(std::io::stdout().as_fd())
        && let (Some(input), Some(output)) = (stdio_pipe_in(), stdio_pipe_out())
    {
        return serve(tokio::io::BufReader::new(input), output).await;
    }
    serve(tokio::io::stdin(), tokio::io::stdout()).await
}

/// Whether `fd` is a pipe (a FIFO).
fn is_pipe(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    use std::os::unix::fs::FileTypeExt;
    fd.try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|file| file.metadata())
        .is_ok_and(|meta| meta.file_type().is_fifo())
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

/// The worker loop over any pair of streams. After `hello` it Landlocks the calling thread
/// (and every thread it starts) to the run's grants: call it only in the worker process, on
/// a current-thread runtime.
pub async fn serve<R, W>(mut input: R, mut output: W) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    // Built before the run is known (a pooled worker waits for its run idle): the tools'
    // argument schemas are not compiled on the run's path.
    let mut registry = Registry::builtin();
    let mut first = read_frame::<_, ToWorker>(&mut input).await?;
    // Started ahead of its run: what its sandbox needs that does not depend on the run is
    // made while it waits.
    if let Some(ToWorker::Prepare { host }) = first {
        host.adopt();
        praxis_sandbox::prepare_ahead();
        first = read_frame::<_, ToWorker>(&mut input).await?;
    }
    let Some(hello) = first else {
        return Ok(());
    };
    let ToWorker::Hello {
        workspace,
        limits,
        manifests,
        host,
        home_parent,
    } = hello
    else {
        let message = "the first message must be `hello`".to_string();
        write_frame(&mut output, &FromWorker::Refused { message }).await?;
        return Ok(());
    };
    // The runtime's host facts, before anything below would compute them.
    if let Some(host) = host {
        host.adopt();
    }
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
    fabric::confine_locally(&mut ctx, home_parent.as_deref());
    // Its spawner started with every layer: later workers' spawners may wait for their
    // runs' first commands (its runtime learns it from `ready`).
    if ctx.sandbox.as_ref().is_some_and(|s| s.proves_spawner()) {
        praxis_sandbox::note_spawner_proven();
    }
    let mut layers = fabric::local_layers(&ctx);
    // Before any call is served: this process opens workspace files for the file tools, so
    // it is itself confined to what its tools and commands need (never the data dir).
    let confined = confine_self(&ctx);
    // The blocking thread the capture and the file tools run on, started while the runtime
    // reads `ready` rather than on the capture's way. After the confinement: it is
    // Landlocked with this thread.
    drop(tokio::task::spawn_blocking(|| ()));
    if let Value::Array(list) = &mut layers
        && let Ok(layer) = serde_json::to_value(&confined)
    {
        list.push(layer);
    }
    let setup = WorkerSetup {
        spawner_waits: ctx.sandbox.as_ref().is_some_and(|s| s.spawner_waits()),
        ..WorkerSetup::of_this_process()
    };
    write_frame(
        &mut output,
        &FromWorker::Ready {
            pid: std::process::id(),
            layers,
            setup,
        },
    )
    .await?;

    let ctx = Arc::new(ctx);
    let registry = match manifests
        .into_iter()
        .try_for_each(|manifest| registry.add_manifest(manifest))
    {
        Ok(()) => Arc::new(registry),
        Err(e) => {
            // The runtime built the same registry, so this is a protocol mismatch.
            eprintln!("praxis worker: {e}; serving the built-in tools only");
            Arc::new(Registry::builtin())
        }
    };
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
            ToWorker::Capture { id, mut limits } => {
                limits.git.protected = git_protected(&ctx);
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
            ToWorker::Restore { mut limits, state } => {
                // The run's start decides what is the user's, not this worker's sandbox,
                // which also mounts read-only what an abandoned call planted.
                limits.git.protected = state
                    .git
                    .protected
                    .clone()
                    .unwrap_or_else(|| git_protected(&ctx));
                if let Ok(mut slot) = tracker.lock() {
                    *slot = Some(WorkspaceTracker::restore(&workspace, limits, state));
                }
            }
            ToWorker::Release { id } => {
                let message = match release(&ctx, &calls, &tracker) {
                    Ok(()) => FromWorker::Released { id },
                    Err(why) => FromWorker::NotReleased { id, why },
                };
                let _ = tx.send(message);
            }
            ToWorker::Hello { .. } | ToWorker::Prepare { .. } => {
                eprintln!("praxis worker: ignoring a hello or prepare after the first hello");
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

/// Ends this worker's run so that it may serve another one the same way (same workspace,
/// limits and tools: its sandbox and its own Landlock domain stay as they are): the tracker
/// is dropped and the private home emptied. Refused while a call or tracking request is
/// still running, where the worker has no sandbox to tell what its commands left, and once
/// its sandbox has started a command (its spawner's namespaces, and what the command's
/// processes may have left in them, belong to this run).
fn release(
    ctx: &ExecContext,
    calls: &HashMap<u64, tokio::task::AbortHandle>,
    tracker: &SharedTracker,
) -> Result<(), String> {
    if !calls.is_empty() {
        return Err(format!("{} request(s) still running", calls.len()));
    }
    let sandbox = ctx
        .sandbox
        .as_ref()
        .ok_or("the worker has no sandbox, so what its commands left cannot be told")?;
    if sandbox.started_commands() {
        return Err("its sandbox started commands for this run".into());
    }
    sandbox
        .empty_home()
        .map_err(|e| format!("its private home could not be emptied: {e}"))?;
    tracker
        .lock()
        .map_err(|_| "the tracker is poisoned".to_string())?
        .take();
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
                git_removed: refreshed.git_removed,
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
