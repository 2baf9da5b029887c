//! Starting runs locally: `praxis run`, `praxis branch` and `praxis resume` share how a run
//! is equipped (writ, approver, prices, checkpoint key, cancel on a signal) and how its end
//! is reported.

use crate::{ApproveMode, RunArgs, governance, present, runtime_key, writs};
use anyhow::{Context, Result};
use praxis_core::{RunSpec, RunStatus};
use praxis_runtime::approval::{Approver, FixedDecision, StoreApprover};
use praxis_runtime::config::{self, Override};
use praxis_runtime::home::WorkspaceOrigin;
use praxis_runtime::run_request::{
    self, Asked, CognitionRequest, RequestError, RunRequest, Script,
};
use praxis_runtime::stores::{RunLease, Selected};
use praxis_runtime::{
    BranchFrom, Cancel, DataHome, RunOptions, RunReport, Runtime, WritGrant, new_run_id,
};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// `--workspace` (default: the current directory), canonical.
pub fn workspace_dir(given: Option<&Path>) -> Result<PathBuf> {
    let workspace = match given {
        Some(dir) => dir.to_path_buf(),
        None => std::env::current_dir().context("reading the current directory")?,
    };
    std::fs::canonicalize(&workspace).with_context(|| {
        format!(
            "--workspace {}: not an accessible directory",
            workspace.display()
        )
    })
}

/// `--workspace` (default: the current directory) for a local run: canonical, and refused
/// when it is, lies inside or contains the data dir.
pub fn local_workspace(home: &DataHome, given: Option<&Path>) -> Result<PathBuf> {
    let workspace = match given {
        Some(dir) => dir.to_path_buf(),
        None => std::env::current_dir().context("reading the current directory")?,
    };
    home.admit_workspace(&workspace, WorkspaceOrigin::Given)
        .map_err(|e| anyhow::anyhow!("--workspace {e}"))
}

pub async fn run(home: &DataHome, args: RunArgs) -> Result<ExitCode> {
    let workspace = local_workspace(home, args.workspace.as_deref())?;
    let request = RunRequest {
        task: Asked::new(args.task, "TASK"),
        workspace,
        cognition: cognition_request(args.provider, args.model, args.script),
        protocol: args.protocol.map(|p| Asked::new(p, "--protocol")),
        tool_choice: args.tool_choice.map(|c| Asked::new(c, "--tool-choice")),
        max_steps: args.max_steps.map(|n| Asked::new(n, "--max-steps")),
        max_seconds: args.max_seconds.map(|n| Asked::new(n, "--max-seconds")),
        max_invalid_replies: None,
        tools: args.tools,
        read_only: args.read_only,
    };
    let resolved =
        run_request::resolve(home, request, &|k| std::env::var(k).ok()).map_err(flagged)?;
    say(&resolved.warnings, &resolved.notes);
    let (runtime, selected) = local_runtime(home).await?;
    let (mut options, _lease) = equip(home, resolved.options, args.approve, &selected)?;
    options.writ = Some(WritGrant {
        token: writs::for_run(home, args.writ.as_deref())?,
        anchor: writs::anchor_for_run(home, args.writ.is_some())?,
    });
    let progress = present::Progress::new(std::io::stderr().is_terminal());
    let report = runtime.run(options, &progress).await;
    progress.finish();
    conclude(&report?, args.json, None)
}

/// `--provider`/`--model`/`--script` as the resolver's cognition request.
fn cognition_request(
    provider: Option<String>,
    model: Option<String>,
    script: Option<PathBuf>,
) -> CognitionRequest {
    CognitionRequest::named(
        provider,
        model,
        script.map(Script::File),
        ["--provider", "--model", "--script"],
    )
}

/// A refused request, naming its flag.
fn flagged(error: RequestError) -> anyhow::Error {
    match error.field {
        Some(flag) if !error.message.contains(flag) => anyhow::anyhow!("{flag}: {}", error.message),
        _ => anyhow::anyhow!(error.message),
    }
}

