//! The server load benchmark (`praxis bench --server`): mock runs through a server on
//! loopback, each followed over SSE, against a baseline of the same runs driven in-process
//! without HTTP; resident memory sampled after the first tenth of the runs and at the end.

use crate::{Server, ServerConfig, WorkspaceRoots};
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use praxis_core::{Limits, RunSpec};
use praxis_ledger::Entry;
use praxis_runtime::{DataHome, NoObserver, RunOptions, Runtime};
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime};

/// Runs in flight at once, on each side.
pub const CONCURRENCY: usize = 8;

/// What the load bench measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub runs: usize,
    pub followers_per_run: usize,
    pub direct_runs_per_s: f64,
    pub server_runs_per_s: f64,
    pub server_vs_direct: f64,
    pub live_events_measured: usize,
    pub delivery_latency_ms_p50: f64,
    pub delivery_latency_ms_p99: f64,
    pub concurrency: usize,
    pub peak_rss_kib: Option<u64>,
    pub rss_after_first_tenth_kib: Option<u64>,
    pub rss_at_end_kib: Option<u64>,
    pub rss_growth_kib_per_run: Option<f64>,
}

/// `POST /v1/runs` of a bench run.
#[derive(Serialize)]
struct BenchRun<'a> {
    task: &'a str,
    workspace: String,
}

#[derive(serde::Deserialize)]
struct CreatedId {
    id: String,
}

/// Load bench on loopback: `runs` mock runs through an in-process server, [`CONCURRENCY`]
/// at a time, each with `followers` SSE followers; against a baseline of the same runs
/// driven in-process without HTTP. Works in a fresh directory under `dir`, removed after.
pub async fn bench(dir: &Path, runs: usize, followers: usize) -> anyhow::Result<BenchReport> {
    let runs = runs.clamp(1, 100_000);
    let followers = followers.clamp(0, 32).max(1);
    let root = dir.join(format!("server-bench-{}", praxis_runtime::new_run_id()));
    let workspace = root.join("workspace");
    std::fs::create_dir_all(workspace.join("src"))?;
    std::fs::write(workspace.join("README.md"), "# Bench\n\nA small project.\n")?;
    std::fs::write(
        workspace.join("src/lib.rs"),
        "pub fn add(a: u32, b: u32) -> u32 { a + b }\n",
    )?;
    let workspace = std::fs::canonicalize(&workspace)?;

    // Baseline: the same runs, same kind of ledger, no HTTP.
    let ledger = Arc::new(praxis_ledger::SqliteLedger::open(
        &root.join("direct/ledger.db"),
    )?);
    let runtime = Runtime::new(ledger, Arc::new(praxis_tools::Registry::builtin()));
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (runtime, next, workspace) = (runtime.clone(), next.clone(), workspace.clone());
        workers.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < runs {
                let spec = RunSpec {
                    conversation: Default::default(),
                    task: "bench run".into(),
                    workspace: workspace.display().to_string(),
                    provider: "mock".into(),
                    model: String::new(),
                    tools: None,
                    read_only: false,
                    limits: Limits::default(),
                    protocol: Default::default(),
                    compaction: None,
                };
                let options = RunOptions::new(spec, Arc::new(praxis_models::MockProvider::new()));
                runtime.run(options, &NoObserver).await?;
            }
            anyhow::Ok(())
        }));
    }
    for w in workers {
        w.await??;
    }
    let direct_secs = started.elapsed().as_secs_f64();

    let mut config = ServerConfig::new(DataHome::at(root.join("server")));
    config.workspace_roots = WorkspaceRoots {
        shared: vec![root.clone()],
        ..WorkspaceRoots::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = Server::start(listener, config).await?;
    let url = Arc::new(server.url());
    let http = reqwest::Client::new();
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let warm_rss = Arc::new(std::sync::Mutex::new(None::<u64>));
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (http, url, next, warm_rss) =
            (http.clone(), url.clone(), next.clone(), warm_rss.clone());
        let workspace = workspace.display().to_string();
        tasks.push(tokio::spawn(async move {
            let mut all = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= runs {
                    break;
                }
                if i == runs / 10 {
                    *warm_rss.lock().unwrap_or_else(|e| e.into_inner()) = resident_kib("VmRSS:");
                }
                let body = BenchRun {
                    task: "bench run",
                    workspace: workspace.clone(),
                };
                let created: CreatedId = http
                    .post(format!("{url}/v1/runs"))
                    .json(&body)
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                let mut follows = Vec::new();
                for _ in 0..followers {
                    let events = format!("{url}/v1/runs/{}/events", created.id);
                    follows.push(tokio::spawn(follow(http.clone(), events)));
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
    let round = |x: f64| (x * 100.0).round() / 100.0;
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        round(latencies[i])
    };
    let end_rss = resident_kib("VmRSS:");
    let warm_rss = *warm_rss.lock().unwrap_or_else(|e| e.into_inner());
    // Growth between the first tenth of the runs and the end, per run after the first tenth.
    let growth_per_run = match (warm_rss, end_rss) {
        (Some(warm), Some(end)) if runs >= 10 => Some(round(
            (end as f64 - warm as f64) / (runs - runs / 10) as f64,
        )),
        _ => None,
    };
    let _ = std::fs::remove_dir_all(&root);
    Ok(BenchReport {
        runs,
        followers_per_run: followers,
        direct_runs_per_s: round(runs as f64 / direct_secs),
        server_runs_per_s: round(runs as f64 / server_secs),
        server_vs_direct: round(direct_secs / server_secs),
        live_events_measured: latencies.len(),
        delivery_latency_ms_p50: pct(0.50),
        delivery_latency_ms_p99: pct(0.99),
        concurrency: CONCURRENCY,
        peak_rss_kib: resident_kib("VmHWM:"),
        rss_after_first_tenth_kib: warm_rss,
        rss_at_end_kib: end_rss,
        rss_growth_kib_per_run: growth_per_run,
    })
}

/// Follows one run's feed to its end; the delivery latency (ms) of each entry written
/// after the follower connected.
async fn follow(http: reqwest::Client, url: String) -> anyhow::Result<Vec<f64>> {
    let connected = SystemTime::now();
    let response = http
        .get(&url)
        .header("accept", "text/event-stream")
        .send()
        .await?
        .error_for_status()?;
    let mut events = response.bytes_stream().eventsource();
    let mut latencies = Vec::new();
    while let Some(event) = events.next().await {
        let Ok(event) = event else { break };
        if event.event == "delta" {
            continue;
        }
        let entry: Entry = serde_json::from_str(&event.data)?;
        // Only entries written after this follower connected are live.
        if let Ok(at) = humantime::parse_rfc3339(&entry.at)
            && at >= connected
            && let Ok(lag) = SystemTime::now().duration_since(at)
        {
            latencies.push(lag.as_secs_f64() * 1000.0);
        }
        if entry.kind == "run_finished" {
            break;
        }
    }
    Ok(latencies)
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
