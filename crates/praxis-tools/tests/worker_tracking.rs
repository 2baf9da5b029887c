//! The workspace tracker runs where the file tools run: with a worker, the runtime process
//! never opens a workspace file (proven by denying this test thread every file read with
//! Landlock while it captures and refreshes through the worker), and a worker restarted
//! mid-run goes on tracking from where the dead one stopped.

mod common;

use praxis_core::{FileChange, blob_id};
use praxis_tools::tracking::CallChanges;
use praxis_tools::worker::WorkerClient;
use praxis_tools::{
    CaptureLimits, ExecContext, Fabric, ToolLimits, Tracking, WorkerCommand, Workspace,
};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

fn worker(ws: &Path) -> Arc<WorkerClient> {
    Arc::new(WorkerClient::new(
        WorkerCommand {
            program: env!("CARGO_BIN_EXE_praxis-worker").into(),
            args: Vec::new(),
        },
        ws.canonicalize().unwrap(),
        ToolLimits::default(),
    ))
}

/// Denies the calling thread (and threads it starts) every file read and directory listing.
fn deny_reads_in_this_thread() {
    #[repr(C)]
    struct RulesetAttr {
        handled_access_fs: u64,
    }
    const READ_FILE: u64 = 1 << 2;
    const READ_DIR: u64 = 1 << 3;
    let attr = RulesetAttr {
        handled_access_fs: READ_FILE | READ_DIR,
    };
    // SAFETY: the Landlock system calls with a valid attribute struct; no rule is added, so
    // every handled access is denied.
    unsafe {
        let fd = libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            std::mem::size_of::<RulesetAttr>(),
            0,
        );
        assert!(fd >= 0, "landlock_create_ruleset failed");
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::syscall(libc::SYS_landlock_restrict_self, fd as i32, 0),
            0
        );
    }
}

/// Captures, writes `b.txt`, refreshes: all in a thread that may not read any file.
async fn track_without_reading(
    ctx: ExecContext,
) -> (serde_json::Value, Vec<Vec<u8>>, Vec<FileChange>) {
    // This test's runtime keeps running (the worker client's pipe tasks live on it) while
    // the restricted thread works.
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        deny_reads_in_this_thread();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let tracked = rt.block_on(async {
            let (tracking, manifest, blobs) = Tracking::capture(&ctx, CaptureLimits::default())
                .await
                .expect("capture");
            std::fs::write(ctx.workspace.root().join("b.txt"), "beta").unwrap();
            let CallChanges {
                files_changed: changes,
                ..
            } = tracking.refresh(vec![]).await.expect("refresh");
            (serde_json::to_value(manifest).unwrap(), blobs, changes)
        });
        let _ = done.send(tracked);
    });
    result.await.expect("the restricted thread answers")
}

#[tokio::test]
async fn the_runtime_process_tracks_the_workspace_without_opening_it() {
    if !common::require_sandbox("tracking in the worker") {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("a.txt"), "alpha").unwrap();
    let worker = worker(ws.path());
    worker.start().await.expect("worker starts");
    let mut ctx = ExecContext::new(Workspace::new(ws.path()).unwrap());
    ctx.fabric = Fabric::Worker(worker.clone());
    let (manifest, blobs, changes) = track_without_reading(ctx).await;
    assert_eq!(
        manifest,
        json!({"a.txt": {"blob": blob_id(b"alpha"), "size": 5}})
    );
    assert_eq!(blobs, vec![b"alpha".to_vec()]);
    assert_eq!(
        changes,
        vec![FileChange {
            path: "b.txt".into(),
            before: None,
            after: Some(blob_id(b"beta")),
            size: Some(4),
        }]
    );

    // The control: tracked in this process, the same thread sees nothing.
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("a.txt"), "alpha").unwrap();
    let local = ExecContext::new(Workspace::new(ws.path()).unwrap());
    let (manifest, _, changes) = track_without_reading(local).await;
    assert_eq!(manifest, json!({}));
    assert_eq!(changes, vec![]);
}

#[tokio::test]
async fn a_restarted_worker_goes_on_tracking_where_the_dead_one_stopped() {
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("a.txt"), "alpha").unwrap();
    let worker = worker(ws.path());
    let mut ctx = ExecContext::new(Workspace::new(ws.path()).unwrap());
    ctx.fabric = Fabric::Worker(worker.clone());
    let (tracking, _, _) = Tracking::capture(&ctx, CaptureLimits::default())
        .await
        .unwrap();
    std::fs::write(ws.path().join("a.txt"), "changed").unwrap();
    let CallChanges {
        files_changed: changes,
        blobs,
        ..
    } = tracking.refresh(vec![]).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(blobs, vec![b"changed".to_vec()]);
    let first = worker.pid().unwrap();
    worker.kill();
    std::fs::remove_file(ws.path().join("a.txt")).unwrap();
    std::fs::write(ws.path().join("c.txt"), "gamma").unwrap();
    let CallChanges {
        files_changed: changes,
        ..
    } = tracking.refresh(vec![]).await.unwrap();
    assert_ne!(worker.pid(), Some(first));
    assert_eq!(
        changes,
        vec![
            FileChange {
                path: "a.txt".into(),
                before: Some(blob_id(b"changed")),
                after: None,
                size: None,
            },
            FileChange {
                path: "c.txt".into(),
                before: None,
                after: Some(blob_id(b"gamma")),
                size: Some(5),
            },
        ]
    );
}
