//! The sandbox's spawner: a small process, forked once per sandbox, that applies every layer
//! of the sandbox to itself (namespaces, rlimits, no_new_privs, Landlock, seccomp) and then
//! starts each command by `clone(CLONE_VM | CLONE_VFORK | CLONE_PARENT)`. The commands
//! inherit the layers instead of building them again, which is most of a confined spawn's
//! cost (installing a seccomp filter alone costs tens of microseconds), and with
//! CLONE_PARENT they are children of the runtime, which waits for them as for any other.
//!
//! Protocol over a SOCK_SEQPACKET pair: a request is one message of three u32 counts
//! (candidates, argv, envp) and then NUL-terminated strings (the working directory, then
//! those three lists), with the command's stdout, stderr and optionally its `cgroup.procs`
//! passed as SCM_RIGHTS (its stdin is the spawner's own /dev/null); the reply is three i32: the pid (or -1), the failed
//! stage and its errno.
//!
//! The spawner is a fork of a multi-threaded process, so it never allocates: its buffers
//! are made before the fork. It is not dumpable (a command cannot read its memory, which
//! is a copy of the runtime's), holds no descriptor but its socket, and exits when the
//! runtime closes the socket or dies (its parent-death signal).
//!
//! Where the host allows it, the spawner's commands live in a PID namespace of their own:
//! after its user and mount namespaces the spawner unshares one and forks its init (pid 1
//! there), which mounts the namespace's `/proc` over the host's, then only reaps orphans.
//! So a command sees no process of the host (neither the runtime nor the spawner, which it
//! therefore cannot signal either), and when the spawner ends, for whatever reason, its
//! init sees the pipe only the spawner held close and exits, and the kernel kills every
//! process of the namespace: commands die with the runtime. The commands are still cloned by the spawner itself with
//! CLONE_PARENT (an init may not use it), so they stay the runtime's children. If the
//! spawner is gone, the sandbox starts commands directly, with the same layers applied per
//! command but without the PID namespace.

use crate::child::ChildPlan;
use crate::launch::{self, ChildContext, ChildStack, ExecStrings, Launch, Launched, Stage, Stdio};
use crate::pid_init::{argument_area, start_init};
use std::ffi::{c_char, c_int};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};

/// The largest request the spawner takes (a SOCK_SEQPACKET message must fit the socket's
/// send buffer); a larger command is started directly.
const REQUEST_CAP: usize = 160 * 1024;
/// The most strings (candidates + argv + envp) a request may hold.
const MAX_STRINGS: usize = 8192;
/// The spawner's socket once it has set itself up.
const SOCKET_FD: RawFd = 3;
/// The pipe its PID namespace's init watches (when it has one).
pub(crate) const INIT_WATCH_FD: RawFd = 4;
/// Room for up to four descriptors in one SCM_RIGHTS message (u64 for alignment).
const CONTROL_WORDS: usize = 8;

/// Why a command did not start through the spawner.
#[derive(Debug)]
pub(crate) enum SpawnerError {
    /// The spawner cannot take this request (gone, or the request is too large): start
    /// the command directly instead.
    Unavailable,
    /// The command itself could not be started (that is the answer).
    Failed(io::Error),
}

/// The runtime's side of a spawner.
#[derive(Debug)]
pub(crate) struct Spawner {
    socket: Mutex<Channel>,
    alive: AtomicBool,
    /// Forks it when first asked (see [`Spawner::fork_waiting`]) and knows its pid since.
    fork: Fork,
    /// Its commands have a PID namespace of their own (see the module documentation).
    pid_namespace: AtomicBool,
    /// A spawner that waits for its first command was promised a PID namespace (its
    /// sandbox's report says so): without one it starts nothing.
    needs_pid_namespace: bool,
    /// Dropped with the spawner: lets the keeper thread end.
    _stop: mpsc::Sender<()>,
}

/// The spawner's fork, made by its keeper thread when first asked: a waiting spawner's at
/// its sandbox's first command, so that a run that starts none forks nothing.
#[derive(Debug)]
struct Fork {
    /// Tells the keeper thread to fork (taken by the first ask; dropped unsent with the
    /// spawner, which ends the thread without a fork).
    ask: Mutex<Option<mpsc::Sender<()>>>,
    /// The keeper thread's answer, until it is taken into `known`.
    answer: Mutex<Option<mpsc::Receiver<io::Result<libc::pid_t>>>>,
    /// The pid, or the fork's errno.
    known: OnceLock<Result<libc::pid_t, i32>>,
}

