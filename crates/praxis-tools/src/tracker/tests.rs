use super::*;
use serde_json::json;
use std::fs;

// The runtime moves the tracker into `spawn_blocking`.
const _: fn() = || {
    fn is_send<T: Send + 'static>() {}
    is_send::<WorkspaceTracker>();
};

fn fixture() -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("src")).unwrap();
    fs::create_dir_all(root.join("target")).unwrap();
    fs::create_dir_all(root.join(".git")).unwrap();
    fs::write(root.join(".gitignore"), "target/\n").unwrap();
    fs::write(root.join("src/a.txt"), "alpha").unwrap();
    fs::write(root.join("src/b.txt"), "alpha").unwrap();
    fs::write(root.join("target/out.bin"), "build output").unwrap();
    fs::write(root.join(".git/HEAD"), "ref").unwrap();
    let ws = Workspace::new(root).unwrap();
    (dir, ws)
}

#[test]
fn capture_builds_manifest_and_deduplicated_blobs() {
    let (_d, ws) = fixture();
    let (tracker, manifest, blobs) = WorkspaceTracker::capture(&ws, CaptureLimits::default());
    let alpha = blob_id(b"alpha");
    assert_eq!(
        serde_json::to_value(&manifest).unwrap(),
        json!({
            ".gitignore": {"blob": blob_id(b"target/\n"), "size": 8},
            "src/a.txt": {"blob": alpha, "size": 5},
            "src/b.txt": {"blob": alpha, "size": 5},
        })
    );
    let mut blobs = blobs;
    blobs.sort();
    assert_eq!(blobs, vec![b"alpha".to_vec(), b"target/\n".to_vec()]);
    assert!(!tracker.truncated());
}

#[test]
fn capture_skips_files_over_the_limits() {
    let (dir, ws) = fixture();
    fs::write(dir.path().join("big.txt"), "0123456789").unwrap();
    let limits = CaptureLimits {
        max_file_bytes: 9,
        ..CaptureLimits::default()
    };
    let (_t, manifest, _b) = WorkspaceTracker::capture(&ws, limits);
    assert_eq!(
        manifest["big.txt"],
        ManifestFile {
            blob: None,
            size: 10,
            skipped: Some("larger than max_file_bytes".into())
        }
    );
    let limits = CaptureLimits {
        max_files: 2,
        ..CaptureLimits::default()
    };
    let (t, manifest, _b) = WorkspaceTracker::capture(&ws, limits);
    assert_eq!(manifest.len(), 2);
    assert!(t.truncated());
}

#[test]
fn refresh_reports_modified_created_and_deleted_files() {
    let (dir, ws) = fixture();
    let root = dir.path();
    let (mut tracker, _m, _b) = WorkspaceTracker::capture(&ws, CaptureLimits::default());
    assert_eq!(tracker.refresh(&[]), (vec![], vec![]));

    fs::write(root.join("src/a.txt"), "changed").unwrap();
    fs::write(root.join("src/new.txt"), "alpha").unwrap();
    fs::remove_file(root.join("src/b.txt")).unwrap();
    let (changes, blobs) = tracker.refresh(&[]);
    let alpha = blob_id(b"alpha");
    assert_eq!(
        changes,
        vec![
            FileChange {
                path: "src/a.txt".into(),
                before: Some(alpha.clone()),
                after: Some(blob_id(b"changed")),
                size: Some(7),
            },
            FileChange {
                path: "src/b.txt".into(),
                before: Some(alpha.clone()),
                after: None,
                size: None,
            },
            FileChange {
                path: "src/new.txt".into(),
                before: None,
                after: Some(alpha),
                size: Some(5),
            },
        ]
    );
    // "alpha" was handed out by the capture already: only the new content comes back.
    assert_eq!(blobs, vec![b"changed".to_vec()]);
    assert_eq!(tracker.refresh(&[]), (vec![], vec![]));
}

#[test]
fn ignored_files_a_call_creates_are_tracked() {
    let (dir, ws) = fixture();
    let (mut tracker, _m, _b) = WorkspaceTracker::capture(&ws, CaptureLimits::default());
    fs::write(dir.path().join("target/gen.rs"), "generated").unwrap();
    // Ignored, and still found without a hint: a call created it after the capture.
    let (changes, blobs) = tracker.refresh(&[]);
    assert_eq!(
        changes,
        vec![FileChange {
            path: "target/gen.rs".into(),
            before: None,
            after: Some(blob_id(b"generated")),
            size: Some(9),
        }]
    );
    assert_eq!(blobs, vec![b"generated".to_vec()]);
    // Once tracked, it stays tracked without a hint.
    fs::write(dir.path().join("target/gen.rs"), "regenerated").unwrap();
    assert_eq!(tracker.refresh(&[]).0.len(), 1);
    fs::remove_file(dir.path().join("target/gen.rs")).unwrap();
    assert_eq!(
        tracker.refresh(&[]).0,
        vec![FileChange {
            path: "target/gen.rs".into(),
            before: Some(blob_id(b"regenerated")),
            after: None,
            size: None,
        }]
    );
    // Hints outside the workspace are ignored.
    assert_eq!(
        tracker
            .refresh(&["../x".to_string(), "/etc/passwd".to_string()])
            .0,
        vec![]
    );
}

