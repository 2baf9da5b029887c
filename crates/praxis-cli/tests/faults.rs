//! Fault injection for the crash harness (issue 18): a full disk under a running run, the
//! tool worker killed in the middle of a call, and the model's stream cut in the middle of a
//! reply. Each run is then checked like the crash harness's: nothing acknowledged lost, no
//! effect twice, the chain verifies, the run ends, replay matches.
//!
//! fsync failure is injected with a preloaded libc shim (`tests/fixtures/fsync_fault.c`,
//! built with `cc`): while a trigger file exists, `fsync`, `fdatasync` and `syncfs` of the
//! `praxis run` process fail with EIO.

mod common;

use common::crash::{Tally, runs, script, seq_hashes, succeeds, wait_for, workers_of};
use common::tmpfs::Tmpfs;
use common::{Praxis, text};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn workspace() -> tempfile::TempDir {
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("README.md"), "faults\n").unwrap();
    ws
}

/// `praxis run` of `script` in `ws`, in the background.
fn spawn_run(praxis: &Praxis, tag: &str, script: &Value, ws: &Path, extra: &[&str]) -> Child {
    run_command(praxis, tag, script, ws, extra).spawn().unwrap()
}

/// The command [`spawn_run`] spawns.
fn run_command(
    praxis: &Praxis,
    tag: &str,
    script: &Value,
    ws: &Path,
    extra: &[&str],
) -> std::process::Command {
    let file = praxis.script(&format!("{tag}.json"), script.clone());
    let mut cmd = praxis.cmd(&[
        "run",
        &format!("fault {tag}"),
        "--script",
        file.to_str().unwrap(),
        "--workspace",
        ws.to_str().unwrap(),
        "--json",
    ]);
    cmd.args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn run_id_of(praxis: &Praxis, tag: &str) -> Option<(String, String)> {
    runs(praxis)
        .into_iter()
        .find(|(_, task, _)| *task == format!("fault {tag}"))
        .map(|(id, _, status)| (id, status))
}

/// The checks of the crash harness on one run, then replay and verify.
fn check(
    praxis: &Praxis,
    tally: &mut Tally,
    id: &str,
    seen: &[(u64, String)],
    ws: &Path,
    tag: &str,
) {
    tally.check_run(id, &praxis.entries(id), seen, ws, tag);
    for args in [&["replay", id][..], &["ledger", "verify", "--all"][..]] {
        if let Err(e) = succeeds(praxis, args) {
            tally.chain_failures += 1;
            tally.note(e);
        }
    }
}

#[test]
fn a_full_disk_stops_the_run_without_losing_an_entry_and_it_resumes_after() {
    let Some(fs) = Tmpfs::mount("32m") else {
        return;
    };
    let praxis = Praxis {
        home: tempfile::tempdir_in(fs.path()).unwrap(),
    };
    let ws = workspace();
    let tag = "disk";
    let mut child = spawn_run(&praxis, tag, &script(tag), ws.path(), &[]);
    // Once the run has done a step, the disk fills up under it.
    wait_for("the first step", 60, || {
        std::fs::metadata(ws.path().join("steps/0.txt")).ok()
    });
    fs.fill();
    let (id, _) = wait_for("the run's first entry", 60, || run_id_of(&praxis, tag));
    let seen = seq_hashes(&praxis.entries(&id));
    wait_for("praxis run to give up on the full disk", 120, || {
        child.try_wait().unwrap()
    });
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    eprintln!(
        "praxis run on a full disk: {}; stderr tail: {}",
        out.status,
        tail(&stderr)
    );
    // It failed or finished; it did not die of a signal.
    assert!(
        out.status.code().is_some(),
        "praxis run died of a signal: {}",
        out.status
    );
    // Read-only commands work on the full disk.
    succeeds(&praxis, &["ledger", "verify", "--all"]).unwrap();
    let (_, status) = run_id_of(&praxis, tag).unwrap();
    eprintln!("status on the full disk: {status}");
    // Room again: the run resumes and ends.
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    let mut tally = Tally::default();
    resume_and_check(&praxis, &mut tally, &id, &status, &seen, ws.path(), tag);
    tally.assert_held("full disk");
    assert!(tally.acknowledged_entries > 0);
}

/// A run stops where the ledger's fsync fails, without a lost entry, and resumes after.
#[test]
fn a_failing_fsync_stops_the_run_without_losing_an_entry_and_it_resumes_after() {
    let praxis = Praxis::new();
    let ws = workspace();
    let tag = "fsync";
    let shim = praxis.home.path().join("fsync_fault.so");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fsync_fault.c");
    let built = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&shim)
        .arg(&source)
        .arg("-ldl")
        .output()
        .expect("cc (the C compiler Rust links with) builds the fsync shim");
    assert!(built.status.success(), "cc: {}", text(&built.stderr));
    let trigger = praxis.home.path().join("fsync-fails");
    let mut child = run_command(&praxis, tag, &script(tag), ws.path(), &[])
        .env("LD_PRELOAD", &shim)
        .env("PRAXIS_FSYNC_FAULT", &trigger)
        .spawn()
        .unwrap();
    wait_for("the first step", 60, || {
        std::fs::metadata(ws.path().join("steps/0.txt")).ok()
    });
    let (id, _) = wait_for("the run's first entry", 60, || run_id_of(&praxis, tag));
    // What the ledger holds before fsync starts failing is acknowledged; then it fails.
    let seen = seq_hashes(&praxis.entries(&id));
    std::fs::write(&trigger, "").unwrap();
    wait_for("praxis run to stop on the failing fsync", 120, || {
        child.try_wait().unwrap()
    });
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    std::fs::remove_file(&trigger).unwrap();
    let failed_calls = std::fs::read(praxis.home.path().join("fsync-fails.count"))
        .map(|b| b.len())
        .unwrap_or(0);
    eprintln!(
        "praxis run with fsync failing: {}, {failed_calls} failed fsync call(s); stderr tail: {}",
        out.status,
        tail(&stderr)
    );
    assert!(failed_calls > 0, "the run never met the failing fsync");
    assert!(
        !out.status.success(),
        "praxis run reported success although its ledger could not be made durable"
    );
    assert!(
        out.status.code().is_some(),
        "praxis run died of a signal: {}",
        out.status
    );
    // fsync works again: the run resumes and ends.
    let (_, status) = run_id_of(&praxis, tag).unwrap();
    eprintln!("status after the failing fsync: {status}");
    let mut tally = Tally::default();
    resume_and_check(&praxis, &mut tally, &id, &status, &seen, ws.path(), tag);
    tally.assert_held("fsync failure");
    assert!(tally.acknowledged_entries > 0);
}

