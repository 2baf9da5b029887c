//! The fork server: one process of the pooled worker command (`praxis worker --fork-server`),
//! exec'd once per pool, that forks each pooled worker instead of the runtime exec'ing one.
//!
//! Exec'ing the worker binary costs more CPU than anything the worker then does for a small
//! run: mapping it, relocating it, faulting its pages in, starting its runtime. A fork of a
//! process that already did all that costs a fraction of it. The fork server does nothing
//! else: it never starts a thread or an async runtime, so each fork is of a single-threaded
//! process whose only state is the binary's own.
//!
//! Each worker is forked with `CLONE_PARENT`, so it is the runtime's child exactly as an
//! exec'd one is: the runtime waits for it and signals it through its pidfd, it sees the
//! runtime as its parent (and ends with it, see [`super::serve_stdio`]), and it gets its
//! exit status. The fork server is a bystander once the worker exists.
//!
//! Protocol over a SOCK_SEQPACKET pair (the fork server's stdin): first the runtime's
//! [`HostFacts`] as one JSON message (`null` for none), which the fork server adopts, so
//! that neither it nor a worker probes the host or walks /etc, and from which it opens the
//! paths of the common Landlock grants for its workers ([`praxis_sandbox::open_ahead`]:
//! each worker inherits the descriptors, adds its rules from them and closes them; opened
//! again at a fork once they are a second old, so a granted path replaced since is granted
//! anew). Then each request is one byte with the worker's stdin (read
//! end) and stdout (write end) as SCM_RIGHTS; the answer is two i32, the pid and an errno
//! (0 when forked), with the worker's pidfd as SCM_RIGHTS. The fork server exits when the
//! socket closes (its runtime dropped the pool or died).
//!
//! What differs from an exec'd worker: sibling workers share the fork server's address
//! space layout (a fork does not re-randomize it; the runtime's own layout is separate, and
//! every command a worker starts is exec'd, so it gets a fresh one), and no `pthread_atfork`
//! handler runs (the fork server registered none: it never ran the code that would).

use super::process::WorkerProcess;
use super::protocol::{HostFacts, PARENT_ENV};
use crate::fabric::WorkerCommand;
use crate::spawn::ChildProcess;
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, setsockopt, socketpair, sockopt,
};
use nix::sys::time::TimeVal;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Instant;

/// The argument (after the worker command's own) that makes a worker a fork server.
pub(crate) const FORK_SERVER_ARG: &str = "--fork-server";

/// How long the runtime waits for a fork's answer before it gives up on the fork server.
const ANSWER_TIMEOUT: TimeVal = TimeVal::new(10, 0);
/// The largest host facts message the fork server takes.
const MAX_FACTS: usize = 4 << 20;
/// How old the grants' paths opened for the workers may get before the fork server opens
/// them again (at its next fork).
const REOPEN_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// The runtime's handle on a fork server. Dropping it kills the fork server (workers it
/// forked are the runtime's children and live on).
pub(crate) struct ForkServer {
    /// Requests are answered in order: one at a time.
    control: Mutex<OwnedFd>,
    /// Killed and reaped when dropped.
    _process: ChildProcess,
}

impl ForkServer {
    /// Execs `command` as a fork server (`command` [`FORK_SERVER_ARG`]). Needs a tokio
    /// runtime (the process is watched through it).
    pub(crate) fn start(command: &WorkerCommand) -> io::Result<ForkServer> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        setsockopt(&ours, sockopt::ReceiveTimeout, &ANSWER_TIMEOUT)?;
        let mut child = std::process::Command::new(&command.program)
            .args(&command.args)
            .arg(FORK_SERVER_ARG)
            .env(PARENT_ENV, std::process::id().to_string())
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let pid = child.id() as libc::pid_t;
        let process = praxis_sandbox::pidfd_open(pid).and_then(|fd| ChildProcess::new(pid, fd));
        let process = match process {
            Ok(process) => process,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        // Its first message. Too large a message (a huge /etc) goes as `null`: the fork
        // server then opens nothing ahead, and each worker opens its grants itself.
        let facts = serde_json::to_vec(&HostFacts::of_this_process()).map_err(io::Error::other)?;
        // On an error `process` is killed and reaped as it is dropped.
        send(&ours, &facts, &[]).or_else(|e| match e.raw_os_error() {
            Some(libc::EMSGSIZE) => send(&ours, b"null", &[]),
            _ => Err(e),
        })?;
        Ok(ForkServer {
            control: Mutex::new(ours),
            _process: process,
        })
    }

