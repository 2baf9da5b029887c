//! Replayable history against real runs: real tools, real SQLite ledgers in tempdirs.
//! Replay re-drives the kernel from the record and must reproduce every entry; the world is
//! rebuilt from the ledger alone.

use praxis_core::{Limits, RunSpec, RunStatus};
use praxis_ledger::{
    BoxFuture, Entry, GENESIS_HASH, Ledger, LedgerError, NewEntry, RunRow, SqliteLedger,
    VerifyReport, entry_hash, verify_entries,
};
use praxis_models::ScriptedProvider;
use praxis_runtime::replay::{ReplayReport, replay};
use praxis_runtime::world::{diff, world_at};
use praxis_runtime::{LiveEvent, NoObserver, RunObserver, RunOptions, RunReport, Runtime};
use praxis_tools::Registry;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

fn spec(workspace: &Path) -> RunSpec {
    RunSpec {
        conversation: Default::default(),
        protocol: Default::default(),
        compaction: None,
        task: "test".into(),
        workspace: workspace.display().to_string(),
        provider: "scripted".into(),
        model: String::new(),
        tools: None,
        read_only: false,
        limits: Limits::default(),
    }
}

fn provider(script: &Value) -> Arc<ScriptedProvider> {
    Arc::new(ScriptedProvider::from_json_str(&script.to_string(), "test").unwrap())
}

fn registry() -> Arc<Registry> {
    Arc::new(Registry::builtin())
}

async fn run(ledger: &Arc<SqliteLedger>, spec: RunSpec, script: &Value) -> RunReport {
    Runtime::new(ledger.clone(), registry())
        .run(RunOptions::new(spec, provider(script)), &NoObserver)
        .await
        .unwrap()
}

fn replayed(ledger: &dyn Ledger, run_id: &str) -> ReplayReport {
    replay(ledger, registry(), run_id).unwrap()
}

/// A ledger holding given entries in memory (blobs from another ledger), for edited records.
struct MemLedger {
    entries: Vec<Entry>,
    blobs: Arc<SqliteLedger>,
}

impl Ledger for MemLedger {
    fn append_attested(
        &self,
        run_id: &str,
        _: Vec<NewEntry>,
        _: Vec<Vec<u8>>,
        _: Option<praxis_ledger::Attest>,
    ) -> BoxFuture<'static, Result<Vec<Entry>, LedgerError>> {
        let run_id = run_id.to_string();
        Box::pin(async move {
            Err(LedgerError::NotCommitted {
                path: "memory".into(),
                run_id,
                reason: "read-only test ledger".into(),
            })
        })
    }
    fn entries(&self, run_id: &str, after_seq: u64) -> Result<Vec<Entry>, LedgerError> {
        Ok(self
            .entries
            .iter()
            .filter(|e| e.run_id == run_id && e.seq > after_seq)
            .cloned()
            .collect())
    }
    fn runs(&self) -> Result<Vec<RunRow>, LedgerError> {
        Ok(Vec::new())
    }
    fn blob(&self, id: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        self.blobs.blob(id)
    }
    fn blob_bytes(&self) -> Result<u64, LedgerError> {
        self.blobs.blob_bytes()
    }
    fn verify_run(&self, run_id: &str) -> Result<VerifyReport, LedgerError> {
        Ok(verify_entries(&self.entries(run_id, 0)?))
    }
    fn verify_blobs(&self) -> Result<Vec<String>, LedgerError> {
        Ledger::verify_blobs(self.blobs.as_ref())
    }
    fn blob_ids(&self) -> Result<Vec<String>, LedgerError> {
        self.blobs.blob_ids()
    }
    fn find_run(&self, prefix: &str) -> Result<String, LedgerError> {
        self.entries
            .iter()
            .find(|e| e.run_id == prefix)
            .map(|e| e.run_id.clone())
            .ok_or_else(|| LedgerError::RunNotFound {
                path: "memory".into(),
                prefix: prefix.to_string(),
            })
    }
    fn location(&self) -> String {
        "memory".into()
    }
}

/// Recomputes every prev_hash and hash, so an edited record is a valid chain again: replay
/// must then find the edit by re-deriving decisions, not by checking hashes.
fn rechain(mut entries: Vec<Entry>) -> Vec<Entry> {
    let mut prev = GENESIS_HASH.to_string();
    for e in &mut entries {
        e.prev_hash = prev;
        e.hash = entry_hash(&e.run_id, e.seq, &e.kind, &e.at, &e.payload, &e.prev_hash);
        prev = e.hash.clone();
    }
    entries
}

