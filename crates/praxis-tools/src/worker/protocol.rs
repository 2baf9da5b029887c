//! The worker's frames: a 4-byte big-endian length and that many bytes of JSON.

use crate::ToolLimits;
use crate::manifest::ToolManifest;
use crate::tracker::{CaptureLimits, FileState, RefreshedState, TrackerState};
use praxis_core::{FileChange, Observation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame either side accepts (an observation is capped far below this).
pub const MAX_FRAME: usize = 64 << 20;
/// The environment variable that tells a worker its runtime's pid: a worker whose parent is
/// not that process (the runtime died before the worker ran) ends at once.
pub(crate) const PARENT_ENV: &str = "PRAXIS_WORKER_PARENT";
/// How long a starting worker may take to answer `hello`.
pub(crate) const HELLO_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToWorker {
    /// Before `hello`, to a worker started ahead of its run: the runtime's host facts, so
    /// that the worker makes the parts of a sandbox that do not depend on the run while it
    /// waits ([`praxis_sandbox::prepare_ahead`]).
    Prepare {
        host: Box<HostFacts>,
    },
    Hello {
        workspace: PathBuf,
        limits: Box<ToolLimits>,
        /// Manifest tools of the run's registry, registered besides the built-ins.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        manifests: Vec<ToolManifest>,
        /// What the runtime learned about the host once per process, so that no worker
        /// probes the host or walks /etc again (absent: the worker does both itself).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<Box<HostFacts>>,
        /// Where the worker makes its sandbox's private home: a directory the runtime made
        /// and removes once the worker has exited (a killed worker cleans nothing up).
        /// Absent: the system temp dir, and the worker removes its home itself.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        home_parent: Option<PathBuf>,
    },
    Call {
        id: u64,
        tool: String,
        args: Value,
        /// Time left until the run's deadline, if it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    Cancel {
        id: u64,
    },
    /// Capture the workspace's start state (answered by `blob`s, then `captured`).
    Capture {
        id: u64,
        limits: CaptureLimits,
    },
    /// Report what changed since the last capture or refresh (`blob`s, then `refreshed`).
    Refresh {
        id: u64,
        hints: Vec<String>,
    },
    /// Go on tracking from a state an earlier worker of this run reported (after a restart;
    /// sent before any call).
    Restore {
        limits: CaptureLimits,
        state: TrackerState,
    },
    /// The run is over and the runtime would keep this worker for the next run it serves
    /// the same way (answered by `released` or `not_released`): nothing of this run may be
    /// left in the worker that the next one could see (see `serve::release`).
    Release {
        id: u64,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromWorker {
    Ready {
        pid: u32,
        layers: Value,
        /// What the worker computed itself to get ready.
        #[serde(default)]
        setup: WorkerSetup,
    },
    Refused {
        message: String,
    },
    Result {
        id: u64,
        observation: Observation,
    },
    /// One blob of a `capture` or `refresh` answer (hex), before its final frame.
    Blob {
        id: u64,
        hex: String,
    },
    Captured {
        id: u64,
        manifest: praxis_core::record::Manifest,
        state: TrackerState,
    },
    Refreshed {
        id: u64,
        changes: Vec<FileChange>,
        delta: Vec<(String, Option<FileState>)>,
        state: RefreshedState,
        #[serde(default)]
        git_removed: Vec<String>,
    },
    /// A `capture` or `refresh` that could not be done.
    TrackFailed {
        id: u64,
        message: String,
    },
    /// Nothing of the last run is left: the worker may serve another run.
    Released {
        id: u64,
    },
    /// The worker cannot serve another run (the runtime ends it); `why` says what is left.
    NotReleased {
        id: u64,
        why: String,
    },
}

/// What a worker answered to one request.
#[derive(Debug)]
pub(crate) enum Answer {
    Observation(Observation),
    Captured {
        manifest: praxis_core::record::Manifest,
        state: TrackerState,
        blobs: Vec<Vec<u8>>,
    },
    Refreshed {
        changes: Vec<FileChange>,
        delta: Vec<(String, Option<FileState>)>,
        state: RefreshedState,
        blobs: Vec<Vec<u8>>,
        git_removed: Vec<String>,
    },
    TrackFailed(String),
    /// To `release`: Err says why the worker cannot serve another run.
    Released(Result<(), String>),
}

/// Writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    out: &mut W,
    message: &T,
) -> io::Result<()> {
    let bytes = serde_json::to_vec(message).map_err(io::Error::other)?;
    if bytes.len() > MAX_FRAME {
        return Err(io::Error::other(format!(
            "frame of {} bytes exceeds the {MAX_FRAME}-byte limit",
            bytes.len()
        )));
    }
    // One write per frame: the reader wakes once, with the whole frame.
    let mut frame = Vec::with_capacity(4 + bytes.len());
    frame.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    frame.extend_from_slice(&bytes);
    out.write_all(&frame).await?;
    out.flush().await
}

/// Reads one frame; None at a clean end of stream (between frames).
pub async fn read_frame<R: AsyncRead + Unpin, T: DeserializeOwned>(
    input: &mut R,
) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {MAX_FRAME}-byte limit"),
        ));
    }
    let mut bytes = vec![0u8; len];
    input.read_exact(&mut bytes).await?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("bad frame: {e}")))
}