    /// Has one worker forked (blocks for the fork server's answer, a fraction of a
    /// millisecond). An error means the fork server is unusable: start workers otherwise.
    pub(crate) fn fork(&self) -> io::Result<WorkerProcess> {
        let (stdin_read, stdin_write) = std::io::pipe()?;
        let (stdout_read, stdout_write) = std::io::pipe()?;
        let (pid, pidfd) = {
            let control = self
                .control
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            send(
                &control,
                &[1],
                &[stdin_read.as_raw_fd(), stdout_write.as_raw_fd()],
            )?;
            // The worker holds its own copies now.
            drop((stdin_read, stdout_write));
            let mut answer = [0u8; 8];
            let (got, mut fds) = receive(&control, &mut answer)?;
            if got != answer.len() {
                return Err(io::Error::other(if got == 0 {
                    "the fork server exited".to_string()
                } else {
                    format!("the fork server answered {got} bytes")
                }));
            }
            let pid = i32::from_ne_bytes(answer[..4].try_into().expect("4 bytes"));
            let errno = i32::from_ne_bytes(answer[4..].try_into().expect("4 bytes"));
            if pid <= 0 {
                return Err(io::Error::from_raw_os_error(errno));
            }
            match (fds.pop(), fds.is_empty()) {
                (Some(pidfd), true) => (pid, pidfd),
                _ => return Err(io::Error::other("the fork server sent no pidfd")),
            }
        };
        WorkerProcess::new(pid, pidfd, stdin_write.into(), stdout_read.into(), true)
    }
}

/// `praxis worker --fork-server`: forks a worker for each request on stdin until it closes.
/// Call it before any thread or async runtime exists in this process.
pub(super) fn serve_forks() -> io::Result<()> {
    // SAFETY: stdin is the runtime's socket, for the life of this process.
    let control = unsafe { OwnedFd::from_raw_fd(0) };
    let mut facts = vec![0u8; MAX_FACTS];
    let (got, _) = receive(&control, &mut facts)?;
    if got == 0 {
        return Ok(());
    }
    let adopted = match serde_json::from_slice::<Option<HostFacts>>(&facts[..got]) {
        Ok(Some(facts)) => {
            facts.adopt();
            true
        }
        Ok(None) => false,
        Err(e) => {
            eprintln!("praxis worker: the fork server's host facts are unreadable: {e}");
            false
        }
    };
    drop(facts);
    // Kept open in every worker (see `worker_child`), and opened again when older than
    // REOPEN_AFTER: a rule binds the file opened, so a granted path replaced since (an /etc
    // file rewritten by rename, say) is granted anew to the workers forked after that.
    let mut kept = if adopted {
        praxis_sandbox::open_ahead()
    } else {
        Vec::new()
    };
    let mut opened_at = Instant::now();
    loop {
        let mut request = [0u8; 1];
        let (got, fds) = match receive(&control, &mut request) {
            Ok(received) => received,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if got == 0 {
            return Ok(());
        }
        if adopted && opened_at.elapsed() > REOPEN_AFTER {
            kept = praxis_sandbox::open_ahead();
            opened_at = Instant::now();
        }
        let answer = match fds.as_slice() {
            [stdin, stdout] => fork_worker(stdin, stdout, &kept),
            _ => Err(io::Error::from_raw_os_error(libc::EINVAL)),
        };
        // Ours are closed once the worker has its copies.
        drop(fds);
        let (pid, errno, pidfd) = match answer {
            Ok((pid, pidfd)) => (pid, 0, Some(pidfd)),
            Err(e) => (-1, e.raw_os_error().unwrap_or(libc::EIO), None),
        };
        let mut message = [0u8; 8];
        message[..4].copy_from_slice(&pid.to_ne_bytes());
        message[4..].copy_from_slice(&errno.to_ne_bytes());
        let rights: Vec<RawFd> = pidfd.iter().map(|fd| fd.as_raw_fd()).collect();
        send(&control, &message, &rights)?;
    }
}

/// Sends `bytes` as one message on `socket`, with `fds` as SCM_RIGHTS (none: no control
/// message).
fn send(socket: &OwnedFd, bytes: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let rights = [ControlMessage::ScmRights(fds)];
    let control: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(bytes)],
        control,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    Ok(())
}

