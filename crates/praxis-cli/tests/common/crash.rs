//! What the crash harness (`tests/crash.rs`) and its fault tests share: the seeded random
//! source, the step script, the tally and the checks made on each run after a crash.

use super::{Praxis, text};
use praxis_core::record::Record;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// splitmix64: a seeded, reproducible source of kill moments.
pub struct Rng(u64);

impl Rng {
    /// `PRAXIS_CRASH_SEED`, or the clock; printed either way so a failure can be replayed.
    pub fn from_env(what: &str) -> Rng {
        let seed = std::env::var("PRAXIS_CRASH_SEED")
            .ok()
            .map(|s| s.parse().expect("PRAXIS_CRASH_SEED must be a number"))
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("crash harness {what}: seed {seed} (PRAXIS_CRASH_SEED={seed} replays it)");
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A duration in `[lo, hi)` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo).max(1))
    }
}

/// `PRAXIS_CRASH_ITERATIONS` (default `default`).
pub fn iterations(default: usize) -> usize {
    std::env::var("PRAXIS_CRASH_ITERATIONS")
        .ok()
        .map(|s| s.parse().expect("PRAXIS_CRASH_ITERATIONS must be a number"))
        .unwrap_or(default)
}

/// Steps of each run: even steps `fs_write` `steps/N.txt`, odd steps a `shell` command
/// that appends `TAG step N` to `log.txt` (and sleeps, so kills land inside calls too).
pub const STEPS: usize = 6;

/// The log line step `n` of the run tagged `tag` appends.
pub fn log_line(tag: &str, n: usize) -> String {
    format!("{tag} step {n}")
}

/// The script of a run tagged `tag`: [`STEPS`] turns of one tool call each, then a final
/// answer.
pub fn script(tag: &str) -> Value {
    let mut turns: Vec<Value> = (0..STEPS)
        .map(|n| {
            let call = if n % 2 == 0 {
                json!({"id": format!("c{n}"), "name": "fs_write",
                       "arguments": {"path": format!("steps/{n}.txt"), "content": format!("{}\n", log_line(tag, n))}})
            } else {
                json!({"id": format!("c{n}"), "name": "shell",
                       "arguments": {"command": format!("echo '{}' >> log.txt && sleep 0.5", log_line(tag, n))}})
            };
            json!({"tool_calls": [call]})
        })
        .collect();
    turns.push(json!({"content": "done"}));
    json!({ "turns": turns })
}

/// What the harness counts over all iterations.
#[derive(Default, Debug)]
pub struct Tally {
    pub iterations: usize,
    pub crashes: usize,
    pub runs: usize,
    pub resumed: usize,
    pub acknowledged_entries: usize,
    pub entries_lost: usize,
    pub effects_duplicated: usize,
    pub effects_seen: usize,
    /// Run ids a client was given (201) whose run had no entry when the server died.
    pub accepted_never_started: usize,
    pub unfinished: usize,
    pub chain_failures: usize,
    pub replay_mismatches: usize,
    pub notes: Vec<String>,
}

impl Tally {
    pub fn note(&mut self, note: String) {
        eprintln!("  ! {note}");
        self.notes.push(note);
    }

    pub fn report(&self, what: &str) {
        eprintln!(
            "crash harness {what}: {} iterations, {} crashes survived, {} runs ({} resumed), \
             {} acknowledged entries, entries lost {}, effects duplicated {} (of {} effects), \
             runs accepted but never started {}, unfinished {}, chain failures {}, replay mismatches {}",
            self.iterations,
            self.crashes,
            self.runs,
            self.resumed,
            self.acknowledged_entries,
            self.entries_lost,
            self.effects_duplicated,
            self.effects_seen,
            self.accepted_never_started,
            self.unfinished,
            self.chain_failures,
            self.replay_mismatches
        );
    }

    /// The promises: nothing acknowledged lost, no effect twice, every chain and replay
    /// good, every run ended.
    pub fn assert_held(&self, what: &str) {
        self.report(what);
        assert_eq!(self.entries_lost, 0, "entries lost: {:#?}", self.notes);
        assert_eq!(
            self.effects_duplicated, 0,
            "effects duplicated: {:#?}",
            self.notes
        );
        assert_eq!(self.chain_failures, 0, "chains broken: {:#?}", self.notes);
        assert_eq!(
            self.replay_mismatches, 0,
            "replay mismatches: {:#?}",
            self.notes
        );
        assert_eq!(
            self.unfinished, 0,
            "runs left unfinished: {:#?}",
            self.notes
        );
    }

