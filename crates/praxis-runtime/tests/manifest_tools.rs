//! Manifest-backed tools through the real driver, ledger and writ: a writ that does not list
//! the tool denies it (recorded, nothing runs); one that lists it lets it run in the
//! sandbox, its output recorded, and the run replays with the same registry.

use praxis_core::record::Record;
use praxis_core::record::VerdictKind;
use praxis_core::{ExecStatus, Limits, RunSpec};
use praxis_ledger::{Ledger, SqliteLedger};
use praxis_models::ScriptedProvider;
use praxis_runtime::replay::{ReplayReport, replay};
use praxis_runtime::{NoObserver, RunOptions, Runtime, WritGrant};
use praxis_tools::Registry;
use praxis_tools::manifest;
use praxis_writ::{IssuerKey, WritSpec};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

const STAMP: &str = r#"
name = "stamp"
description = "Create an empty file"
effect = "write"
command = ["touch", "--", "{file}"]
[args]
type = "object"
required = ["file"]
[args.properties.file]
type = "string"
"#;

fn registry() -> Registry {
    let manifest = manifest::parse(Path::new("/tools/stamp.toml"), STAMP).unwrap();
    Registry::with_manifests(vec![manifest]).unwrap()
}

/// Runs one `stamp` call (file `made.txt`) under a writ listing `tools`; returns the
/// run's records and the runtime.
async fn run_under(
    tools: &[&str],
    ws: &Path,
    home: &Path,
) -> (Vec<Record>, Arc<SqliteLedger>, String) {
    let ledger = Arc::new(SqliteLedger::open(&home.join("l.db")).unwrap());
    let runtime = Runtime::new(ledger.clone(), Arc::new(registry()));
    let key = IssuerKey::generate();
    let listed: String = tools
        .iter()
        .map(|t| format!("[[tools]]\nname = \"{t}\"\n"))
        .collect();
    let spec = WritSpec::from_toml_str(&format!(
        "subject = \"manifest\"\nexpires_in = \"1h\"\neffect_ceiling = \"write\"\n{listed}"
    ))
    .unwrap();
    let token = praxis_writ::issue(&spec, &key, SystemTime::now()).unwrap();
    let script = json!({"turns": [
        {"tool_calls": [{"id": "s", "name": "stamp", "arguments": {"file": "made.txt"}}]},
        {"content": "done"}
    ]});
    let provider = Arc::new(ScriptedProvider::from_json_str(&script.to_string(), "stamp").unwrap());
    let run_spec = RunSpec {
        protocol: Default::default(),
        compaction: None,
        task: "stamp a file".into(),
        workspace: ws.display().to_string(),
        provider: "scripted".into(),
        model: String::new(),
        tools: None,
        read_only: false,
        limits: Limits::default(),
        conversation: Default::default(),
    };
    let options = RunOptions {
        writ: Some(WritGrant {
            token,
            anchor: key.anchor(),
        }),
        ..RunOptions::new(run_spec, provider)
    };
    let report = runtime.run(options, &NoObserver).await.unwrap();
    let records = ledger
        .entries(&report.run_id, 0)
        .unwrap()
        .iter()
        .map(|e| Record::from_entry(&e.kind, &e.payload).unwrap())
        .collect();
    (records, ledger, report.run_id)
}

fn proposal(records: &[Record]) -> &praxis_core::record::ProposalRecord {
    records
        .iter()
        .find_map(|r| match r {
            Record::Proposal(p) if p.tool == "stamp" => Some(p),
            _ => None,
        })
        .expect("a proposal for stamp")
}

#[tokio::test]
async fn a_writ_that_does_not_list_the_tool_denies_it() {
    let (home, ws) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (records, _, _) = run_under(&["fs_read"], ws.path(), home.path()).await;
    let p = proposal(&records);
    assert_eq!(p.verdict, VerdictKind::Deny, "{p:?}");
    assert!(p.rule.starts_with("writ"), "{p:?}");
    assert!(p.reason.contains("stamp"), "{p:?}");
    assert!(
        !records.iter().any(|r| matches!(r, Record::Execution(_))),
        "a denied call executed"
    );
    assert!(!ws.path().join("made.txt").exists());
}

#[tokio::test]
async fn a_listed_manifest_tool_runs_is_recorded_and_replays() {
    let (home, ws) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (records, ledger, run_id) = run_under(&["stamp"], ws.path(), home.path()).await;
    assert_eq!(proposal(&records).verdict, VerdictKind::Allow);
    let execution = records
        .iter()
        .find_map(|r| match r {
            Record::Execution(e) => Some(e),
            _ => None,
        })
        .expect("an execution");
    assert_eq!(execution.status, ExecStatus::Ok, "{}", execution.output);
    assert!(ws.path().join("made.txt").exists());
    assert_eq!(
        execution
            .files_changed
            .iter()
            .map(|c| c.path.as_str())
            .collect::<Vec<_>>(),
        ["made.txt"]
    );
    match replay(&*ledger, Arc::new(registry()), &run_id).unwrap() {
        ReplayReport::Matched { .. } => {}
        other => panic!("{other:?}"),
    }
    // Without the manifest the recorded call no longer compiles: replay says so.
    assert!(matches!(
        replay(&*ledger, Arc::new(Registry::builtin()), &run_id).unwrap(),
        ReplayReport::Diverged { .. }
    ));
}