/// The arguments of clone3 up to `tls` (`CLONE_ARGS_SIZE_VER0`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// Forks one worker as a child of this process's parent, serving on `stdin`/`stdout` and
/// keeping the descriptors `kept`; its pid and pidfd. Never returns in the worker.
fn fork_worker(
    stdin: &OwnedFd,
    stdout: &OwnedFd,
    kept: &[RawFd],
) -> io::Result<(libc::pid_t, OwnedFd)> {
    let flags = (libc::CLONE_PARENT | libc::CLONE_PIDFD) as u64;
    let mut pidfd: libc::c_int = -1;
    let args = CloneArgs {
        flags,
        pidfd: &raw mut pidfd as u64,
        ..CloneArgs::default()
    };
    // SAFETY: a fork-like clone (no new stack, no shared memory) of this single-threaded
    // process; the kernel writes the pidfd into `pidfd`.
    let mut pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &raw const args,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
        // clone3 refused (an older kernel, or a seccomp profile that hides it): clone
        // takes the same flags, and writes the pidfd where its parent tid would go.
        // SAFETY: as above; no stack, no tls, no child tid.
        pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                flags,
                0usize,
                &raw mut pidfd,
                0usize,
                0usize,
            )
        };
    }
    match pid {
        0 => worker_child(stdin.as_raw_fd(), stdout.as_raw_fd(), kept),
        pid if pid < 0 => Err(io::Error::last_os_error()),
        // SAFETY: the kernel made `pidfd` for us.
        pid => Ok((pid as libc::pid_t, unsafe { OwnedFd::from_raw_fd(pidfd) })),
    }
}

/// In the forked worker: the pipes become its stdin and stdout, every other descriptor of
/// the fork server but `kept` (the grants' paths opened ahead, which its sandbox takes) is
/// closed, and it serves its run as an exec'd worker does.
fn worker_child(stdin: RawFd, stdout: RawFd, kept: &[RawFd]) -> ! {
    // SAFETY: descriptors this process owns; nothing else runs in it.
    let ready =
        unsafe { libc::dup2(stdin, 0) == 0 && libc::dup2(stdout, 1) == 1 && close_all_but(kept) };
    if !ready {
        eprintln!(
            "praxis worker: cannot set up a forked worker: {}",
            io::Error::last_os_error()
        );
        std::process::exit(1);
    }
    match super::run_stdio() {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("praxis worker: {e}");
            std::process::exit(1)
        }
    }
}

/// Closes every descriptor from 3 up but `kept` (a close_range for each gap between them).
fn close_all_but(kept: &[RawFd]) -> bool {
    let mut kept: Vec<u32> = kept
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .collect();
    kept.sort_unstable();
    let mut from = 3u32;
    for fd in kept.into_iter().filter(|&fd| fd >= 3) {
        // SAFETY: closing descriptors of this process.
        if fd > from && unsafe { libc::syscall(libc::SYS_close_range, from, fd - 1, 0u32) } != 0 {
            return false;
        }
        from = from.max(fd + 1);
    }
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, 0u32) == 0 }
}

/// Receives one message into `buffer` with up to two descriptors (close-on-exec); its
/// length (0: the peer closed) and the descriptors.
fn receive(socket: &OwnedFd, buffer: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = nix::cmsg_space!([RawFd; 2]);
    let mut iov = [IoSliceMut::new(buffer)];
    let message = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for control in message.cmsgs()? {
        if let ControlMessageOwned::ScmRights(received) = control {
            // SAFETY: descriptors the kernel just installed for us.
            fds.extend(
                received
                    .into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    if message
        .flags
        .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC)
    {
        return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
    }
    Ok((message.bytes, fds))
}
