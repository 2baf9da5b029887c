//! Pooled workers and CPU priority: a worker started ahead of its run prepares at idle
//! priority and runs at the normal one once claimed. A binary of its own: the pool is one per
//! process, and other test files start pools of their own.

mod common;

use common::pooled_pid;
use praxis_tools::ToolLimits;
use praxis_tools::worker::WorkerClient;

/// Every thread of process `pid` and its scheduling policy.
fn policies(pid: u32) -> Vec<(i32, i32)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| t.file_name().to_str()?.parse::<i32>().ok())
        // SAFETY: reads a thread's policy.
        .map(|tid| (tid, unsafe { libc::sched_getscheduler(tid) }))
        .collect()
}

/// A pooled worker prepares at idle CPU priority, so it takes no CPU from the runs under way,
/// and the run that claims it gets it back at the normal priority, every thread of it.
/// Where this process could not bring it back (no CAP_SYS_NICE, RLIMIT_NICE too low), it
/// waits at the normal priority.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_workers_wait_at_idle_priority_and_run_at_the_normal_one() {
    let dir = tempfile::tempdir().unwrap();
    let command = common::own_worker_command(dir.path(), "idle-worker");
    praxis_tools::worker::keep_warm(command.clone(), 1);
    let pid = pooled_pid(&command, &[]).await;
    let waiting = if praxis_tools::worker::waits_at_idle_priority() {
        libc::SCHED_IDLE
    } else {
        libc::SCHED_OTHER
    };
    // The main thread: where it prepares (every thread it starts takes its policy).
    assert_eq!(
        // SAFETY: reads a process's policy.
        unsafe { libc::sched_getscheduler(pid as i32) },
        waiting,
        "a pooled worker waiting for its run"
    );
    let ws = tempfile::tempdir().unwrap();
    let worker = WorkerClient::new(
        command.clone(),
        ws.path().canonicalize().unwrap(),
        ToolLimits::default(),
    );
    worker.start().await.unwrap();
    assert_eq!(
        worker.pid(),
        Some(pid),
        "the run did not claim the pooled worker"
    );
    for (tid, policy) in policies(pid) {
        assert_eq!(
            policy,
            libc::SCHED_OTHER,
            "thread {tid} of a claimed worker"
        );
    }
    praxis_tools::worker::stop_warm();
}
