//! `praxis bench`: the runtime's own overheads, each measured against a baseline taken in
//! the same process and run, so figures are comparable across machines as ratios.

use crate::{LiveEvent, NoObserver, RunObserver, RunOptions, Runtime};
use praxis_core::{
    Command, Contracts, Effect, Event, Kernel, Limits, ModelResponse, Observation, Resource,
    RunSpec, ToolCall, ToolSpec,
};
use praxis_ledger::{Ledger, NewEntry, SqliteLedger};
use praxis_models::ScriptedProvider;
use praxis_tools::{BoxFuture, ExecContext, Registry, ToolContract, Workspace};
use serde::Serialize;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Serialize)]
pub struct BenchRow {
    pub name: String,
    pub value: f64,
    pub unit: String,
    pub note: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct BenchReport {
    pub rows: Vec<BenchRow>,
}

impl BenchReport {
    fn push(&mut self, name: &str, value: f64, unit: &str, note: impl Into<String>) {
        self.rows.push(BenchRow {
            name: name.into(),
            value,
            unit: unit.into(),
            note: note.into(),
        });
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let width = self.rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
        for r in &self.rows {
            let value = if r.value >= 100.0 {
                format!("{:.0}", r.value)
            } else {
                format!("{:.3}", r.value)
            };
            writeln!(
                f,
                "{:width$}  {:>10} {:<8} {}",
                r.name, value, r.unit, r.note
            )?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Fewer iterations (for CI smoke runs); figures are noisier.
    pub quick: bool,
}

/// A tool that does nothing: isolates the runtime's own cost per step.
struct NoopTool;

impl ToolContract for NoopTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "noop".into(),
            description: "Does nothing (benchmark tool).".into(),
            effect: Effect::Read,
            parameters: json!({"type": "object", "properties": {"n": {"type": "integer"}}, "additionalProperties": false}),
        }
    }
    fn resources(&self, _: &Value) -> Vec<Resource> {
        Vec::new()
    }
    fn execute<'a>(&'a self, _: &'a ExecContext, _: Value) -> BoxFuture<'a, Observation> {
        Box::pin(async { Observation::ok("") })
    }
    /// Registered here only (the worker does not know it), and touches nothing.
    fn placement(&self) -> praxis_tools::Placement {
        praxis_tools::Placement::Driver
    }
}

fn noop_registry() -> Arc<Registry> {
    let mut registry = Registry::builtin();
    registry
        .register(Arc::new(NoopTool))
        .expect("noop registers once");
    Arc::new(registry)
}

fn spec(workspace: &Path, steps: u32) -> RunSpec {
    RunSpec {
        conversation: Default::default(),
        protocol: Default::default(),
        compaction: None,
        task: "benchmark".into(),
        workspace: workspace.display().to_string(),
        provider: "scripted".into(),
        model: "bench".into(),
        tools: None,
        read_only: false,
        limits: Limits {
            max_steps: steps + 1,
            max_seconds: None,
            max_invalid_replies: 3,
        },
    }
}

fn noop_reply(i: u32) -> ModelResponse {
    ModelResponse {
        tool_calls: vec![ToolCall {
            id: format!("c{i}"),
            name: "noop".into(),
            arguments: json!({"n": i}),
        }],
        ..Default::default()
    }
}

/// Steps per simulated run: the kernel's history grows per step, as in real runs.
const STEPS_PER_RUN: u32 = 20;

/// Drives the kernel alone through `runs` runs of STEPS_PER_RUN no-op steps; returns time per step.
fn kernel_step_time(contracts: Arc<dyn Contracts>, workspace: &Path, runs: u32) -> Duration {
    let started = Instant::now();
    for _ in 0..runs {
        let mut kernel = Kernel::new(spec(workspace, STEPS_PER_RUN), contracts.clone());
        let mut commands = kernel
            .handle(Event::Start {
                now: 0,
                environment: Value::Null,
                workspace_files: None,
            })
            .expect("start");
        let mut step = 0;
        while !kernel.is_finished() {
            let event = match commands.last() {
                Some(Command::CallModel(_)) if step < STEPS_PER_RUN => {
                    step += 1;
                    Event::ModelReplied {
                        now: 1,
                        response: noop_reply(step),
                    }
                }
                Some(Command::CallModel(_)) => Event::ModelReplied {
                    now: 1,
                    response: ModelResponse {
                        content: "done".into(),
                        ..Default::default()
                    },
                },
                Some(Command::Execute(x)) => Event::ToolFinished {
                    now: 1,
                    call_id: x.call_id.clone(),
                    observation: Observation::ok(""),
                },
                other => panic!("benchmark kernel stalled after {other:?}"),
            };
            // Drop the previous request first, as the driver does: the kernel then appends
            // to the shared history in place instead of copying it.
            commands.clear();
            commands = kernel.handle(event).expect("valid event");
        }
    }
    started.elapsed() / (runs * STEPS_PER_RUN)
}

