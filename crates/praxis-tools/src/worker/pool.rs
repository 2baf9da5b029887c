//! Worker processes started before a run asks for one (`praxis serve` keeps a few): each is
//! exec'd and waits for its `hello`, which is where it learns its run (workspace, limits,
//! tools) and prepares that run's sandbox and Landlocks itself. A run claims one whole: it
//! leaves the pool when claimed, so no worker is ever shared by two runs, and another one
//! is started in the background to take its place.
//!
//! Only the command given to [`keep_warm`] is pooled; any other is started on demand.

use super::protocol::{HostFacts, PARENT_ENV, ToWorker, write_frame};
use crate::fabric::WorkerCommand;
use std::io;
use std::process::Stdio;
use std::sync::Mutex;
use tokio::process::{Child, Command};

struct Pool {
    command: WorkerCommand,
    size: usize,
    /// Started and not yet claimed (each still waiting for its `hello`).
    ready: Vec<Child>,
    /// Being started now, so a burst of claims starts no more than `size` at once.
    starting: usize,
    /// Which [`keep_warm`] call this pool is: a process started for an earlier one is not
    /// added to a later one.
    generation: u64,
    /// The runtime the processes are started on (and their pipes driven by).
    runtime: tokio::runtime::Handle,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

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
            command,
            size,
            ready: Vec::new(),
            starting: 0,
            generation,
            runtime,
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
        Some(p) if p.command == *command => p.ready.iter().filter_map(Child::id).collect(),
        _ => Vec::new(),
    }
}

/// Takes a started process of `command` out of the pool (None when `command` is not pooled
/// on the current runtime or none is ready), and starts its replacement in the background.
pub(crate) fn claim(command: &WorkerCommand) -> Option<Child> {
    let claimed = {
        let mut slot = pool();
        // Only on the runtime that drives the pool's pipes: a process started for another
        // runtime (another server in the same process, as in tests) is not handed out.
        let here = tokio::runtime::Handle::try_current().ok()?.id();
        let pool = slot
            .as_mut()
            .filter(|p| p.command == *command && p.runtime.id() == here)?;
        let mut found = None;
        while let Some(mut child) = pool.ready.pop() {
            // One that died while it waited is dropped, not handed out.
            if matches!(child.try_wait(), Ok(None)) {
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
    let (command, runtime, generation, missing) = {
        let mut slot = pool();
        let Some(pool) = slot.as_mut() else {
            return;
        };
        let missing = pool.size.saturating_sub(pool.ready.len() + pool.starting);
        pool.starting += missing;
        (
            pool.command.clone(),
            pool.runtime.clone(),
            pool.generation,
            missing,
        )
    };
    for _ in 0..missing {
        let command = command.clone();
        runtime.spawn(async move {
            let started = match start(&command) {
                Ok(child) => prepare(child).await,
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

/// Tells a worker started ahead of its run to make the parts of a sandbox that do not
/// depend on the run while it waits (with this runtime's host facts).
async fn prepare(mut child: Child) -> io::Result<Child> {
    let prepare = ToWorker::Prepare {
        host: Box::new(HostFacts::of_this_process()),
    };
    match child.stdin.as_mut() {
        Some(stdin) => write_frame(stdin, &prepare).await?,
        None => return Err(io::Error::other("the worker's stdin is not piped")),
    }
    Ok(child)
}

/// Starts one worker process of `command`: piped stdin and stdout, killed when dropped, and
/// told this process's pid ([`PARENT_ENV`]) so that it ends with this process (see
/// [`super::serve_stdio`]). Nothing runs in the child before its exec, so the standard
/// library spawns it without copying this process's address space.
pub(crate) fn start(command: &WorkerCommand) -> io::Result<Child> {
    Command::new(&command.program)
        .args(&command.args)
        .env(PARENT_ENV, std::process::id().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
}
