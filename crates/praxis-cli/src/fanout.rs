//! `praxis fanout`: parse the flags and the tasks file, hand them to `praxis::fanout`,
//! print one JSON line per run.

use anyhow::{Context, Result, bail};
use praxis_runtime::DataHome;
use std::path::PathBuf;
use std::process::ExitCode;

/// Run every task of a file with every provider, bounded, recorded in the data dir.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  praxis fanout --tasks tasks.txt --providers mock,openai:gpt-4.1-mini\n  praxis fanout --tasks tasks.txt --providers fast,smart --global 8 --per-provider 2\n\nThe tasks file holds one task per line (blank lines and lines starting with # are skipped).\nOne JSON object per run goes to stdout: task, provider, run_id, status, stop_reason, final_answer, error.\nExit code 0 only when every run completed."
)]
pub struct FanoutArgs {
    /// File with one task per line.
    #[arg(long)]
    pub tasks: PathBuf,
    /// Providers or tiers, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub providers: Vec<String>,
    /// Workspace directory (default: the current directory).
    #[arg(long, short = 'w')]
    pub workspace: Option<PathBuf>,
    /// Runs at once, over all providers.
    #[arg(long, default_value_t = 4)]
    pub global: usize,
    /// Runs at once per provider.
    #[arg(long, default_value_t = 2)]
    pub per_provider: usize,
}

pub async fn fanout(home: &DataHome, args: FanoutArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&args.tasks)
        .with_context(|| format!("--tasks {}", args.tasks.display()))?;
    let tasks: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    if tasks.is_empty() {
        bail!("--tasks {}: no tasks in the file", args.tasks.display());
    }
    let workspace = crate::launch::local_workspace(home, args.workspace.as_deref())?;
    let base = praxis::Agent::builder()
        .durable(home.root())
        .workspace(workspace);
    let limits = praxis::fanout::LaneLimits {
        global: args.global,
        per_key: args.per_provider,
    };
    let results = praxis::fanout::fanout(&base, &tasks, &args.providers, limits).await;
    let mut all_completed = true;
    for r in results {
        let line = match &r.result {
            Ok(run) => {
                all_completed &= run.status == praxis::RunStatus::Completed;
                serde_json::json!({
                    "task": tasks[r.task], "provider": r.provider, "run_id": r.run_id,
                    "status": run.status, "stop_reason": run.stop_reason,
                    "final_answer": run.text, "error": run.error,
                })
            }
            Err(e) => {
                all_completed = false;
                serde_json::json!({
                    "task": tasks[r.task], "provider": r.provider, "run_id": r.run_id,
                    "status": "not_started", "error": e.to_string(),
                })
            }
        };
        println!("{line}");
    }
    Ok(if all_completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
