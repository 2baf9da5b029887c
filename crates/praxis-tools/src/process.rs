//! Process execution with limits: a scrubbed environment, its own process group, a
//! timeout that kills the whole group, bounded output capture, and no orphans left behind
//! (not on timeout, not when the main child exits early, not when the caller gives up).
//! The sandboxed worker wraps this same function.

use crate::spawn;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use praxis_sandbox::Sandbox;
use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};

/// How long the readers may still drain the pipes once the main child is gone and its
/// group was killed. Only a process that left the group (e.g. via `setsid`) while holding
/// a pipe open can make this grace expire; we then stop reading instead of hanging.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// Default `PATH` when the parent has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to run and within which limits.
#[derive(Clone, Debug)]
pub struct ProcessSpec {
    /// Program to execute; a bare name is looked up in the `PATH` of `env`.
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    /// The complete environment of the child: nothing is inherited from the parent.
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    /// Bytes kept per stream (stdout and stderr each): the head and the tail, half each.
    pub output_cap: usize,
    /// Confinement applied in the child before exec (None: unconfined). The sandbox also
    /// replaces HOME and TMPDIR in `env` with its private ones.
    pub sandbox: Option<Arc<Sandbox>>,
}

/// What happened to a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessOutcome {
    /// The exit code when the process exited normally.
    pub exit_code: Option<i32>,
    /// The signal that terminated the process, if one did.
    pub signal: Option<i32>,
    /// The timeout expired and the process group was killed.
    pub timed_out: bool,
    pub stdout: CappedOutput,
    pub stderr: CappedOutput,
    pub duration: Duration,
    /// The process could not be started (nothing ran); the message names the program.
    pub spawn_error: Option<String>,
    /// The kernel killed a process of the command for exceeding its memory bound (bytes);
    /// stderr ends with a line saying so.
    pub memory_exceeded: Option<u64>,
}

impl ProcessOutcome {
    /// Exited normally with code 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out && self.spawn_error.is_none()
    }

    /// Bytes dropped from both streams together.
    pub fn cut(&self) -> u64 {
        self.stdout.cut() + self.stderr.cut()
    }
}

/// Output of one stream, bounded: when more than the cap arrived, `bytes` holds the first
/// half of the cap and the last half (the cut is in the middle, at `bytes.len() / 2`), and
/// `total` counts every byte the stream produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CappedOutput {
    pub bytes: Vec<u8>,
    pub total: u64,
}

impl CappedOutput {
    /// Keeps all of `data` if it fits in `cap`, otherwise its head and tail.
    pub fn from_bytes(data: &[u8], cap: usize) -> Self {
        let mut capper = Capper::new(cap);
        capper.push(data);
        capper.finish()
    }

    /// Bytes that were dropped.
    pub fn cut(&self) -> u64 {
        self.total.saturating_sub(self.bytes.len() as u64)
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Lossy UTF-8 text with `\n[... N bytes cut ...]\n` where bytes were dropped.
    pub fn to_text_with_marker(&self) -> String {
        let cut = self.cut();
        if cut == 0 {
            return String::from_utf8_lossy(&self.bytes).into_owned();
        }
        let (head, tail) = self.bytes.split_at(self.bytes.len() / 2);
        format!(
            "{}\n[... {cut} bytes cut ...]\n{}",
            String::from_utf8_lossy(head),
            String::from_utf8_lossy(tail)
        )
    }

    /// The same output held to a smaller cap (head and tail shrink, the cut grows). The
    /// kept head is a prefix of the current head and the kept tail a suffix of the current
    /// tail, so the result is exactly what capping the original stream at `cap` gives.
    pub fn recap(&self, cap: usize) -> CappedOutput {
        if self.bytes.len() <= cap {
            return self.clone();
        }
        let head = cap / 2;
        let tail = cap - head;
        let mut bytes = Vec::with_capacity(cap);
        bytes.extend_from_slice(&self.bytes[..head]);
        bytes.extend_from_slice(&self.bytes[self.bytes.len() - tail..]);
        CappedOutput {
            bytes,
            total: self.total,
        }
    }
}

/// Holds stdout and stderr together to `cap` bytes: the stream that needs less than half
/// keeps all of it and the other one gets the rest.
pub fn fit_pair(
    stdout: &CappedOutput,
    stderr: &CappedOutput,
    cap: usize,
) -> (CappedOutput, CappedOutput) {
    let (out_len, err_len) = (stdout.bytes.len(), stderr.bytes.len());
    if out_len + err_len <= cap {
        return (stdout.clone(), stderr.clone());
    }
    let half = cap / 2;
    let err_cap = if out_len < half {
        cap - out_len
    } else {
        err_len.min(cap - half)
    };
    let out_cap = cap - err_cap;
    (stdout.recap(out_cap), stderr.recap(err_cap))
}

/// Head-and-tail accumulator behind `CappedOutput`.
struct Capper {
    head_cap: usize,
    tail_cap: usize,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    total: u64,
}

impl Capper {
    fn new(cap: usize) -> Self {
        let head_cap = cap / 2;
        Capper {
            head_cap,
            tail_cap: cap - head_cap,
            head: Vec::new(),
            tail: VecDeque::new(),
            total: 0,
        }
    }

