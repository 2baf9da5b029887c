//! Lanes: bounds hold under a burst, and two tenants' queues interleave.

use praxis_runtime::lane::{Lane, LaneLimits};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Gauge {
    now: BTreeMap<String, usize>,
    max: BTreeMap<String, usize>,
    total: usize,
    max_total: usize,
    order: Vec<String>,
}

fn job(
    lane: &Lane,
    gauge: &Arc<Mutex<Gauge>>,
    key: &'static str,
    i: usize,
) -> tokio::task::JoinHandle<()> {
    let (lane, gauge) = (lane.clone(), gauge.clone());
    tokio::spawn(async move {
        lane.run(key, async {
            {
                let mut g = gauge.lock().unwrap();
                *g.now.entry(key.into()).or_default() += 1;
                g.total += 1;
                let (n, t) = (g.now[key], g.total);
                let m = g.max.entry(key.into()).or_default();
                *m = (*m).max(n);
                g.max_total = g.max_total.max(t);
                g.order.push(format!("{key}{i}"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            let mut g = gauge.lock().unwrap();
            *g.now.get_mut(key).unwrap() -= 1;
            g.total -= 1;
        })
        .await
    })
}

async fn until_waiting(lane: &Lane, n: usize) {
    while lane.waiting() < n {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_queues_interleave() {
    let lane = Lane::new(LaneLimits {
        global: 1,
        per_key: 1,
    });
    let gauge = Arc::new(Mutex::new(Gauge::default()));
    let blocker = lane.acquire("blocker").await;
    // Tenant a bursts 6 jobs, all queued before tenant b's 3.
    // Each job is queued before the next is spawned, so the queue order is known.
    let mut jobs = Vec::new();
    for (n, (key, i)) in (0..6)
        .map(|i| ("a", i))
        .chain((0..3).map(|i| ("b", i)))
        .enumerate()
    {
        jobs.push(job(&lane, &gauge, key, i));
        until_waiting(&lane, n + 1).await;
    }
    drop(blocker);
    for j in jobs {
        j.await.unwrap();
    }
    let g = gauge.lock().unwrap();
    let keys: String = g.order.iter().map(|o| &o[..1]).collect();
    // First come, first served would be "aaaaaabbb".
    assert_eq!(keys, "abababaaa", "{:?}", g.order);
    // Within a tenant, its own order.
    let a: Vec<&String> = g.order.iter().filter(|o| o.starts_with('a')).collect();
    assert_eq!(a, ["a0", "a1", "a2", "a3", "a4", "a5"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_keeps_the_global_and_per_key_bounds() {
    let lane = Lane::new(LaneLimits {
        global: 3,
        per_key: 2,
    });
    let gauge = Arc::new(Mutex::new(Gauge::default()));
    let jobs: Vec<_> = (0..10)
        .flat_map(|i| ["a", "b", "c"].map(|k| (k, i)))
        .map(|(k, i)| job(&lane, &gauge, k, i))
        .collect();
    for j in jobs {
        j.await.unwrap();
    }
    let g = gauge.lock().unwrap();
    assert_eq!(g.order.len(), 30);
    for key in ["a", "b", "c"] {
        assert!(g.max[key] <= 2, "{key}: {}", g.max[key]);
    }
    assert!(g.max_total <= 3, "{}", g.max_total);
    assert_eq!(lane.waiting(), 0);
}

#[tokio::test]
async fn a_waiter_that_gives_up_does_not_leak_its_slot() {
    let lane = Lane::new(LaneLimits {
        global: 1,
        per_key: 1,
    });
    let held = lane.acquire("a").await;
    let waiter = {
        let lane = lane.clone();
        tokio::spawn(async move {
            let _permit = lane.acquire("b").await;
        })
    };
    until_waiting(&lane, 1).await;
    waiter.abort();
    let _ = waiter.await;
    drop(held);
    // The slot is free again: this would hang if the aborted waiter kept it.
    let again = tokio::time::timeout(Duration::from_secs(5), lane.acquire("c")).await;
    assert!(again.is_ok());
}

/// A key served at once (nobody waiting) has had its turn: when it frees the slot, a
/// waiting other key goes before its own next job, even if that key sorts first.
#[tokio::test]
async fn a_key_served_without_waiting_has_had_its_turn() {
    let lane = Lane::new(LaneLimits {
        global: 1,
        per_key: 1,
    });
    let gauge = Arc::new(Mutex::new(Gauge::default()));
    let first = lane.acquire("a").await;
    let mut jobs = vec![job(&lane, &gauge, "a", 1)];
    until_waiting(&lane, 1).await;
    jobs.push(job(&lane, &gauge, "b", 0));
    until_waiting(&lane, 2).await;
    drop(first);
    for j in jobs {
        j.await.unwrap();
    }
    assert_eq!(gauge.lock().unwrap().order, ["b0", "a1"]);
}

#[test]
fn the_fair_queue_serves_keys_in_turn_lists_in_that_order_and_removes_by_item() {
    use praxis_runtime::lane::FairQueue;
    let mut queue = FairQueue::default();
    for item in ["a1", "a2", "a3", "b1", "b2", "c1"] {
        queue.push(&item[..1], item);
    }
    // `a` was served last (without waiting): the turn goes to `b`.
    queue.served("a");
    let order: Vec<&str> = queue.in_order().iter().map(|(_, i)| **i).collect();
    assert_eq!(order, ["b1", "c1", "a1", "b2", "a2", "a3"]);
    assert_eq!(queue.remove(|i| *i == "c1"), Some("c1"));
    assert_eq!(queue.remove(|i| *i == "c1"), None);
    // A key at its own bound is skipped, not dropped.
    assert_eq!(queue.pop_next(|k| k != "b"), Some(("a".to_string(), "a1")));
    assert_eq!(queue.pop_next(|_| true), Some(("b".to_string(), "b1")));
    assert_eq!(queue.pop_next(|_| true), Some(("a".to_string(), "a2")));
    assert_eq!(queue.len(), 2);
    assert_eq!(queue.pop_next(|_| false), None);
    let mut rest = queue.drain();
    rest.sort();
    assert_eq!(rest, ["a3", "b2"]);
    assert!(queue.is_empty());
}
