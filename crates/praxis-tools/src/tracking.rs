//! A run's workspace tracking, done by the process that may open workspace files: the
//! worker when the run has one (the runtime process then never opens a workspace file), this
//! process with the in-process fabric (tests and development). Either way the records are
//! the same: the start manifest and blobs, then each call's changed files and new blobs.

use crate::tracker::{CaptureLimits, WorkspaceTracker};
use crate::worker::WorkerClient;
use crate::{ExecContext, Fabric};
use praxis_core::FileChange;
use std::sync::{Arc, Mutex};

/// What one call changed in the workspace.
#[derive(Debug, Default)]
pub struct CallChanges {
    /// Sorted by path.
    pub files_changed: Vec<FileChange>,
    /// The new contents not handed out before.
    pub blobs: Vec<Vec<u8>>,
    /// Git metadata the call planted, removed ([`crate::gitguard`]).
    pub git_removed: Vec<String>,
}

/// The directories of `ctx`'s workspace its sandbox mounts read-only for commands (the git
/// directories there when it was made), workspace-relative: the git guard leaves them be.
pub fn git_protected(ctx: &ExecContext) -> Vec<String> {
    let Some(sandbox) = &ctx.sandbox else {
        return Vec::new();
    };
    let root = ctx
        .workspace
        .root()
        .canonicalize()
        .unwrap_or_else(|_| ctx.workspace.root().to_path_buf());
    sandbox
        .read_only_dirs()
        .iter()
        .filter_map(|dir| dir.strip_prefix(&root).ok())
        .map(|rel| rel.to_string_lossy().into_owned())
        .filter(|rel| !rel.is_empty())
        .collect()
}

/// Where a run's tracker lives.
pub enum Tracking {
    Local(Arc<Mutex<WorkspaceTracker>>),
    Worker(Arc<WorkerClient>),
}

impl Tracking {
    /// Captures the start state of `ctx`'s workspace where `ctx`'s file tools run. Returns
    /// the tracking, the manifest and the distinct blobs ([`WorkspaceTracker::capture`]).
    pub async fn capture(
        ctx: &ExecContext,
        limits: CaptureLimits,
    ) -> Result<(Tracking, praxis_core::record::Manifest, Vec<Vec<u8>>), String> {
        match &ctx.fabric {
            Fabric::Worker(worker) => {
                // The worker fills in `git.protected` from its own sandbox.
                let (manifest, blobs) = worker.capture(limits).await?;
                Ok((Tracking::Worker(worker.clone()), manifest, blobs))
            }
            Fabric::InProcess { .. } => {
                let mut limits = limits;
                limits.git.protected = git_protected(ctx);
                let workspace = ctx.workspace.clone();
                let (tracker, manifest, blobs) = tokio::task::spawn_blocking(move || {
                    WorkspaceTracker::capture(&workspace, limits)
                })
                .await
                .map_err(|e| e.to_string())?;
                Ok((
                    Tracking::Local(Arc::new(Mutex::new(tracker))),
                    manifest,
                    blobs,
                ))
            }
        }
    }

    /// The files changed since the last capture or refresh, sorted by path, with the blobs
    /// not handed out before, and the git metadata removed ([`WorkspaceTracker::refresh_tracked`]).
    pub async fn refresh(&self, hints: Vec<String>) -> Result<CallChanges, String> {
        match self {
            Tracking::Worker(worker) => worker.refresh(hints).await,
            Tracking::Local(tracker) => {
                let tracker = tracker.clone();
                tokio::task::spawn_blocking(move || {
                    let mut tracker = tracker.lock().map_err(|_| "the tracker is poisoned")?;
                    let refreshed = tracker.refresh_tracked(&hints);
                    Ok(CallChanges {
                        files_changed: refreshed.changes,
                        blobs: refreshed.blobs,
                        git_removed: refreshed.git_removed,
                    })
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e: &str| e.to_string())
            }
        }
    }
}
