//! No git metadata planted by a run survives the call that planted it.
//!
//! Git runs code named by a repository's metadata (`config`: `core.fsmonitor`,
//! `core.hooksPath`, aliases, filters; `hooks/*`; `commondir`, which redirects to another
//! `config`) at the user's next git command in that folder, unconfined. The workspace's
//! existing git directories are mounted read-only for commands (see `praxis-sandbox`), but a
//! command can make new ones (`git init sub`, a `.git` file with `gitdir: ../x`, a bare
//! repository's shape `HEAD` + `objects` + `refs`), and where the sandbox has no mount
//! namespace it can write the existing ones.
//!
//! So after every call that may write (the tracker's refresh, in the process that opens
//! workspace files), the workspace is walked through descriptors, with no link followed,
//! and every *git context* (a directory named `.git`, or one git would take for a git
//! directory: `HEAD` plus `commondir` or `objects` and `refs`) that is not protected (mounted
//! read-only for commands) is checked against what was known after the previous call:
//! - a context that is new at its path (made, moved or swapped in) loses every code-bearing
//!   entry (`config`, `config.worktree`, `commondir`, `hooks`);
//! - a known context loses each code-bearing entry whose status changed since the previous
//!   scan (the change time cannot be set back by a process; a rename or link sets it too),
//!   a `hooks` directory that was replaced, and each hook changed since;
//! - a `.git` file or link that is new at its path is removed (it points git elsewhere).
//!
//! What was removed is returned, for the call's record (`execution.git_removed`). A writ
//! that grants commands write access to `.git` switches this off (see `CaptureLimits::git`).

use crate::Workspace;
use crate::wsfs::{MAX_WALK_DEPTH, component, open_subdir, read_entries, stat_nofollow};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// The entries of a git directory that can make git run code.
const CODE_BEARING: [&str; 4] = ["config", "config.worktree", "commondir", "hooks"];

/// What the git guard is told by the run (serialized with the capture limits).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct GitGuardSettings {
    /// Sweep after each call (false: the writ grants commands write access to `.git`).
    pub sweep: bool,
    /// Workspace-relative directories commands cannot write (mounted read-only for them):
    /// not swept, since what changes there is the user's own doing. Filled in by the
    /// process that owns the sandbox.
    #[serde(default)]
    pub protected: Vec<String>,
}

impl Default for GitGuardSettings {
    fn default() -> Self {
        GitGuardSettings {
            sweep: true,
            protected: Vec::new(),
        }
    }
}

/// What one git context was after the last scan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Known {
    dev: u64,
    ino: u64,
    /// The inode of its `hooks` directory, if it had one.
    #[serde(default)]
    hooks: Option<u64>,
}

/// The guard's memory between calls (part of the tracker's state, so a restarted worker
/// goes on from it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitGuardState {
    /// Git contexts (and `.git` files or links, with `hooks: None`) by workspace path.
    pub known: BTreeMap<String, Known>,
    /// When the last scan started (`CLOCK_REALTIME_COARSE`, the clock file times come from).
    pub scanned_at_ns: i64,
    /// The protected git directories of the run's start (see
    /// [`GitGuardSettings::protected`]): a worker that replaces a dead one keeps them, and
    /// never takes for the user's a git directory a call planted before its sandbox was
    /// made (None: a state from before this field).
    #[serde(default)]
    pub protected: Option<Vec<String>>,
}

/// One entry's status, read without following a link.
struct Stat {
    dev: u64,
    ino: u64,
    ctime_ns: i64,
    is_dir: bool,
}

fn stat_at(dir: BorrowedFd<'_>, name: &CStr) -> Option<Stat> {
    let st = stat_nofollow(dir, name)?;
    Some(Stat {
        dev: st.st_dev,
        ino: st.st_ino,
        ctime_ns: st.st_ctime.saturating_mul(1_000_000_000) + st.st_ctime_nsec,
        is_dir: st.st_mode & libc::S_IFMT == libc::S_IFDIR,
    })
}

/// The coarse real-time clock, which file times are taken from.
fn coarse_now_ns() -> i64 {
    now_ns(libc::CLOCK_REALTIME_COARSE)
}

/// `clock` now, in nanoseconds.
fn now_ns(clock: libc::clockid_t) -> i64 {
    // SAFETY: plain timespec filled by the kernel.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid clock id and buffer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec.saturating_mul(1_000_000_000) + ts.tv_nsec
}