/// `praxis resume` of run `id` of `tag` if it reads `interrupted` (its script again, no
/// in-flight call re-run), then the checks.
fn resume_and_check(
    praxis: &Praxis,
    tally: &mut Tally,
    id: &str,
    status: &str,
    seen: &[(u64, String)],
    ws: &Path,
    tag: &str,
) {
    if status == "interrupted" {
        let file = praxis.home.path().join(format!("{tag}.json"));
        let script = file.to_str().unwrap();
        succeeds(
            praxis,
            &["resume", id, "--script", script, "--approve", "never"],
        )
        .unwrap();
    }
    check(praxis, tally, id, seen, ws, tag);
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

#[test]
fn a_worker_killed_mid_call_records_the_call_and_the_run_goes_on() {
    let praxis = Praxis::new();
    let ws = workspace();
    let tag = "worker";
    let mut steps = script(tag);
    // Step 1 appends its line, then waits long enough to be killed in the middle.
    let command = steps["turns"][1]["tool_calls"][0]["arguments"]["command"]
        .as_str()
        .unwrap()
        .replace("sleep 0.5", "sleep 60");
    steps["turns"][1]["tool_calls"][0]["arguments"]["command"] = json!(command);
    let child = spawn_run(&praxis, tag, &steps, ws.path(), &["--fabric", "worker"]);
    wait_for("step 1 to start", 60, || {
        std::fs::read_to_string(ws.path().join("log.txt"))
            .ok()
            .filter(|l| l.contains("step 1"))
    });
    let workers = workers_of(child.id());
    assert!(!workers.is_empty(), "no `praxis worker` child of the run");
    for pid in &workers {
        common::crash::signal(*pid, "-KILL");
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (id, status) = run_id_of(&praxis, tag).unwrap();
    assert_eq!(status, "completed");
    let mut tally = Tally::default();
    check(&praxis, &mut tally, &id, &[], ws.path(), tag);
    tally.assert_held("worker killed");
    // The killed call is recorded as failed, not re-run; the later steps ran.
    assert!(ws.path().join("steps/4.txt").exists());
    let exported = praxis.entries(&id);
    let c1 = exported
        .iter()
        .filter_map(|e| {
            match praxis_core::record::Record::from_entry(e["kind"].as_str()?, &e["payload"]) {
                Ok(praxis_core::record::Record::Execution(x)) if x.call_id == "c1" => Some(x),
                _ => None,
            }
        })
        .collect::<Vec<_>>();
    assert_eq!(c1.len(), 1);
    assert!(
        c1[0].duration_ms < 60_000,
        "the killed call ran its whole sleep"
    );
    eprintln!("the killed call: {:?} {}", c1[0].status, c1[0].output);
}

/// A fake OpenAI-compatible server playing `script(tag)`: the turn is the number of tool
/// results in the request; the first attempt at each turn is cut after half of the tool
/// call's arguments (the connection closes), the retry is served whole.
struct CuttingServer {
    url: String,
    cuts: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl CuttingServer {
    fn start(script: Value) -> CuttingServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let cuts = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let cut_turns = Arc::new(Mutex::new(std::collections::HashSet::new()));
        let (c, r) = (cuts.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                r.fetch_add(1, Ordering::Relaxed);
                let (script, c, cut_turns) = (script.clone(), c.clone(), cut_turns.clone());
                std::thread::spawn(move || serve(stream, &script, &c, &cut_turns));
            }
        });
        CuttingServer {
            url,
            cuts,
            requests,
        }
    }
}

