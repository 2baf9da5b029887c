//! Runs followed live: the lifecycle, the event feed, polling, approvals and cancels.

use crate::harness::*;
use praxis_server::RunView;
use praxis_writ::{IssuerKey, WritSpec};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[tokio::test]
async fn run_lifecycle_with_an_inline_script() {
    let h = Harness::start(|_| {}).await;
    let id = h
        .create(
            answer_script("the readme says Served"),
            json!({"limits": {"max_steps": 5, "max_seconds": 60}}),
        )
        .await;
    let view = h.wait_status(&id, &["completed", "failed"]).await;
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["final_answer"], "the readme says Served");
    assert_eq!(view["stop_reason"], "completed");
    assert_eq!(view["steps"], 2);
    assert_eq!(view["tool_calls"], 1);
    assert_eq!(view["id"], id);
    assert_eq!(view["tenant"], "default");

    // The ledger export is the JSONL of `praxis ledger export`: a verified chain ending in
    // `run_finished` and its signed checkpoint... (no checkpoint key here: run_finished).
    let entries = h.export(&id).await;
    assert_eq!(entries[0]["kind"], "run_started");
    assert!(entries.iter().any(|e| e["kind"] == "run_finished"));
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["seq"], i as u64 + 1);
        assert_eq!(e["run_id"], id);
    }

    // A finished run's feed replays every entry, ids = seq, event = kind, data = export line,
    // and ends.
    let (feed, _) = h.feed(&id, None, None).await;
    assert_eq!(feed.len(), entries.len());
    for ((seq, kind, data), exported) in feed.iter().zip(&entries) {
        assert_eq!(*seq, exported["seq"].as_u64().unwrap());
        assert_eq!(kind, exported["kind"].as_str().unwrap());
        assert_eq!(data, exported);
    }

    // Lists, filters and paging.
    let (_, list) = h.get("/v1/runs?status=completed").await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["runs"][0]["id"], id);
    let (_, list) = h.get("/v1/runs?status=running").await;
    assert_eq!(list["total"], 0);
    let id2 = h.create(answer_script("second"), json!({})).await;
    h.wait_status(&id2, &["completed"]).await;
    let (_, page) = h.get("/v1/runs?limit=1&offset=1").await;
    assert_eq!(page["total"], 2);
    assert_eq!(page["runs"].as_array().unwrap().len(), 1);
    assert_eq!(
        page["runs"][0]["id"], id,
        "newest first: the second page holds the first run"
    );
    let (status, err) = h.get("/v1/runs?status=sleeping").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["field"], "status");

    // Tools, writ verification, metrics, OpenAPI.
    let (_, tools) = h.get("/v1/tools").await;
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"fs_read") && names.contains(&"shell"),
        "{names:?}"
    );
    assert_eq!(tools["tools"][0]["parameters"]["type"], "object");
    assert_eq!(tools["tools"][0]["source"], "built-in");
    let good = h.writ(&WritSpec::development("x"));
    let (_, verdict) = h.post("/v1/writs/verify", json!({"writ": good})).await;
    assert_eq!(verdict["valid"], true, "{verdict}");
    assert_eq!(verdict["writ"]["subject"], "developer@x");
    let foreign = praxis_writ::issue(
        &WritSpec::development("x"),
        &IssuerKey::generate(),
        SystemTime::now(),
    )
    .unwrap();
    let (_, verdict) = h.post("/v1/writs/verify", json!({"writ": foreign})).await;
    assert_eq!(verdict["valid"], false);
    assert!(verdict["error"].as_str().unwrap().len() > 5);
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("praxis_runs{status=\"completed\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("praxis_active_runs 0"));
    assert!(
        metrics.contains(
            "praxis_http_requests_total{method=\"POST\",route=\"/v1/runs\",status=\"201\"} 2"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("praxis_ledger_entries_appended_total"));
    let (_, doc) = h.get("/openapi.json").await;
    for path in [
        "/v1/runs",
        "/v1/runs/{id}",
        "/v1/runs/{id}/events",
        "/v1/approvals/{id}",
        "/v1/writs/verify",
        "/ready",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["CreateRun"].is_object());
    assert!(doc["paths"]["/v1/schema/records"].is_object());
    // The published record and feed schemas, as committed in the repository.
    for (route, file) in [
        ("/v1/schema/records", "records.schema.json"),
        ("/v1/schema/feed", "feed.schema.json"),
    ] {
        let (status, schema) = h.get(route).await;
        assert_eq!(status, StatusCode::OK, "{route}");
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../schema")
            .join(file);
        let committed: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(schema, committed, "{route}");
    }
    // Without a token (auth is off here) readiness says nothing else.
    let (status, ready) = h.get("/ready").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ready, json!({"status": "ready"}));
    h.stop().await;
}

