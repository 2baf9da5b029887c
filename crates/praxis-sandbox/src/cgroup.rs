//! A pids cgroup per confined command: bounds how many processes it may have at once
//! (RLIMIT_NPROC does not bind uid 0, and elsewhere counts every process of the uid), and
//! lists every process the command started, even those that left its process group, so
//! all of them can be killed when it ends.

use crate::SandboxError;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How often `finish` re-reads the cgroup while killed processes are still exiting.
const FINISH_ROUNDS: u32 = 50;
const FINISH_PAUSE: Duration = Duration::from_millis(10);

/// How many emptied cgroups a sandbox keeps for reuse (about the number of commands it
/// runs at once); more are removed.
const POOL_SIZE: usize = 8;

/// One cgroup directory with its open control files.
#[derive(Debug)]
struct Slot {
    dir: PathBuf,
    /// `cgroup.procs`, opened for writing: the child writes "0" to it to join.
    procs: File,
}

impl Slot {
    /// Tasks charged to the cgroup (`pids.current`): live processes and threads, and
    /// exited ones not yet reaped. Zero means nothing of any command is left in it.
    fn charged(&self) -> Option<u64> {
        std::fs::read_to_string(self.dir.join("pids.current"))
            .ok()
            .and_then(|text| text.trim().parse().ok())
    }
}

/// The emptied cgroups of one sandbox, ready for its next commands: creating and removing a
/// cgroup directory costs more than the rest of the cgroup work of a spawn together.
#[derive(Debug)]
pub(crate) struct CgroupPool {
    base: PathBuf,
    max: u64,
    idle: Mutex<Vec<Slot>>,
}

impl CgroupPool {
    pub(crate) fn new(base: PathBuf, max: u64) -> Arc<CgroupPool> {
        Arc::new(CgroupPool {
            base,
            max,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// The directory the sandbox's cgroups are made in.
    pub(crate) fn base(&self) -> &Path {
        &self.base
    }

    /// An empty cgroup for one command: an idle one of this sandbox, or a new one.
    pub(crate) fn take(self: &Arc<Self>) -> Result<SpawnCgroup, SandboxError> {
        let reused = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let slot = match reused {
            Some(slot) => slot,
            None => create(&self.base, self.max)?,
        };
        Ok(SpawnCgroup {
            slot: Some(slot),
            pool: Arc::downgrade(self),
        })
    }

    /// Keeps `slot` for a later command if there is room; gives it back otherwise.
    fn put(&self, slot: Slot) -> Result<(), Slot> {
        match self.idle.lock() {
            Ok(mut idle) if idle.len() < POOL_SIZE => {
                idle.push(slot);
                Ok(())
            }
            _ => Err(slot),
        }
    }
}

impl Drop for CgroupPool {
    fn drop(&mut self) {
        // Idle cgroups are empty (checked when they were put back): just remove them.
        if let Ok(idle) = self.idle.get_mut() {
            for slot in idle.drain(..) {
                let _ = std::fs::remove_dir(&slot.dir);
            }
        }
    }
}

fn create(base: &Path, max: u64) -> Result<Slot, SandboxError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = base.join(format!(
        "praxis-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let fail = |source| SandboxError::Cgroup {
        path: dir.clone(),
        source,
    };
    std::fs::create_dir(&dir).map_err(fail)?;
    let setup = std::fs::write(dir.join("pids.max"), max.to_string()).and_then(|()| {
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(dir.join("cgroup.procs"))
    });
    match setup {
        Ok(procs) => Ok(Slot { dir, procs }),
        Err(e) => {
            let _ = std::fs::remove_dir(&dir);
            Err(fail(e))
        }
    }
}

/// The pids cgroup of one command. Every process the command starts lands in it; when the
/// command ends, [`SpawnCgroup::try_finish_now`] or [`SpawnCgroup::finish`] make sure none
/// is left. An emptied cgroup goes back to its sandbox for a later command (only once
/// nothing at all is charged to it), or is removed.
#[derive(Debug)]
pub struct SpawnCgroup {
    /// None once finished.
    slot: Option<Slot>,
    pool: Weak<CgroupPool>,
}

impl SpawnCgroup {
    pub fn path(&self) -> &Path {
        self.slot.as_ref().map_or(Path::new(""), |s| &s.dir)
    }

    /// The open `cgroup.procs` the child writes "0" to (joining the cgroup).
    pub(crate) fn procs_fd(&self) -> Option<BorrowedFd<'_>> {
        self.slot.as_ref().map(|s| s.procs.as_fd())
    }

    /// Pids currently in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        let Some(slot) = &self.slot else {
            return Vec::new();
        };
        std::fs::read_to_string(slot.dir.join("cgroup.procs"))
            .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Returns the cgroup to its sandbox when nothing is charged to it any more, else
    /// removes it if it is empty. True when done (the cgroup is no longer ours).
    fn release(&mut self) -> bool {
        let Some(slot) = self.slot.take() else {
            return true;
        };
        let slot = match self.pool.upgrade() {
            Some(pool) if slot.charged() == Some(0) => match pool.put(slot) {
                Ok(()) => return true,
                Err(slot) => slot,
            },
            _ => slot,
        };
        if std::fs::remove_dir(&slot.dir).is_ok() {
            return true;
        }
        self.slot = Some(slot);
        false
    }

    /// Releases the cgroup if it is already empty (the common case: the command and its
    /// group are gone). Cheap and non-blocking; true when done.
    pub fn try_finish_now(&mut self) -> bool {
        if self.slot.is_some() && self.pids().is_empty() {
            self.release();
        }
        self.slot.is_none()
    }

    /// Kills every process still in the cgroup (SIGKILL), waits briefly for them to leave
    /// and releases the cgroup. Blocking (at most about half a second); idempotent. Returns
    /// how many processes had to be killed.
    pub fn finish(&mut self) -> usize {
        let mut killed = std::collections::BTreeSet::new();
        for _ in 0..FINISH_ROUNDS {
            if self.slot.is_none() {
                break;
            }
            let pids = self.pids();
            if pids.is_empty() && self.release() {
                break;
            }
            for pid in pids {
                // SAFETY: plain kill(2); a pid that exited meanwhile yields ESRCH.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                killed.insert(pid);
            }
            std::thread::sleep(FINISH_PAUSE);
        }
        killed.len()
    }
}

/// Removes the cgroups of Praxis processes that died without cleaning up (a worker killed
/// mid-command): their leftover processes are killed, then the directories removed.
pub(crate) fn sweep_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|n| n.strip_prefix("praxis-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{owner}")).exists() {
            continue;
        }
        let mut stale = SpawnCgroup {
            slot: Some(Slot {
                dir: entry.path(),
                procs: match File::open(entry.path().join("cgroup.procs")) {
                    Ok(f) => f,
                    Err(_) => continue,
                },
            }),
            pool: Weak::new(),
        };
        stale.finish();
    }
}

impl Drop for SpawnCgroup {
    fn drop(&mut self) {
        self.finish();
    }
}
