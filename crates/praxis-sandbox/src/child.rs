//! What runs in the forked child before exec. Everything is prepared by the parent; the
//! child only makes raw system calls on that data (no allocation, no locks).

use crate::ResourceLimits;
use crate::mounts::MountPlan;
use crate::namespaces::{self, SharedNetwork};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

#[cfg(all(target_os = "linux", target_env = "gnu"))]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type Resource = libc::c_int;

/// How a command gets its namespaces.
#[derive(Debug)]
pub(crate) enum Namespaces {
    /// None (the host refuses user namespaces).
    Keep,
    /// `unshare` these flags (with the id maps when CLONE_NEWUSER is among them).
    Unshare(libc::c_int),
    /// Join the sandbox's user and empty network namespace, then unshare a user namespace
    /// of its own (see `namespaces`).
    Join(SharedNetwork),
    /// What `Join` gives, made by the process itself: a user namespace with an empty
    /// network namespace, then a user namespace of its own inside it (so it holds no
    /// capability over that network). For a spawner that sets itself up at its first
    /// command: no network namespace is made for a sandbox that never starts one.
    OwnNetwork,
}

#[derive(Debug)]
pub(crate) struct ChildPlan {
    namespaces: Namespaces,
    /// The mount namespace, entered right after the user namespace (None: not applied).
    pub(crate) mounts: Option<MountPlan>,
    /// The spawner gives its commands a PID namespace with their own /proc (see
    /// `spawner`); commands started directly have none.
    pub(crate) pid_namespace: bool,
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
    rlimits: Vec<(Resource, libc::rlimit)>,
    landlock: Option<OwnedFd>,
    seccomp: Vec<Vec<libc::sock_filter>>,
}

/// The rlimits to apply, each capped at the current hard limit (an unprivileged process
/// cannot raise it, and asking would make the spawn fail).
pub(crate) fn rlimits(limits: &ResourceLimits, in_user_ns: bool) -> Vec<(Resource, libc::rlimit)> {
    let processes = if in_user_ns {
        // Counted per user namespace: the command's own namespace starts empty.
        limits.processes
    } else {
        // Counted over every process of the uid: leave room for what already runs.
        limits.processes + processes_of_uid()
    };
    let wanted: [(Resource, u64); 6] = [
        (libc::RLIMIT_CPU as Resource, limits.cpu_seconds),
        (libc::RLIMIT_AS as Resource, limits.address_space_bytes),
        (libc::RLIMIT_NOFILE as Resource, limits.open_files),
        (libc::RLIMIT_NPROC as Resource, processes),
        (libc::RLIMIT_FSIZE as Resource, limits.file_size_bytes),
        (libc::RLIMIT_CORE as Resource, 0),
    ];
    wanted
        .into_iter()
        .map(|(resource, value)| {
            let mut current = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes into the struct we pass.
            let hard = if unsafe { libc::getrlimit(resource, &mut current) } == 0 {
                current.rlim_max
            } else {
                libc::RLIM_INFINITY
            };
            let value = (value as libc::rlim_t).min(hard);
            (
                resource,
                libc::rlimit {
                    rlim_cur: value,
                    rlim_max: value,
                },
            )
        })
        .collect()
}

fn processes_of_uid() -> u64 {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            use std::os::unix::fs::MetadataExt;
            e.metadata().is_ok_and(|m| m.uid() == uid)
        })
        .count() as u64
}

impl ChildPlan {
    /// The id maps that keep the ids as they are, so files keep their owners and `id`
    /// prints what it printed outside.
    pub(crate) fn id_maps() -> (Vec<u8>, Vec<u8>) {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        (
            format!("{uid} {uid} 1\n").into_bytes(),
            format!("{gid} {gid} 1\n").into_bytes(),
        )
    }

    pub(crate) fn new(
        namespaces: Namespaces,
        rlimits: Vec<(Resource, libc::rlimit)>,
        landlock: Option<OwnedFd>,
        seccomp: Vec<Vec<libc::sock_filter>>,
    ) -> Self {
        let (uid_map, gid_map) = Self::id_maps();
        ChildPlan {
            namespaces,
            mounts: None,
            pid_namespace: false,
            uid_map,
            gid_map,
            rlimits,
            landlock,
            seccomp,
        }
    }

