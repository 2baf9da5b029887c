//! `praxis policy check` (what-if under another writ) and `praxis diff` (run-to-run):
//! presentation of the runtime's what-if and compare.

use crate::writs;
use anyhow::{Context, Result};
use praxis_runtime::DataHome;
use praxis_runtime::compare::{RunDiff, Step, diff_runs};
use praxis_runtime::whatif::check;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

/// Re-judges every recorded proposal of `run` under the writ in `writ`; exit 0 either way.
pub fn policy_check(home: &DataHome, run: &str, writ: &Path, json: bool) -> Result<ExitCode> {
    let ledger = super::read_ledger(home)?;
    let run_id = ledger.find_run(run)?;
    let token = writs::read_token(&writ.display().to_string())?;
    // Verified like `praxis run --writ`: the signature chain and the window now; each
    // proposal is then judged at its own recorded time.
    let verified = praxis_writ::verify(&token, &writs::anchor(home)?, SystemTime::now())
        .with_context(|| format!("--writ {}", writ.display()))?;
    let changed = check(
        &*ledger,
        Arc::new(praxis_runtime::tool_set::registry_from_env(home)?),
        &run_id,
        Some(Arc::new(verified)),
    )
    .with_context(|| format!("re-evaluating run {run_id}"))?;
    if json {
        println!("{}", serde_json::to_string(&changed)?);
        return Ok(ExitCode::SUCCESS);
    }
    if !changed.is_empty() {
        println!(
            "{:>5}  {:<12}  {:<16}  REASON",
            "SEQ", "TOOL", "BEFORE -> AFTER"
        );
    }
    for c in &changed {
        println!(
            "{:>5}  {:<12}  {:<16}  {}",
            c.seq,
            c.tool,
            format!("{} -> {}", c.before, c.after),
            c.reason
        );
    }
    println!(
        "{} verdict(s) of run {run_id} would change under writ {}",
        changed.len(),
        writ.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Aligns two runs' trajectories and compares their final worlds; exit 0 either way.
pub fn diff(home: &DataHome, run_a: &str, run_b: &str, json: bool) -> Result<ExitCode> {
    let ledger = super::read_ledger(home)?;
    let a = ledger.find_run(run_a)?;
    let b = ledger.find_run(run_b)?;
    let report =
        diff_runs(&*ledger, &a, &b).with_context(|| format!("comparing runs {a} and {b}"))?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_diff(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_diff(d: &RunDiff) {
    println!("A: {} ({} steps, {})", d.run_a, d.steps_a, end(&d.end_a));
    println!("B: {} ({} steps, {})", d.run_b, d.steps_b, end(&d.end_b));
    println!("common prefix: {} step(s)", d.common_prefix);
    match &d.divergence {
        None => println!("trajectories are identical"),
        Some(div) => {
            println!("first divergence at step {}:", div.index);
            print_step("A", div.a.as_ref());
            print_step("B", div.b.as_ref());
            for (side, rest) in [("A", &d.rest_a), ("B", &d.rest_b)] {
                if !rest.is_empty() {
                    println!("then {side}:");
                    for (i, step) in rest.iter().enumerate() {
                        println!("  {:>3}. {step}", div.index + 1 + i);
                    }
                }
            }
        }
    }
    if d.files.is_empty() {
        println!("final worlds: identical");
        return;
    }
    println!("final worlds: {} file(s) differ", d.files.len());
    for f in &d.files {
        println!("  {} ({})", f.path, f.change);
    }
    for f in &d.files {
        match (&f.diff, &f.note) {
            (Some(diff), _) => print!("{diff}"),
            (None, Some(note)) => println!("{}: {note}", f.path),
            (None, None) => {}
        }
    }
}

fn end(reason: &Option<String>) -> &str {
    reason.as_deref().unwrap_or("unfinished")
}

fn print_step(side: &str, step: Option<&Step>) {
    let Some(step) = step else {
        println!("  {side}: (no more steps)");
        return;
    };
    if step.calls.is_empty() {
        println!("  {side}: answer {:?}", step.content);
    }
    for c in &step.calls {
        let status = c.status.as_deref().unwrap_or("not run");
        println!(
            "  {side}: {} {} -> {} ({}) {status}",
            c.tool, c.arguments, c.verdict, c.rule
        );
    }
}
