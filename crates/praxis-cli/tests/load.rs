//! The load and soak test on loopback (issue 18): `praxis serve` with 500 concurrent runs
//! and 2,000 SSE followers (4 per run), then a soak of waves for `PRAXIS_SOAK_SECONDS`.
//!
//! Targets, checked: no request fails; every follower sees every entry of its run up to
//! `run_finished`, in order, no gap, no duplicate (a follower the server drops as too slow
//! resumes with `Last-Event-ID`, as clients do; drops are counted); the server's resident
//! memory and open descriptors, idle after each wave, stay flat after warm-up. Reported:
//! p50/p99 of run latency (POST to `run_finished` seen by all its followers) and of live
//! event delivery (entry time to arrival, for entries committed after the follower's stream
//! opened; entry times are millisecond stamps). No timing is asserted.
//!
//! `PRAXIS_LOAD_RUNS` (500), `PRAXIS_LOAD_FOLLOWERS` (4 per run), `PRAXIS_SOAK_SECONDS`
//! (120), `PRAXIS_SOAK_WAVE` (50 runs per wave). Ignored in the workspace run; `.ci/crash`
//! runs it. The server uses the in-process tool fabric (`PRAXIS_LOAD_FABRIC` to change it):
//! 500 concurrent worker processes measure process creation, not the server.

mod common;

use common::Praxis;
use common::served::Served;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number"))
        })
        .unwrap_or(default)
}

/// What one wave measured.
#[derive(Default)]
struct Wave {
    errors: Vec<String>,
    dropped_events: usize,
    reconnects: usize,
    events: usize,
    run_latency_ms: Vec<f64>,
    delivery_ms: Vec<f64>,
}

/// The server's resident memory (KiB) and open descriptors.
fn footprint(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (rss, fds)
}

fn millis_since_epoch(at: &str) -> Option<f64> {
    let t = humantime::parse_rfc3339_weak(at).ok()?;
    Some(t.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs_f64() * 1000.0)
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

/// Follows one run until `run_finished`, resuming with `Last-Event-ID` when cut; the seqs
/// seen in order, each with its delivery delay.
async fn follow(
    client: &reqwest::Client,
    url: &str,
    id: &str,
    reconnects: &AtomicUsize,
) -> Result<Vec<(u64, f64)>, String> {
    let mut seen: Vec<(u64, f64)> = Vec::new();
    for _attempt in 0..20 {
        let mut request = client.get(format!("{url}/v1/runs/{id}/events"));
        if let Some((last, _)) = seen.last() {
            request = request.header("Last-Event-ID", last.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("follow {id}: {e}"))?;
        if response.status().as_u16() != 200 {
            return Err(format!("follow {id}: {}", response.status()));
        }
        // Delivery delay is measured on live entries only: those committed after the stream
        // opened (the ones before are the catch-up a late follower reads from the ledger).
        let opened = now_ms();
        let mut events = eventsource_stream::Eventsource::eventsource(response.bytes_stream());
        while let Some(event) = events.next().await {
            let Ok(event) = event else { break };
            if event.event == "delta" {
                continue;
            }
            let entry: Value = serde_json::from_str(&event.data)
                .map_err(|e| format!("follow {id}: bad data {e}: {}", event.data))?;
            let seq = entry["seq"].as_u64().ok_or("an event without seq")?;
            let delay = entry["at"]
                .as_str()
                .and_then(millis_since_epoch)
                .filter(|at| *at >= opened.floor())
                .map_or(f64::NAN, |at| now_ms() - at);
            seen.push((seq, delay));
            if entry["kind"] == "run_finished" {
                return Ok(seen);
            }
        }
        reconnects.fetch_add(1, Ordering::Relaxed);
    }
    Err(format!("follow {id}: no run_finished after 20 connections"))
}

fn run_body(ws: &Path, i: usize) -> Value {
    json!({
        "task": format!("load {i}"),
        "workspace": ws,
        "script": {"turns": [
            {"tool_calls": [{"id": "w", "name": "fs_write",
                             "arguments": {"path": format!("out/{i}.txt"), "content": "load\n"}}]},
            {"content": "done"}
        ]}
    })
}

/// `runs` concurrent runs with `followers` followers each; every follower's seqs are
/// compared with the run's exported entries.
async fn wave(url: &str, ws: &Path, first: usize, runs: usize, followers: usize) -> Wave {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let reconnects = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in first..first + runs {
        let (client, url, body) = (client.clone(), url.to_string(), run_body(ws, i));
        let reconnects = reconnects.clone();
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let created = client
                .post(format!("{url}/v1/runs"))
                .json(&body)
                .send()
                .await
                .map_err(|e| format!("create: {e}"))?;
            if created.status().as_u16() != 201 {
                let status = created.status();
                let body = created.text().await.unwrap_or_default();
                return Err(format!("create: {status}: {body}"));
            }
            let id = created.json::<Value>().await.map_err(|e| e.to_string())?["id"]
                .as_str()
                .unwrap()
                .to_string();
            let feeds = futures_util::future::join_all(
                (0..followers).map(|_| follow(&client, &url, &id, &reconnects)),
            )
            .await;
            let latency = started.elapsed().as_secs_f64() * 1000.0;
            let exported = client
                .get(format!("{url}/v1/runs/{id}/ledger"))
                .send()
                .await
                .map_err(|e| format!("ledger of {id}: {e}"))?;
            let status = exported.status().as_u16();
            let ledger = exported.text().await.map_err(|e| e.to_string())?;
            if status != 200 {
                return Err(format!("ledger of {id}: {status} {ledger}"));
            }
            let recorded: Vec<u64> = ledger
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .take_while_inclusive(|e| e["kind"] != "run_finished")
                .iter()
                .map(|e| e["seq"].as_u64().unwrap())
                .collect();
            Ok::<_, String>((id, latency, recorded, feeds))
        }));
    }
    let mut wave = Wave::default();
    for task in tasks {
        match task.await.unwrap() {
            Err(e) => wave.errors.push(e),
            Ok((id, latency, recorded, feeds)) => {
                wave.run_latency_ms.push(latency);
                for feed in feeds {
                    match feed {
                        Err(e) => wave.errors.push(e),
                        Ok(seen) => {
                            let seqs: Vec<u64> = seen.iter().map(|(s, _)| *s).collect();
                            wave.events += seqs.len();
                            if seqs != recorded {
                                wave.dropped_events += recorded.len().abs_diff(seqs.len()).max(1);
                                wave.errors.push(format!(
                                    "run {id}: a follower saw {seqs:?}, the ledger holds {recorded:?}"
                                ));
                            }
                            wave.delivery_ms
                                .extend(seen.iter().map(|(_, d)| *d).filter(|d| d.is_finite()));
                        }
                    }
                }
            }
        }
    }
    wave.reconnects = reconnects.load(Ordering::Relaxed);
    wave
}

