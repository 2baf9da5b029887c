//! Content-addressed tracking of the workspace, so the world at any point of a run can be
//! rebuilt from the ledger: a manifest of every file's blob at the start, then the changed
//! files (with their new blobs) after each write or exec call.
//!
//! The tracked world is the set of regular files (not symlinks) the walk sees (the same
//! ignore rules as `list_files`, `.git/` skipped), plus files named by hints, within the
//! capture limits. A file over the limits is outside the tracked world: it is listed in the
//! manifest as skipped, and a tracked file that grows over the limits is reported as gone
//! (`after: None`), like a deletion.

use crate::Workspace;
use praxis_core::record::{Manifest, ManifestFile};
use praxis_core::{FileChange, blob_id};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[derive(Clone, Debug)]
pub struct CaptureLimits {
    /// Files larger than this are not captured.
    pub max_file_bytes: u64,
    /// Bytes read at most by one capture or refresh; files beyond it are not captured.
    pub max_total_bytes: u64,
    /// Files tracked at most; the walk stops beyond it.
    pub max_files: usize,
}

impl Default for CaptureLimits {
    fn default() -> Self {
        CaptureLimits {
            max_file_bytes: 4 * 1024 * 1024,
            max_total_bytes: 256 * 1024 * 1024,
            max_files: 20_000,
        }
    }
}

/// What is known of one file. `blob` is None when the file was over the limits.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileState {
    size: u64,
    mtime_ns: i128,
    /// ctime and inode too: a tool can restore an mtime, but not a ctime.
    ctime_ns: i128,
    ino: u64,
    blob: Option<String>,
}

impl FileState {
    fn stat_matches(&self, meta: &std::fs::Metadata) -> bool {
        let (mtime, ctime) = times(meta);
        self.size == meta.len()
            && self.mtime_ns == mtime
            && self.ctime_ns == ctime
            && self.ino == meta.ino()
    }
}

fn times(meta: &std::fs::Metadata) -> (i128, i128) {
    let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
    (
        ns(meta.mtime(), meta.mtime_nsec()),
        ns(meta.ctime(), meta.ctime_nsec()),
    )
}

pub struct WorkspaceTracker {
    ws: Workspace,
    limits: CaptureLimits,
    files: BTreeMap<String, FileState>,
    /// Blob ids already handed out, so each blob is returned once.
    known_blobs: HashSet<String>,
    /// Whether the last walk stopped at `max_files`.
    truncated: bool,
}

/// Why a file was not captured.
enum Skip {
    TooLarge,
    OverTotal,
    Unreadable,
}

impl Skip {
    fn reason(&self) -> &'static str {
        match self {
            Skip::TooLarge => "larger than max_file_bytes",
            Skip::OverTotal => "over max_total_bytes for this capture",
            Skip::Unreadable => "could not be read",
        }
    }
}

impl WorkspaceTracker {
    /// Walks and reads the whole workspace. Returns the tracker, the manifest
    /// `{ "rel/path": {"blob": ID, "size": N} | {"size": N, "skipped": WHY}, ... }` and the
    /// distinct blobs.
    pub fn capture(ws: &Workspace, limits: CaptureLimits) -> (Self, Manifest, Vec<Vec<u8>>) {
        let mut tracker = WorkspaceTracker {
            ws: ws.clone(),
            limits,
            files: BTreeMap::new(),
            known_blobs: HashSet::new(),
            truncated: false,
        };
        let mut manifest = Manifest::new();
        let mut blobs = Vec::new();
        let mut budget = tracker.limits.max_total_bytes;
        for rel in tracker.walk() {
            let abs = tracker.ws.root().join(&rel);
            let Ok(meta) = abs.symlink_metadata() else {
                continue; // vanished during the walk
            };
            match tracker.read_state(&abs, &meta, &mut budget) {
                Ok((state, content)) => {
                    let blob = state.blob.clone().unwrap_or_default();
                    manifest.insert(
                        rel.clone(),
                        ManifestFile {
                            blob: Some(blob.clone()),
                            size: state.size,
                            skipped: None,
                        },
                    );
                    if let Some(bytes) = content
                        && tracker.known_blobs.insert(blob)
                    {
                        blobs.push(bytes);
                    }
                    tracker.files.insert(rel, state);
                }
                Err((state, skip)) => {
                    manifest.insert(
                        rel.clone(),
                        ManifestFile {
                            blob: None,
                            size: state.size,
                            skipped: Some(skip.reason().to_string()),
                        },
                    );
                    tracker.files.insert(rel, state);
                }
            }
        }
        (tracker, manifest, blobs)
    }

