//! Presentation: live progress, tables and trajectories for people.

use indicatif::{ProgressBar, ProgressStyle};
use praxis_core::record::{RecordError, VerdictKind, WaitingFor};
use praxis_core::{CompactionMode, ExecStatus, Record};
use praxis_ledger::Entry;
use praxis_runtime::doctor::DoctorReport;
use praxis_runtime::{LiveEvent, RunObserver, RunOverview};
use serde_json::Value;
use std::time::Duration;

/// Live progress on stderr: one line per durable entry; a spinner while waiting on a
/// terminal (no spinner when stderr is a pipe or file).
pub struct Progress {
    spinner: Option<ProgressBar>,
    /// What the model has streamed in the current call (text, or a tool call's arguments).
    streamed: std::sync::Mutex<String>,
}

impl Progress {
    pub fn new(is_terminal: bool) -> Self {
        let spinner = is_terminal.then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Progress {
            spinner,
            streamed: Default::default(),
        }
    }

    /// Appends a streamed fragment and shows the end of what arrived so far.
    fn stream(&self, prefix: &str, fragment: &str) {
        if self.spinner.is_none() {
            return;
        }
        let mut streamed = self.streamed.lock().unwrap_or_else(|e| e.into_inner());
        streamed.push_str(fragment);
        let flat = one_line(&streamed, usize::MAX);
        let tail: String = {
            let chars: Vec<char> = flat.chars().collect();
            chars[chars.len().saturating_sub(60)..].iter().collect()
        };
        self.status(format!("{prefix}{tail}"));
    }

