//! Fan-out keeps its bounds under a burst: the maximum concurrency observed, per provider
//! and over all, never exceeds the limits, and every result carries its run id.

use praxis::Agent;
use praxis::fanout::{FanoutResult, LaneLimits, fanout};
use std::collections::{BTreeMap, BTreeSet};

/// Most runs whose [started, finished] intervals overlap at one instant.
fn max_overlap<'a>(runs: impl Iterator<Item = &'a FanoutResult>) -> usize {
    let mut points = Vec::new();
    for r in runs {
        points.push((r.started, 1i32));
        points.push((r.finished, -1i32));
    }
    // Ends before starts at the same instant: a slot handed over is not an overlap.
    points.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in points {
        now += d;
        max = max.max(now);
    }
    max as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_tasks_times_providers_keeps_its_bounds() {
    let workspace = tempfile::tempdir().unwrap();
    std::fs::write(workspace.path().join("README.md"), "# demo\n").unwrap();
    let base = Agent::builder()
        .workspace(workspace.path())
        .config("models.second", vec!["mock"])
        .config("models.third", vec!["mock"]);
    let tasks: Vec<String> = (0..5)
        .map(|i| format!("Summarize the workspace ({i})"))
        .collect();
    let providers: Vec<String> = ["mock", "second", "third"].map(String::from).to_vec();
    let limits = LaneLimits {
        global: 4,
        per_key: 2,
    };
    let results = fanout(&base, &tasks, &providers, limits).await;
    assert_eq!(results.len(), 15);
    let mut by_provider: BTreeMap<&str, Vec<&FanoutResult>> = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for r in &results {
        let run = r.result.as_ref().expect("run");
        assert_eq!(run.run_id, r.run_id);
        assert_eq!(run.stop_reason, praxis::StopReason::Completed);
        assert!(ids.insert(r.run_id.clone()), "run ids are unique");
        by_provider.entry(&r.provider).or_default().push(r);
    }
    for (provider, runs) in &by_provider {
        assert_eq!(runs.len(), 5);
        let per_key = max_overlap(runs.iter().copied());
        assert!(per_key <= 2, "{provider}: {per_key} at once");
    }
    let global = max_overlap(results.iter());
    assert!(global <= 4, "{global} at once");
    // Task-major order.
    assert_eq!((results[0].task, results[0].provider.as_str()), (0, "mock"));
    assert_eq!(
        (results[4].task, results[4].provider.as_str()),
        (1, "second")
    );
}
