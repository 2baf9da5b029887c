//! Starting a command the way `posix_spawn` does: `clone(CLONE_VM | CLONE_VFORK)` on a stack
//! of its own. The child borrows the parent's memory until it execs, so no page tables are
//! copied and the parent's threads take no copy-on-write faults afterwards. std's `Command`
//! falls back to `fork()` as soon as a `pre_exec` hook is set, which in a large
//! multi-threaded runtime costs several hundred microseconds per spawn; every spawn here
//! needs hooks (the process group, the death signal, the pids cgroup, the sandbox).
//!
//! Because the child shares its parent's memory, everything it reads is prepared by the
//! parent, and the child only makes raw system calls: it allocates nothing, takes no lock
//! and cannot unwind. Signals stay blocked until the child has reset every handler it
//! inherited, so no parent handler ever runs on the child's stack. The same child code runs
//! under the sandbox's spawner (see `spawner`), on pointers into a received request.

use std::cell::RefCell;
use std::ffi::{CString, c_char, c_int, c_void};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

/// What to start. The environment is the child's whole environment.
#[derive(Clone, Copy, Debug)]
pub struct Launch<'a> {
    /// Looked up in the `PATH` of `env` when it has no `/` (like `execvp`).
    pub program: &'a Path,
    pub args: &'a [String],
    pub env: &'a [(String, String)],
    pub cwd: &'a Path,
    /// `PATH` to search when `env` has none.
    pub default_path: &'a str,
}

/// A started command: its pid and pidfd, and the read ends of its stdout and stderr (its
/// stdin is `/dev/null`). It leads its own process group, is a child of this process, and
/// is killed by the kernel if the thread that started it (or the sandbox's spawner keeper)
/// exits.
#[derive(Debug)]
pub struct Launched {
    pub pid: libc::pid_t,
    pub pidfd: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

impl Launched {
    /// Blocks until the command has exited, collecting its whole stdout and stderr (both
    /// read at once, so neither pipe can fill up and stall it). For callers without an
    /// async runtime: tools, tests and measurements.
    pub fn wait_with_output(self) -> io::Result<(std::process::ExitStatus, Vec<u8>, Vec<u8>)> {
        use std::io::Read;
        use std::os::unix::process::ExitStatusExt;
        let Launched {
            pid,
            pidfd,
            stdout,
            stderr,
        } = self;
        let (out, err) = std::thread::scope(|scope| {
            let err = scope.spawn(move || {
                let mut err = Vec::new();
                std::fs::File::from(stderr)
                    .read_to_end(&mut err)
                    .map(|_| err)
            });
            let mut out = Vec::new();
            let out = std::fs::File::from(stdout)
                .read_to_end(&mut out)
                .map(|_| out);
            (
                out,
                err.join()
                    .unwrap_or_else(|_| Err(io::Error::other("reader panicked"))),
            )
        });
        let status = reap(pid);
        drop(pidfd);
        Ok((std::process::ExitStatus::from_raw(status), out?, err?))
    }
}

/// The step of the child's setup that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub(crate) enum Stage {
    None = 0,
    ProcessGroup,
    DeathSignal,
    Cgroup,
    Stdio,
    WorkingDirectory,
    Confinement,
    Exec,
}

impl Stage {
    pub(crate) fn from_i32(value: i32) -> Stage {
        [
            Stage::ProcessGroup,
            Stage::DeathSignal,
            Stage::Cgroup,
            Stage::Stdio,
            Stage::WorkingDirectory,
            Stage::Confinement,
            Stage::Exec,
        ]
        .into_iter()
        .find(|stage| *stage as i32 == value)
        .unwrap_or(Stage::None)
    }

    /// The error a failed child reported, naming the step.
    pub(crate) fn error(self, errno: c_int) -> io::Error {
        let cause = io::Error::from_raw_os_error(errno);
        let step = match self {
            Stage::None | Stage::Exec => return cause,
            Stage::ProcessGroup => "setting its process group",
            Stage::DeathSignal => "setting its parent-death signal",
            Stage::Cgroup => "joining its pids cgroup",
            Stage::Stdio => "connecting its standard streams",
            Stage::WorkingDirectory => "entering its working directory",
            Stage::Confinement => "confining it",
        };
        io::Error::new(cause.kind(), format!("{step}: {cause}"))
    }
}

/// The confinement a direct launch applies in the child, after the standard setup.
pub(crate) type Confine<'a> = &'a (dyn Fn() -> io::Result<()> + Sync);

