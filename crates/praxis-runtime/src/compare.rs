//! Run-to-run diff: align two recorded trajectories step by step (a step is one model reply
//! and the proposals it made, with their verdicts and execution status), find where they
//! part, and compare the worlds they left behind.

use crate::recorded::{self, Reader, RecordError};
use crate::world::{WorldError, world_at};
use praxis_core::Record;
use praxis_ledger::Ledger;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;

/// One proposal of a step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepCall {
    pub tool: String,
    pub arguments: Value,
    /// `allow`, `deny` or `needs_approval`.
    pub verdict: String,
    pub rule: String,
    /// The execution status (`ok`, `error`, `timeout`, `cancelled`); None when it did not run.
    pub status: Option<String>,
}

/// One model reply and what came of it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Step {
    /// The kernel's step number (model call number).
    pub step: u32,
    /// The reply's text (the final answer when the step made no proposal).
    pub content: String,
    pub calls: Vec<StepCall>,
}

impl Step {
    /// Same tool calls, arguments, verdicts and outcomes (and the same answer when the step
    /// proposed nothing). Call ids and step numbers are not compared.
    fn same_as(&self, other: &Step) -> bool {
        let key = |c: &StepCall| {
            (
                c.tool.clone(),
                c.arguments.clone(),
                c.verdict.clone(),
                c.status.clone(),
            )
        };
        let (a, b): (Vec<_>, Vec<_>) = (
            self.calls.iter().map(key).collect(),
            other.calls.iter().map(key).collect(),
        );
        a == b && (!self.calls.is_empty() || self.content == other.content)
    }