#[test]
fn an_ignored_file_whose_times_a_call_sets_back_is_still_found() {
    let (dir, ws) = fixture();
    let (mut tracker, _m, _b) = WorkspaceTracker::capture(&ws, CaptureLimits::default());
    let path = dir.path().join("target/old.rs");
    fs::write(&path, "hidden").unwrap();
    // Access and modification times set to 1970: the change time cannot be set back.
    let times = fs::FileTimes::new()
        .set_accessed(std::time::SystemTime::UNIX_EPOCH)
        .set_modified(std::time::SystemTime::UNIX_EPOCH);
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_times(times)
        .unwrap();
    assert_eq!(
        tracker.refresh(&[]).0,
        vec![FileChange {
            path: "target/old.rs".into(),
            before: None,
            after: Some(blob_id(b"hidden")),
            size: Some(6),
        }]
    );
}

#[test]
fn ignored_files_that_were_there_already_are_not_reported() {
    let (dir, ws) = fixture();
    // `target/out.bin` (ignored) was made just before the capture: within the ctime
    // slack, yet not a change.
    let (mut tracker, _m, _b) = WorkspaceTracker::capture(&ws, CaptureLimits::default());
    assert_eq!(tracker.refresh(&[]), (vec![], vec![]));
    fs::write(dir.path().join("target/out.bin"), "rebuilt").unwrap();
    assert_eq!(
        tracker.refresh(&[]).0,
        vec![FileChange {
            path: "target/out.bin".into(),
            before: None,
            after: Some(blob_id(b"rebuilt")),
            size: Some(7),
        }]
    );
}

/// Finding 9: 4 shell calls grew the ledger to 993 MB. Blobs stop at the run's cap;
/// changes beyond it are still recorded, by hash and size.
#[test]
fn the_run_blob_cap_holds_and_changes_beyond_it_are_recorded_by_hash_and_size() {
    let (dir, ws) = fixture();
    let limits = CaptureLimits {
        max_run_blob_bytes: 100,
        ..CaptureLimits::default()
    };
    let (mut tracker, _m, blobs) = WorkspaceTracker::capture(&ws, limits);
    let mut stored: u64 = blobs.iter().map(|b| b.len() as u64).sum();
    let mut recorded = Vec::new();
    for call in 0..4 {
        for n in 0..3 {
            let content = format!("{call}-{n}-{}", "x".repeat(30));
            fs::write(dir.path().join(format!("target/f{call}{n}")), content).unwrap();
        }
        let (changes, blobs) = tracker.refresh(&[]);
        stored += blobs.iter().map(|b| b.len() as u64).sum::<u64>();
        recorded.extend(changes);
    }
    assert!(
        stored <= 100,
        "{stored} blob bytes stored over a cap of 100"
    );
    assert_eq!(recorded.len(), 12, "{recorded:?}");
    assert!(
        recorded
            .iter()
            .all(|c| c.after.is_some() && c.size == Some(34)),
        "{recorded:?}"
    );
}

#[test]
fn touched_but_unchanged_file_is_not_reported() {
    let (dir, ws) = fixture();
    let path = dir.path().join("src/a.txt");
    let (mut tracker, _m, _b) = WorkspaceTracker::capture(&ws, CaptureLimits::default());
    let file = fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(std::time::SystemTime::UNIX_EPOCH)
        .unwrap();
    drop(file);
    // Same bytes rewritten: the stat changes, the content does not.
    fs::write(dir.path().join("src/b.txt"), "alpha").unwrap();
    assert_eq!(tracker.refresh(&[]), (vec![], vec![]));
}

#[test]
fn file_growing_over_the_limit_leaves_the_tracked_world() {
    let (dir, ws) = fixture();
    let limits = CaptureLimits {
        max_file_bytes: 8,
        ..CaptureLimits::default()
    };
    let (mut tracker, _m, _b) = WorkspaceTracker::capture(&ws, limits);
    fs::write(dir.path().join("src/a.txt"), "much longer now").unwrap();
    assert_eq!(
        tracker.refresh(&[]).0,
        vec![FileChange {
            path: "src/a.txt".into(),
            before: Some(blob_id(b"alpha")),
            after: None,
            size: None,
        }]
    );
    assert_eq!(tracker.refresh(&[]).0, vec![]);
}

#[test]
fn symlinks_are_not_tracked() {
    let (dir, ws) = fixture();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), "secret").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("dirlink")).unwrap();
    let (mut tracker, manifest, _b) = WorkspaceTracker::capture(&ws, CaptureLimits::default());
    assert!(!manifest.contains_key("link"));
    let hints = ["link".to_string(), "dirlink/secret".to_string()];
    assert_eq!(tracker.refresh(&hints), (vec![], vec![]));
}