/// Everything the child reads (prepared by the parent, or by the spawner from a request)
/// and where it reports a failure. Arrays are null-terminated.
pub(crate) struct ChildContext<'a> {
    pub candidates: *const *const c_char,
    pub argv: *const *const c_char,
    pub envp: *const *const c_char,
    pub cwd: *const c_char,
    pub stdin: RawFd,
    pub stdout: RawFd,
    pub stderr: RawFd,
    /// `cgroup.procs` of the command's pids cgroup and of its v1 memory cgroup, or -1.
    pub cgroup_procs: [RawFd; 2],
    /// What `getppid` must answer in the child (for the death-signal race check): the
    /// process it is a child of, or 0 in the spawner's PID namespace (whose processes do
    /// not see their parent; an orphan there would see the namespace's init, 1).
    pub parent: libc::pid_t,
    pub confine: Option<Confine<'a>>,
    pub failed_stage: AtomicI32,
    pub failed_errno: AtomicI32,
}

impl ChildContext<'_> {
    /// The failure the child reported, if any (read after the clone returned).
    pub(crate) fn failure(&self) -> Option<(Stage, c_int)> {
        match Stage::from_i32(self.failed_stage.load(Ordering::Acquire)) {
            Stage::None => None,
            stage => Some((stage, self.failed_errno.load(Ordering::Acquire))),
        }
    }
}

pub(crate) fn cstring(bytes: &[u8], what: &str) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} contains a NUL byte"),
        )
    })
}

/// A launch turned into the C strings `execve` takes.
pub(crate) struct ExecStrings {
    pub cwd: CString,
    /// The paths `execvp` would try for the program, in order.
    pub candidates: Vec<CString>,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
}

impl ExecStrings {
    pub(crate) fn new(launch: &Launch<'_>) -> io::Result<ExecStrings> {
        let name = launch.program.as_os_str().as_bytes();
        if name.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "empty program name",
            ));
        }
        let candidates = if name.contains(&b'/') {
            vec![cstring(name, "the program path")?]
        } else {
            let path = launch
                .env
                .iter()
                .rev()
                .find(|(k, _)| k == "PATH")
                .map_or(launch.default_path, |(_, v)| v.as_str());
            path.split(':')
                .map(|dir| {
                    let dir = if dir.is_empty() { "." } else { dir };
                    let mut full = Vec::with_capacity(dir.len() + 1 + name.len());
                    full.extend_from_slice(dir.as_bytes());
                    full.push(b'/');
                    full.extend_from_slice(name);
                    cstring(&full, "a PATH entry")
                })
                .collect::<io::Result<_>>()?
        };
        let mut argv = Vec::with_capacity(launch.args.len() + 1);
        argv.push(cstring(name, "the program")?);
        for arg in launch.args {
            argv.push(cstring(arg.as_bytes(), "an argument")?);
        }
        let envp = launch
            .env
            .iter()
            .map(|(k, v)| {
                if k.is_empty() || k.contains('=') {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("environment variable name `{k}` is empty or contains `=`"),
                    ));
                }
                cstring(format!("{k}={v}").as_bytes(), "an environment variable")
            })
            .collect::<io::Result<_>>()?;
        Ok(ExecStrings {
            cwd: cstring(launch.cwd.as_os_str().as_bytes(), "the working directory")?,
            candidates,
            argv,
            envp,
        })
    }
}

fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// A close-on-exec descriptor numbered 3 or above, so that moving the child's ends onto
/// 0, 1 and 2 can never overwrite one of them.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: fcntl on a descriptor we own; the result is a new descriptor we then own.
    let dup = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((above_stdio(read)?, above_stdio(write)?))
}