fn edited(ledger: &Arc<SqliteLedger>, entries: Vec<Entry>) -> MemLedger {
    let entries = rechain(entries);
    assert!(
        matches!(verify_entries(&entries), VerifyReport::Intact { .. }),
        "the edited chain must verify"
    );
    MemLedger {
        entries,
        blobs: ledger.clone(),
    }
}

#[tokio::test]
async fn the_world_at_each_execution_matches_the_files_then_even_after_the_workspace_is_gone() {
    let home = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("a.txt"), "alpha\n").unwrap();
    std::fs::write(ws.path().join("keep.txt"), "keep\n").unwrap();
    std::fs::write(ws.path().join("bin.dat"), [0u8, 1, 2, 255]).unwrap();
    let ledger = Arc::new(SqliteLedger::open(&home.path().join("l.db")).unwrap());
    let script = json!({"turns": [
        {"tool_calls": [{"id": "w1", "name": "fs_write", "arguments": {"path": "notes/plan.txt", "content": "step one\nkeep going\n"}}]},
        {"tool_calls": [{"id": "p1", "name": "fs_patch", "arguments": {"path": "notes/plan.txt", "edits": [{"search": "one", "replace": "two"}]}}]},
        {"content": "<cmd>rm a.txt && printf 'made\\n' > made.txt && printf '\\000\\001' > bin.dat</cmd>"},
        {"tool_calls": [
            {"id": "r1", "name": "fs_read", "arguments": {"path": "made.txt"}},
            {"id": "w2", "name": "fs_write", "arguments": {"path": "a.txt", "content": "alpha again\n"}}
        ]},
        {"content": "done"}
    ]});
    let report = run(&ledger, spec(ws.path()), &script).await;
    assert_eq!(report.result.status, RunStatus::Completed);
    let run_id = report.run_id.clone();

    // What each file held after each execution, from the script (None: absent).
    let file = |s: &str| Some(s.as_bytes().to_vec());
    let start: BTreeMap<&str, Option<Vec<u8>>> = BTreeMap::from([
        ("a.txt", file("alpha\n")),
        ("keep.txt", file("keep\n")),
        ("bin.dat", Some(vec![0, 1, 2, 255])),
        ("notes/plan.txt", None),
        ("made.txt", None),
    ]);
    let mut states = Vec::new();
    let mut s = start.clone();
    s.insert("notes/plan.txt", file("step one\nkeep going\n"));
    states.push(s.clone());
    s.insert("notes/plan.txt", file("step two\nkeep going\n"));
    states.push(s.clone());
    s.insert("a.txt", None);
    s.insert("made.txt", file("made\n"));
    s.insert("bin.dat", Some(vec![0, 1]));
    states.push(s.clone());
    states.push(s.clone()); // the read changes nothing
    s.insert("a.txt", file("alpha again\n"));
    states.push(s.clone());

    let entries = ledger.entries(&run_id, 0).unwrap();
    let execution_seqs: Vec<u64> = entries
        .iter()
        .filter(|e| e.kind == "execution")
        .map(|e| e.seq)
        .collect();
    assert_eq!(execution_seqs.len(), states.len());
    let check = |ledger: &dyn Ledger| {
        let world = world_at(ledger, &run_id, Some(execution_seqs[0] - 1)).unwrap();
        for (path, want) in &start {
            assert_eq!(
                &world.content(ledger, path).unwrap(),
                want,
                "{path} at start"
            );
        }
        for (seq, state) in execution_seqs.iter().zip(&states) {
            let world = world_at(ledger, &run_id, Some(*seq)).unwrap();
            assert_eq!(world.at(), *seq);
            for (path, want) in state {
                assert_eq!(
                    &world.content(ledger, path).unwrap(),
                    want,
                    "{path} at seq {seq}"
                );
            }
        }
        let end = world_at(ledger, &run_id, None).unwrap();
        let changed: Vec<&str> = end.changed_paths().iter().map(String::as_str).collect();
        assert_eq!(changed, ["a.txt", "bin.dat", "made.txt", "notes/plan.txt"]);
        let after_patch = world_at(ledger, &run_id, Some(execution_seqs[1])).unwrap();
        let changed: Vec<&str> = after_patch
            .changed_paths()
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(changed, ["notes/plan.txt"]);

        let first = world_at(ledger, &run_id, Some(1)).unwrap();
        let patch = diff(ledger, &first, &end).unwrap();
        assert!(
            patch.contains("--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-alpha\n+alpha again\n"),
            "{patch}"
        );
        assert!(
            patch.contains("--- /dev/null\n+++ b/made.txt\n@@ -0,0 +1 @@\n+made\n"),
            "{patch}"
        );
        assert!(patch.contains("+step two\n+keep going\n"), "{patch}");
        assert!(patch.contains("Binary file bin.dat changed\n"), "{patch}");
        assert!(
            !patch.contains("keep.txt"),
            "unchanged file in the diff: {patch}"
        );
        let mid = world_at(ledger, &run_id, Some(execution_seqs[2])).unwrap();
        let patch = diff(ledger, &first, &mid).unwrap();
        assert!(
            patch.contains("--- a/a.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-alpha\n"),
            "{patch}"
        );
    };
    check(&*ledger);
    // The real workspace is irrelevant: the ledger alone rebuilds every state.
    drop(ws);
    check(&*ledger);
    let error = world_at(&*ledger, &run_id, Some(10_000)).unwrap_err();
    assert!(error.to_string().contains("seq 10000"), "{error}");
}

