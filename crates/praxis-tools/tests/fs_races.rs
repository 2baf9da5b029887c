//! Finding 1 and 2 of the adversarial review: a second process keeps exchanging a workspace
//! directory `d` with a symlink to a directory outside (`renameat2(RENAME_EXCHANGE)` in a
//! loop) while the file tools run. Checking a path and then opening it again by path leaks
//! the outside files (grep, list_files, repo_map) and creates directories outside
//! (fs_write's parent creation). The tools must open everything relative to descriptors
//! beneath the workspace, so no swap, however timed, reaches outside.

use praxis_core::Observation;
use praxis_tools::{ExecContext, Registry, Workspace};
use serde_json::{Value, json};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// In the outside file's content: any output holding it is a leak.
const SECRET: &str = "TOPSECRET_7f3a";
/// The outside file's name: a listing that names it is a leak too.
const SECRET_NAME: &str = "secret.rs";
/// Swaps that must have happened while at least one tool call was in flight.
const SWAPS_IN_CALLS: usize = 400;
/// Calls of each kind that must have run.
const MIN_CALLS_EACH: usize = 1000;

fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    let a = CString::new(a.as_os_str().as_bytes()).unwrap();
    let b = CString::new(b.as_os_str().as_bytes()).unwrap();
    // SAFETY: two NUL-terminated paths; AT_FDCWD is ignored for absolute paths.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Exchanges `d` and `l` under `root` until `done`, counting the swaps made while a call was
/// in flight; leaves `d` a directory, as it started. Returns the number of swaps.
fn swap_until_done(
    root: &Path,
    tally: &Arc<Tally>,
    done: &Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    let (tally, done, root) = (tally.clone(), done.clone(), root.to_path_buf());
    std::thread::spawn(move || {
        let mut swaps = 0usize;
        while !done.load(Ordering::SeqCst) {
            exchange(&root.join("d"), &root.join("l")).unwrap();
            swaps += 1;
            if tally.in_flight.load(Ordering::SeqCst) > 0 {
                tally.swaps_in_calls.fetch_add(1, Ordering::SeqCst);
            }
        }
        if swaps % 2 == 1 {
            exchange(&root.join("d"), &root.join("l")).unwrap();
        }
        swaps
    })
}

fn everything_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            out.push(entry.path().display().to_string());
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

#[derive(Default)]
struct Tally {
    in_flight: AtomicUsize,
    swaps_in_calls: AtomicUsize,
    leaks: AtomicUsize,
    calls: [AtomicUsize; 6],
}