pub(crate) fn dev_null() -> io::Result<OwnedFd> {
    // SAFETY: open with a valid C string; the result is a descriptor we then own.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor owned by nobody else.
    above_stdio(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The output pipes of a command: the child's write ends and the parent's read ends.
pub(crate) struct Stdio {
    pub stdout_write: OwnedFd,
    pub stderr_write: OwnedFd,
    pub stdout_read: OwnedFd,
    pub stderr_read: OwnedFd,
}

impl Stdio {
    pub(crate) fn new() -> io::Result<Stdio> {
        let (stdout_read, stdout_write) = pipe()?;
        let (stderr_read, stderr_write) = pipe()?;
        Ok(Stdio {
            stdout_write,
            stderr_write,
            stdout_read,
            stderr_read,
        })
    }
}

/// A child stack: an anonymous mapping with a guard page below it.
pub(crate) struct ChildStack {
    base: *mut c_void,
    len: usize,
}

const CHILD_STACK_BYTES: usize = 256 * 1024;
const GUARD_BYTES: usize = 4096;

impl ChildStack {
    pub(crate) fn map() -> io::Result<ChildStack> {
        let len = CHILD_STACK_BYTES + GUARD_BYTES;
        // SAFETY: an anonymous private mapping; checked for failure below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = ChildStack { base, len };
        // SAFETY: the lowest page of our own mapping becomes inaccessible (an overflow
        // faults instead of writing below the stack).
        if unsafe { libc::mprotect(base, GUARD_BYTES, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The initial stack pointer (the stack grows down), 16-byte aligned.
    pub(crate) fn top(&self) -> *mut c_void {
        ((self.base as usize + self.len) & !15) as *mut c_void
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`; no child runs on it any more.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

thread_local! {
    /// One stack per thread, reused: the thread is suspended while its child runs on it.
    static CHILD_STACK: RefCell<Option<ChildStack>> = const { RefCell::new(None) };
}

/// Clones a child running `setup_and_exec(context)` and waits until it has exec'd or
/// failed. Returns its pid (and its pidfd when `flags` has CLONE_PIDFD).
///
/// # Safety
/// `context` must be valid for the child (see `ChildContext`); `stack` is not in use.
pub(crate) unsafe fn clone_child(
    context: &mut ChildContext<'_>,
    stack: &ChildStack,
    flags: c_int,
    pidfd: *mut c_int,
) -> io::Result<libc::pid_t> {
    // SAFETY: all signals are blocked around clone so that none is handled in the child
    // before it reset the handlers; the child runs `child_main` on its own stack with
    // `context`, which outlives it (CLONE_VFORK suspends this thread until the child
    // execs or exits).
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut previous);
        let pid = libc::clone(
            child_main,
            stack.top(),
            libc::CLONE_VM | libc::CLONE_VFORK | flags | libc::SIGCHLD,
            (context as *mut ChildContext<'_>).cast::<c_void>(),
            pidfd,
        );
        let error = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
        if pid < 0 { Err(error) } else { Ok(pid) }
    }
}

/// Waits for our own child `pid` to exit and returns its raw wait status (0 if it was
/// already reaped).
pub fn reap(pid: libc::pid_t) -> c_int {
    let mut status = 0;
    // SAFETY: waits for our own child.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0
        && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
    {}
    status
}

/// Starts `launch` from this process: `confine` (the sandbox's layers) runs in the child
/// after the standard setup, right before exec.
pub(crate) fn launch_direct(
    launch: &Launch<'_>,
    cgroup_procs: [RawFd; 2],
    confine: Option<Confine<'_>>,
) -> io::Result<Launched> {
    let strings = ExecStrings::new(launch)?;
    let (candidates, argv, envp) = (
        null_terminated(&strings.candidates),
        null_terminated(&strings.argv),
        null_terminated(&strings.envp),
    );
    let stdio = Stdio::new()?;
    let stdin = dev_null()?;
    let mut context = ChildContext {
        candidates: candidates.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: strings.cwd.as_ptr(),
        stdin: stdin.as_raw_fd(),
        stdout: stdio.stdout_write.as_raw_fd(),
        stderr: stdio.stderr_write.as_raw_fd(),
        cgroup_procs,
        // SAFETY: getpid cannot fail.
        parent: unsafe { libc::getpid() },
        confine,
        failed_stage: AtomicI32::new(Stage::None as i32),
        failed_errno: AtomicI32::new(0),
    };
    let mut pidfd: c_int = -1;
    let cloned = CHILD_STACK.with(|cell| -> io::Result<libc::pid_t> {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(ChildStack::map()?);
        }
        let stack = slot.as_ref().expect("mapped above");
        // SAFETY: `context` and the strings it points into live until the child has
        // exec'd (CLONE_VFORK); this thread's stack is not in use by another child.
        unsafe { clone_child(&mut context, stack, libc::CLONE_PIDFD, &mut pidfd) }
    });
    let Stdio {
        stdout_write,
        stderr_write,
        stdout_read,
        stderr_read,
    } = stdio;
    // The child's ends are the child's now (or nobody's, if it failed).
    drop((stdin, stdout_write, stderr_write));
    let pid = cloned?;
    // SAFETY: CLONE_PIDFD stored a fresh descriptor for the child, owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    if let Some((stage, errno)) = context.failure() {
        reap(pid);
        return Err(stage.error(errno));
    }
    Ok(Launched {
        pid,
        pidfd,
        stdout: stdout_read,
        stderr: stderr_read,
    })
}

/// The child's side. Runs on the child stack, sharing the parent's memory: raw system calls
/// on the prepared context only.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the parent's `ChildContext`, alive and not touched by the parent
    // until this child execs or exits.
    let context = unsafe { &*arg.cast::<ChildContext<'_>>() };
    // SAFETY: we are the freshly cloned child, with all signals blocked.
    let (stage, errno) = unsafe { setup_and_exec(context) };
    context.failed_errno.store(errno, Ordering::Release);
    context.failed_stage.store(stage as i32, Ordering::Release);
    // SAFETY: leaves without running any destructor or atexit handler of the parent.
    unsafe { libc::_exit(127) }
}

/// Every handler this process inherited back to its default (and SIGPIPE, which the Rust
/// runtime ignores): inherited handlers are the parent's code on the parent's data.
///
/// # Safety
/// Raw system calls only.
pub(crate) unsafe fn reset_signal_handlers() {
    unsafe {
        for signal in 1..=64 {
            if signal == libc::SIGKILL || signal == libc::SIGSTOP {
                continue;
            }
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut old) != 0 {
                continue;
            }
            let ignored = old.sa_sigaction == libc::SIG_IGN;
            if old.sa_sigaction != libc::SIG_DFL && (!ignored || signal == libc::SIGPIPE) {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
    }
}

/// Sets the child up and execs; returns only on failure, with the failed stage and errno.
///
/// # Safety
/// Call only in the child of `clone(CLONE_VM | CLONE_VFORK)` with all signals blocked.
unsafe fn setup_and_exec(context: &ChildContext<'_>) -> (Stage, c_int) {
    let errno = || {
        io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL)
    };
    unsafe {
        // The handler table is the child's own (no CLONE_SIGHAND): reset it before any
        // signal can be delivered.
        reset_signal_handlers();
        // Own group: a timeout or cancellation kills everything the command started.
        if libc::setpgid(0, 0) != 0 {
            return (Stage::ProcessGroup, errno());
        }
        // If the runtime dies (even by SIGKILL), the kernel kills the child.
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            return (Stage::DeathSignal, errno());
        }
        // The parent may have died before the death signal was armed: nobody would kill us.
        if libc::getppid() != context.parent {
            libc::_exit(137);
        }
        for procs in context.cgroup_procs {
            if procs >= 0 && libc::write(procs, b"0".as_ptr().cast(), 1) != 1 {
                return (Stage::Cgroup, errno());
            }
        }
        for (from, to) in [(context.stdin, 0), (context.stdout, 1), (context.stderr, 2)] {
            // The pipes are >= 3 (see `above_stdio`), so none is overwritten here, and dup2's
            // copy is not close-on-exec. Under the spawner, stdin is already its fd 0 (its
            // /dev/null, not close-on-exec): dup2 onto itself leaves it as it is.
            if libc::dup2(from, to) != to {
                return (Stage::Stdio, errno());
            }
        }
        if let Some(confine) = context.confine
            && let Err(e) = confine()
        {
            return (Stage::Confinement, e.raw_os_error().unwrap_or(libc::EINVAL));
        }
        // After the confinement: a working directory entered before a new mount namespace
        // would keep the host's view of it (e.g. a writable .git below it).
        if libc::chdir(context.cwd) != 0 {
            return (Stage::WorkingDirectory, errno());
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        // Like execvp: go on past directories that lack the program or may not be searched,
        // and report EACCES if that is all we met.
        let mut failure = libc::ENOENT;
        let mut candidate = context.candidates;
        while !(*candidate).is_null() {
            libc::execve(*candidate, context.argv, context.envp);
            match errno() {
                libc::ENOENT | libc::ENOTDIR => {}
                libc::EACCES => failure = libc::EACCES,
                other => return (Stage::Exec, other),
            }
            candidate = candidate.add(1);
        }
        (Stage::Exec, failure)
    }
}

/// Starts `launch` unconfined (its own process group, a scrubbed environment is the
/// caller's business, stdin from `/dev/null`, stdout and stderr piped).
pub fn launch(launch: &Launch<'_>) -> io::Result<Launched> {
    launch_direct(launch, [-1, -1], None)
}
