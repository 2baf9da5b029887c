//! `praxis job`: parses nothing but the environment (the work is in
//! `praxis_runtime::job`), prints the report and picks the exit code: 0 achieved, 1 not,
//! 2 a refused configuration.

use anyhow::Result;
use praxis_runtime::job::{self, JobError, config::JobConfig};
use praxis_runtime::{Cancel, DataHome, Runtime};
use praxis_tools::Registry;
use std::process::ExitCode;
use std::sync::Arc;

/// Exit code of a refused configuration.
const CONFIG_ERROR: u8 = 2;

pub async fn job(home: &DataHome) -> Result<ExitCode> {
    let env = |key: &str| std::env::var(key).ok();
    let registry = Arc::new(Registry::builtin());
    let config = match JobConfig::from_env(&env, &registry.names()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("praxis job: {e}");
            return Ok(ExitCode::from(CONFIG_ERROR));
        }
    };
    // SIGTERM (a Job's deadline) or ctrl-c cancels the run; it is recorded and reported.
    let cancel = Cancel::default();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        let reason = crate::wait_for_stop_signal().await;
        on_signal.cancel(reason);
    });
    // The shared PostgreSQL ledger when PRAXIS_LEDGER_URL names one (a run Job's pod).
    let ledger = home.open_ledger()?.ledger();
    let runtime = Runtime::new(ledger, registry).with_home(home.clone());
    match job::run(home, &runtime, &config, &env, cancel).await {
        Ok(report) => {
            println!("{}", serde_json::to_string(&report)?);
            Ok(if report.achieved {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Err(JobError::Config(e)) => {
            eprintln!("praxis job: {e}");
            Ok(ExitCode::from(CONFIG_ERROR))
        }
        Err(JobError::Run(e)) => {
            eprintln!("praxis job: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