    /// The descriptors applying the plan uses (-1 for none): the Landlock ruleset and the
    /// shared namespaces.
    pub(crate) fn fds(&self) -> [RawFd; 3] {
        let (user, net) = match &self.namespaces {
            Namespaces::Join(shared) => (shared.user.as_raw_fd(), shared.net.as_raw_fd()),
            _ => (-1, -1),
        };
        [
            self.landlock.as_ref().map_or(-1, AsRawFd::as_raw_fd),
            user,
            net,
        ]
    }

    /// Confines the calling (child) process.
    ///
    /// # Safety
    /// Call only in a freshly forked child before exec. Makes raw system calls on data owned
    /// by `self`, allocates nothing and takes no lock.
    pub(crate) unsafe fn apply(&self) -> io::Result<()> {
        unsafe {
            self.enter_namespaces()?;
            self.restrict()
        }
    }

    /// The namespaces: user and network, then the mount namespace.
    ///
    /// # Safety
    /// As [`ChildPlan::apply`].
    pub(crate) unsafe fn enter_namespaces(&self) -> io::Result<()> {
        unsafe {
            match &self.namespaces {
                Namespaces::Keep => {}
                Namespaces::Unshare(flags) => {
                    namespaces::enter_new(*flags, &self.uid_map, &self.gid_map)?;
                }
                Namespaces::Join(shared) => namespaces::join(
                    shared.user.as_raw_fd(),
                    shared.net.as_raw_fd(),
                    &self.uid_map,
                    &self.gid_map,
                )?,
                Namespaces::OwnNetwork => {
                    namespaces::enter_new(
                        libc::CLONE_NEWUSER | libc::CLONE_NEWNET,
                        &self.uid_map,
                        &self.gid_map,
                    )?;
                    namespaces::enter_new(libc::CLONE_NEWUSER, &self.uid_map, &self.gid_map)?;
                }
            }
            if let Some(mounts) = &self.mounts {
                mounts.apply()?;
            }
        }
        Ok(())
    }

