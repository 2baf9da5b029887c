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

/// The cgroups of this process's commands that are in use: what [`kill_all_live`] kills.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Kills every process in every cgroup of this process's running commands (`cgroup.kill`
/// where the host has it, else each listed pid). For a process about to die: its
/// commands must not outlive it.
pub(crate) fn kill_all_live() {
    let live = match LIVE.lock() {
        Ok(live) => live.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    for dir in live {
        if std::fs::write(dir.join("cgroup.kill"), "1").is_ok() {
            continue;
        }
        let pids = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in pids.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            // SAFETY: plain kill(2).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn set_live(dir: &Path, live: bool) {
    let mut list = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    list.retain(|d| d != dir);
    if live {
        list.push(dir.to_path_buf());
    }
}

/// How many emptied cgroups a sandbox keeps for reuse (about the number of commands it
/// runs at once); more are removed.
const POOL_SIZE: usize = 8;

/// One cgroup directory with its open control files.
#[derive(Debug)]
struct Slot {
    dir: PathBuf,
    /// `cgroup.procs`, opened for writing: the child writes "0" to it to join.
    procs: File,
    memory: Option<MemorySlot>,
}

/// The memory bound of a command's cgroup: in the same directory (cgroup v2) or in one of
/// the same name in the v1 memory hierarchy.
#[derive(Debug)]
struct MemorySlot {
    /// A v1 directory of its own (None: the pids directory, v2).
    dir: Option<PathBuf>,
    /// Its `cgroup.procs` (v1 only).
    procs: Option<File>,
    /// Where the kernel counts OOM kills (`memory.events` or v1's `memory.oom_control`).
    events: PathBuf,
    /// OOM kills counted before this command (a reused cgroup keeps its count).
    baseline: u64,
    bytes: u64,
}

impl MemorySlot {
    fn oom_kills(&self) -> u64 {
        std::fs::read_to_string(&self.events)
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("oom_kill "))
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(0)
    }
}

/// Where and how large the memory bound of each command is.
#[derive(Clone, Debug)]
pub(crate) struct MemoryBound {
    /// The memory cgroup base (the pids base itself under cgroup v2).
    pub base: PathBuf,
    pub bytes: u64,
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
    memory: Option<MemoryBound>,
    idle: Mutex<Vec<Slot>>,
}

impl CgroupPool {
    pub(crate) fn new(base: PathBuf, max: u64, memory: Option<MemoryBound>) -> Arc<CgroupPool> {
        Arc::new(CgroupPool {
            base,
            max,
            memory,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// The directory the sandbox's cgroups are made in.
    pub(crate) fn base(&self) -> &Path {
        &self.base
    }

    /// The memory cgroup base, when it is not the pids base (the v1 memory hierarchy).
    pub(crate) fn memory_base(&self) -> Option<&Path> {
        self.memory
            .as_ref()
            .map(|m| m.base.as_path())
            .filter(|b| *b != self.base)
    }

    /// An empty cgroup for one command: an idle one of this sandbox, or a new one.
    pub(crate) fn take(self: &Arc<Self>) -> Result<SpawnCgroup, SandboxError> {
        let reused = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut slot = match reused {
            Some(slot) => slot,
            None => create(&self.base, self.max, self.memory.as_ref())?,
        };
        if let Some(memory) = &mut slot.memory {
            memory.baseline = memory.oom_kills();
        }
        set_live(&slot.dir, true);
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
                slot.remove();
            }
        }
    }
}

impl Slot {
    /// Removes the directories (they must be empty); true when the pids one is gone.
    fn remove(&self) -> bool {
        let removed = std::fs::remove_dir(&self.dir).is_ok();
        if removed && let Some(dir) = self.memory.as_ref().and_then(|m| m.dir.as_ref()) {
            let _ = std::fs::remove_dir(dir);
        }
        removed
    }
}

fn open_procs(dir: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(dir.join("cgroup.procs"))
}

fn create(base: &Path, max: u64, memory: Option<&MemoryBound>) -> Result<Slot, SandboxError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "praxis-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let dir = base.join(&name);
    let fail = |source| SandboxError::Cgroup {
        path: dir.clone(),
        source,
    };
    std::fs::create_dir(&dir).map_err(fail)?;
    let setup = std::fs::write(dir.join("pids.max"), max.to_string())
        .and_then(|()| open_procs(&dir))
        .and_then(|procs| {
            let memory = memory
                .map(|bound| memory_slot(&dir, &name, bound))
                .transpose()?;
            Ok(Slot {
                dir: dir.clone(),
                procs,
                memory,
            })
        });
    match setup {
        Ok(slot) => Ok(slot),
        Err(e) => {
            let _ = std::fs::remove_dir(&dir);
            Err(fail(e))
        }
    }
}

/// Sets the memory bound: `memory.max` (and no swap) in the pids directory under cgroup v2,
/// or a v1 memory cgroup of the same name with `memory.limit_in_bytes`.
fn memory_slot(pids_dir: &Path, name: &str, bound: &MemoryBound) -> std::io::Result<MemorySlot> {
    let bytes = bound.bytes.to_string();
    if pids_dir.parent() == Some(bound.base.as_path()) {
        std::fs::write(pids_dir.join("memory.max"), &bytes)?;
        // Where swap is accounted, the bound covers it too (else a command would swap).
        let _ = std::fs::write(pids_dir.join("memory.swap.max"), "0");
        return Ok(MemorySlot {
            dir: None,
            procs: None,
            events: pids_dir.join("memory.events"),
            baseline: 0,
            bytes: bound.bytes,
        });
    }
    let dir = bound.base.join(name);
    std::fs::create_dir(&dir)?;
    let setup = std::fs::write(dir.join("memory.limit_in_bytes"), &bytes).and_then(|()| {
        // Memory plus swap, where the kernel accounts swap (must not be below the limit).
        let _ = std::fs::write(dir.join("memory.memsw.limit_in_bytes"), &bytes);
        open_procs(&dir)
    });
    match setup {
        Ok(procs) => Ok(MemorySlot {
            events: dir.join("memory.oom_control"),
            dir: Some(dir),
            procs: Some(procs),
            baseline: 0,
            bytes: bound.bytes,
        }),
        Err(e) => {
            let _ = std::fs::remove_dir(&dir);
            Err(e)
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

    /// The open `cgroup.procs` files the child writes "0" to (joining the cgroup): the pids
    /// one, and under cgroup v1 the memory one.
    pub(crate) fn procs_fds(&self) -> [Option<BorrowedFd<'_>>; 2] {
        match &self.slot {
            Some(slot) => [
                Some(slot.procs.as_fd()),
                slot.memory
                    .as_ref()
                    .and_then(|m| m.procs.as_ref())
                    .map(|f| f.as_fd()),
            ],
            None => [None, None],
        }
    }

    /// The memory bound (bytes) when the kernel killed a process of this command for
    /// exceeding it. Read before [`SpawnCgroup::finish`].
    pub fn memory_exceeded(&self) -> Option<u64> {
        let memory = self.slot.as_ref()?.memory.as_ref()?;
        (memory.oom_kills() > memory.baseline).then_some(memory.bytes)
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
        set_live(&slot.dir, false);
        let slot = match self.pool.upgrade() {
            Some(pool) if slot.charged() == Some(0) => match pool.put(slot) {
                Ok(()) => return true,
                Err(slot) => slot,
            },
            _ => slot,
        };
        if slot.remove() {
            return true;
        }
        set_live(&slot.dir, true);
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

/// [`sweep_stale`] of the host's cgroup bases a sandbox uses: the pids one, and the memory
/// one where it is apart (a v1 hierarchy; the memory cgroup comes with the pids one). True
/// when there was a pids base to sweep.
pub(crate) fn sweep_bases(host: &crate::HostSupport) -> bool {
    let Some(pids) = &host.pids_cgroup else {
        return false;
    };
    sweep_stale(pids);
    if let Some(memory) = host.memory_cgroup.as_ref().filter(|m| *m != pids) {
        sweep_stale(memory);
    }
    true
}

/// Removes the cgroups of Praxis processes that died without cleaning up (a worker killed
/// mid-command): their leftover processes are killed, then the directories removed.
fn sweep_stale(base: &Path) {
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
                memory: None,
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

/// What [`end_commands_of`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandsEnded {
    /// No process of the owner's commands is left in any of its cgroups (each one has
    /// passed the point of its exit after which it makes no system call); `cgroups` were
    /// emptied and removed.
    Gone { cgroups: usize },
    /// Processes were still listed when the wait ran out.
    StillRunning { pids: Vec<i32> },
    /// The host has no pids cgroup, so the commands' end cannot be seen here.
    Unknown { why: String },
}

/// Kills every process in the command cgroups of `owner` (the pid of a process that made
/// them, already reaped: a worker killed with a call in flight), and waits at most `wait`
/// until none is listed, then removes the cgroups. A process leaves `cgroup.procs` only
/// once every thread of it is past its last system call, so `Gone` means nothing of those
/// commands can write any more.
pub fn end_commands_of(owner: u32, wait: Duration) -> CommandsEnded {
    let host = crate::probe();
    let Some(base) = host.pids_cgroup.clone() else {
        return CommandsEnded::Unknown {
            why: host
                .pids_cgroup_why
                .unwrap_or_else(|| "no pids cgroup on this host".into()),
        };
    };
    // The owner was reaped: a live process of that pid is another one, whose cgroups these
    // may be.
    if Path::new(&format!("/proc/{owner}")).exists() {
        return CommandsEnded::Unknown {
            why: format!("pid {owner} was reused before its commands' cgroups were read"),
        };
    }
    let prefix = format!("praxis-{owner}-");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&base)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.starts_with(&prefix))
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    let count = dirs.len();
    let until = std::time::Instant::now() + wait;
    loop {
        let mut left = Vec::new();
        dirs.retain(|dir| {
            let pids: Vec<i32> = std::fs::read_to_string(dir.join("cgroup.procs"))
                .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
                .unwrap_or_default();
            if pids.is_empty() {
                let _ = std::fs::remove_dir(dir);
                if let (Some(memory), Some(name)) = (&host.memory_cgroup, dir.file_name())
                    && *memory != base
                {
                    let _ = std::fs::remove_dir(memory.join(name));
                }
                return false;
            }
            if std::fs::write(dir.join("cgroup.kill"), "1").is_err() {
                for &pid in &pids {
                    // SAFETY: plain kill(2); a pid that exited meanwhile yields ESRCH.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            left.extend(pids);
            true
        });
        if dirs.is_empty() {
            return CommandsEnded::Gone { cgroups: count };
        }
        if std::time::Instant::now() >= until {
            return CommandsEnded::StillRunning { pids: left };
        }
        std::thread::sleep(FINISH_PAUSE);
    }
}
