//! A sandbox made with the parts a pooled worker prepares before its run is known
//! ([`praxis_sandbox::prepare_ahead`]): only the parts that fit the run's policy are taken,
//! and the confinement is the same as with parts made for the run; the cgroups dead
//! processes left are swept then too, not on the run's way. Its own test binary:
//! the parts made ahead belong to the process.

mod common;

use common::{require_sandbox, run};
use praxis_sandbox::{Sandbox, SandboxPolicy, made_ahead, prepare_ahead, probe};

#[test]
fn a_sandbox_takes_only_the_parts_made_ahead_that_fit_its_policy_and_confines_the_same() {
    if !require_sandbox() {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "s3cret").unwrap();
    // Cgroups that a dead Praxis process left (named as a sandbox names its commands' for
    // owner `dead`, now gone) are swept ahead too.
    let base = probe()
        .pids_cgroup
        .expect("a host with every sandbox layer has the pids cgroup");
    let dead = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    let stale = |n: u32| base.join(format!("praxis-{dead}-sweep-test-{n}"));
    std::fs::create_dir(stale(1)).unwrap();
    prepare_ahead();
    assert!(made_ahead().is_empty(), "nothing is taken before a sandbox");
    assert!(!stale(1).exists(), "swept while a pooled worker waits");
    std::fs::create_dir(stale(2)).unwrap();

    // Network allowed: neither the empty network namespace nor the commands' ruleset (which
    // denies TCP) fits. The sweep made ahead is taken: this sandbox does not sweep again.
    let mut open = SandboxPolicy::new(ws.path());
    open.allow_network = true;
    let _open = Sandbox::new(open).unwrap();
    assert!(made_ahead().is_empty(), "{:?}", made_ahead());
    assert!(
        stale(2).exists(),
        "the first sandbox took the sweep made ahead"
    );

    // An extra grant: the ruleset made ahead holds other grants; the namespace fits. With
    // no sweep made ahead left, this sandbox sweeps.
    let extra = tempfile::tempdir().unwrap();
    let mut wider = SandboxPolicy::new(ws.path());
    wider.read_paths.push(extra.path().to_path_buf());
    let _wider = Sandbox::new(wider).unwrap();
    assert_eq!(made_ahead(), ["network_namespace"]);
    assert!(
        !stale(2).exists(),
        "a sandbox with no sweep made ahead sweeps"
    );

    // The default policy takes the commands' ruleset, completed with the run's workspace
    // and private home, and confines as before.
    let sandbox = Sandbox::new(SandboxPolicy::new(ws.path())).unwrap();
    assert_eq!(made_ahead(), ["landlock", "network_namespace"]);
    assert!(sandbox.report().layer("landlock").is_some_and(|l| l.active));
    let script = format!(
        "echo inside > f.txt && cat f.txt; echo home > $HOME/h && echo HOME-OK; \
         cat /etc/hostname >/dev/null && echo etc-ok; cat /etc/shadow 2>/dev/null && echo SHADOW-READ; \
         cat {o}/secret 2>/dev/null && echo OUT-READ; echo x > {o}/new 2>/dev/null && echo OUT-WRITE; true",
        o = outside.path().display()
    );
    let (code, out, err) = run(&sandbox, &script, ws.path());
    assert_eq!(code, 0, "{out}{err}");
    for expected in ["inside", "HOME-OK", "etc-ok"] {
        assert!(out.contains(expected), "{expected}: {out}{err}");
    }
    for refused in ["SHADOW-READ", "OUT-READ", "OUT-WRITE"] {
        assert!(!out.contains(refused), "{refused}: {out}");
    }

    // The worker's own ruleset (on a thread of its own: Landlock binds the calling thread).
    let (workspace, secret) = (ws.path().join("f.txt"), outside.path().join("secret"));
    let confined = std::thread::spawn(move || {
        let layer = sandbox.confine_current_process().unwrap();
        let inside = std::fs::read_to_string(&workspace).is_ok();
        let outside = std::fs::read_to_string(&secret).is_ok();
        (layer, inside, outside)
    })
    .join()
    .unwrap();
    let (layer, inside, outside_read) = confined;
    assert!(layer.active, "{layer:?}");
    assert_eq!(
        made_ahead(),
        ["landlock", "network_namespace", "worker_landlock"]
    );
    assert!(inside, "the workspace stays readable");
    assert!(!outside_read, "a file outside the grants is not readable");

    // The paths resolved ahead give the grants and the mount plan that resolving them for
    // the run gives.
    prepare_ahead();
    let early = Sandbox::new(SandboxPolicy::new(ws.path())).unwrap();
    let late = Sandbox::new(SandboxPolicy::new(ws.path())).unwrap();
    for layer in ["landlock", "mount_namespace"] {
        let detail = |s: &Sandbox| {
            s.report()
                .layer(layer)
                .map(|l| (l.active, l.detail.clone()))
        };
        assert!(detail(&early).is_some_and(|(active, _)| active), "{layer}");
        assert_eq!(detail(&early), detail(&late), "{layer}");
    }
    assert_eq!(early.report().dropped_grants, late.report().dropped_grants);
}