const CALLS: [(&str, &str); 6] = [
    ("grep", r#"{"pattern": ".", "path": "d"}"#),
    ("list_files", r#"{}"#),
    ("repo_map", r#"{}"#),
    ("fs_read", r#"{"path": "d/secret.rs"}"#),
    ("fs_write", r#"{"path": "d/x/y/z", "content": "w"}"#),
    (
        "fs_patch",
        r#"{"path": "d/secret.rs", "edits": [{"search": "TOPSECRET_7f3a", "replace": "PWNED"}]}"#,
    ),
];

fn leaked(tool: &str, o: &Observation) -> bool {
    let text = &o.output;
    // The fs_ tools name the requested path in their errors; only content counts (and the
    // outside file must still hold the secret at the end: fs_patch did not rewrite it).
    text.contains(SECRET) || (!tool.starts_with("fs_") && text.contains(SECRET_NAME))
}

#[test]
fn swapping_a_directory_for_an_outside_link_leaks_nothing_and_creates_nothing_outside() {
    let ws_dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join(SECRET_NAME),
        format!("fn {SECRET}() {{}}\n"),
    )
    .unwrap();
    let before_outside = everything_under(outside.path());
    let root = ws_dir.path().canonicalize().unwrap();
    std::fs::create_dir(root.join("d")).unwrap();
    std::fs::write(root.join("d/inside.rs"), "fn harmless() {}\n").unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("l")).unwrap();

    // Control: the swap works on this host, and without it the outside is reachable
    // through the link only by name (the tools refuse it).
    exchange(&root.join("d"), &root.join("l")).expect("renameat2(RENAME_EXCHANGE)");
    assert!(root.join("d").symlink_metadata().unwrap().is_symlink());
    exchange(&root.join("d"), &root.join("l")).unwrap();
    assert!(root.join("d").symlink_metadata().unwrap().is_dir());

    let ctx = Arc::new(ExecContext::new(Workspace::new(&root).unwrap()));
    let registry = Arc::new(Registry::builtin());
    let tally = Arc::new(Tally::default());
    let done = Arc::new(AtomicBool::new(false));

    let swapper = swap_until_done(&root, &tally, &done);

    let victims: Vec<_> = (0..3)
        .map(|v| {
            let (ctx, registry, tally, done) =
                (ctx.clone(), registry.clone(), tally.clone(), done.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let mut leaks = Vec::new();
                let mut i = v;
                while !done.load(Ordering::SeqCst) {
                    let k = i % CALLS.len();
                    i += 1;
                    let (tool, args) = CALLS[k];
                    let args: Value = serde_json::from_str(args).unwrap();
                    tally.in_flight.fetch_add(1, Ordering::SeqCst);
                    let o = rt.block_on(registry.execute(&ctx, tool, args));
                    tally.in_flight.fetch_sub(1, Ordering::SeqCst);
                    tally.calls[k].fetch_add(1, Ordering::SeqCst);
                    if leaked(tool, &o) {
                        tally.leaks.fetch_add(1, Ordering::SeqCst);
                        leaks.push(format!("{tool}: {}", o.output));
                    }
                }
                leaks
            })
        })
        .collect();

    // Runs until enough swaps landed inside tool calls and every tool ran often enough
    // (no clock: the amount of work decides).
    loop {
        let swaps = tally.swaps_in_calls.load(Ordering::SeqCst);
        let fewest = tally
            .calls
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .min()
            .unwrap();
        if swaps >= SWAPS_IN_CALLS && fewest >= MIN_CALLS_EACH {
            break;
        }
        std::thread::yield_now();
    }
    done.store(true, Ordering::SeqCst);
    let mut leaks = Vec::new();
    for v in victims {
        leaks.extend(v.join().unwrap());
    }
    let swaps = swapper.join().unwrap();
    let calls: Vec<usize> = tally
        .calls
        .iter()
        .map(|c| c.load(Ordering::SeqCst))
        .collect();
    let created_outside: Vec<String> = everything_under(outside.path())
        .into_iter()
        .filter(|p| !before_outside.contains(p))
        .collect();
    eprintln!(
        "{swaps} swaps, {} inside calls; calls {calls:?}; {} leaks; {} created outside",
        tally.swaps_in_calls.load(Ordering::SeqCst),
        leaks.len(),
        created_outside.len()
    );
    assert!(
        leaks.is_empty(),
        "{} outputs leaked the outside directory, e.g. {:?}",
        leaks.len(),
        leaks.iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        created_outside.is_empty(),
        "created outside the workspace: {created_outside:?}"
    );
    assert_eq!(
        std::fs::read_to_string(outside.path().join(SECRET_NAME)).unwrap(),
        format!("fn {SECRET}() {{}}\n")
    );
}

/// The tools work on the same tree when nothing swaps (so the race test's calls do real
/// work rather than failing for another reason).
#[tokio::test]
async fn control_without_swaps_the_calls_succeed_inside() {
    let ws_dir = tempfile::tempdir().unwrap();
    let root = ws_dir.path();
    std::fs::create_dir(root.join("d")).unwrap();
    std::fs::write(root.join("d/inside.rs"), "fn harmless() {}\n").unwrap();
    let ctx = ExecContext::new(Workspace::new(root).unwrap());
    let registry = Registry::builtin();
    let run = |tool: &'static str, args: Value| registry.execute(&ctx, tool, args);
    let o = run("grep", json!({"pattern": ".", "path": "d"})).await;
    assert_eq!(o.output, "d/inside.rs:1:fn harmless() {}\n");
    let o = run("list_files", json!({})).await;
    assert_eq!(o.output, "d/inside.rs\n");
    let o = run("repo_map", json!({})).await;
    assert!(o.output.contains("fn harmless"), "{}", o.output);
    let o = run("fs_write", json!({"path": "d/x/y/z", "content": "w"})).await;
    assert_eq!(o.output, "wrote 1 bytes to d/x/y/z (created)");
    let o = run("fs_read", json!({"path": "d/x/y/z"})).await;
    assert_eq!(o.output, "w");
}

/// The workspace tracker (start-state capture and change detection) is a directory walk
/// plus reads too: under the same swapping, no blob it hands out may hold outside content.
#[test]
fn the_tracker_never_reads_through_a_swapped_directory() {
    use praxis_tools::{CaptureLimits, WorkspaceTracker};
    let ws_dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join(SECRET_NAME), SECRET).unwrap();
    let root = ws_dir.path().canonicalize().unwrap();
    std::fs::create_dir(root.join("d")).unwrap();
    // The same name inside, so a check made while `d` is the real directory passes.
    std::fs::write(root.join("d").join(SECRET_NAME), "harmless").unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("l")).unwrap();
    let ws = Workspace::new(&root).unwrap();

    let tally = Arc::new(Tally::default());
    let done = Arc::new(AtomicBool::new(false));
    let swapper = swap_until_done(&root, &tally, &done);
    let hint = [format!("d/{SECRET_NAME}")];
    let mut leaks = 0usize;
    let mut rounds = 0usize;
    while tally.swaps_in_calls.load(Ordering::SeqCst) < SWAPS_IN_CALLS || rounds < 300 {
        tally.in_flight.fetch_add(1, Ordering::SeqCst);
        let (mut tracker, _manifest, mut blobs) =
            WorkspaceTracker::capture(&ws, CaptureLimits::default());
        blobs.extend(tracker.refresh(&hint).1);
        tally.in_flight.fetch_sub(1, Ordering::SeqCst);
        leaks += blobs
            .iter()
            .filter(|b| String::from_utf8_lossy(b).contains(SECRET))
            .count();
        rounds += 1;
    }
    done.store(true, Ordering::SeqCst);
    swapper.join().unwrap();
    eprintln!(
        "tracker: {rounds} rounds, {} swaps inside them, {leaks} leaks",
        tally.swaps_in_calls.load(Ordering::SeqCst)
    );
    assert_eq!(
        leaks, 0,
        "the tracker read outside content through a swapped directory"
    );
}

