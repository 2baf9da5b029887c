//! The worker: a long-lived helper process (`praxis worker`) that executes every tool whose
//! [`Placement`] is the worker (every file tool, reads included, commands and `http`) for
//! one run at a time, and tracks the run's workspace. It confines itself with Landlock to
//! what those tools need before it serves a call, and every command it starts is confined
//! by the sandbox. Released after its run, it may serve the next run of the same workspace
//! and settings (`pool.rs`).
//!
//! Protocol, on the worker's stdin/stdout: frames of a 4-byte big-endian length and that
//! many bytes of JSON, each an object with a `type`:
//! - runtime -> worker: `hello {workspace, limits}` once, then `restore {limits, state}`
//!   (only in a worker replacing a dead one), then `call {id, tool, args, timeout_ms}`,
//!   `capture {id, limits}`, `refresh {id, hints}` and `cancel {id}`, and at the run's end
//!   `release {id}` where its pool would keep it for another run (`pool.rs`);
//! - worker -> runtime: `ready {pid, layers}` (or `refused {message}`), then
//!   `result {id, observation}` per call, and `blob {id, hex}`... followed by
//!   `captured {id, manifest, state}` / `refreshed {id, changes, delta, state}` (or
//!   `track_failed {id, message}`) per tracking request, in completion order, and
//!   `released {id}` or `not_released {id, why}`. The first worker's start capture may
//!   follow its `hello` at once, before `ready` is read.
//!
//! Calls run concurrently; `cancel` (sent when the runtime drops a call) kills the call's
//! process group. If the worker dies, every call in flight is answered with an error
//! observation saying so, and the next call starts a new worker.

mod client;
mod fork_server;
mod pool;
mod process;
mod protocol;
mod serve;

pub use client::{WorkerClient, WorkerDescription};
pub use pool::{
    MAX_PARKED, PARKED_FOR, RUNS_PER_WORKER, keep_warm, parked_pids, ready_pids, set_reuse,
    stop_warm,
};
pub use process::waits_at_idle_priority;
pub use protocol::{
    FromWorker, HostFacts, MAX_FRAME, ToWorker, WorkerSetup, read_frame, write_frame,
};
pub use serve::{serve, serve_stdio};

/// A worker process's life (`praxis worker`, `praxis-worker`): with `fork_server`, its
/// pool's fork server (`fork_server.rs`: it must run before any thread or async runtime
/// exists in the process), else one run's worker (`run_stdio`).
pub fn run(fork_server: bool) -> std::io::Result<()> {
    if fork_server {
        fork_server::serve_forks()
    } else {
        run_stdio()
    }
}

/// One run's worker, exec'd or forked: its async runtime, then [`serve_stdio`] until its
/// stdin closes. Current-thread: Landlock
/// binds threads, and the worker confines itself before any thread that runs tool code
/// exists (see [`serve`]); a single thread also saves it the cross-thread wake-ups of a
/// work-stealing pool on every frame (commands still run in parallel).
fn run_stdio() -> std::io::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| std::io::Error::other(format!("cannot start the async runtime: {e}")))?
        .block_on(serve_stdio())
}
