//! Content-addressed tracking of the workspace, so the world at any point of a run can be
//! rebuilt from the ledger: a manifest of every file's blob at the start, then the changed
//! files (with their new blobs) after each write or exec call.
//!
//! The tracked world is the set of regular files (not symlinks) the walk sees (the same
//! ignore rules as `list_files`, `.git/` skipped), plus files named by hints, within the
//! capture limits. A file over the limits is outside the tracked world: it is listed in the
//! manifest as skipped, and a tracked file that grows over the limits is reported as gone
//! (`after: None`), like a deletion.
//!
//! Nothing a command makes goes unrecorded: a file the ignore rules hide (a build output, a
//! cache) that is created or changed during a call (its ctime is after the previous scan)
//! joins the tracked world and is reported like any other. Blobs are stored up to the run's
//! blob cap (`max_run_blob_bytes`); beyond it a change is recorded by hash and size only, so
//! the world knows the file exists even when its content is not kept. Sizes count in the
//! writ's `bytes_written` budget either way.

use crate::Workspace;
use crate::gitguard::{self, GitGuardSettings, GitGuardState};
use praxis_core::record::{Manifest, ManifestFile};
use praxis_core::{FileChange, blob_id};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Read;
use std::ops::ControlFlow;
use std::os::unix::fs::MetadataExt;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaptureLimits {
    /// Files larger than this are not captured.
    pub max_file_bytes: u64,
    /// Bytes read at most by one capture or refresh; files beyond it are not captured.
    pub max_total_bytes: u64,
    /// Files tracked at most; the walk stops beyond it.
    pub max_files: usize,
    /// Blob bytes stored at most for the whole run (start state and every change); beyond
    /// it changes are recorded by hash and size, without their content.
    #[serde(default = "default_run_blob_bytes")]
    pub max_run_blob_bytes: u64,
    /// Blob bytes the whole data dir holds at most: the driver lowers a run's
    /// `max_run_blob_bytes` to what is left of it when the run starts.
    #[serde(default = "default_data_dir_blob_bytes")]
    pub max_data_dir_blob_bytes: u64,
    /// What is done about git metadata calls plant ([`crate::gitguard`]).
    #[serde(default)]
    pub git: GitGuardSettings,
}

fn default_run_blob_bytes() -> u64 {
    1 << 30
}

fn default_data_dir_blob_bytes() -> u64 {
    16 << 30
}

impl CaptureLimits {
    /// These limits for a run starting when the data dir already holds `stored` blob bytes:
    /// the run may store at most what is left of the data dir's cap.
    pub fn with_data_dir_holding(mut self, stored: u64) -> Self {
        self.max_run_blob_bytes = self
            .max_run_blob_bytes
            .min(self.max_data_dir_blob_bytes.saturating_sub(stored));
        self
    }
}

impl Default for CaptureLimits {
    fn default() -> Self {
        CaptureLimits {
            max_file_bytes: 4 * 1024 * 1024,
            max_total_bytes: 256 * 1024 * 1024,
            max_files: 20_000,
            max_run_blob_bytes: default_run_blob_bytes(),
            max_data_dir_blob_bytes: default_data_dir_blob_bytes(),
            git: GitGuardSettings::default(),
        }
    }
}

/// What is known of one file. `blob` is None when the file was over the limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    size: u64,
    mtime_ns: i64,
    /// ctime and inode too: a tool can restore an mtime, but not a ctime.
    ctime_ns: i64,
    ino: u64,
    blob: Option<String>,
}

impl FileState {
    /// The stat part of `meta` (no content).
    fn of(meta: &std::fs::Metadata) -> Self {
        let (mtime_ns, ctime_ns) = times(meta);
        FileState {
            size: meta.len(),
            mtime_ns,
            ctime_ns,
            ino: meta.ino(),
            blob: None,
        }
    }

    fn stat_matches(&self, meta: &std::fs::Metadata) -> bool {
        let (mtime, ctime) = times(meta);
        self.size == meta.len()
            && self.mtime_ns == mtime
            && self.ctime_ns == ctime
            && self.ino == meta.ino()
    }
}

