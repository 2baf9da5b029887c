//! The sandbox's mount namespace: what a command sees of the file tree beyond what Landlock
//! lets it open.
//!
//! - With the network denied, `/tmp`, `/run`, `/var/run` and `/dev/shm` are private, empty
//!   tmpfs mounts, so no pathname Unix socket of the host there (ssh-agent, docker, dbus,
//!   postgres, X11) can be reached: Landlock does not govern `connect`. The paths the
//!   sandbox grants (the workspace, the private home, extra grants) that lie below one of
//!   them are mounted back at their own place.
//! - The workspace's git directories (its `.git`, every nested `.git` directory and every
//!   directory git would take for one, found when the sandbox is made) are mounted read-only
//!   (recursively) unless the policy says otherwise: Landlock cannot take a subtree back
//!   from a granted parent, and a writable `.git/hooks` or `.git/config` is code that runs
//!   unconfined at the user's next git command. Git metadata that appears later is stripped
//!   after each call by the tool fabric's git guard (`praxis_tools::gitguard`).
//!
//! Applied right after the user namespace (whose capabilities the mounts need) and before
//! Landlock and seccomp (which forbid mounting). Everything is prepared here; applying
//! makes raw system calls only, with the new mount API: a kept path is cloned as a
//! detached tree (`open_tree`) before the tmpfs covers it, then moved onto its place.

use crate::landlock_rules::Resolver;
use std::ffi::{CString, c_int, c_uint};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const OPEN_TREE_CLONE: c_uint = 1;
const AT_RECURSIVE: c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: c_uint = 0x4;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// The most paths put back below private directories (a fixed array in the child).
const MAX_KEPT: usize = 32;
/// The most git directories mounted read-only (the git guard sweeps the rest).
const MAX_GIT_DIRS: usize = 64;
/// Directory entries looked at, at most, while looking for git directories.
const MAX_GIT_SCAN: usize = 200_000;
/// Directories deeper than this are not looked into for git directories.
const MAX_GIT_DEPTH: usize = 128;

/// The directories a command gets empty, private copies of when the network is denied.
const PRIVATE_DIRS: [&str; 4] = ["/tmp", "/run", "/var/run", "/dev/shm"];

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A path mounted back below a private directory.
#[derive(Debug)]
struct Kept {
    path: CString,
    is_dir: bool,
    /// Its ancestors below the private directory, outermost first (created in the tmpfs).
    parents: Vec<CString>,
}

#[derive(Debug)]
pub(crate) struct MountPlan {
    private: Vec<CString>,
    kept: Vec<Kept>,
    read_only: Vec<CString>,
    /// For the report.
    private_names: Vec<String>,
    read_only_names: Vec<String>,
    read_only_paths: Vec<PathBuf>,
}

fn c_path(path: &Path) -> Option<CString> {
    CString::new(path.as_os_str().as_bytes()).ok()
}

impl MountPlan {
    /// `granted`: every path the sandbox grants (canonical where it exists).
    /// `private_tmp`: give commands private /tmp, /run, /var/run and /dev/shm.
    /// `read_only`: directories mounted read-only (the workspace's `.git`).
    /// `resolver`: where each granted path's canonical form is looked up.
    pub(crate) fn new(
        granted: &[PathBuf],
        private_tmp: bool,
        read_only: &[PathBuf],
        resolver: &mut Resolver,
    ) -> MountPlan {
        let canonical: Vec<PathBuf> = granted
            .iter()
            .filter_map(|p| resolver.canonical(p))
            .collect();
        let private: Vec<PathBuf> = if private_tmp {
            PRIVATE_DIRS
                .iter()
                .map(PathBuf::from)
                // A symlink (/var/run -> /run) leads into a private directory anyway.
                .filter(|d| std::fs::symlink_metadata(d).is_ok_and(|m| m.is_dir()))
                // A directory granted as a whole (a workspace of /tmp) stays as it is.
                .filter(|d| !canonical.contains(d))
                .collect()
        } else {
            Vec::new()
        };
        let mut kept_paths: Vec<(PathBuf, &Path)> = Vec::new();
        for real in canonical {
            let Some(under) = private.iter().find(|d| real.starts_with(d) && real != **d) else {
                continue;
            };
            kept_paths.push((real, under));
        }
        kept_paths.sort();
        kept_paths.dedup_by(|later, earlier| later.0.starts_with(&earlier.0));
        let mut kept = Vec::new();
        for (path, under) in kept_paths.into_iter().take(MAX_KEPT) {
            let mut parents = Vec::new();
            let mut at = path.parent();
            while let Some(dir) = at {
                if dir == under {
                    break;
                }
                parents.extend(c_path(dir));
                at = dir.parent();
            }
            parents.reverse();
            if let Some(c) = c_path(&path) {
                kept.push(Kept {
                    is_dir: path.is_dir(),
                    path: c,
                    parents,
                });
            }
        }
        let read_only: Vec<&PathBuf> = read_only.iter().filter(|p| p.is_dir()).collect();
        MountPlan {
            private: private.iter().filter_map(|p| c_path(p)).collect(),
            kept,
            read_only: read_only.iter().filter_map(|p| c_path(p)).collect(),
            private_names: private.iter().map(|p| p.display().to_string()).collect(),
            read_only_names: read_only.iter().map(|p| p.display().to_string()).collect(),
            read_only_paths: read_only.into_iter().cloned().collect(),
        }
    }

    /// The directories this plan mounts read-only.
    pub(crate) fn read_only_paths(&self) -> &[PathBuf] {
        &self.read_only_paths
    }

