//! The tool worker as a standalone binary (the same loop as `praxis worker`).
//!
//! `--fork-server` makes it the pool's fork server (see `worker::run`).
//! `--broken-resolver-for-tests` (debug builds only) turns the workspace resolver's checks
//! off, so tests can prove that the worker's own Landlock domain stops a resolver bug.

fn main() -> std::process::ExitCode {
    let mut fork_server = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--fork-server" => fork_server = true,
            #[cfg(debug_assertions)]
            "--broken-resolver-for-tests" => praxis_tools::workspace::break_resolver_for_tests(),
            other => {
                eprintln!("praxis-worker: unknown argument `{other}`");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    match praxis_tools::worker::run(fork_server) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("praxis-worker: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
