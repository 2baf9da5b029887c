//! Deterministic replay: re-drive a fresh kernel from a run's recorded events alone (no model
//! call, no tool executed) and check that it records exactly what the ledger holds, entry by
//! entry, down to the hash.
//!
//! Each event the kernel needs is rebuilt from the recorded entry that its batch of records
//! starts with (the driver appends one batch per kernel step, in one transaction), so a run
//! that was interrupted simply runs out of entries while the kernel waits: that is reported
//! as matched but unfinished, naming what was in flight.

use crate::recorded::{self, Reader, RecordError};
use praxis_core::record::{BranchOrigin, RunStarted, kinds};
use praxis_core::{Command, Contracts, Event, Kernel, KernelError, Millis, Record};
use praxis_ledger::checkpoint::CHECKPOINT_KIND;
use praxis_ledger::{Entry, Ledger};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;

mod cursor;
use cursor::{Cursor, cancel, is_cancel, summarized, tool_event, unexpected};

/// The result of a replay.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ReplayReport {
    /// Every recorded entry was re-emitted with the same kind and hash. `unfinished` says what
    /// the kernel was waiting for when the recorded entries ran out (None: the run finished).
    Matched {
        entries: u64,
        unfinished: Option<String>,
    },
    /// The first entry where the replayed kernel and the record disagree. `expected` is the
    /// recorded payload (null when the record lacks the entry), `got` what the kernel emitted
    /// (null when the record has an entry the kernel does not produce).
    Diverged {
        seq: u64,
        kind: String,
        expected: Value,
        got: Value,
        detail: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The run is missing, unreadable, or a recorded payload cannot be rebuilt into an event.
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("run {run_id}: the kernel refused the event rebuilt from entry seq {seq}: {source}")]
    Kernel {
        run_id: String,
        seq: u64,
        source: KernelError,
    },
    #[error("run {run_id}: the kernel stopped without asking for anything after entry seq {seq}")]
    Stalled { run_id: String, seq: u64 },
}

/// Re-drives a fresh kernel from `run_id`'s recorded events and compares its records with the
/// ledger. `contracts` must be the registry the run used (the built-in one for the CLI):
/// verdicts depend on it. A branch is replayed through its origin's history up to the branch
/// point, then its own.
pub fn replay(
    ledger: &dyn Ledger,
    contracts: Arc<dyn Contracts>,
    run_id: &str,
) -> Result<ReplayReport, ReplayError> {
    Ok(restore(ledger, contracts, run_id, Until::End)?.report)
}

/// Where [`restore`] stops re-driving the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Until {
    /// The end of the record.
    End,
    /// The model call answered by the entry with this seq (the kernel waits for the model).
    ModelCallAnsweredAt(u64),
}

/// A kernel re-driven from the record, and where it stands.
pub(crate) struct Restored {
    pub kernel: Kernel,
    pub report: ReplayReport,
    /// What the kernel waits for where the replay stopped (None: the run finished, or the
    /// replay diverged).
    pub waiting: Option<Command>,
    /// The last recorded entry consumed (checkpoints included): what a branch links to.
    pub last: Option<Entry>,
}