trait TakeWhileInclusive: Iterator + Sized {
    fn take_while_inclusive<P: FnMut(&Self::Item) -> bool>(self, p: P) -> Vec<Self::Item>;
}

impl<I: Iterator> TakeWhileInclusive for I {
    fn take_while_inclusive<P: FnMut(&Self::Item) -> bool>(self, mut p: P) -> Vec<I::Item> {
        let mut out = Vec::new();
        for item in self {
            let go_on = p(&item);
            out.push(item);
            if !go_on {
                break;
            }
        }
        out
    }
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    values[((values.len() - 1) as f64 * p).round() as usize]
}

/// Waits until the server is idle (no run going) and gives it a moment to release them.
fn idle_footprint(pid: u32) -> (u64, usize) {
    std::thread::sleep(Duration::from_secs(2));
    footprint(pid)
}

#[test]
#[ignore = "load and soak on loopback: run by .ci/crash (PRAXIS_LOAD_RUNS, PRAXIS_SOAK_SECONDS)"]
fn five_hundred_runs_two_thousand_followers_then_a_soak() {
    let runs = env_number("PRAXIS_LOAD_RUNS", 500);
    let followers = env_number("PRAXIS_LOAD_FOLLOWERS", 4);
    let soak = Duration::from_secs(env_number("PRAXIS_SOAK_SECONDS", 120) as u64);
    let wave_size = env_number("PRAXIS_SOAK_WAVE", 50);
    let fabric = std::env::var("PRAXIS_LOAD_FABRIC").unwrap_or_else(|_| "in-process".into());

    let praxis = Praxis::new();
    let ws = tempfile::tempdir().unwrap();
    let ws = std::fs::canonicalize(ws.path()).unwrap();
    let mut cmd = praxis.cmd(&[]);
    cmd.env("PRAXIS_WORKSPACE_ROOTS", &ws)
        .env("PRAXIS_FABRIC", &fabric)
        // 2,500 connections opened at once: beyond the default 256 not yet through their
        // first request, the server answers 503 (its guard against connection floods).
        .env("PRAXIS_MAX_UNAUTHENTICATED", "4096")
        // All 500 runs execute at once (the default bound of 32 with a queue of 64 would
        // answer most of the burst with 429).
        .env("PRAXIS_MAX_RUNS", "0");
    let server = Served::start_with(cmd, &[]);
    let pid = server.child.id();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let start_footprint = footprint(pid);

    // The burst.
    let began = Instant::now();
    let mut burst = rt.block_on(wave(&server.url, &ws, 0, runs, followers));
    let burst_secs = began.elapsed().as_secs_f64();
    let after_burst = idle_footprint(pid);
    eprintln!(
        "load: {runs} concurrent runs, {} followers, fabric {fabric}: {:.1} s, {} events delivered, \
         {} errors, {} dropped events, {} follower reconnects; run latency p50 {:.0} ms p99 {:.0} ms; \
         delivery p50 {:.0} ms p99 {:.0} ms; server RSS {} -> {} KiB, fds {} -> {}",
        runs * followers,
        burst_secs,
        burst.events,
        burst.errors.len(),
        burst.dropped_events,
        burst.reconnects,
        percentile(&mut burst.run_latency_ms, 0.5),
        percentile(&mut burst.run_latency_ms, 0.99),
        percentile(&mut burst.delivery_ms, 0.5),
        percentile(&mut burst.delivery_ms, 0.99),
        start_footprint.0,
        after_burst.0,
        start_footprint.1,
        after_burst.1,
    );
    assert!(
        burst.errors.is_empty(),
        "errors under load: {:#?}",
        &burst.errors[..burst.errors.len().min(10)]
    );
    assert_eq!(burst.dropped_events, 0);

    // The soak: waves until the time is up, the footprint sampled idle after each.
    let began = Instant::now();
    let mut samples = Vec::new();
    let mut soak_runs = 0;
    let (mut latency, mut delivery, mut errors, mut reconnects) = (Vec::new(), Vec::new(), 0, 0);
    while began.elapsed() < soak || samples.len() < 3 {
        let mut w = rt.block_on(wave(
            &server.url,
            &ws,
            runs + soak_runs,
            wave_size,
            followers,
        ));
        soak_runs += wave_size;
        assert!(
            w.errors.is_empty(),
            "errors in the soak: {:#?}",
            &w.errors[..w.errors.len().min(10)]
        );
        latency.append(&mut w.run_latency_ms);
        delivery.append(&mut w.delivery_ms);
        errors += w.errors.len();
        reconnects += w.reconnects;
        samples.push(idle_footprint(pid));
    }
    let (first, last) = (samples[0], *samples.last().unwrap());
    let max_rss = samples.iter().map(|s| s.0).max().unwrap();
    eprintln!(
        "soak: {:.0} s, {soak_runs} runs in waves of {wave_size} with {followers} followers each, \
         {errors} errors, {reconnects} reconnects; run latency p50 {:.0} ms p99 {:.0} ms; delivery p99 {:.0} ms; \
         idle RSS after warm-up {} KiB, at end {} KiB, max {} KiB; fds {} -> {}; samples {:?}",
        began.elapsed().as_secs_f64(),
        percentile(&mut latency, 0.5),
        percentile(&mut latency, 0.99),
        percentile(&mut delivery, 0.99),
        first.0,
        last.0,
        max_rss,
        first.1,
        last.1,
        samples
    );
    // Flat after warm-up (the burst and the first soak wave). Tolerances: glibc's allocator
    // keeps freed pages in per-thread arenas and SQLite's page cache fills up to its bound, so
    // idle RSS moves by a few MiB between samples without a leak: 25% + 16 MiB over the first
    // sample is allowed (a leak of 1 KiB per run shows after ~20,000 runs; the figures are
    // printed for a person to read). Descriptors: the idle server holds the same files
    // (ledger, WAL, index, listener); 8 allowed for lazily opened ones.
    assert!(
        last.0 <= first.0 + first.0 / 4 + 16 * 1024,
        "RSS grew from {} KiB to {} KiB during the soak",
        first.0,
        last.0
    );
    assert!(
        last.1 <= first.1 + 8,
        "open descriptors grew from {} to {} during the soak",
        first.1,
        last.1
    );
    drop(server);
}
