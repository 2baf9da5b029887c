//! A started command as a future: waiting through its pidfd (readable once it exited), and
//! killed and reaped in the background if dropped unwaited, so no zombie is left behind.
//! Starting it is `praxis_sandbox::launch` (or `Sandbox::launch` when confined).

use praxis_sandbox::Launched;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

/// A launched command with its output pipes made asynchronous.
pub(crate) fn adopt(
    launched: Launched,
) -> io::Result<(ChildProcess, pipe::Receiver, pipe::Receiver)> {
    let Launched {
        pid,
        pidfd,
        stdout,
        stderr,
    } = launched;
    let child = ChildProcess::new(pid, pidfd)?;
    Ok((
        child,
        pipe::Receiver::from_owned_fd(stdout)?,
        pipe::Receiver::from_owned_fd(stderr)?,
    ))
}

/// A started child, waited for through its pidfd. Dropping it unreaped kills it
/// and reaps it in the background, so no zombie is left behind.
pub(crate) struct ChildProcess {
    pid: libc::pid_t,
    pidfd: AsyncFd<OwnedFd>,
    status: Option<ExitStatus>,
}

impl ChildProcess {
    /// Our own unreaped child `pid`, through its `pidfd`.
    pub(crate) fn new(pid: libc::pid_t, pidfd: OwnedFd) -> io::Result<ChildProcess> {
        // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays open and the same
        // for the AsyncFd's whole life.
        let pidfd =
            unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) }
                .map_err(|e| e.into_parts().1)?;
        Ok(ChildProcess {
            pid,
            pidfd,
            status: None,
        })
    }

    pub(crate) fn id(&self) -> libc::pid_t {
        self.pid
    }

    /// The exit status if the child has exited (reaping it), without waiting.
    pub(crate) fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let mut raw = 0;
        // SAFETY: waits without blocking for our own child, which nobody else reaps (we hold
        // its pidfd, so its pid cannot have been reused).
        let reaped = unsafe { libc::waitpid(self.pid, &mut raw, libc::WNOHANG) };
        if reaped < 0 {
            return Err(io::Error::last_os_error());
        }
        if reaped == 0 {
            return Ok(None);
        }
        let status = ExitStatus::from_raw(raw);
        self.status = Some(status);
        Ok(Some(status))
    }

    /// Waits for the child to exit (a pidfd becomes readable when its process exits).
    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            let mut ready = self.pidfd.readable().await?;
            ready.clear_ready();
        }
    }

    /// Sends the child SIGKILL (through its pidfd: never a reused pid); [`Self::wait`]
    /// reaps it.
    pub(crate) fn start_kill(&self) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        // SAFETY: signals our own unreaped child through its pidfd.
        let sent = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.get_ref().as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0u32,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        let _ = self.start_kill();
        if matches!(self.try_wait(), Ok(Some(_))) {
            return;
        }
        let pid = self.pid;
        let reap = move || {
            praxis_sandbox::reap(pid);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(reap)),
            Err(_) => reap(),
        }
    }
}