pub(crate) fn restore(
    ledger: &dyn Ledger,
    contracts: Arc<dyn Contracts>,
    run_id: &str,
    until: Until,
) -> Result<Restored, ReplayError> {
    let all = recorded::load(ledger, run_id)?;
    // Checkpoints are the driver's signed attestations of the chain head, not kernel records:
    // the kernel is replayed against everything else, and their seqs are not gaps.
    let (checkpoints, entries): (Vec<Entry>, Vec<Entry>) =
        all.iter().cloned().partition(|e| e.kind == CHECKPOINT_KIND);
    let checkpoint_seqs: Vec<u64> = checkpoints.iter().map(|e| e.seq).collect();
    let r = Reader { run_id };
    // A run always starts with a kernel record; one holding only checkpoints is not a run.
    let Some(first) = entries.first() else {
        return Err(RecordError::RunNotFound {
            run_id: run_id.to_string(),
        }
        .into());
    };
    let started = r.run_started(first)?;
    let workspace_files = match entries.get(1).map(|e| (e, r.record(e))) {
        Some((_, Ok(Record::WorkspaceSnapshot(snapshot)))) => Some(snapshot.files),
        Some((e, Err(error))) if e.kind == kinds::WORKSPACE_SNAPSHOT => return Err(error.into()),
        _ => None,
    };
    let authority = recorded_writ(r, first, &started)?;
    let RunStarted {
        spec,
        environment,
        prices,
        branch,
        now,
        tools,
        ..
    } = started;
    // Tools known from the record (MCP servers' tools): compiled from their recorded specs,
    // never asked of their server.
    let base = contracts.clone();
    let contracts: Arc<dyn Contracts> = if tools.is_empty() {
        contracts
    } else {
        Arc::new(
            praxis_tools::recorded::WithRecorded::new(contracts, &tools)
                .map_err(|e| r.malformed(first, "tools", e.to_string()))?,
        )
    };
    let (mut kernel, event) = match branch {
        None => {
            let kernel = Kernel::new(spec, contracts).with_prices(prices);
            let start = Event::Start {
                now,
                environment,
                workspace_files,
            };
            (kernel, start)
        }
        Some(origin) => {
            // The origin's writ is replaced by the branch's below.
            let kernel = restore_origin(ledger, contracts, r, first, &origin)?;
            let branch = Event::Branch {
                now,
                spec: Box::new(spec),
                environment,
                origin,
                // The branch's note is a message to the model, not a record.
                note: None,
                workspace_files,
            };
            (kernel, branch)
        }
    };
    // The writ is re-evaluated from the specs recorded at run start (no token, no signature:
    // what replay checks is the decisions, given what was authorised).
    kernel.set_authority(authority);
    let cursor = Cursor {
        entries: &entries,
        next: 0,
        checkpoints: &checkpoint_seqs,
    };
    let (report, waiting, consumed) = drive_recorded(&mut kernel, r, cursor, (event, base), until)?;
    let last = all.iter().take_while(|e| e.seq <= consumed).last().cloned();
    Ok(Restored {
        kernel,
        report,
        waiting,
        last,
    })
}

/// The kernel of a branch's origin, restored to the branch point and checked against the
/// link the branch recorded (the origin's entry at that seq must still have that hash).
fn restore_origin(
    ledger: &dyn Ledger,
    contracts: Arc<dyn Contracts>,
    r: Reader<'_>,
    first: &Entry,
    origin: &BranchOrigin,
) -> Result<Kernel, ReplayError> {
    let BranchOrigin {
        run_id: origin_id,
        seq,
        hash,
    } = origin;
    let seq = *seq;
    let restored = restore(
        ledger,
        contracts,
        origin_id,
        Until::ModelCallAnsweredAt(seq + 1),
    )?;
    let linked = restored
        .last
        .as_ref()
        .is_some_and(|e| e.seq == seq && e.hash == *hash);
    if !matches!(restored.report, ReplayReport::Matched { .. }) || !linked {
        return Err(r
            .malformed(
                first,
                "branch",
                format!(
                    "the origin run {origin_id} no longer matches the branch link (seq {seq}, \
                     hash {hash}): {:?}",
                    restored.report
                ),
            )
            .into());
    }
    Ok(restored.kernel)
}

/// The writ recorded in a `run_started` entry, as an authority that re-evaluates its rules.
fn recorded_writ(
    r: Reader<'_>,
    first: &Entry,
    started: &RunStarted,
) -> Result<Option<Arc<dyn praxis_core::Authority>>, ReplayError> {
    match (&started.writ, started.writ_summary()) {
        (None, _) => Ok(None),
        (Some(_), None) => Err(r.malformed(first, "writ", "not a writ description").into()),
        (Some(recorded), Some(summary)) => {
            let blocks: Vec<praxis_writ::WritSpec> = serde_json::from_value(summary.blocks)
                .map_err(|e| r.malformed(first, "writ.blocks", e.to_string()))?;
            let rules = praxis_writ::Rules::new(blocks)
                .map_err(|e| r.malformed(first, "writ.blocks", e.to_string()))?;
            Ok(Some(Arc::new(RecordedWrit {
                rules,
                description: recorded.clone(),
            })))
        }
    }
}