    /// Checks one run after its crash and resume. `entries` are its exported entries now;
    /// `acknowledged` the `(seq, hash)` a client saw committed before the crash; `ws` its
    /// workspace; `tag` its script's tag.
    pub fn check_run(
        &mut self,
        run_id: &str,
        entries: &[Value],
        acknowledged: &[(u64, String)],
        ws: &Path,
        tag: &str,
    ) {
        self.runs += 1;
        let now: HashMap<u64, &str> = entries
            .iter()
            .map(|e| (e["seq"].as_u64().unwrap(), e["hash"].as_str().unwrap()))
            .collect();
        for (seq, hash) in acknowledged {
            self.acknowledged_entries += 1;
            if now.get(seq) != Some(&hash.as_str()) {
                self.entries_lost += 1;
                self.note(format!(
                    "run {run_id}: acknowledged seq {seq} ({hash}) is missing or changed"
                ));
            }
        }
        // Each call executed at most once, by the ledger.
        let mut executions: BTreeMap<String, usize> = BTreeMap::new();
        let mut finished = false;
        for e in entries {
            let kind = e["kind"].as_str().unwrap();
            match Record::from_entry(kind, &e["payload"]) {
                Ok(Record::Execution(x)) => *executions.entry(x.call_id).or_default() += 1,
                Ok(Record::RunFinished(_)) => finished = true,
                Ok(Record::RunResumed(_)) => self.resumed += 1,
                Ok(_) => {}
                Err(err) => self.note(format!("run {run_id}: unreadable {kind}: {err}")),
            }
        }
        for (call, n) in &executions {
            if *n > 1 {
                self.effects_duplicated += n - 1;
                self.note(format!("run {run_id}: call {call} executed {n} times"));
            }
        }
        if !finished {
            self.unfinished += 1;
            self.note(format!("run {run_id}: no run_finished after resume"));
        }
        // Each effect on disk at most once: the log's lines, and the files written.
        let log = std::fs::read_to_string(ws.join("log.txt")).unwrap_or_default();
        for n in (1..STEPS).step_by(2) {
            let line = log_line(tag, n);
            let count = log.lines().filter(|l| *l == line).count();
            self.effects_seen += count;
            if count > 1 {
                self.effects_duplicated += count - 1;
                self.note(format!("run {run_id}: log line {line:?} {count} times"));
            }
        }
        for n in (0..STEPS).step_by(2) {
            let path = ws.join(format!("steps/{n}.txt"));
            if let Ok(content) = std::fs::read_to_string(&path) {
                self.effects_seen += 1;
                if content != format!("{}\n", log_line(tag, n)) {
                    self.effects_duplicated += 1;
                    self.note(format!(
                        "run {run_id}: {} holds {content:?}",
                        path.display()
                    ));
                }
            }
        }
    }
}

/// The `(seq, hash)` of exported entries.
pub fn seq_hashes(entries: &[Value]) -> Vec<(u64, String)> {
    entries
        .iter()
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                e["hash"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `praxis runs --json`: `(run_id, task, status)` of every run.
pub fn runs(praxis: &Praxis) -> Vec<(String, String, String)> {
    praxis
        .json(&["runs", "--json", "--limit", "100000"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (s("run_id"), s("task"), s("status"))
        })
        .collect()
}

/// The pids of `praxis worker` processes whose parent is `parent`.
pub fn workers_of(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The parent pid is the second field after the parenthesised command.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let is_worker = cmdline.split(|b| *b == 0).nth(1) == Some(b"worker".as_slice());
        if ppid == Some(parent) && is_worker {
            found.push(pid);
        }
    }
    found
}

/// `kill -SIG pid`.
pub fn signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// Polls `probe` until it answers, for at most `secs`.
pub fn wait_for<T>(what: &str, secs: u64, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `praxis ARGS` succeeded; its output otherwise.
pub fn succeeds(praxis: &Praxis, args: &[&str]) -> Result<(), String> {
    let out = praxis.praxis(args);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        ))
    }
}