    fn line(&self, text: String) {
        match &self.spinner {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn status(&self, text: String) {
        if let Some(bar) = &self.spinner {
            bar.set_message(text);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.spinner {
            bar.finish_and_clear();
        }
    }
}

impl RunObserver for Progress {
    fn on_event(&self, run_id: &str, event: LiveEvent<'_>) {
        match event {
            LiveEvent::Entry(entry) => {
                if let Some(text) = describe(entry, Some(run_id)) {
                    self.line(text);
                }
            }
            LiveEvent::ModelCall { step } => {
                self.streamed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
                if step == praxis_core::COMPACTION_STEP {
                    self.status("compacting: the model summarizes older work".to_string());
                } else {
                    self.status(format!("step {step}: waiting for the model"));
                }
            }
            LiveEvent::ToolStarted { tool, .. } => self.status(format!("running {tool}")),
            LiveEvent::AwaitingApproval { proposal } => {
                self.status(format!(
                    "waiting for approval of {} {}",
                    proposal.tool, proposal.call_id
                ));
                self.line(format!(
                    "    … waiting for approval: {} {} ({}); decide with `praxis approve {run_id}` or `praxis deny {run_id} --reason ...`",
                    proposal.tool,
                    compact(&proposal.arguments, 60),
                    proposal.verdict.reason()
                ));
            }
            LiveEvent::Delta { text } => self.stream("model: …", text),
            LiveEvent::ReasoningDelta { text } => self.stream("model thinks: …", text),
            LiveEvent::ToolArgumentsDelta { name, fragment, .. } => {
                self.stream(&format!("model writes {name}: …"), fragment)
            }
        }
    }
}

fn one_line(text: &str, max: usize) -> String {
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let more = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
        .saturating_sub(1);
    let mut s: String = first.chars().take(max).collect();
    if first.chars().count() > max {
        s.push('…');
    }
    if more > 0 {
        s.push_str(&format!(" (+{more} lines)"));
    }
    s
}

fn compact(value: &Value, max: usize) -> String {
    let text = value.to_string();
    if text.chars().count() > max {
        format!("{}…", text.chars().take(max).collect::<String>())
    } else {
        text
    }
}

/// A one-line description of an entry, or None for entries not worth a line.
pub fn describe(e: &Entry, run_id: Option<&str>) -> Option<String> {
    match Record::from_entry(&e.kind, &e.payload) {
        Ok(record) => describe_record(&record, run_id),
        Err(RecordError::UnknownKind(_)) => None,
        Err(error) => Some(format!("    ✗ {error}")),
    }
}

/// A one-line description of a record, or None for records not worth a line.
pub fn describe_record(record: &Record, run_id: Option<&str>) -> Option<String> {
    Some(match record {
        Record::RunStarted(p) => match run_id {
            Some(id) => format!(
                "run {id} · workspace {} · provider {}",
                p.spec.workspace, p.spec.provider
            ),
            None => format!("run started: {}", one_line(&p.spec.task, 80)),
        },
        Record::WorkspaceSnapshot(p) => {
            format!("workspace captured: {} files", p.files.len())
        }
        Record::Compaction(p) => {
            let (before, after) = p.tokens();
            let mode = match p.mode() {
                CompactionMode::Truncate => "truncate",
                CompactionMode::Summarize => "summarize",
            };
            format!("    compacted the conversation ({mode}): ~{before} -> ~{after} tokens")
        }
        Record::RunResumed(p) => format!(
            "run resumed by a new driver (was waiting for the {})",
            match p.waiting_for {
                WaitingFor::Model => "model",
                WaitingFor::Tool => "tool",
                WaitingFor::Approval => "approval",
            }
        ),
        Record::ModelResponse(p) => {
            let calls: Vec<&str> = p.tool_calls.iter().map(|c| c.name.as_str()).collect();
            let text = one_line(&p.content, 70);
            let step = p.step;
            match (calls.is_empty(), text.is_empty()) {
                (true, _) => format!("[{step}] model: {text}"),
                (false, true) => format!("[{step}] model calls {}", calls.join(", ")),
                (false, false) => {
                    format!("[{step}] model: {text} → calls {}", calls.join(", "))
                }
            }
        }
        Record::Proposal(p) => {
            let allowed = p.verdict == VerdictKind::Allow;
            let mark = if allowed { "→ allow" } else { "✗" };
            let mut line = format!(
                "    {} {} {mark} ({})",
                p.tool,
                compact(&p.arguments, 60),
                p.rule
            );
            if !allowed {
                line.push_str(&format!(
                    " {}: {}",
                    p.verdict.as_str(),
                    one_line(&p.reason, 100)
                ));
            }
            line
        }
        Record::Execution(p) => {
            let status = p.status.as_str();
            let mark = if p.status == ExecStatus::Ok {
                "✓"
            } else {
                "✗"
            };
            let exit = p
                .exit_code
                .map(|c| format!(" exit {c}"))
                .unwrap_or_default();
            let files = if p.files_changed.is_empty() {
                String::new()
            } else {
                format!(" · {} file(s) changed", p.files_changed.len())
            };
            format!(
                "    {mark} {} {status}{exit} {}ms{files} · {}",
                p.tool,
                p.duration_ms,
                one_line(&p.output, 70)
            )
        }
        Record::InvalidOutput(p) => format!(
            "    ✗ unusable reply ({} in a row): {}",
            p.in_a_row, p.reason
        ),
        Record::ModelError(p) => format!("    ✗ model error: {}", p.error),
        Record::ApprovalRequested(p) => format!("    … approval requested for {}", p.call_id),
        Record::ApprovalDecided(p) => format!("    approval for {}: {}", p.call_id, p.approved),
        Record::RunFinished(p) => format!(
            "finished: {} after {} steps, {} tool calls, {} tokens{}",
            p.stop_reason.as_str(),
            p.steps,
            p.tool_calls,
            p.usage.total(),
            p.error
                .as_deref()
                .map(|e| format!(" · {e}"))
                .unwrap_or_default()
        ),
        Record::Checkpoint(_) => return None,
        Record::ToolsChanged(t) => format!(
            "tools changed ({}): {} outside tools now offered",
            t.source,
            t.tools.len()
        ),
    })
}

pub fn runs(rows: &[RunOverview]) {
    if rows.is_empty() {
        println!("no runs recorded yet (try: praxis run \"Summarize this repository\")");
        return;
    }
    println!(
        "{:<26}  {:<11}  {:<18}  {:>5}  TASK",
        "RUN", "STATUS", "STOP", "STEPS"
    );
    for r in rows {
        println!(
            "{:<26}  {:<11}  {:<18}  {:>5}  {}",
            r.run_id,
            r.status.as_str(),
            r.stop_reason.as_deref().unwrap_or("-"),
            r.steps,
            one_line(&r.task, 60)
        );
    }
}

pub fn show(run: &RunOverview, entries: &[Entry]) {
    println!(
        "run {}  {}  started {}",
        run.run_id,
        run.status.as_str(),
        run.started_at
    );
    println!("task: {}", run.task);
    println!("workspace: {} · provider: {}", run.workspace, run.provider);
    println!();
    for e in entries {
        if let Some(text) = describe(e, None) {
            println!("#{:<4} {text}", e.seq);
        }
    }
    // A proposal allowed but never executed was in flight when the driver stopped.
    let records: Vec<(u64, Record)> = entries
        .iter()
        .filter_map(|e| Some((e.seq, Record::from_entry(&e.kind, &e.payload).ok()?)))
        .collect();
    let executed: Vec<&str> = records
        .iter()
        .filter_map(|(_, r)| match r {
            Record::Execution(x) => Some(x.call_id.as_str()),
            _ => None,
        })
        .collect();
    for (seq, record) in &records {
        let Record::Proposal(p) = record else {
            continue;
        };
        if p.verdict == VerdictKind::Allow && !executed.contains(&p.call_id.as_str()) {
            println!(
                "\nIN FLIGHT: proposal #{seq} ({} {}) was allowed and durable, but no execution was recorded.",
                p.tool,
                compact(&p.arguments, 80)
            );
        }
    }
    if let Some(answer) = &run.final_answer {
        println!("\nfinal answer:\n{answer}");
    }
    if let Some(error) = &run.error {
        println!("\nerror: {error}");
    }
    if run.status.as_str() == "interrupted" {
        println!("\nThis run did not finish: its driver process is gone (killed or crashed).");
    }
}

pub fn doctor(report: &DoctorReport) {
    println!(
        "praxis {} · data dir {}",
        report.praxis_version, report.data_dir
    );
    for c in &report.checks {
        println!(
            "  {} {:<8} {}",
            if c.ok { "✓" } else { "✗" },
            c.name,
            c.detail
        );
    }
    println!("  sandbox features offered by this host:");
    if let Some(map) = report.sandbox_features.as_object() {
        for (k, v) in map {
            println!(
                "    {k}: {}",
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            );
        }
    }
}
