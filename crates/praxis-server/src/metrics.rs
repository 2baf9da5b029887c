//! Prometheus text exposition of the server's counters and gauges (hand-written: a dozen
//! lines of format do not need a metrics crate).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Default)]
pub struct Metrics {
    active_runs: AtomicU64,
    queue_depth: AtomicU64,
    sse_clients: AtomicU64,
    sse_dropped: AtomicU64,
    entries_appended: AtomicU64,
    /// Views of a running run served from the view computed at its latest entry.
    run_views_reused: AtomicU64,
    run_views_read: AtomicU64,
    /// (method, route template, status) -> count.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
}

/// Counts one connected SSE follower while it lives (however its feed ends).
pub struct SseClient(Arc<Metrics>);

impl SseClient {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        metrics.sse_clients.fetch_add(1, Ordering::AcqRel);
        SseClient(metrics)
    }
}

impl Drop for SseClient {
    fn drop(&mut self) {
        self.0.sse_clients.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Metrics {
    pub fn set_active_runs(&self, n: usize) {
        self.active_runs.store(n as u64, Ordering::Release);
    }

    pub fn set_queue_depth(&self, n: usize) {
        self.queue_depth.store(n as u64, Ordering::Release);
    }

    pub fn entry_appended(&self) {
        self.entries_appended.fetch_add(1, Ordering::AcqRel);
    }

    pub fn run_view_reused(&self) {
        self.run_views_reused.fetch_add(1, Ordering::AcqRel);
    }

    pub fn run_view_read(&self) {
        self.run_views_read.fetch_add(1, Ordering::AcqRel);
    }

    pub fn sse_dropped(&self) {
        self.sse_dropped.fetch_add(1, Ordering::AcqRel);
    }

    pub fn sse_clients(&self) -> u64 {
        self.sse_clients.load(Ordering::Acquire)
    }

    pub fn request(&self, method: &str, route: &str, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        *map.entry((method.to_string(), route.to_string(), status))
            .or_default() += 1;
    }

    /// The exposition; `runs_by_status` comes from the ledger at scrape time.
    pub fn render(&self, runs_by_status: &BTreeMap<String, u64>) -> String {
        let mut out = String::new();
        let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        let _ = writeln!(
            out,
            "# HELP praxis_runs Runs by status (derived from the ledger; queued from the server's queue).\n# TYPE praxis_runs gauge"
        );
        for (status, n) in runs_by_status {
            let _ = writeln!(out, "praxis_runs{{status=\"{status}\"}} {n}");
        }
        gauge(
            &mut out,
            "praxis_active_runs",
            "Runs this server is driving now.",
            self.active_runs.load(Ordering::Acquire),
        );
        gauge(
            &mut out,
            "praxis_queue_depth",
            "Runs waiting for a concurrency slot.",
            self.queue_depth.load(Ordering::Acquire),
        );
        gauge(
            &mut out,
            "praxis_sse_clients",
            "Connected SSE followers.",
            self.sse_clients(),
        );
        let _ = writeln!(
            out,
            "# HELP praxis_sse_dropped_total Followers dropped for falling behind (they resume with Last-Event-ID).\n# TYPE praxis_sse_dropped_total counter\npraxis_sse_dropped_total {}",
            self.sse_dropped.load(Ordering::Acquire)
        );
        let _ = writeln!(
            out,
            "# HELP praxis_ledger_entries_appended_total Ledger entries appended by runs of this server.\n# TYPE praxis_ledger_entries_appended_total counter\npraxis_ledger_entries_appended_total {}",
            self.entries_appended.load(Ordering::Acquire)
        );
        let _ = writeln!(
            out,
            "# HELP praxis_run_views_reused_total Views of running runs served without reading the ledger (no entry since the view was computed).\n# TYPE praxis_run_views_reused_total counter\npraxis_run_views_reused_total {}",
            self.run_views_reused.load(Ordering::Acquire)
        );
        let _ = writeln!(
            out,
            "# HELP praxis_run_views_read_total Views of running runs read from the ledger (the others are made from the entries this server saw become durable).\n# TYPE praxis_run_views_read_total counter\npraxis_run_views_read_total {}",
            self.run_views_read.load(Ordering::Acquire)
        );
        let _ = writeln!(
            out,
            "# HELP praxis_http_requests_total HTTP requests by method, route and status.\n# TYPE praxis_http_requests_total counter"
        );
        let map = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        for ((method, route, status), n) in map.iter() {
            let _ = writeln!(
                out,
                "praxis_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                route.replace('\\', "\\\\").replace('"', "\\\"")
            );
        }
        out
    }
}
