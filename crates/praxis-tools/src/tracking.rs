//! A run's workspace tracking, done by the process that may open workspace files: the
//! worker when the run has one (the runtime process then never opens a workspace file), this
//! process with the in-process fabric (tests and development). Either way the records are
//! the same: the start manifest and blobs, then each call's changed files and new blobs.

use crate::tracker::{CaptureLimits, WorkspaceTracker};
use crate::worker::WorkerClient;
use crate::{ExecContext, Fabric};
use praxis_core::FileChange;
use std::sync::{Arc, Mutex};

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
                let (manifest, blobs) = worker.capture(limits).await?;
                Ok((Tracking::Worker(worker.clone()), manifest, blobs))
            }
            Fabric::InProcess { .. } => {
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
    /// not handed out before ([`WorkspaceTracker::refresh`]).
    pub async fn refresh(
        &self,
        hints: Vec<String>,
    ) -> Result<(Vec<FileChange>, Vec<Vec<u8>>), String> {
        match self {
            Tracking::Worker(worker) => worker.refresh(hints).await,
            Tracking::Local(tracker) => {
                let tracker = tracker.clone();
                tokio::task::spawn_blocking(move || {
                    let mut tracker = tracker.lock().map_err(|_| "the tracker is poisoned")?;
                    Ok(tracker.refresh(&hints))
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e: &str| e.to_string())
            }
        }
    }
}