    /// Whether the last walk stopped at `max_files` (files beyond it are not tracked).
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Re-walks (stat only) plus `hint_paths` (workspace-relative; checked even if ignored)
    /// and every already tracked path; re-reads files whose stat changed and reports those
    /// whose content changed, sorted by path, with the blobs not handed out before.
    pub fn refresh(&mut self, hint_paths: &[String]) -> (Vec<FileChange>, Vec<Vec<u8>>) {
        let walked: HashSet<String> = self.walk().into_iter().collect();
        let mut candidates: BTreeSet<String> = walked.iter().cloned().collect();
        for hint in hint_paths {
            if let Ok(rel) = self.ws.normalize(hint)
                && rel != "."
            {
                candidates.insert(rel);
            }
        }
        // Tracked paths the walk no longer lists (ignored, or deleted) are checked directly.
        candidates.extend(self.files.keys().cloned());

        let mut changes = Vec::new();
        let mut blobs = Vec::new();
        let mut budget = self.limits.max_total_bytes;
        for rel in candidates {
            let previous = self.files.get(&rel);
            let before = previous.and_then(|s| s.blob.clone());
            let meta = self.regular_file(&rel, walked.contains(&rel));
            let Some(meta) = meta else {
                if self.files.remove(&rel).is_some() && before.is_some() {
                    changes.push(FileChange {
                        path: rel,
                        before,
                        after: None,
                        size: None,
                    });
                }
                continue;
            };
            if previous.is_some_and(|s| s.stat_matches(&meta)) {
                continue;
            }
            if previous.is_none() && self.files.len() >= self.limits.max_files {
                self.truncated = true;
                continue;
            }
            let abs = self.ws.root().join(&rel);
            let (state, content) = match self.read_state(&abs, &meta, &mut budget) {
                Ok(read) => read,
                Err((state, _)) => (state, None),
            };
            let after = state.blob.clone();
            self.files.insert(rel.clone(), state);
            if before == after {
                continue; // touched, or still over the limits: no content change
            }
            if let (Some(id), Some(bytes)) = (&after, content)
                && self.known_blobs.insert(id.clone())
            {
                blobs.push(bytes);
            }
            let size = after.as_ref().map(|_| meta.len());
            changes.push(FileChange {
                path: rel,
                before,
                after,
                size,
            });
        }
        (changes, blobs)
    }

    /// The metadata of `rel` if it is a regular file reached without symlinks inside the
    /// workspace (the tracker never follows links, like the walk). `walked`: the walk found
    /// it, so no directory on the way is a symlink.
    fn regular_file(&self, rel: &str, walked: bool) -> Option<std::fs::Metadata> {
        let abs = self.ws.root().join(rel);
        let meta = abs.symlink_metadata().ok()?;
        if !meta.is_file() {
            return None;
        }
        if walked {
            return Some(meta);
        }
        // An intermediate symlink would put the real file elsewhere: refuse those.
        let real = self.ws.resolve(rel).ok()?;
        (real == abs).then_some(meta)
    }

    /// Workspace-relative paths of the regular files the walk sees, up to `max_files`.
    fn walk(&mut self) -> Vec<String> {
        let files = self.ws.files_under(self.ws.root());
        self.truncated = files.len() > self.limits.max_files;
        files
            .iter()
            .take(self.limits.max_files)
            .map(|p| self.ws.relative(p))
            .collect()
    }

    /// Stats and reads one file within the limits. Err carries the state of a skipped file.
    #[allow(clippy::type_complexity)]
    fn read_state(
        &self,
        abs: &Path,
        meta: &std::fs::Metadata,
        budget: &mut u64,
    ) -> Result<(FileState, Option<Vec<u8>>), (FileState, Skip)> {
        let (mtime_ns, ctime_ns) = times(meta);
        let mut state = FileState {
            size: meta.len(),
            mtime_ns,
            ctime_ns,
            ino: meta.ino(),
            blob: None,
        };
        if meta.len() > self.limits.max_file_bytes {
            return Err((state, Skip::TooLarge));
        }
        if meta.len() > *budget {
            return Err((state, Skip::OverTotal));
        }
        // Read at most one byte past the limit: the file may have grown since the stat.
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        let read = std::fs::File::open(abs).and_then(|f| {
            f.take(self.limits.max_file_bytes + 1)
                .read_to_end(&mut bytes)
        });
        if read.is_err() {
            // Unreadable (permissions, vanished): not part of the tracked world this time.
            return Err((state, Skip::Unreadable));
        }
        let len = bytes.len() as u64;
        if len > self.limits.max_file_bytes {
            state.size = len;
            return Err((state, Skip::TooLarge));
        }
        *budget -= len.min(*budget);
        state.size = len;
        state.blob = Some(blob_id(&bytes));
        Ok((state, Some(bytes)))
    }
}

#[cfg(test)]
mod tests {
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
    fn hint_paths_track_ignored_files() {
        let (dir, ws) = fixture();
        let (mut tracker, _m, _b) = WorkspaceTracker::capture(&ws, CaptureLimits::default());
        fs::write(dir.path().join("target/gen.rs"), "generated").unwrap();
        // Ignored, so the walk alone does not see it.
        assert_eq!(tracker.refresh(&[]).0, vec![]);
        let (changes, blobs) = tracker.refresh(&["./target/gen.rs".to_string()]);
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
}
