//! What this host's kernel offers, tested for real (in a throwaway forked child) rather than
//! guessed from configuration files; computed once per process.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The sandbox primitives this host offers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostSupport {
    /// The Landlock ABI version, None when Landlock is missing or disabled.
    pub landlock_abi: Option<i32>,
    /// Seccomp filters can be installed (tested in a child).
    pub seccomp: bool,
    /// `unshare(CLONE_NEWUSER | CLONE_NEWNET)` works for this user (tested in a child).
    pub user_namespaces: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_namespaces_why: Option<String>,
    /// A mount namespace and a PID namespace can be made inside a new user namespace
    /// (tested in a child; what a sandbox actually applies is in its report).
    pub mount_namespaces: bool,
    pub pid_namespaces: bool,
    /// A pids cgroup directory in which this process may create children.
    pub pids_cgroup: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_cgroup_why: Option<String>,
    /// A memory cgroup directory (v2 with the memory controller delegated, or the v1
    /// memory hierarchy) in which this process may create children.
    pub memory_cgroup: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_cgroup_why: Option<String>,
    /// The effective uid (RLIMIT_NPROC does not bind uid 0).
    pub uid: u32,
}

impl HostSupport {
    /// Landlock and seccomp both work: the boundary is real on this host.
    pub fn sandbox_available(&self) -> bool {
        self.landlock_abi.is_some() && self.seccomp
    }
}

/// Probes once; later calls return the cached answer.
pub fn probe() -> HostSupport {
    HOST.get_or_init(|| {
        PROBES.fetch_add(1, Ordering::Relaxed);
        probe_now()
    })
    .clone()
}

/// This process's answer, probed at most once.
static HOST: OnceLock<HostSupport> = OnceLock::new();
/// How many times this process probed the host (0 or 1).
static PROBES: AtomicUsize = AtomicUsize::new(0);

/// Takes `host` as this process's answer instead of probing, unless it probed already
/// (then false). For the tool worker, which its runtime starts on the same host as its own
/// child, with the same ids and cgroup: the runtime's probe (4 forked test children) is
/// made once per server, not once per worker.
pub fn adopt_probe(host: HostSupport) -> bool {
    HOST.set(host).is_ok()
}

/// How many times this process probed the host itself (0 when it adopted an answer).
pub fn host_probes() -> usize {
    PROBES.load(Ordering::Relaxed)
}

fn probe_now() -> HostSupport {
    // landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) returns the ABI.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    let userns =
        in_child(|| unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) == 0 });
    let mount_namespaces =
        in_child(|| unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) == 0 });
    let pid_namespaces =
        in_child(|| unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWPID) == 0 });
    let seccomp = in_child(|| unsafe {
        // An allow-everything filter: one `ret ALLOW` instruction.
        let mut insn = libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        };
        let prog = libc::sock_fprog {
            len: 1,
            filter: &mut insn,
        };
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
            && libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            ) == 0
    });
    let (pids_cgroup, pids_cgroup_why) = match find_cgroup("pids", &["pids.max"]) {
        Ok(dir) => (Some(dir), None),
        Err(why) => (None, Some(why)),
    };
    let (memory_cgroup, memory_cgroup_why) =
        match find_cgroup("memory", &["memory.max", "memory.limit_in_bytes"]) {
            Ok(dir) => (Some(dir), None),
            Err(why) => (None, Some(why)),
        };
    HostSupport {
        landlock_abi: (abi > 0).then_some(abi as i32),
        seccomp: seccomp.unwrap_or(false),
        user_namespaces: userns == Some(true),
        user_namespaces_why: match userns {
            Some(true) => None,
            Some(false) => Some(
                "unavailable: unshare(CLONE_NEWUSER|CLONE_NEWNET) is refused for this user \
                 (see /proc/sys/user/max_user_namespaces and AppArmor userns restrictions)"
                    .into(),
            ),
            None => Some("unavailable: could not fork a probe process".into()),
        },
        mount_namespaces: mount_namespaces == Some(true),
        pid_namespaces: pid_namespaces == Some(true),
        pids_cgroup,
        pids_cgroup_why,
        memory_cgroup,
        memory_cgroup_why,
        uid: unsafe { libc::geteuid() },
    }
}

/// Runs `test` in a forked child and returns what it answered (None if fork failed).
/// `test` must only make raw system calls (the parent may be multi-threaded).
pub(crate) fn in_child(test: impl Fn() -> bool) -> Option<bool> {
    // SAFETY: the child runs `test` (raw syscalls only) and `_exit`s; it never returns into
    // Rust code that could touch locks held by other threads of the parent.
    unsafe {
        let pid = libc::fork();
        if pid < 0 {
            return None;
        }
        if pid == 0 {
            libc::_exit(if test() { 0 } else { 1 });
        }
        let mut status = 0;
        loop {
            if libc::waitpid(pid, &mut status, 0) == pid {
                break;
            }
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return None;
            }
        }
        Some(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0)
    }
}

/// The cgroup of this process for `controller` in which it may create child cgroups (its v1
/// hierarchy or a v2 cgroup with the controller delegated), tested by creating one, looking
/// for one of `files` in it, and removing it.
fn find_cgroup(controller: &str, files: &[&str]) -> Result<PathBuf, String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("unavailable: cannot read /proc/self/mountinfo: {e}"))?;
    let membership = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("unavailable: cannot read /proc/self/cgroup: {e}"))?;
    let mut candidates = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(mount), Some(fstype), Some(options)) =
            (left.get(3), left.get(4), right.first(), right.get(2))
        else {
            continue;
        };
        let wanted = match *fstype {
            "cgroup" if options.split(',').any(|o| o == controller) => {
                membership.lines().find_map(|l| {
                    let mut parts = l.splitn(3, ':');
                    let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
                    controllers
                        .split(',')
                        .any(|c| c == controller)
                        .then(|| path.to_string())
                })
            }
            "cgroup2" => membership
                .lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_string)),
            _ => None,
        };
        if let Some(path) = wanted {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .trim_start_matches('/')
                .to_string();
            candidates.push(Path::new(mount).join(rel));
        }
    }
    if candidates.is_empty() {
        return Err(format!(
            "unavailable: no {controller} cgroup controller is mounted"
        ));
    }
    let mut last = String::new();
    for base in candidates {
        let test = base.join(format!("praxis-probe-{}", std::process::id()));
        match std::fs::create_dir(&test) {
            Ok(()) => {
                let ok = files.iter().any(|f| test.join(f).exists());
                let _ = std::fs::remove_dir(&test);
                if ok {
                    return Ok(base);
                }
                last = format!(
                    "unavailable: the {controller} controller is not delegated below {}",
                    base.display()
                );
            }
            Err(e) => {
                last = format!(
                    "unavailable: cannot create a cgroup under {}: {e}",
                    base.display()
                )
            }
        }
    }
    Err(last)
}
