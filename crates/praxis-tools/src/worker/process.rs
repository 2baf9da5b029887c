//! A worker process as its runtime holds it: the two pipes of its protocol and its life,
//! watched through a pidfd. It is the runtime's own child however it was started: exec'd
//! ([`exec`]) or forked by the pool's fork server (`fork_server.rs`, with CLONE_PARENT).

use super::protocol::PARENT_ENV;
use crate::fabric::WorkerCommand;
use crate::spawn::ChildProcess;
use std::io;
use std::os::fd::OwnedFd;
use std::process::{ExitStatus, Stdio};
use tokio::net::unix::pipe;

pub(crate) struct WorkerProcess {
    /// The worker's stdin (frames to it); taken by whoever drives the protocol.
    pub(crate) stdin: Option<pipe::Sender>,
    /// The worker's stdout (frames from it).
    pub(crate) stdout: Option<pipe::Receiver>,
    child: ChildProcess,
    /// Forked by a fork server rather than exec'd.
    pub(crate) forked: bool,
}

impl WorkerProcess {
    /// A started worker (our unreaped child `pid`) with the runtime's ends of its pipes.
    pub(crate) fn new(
        pid: libc::pid_t,
        pidfd: OwnedFd,
        stdin: OwnedFd,
        stdout: OwnedFd,
        forked: bool,
    ) -> io::Result<WorkerProcess> {
        // The process first: if a pipe cannot be made asynchronous, dropping it kills and
        // reaps the worker.
        let child = ChildProcess::new(pid, pidfd)?;
        Ok(WorkerProcess {
            stdin: Some(pipe::Sender::from_owned_fd(stdin)?),
            stdout: Some(pipe::Receiver::from_owned_fd(stdout)?),
            child,
            forked,
        })
    }

    pub(crate) fn id(&self) -> u32 {
        self.child.id() as u32
    }

    /// Its exit status if it has exited (reaping it), without waiting.
    pub(crate) fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Puts it at idle CPU priority (`SCHED_IDLE`: it runs only on a core nothing else
    /// wants) where [`waits_at_idle_priority`]: a pooled worker prepares ahead of its run
    /// without taking CPU from the runs under way. [`Self::to_foreground`] undoes it.
    pub(crate) fn to_background(&self) {
        if waits_at_idle_priority() {
            // Where it cannot be moved, it waits at the normal priority.
            let _ = set_policy(self.child.id(), libc::SCHED_IDLE);
        }
    }

    /// Back at the normal priority, every thread of it: a run claimed it. A thread the
    /// kernel would not move back is said on stderr (the worker still serves its run).
    pub(crate) fn to_foreground(&self) {
        if waits_at_idle_priority()
            && let Err(e) = set_policy(self.child.id(), libc::SCHED_OTHER)
        {
            eprintln!(
                "praxis: worker pid {} stays at idle CPU priority: {e}",
                self.child.id()
            );
        }
    }

    /// Sends it SIGKILL; [`Self::wait`] reaps it. Dropping it unreaped does both.
    pub(crate) fn start_kill(&self) -> io::Result<()> {
        self.child.start_kill()
    }
}

/// Execs one worker process of `command`: piped stdin and stdout, and told this process's
/// pid ([`PARENT_ENV`]) so that it ends with this process (see [`super::serve_stdio`]).
/// Nothing runs in the child before its exec, so the standard library spawns it without
/// copying this process's address space.
pub(crate) fn exec(command: &WorkerCommand) -> io::Result<WorkerProcess> {
    let mut child = std::process::Command::new(&command.program)
        .args(&command.args)
        .env(PARENT_ENV, std::process::id().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let pid = child.id() as libc::pid_t;
    // Our child and unreaped: its pid cannot have been reused.
    let pidfd = match (child.stdin.take(), child.stdout.take()) {
        (Some(stdin), Some(stdout)) => {
            praxis_sandbox::pidfd_open(pid).map(|fd| (fd, stdin, stdout))
        }
        _ => Err(io::Error::other("the worker's pipes are missing")),
    };
    match pidfd {
        // From here on, dropping it kills and reaps it.
        Ok((pidfd, stdin, stdout)) => {
            WorkerProcess::new(pid, pidfd, stdin.into(), stdout.into(), false)
        }
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

/// Whether pooled workers wait at idle CPU priority: only where this process may bring them
/// back to the normal one (CAP_SYS_NICE, or an RLIMIT_NICE allowing nice 0; the kernel
/// refuses the way back from `SCHED_IDLE` otherwise, and a claimed worker must never stay
/// behind every other process).
pub fn waits_at_idle_priority() -> bool {
    static MAY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *MAY.get_or_init(|| {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes `limit`.
        let nice_allowed =
            unsafe { libc::getrlimit(libc::RLIMIT_NICE, &mut limit) } == 0 && limit.rlim_cur >= 20;
        nice_allowed || has_cap_sys_nice()
    })
}

/// Whether this process has CAP_SYS_NICE in its effective set (bit 23 of `CapEff`).
fn has_cap_sys_nice() -> bool {
    const CAP_SYS_NICE: u32 = 23;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_NICE) != 0)
}

/// Sets every thread of process `pid` to scheduling `policy` (priority 0). A thread that
/// ended meanwhile is skipped; the ones it starts later take their starter's policy. The
/// first refusal other than a thread gone is the error.
fn set_policy(pid: i32, policy: libc::c_int) -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.flatten()
                .filter_map(|t| t.file_name().to_str()?.parse::<i32>().ok())
                .collect()
        })
        .unwrap_or_else(|_| vec![pid]);
    let mut refused = Ok(());
    for tid in threads {
        // SAFETY: sets the policy of a thread of our own child; `param` outlives the call.
        if unsafe { libc::sched_setscheduler(tid, policy, &param) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) && refused.is_ok() {
                refused = Err(e);
            }
        }
    }
    refused
}