/// Feeds `kernel` the events rebuilt from `cursor`'s entries, starting with `event`, comparing
/// every record it makes with the ledger. Returns the report, what the kernel waits for when
/// it stopped early, and the seq of the last entry consumed.
fn drive_recorded(
    kernel: &mut Kernel,
    r: Reader<'_>,
    mut cursor: Cursor<'_>,
    (mut event, base): (Event, Arc<dyn Contracts>),
    until: Until,
) -> Result<Driven, ReplayError> {
    let run_id = r.run_id;
    loop {
        // A recorded change of the outside tools came before the event (see the driver).
        while let Some(entry) = cursor.tools_changed() {
            let Record::ToolsChanged(change) = r.record(entry)? else {
                unreachable!("a tools_changed entry")
            };
            let contracts = praxis_tools::recorded::WithRecorded::new(base.clone(), &change.tools)
                .map_err(|e| r.malformed(entry, "tools", e.to_string()))?;
            let changed = Event::ToolsChanged {
                now: change.now,
                source: change.source,
                contracts: praxis_core::ContractSet(Arc::new(contracts)),
            };
            let seq = entry.seq;
            let commands = kernel
                .handle(changed)
                .map_err(|source| ReplayError::Kernel {
                    run_id: run_id.to_string(),
                    seq,
                    source,
                })?;
            for command in commands {
                if let Command::Record(record) = command
                    && let Some(divergence) =
                        cursor.compare(run_id, record.kind(), record.to_payload())
                {
                    return stopped(&cursor, divergence);
                }
            }
        }
        // The entry the event was rebuilt from (for error messages): the one before the cursor.
        let event_seq = cursor.last_seq();
        let commands = kernel.handle(event).map_err(|source| ReplayError::Kernel {
            run_id: run_id.to_string(),
            seq: event_seq,
            source,
        })?;
        let mut next = None;
        for command in commands {
            match command {
                Command::Record(record) => {
                    if let Some(divergence) =
                        cursor.compare(run_id, record.kind(), record.to_payload())
                    {
                        return stopped(&cursor, divergence);
                    }
                }
                Command::CallModel(request) => {
                    let stop_here = match until {
                        Until::End => false,
                        Until::ModelCallAnsweredAt(seq) => {
                            cursor.peek().is_none_or(|e| e.seq >= seq)
                        }
                    };
                    let Some(entry) = cursor.peek().filter(|_| !stop_here) else {
                        let what = format!("awaiting the model (step {})", request.step);
                        let last = cursor.last_seq();
                        return Ok((
                            cursor.unfinished(what),
                            Some(Command::CallModel(request)),
                            last,
                        ));
                    };
                    next = Some(match r.record(entry)? {
                        Record::Compaction(c) if request.is_compaction() => summarized(c),
                        Record::ModelResponse(m) => Event::ModelReplied {
                            now: m.now,
                            response: m.response(),
                        },
                        Record::ModelError(m) => Event::ModelFailed {
                            now: m.now,
                            error: m.error,
                        },
                        Record::RunResumed(resumed) => Event::Resume {
                            now: resumed.now,
                            environment: resumed.environment,
                            interrupted_child_spent: resumed.interrupted_child_spent.map(|s| *s),
                        },
                        Record::RunFinished(f) if is_cancel(&f) => cancel(&f),
                        _ => {
                            return stopped(
                                &cursor,
                                unexpected(
                                    entry,
                                    json!({ "call_model": { "step": request.step } }),
                                    format!("the kernel asks the model (step {})", request.step),
                                ),
                            );
                        }
                    });
                }
                Command::Execute(request) => {
                    let Some(entry) = cursor.peek() else {
                        let what = format!("in flight call {} ({})", request.call_id, request.tool);
                        let last = cursor.last_seq();
                        return Ok((
                            cursor.unfinished(what),
                            Some(Command::Execute(request)),
                            last,
                        ));
                    };
                    let record = r.record(entry)?;
                    let answers = match &record {
                        Record::Execution(e) => e.call_id == request.call_id,
                        Record::RunResumed(_) => true,
                        Record::RunFinished(f) => is_cancel(f),
                        _ => false,
                    };
                    if !answers {
                        return stopped(
                            &cursor,
                            unexpected(
                                entry,
                                json!({ "execute": {
                                "call_id": request.call_id, "tool": request.tool,
                                "arguments": request.arguments,
                            } }),
                                format!(
                                    "the kernel executes call `{}` ({})",
                                    request.call_id, request.tool
                                ),
                            ),
                        );
                    }
                    let after = match cursor.peek_after() {
                        Some(after) => Some(r.record(after)?),
                        None => None,
                    };
                    next = Some(match record {
                        Record::RunResumed(resumed) => Event::Resume {
                            now: resumed.now,
                            environment: resumed.environment,
                            interrupted_child_spent: resumed.interrupted_child_spent.map(|s| *s),
                        },
                        Record::Execution(execution) => tool_event(execution, after.as_ref()),
                        Record::RunFinished(f) => cancel(&f),
                        _ => unreachable!("checked above"),
                    });
                }
                Command::AwaitApproval(proposal) => {
                    let Some(entry) = cursor.peek() else {
                        let what = format!("awaiting approval of call {}", proposal.call_id);
                        let last = cursor.last_seq();
                        return Ok((
                            cursor.unfinished(what),
                            Some(Command::AwaitApproval(proposal)),
                            last,
                        ));
                    };
                    next = Some(match r.record(entry)? {
                        Record::ApprovalDecided(d) => Event::ApprovalDecided {
                            now: d.now,
                            call_id: d.call_id,
                            approved: d.approved,
                            by: d.by,
                            reason: d.reason,
                        },
                        Record::RunResumed(resumed) => Event::Resume {
                            now: resumed.now,
                            environment: resumed.environment,
                            interrupted_child_spent: resumed.interrupted_child_spent.map(|s| *s),
                        },
                        Record::RunFinished(f) if is_cancel(&f) => cancel(&f),
                        _ => {
                            return stopped(
                                &cursor,
                                unexpected(
                                    entry,
                                    json!({ "await_approval": { "call_id": proposal.call_id } }),
                                    format!(
                                        "the kernel awaits approval of call `{}`",
                                        proposal.call_id
                                    ),
                                ),
                            );
                        }
                    });
                }
                Command::Finish(_) => {
                    if let Some(extra) = cursor.peek() {
                        return stopped(
                            &cursor,
                            ReplayReport::Diverged {
                                seq: extra.seq,
                                kind: extra.kind.clone(),
                                expected: extra.payload.clone(),
                                got: Value::Null,
                                detail: format!(
                                    "extra recorded entry: the kernel finished the run at seq {} \
                                 but the record goes on with `{}`",
                                    cursor.last_seq(),
                                    extra.kind
                                ),
                            },
                        );
                    }
                    return stopped(
                        &cursor,
                        ReplayReport::Matched {
                            entries: (cursor.next + cursor.checkpoints.len()) as u64,
                            unfinished: None,
                        },
                    );
                }
            }
        }
        event = next.ok_or_else(|| ReplayError::Stalled {
            run_id: run_id.to_string(),
            seq: cursor.last_seq(),
        })?;
    }
}

