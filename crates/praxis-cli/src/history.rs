//! `praxis replay` and `praxis world`: presentation of the runtime's replay and world
//! reconstruction.

use anyhow::{Context, Result};
use praxis_runtime::DataHome;
use praxis_runtime::replay::{ReplayReport, replay as replay_run};
use praxis_runtime::tool_set::registry_from_env;
use praxis_runtime::world::{diff, world_at};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

/// Re-drives the run's kernel from its record; exit 1 on the first divergence.
pub fn replay(home: &DataHome, run: &str, json: bool) -> Result<ExitCode> {
    let ledger = super::read_ledger(home)?;
    let run_id = ledger.find_run(run)?;
    // Verdicts depend on the contracts: replay with the registry runs are made with.
    let report = replay_run(&*ledger, Arc::new(registry_from_env(home)?), &run_id)
        .with_context(|| format!("replaying run {run_id}"))?;
    if json {
        let mut value = serde_json::to_value(&report)?;
        value["run_id"] = serde_json::json!(run_id);
        println!("{value}");
    }
    match report {
        ReplayReport::Matched {
            entries,
            unfinished,
        } => {
            if !json {
                match unfinished {
                    None => println!("replay of {run_id}: matched {entries} entries"),
                    Some(what) => println!(
                        "replay of {run_id}: matched {entries} entries (unfinished: {what})"
                    ),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ReplayReport::Diverged {
            seq,
            kind,
            expected,
            got,
            detail,
        } => {
            if !json {
                println!("replay of {run_id}: diverged at seq {seq} (kind {kind}): {detail}");
                println!("  expected (recorded): {expected}");
                println!("  got (replayed):      {got}");
            }
            eprintln!("praxis: run {run_id} did not replay identically (seq {seq})");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Lists changed paths, prints one file, or prints a diff, as of entry `at`.
pub fn world(
    home: &DataHome,
    run: &str,
    at: Option<u64>,
    path: Option<&str>,
    show_diff: bool,
) -> Result<ExitCode> {
    let ledger = super::read_ledger(home)?;
    let run_id = ledger.find_run(run)?;
    let world = world_at(&*ledger, &run_id, at)
        .with_context(|| format!("rebuilding the world of run {run_id}"))?;
    let seq = world.at();
    if let Some(path) = path {
        // Manifest paths are relative to the workspace root, without `./`.
        let rel = path.trim_start_matches("./");
        let content = world
            .content(&*ledger, rel)
            .with_context(|| format!("--path {path}"))?;
        let Some(content) = content else {
            eprintln!("praxis: `{path}` did not exist at seq {seq} of run {run_id}");
            return Ok(ExitCode::FAILURE);
        };
        let mut out = std::io::stdout().lock();
        out.write_all(&content)?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    if show_diff {
        let start = world_at(&*ledger, &run_id, Some(1))
            .with_context(|| format!("rebuilding the start of run {run_id}"))?;
        print!("{}", diff(&*ledger, &start, &world)?);
        return Ok(ExitCode::SUCCESS);
    }
    if world.changed_paths().is_empty() {
        eprintln!("run {run_id} changed no files as of seq {seq}");
    }
    for changed in world.changed_paths() {
        if world.exists(changed) {
            println!("{changed}");
        } else {
            println!("{changed} (deleted)");
        }
    }
    Ok(ExitCode::SUCCESS)
}
