//! The empty network namespace of a sandbox, created once instead of once per command.
//!
//! Creating a network namespace is the most expensive step of a confined spawn (the kernel
//! sets up and later tears down a whole network stack), so [`SharedNetwork::create`] makes
//! one per [`crate::Sandbox`]: a short-lived helper process unshares a user namespace (U1,
//! own ids mapped to themselves) and a network namespace owned by it (N1), and the parent
//! keeps both alive through open `/proc/PID/ns/*` descriptors. Every command then joins U1
//! and N1 with `setns` and immediately unshares a user namespace of its own (U2, nested in
//! U1). So each command still has a fresh user namespace (its own RLIMIT_NPROC count, its
//! own capabilities) and holds no capability over U1, hence none over N1: it cannot add an
//! interface, bring `lo` up or change anything another command of the sandbox would see.
//! Per-command isolation of abstract Unix sockets comes from Landlock's scoping, which
//! gives every command its own domain.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Descriptors of the sandbox's user namespace and of its empty network namespace.
#[derive(Debug)]
pub(crate) struct SharedNetwork {
    pub user: OwnedFd,
    pub net: OwnedFd,
}

impl SharedNetwork {
    /// Creates U1 and N1 in a helper child and keeps them open; the helper exits before
    /// this returns. `uid_map`/`gid_map` are the maps written for U1.
    pub(crate) fn create(uid_map: &[u8], gid_map: &[u8]) -> io::Result<SharedNetwork> {
        let mut report = Pipe::new()?;
        let hold = Pipe::new()?;
        // SAFETY: the child makes raw system calls only (the parent may be multi-threaded)
        // and leaves with `_exit`, never returning into Rust code.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            unsafe {
                libc::close(hold.write_fd());
                // If the runtime dies meanwhile, nobody needs the helper.
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                );
                let status: u8 =
                    match enter_new(libc::CLONE_NEWUSER | libc::CLONE_NEWNET, uid_map, gid_map) {
                        Ok(()) => 0,
                        Err(e) => e.raw_os_error().unwrap_or(libc::EIO).clamp(1, 255) as u8,
                    };
                libc::write(report.write_fd(), (&status as *const u8).cast(), 1);
                // Stay alive until the parent has opened the namespace files and says so
                // with a byte on `hold` (not by closing it: a helper forked at the same
                // time by another thread holds a copy of that end, so EOF might never come).
                let mut byte = 0u8;
                libc::read(hold.read.as_raw_fd(), (&mut byte as *mut u8).cast(), 1);
                libc::_exit(0);
            }
        }
        // Parent.
        // Our copy of the write end closed: a helper that dies unreported reads as EOF.
        report.write = None;
        let mut status = 0u8;
        let got = loop {
            // SAFETY: reads at most one byte into `status`.
            let got =
                unsafe { libc::read(report.read.as_raw_fd(), (&mut status as *mut u8).cast(), 1) };
            if got >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                break got;
            }
        };
        let result = if got != 1 {
            Err(io::Error::other(
                "the namespace helper died before reporting",
            ))
        } else if status != 0 {
            Err(io::Error::from_raw_os_error(i32::from(status)))
        } else {
            open_ns(pid, c"user").and_then(|user| {
                Ok(SharedNetwork {
                    user,
                    net: open_ns(pid, c"net")?,
                })
            })
        };
        let go = 1u8;
        // SAFETY: writes one byte from a live local to our own pipe.
        unsafe { libc::write(hold.write_fd(), (&go as *const u8).cast(), 1) };
        drop(hold);
        drop(report);
        crate::launch::reap(pid);
        result
    }
}

/// The shared namespaces of a new sandbox, tested by joining them in a throwaway child the
/// way every command will (so a host that refuses any step falls back to per-command
/// namespaces instead of failing every spawn).
/// Untested (`test` false) when the caller learns it from a process that joins them anyway
/// (the spawner).
pub(crate) fn shared_network(test: bool) -> Result<SharedNetwork, String> {
    let (uid_map, gid_map) = crate::child::ChildPlan::id_maps();
    let shared = SharedNetwork::create(&uid_map, &gid_map).map_err(|e| e.to_string())?;
    if !test {
        return Ok(shared);
    }
    let (user, net) = (shared.user.as_raw_fd(), shared.net.as_raw_fd());
    // SAFETY: the test makes raw system calls only, on data prepared here.
    let joined = crate::probe::in_child(|| unsafe { join(user, net, &uid_map, &gid_map).is_ok() });
    match joined {
        Some(true) => Ok(shared),
        Some(false) => Err("a command could not join it".into()),
        None => Err("could not fork a test process".into()),
    }
}

/// `unshare(flags)` and, when a user namespace is among them, the id maps (setgroups
/// denied first, as an unprivileged gid map requires).
///
/// # Safety
/// Raw system calls only: callable in a forked child.
pub(crate) unsafe fn enter_new(
    flags: libc::c_int,
    uid_map: &[u8],
    gid_map: &[u8],
) -> io::Result<()> {
    unsafe {
        if libc::unshare(flags) != 0 {
            return Err(io::Error::last_os_error());
        }
        if flags & libc::CLONE_NEWUSER != 0 {
            // Older kernels have no setgroups file; the gid map then needs none.
            match write_file(c"/proc/self/setgroups", b"deny") {
                Err(e) if e.raw_os_error() != Some(libc::ENOENT) => return Err(e),
                _ => {}
            }
            write_file(c"/proc/self/uid_map", uid_map)?;
            write_file(c"/proc/self/gid_map", gid_map)?;
        }
        Ok(())
    }
}

/// Joins the shared user and network namespaces, then a new user namespace of its own.
///
/// # Safety
/// Raw system calls only: callable in a forked (single-threaded) child.
pub(crate) unsafe fn join(
    user: RawFd,
    net: RawFd,
    uid_map: &[u8],
    gid_map: &[u8],
) -> io::Result<()> {
    unsafe {
        // The user namespace first: it is what grants CAP_SYS_ADMIN over N1.
        if libc::setns(user, libc::CLONE_NEWUSER) != 0 || libc::setns(net, libc::CLONE_NEWNET) != 0
        {
            return Err(io::Error::last_os_error());
        }
        enter_new(libc::CLONE_NEWUSER, uid_map, gid_map)
    }
}

/// open + write + close with raw calls.
///
/// # Safety
/// Raw system calls only.
pub(crate) unsafe fn write_file(path: &std::ffi::CStr, data: &[u8]) -> io::Result<()> {
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

fn open_ns(pid: libc::pid_t, kind: &std::ffi::CStr) -> io::Result<OwnedFd> {
    let path = format!("/proc/{pid}/ns/{}", kind.to_string_lossy());
    let file = std::fs::File::open(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open `{path}`: {e}")))?;
    Ok(file.into())
}

/// A close-on-exec pipe; either end is closed when dropped.
struct Pipe {
    read: OwnedFd,
    write: Option<OwnedFd>,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two new descriptors into the array; we own them from here.
        unsafe {
            if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Pipe {
                read: OwnedFd::from_raw_fd(fds[0]),
                write: Some(OwnedFd::from_raw_fd(fds[1])),
            })
        }
    }

    fn write_fd(&self) -> RawFd {
        self.write.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }
}