/// What [`drive_recorded`] returns when the replay ends without waiting on anything.
type Driven = (ReplayReport, Option<Command>, u64);

fn stopped(cursor: &Cursor<'_>, report: ReplayReport) -> Result<Driven, ReplayError> {
    Ok((report, None, cursor.last_seq()))
}

/// The first place two JSON values differ, as `path: expected X got Y` (None: equal).
pub(crate) fn first_difference(expected: &Value, got: &Value, path: &str) -> Option<String> {
    match (expected, got) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort_unstable();
            keys.dedup();
            keys.into_iter().find_map(|key| {
                let here = format!("{path}.{key}");
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => first_difference(x, y, &here),
                    (Some(x), None) => Some(format!("{here}: expected {x} got nothing")),
                    (None, Some(y)) => Some(format!("{here}: expected nothing got {y}")),
                    (None, None) => None,
                }
            })
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, &format!("{path}[{i}]"))),
        _ if expected == got => None,
        _ => Some(format!("{path}: expected {expected} got {got}")),
    }
}

/// A writ rebuilt from its recorded description: decides exactly as the verified one did.
struct RecordedWrit {
    rules: praxis_writ::Rules,
    description: Value,
}

impl praxis_core::Authority for RecordedWrit {
    fn authorize(&self, request: &praxis_core::AuthzRequest<'_>) -> praxis_core::Authorization {
        self.rules.authorize(request)
    }
    fn before_model_call(
        &self,
        now: Millis,
        spent: &praxis_core::Spent,
    ) -> praxis_core::Authorization {
        self.rules.before_model_call(now, spent)
    }
    fn describe(&self) -> Value {
        self.description.clone()
    }
    fn approval_timeout_ms(&self) -> Option<u64> {
        self.rules.approval_timeout_ms()
    }

    fn commands_write_git(&self, tools: &[String]) -> bool {
        self.rules.commands_write_git(tools)
    }
}

#[cfg(test)]
mod tests;