/// The length of one tick of the coarse clock (at least 1 ms).
fn tick_ns() -> i64 {
    static TICK: OnceLock<i64> = OnceLock::new();
    *TICK.get_or_init(|| {
        // SAFETY: plain timespec filled by the kernel.
        let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
        // SAFETY: valid clock id and buffer.
        let res = unsafe { libc::clock_getres(libc::CLOCK_REALTIME_COARSE, &mut ts) };
        let tick = ts.tv_sec.saturating_mul(1_000_000_000) + ts.tv_nsec;
        if res == 0 {
            tick.max(1_000_000)
        } else {
            10_000_000
        }
    })
}

/// A boundary no change made before this call carries a change time at or after: the
/// start of the coarse clock's next tick, or a nanosecond after the real time now if that is
/// later. File times never run ahead of the real time, fine-grained ones included, but the
/// coarse clock can lag it by more than a tick (a VM whose ticks came late, under load): a
/// change made just before, stamped with a fine-grained time, could otherwise land after
/// the coarse clock's next tick and be taken for the call's. Not waited for here: when the
/// scan found a git context, the next tool call waits until the coarse clock has passed it
/// ([`changes_may_start`]), so every change a call makes carries a time at or after it.
fn next_tick_ns() -> i64 {
    (coarse_now_ns() + tick_ns()).max(now_ns(libc::CLOCK_REALTIME) + 1)
}

/// The latest boundary a scan of this process handed out (see [`next_tick_ns`]).
static CHANGES_NOT_BEFORE: AtomicI64 = AtomicI64::new(0);

/// How long until a change made now carries a time at or after every boundary this process
/// handed out (None: already).
fn until_changes_may_start() -> Option<Duration> {
    let left = CHANGES_NOT_BEFORE.load(Ordering::SeqCst) - coarse_now_ns();
    (left > 0).then(|| Duration::from_nanos(left.unsigned_abs()))
}

/// Waits (at most one tick of the coarse clock) until the last scan's boundary has passed,
/// so what a tool call changes from now on is seen as changed after that scan. Every tool
/// call that runs here waits for it first ([`crate::Registry::execute`]); a run's first call
/// usually starts well after the start's scan, and then waits for nothing.
pub async fn changes_may_start() {
    while let Some(left) = until_changes_may_start() {
        tokio::time::sleep(left.min(Duration::from_millis(1))).await;
    }
}

/// Removes `name` in `dir` (a directory with everything below it), never following a link.
fn remove_at(dir: BorrowedFd<'_>, name: &CStr, depth: usize) -> io::Result<()> {
    let Some(stat) = stat_at(dir, name) else {
        return Err(io::Error::last_os_error());
    };
    if stat.is_dir {
        if depth >= MAX_WALK_DEPTH {
            return Err(io::Error::other("too deep"));
        }
        let child = open_subdir(dir, name)?;
        for (entry, _, _) in read_entries(child.as_fd())? {
            remove_at(child.as_fd(), &entry, depth + 1)?;
        }
    }
    let flags = if stat.is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: live descriptor, NUL-terminated name.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn join(prefix: &str, part: &str) -> String {
    if prefix.is_empty() {
        part.to_string()
    } else {
        format!("{prefix}/{part}")
    }
}

/// One sweep in progress.
struct Sweep<'a> {
    settings: &'a GitGuardSettings,
    /// Learn what is there, remove nothing (the run's start: what is there is the user's).
    learn_only: bool,
    before: &'a GitGuardState,
    known: BTreeMap<String, Known>,
    /// Git contexts found: only theirs are judged by change time at the next scan.
    contexts: usize,
    removed: Vec<String>,
}