    fn push(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        let room = self.head_cap - self.head.len();
        if room > 0 {
            let take = room.min(data.len());
            self.head.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        if self.tail_cap == 0 || data.is_empty() {
            return;
        }
        if data.len() >= self.tail_cap {
            self.tail.clear();
            self.tail.extend(&data[data.len() - self.tail_cap..]);
        } else {
            let overflow = (self.tail.len() + data.len()).saturating_sub(self.tail_cap);
            self.tail.drain(..overflow);
            self.tail.extend(data);
        }
    }

    fn finish(self) -> CappedOutput {
        let mut bytes = self.head;
        bytes.extend(self.tail);
        CappedOutput {
            bytes,
            total: self.total,
        }
    }
}

/// A minimal environment for child processes, so that no secret of the parent (API keys,
/// tokens, database URLs) leaks into commands a model proposed. Exactly:
/// - `PATH`: the parent's, or [`DEFAULT_PATH`];
/// - `HOME`: the parent's, if set;
/// - `LANG=C.UTF-8` and `TERM=dumb` (predictable, colour-free output);
/// - `USER` and `LOGNAME`, if set (some tools refuse to run without them);
/// - `CARGO_HOME` and `RUSTUP_HOME`, if set (so `cargo` finds its toolchain and registry);
/// - `PYTHONDONTWRITEBYTECODE=1` (no `__pycache__` left in the workspace by a test run).
pub fn clean_env() -> Vec<(String, String)> {
    let mut env = vec![(
        "PATH".to_string(),
        std::env::var("PATH")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| DEFAULT_PATH.to_string()),
    )];
    let inherit = |env: &mut Vec<(String, String)>, name: &str| {
        // Non-UTF-8 values are skipped: the environment is passed on as strings.
        if let Ok(value) = std::env::var(name) {
            env.push((name.to_string(), value));
        }
    };
    inherit(&mut env, "HOME");
    env.push(("LANG".to_string(), "C.UTF-8".to_string()));
    env.push(("TERM".to_string(), "dumb".to_string()));
    for name in ["USER", "LOGNAME", "CARGO_HOME", "RUSTUP_HOME"] {
        inherit(&mut env, name);
    }
    env.push(("PYTHONDONTWRITEBYTECODE".to_string(), "1".to_string()));
    env
}

/// Kills the child's process group unless disarmed: covers the caller dropping the future
/// (cancellation) at any await point.
struct GroupGuard {
    pgid: Option<Pid>,
}

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid {
            // ESRCH (group already gone) is the expected case after a clean exit.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }

    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Copies a pipe into a capper until EOF or a read error (the error ends the stream; what
/// was read is kept).
async fn pump<R: AsyncRead + Unpin>(mut reader: R, capper: &mut Capper) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => capper.push(&buf[..n]),
        }
    }
}

