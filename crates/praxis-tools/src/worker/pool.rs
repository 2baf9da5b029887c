//! Worker processes started before a run asks for one (`praxis serve` keeps a few): each
//! waits for its `hello`, which is where it learns its run (workspace, limits, tools) and
//! prepares that run's sandbox and Landlocks itself. A run claims one whole: it leaves the
//! pool when claimed, so a worker serves one run at a time, and another one is started in
//! the background to take its place.
//!
//! A pool's workers are forked by its fork server (`fork_server.rs`), exec'd once when the
//! pool is made; where that fails, each is exec'd. Only the command given to [`keep_warm`]
//! is pooled; any other is exec'd on demand.
//!
//! A pool also keeps workers whose runs are over ([`park`]), for the next run served the
//! same way: the same workspace directory (same inode), limits and manifest tools, which
//! are all its sandbox and its own Landlock domain were made for. A worker serves at most
//! [`RUNS_PER_WORKER`] runs. A worker is kept only
//! when its run ended with nothing in flight and the worker, asked to `release`, ended its
//! run: it drops its tracker, empties its private home, and refuses once its sandbox has
//! started a command (that command's spawner and namespaces belong to its run). One run
//! at a time still has a worker; a kept one serves the next run from its capture on, with
//! no new process, sandbox or confinement. At most [`MAX_PARKED`] are kept, each for
//! [`PARKED_FOR`]; [`set_reuse`] turns keeping off.

use super::client::{Parked, Serves};
use super::fork_server::ForkServer;
use super::process::{self, WorkerProcess};
use super::protocol::{HostFacts, ToWorker, write_frame};
use crate::fabric::WorkerCommand;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most workers a pool keeps after their runs.
pub const MAX_PARKED: usize = 8;
/// How long a worker is kept after its run for another one; then it is ended.
pub const PARKED_FOR: Duration = Duration::from_secs(60);
/// The most runs one worker process serves: then it ends with its run, so that nothing a
/// long life might gather (memory, say) grows without bound.
pub const RUNS_PER_WORKER: u32 = 1000;

struct Pool {
    command: WorkerCommand,
    size: usize,
    /// Started and not yet claimed (each still waiting for its `hello`).
    ready: Vec<WorkerProcess>,
    /// Forks the pool's workers; None where it could not start or has failed.
    forks: Option<Arc<ForkServer>>,
    /// Being started now, so a burst of claims starts no more than `size` at once.
    starting: usize,
    /// Which [`keep_warm`] call this pool is: a process started for an earlier one is not
    /// added to a later one.
    generation: u64,
    /// The runtime the processes are started on (and their pipes driven by).
    runtime: tokio::runtime::Handle,
    /// Workers kept after their runs, each with when it was kept, oldest first.
    parked: Vec<(Instant, Parked)>,
    /// A task will end the kept workers whose time is up.
    sweeping: bool,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);
/// Whether pools keep workers after their runs ([`set_reuse`]).
static REUSE: AtomicBool = AtomicBool::new(true);

/// Whether pools keep workers after their runs for the next run served the same way (on
/// by default). Off: every run's worker is a new process, ended with its run.
pub fn set_reuse(on: bool) {
    REUSE.store(on, Ordering::SeqCst);
    if !on && let Some(pool) = pool().as_mut() {
        // Dropped: killed.
        pool.parked.clear();
    }
}

fn pool() -> std::sync::MutexGuard<'static, Option<Pool>> {
    POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Keeps `size` processes of `command` started ahead of the runs that will claim them, on
/// the current tokio runtime (outside one, nothing is kept). Replaces an earlier pool (its
/// unclaimed processes are killed); `size` 0 stops pooling.
pub fn keep_warm(command: WorkerCommand, size: usize) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    {
        let mut slot = pool();
        let generation = slot.as_ref().map_or(0, |p| p.generation + 1);
        *slot = (size > 0).then(|| Pool {
            forks: ForkServer::start(&command)
                .inspect_err(|e| exec_instead(&command, "start", e))
                .ok()
                .map(Arc::new),
            command,
            size,
            ready: Vec::new(),
            starting: 0,
            generation,
            runtime,
            parked: Vec::new(),
            sweeping: false,
        });
    }
    replenish();
}