/// The configuration's warnings, and what a workspace `praxis.toml` set, on stderr.
fn say(warnings: &[String], notes: &[String]) {
    for warning in warnings {
        eprintln!("praxis: warning: {warning}");
    }
    for note in notes {
        eprintln!("praxis: {note}");
    }
}

/// The cognition for a resume or a branch (the run's workspace config does not apply:
/// the spec is the recorded one), and the price table in force.
fn resolve_cognition(
    home: &DataHome,
    request: CognitionRequest,
) -> Result<(
    Arc<dyn praxis_models::Provider>,
    praxis_core::PriceTable,
    config::Confinement,
)> {
    let cognition = run_request::cognition(home, None, &request, &[], &|k| std::env::var(k).ok())
        .map_err(flagged)?;
    say(&cognition.layered.warnings, &cognition.layered.notes);
    let prices = run_request::prices(home, &cognition.layered).map_err(flagged)?;
    let confinement = cognition.layered.confinement()?;
    Ok((cognition.provider, prices, confinement))
}

/// The layered configuration (see `praxis config`), with its warnings shown.
pub fn load_config(
    home: &DataHome,
    workspace: Option<&Path>,
    flags: &[Override],
) -> Result<config::Layered> {
    let layered = config::load(home, workspace, flags, &|k| std::env::var(k).ok())?;
    say(&layered.warnings, &layered.notes);
    Ok(layered)
}

