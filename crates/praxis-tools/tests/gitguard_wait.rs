//! A tool call waits for the git guard's last scan boundary only when that scan found a git
//! context to judge by change time. Its own test binary: the boundary belongs to the process,
//! and no other test here scans.

use praxis_tools::Workspace;
use praxis_tools::gitguard::{GitGuardSettings, changes_may_start, sweep};
use std::time::Duration;

/// Whether a tool call starting now would start at once (no boundary still ahead): the
/// future is polled once, no time is measured.
async fn starts_at_once() -> bool {
    tokio::time::timeout(Duration::ZERO, changes_may_start())
        .await
        .is_ok()
}

#[tokio::test]
async fn a_scan_without_git_contexts_makes_no_call_wait_and_misses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("readme.md"), "hello").unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    let ws = Workspace::new(dir.path()).unwrap();
    let settings = GitGuardSettings::default();
    // The run's start: nothing to judge by time, so the first call waits for nothing.
    let (start, removed) = sweep(&ws, &settings, None);
    assert!(removed.is_empty());
    assert!(
        starts_at_once().await,
        "a call waits after a scan that found no git context"
    );
    // A call that plants a git directory right away: the next scan still strips it (it is
    // new at its path, whatever its times).
    let git = dir.path().join("src/.git");
    std::fs::create_dir_all(git.join("hooks")).unwrap();
    std::fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::write(git.join("config"), "[core]\n\tfsmonitor = ./x\n").unwrap();
    std::fs::write(git.join("hooks/pre-commit"), "#!/bin/sh\n").unwrap();
    let (after, removed) = sweep(&ws, &settings, Some(&start));
    assert_eq!(removed, ["src/.git/config", "src/.git/hooks"]);
    // Now a context is known, and judged by time at the next scan: calls wait for this
    // scan's boundary again (then start once it has passed).
    assert!(after.known.contains_key("src/.git"));
    changes_may_start().await;
    assert!(starts_at_once().await);
}