/// Runs `spec` to completion, timeout or cancellation. Never panics and never returns an
/// error: a failure to start is reported in `spawn_error`.
pub async fn run_process(spec: &ProcessSpec) -> ProcessOutcome {
    let started = Instant::now();
    let failed = |why: String| ProcessOutcome {
        exit_code: None,
        signal: None,
        timed_out: false,
        stdout: CappedOutput::default(),
        stderr: CappedOutput::default(),
        duration: started.elapsed(),
        spawn_error: Some(why),
        memory_exceeded: None,
    };
    let env = match &spec.sandbox {
        Some(sandbox) => sandbox.environment(&spec.env),
        None => spec.env.clone(),
    };
    // A pids cgroup per confined command: bounds its process count and finds every process
    // it started (even one that left the process group) to kill at the end.
    let mut cgroup = match spec.sandbox.as_ref().map(|s| s.spawn_cgroup()) {
        Some(Ok(cgroup)) => cgroup,
        Some(Err(e)) => {
            return failed(format!(
                "cannot start `{}`: sandbox: {e}",
                spec.program.display()
            ));
        }
        None => None,
    };
    let launch = praxis_sandbox::Launch {
        program: &spec.program,
        args: &spec.args,
        env: &env,
        cwd: &spec.cwd,
        default_path: DEFAULT_PATH,
    };
    let launched = match &spec.sandbox {
        Some(sandbox) => sandbox.launch(&launch, cgroup.as_ref()),
        None => praxis_sandbox::launch(&launch),
    };
    let spawned = launched.and_then(spawn::adopt);
    let (mut child, stdout_pipe, stderr_pipe) = match spawned {
        Ok(spawned) => spawned,
        Err(e) => {
            let confined = if spec.sandbox.is_some() {
                " (confined: the sandbox setup in the child failed or the program is not \
                 readable inside the sandbox)"
            } else {
                ""
            };
            return failed(format!(
                "cannot start `{}` in `{}`: {e}{confined}",
                spec.program.display(),
                spec.cwd.display()
            ));
        }
    };
    let mut guard = GroupGuard {
        pgid: Some(Pid::from_raw(child.id())),
    };

    let mut out = Capper::new(spec.output_cap);
    let mut err = Capper::new(spec.output_cap);
    let mut timed_out = false;
    let status;
    {
        // Both pipes are drained continuously, concurrently with waiting for the child, so
        // a chatty child never blocks on a full pipe.
        let reading = async {
            tokio::join!(pump(stdout_pipe, &mut out), pump(stderr_pipe, &mut err));
        };
        tokio::pin!(reading);
        let mut reading_done = false;
        let deadline = tokio::time::Instant::now() + spec.timeout;
        let waited = loop {
            tokio::select! {
                res = child.wait() => break Some(res),
                _ = tokio::time::sleep_until(deadline) => break None,
                _ = &mut reading, if !reading_done => reading_done = true,
            }
        };
        // Main child gone or out of time: either way nothing of its group may outlive it.
        // (Even if the child was just reaped, the group id stays taken while any member
        // lives; an empty group only makes this an ESRCH.)
        guard.kill();
        status = match waited {
            Some(res) => res.ok(),
            None => {
                timed_out = true;
                child.wait().await.ok()
            }
        };
        if !reading_done {
            // Killed processes close their pipes; only an escapee could keep them open.
            let _ = tokio::time::timeout(DRAIN_GRACE, &mut reading).await;
        }
    }
    guard.disarm();
    // Read before the cgroup is released: the kernel counts OOM kills in it.
    let memory_exceeded = cgroup.as_ref().and_then(|c| c.memory_exceeded());
    if let Some(bound) = memory_exceeded {
        err.push(
            format!(
                "\n[sandbox: killed: the command exceeded its memory bound of {} MiB]\n",
                bound >> 20
            )
            .as_bytes(),
        );
    }
    if let Some(mut cgroup) = cgroup.take()
        && !cgroup.try_finish_now()
    {
        // Escapees from the process group are still in the cgroup: kill them and wait for
        // the cgroup to empty (blocking, so off the async threads).
        let _ = tokio::task::spawn_blocking(move || cgroup.finish()).await;
    }

    ProcessOutcome {
        exit_code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        timed_out,
        stdout: out.finish(),
        stderr: err.finish(),
        duration: started.elapsed(),
        spawn_error: None,
        memory_exceeded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bash(script: &str, dir: &std::path::Path, timeout: Duration) -> ProcessSpec {
        ProcessSpec {
            program: PathBuf::from("bash"),
            args: vec!["-c".into(), script.into()],
            cwd: dir.to_path_buf(),
            env: clean_env(),
            timeout,
            output_cap: 64 * 1024,
            sandbox: None,
        }
    }

    /// A pid is alive if /proc lists it and it is not a zombie (PID 1 in a container may
    /// never reap orphans, so a killed orphan can linger as a zombie).
    fn alive(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => {
                let state = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.trim_start().chars().next());
                !matches!(state, Some('Z') | Some('X'))
            }
            Err(_) => false,
        }
    }

    /// SIGKILL delivery is asynchronous: give the kernel a moment to finish the process.
    /// This is a liveness bound, not a performance assertion.
    async fn wait_dead(pid: i32) -> bool {
        for _ in 0..200 {
            if !alive(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    fn read_pid(path: &std::path::Path) -> i32 {
        std::fs::read_to_string(path)
            .expect("pidfile written")
            .trim()
            .parse()
            .expect("pidfile holds a pid")
    }

    #[tokio::test]
    async fn exit_codes_and_streams() {
        let dir = tempfile::tempdir().unwrap();
        let ok = run_process(&bash(
            "echo out; echo err >&2",
            dir.path(),
            Duration::from_secs(60),
        ))
        .await;
        assert_eq!(ok.exit_code, Some(0));
        assert!(ok.success());
        assert_eq!(ok.stdout.bytes, b"out\n");
        assert_eq!(ok.stderr.bytes, b"err\n");
        assert_eq!(ok.signal, None);
        assert!(!ok.timed_out);

        let failed = run_process(&bash("exit 3", dir.path(), Duration::from_secs(60))).await;
        assert_eq!(failed.exit_code, Some(3));
        assert!(!failed.success());

        let killed = run_process(&bash("kill -TERM $$", dir.path(), Duration::from_secs(60))).await;
        assert_eq!(killed.exit_code, None);
        assert_eq!(killed.signal, Some(libc::SIGTERM));
    }

    #[tokio::test]
    async fn runs_in_cwd() {
        let dir = tempfile::tempdir().unwrap();
        let out = run_process(&bash("pwd -P", dir.path(), Duration::from_secs(60))).await;
        let expected = dir.path().canonicalize().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout.bytes).trim(),
            expected.to_str().unwrap()
        );
    }

    #[tokio::test]
    async fn spawn_error_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = bash("true", dir.path(), Duration::from_secs(60));
        spec.program = PathBuf::from("/nonexistent/praxis-no-such-program");
        let outcome = run_process(&spec).await;
        let msg = outcome.spawn_error.clone().expect("spawn error");
        assert!(msg.contains("praxis-no-such-program"), "{msg}");
        assert_eq!(outcome.exit_code, None);
        assert!(!outcome.success());
    }

    #[tokio::test]
    async fn big_output_keeps_head_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = bash(
            "printf HEAD; head -c 5000000 /dev/zero | tr '\\0' a; printf TAIL",
            dir.path(),
            Duration::from_secs(120),
        );
        spec.output_cap = 1000;
        let outcome = run_process(&spec).await;
        assert_eq!(outcome.exit_code, Some(0));
        let total = 5_000_000 + 8;
        assert_eq!(outcome.stdout.total, total);
        assert_eq!(outcome.stdout.bytes.len(), 1000);
        assert_eq!(outcome.stdout.cut(), total - 1000);
        assert!(outcome.stdout.bytes.starts_with(b"HEADaaa"));
        assert!(outcome.stdout.bytes.ends_with(b"aaaTAIL"));
        let text = outcome.stdout.to_text_with_marker();
        let marker = format!("\n[... {} bytes cut ...]\n", total - 1000);
        let (head, tail) = text.split_once(&marker).expect("marker present");
        assert_eq!(head.len(), 500);
        assert_eq!(tail.len(), 500);
    }

    #[test]
    fn capper_counts_and_keeps_ends_across_chunks() {
        let mut capper = Capper::new(6);
        for chunk in [&b"ab"[..], b"cdef", b"g", b"hijkl", b"mn"] {
            capper.push(chunk);
        }
        let out = capper.finish();
        assert_eq!(out.total, 14);
        assert_eq!(out.bytes, b"abclmn");
        assert_eq!(out.cut(), 8);
        assert_eq!(out.to_text_with_marker(), "abc\n[... 8 bytes cut ...]\nlmn");

        let small = CappedOutput::from_bytes(b"hello", 6);
        assert_eq!(small.cut(), 0);
        assert_eq!(small.to_text_with_marker(), "hello");

        let none = CappedOutput::from_bytes(b"hello", 0);
        assert_eq!(none.bytes, b"");
        assert_eq!(none.to_text_with_marker(), "\n[... 5 bytes cut ...]\n");
    }

    #[test]
    fn recap_equals_capping_the_original() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let wide = CappedOutput::from_bytes(&data, 101);
        for cap in [0, 1, 2, 7, 50, 100, 101] {
            assert_eq!(
                wide.recap(cap),
                CappedOutput::from_bytes(&data, cap),
                "cap {cap}"
            );
        }
        let (out, err) = fit_pair(
            &CappedOutput::from_bytes(&data, 1000),
            &CappedOutput::from_bytes(b"short", 1000),
            100,
        );
        assert_eq!(err.bytes, b"short");
        assert_eq!(out, CappedOutput::from_bytes(&data, 95));
        let (out, err) = fit_pair(
            &CappedOutput::from_bytes(&data, 1000),
            &CappedOutput::from_bytes(&data, 1000),
            100,
        );
        assert_eq!((out.bytes.len(), err.bytes.len()), (50, 50));
    }

    #[tokio::test]
    async fn timeout_kills_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let outcome = run_process(&bash(
            "sleep 300 & echo $! > pid; echo waiting; wait",
            dir.path(),
            Duration::from_secs(1),
        ))
        .await;
        assert!(outcome.timed_out);
        assert_eq!(outcome.signal, Some(libc::SIGKILL));
        assert_eq!(outcome.exit_code, None);
        assert_eq!(outcome.stdout.bytes, b"waiting\n");
        let grandchild = read_pid(&pidfile);
        assert!(
            wait_dead(grandchild).await,
            "grandchild {grandchild} survived the timeout"
        );
    }

    #[tokio::test]
    async fn plain_sleep_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let outcome = run_process(&bash("sleep 30", dir.path(), Duration::from_millis(300))).await;
        assert!(outcome.timed_out);
        assert!(!outcome.success());
    }

    #[tokio::test]
    async fn background_leftovers_are_killed_when_the_shell_exits() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        // The leftover holds stdout open: without the group kill we would read until it ends.
        let outcome = run_process(&bash(
            "sleep 300 & echo $! > pid; echo started",
            dir.path(),
            Duration::from_secs(600),
        ))
        .await;
        assert!(!outcome.timed_out);
        assert_eq!(outcome.exit_code, Some(0));
        assert_eq!(outcome.stdout.bytes, b"started\n");
        let leftover = read_pid(&pidfile);
        assert!(wait_dead(leftover).await, "leftover {leftover} survived");
    }

    #[tokio::test]
    async fn environment_is_scrubbed() {
        // SAFETY: the other tests only read the environment through std, whose accessors
        // are serialised with `set_var`; nothing here calls libc's getenv directly.
        unsafe { std::env::set_var("PRAXIS_TEST_SECRET", "hunter2") };
        let dir = tempfile::tempdir().unwrap();
        let outcome = run_process(&bash("env", dir.path(), Duration::from_secs(60))).await;
        let text = String::from_utf8_lossy(&outcome.stdout.bytes).into_owned();
        assert!(!text.contains("PRAXIS_TEST_SECRET"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("LANG=C.UTF-8"), "{text}");
        assert!(text.contains("TERM=dumb"), "{text}");
        assert!(text.contains("PYTHONDONTWRITEBYTECODE=1"), "{text}");
        let names: Vec<String> = clean_env().into_iter().map(|(k, _)| k).collect();
        assert!(names.iter().all(|n| {
            [
                "PATH",
                "HOME",
                "LANG",
                "TERM",
                "USER",
                "LOGNAME",
                "CARGO_HOME",
                "RUSTUP_HOME",
                "PYTHONDONTWRITEBYTECODE",
            ]
            .contains(&n.as_str())
        }));
    }

    #[tokio::test]
    async fn python_leaves_no_bytecode_behind() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("helper.py"), "X = 1\n").unwrap();
        let outcome = run_process(&bash(
            "python3 -c 'import helper; print(helper.X)'",
            dir.path(),
            Duration::from_secs(60),
        ))
        .await;
        assert_eq!(outcome.stdout.bytes, b"1\n", "{outcome:?}");
        assert!(!dir.path().join("__pycache__").exists());
        // Control: without the variable, the same import writes its cache.
        let mut spec = bash(
            "python3 -c 'import helper'",
            dir.path(),
            Duration::from_secs(60),
        );
        spec.env.retain(|(k, _)| k != "PYTHONDONTWRITEBYTECODE");
        assert!(run_process(&spec).await.success());
        assert!(dir.path().join("__pycache__").exists());
    }

    #[tokio::test]
    async fn dropping_the_future_kills_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let spec = bash(
            "sleep 300 & echo $! > pid.tmp; mv pid.tmp pid; wait",
            dir.path(),
            Duration::from_secs(600),
        );
        // Boxed so that `drop` really drops the future (a pinned stack future would live on).
        let mut fut = Box::pin(run_process(&spec));
        loop {
            tokio::select! {
                outcome = &mut fut => panic!("finished early: {outcome:?}"),
                _ = tokio::time::sleep(Duration::from_millis(20)) => {
                    if pidfile.exists() { break; }
                }
            }
        }
        let grandchild = read_pid(&pidfile);
        assert!(alive(grandchild));
        drop(fut);
        assert!(
            wait_dead(grandchild).await,
            "grandchild {grandchild} survived the drop"
        );
    }
}
