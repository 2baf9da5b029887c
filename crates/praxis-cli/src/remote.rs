//! The CLI against a server (`--server URL` / `PRAXIS_SERVER`, token from `PRAXIS_TOKEN`),
//! `praxis serve` and `praxis token`, `follow`/`status`/`cancel` (remote or local), and the
//! server load benchmark. The server itself is praxis-server; this is parsing, HTTP client
//! and presentation.

use crate::{ApproveMode, RunArgs, present, writs};
use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use praxis_core::RunStatus;
use praxis_ledger::tokens::TokenStore;
use praxis_ledger::{Entry, Ledger};
use praxis_runtime::{DataHome, RunOverview, WritGrant};
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

// ---------------------------------------------------------------------------------------
// Arguments (used by main.rs)

#[derive(Args)]
pub struct ServeArgs {
    /// Listen address (default 127.0.0.1:3001; also PRAXIS_BIND).
    #[arg(long, env = "PRAXIS_BIND", default_value = praxis_server::DEFAULT_BIND)]
    bind: String,
    /// Runs executing at once, across tenants (also PRAXIS_MAX_RUNS; default unbounded).
    #[arg(long)]
    max_runs: Option<usize>,
    /// Runs executing at once per tenant (also PRAXIS_MAX_RUNS_PER_TENANT).
    #[arg(long)]
    max_runs_per_tenant: Option<usize>,
    /// Runs that may wait for a slot before creates get 429 (also PRAXIS_QUEUE; default 64).
    #[arg(long)]
    queue: Option<usize>,
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Create an API token for a tenant; prints only the token (store it: it is shown once).
    #[command(
        after_help = "Examples:\n  praxis token create --tenant acme > acme.token\n  curl -H \"Authorization: Bearer $(cat acme.token)\" http://127.0.0.1:3001/v1/runs\n\nOnly a SHA-256 of the token is kept (in $PRAXIS_HOME/ledger.db). Once a token exists,\n`praxis serve` requires one on every request except /health and /ready."
    )]
    Create {
        #[arg(long)]
        tenant: String,
    },
    /// List tokens (id = hash prefix, tenant, created).
    List,
    /// Revoke the token(s) whose id (hash prefix, 8+ hex digits) matches.
    Revoke { id: String },
}

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

    fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
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
    let mut finished: Option<Value> = None;
    let print = |entry: &Entry| {
        if entry.kind == "run_finished" {
            finished = Some(entry.payload.clone());
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
        Some(view) => view,
        None => remote.get(&format!("/v1/runs/{run_id}")).await?,
    };
    let status = view["status"].as_str().unwrap_or("");
    if args.json {
        println!(
            "{}",
            json!({
                "run_id": run_id,
                "status": view["status"],
                "stop_reason": view["stop_reason"],
                "final_answer": view["final_answer"],
                "error": view["error"],
                "steps": view["steps"],
                "tool_calls": view["tool_calls"],
                "usage": view["usage"],
            })
        );
    } else if let Some(answer) = view["final_answer"].as_str() {
        println!("{answer}");
    }
    if status == "completed" {
        Ok(ExitCode::SUCCESS)
    } else {
        if !args.json {
            eprintln!(
                "praxis: run {run_id} ended: {} {}",
                view["stop_reason"].as_str().unwrap_or(status),
                view["error"].as_str().unwrap_or("")
            );
        }
        Ok(ExitCode::FAILURE)
    }
}