    /// `tool verdict status` per call, or `answer` for a step without proposals.
    pub fn compact(&self) -> String {
        if self.calls.is_empty() {
            return "answer".into();
        }
        self.calls
            .iter()
            .map(|c| match &c.status {
                Some(status) => format!("{} {} {status}", c.tool, c.verdict),
                None => format!("{} {}", c.tool, c.verdict),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The first step where the runs differ: each side's step (None: that run had no more).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Divergence {
    /// 1-based position in the trajectories.
    pub index: usize,
    pub a: Option<Step>,
    pub b: Option<Step>,
}

/// A file whose content differs between the two final worlds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FileDifference {
    pub path: String,
    /// `only_a`, `only_b` or `differs`.
    pub change: String,
    /// A unified diff (`--- a/P` is run A, `+++ b/P` run B); None for binary content or
    /// content that was not recorded (see `note`).
    pub diff: Option<String>,
    pub note: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunDiff {
    pub run_a: String,
    pub run_b: String,
    pub steps_a: usize,
    pub steps_b: usize,
    /// How many leading steps are identical.
    pub common_prefix: usize,
    /// None: the trajectories are identical.
    pub divergence: Option<Divergence>,
    /// The steps after the divergent one, compact (`tool verdict status, ...`).
    pub rest_a: Vec<String>,
    pub rest_b: Vec<String>,
    /// How each run ended (`stop_reason` of `run_finished`; None: unfinished).
    pub end_a: Option<String>,
    pub end_b: Option<String>,
    /// Files whose final content differs, in path order.
    pub files: Vec<FileDifference>,
}

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A run is missing or unreadable, or an entry's payload is malformed.
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("rebuilding the final world of run {run_id}: {source}")]
    World {
        run_id: String,
        source: Box<WorldError>,
    },
}

/// Compares the trajectories and final worlds of `run_a` and `run_b`.
pub fn diff_runs(ledger: &dyn Ledger, run_a: &str, run_b: &str) -> Result<RunDiff, CompareError> {
    let (steps_a, end_a) = trajectory(ledger, run_a)?;
    let (steps_b, end_b) = trajectory(ledger, run_b)?;
    let common_prefix = steps_a
        .iter()
        .zip(&steps_b)
        .take_while(|(a, b)| a.same_as(b))
        .count();
    let divergence = (common_prefix < steps_a.len().max(steps_b.len())).then(|| Divergence {
        index: common_prefix + 1,
        a: steps_a.get(common_prefix).cloned(),
        b: steps_b.get(common_prefix).cloned(),
    });
    let rest = |steps: &[Step]| -> Vec<String> {
        steps
            .iter()
            .skip(common_prefix + 1)
            .map(Step::compact)
            .collect()
    };
    Ok(RunDiff {
        run_a: run_a.to_string(),
        run_b: run_b.to_string(),
        steps_a: steps_a.len(),
        steps_b: steps_b.len(),
        common_prefix,
        divergence,
        rest_a: rest(&steps_a),
        rest_b: rest(&steps_b),
        end_a,
        end_b,
        files: world_differences(ledger, run_a, run_b)?,
    })
}

/// The run's steps, and its stop reason if it finished.
fn trajectory(
    ledger: &dyn Ledger,
    run_id: &str,
) -> Result<(Vec<Step>, Option<String>), CompareError> {
    let entries = recorded::load(ledger, run_id)?;
    let read = Reader { run_id };
    let mut steps: Vec<Step> = Vec::new();
    // Call ids of the current step's proposals, to attach executions to them.
    let mut call_ids: Vec<String> = Vec::new();
    let mut end = None;
    for entry in &entries {
        match read.record(entry)? {
            Record::ModelResponse(response) => {
                steps.push(Step {
                    step: response.step,
                    content: response.content,
                    calls: Vec::new(),
                });
                call_ids.clear();
            }
            Record::Proposal(proposal) => {
                let step = steps.last_mut().ok_or_else(|| {
                    read.malformed(entry, "step", "a proposal before any model reply")
                })?;
                call_ids.push(proposal.call_id);
                step.calls.push(StepCall {
                    tool: proposal.tool,
                    arguments: proposal.arguments,
                    verdict: proposal.verdict.as_str().to_string(),
                    rule: proposal.rule,
                    status: None,
                });
            }
            Record::Execution(execution) => {
                let index = call_ids
                    .iter()
                    .position(|c| *c == execution.call_id)
                    .ok_or_else(|| {
                        read.malformed(
                            entry,
                            "call_id",
                            "no proposal of this step has that call id",
                        )
                    })?;
                if let Some(call) = steps.last_mut().and_then(|s| s.calls.get_mut(index)) {
                    call.status = Some(execution.status.as_str().to_string());
                }
            }
            Record::RunFinished(finished) => end = Some(finished.stop_reason.as_str().to_string()),
            _ => {}
        }
    }
    Ok((steps, end))
}

fn world_differences(
    ledger: &dyn Ledger,
    run_a: &str,
    run_b: &str,
) -> Result<Vec<FileDifference>, CompareError> {
    let world = |run_id: &str| {
        world_at(ledger, run_id, None).map_err(|source| CompareError::World {
            run_id: run_id.to_string(),
            source: Box::new(source),
        })
    };
    let (a, b) = (world(run_a)?, world(run_b)?);
    // Every file of either world: the runs may have started from different workspaces.
    let paths: BTreeSet<&String> = a.files().keys().chain(b.files().keys()).collect();
    let mut out = Vec::new();
    for path in paths {
        let (in_a, in_b) = (a.files().get(path), b.files().get(path));
        // Same blob, or content unrecorded on both sides (nothing can be said about it).
        if in_a == in_b {
            continue;
        }
        let change = match (in_a, in_b) {
            (Some(_), None) => "only_a",
            (None, Some(_)) => "only_b",
            _ => "differs",
        };
        let unrecorded = match (in_a, in_b) {
            (Some(None), _) => Some(run_a),
            (_, Some(None)) => Some(run_b),
            _ => None,
        };
        if let Some(run_id) = unrecorded {
            out.push(FileDifference {
                path: path.clone(),
                change: change.into(),
                diff: None,
                note: Some(format!("content not recorded in run {run_id}")),
            });
            continue;
        }
        let content = |w: &crate::world::World, run_id: &str| {
            w.content(ledger, path)
                .map_err(|source| CompareError::World {
                    run_id: run_id.to_string(),
                    source: Box::new(source),
                })
        };
        let (before, after) = (content(&a, run_a)?, content(&b, run_b)?);
        let (diff, note) = match (text(&before), text(&after)) {
            (Some(old), Some(new)) => {
                let label = |side: &str, present: bool| {
                    if present {
                        format!("{side}/{path}")
                    } else {
                        "/dev/null".to_string()
                    }
                };
                let patch = diffy::DiffOptions::new()
                    .set_original_filename(label("a", before.is_some()))
                    .set_modified_filename(label("b", after.is_some()))
                    .create_patch(old, new);
                (Some(patch.to_string()), None)
            }
            _ => (None, Some("binary content differs".to_string())),
        };
        out.push(FileDifference {
            path: path.clone(),
            change: change.into(),
            diff,
            note,
        });
    }
    Ok(out)
}

/// Text for the diff ("" for an absent file); None for binary content (not UTF-8, or NUL).
fn text(bytes: &Option<Vec<u8>>) -> Option<&str> {
    match bytes {
        None => Some(""),
        Some(b) if b.contains(&0) => None,
        Some(b) => std::str::from_utf8(b).ok(),
    }
}