/// A small deterministic PRNG (xorshift64*), so failures reproduce from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_call(rng: &mut Rng, id: String) -> Value {
    let n = rng.below(5);
    match rng.below(8) {
        0 => json!({"id": id, "name": "fs_read", "arguments": {"path": format!("f{n}.txt")}}),
        1 => json!({"id": id, "name": "list_files", "arguments": {}}),
        2 => {
            json!({"id": id, "name": "fs_write", "arguments": {"path": format!("f{n}.txt"), "content": format!("v{}\n", rng.below(100))}})
        }
        3 => json!({"id": id, "name": "fs_read", "arguments": {"path": "../outside.txt"}}),
        4 => {
            json!({"id": id, "name": "fs_write", "arguments": {"path": "/etc/praxis-never.txt", "content": "x"}})
        }
        5 => json!({"id": id, "name": "no_such_tool", "arguments": {}}),
        6 => json!({"id": id, "name": "fs_write", "arguments": "not an object"}),
        _ => json!({"id": id, "name": "grep", "arguments": {"pattern": "v[0-9]"}}),
    }
}

fn random_script(rng: &mut Rng) -> Value {
    let mut turns = Vec::new();
    let len = 1 + rng.below(6);
    for t in 0..len {
        let turn = match rng.below(6) {
            0 | 1 => {
                let calls: Vec<Value> = (0..1 + rng.below(3))
                    .map(|c| random_call(rng, format!("c{t}-{c}")))
                    .collect();
                json!({"content": "working", "tool_calls": calls})
            }
            2 => {
                let n = rng.below(5);
                let body = match rng.below(3) {
                    0 => format!("echo v{} > f{n}.txt && ls", rng.below(100)),
                    1 => format!("rm -f f{n}.txt; cat f{}.txt", rng.below(5)),
                    _ => "exit 3".to_string(),
                };
                json!({"content": format!("Running <cmd>{body}</cmd>")})
            }
            3 => json!({"content": ""}),
            4 => json!({"content": "<cmd>unclosed"}),
            _ => json!({"content": format!("final answer {t}")}),
        };
        turns.push(turn);
    }
    // Most scripts end with an answer; the others run out of turns (a model error).
    if rng.below(4) > 0 {
        turns.push(json!({"content": "all done"}));
    }
    json!({ "turns": turns })
}

#[tokio::test]
async fn replay_of_fifty_random_runs_matches_every_entry() {
    let home = tempfile::tempdir().unwrap();
    let ledger = Arc::new(SqliteLedger::open(&home.path().join("l.db")).unwrap());
    let mut rng = Rng(0x005E_ED0F_0AC7_1CE5);
    let mut stop_reasons = std::collections::BTreeSet::new();
    for case in 0..50 {
        let ws = tempfile::tempdir().unwrap();
        std::fs::write(ws.path().join("f0.txt"), "v0\n").unwrap();
        let script = random_script(&mut rng);
        let mut spec = spec(ws.path());
        spec.read_only = rng.below(5) == 0;
        spec.limits.max_steps = 2 + rng.below(6) as u32;
        if rng.below(5) == 0 {
            spec.tools = Some(vec!["fs_read".into(), "list_files".into(), "shell".into()]);
        }
        let report = run(&ledger, spec, &script).await;
        stop_reasons.insert(report.result.stop_reason.as_str());
        let entries = ledger.entries(&report.run_id, 0).unwrap();
        assert_eq!(
            replayed(&*ledger, &report.run_id),
            ReplayReport::Matched {
                entries: entries.len() as u64,
                unfinished: None
            },
            "case {case}: script {script}"
        );
    }
    // The generator reaches the kernel's main endings, so the property covers them.
    for reason in ["completed", "failed", "max_steps", "invalid_output_limit"] {
        assert!(
            stop_reasons.contains(reason),
            "{reason} never happened: {stop_reasons:?}"
        );
    }
}