    /// Lets the Landlock ruleset read the `/proc` now mounted for a PID namespace (a rule
    /// on the host's /proc does not reach a filesystem mounted over it). No-op without
    /// Landlock.
    ///
    /// # Safety
    /// As [`ChildPlan::apply`]; before [`ChildPlan::restrict`].
    pub(crate) unsafe fn grant_new_proc(&self) -> io::Result<()> {
        /// `struct landlock_path_beneath_attr` (packed).
        #[repr(C, packed)]
        struct PathBeneath {
            allowed_access: u64,
            parent_fd: i32,
        }
        const RULE_PATH_BENEATH: libc::c_int = 1;
        const READ_FILE_AND_DIR: u64 = (1 << 2) | (1 << 3);
        let Some(ruleset) = &self.landlock else {
            return Ok(());
        };
        unsafe {
            let proc_fd = libc::open(
                c"/proc".as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            );
            if proc_fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let attr = PathBeneath {
                allowed_access: READ_FILE_AND_DIR,
                parent_fd: proc_fd,
            };
            let added = libc::syscall(
                libc::SYS_landlock_add_rule,
                ruleset.as_raw_fd(),
                RULE_PATH_BENEATH,
                &attr as *const PathBeneath,
                0u32,
            );
            let result = if added == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            };
            libc::close(proc_fd);
            result
        }
    }

    /// What follows the namespaces: rlimits, no_new_privs, Landlock, seccomp.
    ///
    /// # Safety
    /// As [`ChildPlan::apply`].
    pub(crate) unsafe fn restrict(&self) -> io::Result<()> {
        unsafe {
            for (resource, limit) in &self.rlimits {
                if libc::setrlimit(*resource, limit) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(ruleset) = &self.landlock
                && libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32) != 0
            {
                return Err(io::Error::last_os_error());
            }
            for program in &self.seccomp {
                let fprog = libc::sock_fprog {
                    len: program.len() as libc::c_ushort,
                    filter: program.as_ptr().cast_mut(),
                };
                if libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0u32,
                    &fprog as *const libc::sock_fprog,
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
impl ChildPlan {
    pub(crate) fn seccomp_lengths(&self) -> Vec<usize> {
        self.seccomp.iter().map(Vec::len).collect()
    }

    /// The whole confinement with a CLOCK_MONOTONIC stamp (ns) after each step written to
    /// `stamps` (12 slots: start, cgroup, setns user, setns net, unshare, setgroups,
    /// uid_map, gid_map, rlimits, nnp, landlock, seccomp), for `layer_bench`.
    pub(crate) unsafe fn apply_timed(
        &self,
        cgroup_procs: Option<RawFd>,
        stamps: *mut u64,
    ) -> io::Result<()> {
        unsafe {
            let mut i = 0;
            let mut stamp = || {
                let mut t = std::mem::zeroed::<libc::timespec>();
                libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t);
                *stamps.add(i) = t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64;
                i += 1;
            };
            stamp();
            if let Some(fd) = cgroup_procs {
                libc::write(fd, b"0".as_ptr().cast(), 1);
            }
            stamp();
            let Namespaces::Join(shared) = &self.namespaces else {
                return Err(io::Error::other("not joining"));
            };
            libc::setns(shared.user.as_raw_fd(), libc::CLONE_NEWUSER);
            stamp();
            libc::setns(shared.net.as_raw_fd(), libc::CLONE_NEWNET);
            stamp();
            libc::unshare(libc::CLONE_NEWUSER);
            stamp();
            namespaces::write_file(c"/proc/self/setgroups", b"deny")?;
            stamp();
            namespaces::write_file(c"/proc/self/uid_map", &self.uid_map)?;
            stamp();
            namespaces::write_file(c"/proc/self/gid_map", &self.gid_map)?;
            stamp();
            for (resource, limit) in &self.rlimits {
                libc::setrlimit(*resource, limit);
            }
            stamp();
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            stamp();
            if let Some(ruleset) = &self.landlock {
                libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32);
            }
            stamp();
            for program in &self.seccomp {
                let fprog = libc::sock_fprog {
                    len: program.len() as libc::c_ushort,
                    filter: program.as_ptr().cast_mut(),
                };
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0u32,
                    &fprog,
                );
            }
            stamp();
        }
        Ok(())
    }

    /// One layer at a time, for `layer_bench` (bits as documented there).
    pub(crate) unsafe fn apply_parts(
        &self,
        bits: u32,
        cgroup_procs: Option<RawFd>,
    ) -> io::Result<()> {
        unsafe {
            if bits & 2 != 0
                && let Some(fd) = cgroup_procs
                && libc::write(fd, b"0".as_ptr().cast(), 1) != 1
            {
                return Err(io::Error::last_os_error());
            }
            if bits & 4 != 0 {
                let flags = if bits & 8 != 0 {
                    libc::CLONE_NEWUSER | libc::CLONE_NEWNET
                } else {
                    libc::CLONE_NEWUSER
                };
                namespaces::enter_new(flags, &self.uid_map, &self.gid_map)?;
            }
            if bits & 1024 != 0
                && let Namespaces::Join(shared) = &self.namespaces
            {
                namespaces::join(
                    shared.user.as_raw_fd(),
                    shared.net.as_raw_fd(),
                    &self.uid_map,
                    &self.gid_map,
                )?;
            }
            if bits & 16 != 0 {
                for (resource, limit) in &self.rlimits {
                    if libc::setrlimit(*resource, limit) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
            }
            if bits & (32 | 64 | 256 | 512) != 0
                && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            {
                return Err(io::Error::last_os_error());
            }
            if bits & 32 != 0
                && let Some(ruleset) = &self.landlock
                && libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32) != 0
            {
                return Err(io::Error::last_os_error());
            }
            if bits & 256 != 0 {
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
                if libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0u32,
                    &prog as *const libc::sock_fprog,
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
            if bits & (64 | 512) != 0 {
                let count = if bits & 512 != 0 {
                    1
                } else {
                    self.seccomp.len()
                };
                for program in &self.seccomp[..count] {
                    let fprog = libc::sock_fprog {
                        len: program.len() as libc::c_ushort,
                        filter: program.as_ptr().cast_mut(),
                    };
                    if libc::syscall(
                        libc::SYS_seccomp,
                        libc::SECCOMP_SET_MODE_FILTER,
                        0u32,
                        &fprog as *const libc::sock_fprog,
                    ) != 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                }
            }
        }
        Ok(())
    }
}