    /// What the plan does, for the sandbox report.
    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.private_names.is_empty() {
            parts.push(
                "no private /tmp or /run (network allowed: host sockets stay reachable)"
                    .to_string(),
            );
        } else {
            parts.push(format!(
                "private empty tmpfs on {} (granted paths below them mounted back)",
                self.private_names.join(", ")
            ));
        }
        if self.read_only_names.is_empty() {
            parts.push("no read-only git directory".into());
        } else {
            parts.push(format!("read-only {}", self.read_only_names.join(", ")));
        }
        format!(
            "a mount namespace of the sandbox's own: {}",
            parts.join("; ")
        )
    }

    /// Unshares a mount namespace and sets it up.
    ///
    /// # Safety
    /// Raw system calls only (callable in a forked or vforked child), with the capabilities
    /// of a user namespace of the caller's own.
    pub(crate) unsafe fn apply(&self) -> io::Result<()> {
        let fail = || Err(io::Error::last_os_error());
        unsafe {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return fail();
            }
            // Nothing mounted here propagates back to the host.
            if libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return fail();
            }
            let mut trees = [-1 as c_int; MAX_KEPT];
            let result = self.mount_all(&mut trees);
            for fd in trees {
                if fd >= 0 {
                    libc::close(fd);
                }
            }
            result
        }
    }

    unsafe fn mount_all(&self, trees: &mut [c_int; MAX_KEPT]) -> io::Result<()> {
        let fail = || Err(io::Error::last_os_error());
        unsafe {
            // Detached copies of the granted paths, taken before the tmpfs hides them.
            for (slot, kept) in trees.iter_mut().zip(&self.kept) {
                *slot = open_tree(libc::AT_FDCWD, kept.path.as_ptr())?;
            }
            for dir in &self.private {
                if libc::mount(
                    c"tmpfs".as_ptr(),
                    dir.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    c"mode=1777,size=64m".as_ptr().cast(),
                ) != 0
                {
                    return fail();
                }
            }
            for (&tree, kept) in trees.iter().zip(&self.kept) {
                for parent in &kept.parents {
                    if libc::mkdir(parent.as_ptr(), 0o755) != 0
                        && *libc::__errno_location() != libc::EEXIST
                    {
                        return fail();
                    }
                }
                if kept.is_dir {
                    if libc::mkdir(kept.path.as_ptr(), 0o700) != 0
                        && *libc::__errno_location() != libc::EEXIST
                    {
                        return fail();
                    }
                } else {
                    let fd = libc::open(
                        kept.path.as_ptr(),
                        libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                        0o600,
                    );
                    if fd < 0 {
                        return fail();
                    }
                    libc::close(fd);
                }
                move_mount(tree, kept.path.as_ptr())?;
            }
            for dir in &self.read_only {
                let tree = open_tree(libc::AT_FDCWD, dir.as_ptr())?;
                let attr = MountAttr {
                    attr_set: MOUNT_ATTR_RDONLY,
                    attr_clr: 0,
                    propagation: 0,
                    userns_fd: 0,
                };
                let set = libc::syscall(
                    libc::SYS_mount_setattr,
                    tree,
                    c"".as_ptr(),
                    (libc::AT_EMPTY_PATH as c_uint) | AT_RECURSIVE,
                    &attr as *const MountAttr,
                    std::mem::size_of::<MountAttr>(),
                );
                let moved = if set == 0 {
                    move_mount(tree, dir.as_ptr())
                } else {
                    fail()
                };
                libc::close(tree);
                moved?;
            }
        }
        Ok(())
    }
}

/// The git directories of `workspace` (canonical): a `.git` directory, or a directory git
/// would take for a git directory (`HEAD` plus `commondir`, or `objects` and `refs`), not
/// looked into further (a read-only mount covers what is below). Links are not followed; at
/// most [`MAX_GIT_DIRS`], within [`MAX_GIT_SCAN`] entries and [`MAX_GIT_DEPTH`] levels.
pub(crate) fn git_dirs(workspace: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut budget = MAX_GIT_SCAN;
    let mut stack = vec![(workspace.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names = Vec::new();
        let mut subdirs = Vec::new();
        for entry in entries.flatten() {
            budget = budget.saturating_sub(1);
            if budget == 0 {
                return found;
            }
            let name = entry.file_name();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                subdirs.push(name.clone());
            }
            names.push(name);
        }
        let has = |n: &str| names.iter().any(|x| x == n);
        let git_shaped = has("HEAD") && (has("commondir") || (has("objects") && has("refs")));
        // The workspace itself is never made read-only (a bare repository as a workspace).
        if dir != workspace && (git_shaped || dir.file_name().is_some_and(|n| n == ".git")) {
            found.push(dir);
            if found.len() >= MAX_GIT_DIRS {
                return found;
            }
            continue;
        }
        if depth < MAX_GIT_DEPTH {
            stack.extend(subdirs.into_iter().map(|n| (dir.join(n), depth + 1)));
        }
    }
    found.sort();
    found
}

/// A detached, recursive copy of the mount tree at `path`.
unsafe fn open_tree(dirfd: c_int, path: *const libc::c_char) -> io::Result<c_int> {
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            dirfd,
            path,
            OPEN_TREE_CLONE | AT_RECURSIVE | libc::O_CLOEXEC as c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd as c_int)
}

/// Attaches the detached tree `tree` at `target`.
unsafe fn move_mount(tree: c_int, target: *const libc::c_char) -> io::Result<()> {
    let moved = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree,
            c"".as_ptr(),
            libc::AT_FDCWD,
            target,
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if moved != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