impl Fork {
    /// The spawner's pid: forks it now if it was not yet, and waits for the fork.
    fn pid(&self) -> io::Result<libc::pid_t> {
        if let Some(ask) = lock(&self.ask).take() {
            // A keeper thread that is gone answers nothing: the wait below says so.
            let _ = ask.send(());
        }
        let known = self.known.get_or_init(|| {
            let answer = lock(&self.answer).take();
            match answer.map(|answer| answer.recv()) {
                Some(Ok(Ok(pid))) => Ok(pid),
                Some(Ok(Err(e))) => Err(e.raw_os_error().unwrap_or(libc::EIO)),
                // The keeper thread ended without an answer.
                Some(Err(_)) | None => Err(libc::ECHILD),
            }
        });
        known.map_err(io::Error::from_raw_os_error)
    }

    /// The pid, if it was forked (never forks).
    fn forked(&self) -> Option<libc::pid_t> {
        self.known.get().and_then(|known| known.ok())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The socket to the spawner, and whether it has set itself up.
#[derive(Debug)]
struct Channel {
    socket: OwnedFd,
    /// It entered its namespaces and confined itself (false: it waits for the first command).
    awake: bool,
}

/// A spawner has set itself up with every layer on this host (its namespaces, mount plan,
/// PID namespace and restrictions): later sandboxes fork theirs waiting, and it sets itself
/// up at their first command ([`Spawner::fork_waiting`]). Noted by the tool worker whose
/// sandbox proved it ([`crate::Sandbox::proves_spawner`]), and by runtimes it tells.
static PROVEN: AtomicBool = AtomicBool::new(false);

/// Whether a spawner with every layer has started on this host, as noted here
/// ([`note_spawner_proven`]).
pub fn spawner_proven() -> bool {
    PROVEN.load(Ordering::Acquire)
}

/// Records that a spawner with every layer started on this host (a tool worker learns it
/// from its runtime, which learns it from an earlier worker).
pub fn note_spawner_proven() {
    PROVEN.store(true, Ordering::Release);
}

/// What the forked spawner works with, all allocated before the fork.
struct SpawnerMemory {
    buffer: Vec<u8>,
    pointers: Vec<*const c_char>,
    stack: ChildStack,
    plan: Arc<ChildPlan>,
    runtime: libc::pid_t,
    socket: RawFd,
    /// The runtime's end of the socket, which the spawner closes first (its copy would keep
    /// it from seeing the runtime go).
    runtime_end: RawFd,
    /// The descriptors its setup needs (the plan's): kept while it waits, -1 for none.
    plan_fds: [RawFd; 3],
    dev_null: RawFd,
    /// Set in the spawner once its PID namespace is up.
    pid_namespace: bool,
    /// The runtime's argument strings (start, end): the init of the PID namespace, a copy
    /// of the runtime, blanks them so its `/proc/1/cmdline` shows nothing of the runtime.
    arguments: (usize, usize),
}

// SAFETY: the raw pointers are scratch space filled only in the forked spawner.
unsafe impl Send for SpawnerMemory {}

impl Spawner {
    /// Forks the spawner and waits until it is confined.
    pub(crate) fn start(plan: Arc<ChildPlan>) -> io::Result<Spawner> {
        let spawner = Self::fork_waiting(plan, false)?;
        // Forked now, with the fork's own error rather than a spawner found gone.
        spawner.fork.pid()?;
        let mut channel = spawner.socket.lock().expect("fresh mutex");
        spawner.wake(&mut channel).map_err(|e| match e {
            SpawnerError::Failed(e) => e,
            SpawnerError::Unavailable => io::Error::other("the spawner exited while setting up"),
        })?;
        drop(channel);
        Ok(spawner)
    }

    /// A spawner that waits for the sandbox's first command: only then does its keeper
    /// thread (which lives as long as this `Spawner`: the commands' parent-death signal is
    /// tied to it) fork it, and it set itself up: a sandbox whose run starts no command
    /// forks nothing and makes no namespace. Forked, before it is set up, it holds only its
    /// socket, /dev/null and the plan's descriptors. `needs_pid_namespace`: it was promised
    /// a PID namespace, and refuses to start commands without one.
    ///
    /// The keeper thread is started here, before the worker Landlocks itself: Landlock binds
    /// the calling thread, so the keeper thread stays outside the worker's domain, and the
    /// spawner it forks at the first command can still make its namespaces and mounts.
    pub(crate) fn fork_waiting(
        plan: Arc<ChildPlan>,
        needs_pid_namespace: bool,
    ) -> io::Result<Spawner> {
        // Debug builds only: a host where no spawner can start, for the tests of what is
        // said and done then (`praxis doctor`, the worker's confinement).
        #[cfg(debug_assertions)]
        if std::env::var_os("PRAXIS_NO_SPAWNER_FOR_TESTS").is_some_and(|v| v == "1") {
            return Err(io::Error::other(
                "PRAXIS_NO_SPAWNER_FOR_TESTS=1 (a debug-build test switch)",
            ));
        }
        let (ours, theirs) = socket_pair()?;
        let dev_null = launch::dev_null()?;
        let plan_fds = plan.fds();
        let memory = SpawnerMemory {
            buffer: vec![0; REQUEST_CAP],
            pointers: vec![std::ptr::null(); MAX_STRINGS + 3],
            stack: ChildStack::map()?,
            plan,
            // SAFETY: getpid cannot fail.
            runtime: unsafe { libc::getpid() },
            socket: theirs.as_raw_fd(),
            runtime_end: ours.as_raw_fd(),
            plan_fds,
            dev_null: dev_null.as_raw_fd(),
            pid_namespace: false,
            arguments: argument_area().unwrap_or((0, 0)),
        };
        let (ask, asked) = mpsc::channel::<()>();
        let (forked_tx, forked_rx) = mpsc::channel::<io::Result<libc::pid_t>>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("praxis-spawner".into())
            .spawn(move || {
                let mut memory = memory;
                // Until the first command (or the sandbox's end: then no fork at all).
                if asked.recv().is_err() {
                    return;
                }
                // SAFETY: the child only makes raw system calls on memory prepared above
                // (see `inside::spawner_main`) and never returns into Rust code.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    unsafe { inside::spawner_main(&mut memory) }
                }
                drop((theirs, dev_null));
                if pid < 0 {
                    let _ = forked_tx.send(Err(io::Error::last_os_error()));
                    return;
                }
                let _ = forked_tx.send(Ok(pid));
                launch::reap(pid);
                // Commands started by the spawner are killed when this thread ends: stay
                // until the sandbox is gone, even if the spawner was killed.
                let _ = stop_rx.recv();
            })?;
        Ok(Spawner {
            socket: Mutex::new(Channel {
                socket: ours,
                awake: false,
            }),
            alive: AtomicBool::new(true),
            fork: Fork {
                ask: Mutex::new(Some(ask)),
                answer: Mutex::new(Some(forked_rx)),
                known: OnceLock::new(),
            },
            pid_namespace: AtomicBool::new(false),
            needs_pid_namespace,
            _stop: stop_tx,
        })
    }

    /// Has a waiting spawner forked (if it was not yet) and set up, and waits until it is
    /// confined. Unavailable: it was gone (its fork failed, or it was killed); Failed: it
    /// could not apply every layer (it then exits), or has no PID namespace where one was
    /// promised (it is killed). Either way it is gone afterwards.
    fn wake(&self, channel: &mut Channel) -> Result<(), SpawnerError> {
        let result = (|| {
            // Forked now, at its first command (a fork that failed: as if it were gone).
            let pid = self.fork.pid().map_err(|_| SpawnerError::Unavailable)?;
            let mut ready = [0i32; 3];
            send_wake(&channel.socket)
                .and_then(|()| recv_reply(&channel.socket, &mut ready))
                .map_err(|_| SpawnerError::Unavailable)?;
            if ready[1] != Stage::None as i32 {
                return Err(SpawnerError::Failed(
                    Stage::from_i32(ready[1]).error(ready[2]),
                ));
            }
            if self.needs_pid_namespace && ready[0] != 1 {
                // Set up and serving, but not as promised: it goes. Alive (it answered and
                // waits for requests), so its pid is still its own.
                // SAFETY: kill(2) on our own unreaped child (the keeper thread reaps it).
                unsafe { libc::kill(pid, libc::SIGKILL) };
                return Err(SpawnerError::Failed(io::Error::other(
                    "the host refused its PID namespace, which the sandbox's report promised",
                )));
            }
            self.pid_namespace.store(ready[0] == 1, Ordering::Release);
            Ok(())
        })();
        // A spawner that failed a stage has exited by itself.
        match result {
            Ok(()) => channel.awake = true,
            Err(_) => self.alive.store(false, Ordering::Release),
        }
        result
    }

    /// Whether its commands have a PID namespace (and /proc) of their own.
    pub(crate) fn pid_namespace(&self) -> bool {
        self.pid_namespace.load(Ordering::Acquire)
    }

    /// Whether it has set itself up (false: it waits for its first command).
    pub(crate) fn is_awake(&self) -> bool {
        self.socket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .awake
    }

    /// Its pid, once it is forked (a waiting spawner is at its first command).
    pub(crate) fn pid(&self) -> Option<libc::pid_t> {
        self.fork.forked()
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Starts `launch` through the spawner.
    pub(crate) fn launch(
        &self,
        launch: &Launch<'_>,
        cgroup_procs: [Option<BorrowedFd<'_>>; 2],
    ) -> Result<Launched, SpawnerError> {
        if !self.alive.load(Ordering::Acquire) {
            return Err(SpawnerError::Unavailable);
        }
        let strings = ExecStrings::new(launch).map_err(SpawnerError::Failed)?;
        let request = encode(&strings).ok_or(SpawnerError::Unavailable)?;
        let stdio = Stdio::new().map_err(SpawnerError::Failed)?;
        let mut fds = vec![
            stdio.stdout_write.as_raw_fd(),
            stdio.stderr_write.as_raw_fd(),
        ];
        fds.extend(cgroup_procs.into_iter().flatten().map(|fd| fd.as_raw_fd()));
        let mut reply = [0i32; 3];
        let mut channel = self
            .socket
            .lock()
            .map_err(|_| SpawnerError::Failed(io::Error::other("the spawner lock is poisoned")))?;
        if !channel.awake {
            // Its first command: it sets itself up now. A spawner that cannot apply every
            // layer its sandbox reported starts nothing (never a command with fewer); one
            // that was gone is replaced as any lost spawner is.
            self.wake(&mut channel).map_err(|e| match e {
                SpawnerError::Failed(e) => SpawnerError::Failed(io::Error::other(format!(
                    "the sandbox's spawner could not set itself up for its first command \
                     ({e}); no command runs with fewer layers than the sandbox reported"
                ))),
                gone => gone,
            })?;
        }
        let socket = &channel.socket;
        if send_request(socket, &request, &fds).is_err() {
            // Gone before it got the request: nothing started, so the caller may start the
            // command directly.
            self.alive.store(false, Ordering::Release);
            return Err(SpawnerError::Unavailable);
        }
        let replied = recv_reply(socket, &mut reply);
        drop(channel);
        drop(stdio.stdout_write);
        drop(stdio.stderr_write);
        if let Err(e) = replied {
            // Gone after it got the request (a command of this sandbox may kill it): the
            // command may have started, so it must not be started again.
            self.alive.store(false, Ordering::Release);
            return Err(SpawnerError::Failed(io::Error::other(format!(
                "the sandbox's spawner stopped while starting the command ({e}); it may have \
                 started and was not retried"
            ))));
        }
        let [pid, stage, errno] = reply;
        if pid < 0 {
            return Err(SpawnerError::Failed(io::Error::from_raw_os_error(errno)));
        }
        if stage != Stage::None as i32 {
            launch::reap(pid);
            return Err(SpawnerError::Failed(Stage::from_i32(stage).error(errno)));
        }
        // The command is our child (CLONE_PARENT) and nobody else reaps it, so its pid is
        // still its own here, even if it has already exited.
        let pidfd = match crate::lifetime::pidfd_open(pid) {
            Ok(pidfd) => pidfd,
            Err(e) => {
                // SAFETY: our own unreaped child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                launch::reap(pid);
                return Err(SpawnerError::Failed(e));
            }
        };
        Ok(Launched {
            pid,
            pidfd,
            stdout: stdio.stdout_read,
            stderr: stdio.stderr_read,
        })
    }
}

fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: socketpair writes two descriptors into the array.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The request bytes, or None if they exceed what the spawner takes.
fn encode(strings: &ExecStrings) -> Option<Vec<u8>> {
    let count = strings.candidates.len() + strings.argv.len() + strings.envp.len();
    if count > MAX_STRINGS {
        return None;
    }
    let mut request = Vec::with_capacity(4096);
    for list in [&strings.candidates, &strings.argv, &strings.envp] {
        request.extend_from_slice(&(list.len() as u32).to_ne_bytes());
    }
    request.extend_from_slice(strings.cwd.as_bytes_with_nul());
    for list in [&strings.candidates, &strings.argv, &strings.envp] {
        for s in list {
            request.extend_from_slice(s.as_bytes_with_nul());
        }
    }
    (request.len() <= REQUEST_CAP).then_some(request)
}

/// Where the parts of a decoded request start in the pointer array.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    cwd: usize,
    argv: usize,
    envp: usize,
}

/// Fills `pointers` with: the candidates, null, argv, null, envp, null (each pointing into
/// `request`), and says where argv and envp start and where the cwd is in `request`.
/// Allocation-free (it runs in the spawner). EINVAL for a malformed request.
fn decode(request: &[u8], pointers: &mut [*const c_char]) -> Result<Decoded, c_int> {
    if request.len() < 12 {
        return Err(libc::EINVAL);
    }
    let count = |i: usize| {
        u32::from_ne_bytes([
            request[4 * i],
            request[4 * i + 1],
            request[4 * i + 2],
            request[4 * i + 3],
        ]) as usize
    };
    let counts = [count(0), count(1), count(2)];
    let total = counts[0]
        .saturating_add(counts[1])
        .saturating_add(counts[2]);
    if total.saturating_add(3) > pointers.len() {
        return Err(libc::E2BIG);
    }
    let cwd = 12;
    let mut at = match request[cwd..].iter().position(|&b| b == 0) {
        Some(end) => cwd + end + 1,
        None => return Err(libc::EINVAL),
    };
    let mut slot = 0;
    let mut starts = [0usize; 3];
    for (part, &n) in counts.iter().enumerate() {
        starts[part] = slot;
        for _ in 0..n {
            let Some(end) = request
                .get(at..)
                .and_then(|rest| rest.iter().position(|&b| b == 0))
            else {
                return Err(libc::EINVAL);
            };
            pointers[slot] = request[at..].as_ptr().cast();
            slot += 1;
            at += end + 1;
        }
        pointers[slot] = std::ptr::null();
        slot += 1;
    }
    if at != request.len() || counts[1] == 0 {
        return Err(libc::EINVAL);
    }
    Ok(Decoded {
        cwd,
        argv: starts[1],
        envp: starts[2],
    })
}

fn send_request(socket: &OwnedFd, request: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let mut control = [0u64; CONTROL_WORDS];
    let fd_bytes = std::mem::size_of_val(fds) as u32;
    // SAFETY: the control buffer has room for CMSG_SPACE(4 fds); we fill one header.
    unsafe {
        let mut iov = libc::iovec {
            iov_base: request.as_ptr().cast_mut().cast(),
            iov_len: request.len(),
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(fd_bytes) as _;
        let header = libc::CMSG_FIRSTHDR(&msg);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(fd_bytes) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(header).cast(), fds.len());
        sent_all(request.len(), || {
            libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL)
        })
    }
}

/// The one-byte message that tells a waiting spawner to set itself up.
fn send_wake(socket: &OwnedFd) -> io::Result<()> {
    // SAFETY: sends one byte from a live local.
    sent_all(1, || unsafe {
        libc::send(
            socket.as_raw_fd(),
            [1u8].as_ptr().cast(),
            1,
            libc::MSG_NOSIGNAL,
        )
    })
}

/// Repeats `send` while it is interrupted; Ok once it sent all `len` bytes.
fn sent_all(len: usize, mut send: impl FnMut() -> isize) -> io::Result<()> {
    loop {
        let sent = send();
        if sent == len as isize {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if sent >= 0 || e.kind() != io::ErrorKind::Interrupted {
            return Err(if sent >= 0 {
                io::Error::other("short send")
            } else {
                e
            });
        }
    }
}

fn recv_reply(socket: &OwnedFd, reply: &mut [i32; 3]) -> io::Result<()> {
    loop {
        // SAFETY: reads at most the reply's size into it.
        let got = unsafe {
            libc::recv(
                socket.as_raw_fd(),
                reply.as_mut_ptr().cast(),
                std::mem::size_of_val(reply),
                0,
            )
        };
        if got == std::mem::size_of_val(reply) as isize {
            return Ok(());
        }
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the spawner exited",
            ));
        }
        let e = io::Error::last_os_error();
        if got > 0 || e.kind() != io::ErrorKind::Interrupted {
            return Err(if got > 0 {
                io::Error::other("short reply")
            } else {
                e
            });
        }
    }
}

mod inside;
#[cfg(test)]
mod tests;