/// Stops pooling and kills the unclaimed processes.
pub fn stop_warm() {
    pool().take();
}

/// The pids of `command`'s processes waiting to be claimed.
pub fn ready_pids(command: &WorkerCommand) -> Vec<u32> {
    match pool().as_ref() {
        Some(p) if p.command == *command => p.ready.iter().map(WorkerProcess::id).collect(),
        _ => Vec::new(),
    }
}

/// The pool of `command` on the current runtime, if there is one.
fn here<'a>(slot: &'a mut Option<Pool>, command: &WorkerCommand) -> Option<&'a mut Pool> {
    // Only on the runtime that drives the pool's pipes: a process started for another
    // runtime (another server in the same process, as in tests) is not handed out.
    let here = tokio::runtime::Handle::try_current().ok()?.id();
    slot.as_mut()
        .filter(|p| p.command == *command && p.runtime.id() == here)
}

/// Whether a worker of `command` whose run is over would be kept (see [`park`]).
pub(crate) fn parks(command: &WorkerCommand) -> bool {
    REUSE.load(Ordering::SeqCst) && here(&mut pool(), command).is_some()
}

/// Keeps `worker` (released: nothing of its run is left in it) for the next run served the
/// same way, for at most [`PARKED_FOR`]; the oldest kept one goes when [`MAX_PARKED`] are.
pub(crate) fn park(command: &WorkerCommand, worker: Parked) {
    let mut slot = pool();
    let Some(keeping) = here(&mut slot, command)
        .filter(|_| REUSE.load(Ordering::SeqCst) && worker.runs_served() < RUNS_PER_WORKER)
    else {
        // Dropped: killed.
        return;
    };
    keeping.parked.push((Instant::now(), worker));
    if keeping.parked.len() > MAX_PARKED {
        keeping.parked.remove(0);
    }
    sweep_later(keeping);
}

/// Has a task end the kept workers of `pool` once their [`PARKED_FOR`] is up (one task at a
/// time, at the oldest one's time).
fn sweep_later(pool: &mut Pool) {
    let Some((oldest, _)) = pool.parked.first().filter(|_| !pool.sweeping) else {
        return;
    };
    pool.sweeping = true;
    let (due, generation) = (*oldest + PARKED_FOR, pool.generation);
    pool.runtime.spawn(async move {
        tokio::time::sleep_until(due.into()).await;
        let mut slot = self::pool();
        if let Some(pool) = slot.as_mut().filter(|p| p.generation == generation) {
            pool.sweeping = false;
            // Dropped: killed.
            pool.parked.retain(|(at, _)| at.elapsed() < PARKED_FOR);
            sweep_later(pool);
        }
    });
}

/// Takes a kept worker that fits `serves` (see [`park`]), the one kept last; those found
/// dead meanwhile, or whose time is up, are dropped first.
pub(crate) fn claim_parked(command: &WorkerCommand, serves: &Serves) -> Option<Parked> {
    let mut slot = pool();
    let pool = here(&mut slot, command)?;
    pool.parked
        .retain(|(at, p)| at.elapsed() < PARKED_FOR && p.may_serve());
    let at = pool.parked.iter().rposition(|(_, p)| p.fits(serves))?;
    Some(pool.parked.remove(at).1)
}

/// The pids of `command`'s workers kept after their runs.
pub fn parked_pids(command: &WorkerCommand) -> Vec<u32> {
    match pool().as_ref() {
        Some(p) if p.command == *command => p.parked.iter().map(|(_, w)| w.pid()).collect(),
        _ => Vec::new(),
    }
}