/// Nanoseconds since the epoch (i64: good until 2262, and JSON-friendly for the worker's
/// frames).
fn times(meta: &std::fs::Metadata) -> (i64, i64) {
    let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
    (
        ns(meta.mtime(), meta.mtime_nsec()),
        ns(meta.ctime(), meta.ctime_nsec()),
    )
}

/// What a tracker knows (no contents): enough to rebuild it in a new process, so a worker
/// restarted mid-run goes on tracking from where the last one stopped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackerState {
    pub files: BTreeMap<String, FileState>,
    pub truncated: bool,
    /// Blob bytes handed out so far in this run.
    #[serde(default)]
    pub blob_bytes: u64,
    /// When the last scan started (ns since the epoch): ignored files changed since are new
    /// to the tracked world.
    #[serde(default)]
    pub scanned_at_ns: i64,
    /// Untracked ignored files whose ctime fell in the slack before the last scan, with their
    /// stat: they were there already, and count as changed only if their stat changes.
    #[serde(default)]
    pub recent_ignored: BTreeMap<String, FileState>,
    /// The git contexts known after the last scan.
    #[serde(default)]
    pub git: GitGuardState,
}

impl TrackerState {
    /// Applies what a refresh changed (see [`Refreshed::delta`]).
    pub fn apply(&mut self, delta: Vec<(String, Option<FileState>)>, refreshed: &RefreshedState) {
        for (path, state) in delta {
            match state {
                Some(state) => self.files.insert(path, state),
                None => self.files.remove(&path),
            };
        }
        self.truncated = refreshed.truncated;
        self.blob_bytes = refreshed.blob_bytes;
        self.scanned_at_ns = refreshed.scanned_at_ns;
        self.recent_ignored = refreshed.recent_ignored.clone();
        self.git = refreshed.git.clone();
    }
}

/// The scalar part of a tracker's state after a refresh.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshedState {
    pub truncated: bool,
    pub blob_bytes: u64,
    pub scanned_at_ns: i64,
    pub recent_ignored: BTreeMap<String, FileState>,
    #[serde(default)]
    pub git: GitGuardState,
}

/// What one refresh found: the content changes, the blobs not handed out before, and the
/// tracker's own state changes (every path whose known state changed, None: forgotten).
#[derive(Debug, Default)]
pub struct Refreshed {
    pub changes: Vec<FileChange>,
    pub blobs: Vec<Vec<u8>>,
    pub delta: Vec<(String, Option<FileState>)>,
    pub state: RefreshedState,
    /// Git metadata removed before the scan ([`crate::gitguard::sweep`]).
    pub git_removed: Vec<String>,
}

pub struct WorkspaceTracker {
    ws: Workspace,
    limits: CaptureLimits,
    files: BTreeMap<String, FileState>,
    /// Blob ids already handed out, so each blob is returned once.
    known_blobs: HashSet<String>,
    /// Whether the last walk stopped at `max_files`.
    truncated: bool,
    /// Blob bytes handed out so far (capped by `max_run_blob_bytes`).
    blob_bytes: u64,
    /// When the last scan started (ns since the epoch).
    scanned_at_ns: i64,
    /// See [`TrackerState::recent_ignored`].
    recent_ignored: BTreeMap<String, FileState>,
    /// See [`TrackerState::git`].
    git: GitGuardState,
}