fn serve(
    mut stream: TcpStream,
    script: &Value,
    cuts: &AtomicUsize,
    cut_turns: &Mutex<std::collections::HashSet<usize>>,
) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let body = loop {
        let Ok(n) = stream.read(&mut buf) else { return };
        if n == 0 {
            return;
        }
        raw.extend_from_slice(&buf[..n]);
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        if raw.len() >= end + 4 + length {
            break serde_json::from_slice::<Value>(&raw[end + 4..end + 4 + length]).unwrap();
        }
    };
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let turn = messages.iter().filter(|m| m["role"] == "tool").count();
    let turns = script["turns"].as_array().unwrap();
    let step = &turns[turn.min(turns.len() - 1)];
    let chunk = |delta: Value, finish: Value| {
        let event = json!({"id": "x", "object": "chat.completion.chunk", "model": "fake",
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {event}\n\n")
    };
    let mut events = Vec::new();
    let mut cut_at = None;
    if let Some(call) = step["tool_calls"].as_array().and_then(|c| c.first()) {
        let arguments = call["arguments"].to_string();
        let (a, b) = arguments.split_at(arguments.len() / 2);
        events.push(chunk(
            json!({"role": "assistant", "tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                   "function": {"name": call["name"], "arguments": a}}]}),
            Value::Null,
        ));
        cut_at = Some(events.len());
        events.push(chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": b}}]}),
            Value::Null,
        ));
        events.push(chunk(json!({}), json!("tool_calls")));
    } else {
        events.push(chunk(
            json!({"role": "assistant", "content": "all "}),
            Value::Null,
        ));
        cut_at = cut_at.or(Some(events.len()));
        events.push(chunk(json!({"content": "done"}), Value::Null));
        events.push(chunk(json!({}), json!("stop")));
    }
    events.push("data: [DONE]\n\n".to_string());
    let first_attempt = cut_turns.lock().unwrap().insert(turn);
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
    let _ = stream.write_all(head.as_bytes());
    for (i, event) in events.iter().enumerate() {
        if first_attempt && Some(i) == cut_at {
            cuts.fetch_add(1, Ordering::Relaxed);
            let _ = stream.flush();
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return;
        }
        let _ = stream.write_all(event.as_bytes());
        let _ = stream.flush();
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_stream_cut_mid_reply_is_asked_again_and_each_effect_runs_once() {
    let praxis = Praxis::new();
    let ws = workspace();
    let tag = "stream";
    let steps = script(tag);
    let server = CuttingServer::start(steps.clone());
    let out = praxis
        .cmd(&[
            "run",
            &format!("fault {tag}"),
            "--provider",
            "openai:fake",
            "--workspace",
            ws.path().to_str().unwrap(),
            "--json",
        ])
        .env("OPENAI_BASE_URL", &server.url)
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (id, status) = run_id_of(&praxis, tag).unwrap();
    assert_eq!(status, "completed");
    let turns = steps["turns"].as_array().unwrap().len();
    assert_eq!(
        server.cuts.load(Ordering::Relaxed),
        turns,
        "every turn's first reply was cut"
    );
    assert_eq!(server.requests.load(Ordering::Relaxed), 2 * turns);
    let mut tally = Tally::default();
    check(&praxis, &mut tally, &id, &[], ws.path(), tag);
    tally.assert_held("stream cut");
    // Each reply recorded once, whole: the cut attempts left nothing in the ledger.
    let responses = praxis
        .entries(&id)
        .iter()
        .filter(|e| e["kind"] == "model_response")
        .count();
    assert_eq!(responses, turns);
    assert_eq!(
        std::fs::read_to_string(ws.path().join("log.txt"))
            .unwrap()
            .lines()
            .count(),
        3
    );
}