/// `praxis config`: every effective value and where it came from.
pub fn show_config(home: &DataHome, workspace: Option<&Path>, json: bool) -> Result<ExitCode> {
    let layered = load_config(home, workspace, &[])?;
    if json {
        let entries: Vec<_> = layered
            .entries()
            .into_iter()
            .map(|(key, value, source)| {
                serde_json::json!({ "key": key, "value": value, "source": source })
            })
            .collect();
        let out = serde_json::json!({ "settings": entries, "api_keys": layered.keys });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    for (key, value, source) in layered.entries() {
        println!("{key} = {value}    # {source}");
    }
    for (var, set) in &layered.keys {
        let state = if *set { "set" } else { "not set" };
        println!("# {var}: {state} (API keys are read from the environment only)");
    }
    Ok(ExitCode::SUCCESS)
}

/// `praxis branch RUN --at SEQ`: continue a run's history in a new workspace.
#[derive(clap::Args)]
pub struct BranchArgs {
    /// Run id (or a unique prefix) to branch from.
    pub run: String,
    /// The last entry of the origin's history to keep (see `praxis show RUN`).
    #[arg(long)]
    pub at: u64,
    /// Cognition for the branch (default: mock, or scripted with --script).
    #[arg(long, short = 'p')]
    pub provider: Option<String>,
    /// Script file for the scripted provider; its turns answer the branch's model calls.
    #[arg(long)]
    pub script: Option<PathBuf>,
    /// An extra instruction for the model at the branch point.
    #[arg(long)]
    pub task: Option<String>,
    /// Writ token file the branch acts under (default: the origin's writ as recorded).
    #[arg(long)]
    pub writ: Option<PathBuf>,
    /// Directory for the branch's workspace (created; must be empty if it exists).
    #[arg(long, short = 'w')]
    pub workspace: Option<PathBuf>,
    /// Maximum model calls, counting the history's (default: the origin's limit).
    #[arg(long)]
    pub max_steps: Option<u32>,
    /// Who answers proposals that need approval (as for `praxis run`).
    #[arg(long, value_enum, default_value_t = ApproveMode::Ask)]
    pub approve: ApproveMode,
    /// Print one JSON object (as `praxis run --json`, plus branch_of, branched_at,
    /// workspace, missing_files).
    #[arg(long)]
    pub json: bool,
}

pub async fn branch(home: &DataHome, args: BranchArgs) -> Result<ExitCode> {
    let (provider, prices, confinement) = resolve_cognition(
        home,
        cognition_request(args.provider.clone(), None, args.script.clone()),
    )?;
    let (runtime, selected) = local_runtime(home).await?;
    let origin = runtime.ledger().find_run(&args.run)?;
    let run_id = praxis_runtime::new_run_id();
    let workspace = match &args.workspace {
        Some(dir) => home
            .admit_new_workspace(dir, WorkspaceOrigin::Given)
            .map_err(|e| anyhow::anyhow!("--workspace {e}"))?,
        None => home.runtime_workspace(&run_id),
    };
    let from = BranchFrom {
        run_id: origin.clone(),
        at: args.at,
        workspace: workspace.clone(),
        note: args.task,
        max_steps: args.max_steps,
    };
    // The runtime adjusts the origin's spec (workspace, provider, limits) for the branch.
    let spec = recorded_spec(&runtime, &origin)?;
    let mut options = RunOptions::new(spec, provider);
    options.prices = prices;
    confinement.apply(&mut options);
    options.run_id = Some(run_id);
    let (mut options, _lease) = equip(home, options, args.approve, &selected)?;
    // Without --writ the branch keeps acting under the origin's writ as recorded.
    if let Some(path) = &args.writ {
        options.writ = Some(WritGrant {
            token: writs::for_run(home, Some(path))?,
            anchor: writs::anchor_for_run(home, true)?,
        });
    }
    eprintln!(
        "praxis: branching run {origin} at seq {} into {}",
        args.at,
        workspace.display()
    );
    let progress = present::Progress::new(std::io::stderr().is_terminal());
    let result = runtime.branch(from, options, &progress).await;
    progress.finish();
    let (report, point) = result?;
    if !point.missing.is_empty() {
        eprintln!(
            "praxis: warning: {} file(s) of the origin's world had no recorded content and are \
             missing from the branch workspace: {}",
            point.missing.len(),
            point.missing.join(", ")
        );
    }
    let extra = serde_json::json!({
        "branch_of": origin,
        "branched_at": point.seq,
        "workspace": workspace.display().to_string(),
        "missing_files": point.missing,
    });
    conclude(&report, args.json, Some(extra))
}

/// `praxis resume RUN`: take over an interrupted run.
pub struct ResumeArgs {
    pub run: String,
    pub provider: Option<String>,
    pub script: Option<PathBuf>,
    pub writ: Option<PathBuf>,
    pub approve: ApproveMode,
    pub json: bool,
}

pub async fn resume(home: &DataHome, args: ResumeArgs) -> Result<ExitCode> {
    let (runtime, selected) = local_runtime(home).await?;
    let run_id = runtime.ledger().find_run(&args.run)?;
    let recorded = recorded_spec(&runtime, &run_id)?;
    // By default the run goes on with the cognition it was started with.
    let name = args.provider.clone().or_else(|| {
        (args.script.is_none() && recorded.provider != "scripted")
            .then(|| recorded.provider.clone())
    });
    if name.is_none() && args.script.is_none() {
        anyhow::bail!(
            "run {run_id} used the scripted provider and scripts are not recorded: pass the \
             script again with --script FILE (or another --provider)"
        );
    }
    let (provider, prices, confinement) =
        resolve_cognition(home, cognition_request(name, None, args.script.clone()))?;
    let mut options = RunOptions::new(recorded, provider);
    options.prices = prices;
    confinement.apply(&mut options);
    options.run_id = Some(run_id.clone());
    let (mut options, _lease) = equip(home, options, args.approve, &selected)?;
    if let Some(path) = &args.writ {
        options.writ = Some(WritGrant {
            token: writs::for_run(home, Some(path))?,
            anchor: writs::anchor_for_run(home, true)?,
        });
    }
    eprintln!("praxis: resuming run {run_id}");
    let progress = present::Progress::new(std::io::stderr().is_terminal());
    let report = runtime.resume(&run_id, options, &progress).await;
    progress.finish();
    conclude(&report?, args.json, None)
}

fn recorded_spec(runtime: &Runtime, run_id: &str) -> Result<RunSpec> {
    Ok(praxis_runtime::recorded::run_started(&**runtime.ledger(), run_id)?.spec)
}

/// The local runtime on the selected ledger (SQLite, or PostgreSQL with
/// `PRAXIS_LEDGER_URL`), and which one it is. Its registry has the tools of the configured
/// MCP servers; a server that did not start is named here, with its stderr tail, and the
/// run goes on without its tools.
async fn local_runtime(home: &DataHome) -> Result<(Runtime, Selected)> {
    let selected = home.open_ledger()?;
    let (registry, mcp) = praxis_mcp::client::tool_set_from_env(home).await?;
    for warning in mcp.warnings() {
        eprintln!("praxis: warning: {warning}");
    }
    Ok((
        Runtime::new(selected.ledger(), Arc::new(registry)).with_home(home.clone()),
        selected,
    ))
}

/// Checkpoint key, approver and cancel-on-signal: what every local run gets; on PostgreSQL
/// also the run's lease, held until the returned guard is dropped (no server takes the run
/// over while this process drives it; a run another process drives is refused here).
fn equip(
    home: &DataHome,
    mut options: RunOptions,
    approve: ApproveMode,
    selected: &Selected,
) -> Result<(RunOptions, Option<RunLease>)> {
    options.checkpoint_key = Some(Arc::new(runtime_key(home)?));
    options.approver = approver(home, approve)?;
    let cancel = Cancel::default();
    options.cancel = cancel.clone();
    // `praxis cancel RUN` from another terminal reaches this process through the ledger.
    let run_id = options.run_id.get_or_insert_with(new_run_id).clone();
    let lease = match selected.postgres() {
        Some(pg) => Some(RunLease::take(
            pg.clone(),
            &run_id,
            praxis_runtime::stores::lease_from_env()?,
            cancel.clone(),
        )?),
        None => None,
    };
    crate::cancel::watch_requests(home, run_id, cancel.clone())?;
    tokio::spawn(async move {
        let reason = crate::wait_for_stop_signal().await;
        cancel.cancel(reason);
    });
    Ok((options, lease))
}

fn approver(home: &DataHome, mode: ApproveMode) -> Result<Arc<dyn Approver>> {
    Ok(match mode {
        ApproveMode::Auto => Arc::new(FixedDecision::auto()),
        ApproveMode::Never => Arc::new(FixedDecision::never()),
        ApproveMode::Ask => {
            let store = StoreApprover::new(governance::open_store(home)?);
            if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
                Arc::new(governance::PromptApprover { store })
            } else {
                Arc::new(store)
            }
        }
    })
}

/// Prints the run's end (the `--json` summary, or the final answer) and picks the exit code.
fn conclude(report: &RunReport, json: bool, extra: Option<serde_json::Value>) -> Result<ExitCode> {
    if json {
        let mut summary = serde_json::json!({
            "run_id": report.run_id,
            "status": report.result.status,
            "stop_reason": report.result.stop_reason,
            "final_answer": report.result.final_answer,
            "error": report.result.error,
            "steps": report.result.steps,
            "tool_calls": report.result.tool_calls,
            "usage": report.result.usage,
        });
        if let (Some(map), Some(serde_json::Value::Object(extra))) =
            (summary.as_object_mut(), extra)
        {
            map.extend(extra);
        }
        println!("{summary}");
    } else if let Some(answer) = &report.result.final_answer {
        println!("{answer}");
    }
    if report.result.status == RunStatus::Completed {
        return Ok(ExitCode::SUCCESS);
    }
    if !json {
        let why = report.result.error.as_deref().unwrap_or("");
        eprintln!(
            "praxis: run {} ended: {} {why}",
            report.run_id,
            report.result.stop_reason.as_str()
        );
    }
    Ok(ExitCode::FAILURE)
}