/// Takes a started process of `command` out of the pool (None when `command` is not pooled
/// on the current runtime or none is ready), and starts its replacement in the background.
pub(crate) fn claim(command: &WorkerCommand) -> Option<WorkerProcess> {
    let claimed = {
        let mut slot = pool();
        let pool = here(&mut slot, command)?;
        let mut found = None;
        while let Some(mut child) = pool.ready.pop() {
            // One that died while it waited is dropped, not handed out.
            if matches!(child.try_wait(), Ok(None)) {
                child.to_foreground();
                found = Some(child);
                break;
            }
        }
        found
    };
    replenish();
    claimed
}

/// Starts as many processes as the pool lacks, in the background.
fn replenish() {
    let (command, forks, runtime, generation, missing) = {
        let mut slot = pool();
        let Some(pool) = slot.as_mut() else {
            return;
        };
        let missing = pool.size.saturating_sub(pool.ready.len() + pool.starting);
        pool.starting += missing;
        (
            pool.command.clone(),
            pool.forks.clone(),
            pool.runtime.clone(),
            pool.generation,
            missing,
        )
    };
    for _ in 0..missing {
        let (command, forks) = (command.clone(), forks.clone());
        runtime.spawn(async move {
            // Off the async threads: a fork waits for the fork server's answer, an exec for
            // the spawn.
            let starting = command.clone();
            let started =
                tokio::task::spawn_blocking(move || start(&starting, forks.as_deref(), generation))
                    .await
                    .unwrap_or_else(|e| Err(io::Error::other(e)));
            let started = match started {
                Ok(child) => {
                    // What it prepares while it waits takes no CPU a run under way wants.
                    child.to_background();
                    prepare(child).await
                }
                Err(e) => Err(e),
            };
            let mut slot = pool();
            let Some(pool) = slot.as_mut().filter(|p| p.generation == generation) else {
                // Pooling stopped or changed meanwhile: `started` is dropped, and killed.
                return;
            };
            pool.starting = pool.starting.saturating_sub(1);
            match started {
                Ok(child) => pool.ready.push(child),
                // Not retried in a loop: the next claim tries again, and a run that finds
                // none starts its own worker and says why it could not.
                Err(e) => eprintln!(
                    "praxis: could not start a worker ahead of time (`{}`): {e}",
                    command.program.display()
                ),
            }
        });
    }
}

/// Starts one pooled worker: forked by `forks` if the pool has a fork server, else exec'd.
/// A fork server that fails is dropped from pool `generation` (once, with a message).
fn start(
    command: &WorkerCommand,
    forks: Option<&ForkServer>,
    generation: u64,
) -> io::Result<WorkerProcess> {
    if let Some(forks) = forks {
        match forks.fork() {
            Ok(worker) => return Ok(worker),
            Err(e) => {
                let mut slot = pool();
                if let Some(pool) = slot.as_mut().filter(|p| p.generation == generation)
                    && pool.forks.take().is_some()
                {
                    exec_instead(command, "fork a worker", &e);
                }
            }
        }
    }
    process::exec(command)
}

/// Says that the pool's workers are exec'd because its fork server could not `what`.
fn exec_instead(command: &WorkerCommand, what: &str, e: &io::Error) {
    eprintln!(
        "praxis: the worker fork server (`{}`) could not {what} ({e}); workers are exec'd instead",
        command.program.display()
    );
}

/// Tells a worker started ahead of its run to make the parts of a sandbox that do not
/// depend on the run while it waits (with this runtime's host facts).
async fn prepare(mut child: WorkerProcess) -> io::Result<WorkerProcess> {
    let prepare = ToWorker::Prepare {
        host: Box::new(HostFacts::of_this_process()),
    };
    match child.stdin.as_mut() {
        Some(stdin) => write_frame(stdin, &prepare).await?,
        None => return Err(io::Error::other("the worker's stdin is not piped")),
    }
    Ok(child)
}