#[tokio::test]
async fn reconnecting_with_last_event_id_loses_nothing_and_repeats_nothing() {
    let h = Harness::start(|_| {}).await;
    let writ = h.writ(&approval_writ_spec());
    // The run stops at the approval, so the first connection ends mid-run for sure.
    let id = h.create(write_script(), json!({"writ": writ})).await;
    h.wait_approval(&id).await;
    let (first, _) = h.feed(&id, None, Some(3)).await;
    assert_eq!(first.iter().map(|e| e.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    // A second follower, from the start, in parallel with the rest of the run.
    let all = async { h.feed(&id, None, None).await.0 };
    let rest = async { h.feed(&id, Some(3), None).await.0 };
    let raw = async {
        h.req(reqwest::Method::GET, &format!("/v1/runs/{id}/events"), None)
            .header("Last-Event-ID", "3")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let approve = async {
        tokio::task::yield_now().await;
        let (status, answer) = h.decide(&id, json!({"decision": "approve"})).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    };
    let (all, rest, raw, ()) = tokio::join!(all, rest, raw, approve);
    // On the wire: entries carry `id: SEQ` and `event: KIND`; deltas carry no id, so they
    // never move a client's resumption point.
    let blocks: Vec<&str> = raw.split("\n\n").filter(|b| !b.trim().is_empty()).collect();
    let deltas = blocks.iter().filter(|b| b.contains("event: delta")).count();
    assert!(deltas > 0, "no deltas streamed live:\n{raw}");
    for block in &blocks {
        if block.contains("event: delta") {
            assert!(!block.lines().any(|l| l.starts_with("id:")), "{block}");
        } else if !block.starts_with(':') {
            assert!(block.lines().any(|l| l.starts_with("id: ")), "{block}");
        }
    }
    let joined: Vec<u64> = first.iter().chain(&rest).map(|e| e.0).collect();
    let export = h.export(&id).await;
    let expected: Vec<u64> = (1..=export.len() as u64).collect();
    assert_eq!(
        joined, expected,
        "the resumed feed has a gap or a duplicate"
    );
    assert_eq!(all.iter().map(|e| e.0).collect::<Vec<_>>(), expected);
    // Both followers saw the same entries, byte for byte the export.
    for ((_, _, a), b) in first.iter().chain(&rest).zip(&all) {
        assert_eq!(a, &b.2);
    }
    for ((_, _, a), b) in all.iter().zip(&export) {
        assert_eq!(a, b);
    }
    assert!(all.iter().any(|e| e.1 == "approval_decided"));
    assert!(all.iter().any(|e| e.1 == "run_finished"));
    h.stop().await;
}

#[tokio::test]
async fn a_follower_too_slow_for_the_live_channel_is_dropped_and_resumes_from_the_ledger() {
    // A live buffer of one event: the batch after the approval (several entries, and the
    // streamed deltas of the reply) overflows it before this single-threaded test reads.
    let h = Harness::start(|c| c.follower_buffer = 1).await;
    let writ = h.writ(&approval_writ_spec());
    let id = h.create(write_script(), json!({"writ": writ})).await;
    h.wait_approval(&id).await;
    let follow = async {
        let mut seen: Vec<(u64, String, Value)> = Vec::new();
        let mut connections = 0;
        loop {
            connections += 1;
            let (part, _) = h.feed(&id, seen.last().map(|e| e.0), None).await;
            seen.extend(part);
            if seen.iter().any(|e| e.1 == "run_finished") {
                return (seen, connections);
            }
            assert!(connections < 50, "never reached run_finished: {seen:?}");
        }
    };
    let approve = async {
        tokio::task::yield_now().await;
        h.decide(&id, json!({"decision": "approve", "reason": "ok"}))
            .await
    };
    let ((seen, connections), (status, _)) = tokio::join!(follow, approve);
    assert_eq!(status, StatusCode::OK);
    assert!(connections > 1, "the slow follower was never dropped");
    let export = h.export(&id).await;
    let run_finished = export
        .iter()
        .position(|e| e["kind"] == "run_finished")
        .unwrap();
    let seqs: Vec<u64> = seen.iter().map(|e| e.0).collect();
    assert_eq!(seqs, (1..=run_finished as u64 + 1).collect::<Vec<_>>());
    let metrics = h.metrics().await;
    assert!(!metrics.contains("praxis_sse_dropped_total 0"), "{metrics}");
    h.stop().await;
}

/// A polled run's view is read from the ledger once per entry: asked again before its next
/// entry, it is the view kept at the last one (`praxis_run_views_reused_total` counts them),
/// and the next entry makes the next view new.
#[tokio::test]
async fn a_polled_run_this_server_drives_never_reads_its_ledger() {
    let h = Harness::start(|_| {}).await;
    let counter = |name: &'static str| {
        let h = &h;
        async move {
            let metrics = h.metrics().await;
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .unwrap_or_else(|| panic!("no {name} in {metrics}"))
                .parse::<u64>()
                .unwrap()
        }
    };
    let writ = h.writ(&approval_writ_spec());
    let id = h.create(write_script(), json!({"writ": writ})).await;
    h.wait_approval(&id).await;
    h.wait_status(&id, &["awaiting_approval"]).await;
    // Waiting for its approval: no entry comes, the view is the one kept.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, waiting) = h.get(&format!("/v1/runs/{id}")).await;
    let before = counter("praxis_run_views_reused_total").await;
    for _ in 0..3 {
        let (status, view) = h.get(&format!("/v1/runs/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(view, waiting);
    }
    assert_eq!(counter("praxis_run_views_reused_total").await, before + 3);
    let (status, _) = h
        .decide(&format!("{id}:w1"), json!({"decision": "approve"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let run_view = |view: Value| serde_json::from_value::<RunView>(view).expect("a run view");
    let (waiting, done) = (
        run_view(waiting),
        run_view(h.wait_status(&id, &["completed", "failed"]).await),
    );
    assert_eq!(done.status, "completed", "{done:?}");
    assert!(done.last_seq > waiting.last_seq, "{done:?}");
    // Every view of it while it ran was made from the entries this server saw durable.
    assert_eq!(counter("praxis_run_views_read_total").await, 0);
    // The same as its ledger says, once the run is no longer driven here.
    let from_ledger = loop {
        let (_, view) = h.get(&format!("/v1/runs/{id}")).await;
        let view = run_view(view);
        if view.phase.is_none() {
            break view;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut polled = done;
    polled.phase = None;
    polled.active_tool = None;
    assert_eq!(
        serde_json::to_value(&polled).unwrap(),
        serde_json::to_value(&from_ledger).unwrap()
    );
    h.stop().await;
}

/// Polling a live run waits for no thread of the blocking pool: with every one of them
/// taken (by slow ledger reads, say), a run this server drives is still answered from what
/// it saw become durable.
#[test]
fn a_live_run_is_answered_while_the_blocking_pool_is_taken() {
    BlockingPoolTaken::runtime().block_on(async {
        let h = Harness::start(|_| {}).await;
        let writ = h.writ(&approval_writ_spec());
        let id = h.create(write_script(), json!({"writ": writ})).await;
        h.wait_approval(&id).await;
        let waiting = h.wait_status(&id, &["awaiting_approval"]).await;
        let taken = BlockingPoolTaken::take().await;
        let polled = tokio::time::timeout(Duration::from_secs(5), h.get(&format!("/v1/runs/{id}")))
            .await
            .expect("a poll of a live run waited for the blocking pool");
        assert_eq!(polled.0, StatusCode::OK);
        assert_eq!(polled.1, waiting);
        taken.release().await;
        let (status, _) = h
            .decide(&format!("{id}:w1"), json!({"decision": "approve"}))
            .await;
        assert_eq!(status, StatusCode::OK);
        let done: RunView =
            serde_json::from_value(h.wait_status(&id, &["completed", "failed"]).await).unwrap();
        assert_eq!(done.status, "completed", "{done:?}");
        h.stop().await;
    });
}

/// Every thread of the blocking pool held until `release`.
struct BlockingPoolTaken {
    release: std::sync::mpsc::Sender<()>,
    blockers: Vec<tokio::task::JoinHandle<()>>,
}

impl BlockingPoolTaken {
    /// The blocking pool's size in [`BlockingPoolTaken::runtime`].
    const THREADS: usize = 2;

    /// A runtime whose blocking pool has [`BlockingPoolTaken::THREADS`] threads.
    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(Self::THREADS)
            .enable_all()
            .build()
            .unwrap()
    }

    /// Takes every thread of the blocking pool of a [`BlockingPoolTaken::runtime`].
    async fn take() -> BlockingPoolTaken {
        let threads = Self::THREADS;
        let (release, held) = std::sync::mpsc::channel::<()>();
        let held = Arc::new(std::sync::Mutex::new(held));
        let (taken_tx, mut taken) = tokio::sync::mpsc::unbounded_channel();
        let blockers: Vec<_> = (0..threads)
            .map(|_| {
                let (held, taken_tx) = (held.clone(), taken_tx.clone());
                tokio::task::spawn_blocking(move || {
                    taken_tx.send(()).unwrap();
                    // Each waits for the channel's end, one after the other.
                    let _ = held.lock().unwrap().recv();
                })
            })
            .collect();
        for _ in 0..threads {
            taken.recv().await.unwrap();
        }
        BlockingPoolTaken { release, blockers }
    }

    async fn release(self) {
        drop(self.release);
        for blocker in self.blockers {
            blocker.await.unwrap();
        }
    }
}

/// A run this server drove to its end is answered from the entries it saw become durable,
/// kept past the end: with every thread of the blocking pool taken, a poll of the run that
/// just ended still answers, and its view is the one its ledger gives (read by the next
/// server on the same data dir, which knows the run only from the ledger).
#[test]
fn a_run_that_just_ended_is_answered_from_memory_as_its_ledger_has_it() {
    BlockingPoolTaken::runtime().block_on(async {
        let h = Harness::start(|_| {}).await;
        let id = h.create(answer_script("all done"), json!({})).await;
        let path = format!("/v1/runs/{id}");
        // Until it is no longer driven here: no live phase.
        let ended = loop {
            let (status, view) = h.get(&path).await;
            assert_eq!(status, StatusCode::OK);
            if view["status"] == "completed" && view["phase"].is_null() {
                break view;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let taken = BlockingPoolTaken::take().await;
        let polled = tokio::time::timeout(Duration::from_secs(5), h.get(&path))
            .await
            .expect("a poll of a run that just ended waited for the blocking pool");
        assert_eq!(polled, (StatusCode::OK, ended.clone()));
        taken.release().await;
        let h = h.restart().await;
        assert_eq!(h.get(&path).await, (StatusCode::OK, ended));
        h.stop().await;
    });
}

#[tokio::test]
async fn approvals_over_http() {
    let h = Harness::start(|_| {}).await;
    let writ = h.writ(&approval_writ_spec());
    let id = h.create(write_script(), json!({"writ": writ})).await;
    let pending = h.wait_approval(&id).await;
    assert_eq!(pending["tool"], "fs_write");
    assert_eq!(pending["call_id"], "w1");
    assert_eq!(pending["arguments"]["path"], "out.txt");
    assert_eq!(pending["id"], format!("{id}:w1"));
    let view = h.wait_status(&id, &["awaiting_approval"]).await;
    assert_eq!(view["phase"], "awaiting_approval");
    assert_eq!(view["active_tool"], "fs_write");
    let (status, err) = h
        .decide(&format!("{id}:w1"), json!({"decision": "maybe"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["field"], "decision");
    let (status, answer) = h
        .decide(
            &format!("{id}:w1"),
            json!({"decision": "approve", "reason": "looks fine"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["by"], "api:default");
    let (status, _) = h
        .decide(&format!("{id}:w1"), json!({"decision": "deny"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "a decision is final");
    let view = h.wait_status(&id, &["completed", "failed"]).await;
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(
        std::fs::read_to_string(h.ws.path().join("out.txt")).unwrap(),
        "written\n"
    );
    let export = h.export(&id).await;
    let decided = export
        .iter()
        .find(|e| e["kind"] == "approval_decided")
        .unwrap();
    assert_eq!(decided["payload"]["approved"], true);
    assert_eq!(decided["payload"]["by"], "api:default");
    let (_, list) = h.get("/v1/approvals").await;
    assert_eq!(list["approvals"], json!([]));

    // Denied: the model sees the denial, nothing is written.
    std::fs::remove_file(h.ws.path().join("out.txt")).unwrap();
    let id = h.create(write_script(), json!({"writ": writ})).await;
    h.wait_approval(&id).await;
    let (status, _) = h
        .decide(&id, json!({"decision": "deny", "reason": "not today"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    h.wait_status(&id, &["completed", "failed"]).await;
    assert!(!h.ws.path().join("out.txt").exists());
    h.stop().await;
}

/// A run's end is durable (and seen) before its driver has torn its worker down: a cancel
/// in between is refused like any cancel of a finished run, never answered "cancelling".
/// Two threads, so the client's cancel can land while the driver is still tearing down
/// (without the check, most runs of this test hit that window at least once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_seen_ended_is_not_cancelled_while_its_driver_tears_down() {
    // As `praxis serve` does: each run's end is attested by a checkpoint after `run_finished`.
    let key = praxis_ledger::checkpoint::CheckpointKey::generate().unwrap();
    let h = Harness::start(|c| c.checkpoint_key = Some(Arc::new(key))).await;
    let first = h.create(write_script(), json!({})).await;
    let (entries, _) = h.feed(&first, None, None).await;
    let kinds: Vec<&str> = entries.iter().map(|(_, kind, _)| kind.as_str()).collect();
    assert_eq!(kinds[kinds.len() - 2..], ["run_finished", "checkpoint"]);
    for _ in 0..50 {
        let id = h.create(write_script(), json!({})).await;
        // The feed hands over `run_finished` as soon as it is durable; the cancel follows.
        let (seen, _) = h.feed(&id, None, Some(entries.len() - 1)).await;
        assert_eq!(seen.last().unwrap().1, "run_finished");
        let cancel = || async {
            let (status, answer) = h.post(&format!("/v1/runs/{id}/cancel"), json!({})).await;
            assert_eq!(status, StatusCode::CONFLICT, "{answer}");
            let error = answer["error"].as_str().unwrap();
            assert!(error.contains("status completed"), "{answer}");
        };
        cancel().await;
        // And once its end is attested (the checkpoint after `run_finished`).
        while !h
            .export(&id)
            .await
            .iter()
            .any(|e| e["kind"] == "checkpoint")
        {
            tokio::task::yield_now().await;
        }
        cancel().await;
    }
    h.stop().await;
}
