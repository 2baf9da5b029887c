//! The cgroups Praxis processes that died left behind (a worker killed mid-command) are
//! swept before a sandbox starts commands: by a pooled worker while it waits for its run
//! ([`praxis_sandbox::prepare_ahead`]), else by each sandbox as it is made. Its own test
//! binary: what was made ahead belongs to the process.

mod common;

use common::require_sandbox;
use praxis_sandbox::{Sandbox, SandboxPolicy, prepare_ahead, probe};

#[test]
fn stale_cgroups_are_swept_ahead_by_a_pooled_worker_else_by_each_sandbox() {
    if !require_sandbox() {
        return;
    }
    let base = probe()
        .pids_cgroup
        .expect("a host with every sandbox layer has the pids cgroup");
    let dead = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    // Named as a sandbox names its commands' cgroups: for owner `dead`, now gone.
    let stale = |n: u32| base.join(format!("praxis-{dead}-sweep-test-{n}"));
    std::fs::create_dir(stale(1)).unwrap();
    prepare_ahead();
    assert!(!stale(1).exists(), "swept while a pooled worker waits");

    // The next sandbox takes that sweep; the one after sweeps for itself.
    std::fs::create_dir(stale(2)).unwrap();
    let ws = tempfile::tempdir().unwrap();
    let _first = Sandbox::new(SandboxPolicy::new(ws.path())).unwrap();
    assert!(
        stale(2).exists(),
        "the first sandbox took the sweep made ahead"
    );
    let _second = Sandbox::new(SandboxPolicy::new(ws.path())).unwrap();
    assert!(
        !stale(2).exists(),
        "a sandbox with no sweep made ahead sweeps"
    );
}
