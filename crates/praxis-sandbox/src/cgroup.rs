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
use std::time::Duration;

/// How often `finish` re-reads the cgroup while killed processes are still exiting.
const FINISH_ROUNDS: u32 = 50;
const FINISH_PAUSE: Duration = Duration::from_millis(10);

#[derive(Debug)]
pub struct SpawnCgroup {
    dir: PathBuf,
    procs: File,
    finished: bool,
}

impl SpawnCgroup {
    pub(crate) fn create(base: &Path, max: u64) -> Result<SpawnCgroup, SandboxError> {
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
            Ok(procs) => Ok(SpawnCgroup {
                dir,
                procs,
                finished: false,
            }),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(fail(e))
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The open `cgroup.procs` the child writes "0" to (joining the cgroup).
    pub(crate) fn procs_fd(&self) -> BorrowedFd<'_> {
        self.procs.as_fd()
    }

    /// Pids currently in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Removes the cgroup if it is already empty (the common case: the command and its
    /// group are gone). Cheap and non-blocking; true when done.
    pub fn try_finish_now(&mut self) -> bool {
        if !self.finished && self.pids().is_empty() && std::fs::remove_dir(&self.dir).is_ok() {
            self.finished = true;
        }
        self.finished
    }

    /// Kills every process still in the cgroup (SIGKILL), waits briefly for them to leave
    /// and removes the cgroup. Blocking (at most about half a second); idempotent. Returns
    /// how many processes had to be killed.
    pub fn finish(&mut self) -> usize {
        if self.finished {
            return 0;
        }
        let mut killed = std::collections::BTreeSet::new();
        for _ in 0..FINISH_ROUNDS {
            let pids = self.pids();
            if pids.is_empty() && std::fs::remove_dir(&self.dir).is_ok() {
                self.finished = true;
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
            dir: entry.path(),
            procs: match File::open(entry.path().join("cgroup.procs")) {
                Ok(f) => f,
                Err(_) => continue,
            },
            finished: false,
        };
        stale.finish();
    }
}

impl Drop for SpawnCgroup {
    fn drop(&mut self) {
        self.finish();
    }
}
