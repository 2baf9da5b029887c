//! The checkpointer port: a run whose future is dropped mid-run is interrupted, listed by
//! the checkpointer and resumed from its ledger to its end by the runtime's resume rules.

use praxis::ports::{Checkpointer, LedgerCheckpointer, MemoryCheckpointer};
use praxis::{Agent, AgentError, RunControl, RunStatus};
use praxis_core::Record;
use std::sync::Arc;
use tokio::sync::Notify;

/// Step 1 reads a file, step 2 runs a command, step 3 answers.
fn script(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("script.json");
    let script = serde_json::json!({"turns": [
        {"tool_calls": [{"id": "r", "name": "fs_read", "arguments": {"path": "README.md"}}]},
        {"tool_calls": [{"id": "s", "name": "shell", "arguments": {"command": "echo ran >> ran.txt"}}]},
        {"content": "The README says hello."}
    ]});
    std::fs::write(&path, script.to_string()).unwrap();
    path
}

/// Runs the script until step 1's result is out, then drops the run's future.
async fn interrupted_run(agent: &Agent, run_id: &str) {
    let stop = Arc::new(Notify::new());
    let signal = stop.clone();
    let callbacks = praxis::Callbacks::default().on_tool_result(move |result| {
        if result.call_id == "r" {
            signal.notify_one();
        }
    });
    let control = RunControl {
        run_id: Some(run_id.to_string()),
        ..Default::default()
    };
    tokio::select! {
        biased;
        () = stop.notified() => {}
        finished = agent.run_with(&[], "What does the README say?", &callbacks, control) => {
            panic!("the run was to be stopped after step 1, it ended: {finished:?}")
        }
    }
}

fn kinds(entries: &[praxis_ledger::Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.kind.as_str()).collect()
}

#[tokio::test]
async fn a_dropped_run_is_resumed_from_the_default_checkpointer_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README.md"), "hello\n").unwrap();
    let script = script(dir.path());
    let workspace = dir.path().join("ws");
    std::fs::create_dir(&workspace).unwrap();
    std::fs::copy(dir.path().join("README.md"), workspace.join("README.md")).unwrap();
    let agent = Agent::builder()
        .provider(format!("scripted:{}", script.display()))
        .workspace(&workspace)
        .build()
        .unwrap();

    let run_id = praxis_runtime::new_run_id();
    interrupted_run(&agent, &run_id).await;
    assert_eq!(agent.interrupted(), vec![run_id.clone()]);

    let result = agent.resume(&run_id, Default::default()).await.unwrap();
    assert_eq!(result.run_id, run_id);
    assert_eq!(result.status, RunStatus::Completed);
    assert_eq!(result.text.as_deref(), Some("The README says hello."));
    // One chain: started once, resumed once, finished once, and it verifies.
    let kinds = kinds(&result.entries);
    assert_eq!(kinds.iter().filter(|k| **k == "run_started").count(), 1);
    assert_eq!(kinds.iter().filter(|k| **k == "run_resumed").count(), 1);
    assert_eq!(kinds.iter().filter(|k| **k == "run_finished").count(), 1);
    assert!(matches!(
        praxis_ledger::verify_entries(&result.entries),
        praxis_ledger::VerifyReport::Intact { .. }
    ));
    // Step 1's read ran before the stop and is not run again.
    let reads = result
        .entries
        .iter()
        .filter(|e| {
            matches!(Record::from_entry(&e.kind, &e.payload),
                Ok(Record::Execution(x)) if x.call_id == "r")
        })
        .count();
    assert_eq!(reads, 1);
    // The history is the recorded one: the task first, the answer last.
    assert_eq!(result.new_messages[0].content, "What does the README say?");
    assert_eq!(
        result.new_messages.last().unwrap().content,
        "The README says hello."
    );

    // Finished: nothing is left to resume, and resuming again is refused.
    assert!(agent.interrupted().is_empty());
    let again = agent.resume(&run_id, Default::default()).await;
    assert!(
        matches!(
            again,
            Err(AgentError::Setting {
                setting: "run_id",
                ..
            })
        ),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_checkpointer_of_ones_own_outlives_the_agent_and_a_live_or_finished_run_is_not_resumed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README.md"), "hello\n").unwrap();
    let script = script(dir.path());
    let ledger: Arc<dyn praxis_ledger::Ledger> = Arc::new(praxis_ledger::MemoryLedger::new());
    let checkpointer = Arc::new(LedgerCheckpointer(ledger.clone()));
    let build = || {
        Agent::builder()
            .provider(format!("scripted:{}", script.display()))
            .workspace(dir.path())
            .checkpointer(checkpointer.clone())
            .build()
            .unwrap()
    };
    let run_id = praxis_runtime::new_run_id();
    {
        let first = build();
        interrupted_run(&first, &run_id).await;
    }
    // Another agent over the same checkpointer takes the run up.
    let second = build();
    assert_eq!(second.interrupted(), vec![run_id.clone()]);
    let result = second.resume(&run_id, Default::default()).await.unwrap();
    assert_eq!(result.text.as_deref(), Some("The README says hello."));
    assert!(checkpointer.interrupted().is_empty());
    // A finished run is refused by the runtime's resume rules.
    let refused = second.resume(&run_id, Default::default()).await;
    assert!(
        matches!(&refused, Err(AgentError::Runtime(e)) if e.to_string().contains("completed")),
        "{refused:?}"
    );

    // A run whose future is alive (here: paused inside a callback) is not interrupted.
    let memory = Arc::new(MemoryCheckpointer::default());
    let agent = Agent::builder()
        .provider(format!("scripted:{}", script.display()))
        .workspace(dir.path())
        .checkpointer(memory.clone())
        .build()
        .unwrap();
    let seen = Arc::new(std::sync::Mutex::new(None));
    let (probe, record) = (memory.clone(), seen.clone());
    let callbacks = praxis::Callbacks::default().on_tool_result(move |_| {
        record.lock().unwrap().get_or_insert(probe.interrupted());
    });
    let done = agent.run(&[], "What does the README say?", callbacks).await;
    assert_eq!(done.unwrap().status, RunStatus::Completed);
    assert_eq!(seen.lock().unwrap().clone(), Some(Vec::new()));
    // A finished run's in-memory checkpoint is gone.
    assert!(memory.find("none").is_none());
    assert!(memory.interrupted().is_empty());
}

#[test]
fn a_durable_agent_refuses_a_second_checkpointer() {
    let home = tempfile::tempdir().unwrap();
    let err = Agent::builder()
        .provider("mock")
        .durable(home.path())
        .checkpointer(Arc::new(MemoryCheckpointer::default()))
        .build()
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            AgentError::Setting {
                setting: "checkpointer",
                ..
            }
        ),
        "{err}"
    );
}