/// The ctime clock is coarse: a change made just after a scan started may carry a slightly
/// earlier time, so ignored files are looked at from this long before the previous scan.
const CTIME_SLACK_NS: i64 = 1_000_000_000;

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
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
        // The git contexts there now are the user's: learnt, not swept.
        let (git, _) = gitguard::sweep(ws, &limits.git, None);
        let mut tracker = WorkspaceTracker {
            git,
            ws: ws.clone(),
            limits,
            files: BTreeMap::new(),
            known_blobs: HashSet::new(),
            truncated: false,
            blob_bytes: 0,
            scanned_at_ns: now_ns(),
            recent_ignored: BTreeMap::new(),
        };
        let mut manifest = Manifest::new();
        let mut blobs = Vec::new();
        let mut budget = tracker.limits.max_total_bytes;
        let walked = tracker.walk();
        let walked_set: HashSet<String> = walked.iter().cloned().collect();
        tracker.recent_ignored = tracker
            .scan_ignored(&walked_set, tracker.scanned_at_ns - CTIME_SLACK_NS)
            .into_iter()
            .collect();
        for rel in walked {
            let Some((file, meta)) = tracker.regular_file(&rel) else {
                continue; // vanished (or was swapped for a link) during the walk
            };
            match tracker.read_state(file, &meta, &mut budget) {
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
                    if let Some(bytes) = content {
                        tracker.hand_out(&blob, bytes, &mut blobs);
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

    /// What this tracker knows, without contents.
    pub fn state(&self) -> TrackerState {
        TrackerState {
            files: self.files.clone(),
            truncated: self.truncated,
            blob_bytes: self.blob_bytes,
            scanned_at_ns: self.scanned_at_ns,
            recent_ignored: self.recent_ignored.clone(),
            git: self.git.clone(),
        }
    }

    /// Adds `bytes` (blob `id`) to `blobs` unless it was handed out before or the run's
    /// blob cap is reached (then the change is recorded by hash and size only).
    fn hand_out(&mut self, id: &str, bytes: Vec<u8>, blobs: &mut Vec<Vec<u8>>) {
        if self.known_blobs.contains(id) {
            return;
        }
        let len = bytes.len() as u64;
        if self.blob_bytes.saturating_add(len) > self.limits.max_run_blob_bytes {
            return;
        }
        self.blob_bytes += len;
        self.known_blobs.insert(id.to_string());
        blobs.push(bytes);
    }

    /// A tracker that goes on from `state` (taken from another tracker of `ws`). The blobs
    /// of the known files count as handed out already.
    pub fn restore(ws: &Workspace, limits: CaptureLimits, state: TrackerState) -> Self {
        WorkspaceTracker {
            ws: ws.clone(),
            limits,
            known_blobs: state
                .files
                .values()
                .filter_map(|f| f.blob.clone())
                .collect(),
            files: state.files,
            truncated: state.truncated,
            blob_bytes: state.blob_bytes,
            scanned_at_ns: state.scanned_at_ns,
            recent_ignored: state.recent_ignored,
            git: state.git,
        }
    }

    /// Re-walks (stat only) plus `hint_paths` (workspace-relative; checked even if ignored)
    /// and every already tracked path; re-reads files whose stat changed and reports those
    /// whose content changed, sorted by path, with the blobs not handed out before.
    pub fn refresh(&mut self, hint_paths: &[String]) -> (Vec<FileChange>, Vec<Vec<u8>>) {
        let refreshed = self.refresh_tracked(hint_paths);
        (refreshed.changes, refreshed.blobs)
    }

    /// [`WorkspaceTracker::refresh`], with the changes of the tracker's own state.
    pub fn refresh_tracked(&mut self, hint_paths: &[String]) -> Refreshed {
        // First: what the guard removes never joins the tracked world.
        let (git, git_removed) = gitguard::sweep(&self.ws, &self.limits.git, Some(&self.git));
        self.git = git;
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
        // Files the ignore rules hide that changed since the last scan join the tracked world.
        let since = self.scanned_at_ns - CTIME_SLACK_NS;
        let scan_start = now_ns();
        let mut recent = BTreeMap::new();
        for (rel, stat) in self.scan_ignored(&walked, since) {
            let seen = self.recent_ignored.get(&rel).is_some_and(|s| {
                (s.size, s.mtime_ns, s.ctime_ns, s.ino)
                    == (stat.size, stat.mtime_ns, stat.ctime_ns, stat.ino)
            });
            if !seen {
                candidates.insert(rel.clone());
            } else if stat.ctime_ns >= scan_start - CTIME_SLACK_NS {
                recent.insert(rel, stat);
            }
        }
        self.scanned_at_ns = scan_start;
        self.recent_ignored = recent;

        let mut changes = Vec::new();
        let mut blobs = Vec::new();
        let mut delta = Vec::new();
        let mut budget = self.limits.max_total_bytes;
        for rel in candidates {
            let previous = self.files.get(&rel);
            let before = previous.and_then(|s| s.blob.clone());
            let Some((file, meta)) = self.regular_file(&rel) else {
                if self.files.remove(&rel).is_some() {
                    delta.push((rel.clone(), None));
                    if before.is_some() {
                        changes.push(FileChange {
                            path: rel,
                            before,
                            after: None,
                            size: None,
                        });
                    }
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
            let (state, content) = match self.read_state(file, &meta, &mut budget) {
                Ok(read) => read,
                Err((state, _)) => (state, None),
            };
            let after = state.blob.clone();
            delta.push((rel.clone(), Some(state.clone())));
            self.files.insert(rel.clone(), state);
            if before == after {
                continue; // touched, or still over the limits: no content change
            }
            if let (Some(id), Some(bytes)) = (&after, content) {
                self.hand_out(id, bytes, &mut blobs);
            }
            let size = after.as_ref().map(|_| meta.len());
            changes.push(FileChange {
                path: rel,
                before,
                after,
                size,
            });
        }
        Refreshed {
            changes,
            blobs,
            delta,
            state: RefreshedState {
                truncated: self.truncated,
                blob_bytes: self.blob_bytes,
                scanned_at_ns: self.scanned_at_ns,
                recent_ignored: self.recent_ignored.clone(),
                git: self.git.clone(),
            },
            git_removed,
        }
    }

    /// Regular files below the root that the ignore rules hide (`.git/` included: a hook a
    /// command plants there under a writ that grants it is recorded too), are not tracked
    /// yet, and whose status changed at or after `since_ns` (a command made or changed
    /// them), with their stat. Walked through descriptors ([`Workspace::walk_everything`]),
    /// so a directory swapped for a link is never listed through; stat only; at most ten
    /// times `max_files` are looked at.
    fn scan_ignored(&self, walked: &HashSet<String>, since_ns: i64) -> Vec<(String, FileState)> {
        let mut found = Vec::new();
        let mut looked = 0usize;
        let cap = self.limits.max_files.saturating_mul(10);
        self.ws.walk_everything(|entry| {
            looked += 1;
            if looked > cap {
                return ControlFlow::Break(());
            }
            if walked.contains(entry.rel) || self.files.contains_key(entry.rel) {
                return ControlFlow::Continue(());
            }
            if let Ok(meta) = entry.metadata() {
                let stat = FileState::of(&meta);
                if meta.is_file() && stat.ctime_ns >= since_ns {
                    found.push((entry.rel.to_string(), stat));
                }
            }
            ControlFlow::Continue(())
        });
        found
    }

    /// `rel` opened (beneath the root's descriptor, no symlink on the way, never blocking)
    /// with its metadata read from the descriptor, if it is a regular file. The tracker never
    /// opens a workspace path by name, so a component swapped for a link is refused.
    fn regular_file(&self, rel: &str) -> Option<(std::fs::File, std::fs::Metadata)> {
        let file = self.ws.open_no_links(rel)?;
        let meta = file.metadata().ok()?;
        meta.is_file().then_some((file, meta))
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
        file: std::fs::File,
        meta: &std::fs::Metadata,
        budget: &mut u64,
    ) -> Result<(FileState, Option<Vec<u8>>), (FileState, Skip)> {
        let mut state = FileState::of(meta);
        if meta.len() > self.limits.max_file_bytes {
            return Err((state, Skip::TooLarge));
        }
        if meta.len() > *budget {
            return Err((state, Skip::OverTotal));
        }
        // Read at most one byte past the limit: the file may have grown since the stat.
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        let read = file
            .take(self.limits.max_file_bytes + 1)
            .read_to_end(&mut bytes);
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
mod tests;