/// The tracker's scan of the files the ignore rules hide (`scan_ignored`): it walks by
/// descriptors, so a directory swapped for a link to the outside is never listed through
/// (before, a path walk listed and stat'ed the outside files as if they were inside).
#[test]
fn the_tracker_scan_of_ignored_files_never_lists_through_a_swapped_directory() {
    use praxis_tools::{CaptureLimits, WorkspaceTracker};
    const OUTSIDE_ONLY: &str = "outside_only.rs";
    let ws_dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join(OUTSIDE_ONLY), SECRET).unwrap();
    let root = ws_dir.path().canonicalize().unwrap();
    std::fs::create_dir(root.join("d")).unwrap();
    // `d` is ignored, so only the scan of ignored files looks inside it; a fresh file there
    // shows that the scan does.
    std::fs::write(root.join(".gitignore"), "d/\nl\n").unwrap();
    std::fs::write(root.join("d").join("inside.rs"), "fresh").unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("l")).unwrap();
    let ws = Workspace::new(&root).unwrap();

    let tally = Arc::new(Tally::default());
    let done = Arc::new(AtomicBool::new(false));
    let swapper = swap_until_done(&root, &tally, &done);
    let mut leaks = 0usize;
    let mut seen_inside = 0usize;
    let mut rounds = 0usize;
    while tally.swaps_in_calls.load(Ordering::SeqCst) < SWAPS_IN_CALLS || rounds < 300 {
        // Both files stay freshly changed (the scan looks at files changed since just
        // before it started); the inside one through the swapped-back name, when it is.
        std::fs::write(outside.path().join(OUTSIDE_ONLY), SECRET).unwrap();
        let _ = std::fs::write(root.join("d").join("inside.rs"), "fresh");
        tally.in_flight.fetch_add(1, Ordering::SeqCst);
        let (tracker, _manifest, _blobs) = WorkspaceTracker::capture(&ws, CaptureLimits::default());
        tally.in_flight.fetch_sub(1, Ordering::SeqCst);
        let listed = tracker.state().recent_ignored;
        leaks += listed.keys().filter(|k| k.contains(OUTSIDE_ONLY)).count();
        seen_inside += usize::from(listed.contains_key("d/inside.rs"));
        rounds += 1;
    }
    done.store(true, Ordering::SeqCst);
    swapper.join().unwrap();
    eprintln!(
        "tracker scan: {rounds} rounds, {} swaps inside them, {seen_inside} saw the inside file, {leaks} leaks",
        tally.swaps_in_calls.load(Ordering::SeqCst)
    );
    assert!(seen_inside > 0, "the scan never looked inside `d`");
    assert_eq!(
        leaks, 0,
        "the scan listed outside files through a swapped directory"
    );
}
