//! The init of the PID namespace the spawner gives its commands (see `spawner`): forked
//! by the spawner after its namespaces, it mounts the namespace's `/proc`, confines itself
//! like the commands, blanks the runtime's command line it inherited, and reaps orphans
//! until the spawner is gone; its exit makes the kernel kill every process of the
//! namespace.

use crate::child::ChildPlan;
use crate::spawner::INIT_WATCH_FD;
use std::ffi::c_int;
use std::io;
use std::os::fd::RawFd;

/// Where this process's argument strings are (`arg_start` and `arg_end` of
/// /proc/self/stat). Read once per process (a fork has the same): reading /proc/self/stat
/// is about a tenth of a millisecond, on the way of every sandbox's spawner. Made ahead by
/// [`crate::prepare_ahead`] and [`crate::open_ahead`].
pub(crate) fn argument_area() -> Option<(usize, usize)> {
    static AREA: std::sync::OnceLock<Option<(usize, usize)>> = std::sync::OnceLock::new();
    *AREA.get_or_init(|| {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(45);
        let start = fields.next()?.parse().ok()?;
        let end = fields.next()?.parse().ok()?;
        Some((start, end))
    })
}

/// Unshares a PID namespace for the commands and forks its init. Ok(None): the host
/// refuses the namespace (the commands then share the host's); Ok(Some(fd)): the write end
/// of a pipe whose other end the init watches (it exits when the spawner, the only holder,
/// is gone); an error once the namespace exists is fatal (no command could start in it
/// without its init).
///
/// The init is not tied to the spawner by a parent-death signal: the spawner's Landlock
/// domain scopes signals, so it could not signal an init outside its domain.
///
/// # Safety
/// In the spawner only, single-threaded, after its namespaces: raw system calls.
pub(crate) unsafe fn start_init(
    plan: &ChildPlan,
    arguments: (usize, usize),
) -> io::Result<Option<RawFd>> {
    unsafe {
        if libc::unshare(libc::CLONE_NEWPID) != 0 {
            return Ok(None);
        }
        let mut report = [0 as c_int; 2];
        let mut watch = [0 as c_int; 2];
        if libc::pipe2(report.as_mut_ptr(), libc::O_CLOEXEC) != 0
            || libc::pipe2(watch.as_mut_ptr(), libc::O_CLOEXEC) != 0
        {
            return Err(io::Error::last_os_error());
        }
        let pid = libc::fork();
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            init_main(plan, report[1], watch[0], arguments);
        }
        libc::close(report[1]);
        libc::close(watch[0]);
        let mut status = 0u8;
        let got = loop {
            let got = libc::read(report[0], (&mut status as *mut u8).cast(), 1);
            if got >= 0 || *libc::__errno_location() != libc::EINTR {
                break got;
            }
        };
        libc::close(report[0]);
        match (got, status) {
            (1, 0) => {}
            (1, errno) => return Err(io::Error::from_raw_os_error(i32::from(errno))),
            _ => return Err(io::Error::other("the PID namespace's init died")),
        }
        // Above the numbers the spawner moves its own descriptors to (see `spawner_main`).
        let kept = libc::fcntl(watch[1], libc::F_DUPFD_CLOEXEC, INIT_WATCH_FD + 1);
        libc::close(watch[1]);
        if kept < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Some(kept))
    }
}

/// The init of the commands' PID namespace: mounts its /proc, confines itself like them,
/// then reaps orphans until the spawner ends (the watched pipe closes); its exit makes the
/// kernel kill every process of the namespace. Signals from inside the namespace cannot
/// kill an init that handles none.
///
/// # Safety
/// In the freshly forked init only: raw system calls, never returns.
unsafe fn init_main(plan: &ChildPlan, report: RawFd, watch: RawFd, arguments: (usize, usize)) -> ! {
    unsafe {
        unsafe fn failed(report: RawFd) -> ! {
            unsafe {
                let errno = (*libc::__errno_location()).clamp(1, 255) as u8;
                libc::write(report, (&errno as *const u8).cast(), 1);
                libc::_exit(1)
            }
        }
        // Its command line and name are the runtime's (a fork): readable by every command
        // through /proc/1/cmdline and /proc/1/status, so they are replaced.
        let (start, end) = arguments;
        if start != 0 && end > start {
            let area = start as *mut u8;
            std::ptr::write_bytes(area, 0, end - start);
            let name = b"praxis-init";
            std::ptr::copy_nonoverlapping(name.as_ptr(), area, name.len().min(end - start - 1));
        }
        libc::prctl(libc::PR_SET_NAME, c"praxis-init".as_ptr(), 0, 0, 0);
        if libc::mount(
            c"proc".as_ptr(),
            c"/proc".as_ptr(),
            c"proc".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        ) != 0
        {
            failed(report);
        }
        if plan.restrict().is_err() {
            failed(report);
        }
        // Every signal is blocked (inherited from the spawner): SIGCHLD arrives on a
        // signalfd, next to the watched pipe.
        let mut chld: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut chld);
        libc::sigaddset(&mut chld, libc::SIGCHLD);
        if libc::dup2(watch, 0) != 0 {
            failed(report);
        }
        let ok = 0u8;
        libc::write(report, (&ok as *const u8).cast(), 1);
        // Nothing of the runtime's stays open: only the watched pipe, now at 0.
        libc::syscall(libc::SYS_close_range, 1u32, u32::MAX, 0u32);
        let signals = libc::signalfd(-1, &chld, libc::SFD_CLOEXEC);
        let mut fds = [
            libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: signals,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let mut info = [0u8; 128];
        loop {
            while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {}
            if libc::poll(fds.as_mut_ptr(), 2, -1) < 0 {
                continue;
            }
            if fds[0].revents != 0 {
                // The spawner is gone: so is everything it started.
                libc::_exit(0);
            }
            if fds[1].revents != 0 {
                libc::read(signals, info.as_mut_ptr().cast(), info.len());
            }
        }
    }
}
