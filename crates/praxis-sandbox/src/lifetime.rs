//! Ending with the parent process: for `praxis worker`, whose commands must not outlive
//! the runtime that started it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A pidfd of process `pid`: readable once it exited, and for signalling it without
/// racing a reuse of its pid. Race-free for our own unreaped children.
pub fn pidfd_open(pid: libc::pid_t) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as libc::c_int;
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes this process end when its parent process does, killing the commands it started
/// first: for `praxis worker`, whose parent is the runtime. A thread waits on a pidfd of
/// the parent; when it becomes readable, every live command cgroup of this process is
/// killed and the process exits. Its sandboxes' spawners then see their socket close and
/// end, and with each spawner its commands' PID namespace. If the parent is already gone
/// (we were reparented), the process exits at once: `expected` is the parent's pid when the
/// parent said it (then a parent that died before this call is seen too).
pub fn exit_with_parent(expected: Option<libc::pid_t>) -> std::io::Result<()> {
    // SAFETY: getppid cannot fail.
    let parent = unsafe { libc::getppid() };
    if expected.is_some_and(|pid| pid != parent) {
        parent_gone();
    }
    let pidfd = pidfd_open(parent)?;
    let orphaned = || unsafe { libc::getppid() } != parent;
    if orphaned() {
        parent_gone();
    }
    std::thread::Builder::new()
        .name("praxis-parent-watch".into())
        .spawn(move || {
            let mut poll = libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            loop {
                // SAFETY: polls one descriptor we own.
                let ready = unsafe { libc::poll(&mut poll, 1, -1) };
                if ready > 0 {
                    parent_gone();
                }
            }
        })?;
    Ok(())
}

fn parent_gone() -> ! {
    crate::cgroup::kill_all_live();
    // SAFETY: ends the process without running destructors of other threads' state.
    unsafe { libc::_exit(1) }
}
