//! The tool worker as a standalone binary (the same loop as `praxis worker`).
//!
//! `--broken-resolver-for-tests` (debug builds only) turns the workspace resolver's checks
//! off, so tests can prove that the worker's own Landlock domain stops a resolver bug.

fn main() -> std::process::ExitCode {
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            #[cfg(debug_assertions)]
            "--broken-resolver-for-tests" => praxis_tools::workspace::break_resolver_for_tests(),
            other => {
                eprintln!("praxis-worker: unknown argument `{other}`");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    // Current-thread: Landlock binds threads, and the worker confines itself before any
    // thread that runs tool code exists (see `worker::serve`).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("praxis-worker: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(praxis_tools::worker::serve_stdio()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("praxis-worker: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