async fn denied_read_run(ledger: &Arc<SqliteLedger>, ws: &Path) -> (String, Vec<Entry>) {
    std::fs::write(ws.join("README.md"), "hello\n").unwrap();
    let script = json!({"turns": [
        {"tool_calls": [{"id": "d", "name": "fs_read", "arguments": {"path": "../secret.txt"}}]},
        {"tool_calls": [{"id": "r", "name": "fs_read", "arguments": {"path": "README.md"}}]},
        {"content": "<cmd>echo hi > out.txt</cmd>"},
        {"content": "done"}
    ]});
    let report = run(ledger, spec(ws), &script).await;
    assert_eq!(report.result.status, RunStatus::Completed);
    let entries = ledger.entries(&report.run_id, 0).unwrap();
    assert_eq!(
        replayed(&**ledger, &report.run_id),
        ReplayReport::Matched {
            entries: entries.len() as u64,
            unfinished: None
        }
    );
    (report.run_id, entries)
}

fn seq_of(entries: &[Entry], kind: &str, call_id: &str) -> usize {
    entries
        .iter()
        .position(|e| e.kind == kind && e.payload["call_id"] == call_id)
        .unwrap_or_else(|| panic!("no {kind} for {call_id}"))
}

#[tokio::test]
async fn edited_decisions_are_found_at_the_exact_entry_even_in_a_valid_chain() {
    let (home, ws) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ledger = Arc::new(SqliteLedger::open(&home.path().join("l.db")).unwrap());
    let (run_id, entries) = denied_read_run(&ledger, ws.path()).await;

    // A forged verdict: the record claims the escaping read was allowed.
    let denied = seq_of(&entries, "proposal", "d");
    assert_eq!(entries[denied].payload["verdict"], "deny");
    let mut forged = entries.clone();
    forged[denied].payload["verdict"] = json!("allow");
    match replayed(&edited(&ledger, forged), &run_id) {
        ReplayReport::Diverged {
            seq,
            kind,
            expected,
            got,
            detail,
        } => {
            assert_eq!(seq, entries[denied].seq);
            assert_eq!(kind, "proposal");
            assert_eq!(expected["verdict"], "allow");
            assert_eq!(got["verdict"], "deny");
            assert_eq!(detail, r#"payload.verdict: expected "allow" got "deny""#);
        }
        other => panic!("forged verdict not detected: {other:?}"),
    }

    // The same forgery left unchained (hash untouched) is no better hidden.
    let mut forged = entries.clone();
    forged[denied].payload["verdict"] = json!("allow");
    let in_place = MemLedger {
        entries: forged,
        blobs: ledger.clone(),
    };
    assert!(matches!(
        replayed(&in_place, &run_id),
        ReplayReport::Diverged { seq, .. } if seq == entries[denied].seq
    ));

    // An edited model reply: the replayed kernel compiles the edited call, so the proposal
    // that follows no longer matches the recorded one.
    let reply = entries
        .iter()
        .position(|e| e.kind == "model_response" && e.payload["tool_calls"][0]["id"] == "r")
        .unwrap();
    let mut forged = entries.clone();
    forged[reply].payload["tool_calls"][0]["arguments"]["path"] = json!("OTHER.md");
    match replayed(&edited(&ledger, forged), &run_id) {
        ReplayReport::Diverged {
            seq, kind, detail, ..
        } => {
            assert_eq!(seq, entries[reply].seq + 1);
            assert_eq!(kind, "proposal");
            assert!(detail.starts_with("payload.arguments.path:"), "{detail}");
        }
        other => panic!("edited reply not detected: {other:?}"),
    }

    // A removed final entry is missing; an appended one is extra.
    let mut cut = entries.clone();
    let last = cut.pop().unwrap();
    match replayed(&edited(&ledger, cut), &run_id) {
        ReplayReport::Diverged {
            seq,
            kind,
            detail,
            got,
            ..
        } => {
            assert_eq!((seq, kind.as_str()), (last.seq, "run_finished"));
            assert_eq!(got["stop_reason"], "completed");
            assert!(detail.starts_with("missing recorded entry"), "{detail}");
        }
        other => panic!("missing entry not detected: {other:?}"),
    }
    let mut extended = entries.clone();
    let mut extra = last.clone();
    extra.seq += 1;
    extra.kind = "execution".into();
    extended.push(extra);
    match replayed(&edited(&ledger, extended), &run_id) {
        ReplayReport::Diverged {
            seq, kind, detail, ..
        } => {
            assert_eq!((seq, kind.as_str()), (last.seq + 1, "execution"));
            assert!(detail.starts_with("extra recorded entry"), "{detail}");
        }
        other => panic!("extra entry not detected: {other:?}"),
    }

    // Observations are inputs, not decisions: an edited tool output is fed back as recorded,
    // so replay alone cannot tell (the hash chain can, unless it is re-chained as here).
    let read = seq_of(&entries, "execution", "r");
    let mut forged = entries.clone();
    forged[read].payload["output"] = json!("forged output");
    assert!(matches!(
        replayed(&edited(&ledger, forged), &run_id),
        ReplayReport::Matched {
            unfinished: None,
            ..
        }
    ));

    // A payload that cannot be an event is an error naming the entry and field.
    let mut broken = entries.clone();
    broken[read].payload["status"] = json!("exploded");
    let error = replay(&edited(&ledger, broken), registry(), &run_id).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains(&format!("seq {}", entries[read].seq)) && message.contains("`status`"),
        "{message}"
    );
    assert!(
        replay(&*ledger, registry(), "nosuchrun")
            .unwrap_err()
            .to_string()
            .contains("nosuchrun")
    );
}