fn script(steps: u32) -> String {
    let mut turns: Vec<Value> = (1..=steps)
        .map(|i| json!({"tool_calls": [{"id": format!("c{i}"), "name": "noop", "arguments": {"n": i}}]}))
        .collect();
    turns.push(json!({"content": "done"}));
    json!({ "turns": turns }).to_string()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Stamps the moment each step's `execution` entry is durable, so steps can be timed one by
/// one: the run's start (and its first step, which pays for it) apart from the rest.
#[derive(Default)]
struct StepClock {
    stamps: Mutex<Vec<Instant>>,
}

impl RunObserver for StepClock {
    fn on_event(&self, _: &str, event: LiveEvent<'_>) {
        if let LiveEvent::Entry(entry) = event
            && entry.kind == praxis_core::record::kinds::EXECUTION
        {
            let mut stamps = self.stamps.lock().unwrap_or_else(|p| p.into_inner());
            stamps.push(Instant::now());
        }
    }
}

impl StepClock {
    /// Each step's time after the first: from one `execution` durable to the next (the
    /// model's reply, the proposal's commit, the tool, the execution's commit).
    fn steps_after_the_first(&self) -> Vec<Duration> {
        let stamps = self.stamps.lock().unwrap_or_else(|p| p.into_inner());
        stamps.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Runs every benchmark with its ledger under `dir` (use a real disk: fsync is part of it).
pub async fn run_benchmarks(dir: &Path, options: &BenchOptions) -> anyhow::Result<BenchReport> {
    let scale = if options.quick { 1 } else { 5 };
    let mut report = BenchReport::default();
    let workspace = tempfile::Builder::new()
        .prefix("praxis-bench-ws")
        .tempdir_in(dir)?;
    std::fs::write(workspace.path().join("README.md"), "# bench\n")?;
    let registry = noop_registry();

    // 1. Kernel + policy + contract validation per step, no I/O at all.
    let kernel_step = kernel_step_time(registry.clone(), workspace.path(), 50 * scale);
    report.push(
        "kernel+policy per step",
        micros(kernel_step),
        "µs",
        "no-op tool, no I/O; includes schema validation",
    );

    // 2. A full governed step: kernel, durable ledger (fsync, group commit), tool dispatch.
    let ledger_dir = tempfile::Builder::new()
        .prefix("praxis-bench-ledger")
        .tempdir_in(dir)?;
    let ledger = Arc::new(SqliteLedger::open(&ledger_dir.path().join("ledger.db"))?);
    let runtime = Runtime::new(ledger.clone(), registry.clone());
    let steps = 20 * scale;
    let provider = Arc::new(ScriptedProvider::from_json_str(&script(steps), "bench")?);
    let clock = StepClock::default();
    let started = Instant::now();
    let report_run = runtime
        .run(
            RunOptions::new(spec(workspace.path(), steps), provider.clone()),
            &clock,
        )
        .await?;
    let per_step = started.elapsed() / steps;
    let step_times = clock.steps_after_the_first();
    anyhow::ensure!(
        step_times.len() + 1 == steps as usize,
        "benchmark run timed {} steps of {steps}",
        step_times.len() + 1
    );
    let step_p50 = median(step_times);
    anyhow::ensure!(
        report_run.result.final_answer.as_deref() == Some("done"),
        "benchmark run did not complete"
    );
    report.push(
        "governed step, durable",
        micros(per_step),
        "µs",
        format!("1 run of {steps} no-op steps, fsync'd ledger; the mean, the run's start included"),
    );
    report.push(
        "governed step, durable, p50",
        micros(step_p50),
        "µs",
        "median of the same run's steps after the first, each from one `execution` durable to the next",
    );

    // Eight runs at once share the writer's group commits.
    let concurrent = 8;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrent {
        let (runtime, provider, spec) = (
            runtime.clone(),
            provider.clone(),
            spec(workspace.path(), steps),
        );
        tasks.push(tokio::spawn(async move {
            runtime
                .run(RunOptions::new(spec, provider), &NoObserver)
                .await
        }));
    }
    for task in tasks {
        task.await??;
    }
    let per_step_concurrent = started.elapsed() / (steps * concurrent);
    report.push(
        "governed step, 8 concurrent runs",
        micros(per_step_concurrent),
        "µs",
        "wall time / total steps, fsync'd ledger",
    );

    // 3. Ledger appends per second with durability on.
    let appends = 100 * scale;
    let started = Instant::now();
    for i in 0..appends {
        ledger
            .append("bench-single", vec![entry(i)], Vec::new())
            .await?;
    }
    let single = f64::from(appends) / started.elapsed().as_secs_f64();
    report.push(
        "ledger appends/s, 1 run",
        single,
        "/s",
        "each append awaited until fsync'd",
    );
    let append = 1e6 / single;
    report.push(
        "governed step / durable append",
        micros(per_step) / append,
        "ratio",
        format!("a step makes 2 fsync'd commits (proposal before the tool, execution after); append = {append:.0} µs"),
    );
    report.push(
        "governed step p50 / durable append",
        micros(step_p50) / append,
        "ratio",
        "the same at the median step: 2 is the two commits alone",
    );
    let runs = 32;
    let per_run = 20 * scale;
    let commits_before = ledger.stats().commits;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for r in 0..runs {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_run {
                ledger
                    .append(&format!("bench-{r}"), vec![entry(i)], Vec::new())
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = f64::from(runs * per_run);
    let commits = ledger.stats().commits - commits_before;
    report.push(
        "ledger appends/s, 32 runs",
        total / elapsed,
        "/s",
        format!(
            "{:.1}x the single-run rate; {:.1} appends per fsync (group commit)",
            total / elapsed / single,
            total / commits as f64
        ),
    );

    // 4. The shell tool against a bare spawn of the same command, interleaved.
    let ctx = ExecContext::new(Workspace::new(workspace.path())?);
    let iterations = 20 * scale;
    let (mut tool, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..iterations {
        tool.push(timed_shell_true(&registry, &ctx, "shell tool").await?);
        bare.push(timed_bare_spawn().await?);
    }
    let (tool, bare) = (median(tool), median(bare));
    report.push(
        "bare spawn `bash -c true`",
        micros(bare),
        "µs",
        "baseline (median)",
    );
    report.push(
        "shell tool `true`",
        micros(tool),
        "µs",
        format!(
            "{:.2}x bare spawn (median): process group, clean env, caps",
            tool.as_secs_f64() / bare.as_secs_f64()
        ),
    );
    report.push(
        "kernel step / bare spawn",
        kernel_step.as_secs_f64() / bare.as_secs_f64(),
        "ratio",
        "the kernel's own cost next to one process spawn",
    );
    sandbox_bench(&mut report, &registry, workspace.path(), iterations).await?;
    Ok(report)
}

/// Step 5: a sandboxed `shell` call (Landlock, seccomp, user+net namespaces, rlimits, pids
/// cgroup) against a bare spawn of the same command and against the same `shell` call
/// unsandboxed, all three interleaved in the same run (three times the iterations of the
/// other spawn rows: ratios of a few hundred microseconds are noisy on a busy host).
async fn sandbox_bench(
    report: &mut BenchReport,
    registry: &Registry,
    workspace: &Path,
    iterations: u32,
) -> anyhow::Result<()> {
    let workspace = Workspace::new(workspace)?;
    let mut ctx = ExecContext::new(workspace.clone());
    match praxis_tools::fabric::local_sandbox(&workspace, &ctx.limits) {
        Ok(sandbox) => ctx.sandbox = Some(sandbox),
        Err(why) => {
            report.push(
                "sandboxed shell / bare spawn",
                f64::NAN,
                "ratio",
                format!("not measured: {why}"),
            );
            return Ok(());
        }
    }
    let plain_ctx = ExecContext::new(workspace.clone());
    // The production path: the same call through the sandboxed `praxis worker` process.
    let worker_ctx = match praxis_tools::WorkerCommand::discover() {
        Some(command) => {
            let client = praxis_tools::worker::WorkerClient::new(
                command,
                workspace.root().to_path_buf(),
                ctx.limits.clone(),
            );
            client
                .start()
                .await
                .map_err(|e| anyhow::anyhow!("worker: {e}"))?;
            let mut worker_ctx = ExecContext::new(workspace.clone());
            worker_ctx.fabric = praxis_tools::Fabric::Worker(Arc::new(client));
            Some(worker_ctx)
        }
        None => None,
    };
    let (mut confined, mut plain, mut bare) = (Vec::new(), Vec::new(), Vec::new());
    let mut via_worker = Vec::new();
    for _ in 0..iterations * 3 {
        if let Some(worker_ctx) = &worker_ctx {
            via_worker
                .push(timed_shell_true(registry, worker_ctx, "shell through the worker").await?);
        }
        confined.push(timed_shell_true(registry, &ctx, "sandboxed shell").await?);
        plain.push(timed_shell_true(registry, &plain_ctx, "unsandboxed shell").await?);
        bare.push(timed_bare_spawn().await?);
    }
    let (confined, plain, bare) = (median(confined), median(plain), median(bare));
    let layers: Vec<String> = ctx
        .sandbox
        .as_ref()
        .map(|s| {
            s.report()
                .layers
                .iter()
                .filter(|l| l.active)
                .map(|l| l.name.clone())
                .collect()
        })
        .unwrap_or_default();
    report.push(
        "sandboxed shell tool `true`",
        micros(confined),
        "µs",
        format!("median; layers: {}", layers.join(", ")),
    );
    report.push(
        "sandboxed shell / bare spawn",
        confined.as_secs_f64() / bare.as_secs_f64(),
        "ratio",
        format!(
            "target < 1.3; bare spawn {:.0} µs (median, same run)",
            micros(bare)
        ),
    );
    if !via_worker.is_empty() {
        let via_worker = median(via_worker);
        report.push(
            "sandboxed shell via worker / bare spawn",
            via_worker.as_secs_f64() / bare.as_secs_f64(),
            "ratio",
            format!(
                "the production path (framed call to `praxis worker`, which spawns confined); {:.0} µs (median)",
                micros(via_worker)
            ),
        );
    }
    report.push(
        "sandboxed / unsandboxed shell tool",
        confined.as_secs_f64() / plain.as_secs_f64(),
        "ratio",
        format!(
            "what the sandbox adds to the same step; unsandboxed {:.0} µs (median, same run)",
            micros(plain)
        ),
    );
    Ok(())
}

/// How long one `shell` call running `true` takes in `ctx` (an error if it did not succeed).
async fn timed_shell_true(
    registry: &Registry,
    ctx: &ExecContext,
    what: &str,
) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let observation = registry
        .execute(ctx, "shell", json!({"command": "true"}))
        .await;
    let took = t.elapsed();
    anyhow::ensure!(
        observation.status == praxis_core::ExecStatus::Ok,
        "{what} failed: {}",
        observation.output
    );
    Ok(took)
}

/// How long a bare spawn of `bash -c true` takes (the baseline of the spawn rows).
async fn timed_bare_spawn() -> anyhow::Result<Duration> {
    let t = Instant::now();
    let status = tokio::process::Command::new("bash")
        .args(["-c", "true"])
        .output()
        .await?
        .status;
    let took = t.elapsed();
    anyhow::ensure!(status.success(), "bare spawn failed");
    Ok(took)
}

fn entry(i: u32) -> NewEntry {
    NewEntry {
        kind: "bench".into(),
        payload: json!({ "i": i }),
        at: praxis_ledger::now_rfc3339(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use praxis_core::record::kinds;

    fn entry(kind: &str) -> praxis_ledger::Entry {
        praxis_ledger::Entry {
            run_id: "r".into(),
            seq: 1,
            kind: kind.into(),
            at: String::new(),
            prev_hash: String::new(),
            hash: String::new(),
            payload: Value::Null,
        }
    }

    /// Only `execution` entries end a step, and the first step (which pays for the run's
    /// start) is not among the times.
    #[test]
    fn the_step_clock_times_steps_from_one_execution_to_the_next() {
        let clock = StepClock::default();
        for kind in [kinds::RUN_STARTED, kinds::PROPOSAL, kinds::EXECUTION] {
            clock.on_event("r", LiveEvent::Entry(&entry(kind)));
        }
        assert!(clock.steps_after_the_first().is_empty());
        for _ in 0..2 {
            clock.on_event("r", LiveEvent::ModelCall { step: 2 });
            clock.on_event("r", LiveEvent::Entry(&entry(kinds::PROPOSAL)));
            clock.on_event("r", LiveEvent::Entry(&entry(kinds::EXECUTION)));
        }
        clock.on_event("r", LiveEvent::Entry(&entry(kinds::RUN_FINISHED)));
        assert_eq!(clock.steps_after_the_first().len(), 2);
    }
}