/// The host facts a worker takes from its runtime (same host, same ids, same cgroup: the
/// worker is the runtime's child) instead of computing them again.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostFacts {
    /// [`praxis_sandbox::probe`]'s answer.
    pub probe: praxis_sandbox::HostSupport,
    /// [`praxis_sandbox::etc_readable`]: the world-readable part of /etc its grants cover.
    pub etc_readable: Vec<PathBuf>,
    /// [`praxis_sandbox::etc_links`]: those of them that resolve elsewhere, and where.
    #[serde(default)]
    pub etc_links: Vec<(PathBuf, Option<PathBuf>)>,
    /// [`praxis_sandbox::spawner_proven`]: a spawner with every layer has started on this
    /// host (in an earlier worker), so the worker's own spawner waits for its run's first
    /// command to set itself up, and no network namespace is made ahead of it.
    #[serde(default)]
    pub spawner_proven: bool,
}

impl HostFacts {
    /// This process's facts, computed on the first call and reused after.
    pub fn of_this_process() -> HostFacts {
        HostFacts {
            probe: praxis_sandbox::probe(),
            etc_readable: praxis_sandbox::etc_readable().to_vec(),
            etc_links: praxis_sandbox::etc_links().to_vec(),
            spawner_proven: praxis_sandbox::spawner_proven(),
        }
    }

    /// Makes them this process's facts (the worker, before it prepares its sandbox); false
    /// when either was computed already.
    pub fn adopt(self) -> bool {
        if self.spawner_proven {
            praxis_sandbox::note_spawner_proven();
        }
        let probe = praxis_sandbox::adopt_probe(self.probe);
        let etc = praxis_sandbox::adopt_etc_readable(self.etc_readable, self.etc_links);
        probe && etc
    }
}

/// How much a worker computed itself to get ready (0 and 0 when it took its runtime's
/// [`HostFacts`]), and what it had made before its run was known.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerSetup {
    /// Host probes made by the worker (each forks 4 test children).
    pub host_probes: usize,
    /// Walks of /etc made by the worker (a stat of every file there).
    pub etc_walks: usize,
    /// The parts of its run's sandbox it had made before its run was known
    /// ([`praxis_sandbox::made_ahead`]).
    #[serde(default)]
    pub made_ahead: Vec<String>,
    /// A spawner with every layer has started on this host: the worker's own (which its
    /// runtime then tells later workers of), or an earlier one its runtime told it of.
    #[serde(default)]
    pub spawner_proven: bool,
    /// Its sandbox's spawner waits for the run's first command to set itself up (the
    /// sandbox has made no namespace until then).
    #[serde(default)]
    pub spawner_waits: bool,
    /// Paths of the common Landlock grants the worker opened itself (0 when it took those
    /// its fork server opened once for every worker, [`praxis_sandbox::open_ahead`]).
    #[serde(default)]
    pub grant_paths_opened: usize,
}

impl WorkerSetup {
    /// This process's counts so far.
    pub fn of_this_process() -> WorkerSetup {
        WorkerSetup {
            host_probes: praxis_sandbox::host_probes(),
            etc_walks: praxis_sandbox::etc_walks(),
            made_ahead: praxis_sandbox::made_ahead(),
            spawner_proven: praxis_sandbox::spawner_proven(),
            spawner_waits: false,
            grant_paths_opened: praxis_sandbox::grant_paths_opened(),
        }
    }
}
