//! The CLI against a server (`--server URL` / `PRAXIS_SERVER`, token from `PRAXIS_TOKEN`):
//! `follow`/`status`/`cancel` (remote or local), runs and approvals (`praxis serve` and
//! `praxis token` are in `serve.rs`). The
//! server itself (and its load benchmark) is praxis-server; this is parsing, HTTP client
//! and presentation.

use crate::{ApproveMode, RunArgs, present, writs};
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use praxis_core::record::RunFinished;
use praxis_core::{Record, RunStatus};
use praxis_ledger::Entry;
use praxis_runtime::{DataHome, RunOverview};
use serde::Deserialize;
use serde_json::{Value, json};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// Arguments (used by main.rs)

#[derive(Args)]
pub struct FollowArgs {
    /// Run id (or a unique prefix, locally).
    run: String,
    /// Follow through this server (also PRAXIS_SERVER).
    #[arg(long, env = "PRAXIS_SERVER")]
    server: Option<String>,
    /// Print each entry as a JSON line (the `praxis ledger export` format).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct StatusArgs {
    /// Run id (or a unique prefix, locally).
    run: String,
    #[arg(long, env = "PRAXIS_SERVER")]
    server: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct CancelArgs {
    /// Run id.
    run: String,
    /// Why (recorded with the cancellation of a local run).
    #[arg(long)]
    reason: Option<String>,
    #[arg(long, env = "PRAXIS_SERVER")]
    server: Option<String>,
}

// ---------------------------------------------------------------------------------------
// HTTP client

/// A server and the token to present (`PRAXIS_TOKEN`).
pub struct Remote {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Remote {
    pub fn new(server: &str) -> Result<Self> {
        let base = server.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--server {server:?}: expected a URL like http://127.0.0.1:3001");
        }
        let token = std::env::var("PRAXIS_TOKEN")
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;
        Ok(Remote { base, token, http })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    async fn send(&self, builder: reqwest::RequestBuilder, what: &str) -> Result<Value> {
        let response = builder
            .send()
            .await
            .with_context(|| format!("{what}: cannot reach {}", self.base))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(body);
        }
        let message = body["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| body.to_string());
        let hint = if status == reqwest::StatusCode::UNAUTHORIZED {
            " (set PRAXIS_TOKEN to a token from `praxis token create`)"
        } else {
            ""
        };
        bail!("{what}: {} {message}{hint}", status.as_u16())
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.send(
            self.request(reqwest::Method::GET, path),
            &format!("GET {path}"),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.send(
            self.request(reqwest::Method::POST, path).json(body),
            &format!("POST {path}"),
        )
        .await
    }

    /// Follows a run's feed to its end, reconnecting with `Last-Event-ID` whenever the
    /// stream breaks (a dropped slow follower, a network hiccup) until the run is over.
    /// Entries reach `on_entry` once each, in seq order; deltas reach `on_delta`.
    pub async fn follow(
        &self,
        run_id: &str,
        mut on_entry: impl FnMut(&Entry),
        mut on_delta: impl FnMut(&str),
    ) -> Result<u64> {
        let path = format!("/v1/runs/{run_id}/events");
        let mut last = 0u64;
        let mut failures = 0u32;
        loop {
            let mut request = self
                .request(reqwest::Method::GET, &path)
                .header("accept", "text/event-stream");
            if last > 0 {
                request = request.header("last-event-id", last.to_string());
            }
            let mut finished = false;
            match request.send().await {
                Ok(response) if response.status().is_success() => {
                    failures = 0;
                    let mut events = response.bytes_stream().eventsource();
                    while let Some(event) = events.next().await {
                        let Ok(event) = event else { break };
                        if event.event == "delta" {
                            if let Ok(v) = serde_json::from_str::<Value>(&event.data) {
                                on_delta(v["text"].as_str().unwrap_or(""));
                            }
                            continue;
                        }
                        let entry: Entry =
                            serde_json::from_str(&event.data).with_context(|| {
                                format!(
                                    "the server sent an event that is not a ledger entry: {}",
                                    event.data
                                )
                            })?;
                        if entry.seq <= last {
                            continue;
                        }
                        last = entry.seq;
                        finished |= entry.kind == "run_finished";
                        on_entry(&entry);
                    }
                }
                Ok(response) => {
                    let status = response.status();
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    bail!(
                        "GET {path}: {} {}",
                        status.as_u16(),
                        body["error"].as_str().unwrap_or("")
                    );
                }
                Err(e) => {
                    failures += 1;
                    if failures > 5 {
                        return Err(e).with_context(|| format!("following run {run_id}"));
                    }
                }
            }
            if finished {
                return Ok(last);
            }
            // The stream ended early: go on only while the run can still grow.
            let view = self.get(&format!("/v1/runs/{run_id}")).await?;
            let status = view["status"].as_str().unwrap_or("");
            if !matches!(status, "running" | "queued" | "awaiting_approval")
                && view["last_seq"].as_u64().unwrap_or(0) <= last
            {
                return Ok(last);
            }
            tokio::time::sleep(Duration::from_millis(200 * u64::from(failures.min(5)))).await;
        }
    }
}

pub(crate) fn run_path(run: &str) -> Result<String> {
    if run.is_empty()
        || !run
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    {
        bail!("{run:?} is not a run id");
    }
    Ok(format!("/v1/runs/{run}"))
}

// ---------------------------------------------------------------------------------------
// praxis run --server

/// `praxis run --server URL`: submits, follows the feed (progress on stderr, as a local run
/// prints it), and prints the answer or the `--json` summary on stdout. Ctrl-C cancels the
/// remote run and waits for it to record its end.
pub async fn run(args: RunArgs, server: &str) -> Result<ExitCode> {
    let remote = Remote::new(server)?;
    let (run_id, created) = submit(&remote, &args).await?;
    eprintln!(
        "praxis: run {run_id} submitted to {} ({})",
        remote.base,
        created["status"].as_str().unwrap_or("?")
    );
    // Progress lines on stderr, as a local run prints them without a terminal.
    let mut finished: Option<RunFinished> = None;
    let print = |entry: &Entry| {
        if let Ok(Record::RunFinished(end)) = Record::from_entry(&entry.kind, &entry.payload) {
            finished = Some(end);
        }
        if let Some(line) = present::describe(entry, Some(&entry.run_id)) {
            eprintln!("{line}");
        }
        if entry.kind == "approval_requested" {
            eprintln!(
                "    … decide with `praxis approve {} --server {}` or `praxis deny {} --reason ... --server {}`",
                entry.run_id, remote.base, entry.run_id, remote.base
            );
        }
    };
    {
        let follow = remote.follow(&run_id, print, |_| {});
        tokio::pin!(follow);
        tokio::select! {
            result = &mut follow => result,
            reason = crate::wait_for_stop_signal() => {
                eprintln!("praxis: {reason}: cancelling run {run_id} on the server");
                remote.post(&format!("/v1/runs/{run_id}/cancel"), &json!({})).await.ok();
                follow.await
            }
        }?;
    }
    // The run's own record says how it ended; ask the server only when there is none (a
    // run refused before it recorded anything).
    let view = match finished {
        Some(end) => serde_json::to_value(end)?,
        None => remote.get(&format!("/v1/runs/{run_id}")).await?,
    };
    let end = RunEnd::deserialize(&view).context("reading how the run ended")?;
    if args.json {
        println!(
            "{}",
            json!({
                "run_id": run_id,
                "status": end.status,
                "stop_reason": end.stop_reason,
                "final_answer": end.final_answer,
                "error": end.error,
                "steps": end.steps,
                "tool_calls": end.tool_calls,
                "usage": end.usage,
            })
        );
    } else if let Some(answer) = &end.final_answer {
        println!("{answer}");
    }
    if end.status == "completed" {
        Ok(ExitCode::SUCCESS)
    } else {
        if !args.json {
            eprintln!(
                "praxis: run {run_id} ended: {} {}",
                end.stop_reason.as_deref().unwrap_or(&end.status),
                end.error.as_deref().unwrap_or("")
            );
        }
        Ok(ExitCode::FAILURE)
    }
}

/// How a run ended: its `run_finished` record, or the server's view of a run that recorded
/// none (the two share these fields).
#[derive(serde::Deserialize)]
struct RunEnd {
    status: String,
    stop_reason: Option<String>,
    final_answer: Option<String>,
    error: Option<String>,
    #[serde(default)]
    steps: Value,
    #[serde(default)]
    tool_calls: Value,
    #[serde(default)]
    usage: Value,
}

/// `praxis run ARGS` as a `POST /v1/runs` (the files the flags name are read here);
/// returns the new run's id and the server's answer.
pub async fn submit(remote: &Remote, args: &RunArgs) -> Result<(String, Value)> {
    // The server's own configuration decides these; ignoring them silently would mislead.
    if args.fabric.is_some() {
        bail!("--fabric cannot be used with --server: the server's configuration decides it");
    }
    let workspace = crate::launch::workspace_dir(args.workspace.as_deref())?;
    let script = match &args.script {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --script {}", path.display()))?;
            Some(
                serde_json::from_str::<Value>(&text)
                    .with_context(|| format!("--script {}: not valid JSON", path.display()))?,
            )
        }
        None => None,
    };
    let writ = match &args.writ {
        Some(path) => Some(writs::read_token(&path.display().to_string())?),
        None => None,
    };
    let body = json!({
        "task": args.task,
        "workspace": workspace.display().to_string(),
        "provider": args.provider,
        "model": args.model,
        "script": script,
        "writ": writ,
        "protocol": args.protocol,
        "tool_choice": args.tool_choice,
        "max_steps": args.max_steps,
        "max_seconds": args.max_seconds,
        "read_only": args.read_only,
        "tools": args.tools,
        "approve": match args.approve {
            ApproveMode::Ask => "wait",
            ApproveMode::Auto => "auto",
            ApproveMode::Never => "never",
        },
    });
    let created = remote.post("/v1/runs", &body).await?;
    let run_id = created["id"]
        .as_str()
        .ok_or_else(|| anyhow!("the server answered without a run id: {created}"))?
        .to_string();
    Ok((run_id, created))
}

// ---------------------------------------------------------------------------------------
// follow, status, cancel, runs, approvals

pub async fn follow(home: &DataHome, args: FollowArgs) -> Result<ExitCode> {
    let print = |entry: &Entry| {
        let line = if args.json {
            serde_json::to_string(entry).unwrap_or_default()
        } else if let Some(line) = present::describe(entry, None) {
            format!("#{:<4} {line}", entry.seq)
        } else {
            return;
        };
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            // The reader went away (`praxis follow … | head`): nothing left to do.
            std::process::exit(0);
        }
    };
    match &args.server {
        Some(server) => {
            let remote = Remote::new(server)?;
            run_path(&args.run)?;
            remote.follow(&args.run, print, |_| {}).await?;
        }
        None => follow_local(home, &args.run, print).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Tails a run in the local ledger until it finishes or its driver is gone.
pub(crate) async fn follow_local(
    home: &DataHome,
    run: &str,
    mut on_entry: impl FnMut(&Entry),
) -> Result<()> {
    let ledger = crate::read_ledger(home)?;
    let run_id = ledger.find_run(run)?;
    let mut last = 0;
    loop {
        let entries = ledger.entries(&run_id, last)?;
        let mut finished = false;
        for entry in &entries {
            last = entry.seq;
            finished |= entry.kind == "run_finished";
            on_entry(entry);
        }
        if finished {
            // The signed checkpoint follows `run_finished` at once.
            tokio::time::sleep(Duration::from_millis(100)).await;
            for entry in ledger.entries(&run_id, last)? {
                on_entry(&entry);
            }
            return Ok(());
        }
        let row = ledger.runs()?.into_iter().find(|r| r.run_id == run_id);
        if let Some(row) = row
            && !matches!(
                praxis_runtime::overview(&row).status,
                RunStatus::Running | RunStatus::AwaitingApproval
            )
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A server's run view as the overview the local commands present.
fn overview_of(view: &Value) -> RunOverview {
    let text = |k: &str| view[k].as_str().map(str::to_string);
    RunOverview {
        run_id: text("id").unwrap_or_default(),
        status: serde_json::from_value(view["status"].clone()).unwrap_or(RunStatus::Failed),
        started_at: text("started_at").unwrap_or_default(),
        task: text("task").unwrap_or_default(),
        workspace: text("workspace").unwrap_or_default(),
        provider: text("provider").unwrap_or_default(),
        stop_reason: text("stop_reason"),
        final_answer: text("final_answer"),
        error: text("error"),
        steps: view["steps"].as_u64().unwrap_or(0),
        last_seq: view["last_seq"].as_u64().unwrap_or(0),
    }
}

pub async fn status(home: &DataHome, args: StatusArgs) -> Result<ExitCode> {
    show_status(home, &args.run, args.server.as_deref(), args.json).await
}

/// `praxis status`: through `server`, or from the local ledger.
pub async fn show_status(
    home: &DataHome,
    run: &str,
    server: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    let (overview, raw) = match server {
        Some(server) => {
            let view = Remote::new(server)?.get(&run_path(run)?).await?;
            (overview_of(&view), view)
        }
        None => {
            let ledger = crate::read_ledger(home)?;
            let run_id = ledger.find_run(run)?;
            let row = ledger
                .runs()?
                .into_iter()
                .find(|r| r.run_id == run_id)
                .context("run vanished while reading")?;
            let overview = praxis_runtime::overview(&row);
            let raw = serde_json::to_value(&overview)?;
            (overview, raw)
        }
    };
    if json {
        println!("{raw}");
    } else {
        println!("run {}  {}", overview.run_id, overview.status.as_str());
        println!("task: {}", overview.task);
        if let Some(phase) = raw["phase"].as_str() {
            let tool = raw["active_tool"]
                .as_str()
                .map(|t| format!(" ({t})"))
                .unwrap_or_default();
            println!("phase: {phase}{tool}");
        }
        println!(
            "steps: {} · last entry: {}{}",
            overview.steps,
            overview.last_seq,
            overview
                .stop_reason
                .as_deref()
                .map(|s| format!(" · stop: {s}"))
                .unwrap_or_default()
        );
        if let Some(answer) = &overview.final_answer {
            println!("final answer:\n{answer}");
        }
        if let Some(error) = &overview.error {
            println!("error: {error}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn cancel(home: &DataHome, args: CancelArgs) -> Result<ExitCode> {
    cancel_run(
        home,
        args.server.as_deref(),
        &args.run,
        args.reason.as_deref(),
    )
    .await
}

/// `praxis cancel`: through a server, or (without one) through the local driver.
pub async fn cancel_run(
    home: &DataHome,
    server: Option<&str>,
    run: &str,
    reason: Option<&str>,
) -> Result<ExitCode> {
    let Some(server) = server else {
        return crate::cancel::cancel_local(home, run, reason).await;
    };
    let answer = Remote::new(server)?
        .post(&format!("{}/cancel", run_path(run)?), &json!({}))
        .await?;
    println!(
        "run {} {}",
        answer["id"].as_str().unwrap_or(run),
        answer["status"].as_str().unwrap_or("cancelling")
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn runs(server: &str, json: bool, limit: usize) -> Result<ExitCode> {
    let list = Remote::new(server)?
        .get(&format!("/v1/runs?limit={}", limit.clamp(1, 500)))
        .await?;
    let rows: Vec<RunOverview> = list["runs"]
        .as_array()
        .map(|runs| runs.iter().map(overview_of).collect())
        .unwrap_or_default();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        present::runs(&rows);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn approvals(server: &str, json: bool) -> Result<ExitCode> {
    let list = Remote::new(server)?.get("/v1/approvals").await?;
    let pending = list["approvals"].as_array().cloned().unwrap_or_default();
    if json {
        // The shape of the local `praxis approvals --json` (arguments as JSON text).
        let rows: Vec<Value> = pending
            .iter()
            .map(|p| {
                json!({
                    "run_id": p["run_id"], "call_id": p["call_id"], "tool": p["tool"],
                    "arguments": p["arguments"].to_string(), "reason": p["reason"],
                    "requested_at": p["requested_at"], "expires_at_ms": p["expires_at_ms"],
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if pending.is_empty() {
        println!("no pending approvals");
    } else {
        for p in &pending {
            println!(
                "{}  {}  {}  {}",
                p["id"].as_str().unwrap_or(""),
                p["tool"].as_str().unwrap_or(""),
                p["requested_at"].as_str().unwrap_or(""),
                p["arguments"]
            );
            if let Some(reason) = p["reason"].as_str().filter(|r| !r.is_empty()) {
                println!("    why: {reason}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn decide(
    server: &str,
    run: &str,
    call: Option<&str>,
    approved: bool,
    reason: &str,
) -> Result<ExitCode> {
    run_path(run)?;
    let id = match call {
        Some(call) => format!("{run}:{call}"),
        None => run.to_string(),
    };
    let answer = Remote::new(server)?
        .post(
            &format!("/v1/approvals/{id}"),
            &json!({ "decision": if approved { "approve" } else { "deny" }, "reason": reason }),
        )
        .await?;
    println!(
        "{} {} of run {} (by {})",
        if approved { "approved" } else { "denied" },
        answer["call_id"].as_str().unwrap_or("?"),
        answer["run_id"].as_str().unwrap_or(run),
        answer["by"].as_str().unwrap_or("?")
    );
    Ok(ExitCode::SUCCESS)
}