/// `praxis run ARGS` as a `POST /v1/runs` (the files the flags name are read here);
/// returns the new run's id and the server's answer.
pub async fn submit(remote: &Remote, args: &RunArgs) -> Result<(String, Value)> {
    // The server's own configuration decides these; ignoring them silently would mislead.
    for (given, flag) in [
        (args.protocol.is_some(), "--protocol"),
        (args.tool_choice.is_some(), "--tool-choice"),
        (args.fabric.is_some(), "--fabric"),
    ] {
        if given {
            bail!("{flag} cannot be used with --server: the server's configuration decides it");
        }
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

// ---------------------------------------------------------------------------------------
// praxis serve, praxis token

pub async fn serve(home: &DataHome, args: ServeArgs) -> Result<ExitCode> {
    let mut config = praxis_server::ServerConfig::new(home.clone());
    config.apply_env().map_err(|e| anyhow!(e))?;
    if let Some(n) = args.max_runs {
        config.max_runs = Some(n).filter(|n| *n > 0);
    }
    if let Some(n) = args.max_runs_per_tenant {
        config.max_runs_per_tenant = Some(n).filter(|n| *n > 0);
    }
    if let Some(n) = args.queue {
        config.queue_capacity = n;
    }
    let addr = praxis_server::parse_bind(&args.bind).map_err(|e| anyhow!(e))?;
    let problems = praxis_server::production_problems(&config)?;
    if !problems.is_empty() {
        eprintln!(
            "praxis serve: {}",
            praxis_server::ServerError::Production(problems)
        );
        return Ok(ExitCode::from(2));
    }
    // The same writs as `praxis run`: a writ sent by the client is checked against the
    // configured trust anchor; without one, the development writ of the local key.
    let writ_home = home.clone();
    config.writs = Some(Arc::new(move |token: Option<&str>| match token {
        Some(token) => Ok(WritGrant {
            token: token.trim().to_string(),
            anchor: writs::anchor(&writ_home)?,
        }),
        None => Ok(WritGrant {
            token: writs::for_run(&writ_home, None)?,
            anchor: writs::anchor_for_run(&writ_home, false)?,
        }),
    }));
    config.checkpoint_key = Some(Arc::new(crate::runtime_key(home)?));
    config.prices = crate::load_prices(home)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    let auth = match config.auth {
        praxis_server::AuthSetting::On => "on",
        praxis_server::AuthSetting::Off => "off",
        praxis_server::AuthSetting::Auto => "on once a token exists",
    };
    eprintln!(
        "praxis serve: listening on http://{local} (data {}, auth {auth}{})",
        home.root().display(),
        if config.production {
            ", production"
        } else {
            ""
        }
    );
    praxis_server::serve(listener, config, praxis_server::stop_signal()).await?;
    eprintln!("praxis serve: stopped");
    Ok(ExitCode::SUCCESS)
}

pub fn token(home: &DataHome, cmd: TokenCmd) -> Result<ExitCode> {
    let path = home.ledger_path();
    let store = TokenStore::open(&path).with_context(|| format!("opening {}", path.display()))?;
    match cmd {
        TokenCmd::Create { tenant } => {
            let token = store.create(&tenant)?;
            println!("{token}");
            eprintln!(
                "praxis: token for tenant {tenant} created (only its hash is stored; authentication is now on for `praxis serve`)"
            );
        }
        TokenCmd::List => {
            for t in store.list()? {
                println!("{}  {:<20}  {}", t.id, t.tenant, t.created_at);
            }
        }
        TokenCmd::Revoke { id } => {
            let n = store.revoke(&id)?;
            if n == 0 {
                bail!("no token with id {id:?} (use 8+ hex digits from `praxis token list`)");
            }
            println!("revoked {n} token(s)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------
// praxis bench --server

/// Load bench on loopback: `runs` mock runs through an in-process server, `CONCURRENCY` at
/// a time, each with `followers` SSE followers; against a baseline of the same runs driven
/// in-process without HTTP. Resident memory is sampled after the first tenth of the server
/// runs and at the end, so growth per run shows whether memory stays flat.
pub async fn bench(dir: PathBuf, runs: usize, followers: usize) -> Result<Value> {
    const CONCURRENCY: usize = 8;
    let runs = runs.clamp(1, 100_000);
    let followers = followers.clamp(0, 32);
    let stamp = praxis_runtime::new_run_id();
    let root = dir.join(format!("server-bench-{stamp}"));
    let workspace = root.join("workspace");
    std::fs::create_dir_all(workspace.join("src"))
        .with_context(|| format!("creating {}", workspace.display()))?;
    std::fs::write(workspace.join("README.md"), "# Bench\n\nA small project.\n")?;
    std::fs::write(
        workspace.join("src/lib.rs"),
        "pub fn add(a: u32, b: u32) -> u32 { a + b }\n",
    )?;

    // Baseline: the same runs, same kind of ledger, no HTTP.
    let ledger = Arc::new(praxis_ledger::SqliteLedger::open(
        &root.join("direct/ledger.db"),
    )?);
    let runtime = praxis_runtime::Runtime::new(ledger, Arc::new(praxis_tools::Registry::builtin()));
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (runtime, next, workspace) = (runtime.clone(), next.clone(), workspace.clone());
        workers.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < runs {
                let spec: praxis_core::RunSpec = serde_json::from_value(json!({
                    "task": "bench run", "workspace": workspace.display().to_string(),
                    "provider": "mock",
                }))?;
                let options = praxis_runtime::RunOptions::new(
                    spec,
                    Arc::new(praxis_models::MockProvider::new()),
                );
                runtime.run(options, &praxis_runtime::NoObserver).await?;
            }
            anyhow::Ok(())
        }));
    }
    for w in workers {
        w.await??;
    }
    let direct_secs = started.elapsed().as_secs_f64();

    let config = praxis_server::ServerConfig::new(DataHome::at(root.join("server")));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = praxis_server::Server::start(listener, config).await?;
    let remote = Arc::new(Remote::new(&server.url())?.with_token(None));
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let warm_rss = Arc::new(std::sync::Mutex::new(None::<u64>));
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (remote, next, warm_rss) = (remote.clone(), next.clone(), warm_rss.clone());
        let body = json!({ "task": "bench run", "workspace": workspace.display().to_string() });
        tasks.push(tokio::spawn(async move {
            let mut all = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= runs {
                    break;
                }
                if i == runs / 10 {
                    *warm_rss.lock().unwrap_or_else(|e| e.into_inner()) = resident_kib("VmRSS:");
                }
                let remote = remote.clone();
                let created = remote.post("/v1/runs", &body).await?;
                let id = created["id"].as_str().unwrap_or_default().to_string();
                let mut follows = Vec::new();
                for _ in 0..followers.max(1) {
                    let remote = remote.clone();
                    let id = id.clone();
                    follows.push(tokio::spawn(async move {
                        let connected = SystemTime::now();
                        let mut latencies = Vec::new();
                        remote
                            .follow(
                                &id,
                                |entry| {
                                    // Only entries written after this follower connected are live.
                                    if let Ok(at) = humantime::parse_rfc3339(&entry.at)
                                        && at >= connected
                                        && let Ok(lag) = SystemTime::now().duration_since(at)
                                    {
                                        latencies.push(lag.as_secs_f64() * 1000.0);
                                    }
                                },
                                |_| {},
                            )
                            .await?;
                        anyhow::Ok(latencies)
                    }));
                }
                for f in follows {
                    all.extend(f.await??);
                }
            }
            anyhow::Ok(all)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let server_secs = started.elapsed().as_secs_f64();
    server.shutdown().await?;
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        (latencies[i] * 100.0).round() / 100.0
    };
    let peak_rss_kib = resident_kib("VmHWM:");
    let end_rss = resident_kib("VmRSS:");
    let warm_rss = *warm_rss.lock().unwrap_or_else(|e| e.into_inner());
    // Growth between the first tenth of the runs and the end, per run after the first tenth.
    let growth_per_run = match (warm_rss, end_rss) {
        (Some(warm), Some(end)) if runs >= 10 => {
            let per_run = (end as f64 - warm as f64) / (runs - runs / 10) as f64;
            Some((per_run * 100.0).round() / 100.0)
        }
        _ => None,
    };
    let _ = std::fs::remove_dir_all(&root);
    let round = |x: f64| (x * 100.0).round() / 100.0;
    Ok(json!({
        "runs": runs,
        "followers_per_run": followers.max(1),
        "direct_runs_per_s": round(runs as f64 / direct_secs),
        "server_runs_per_s": round(runs as f64 / server_secs),
        "server_vs_direct": round(direct_secs / server_secs),
        "live_events_measured": latencies.len(),
        "delivery_latency_ms_p50": pct(0.50),
        "delivery_latency_ms_p99": pct(0.99),
        "concurrency": CONCURRENCY,
        "peak_rss_kib": peak_rss_kib,
        "rss_after_first_tenth_kib": warm_rss,
        "rss_at_end_kib": end_rss,
        "rss_growth_kib_per_run": growth_per_run,
    }))
}

/// A `/proc/self/status` memory figure (`VmRSS:`, `VmHWM:`) in KiB.
fn resident_kib(field: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
}
