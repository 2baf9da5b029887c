//! What runs in the forked child before exec. Everything is prepared by the parent; the
//! child only makes raw system calls on that data (no allocation, no locks).

use crate::ResourceLimits;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

#[cfg(all(target_os = "linux", target_env = "gnu"))]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type Resource = libc::c_int;

#[derive(Debug)]
pub(crate) struct ChildPlan {
    unshare_flags: libc::c_int,
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
    pub(crate) fn new(
        unshare_flags: libc::c_int,
        rlimits: Vec<(Resource, libc::rlimit)>,
        landlock: Option<OwnedFd>,
        seccomp: Vec<Vec<libc::sock_filter>>,
    ) -> Self {
        // SAFETY: getuid/getgid cannot fail. The maps keep the ids as they are, so files
        // keep their owners and `id` prints what it printed outside.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        ChildPlan {
            unshare_flags,
            uid_map: format!("{uid} {uid} 1\n").into_bytes(),
            gid_map: format!("{gid} {gid} 1\n").into_bytes(),
            rlimits,
            landlock,
            seccomp,
        }
    }

    /// Confines the calling (child) process.
    ///
    /// # Safety
    /// Call only in a freshly forked child before exec. Makes raw system calls on data owned
    /// by `self`, allocates nothing and takes no lock.
    pub(crate) unsafe fn apply(&self, cgroup_procs: Option<RawFd>) -> io::Result<()> {
        unsafe {
            if let Some(fd) = cgroup_procs
                && libc::write(fd, b"0".as_ptr().cast(), 1) != 1
            {
                return Err(io::Error::last_os_error());
            }
            if self.unshare_flags != 0 {
                if libc::unshare(self.unshare_flags) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if self.unshare_flags & libc::CLONE_NEWUSER != 0 {
                    // Older kernels have no setgroups file; the gid map then needs none.
                    match write_file(c"/proc/self/setgroups", b"deny") {
                        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => return Err(e),
                        _ => {}
                    }
                    write_file(c"/proc/self/uid_map", &self.uid_map)?;
                    write_file(c"/proc/self/gid_map", &self.gid_map)?;
                }
            }
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

/// open + write + close with raw calls.
unsafe fn write_file(path: &std::ffi::CStr, data: &[u8]) -> io::Result<()> {
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let written = libc::write(fd, data.as_ptr().cast(), data.len());
        let result = if written == data.len() as isize {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        };
        libc::close(fd);
        result
    }
}
