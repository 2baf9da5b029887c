//! What a sandbox is asked for: its workspace, grants, deny paths and resource limits.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Resource limits applied with `setrlimit` in the child (soft = hard).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourceLimits {
    /// CPU seconds per process (RLIMIT_CPU).
    pub cpu_seconds: u64,
    /// Virtual address space per process, bytes (RLIMIT_AS).
    pub address_space_bytes: u64,
    /// Open file descriptors per process (RLIMIT_NOFILE).
    pub open_files: u64,
    /// Processes the command may have at once (RLIMIT_NPROC inside its user namespace, and
    /// the pids cgroup's `pids.max` where the host offers one).
    pub processes: u64,
    /// Largest file a process may write, bytes (RLIMIT_FSIZE).
    pub file_size_bytes: u64,
    /// Memory of a command and everything it started, together, bytes: the `memory.max`
    /// (cgroup v2) or `memory.limit_in_bytes` (v1) of its cgroup, where the host delegates
    /// the memory controller. Beyond it the kernel kills a process of the command.
    pub memory_bytes: u64,
}

impl Default for ResourceLimits {
    fn default() -> Self {
        ResourceLimits {
            cpu_seconds: 3600,
            address_space_bytes: 16 << 30,
            open_files: 4096,
            processes: 512,
            file_size_bytes: 4 << 30,
            memory_bytes: 4 << 30,
        }
    }
}

/// What a confined command may touch.
#[derive(Clone, Debug)]
pub struct SandboxPolicy {
    /// Read-write (the only writable place besides the private home).
    pub workspace: PathBuf,
    /// Network reachable (no new network namespace, no socket filter, no Landlock TCP rule).
    pub allow_network: bool,
    /// Extra read+execute grants (toolchains). Dropped when they would cover a deny path.
    pub read_paths: Vec<PathBuf>,
    /// Extra read-write grants.
    pub write_paths: Vec<PathBuf>,
    /// Never granted through `read_paths`, PATH directories or toolchain homes: a grant that
    /// equals or contains one of these is dropped (Landlock can only allow, not carve out).
    pub deny_paths: Vec<PathBuf>,
    pub limits: ResourceLimits,
    /// Where the private HOME is created (default: the system temp dir).
    pub home_parent: Option<PathBuf>,
    /// Commands may write the workspace's `.git` directory (default: it is mounted
    /// read-only for them, so no command can plant a hook that runs at the user's next
    /// `git commit`).
    pub git_writable: bool,
}

impl SandboxPolicy {
    /// A policy for `workspace` with the default limits, no network, and the standard deny
    /// list ([`default_deny_paths`]).
    pub fn new(workspace: impl Into<PathBuf>) -> Self {
        SandboxPolicy {
            workspace: workspace.into(),
            allow_network: false,
            read_paths: Vec::new(),
            write_paths: Vec::new(),
            deny_paths: default_deny_paths(),
            limits: ResourceLimits::default(),
            home_parent: None,
            git_writable: false,
        }
    }
}

/// The real home directory itself (so `~` is never granted as a whole), `~/.ssh`,
/// `~/.gnupg`, `~/.aws`, `~/.kube`, `~/.docker`, `~/.config`, `~/.local/share` (the default
/// Praxis data dir lives there) and `$PRAXIS_HOME`.
pub fn default_deny_paths() -> Vec<PathBuf> {
    let mut deny = Vec::new();
    if let Some(home) = real_home() {
        for sub in [
            "",
            ".ssh",
            ".gnupg",
            ".aws",
            ".kube",
            ".docker",
            ".config",
            ".local/share",
        ] {
            deny.push(if sub.is_empty() {
                home.clone()
            } else {
                home.join(sub)
            });
        }
    }
    if let Some(dir) = std::env::var_os("PRAXIS_HOME").filter(|d| !d.is_empty()) {
        deny.push(PathBuf::from(dir));
    }
    deny
}

pub(crate) fn real_home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}