impl Sweep<'_> {
    fn remove(&mut self, dir: BorrowedFd<'_>, name: &CStr, rel: String) {
        if self.learn_only {
            return;
        }
        match remove_at(dir, name, 0) {
            Ok(()) => self.removed.push(rel),
            Err(e) => eprintln!("praxis: could not remove git metadata {rel}: {e}"),
        }
    }

    fn is_protected(&self, rel: &str) -> bool {
        self.settings
            .protected
            .iter()
            .any(|p| rel == p || rel.starts_with(&format!("{p}/")))
    }

    fn walk(&mut self, dir: &OwnedFd, rel: &str, is_git_named: bool, depth: usize) {
        let Ok(entries) = read_entries(dir.as_fd()) else {
            return;
        };
        let has = |n: &str| entries.iter().any(|(e, _, _)| e.to_bytes() == n.as_bytes());
        // What git's own test for a git directory looks at.
        let is_context =
            is_git_named || (has("HEAD") && (has("commondir") || (has("objects") && has("refs"))));
        if is_context {
            self.check_context(dir, rel);
        }
        for (name, is_dir, _) in &entries {
            let part = component(name);
            let child_rel = join(rel, &part);
            if self.is_protected(&child_rel) {
                continue;
            }
            if part == ".git" && !is_dir {
                // A `.git` file or link sends git elsewhere; a new one is removed.
                let Some(stat) = stat_at(dir.as_fd(), name) else {
                    continue;
                };
                let now = Known {
                    dev: stat.dev,
                    ino: stat.ino,
                    hooks: None,
                };
                if self.learn_only || self.before.known.get(&child_rel) == Some(&now) {
                    self.known.insert(child_rel, now);
                } else {
                    self.remove(dir.as_fd(), name, child_rel);
                }
                continue;
            }
            if !is_dir || depth >= MAX_WALK_DEPTH {
                continue;
            }
            let Ok(child) = open_subdir(dir.as_fd(), name) else {
                continue;
            };
            self.walk(&child, &child_rel, part == ".git", depth + 1);
        }
    }

    /// Strips a git context at `rel` of what a call planted in it.
    fn check_context(&mut self, dir: &OwnedFd, rel: &str) {
        let Some(own) = stat_at(dir.as_fd(), c".") else {
            return;
        };
        let key = if rel.is_empty() { "." } else { rel };
        let previous = self.before.known.get(key);
        let fresh =
            !self.learn_only && previous.is_none_or(|k| (k.dev, k.ino) != (own.dev, own.ino));
        let since = self.before.scanned_at_ns;
        for name in CODE_BEARING {
            let c_name = CString::new(name).expect("no NUL");
            let Some(stat) = stat_at(dir.as_fd(), &c_name) else {
                continue;
            };
            let path = join(rel, name);
            let replaced_hooks = name == "hooks"
                && previous.is_some_and(|k| k.hooks.is_some_and(|ino| ino != stat.ino));
            if fresh || replaced_hooks || (name != "hooks" && stat.ctime_ns >= since) {
                self.remove(dir.as_fd(), &c_name, path);
            } else if name == "hooks" && stat.is_dir {
                self.sweep_hooks(dir, &c_name, &path, since);
            }
        }
        let hooks = stat_at(dir.as_fd(), c"hooks").map(|s| s.ino);
        self.contexts += 1;
        self.known.insert(
            key.to_string(),
            Known {
                dev: own.dev,
                ino: own.ino,
                hooks,
            },
        );
    }

    /// Removes each hook changed since `since` from a known `hooks` directory.
    fn sweep_hooks(&mut self, dir: &OwnedFd, name: &CStr, rel: &str, since: i64) {
        let Ok(hooks) = open_subdir(dir.as_fd(), name) else {
            return;
        };
        let Ok(entries) = read_entries(hooks.as_fd()) else {
            return;
        };
        for (hook, _, _) in entries {
            if stat_at(hooks.as_fd(), &hook).is_some_and(|s| s.ctime_ns >= since) {
                let path = join(rel, &component(&hook));
                self.remove(hooks.as_fd(), &hook, path);
            }
        }
    }
}

/// Scans `ws` and strips what was planted since `before` (see the module docs). Returns the
/// new state and the workspace paths removed, sorted. With `before: None` (the run's start)
/// nothing is removed: what is there is the user's.
pub fn sweep(
    ws: &Workspace,
    settings: &GitGuardSettings,
    before: Option<&GitGuardState>,
) -> (GitGuardState, Vec<String>) {
    let scanned_at_ns = next_tick_ns();
    let baseline = GitGuardState {
        known: BTreeMap::new(),
        scanned_at_ns: i64::MAX,
        protected: None,
    };
    let mut sweep = Sweep {
        settings,
        learn_only: before.is_none(),
        before: before.unwrap_or(&baseline),
        known: BTreeMap::new(),
        contexts: 0,
        removed: Vec::new(),
    };
    if settings.sweep
        && let Ok(root) = open_subdir(ws.root_fd(), c".")
    {
        sweep.walk(&root, "", false, 0);
    }
    // The next scan judges a known context's entries by their change time against this
    // scan's boundary, so tool calls wait for it ([`changes_may_start`]). Without a known
    // context nothing is judged by time (a context that appears is new at its path, and a
    // `.git` file is judged by its inode), and no call need wait.
    if sweep.contexts > 0 {
        CHANGES_NOT_BEFORE.fetch_max(scanned_at_ns, Ordering::SeqCst);
    }
    let mut removed = sweep.removed;
    removed.sort();
    (
        GitGuardState {
            known: sweep.known,
            scanned_at_ns,
            protected: Some(settings.protected.clone()),
        },
        removed,
    )
}

#[cfg(test)]
mod tests;