#[tokio::test]
async fn an_interrupted_run_replays_as_matched_but_unfinished() {
    let (home, ws) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ledger = Arc::new(SqliteLedger::open(&home.path().join("l.db")).unwrap());
    let (run_id, entries) = denied_read_run(&ledger, ws.path()).await;
    // The record of a run that died while its shell call ran: it ends with the proposal.
    let proposal = seq_of(&entries, "proposal", "cmd-3-1");
    assert_eq!(entries[proposal].payload["verdict"], "allow");
    let prefix = MemLedger {
        entries: entries[..=proposal].to_vec(),
        blobs: ledger.clone(),
    };
    assert_eq!(
        replayed(&prefix, &run_id),
        ReplayReport::Matched {
            entries: entries[proposal].seq,
            unfinished: Some("in flight call cmd-3-1 (shell)".into())
        }
    );
    // Died while the model thought.
    let reply_asked = seq_of(&entries, "execution", "r");
    let prefix = MemLedger {
        entries: entries[..=reply_asked].to_vec(),
        blobs: ledger.clone(),
    };
    assert_eq!(
        replayed(&prefix, &run_id),
        ReplayReport::Matched {
            entries: entries[reply_asked].seq,
            unfinished: Some("awaiting the model (step 3)".into())
        }
    );
}

/// Cancels the run as soon as a tool starts.
struct CancelOnTool(praxis_runtime::Cancel);

impl RunObserver for CancelOnTool {
    fn on_event(&self, _: &str, event: LiveEvent<'_>) {
        if let LiveEvent::ToolStarted { .. } = event {
            self.0.cancel("operator stop");
        }
    }
}

#[tokio::test]
async fn a_run_cancelled_during_a_tool_call_replays_exactly() {
    let (home, ws) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ledger = Arc::new(SqliteLedger::open(&home.path().join("l.db")).unwrap());
    let script = json!({"turns": [
        {"tool_calls": [{"id": "t", "name": "shell", "arguments": {"command": "sleep 30"}}]},
        {"content": "never"}
    ]});
    let options = RunOptions::new(spec(ws.path()), provider(&script));
    let observer = CancelOnTool(options.cancel.clone());
    let report = Runtime::new(ledger.clone(), registry())
        .run(options, &observer)
        .await
        .unwrap();
    assert_eq!(report.result.status, RunStatus::Cancelled);
    let entries = ledger.entries(&report.run_id, 0).unwrap();
    assert_eq!(entries[entries.len() - 2].payload["status"], "cancelled");
    assert_eq!(
        replayed(&*ledger, &report.run_id),
        ReplayReport::Matched {
            entries: entries.len() as u64,
            unfinished: None
        }
    );
}
