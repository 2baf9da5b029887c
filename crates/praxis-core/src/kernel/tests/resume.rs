//! Resuming and branching a run.

use super::*;

fn resume(k: &mut Kernel) -> Vec<Command> {
    k.handle(Event::Resume {
        now: 3_000,
        environment: json!({"host": "new"}),
        interrupted_child_spent: None,
    })
    .unwrap()
}

#[test]
fn resume_while_awaiting_the_model_asks_the_same_step_again() {
    let mut k = kernel_with(spec());
    start(&mut k);
    let cmds = resume(&mut k);
    assert_eq!(kinds_of(&cmds), vec!["run_resumed", "CALL_MODEL"]);
    assert_eq!(records(&cmds, "run_resumed")[0]["waiting_for"], "model");
    assert_eq!(last_request(&cmds).step, 1, "the step is not counted twice");
    assert_eq!(k.steps(), 1);
}

#[test]
fn an_interrupted_write_is_not_rerun_without_approval() {
    let mut k = kernel_with(spec());
    start(&mut k);
    let cmds = k
        .handle(reply(
            "",
            vec![call("c1", "fs_write", json!({"path": "a.txt"}))],
        ))
        .unwrap();
    assert!(kinds_of(&cmds).contains(&"EXECUTE"));
    let cmds = resume(&mut k);
    assert_eq!(
        kinds_of(&cmds),
        vec!["run_resumed", "approval_requested", "AWAIT_APPROVAL"]
    );
    assert_eq!(records(&cmds, "run_resumed")[0]["interrupted_call"], "c1");
    assert_eq!(
        records(&cmds, "approval_requested")[0]["rule"],
        kernel_rules::RESUME_INTERRUPTED_CALL
    );
    // Denied: the model hears why and goes on; nothing is executed.
    let cmds = k
        .handle(Event::ApprovalDecided {
            now: 4_000,
            call_id: "c1".into(),
            approved: false,
            by: "op".into(),
            reason: "already done".into(),
        })
        .unwrap();
    assert_eq!(kinds_of(&cmds), vec!["approval_decided", "CALL_MODEL"]);
    let last = last_request(&cmds).messages.last().unwrap().clone();
    assert!(last.content.contains("already done"), "{last:?}");
}

#[test]
fn an_approved_interrupted_write_runs_again() {
    let mut k = kernel_with(spec());
    start(&mut k);
    k.handle(reply(
        "",
        vec![call("c1", "fs_write", json!({"path": "a.txt"}))],
    ))
    .unwrap();
    resume(&mut k);
    let cmds = k
        .handle(Event::ApprovalDecided {
            now: 4_000,
            call_id: "c1".into(),
            approved: true,
            by: "op".into(),
            reason: "retry".into(),
        })
        .unwrap();
    assert_eq!(kinds_of(&cmds), vec!["approval_decided", "EXECUTE"]);
}

#[test]
fn an_interrupted_read_is_simply_rerun() {
    let mut k = kernel_with(spec());
    start(&mut k);
    k.handle(reply(
        "",
        vec![call("c1", "fs_read", json!({"path": "a.txt"}))],
    ))
    .unwrap();
    let cmds = resume(&mut k);
    assert_eq!(kinds_of(&cmds), vec!["run_resumed", "EXECUTE"]);
}

#[test]
fn resume_needs_a_started_unfinished_run() {
    let mut k = kernel_with(spec());
    let err = k
        .handle(Event::Resume {
            now: 1,
            environment: json!({}),
            interrupted_child_spent: None,
        })
        .unwrap_err();
    assert!(matches!(err, KernelError::UnexpectedEvent { .. }), "{err}");
}

fn branch_event(workspace: &str) -> Event {
    Event::Branch {
        now: 9_000,
        spec: Box::new(RunSpec {
            workspace: workspace.into(),
            provider: "other".into(),
            ..spec()
        }),
        environment: json!({"host": "b"}),
        origin: crate::record::BranchOrigin {
            run_id: "origin".into(),
            seq: 2,
            hash: "h".into(),
        },
        note: Some("Try a different approach.".into()),
        workspace_files: Some(manifest()),
    }
}

#[test]
fn branch_starts_a_new_chain_and_asks_the_model_again() {
    let mut k = kernel_with(spec());
    start(&mut k);
    let cmds = k.handle(branch_event("/branch")).unwrap();
    assert_eq!(
        kinds_of(&cmds),
        vec!["run_started", "workspace_snapshot", "CALL_MODEL"]
    );
    let started = records(&cmds, "run_started")[0].clone();
    assert_eq!(started["branch"]["run_id"], "origin");
    assert_eq!(started["spec"]["workspace"], "/branch");
    assert_eq!(started["spec"]["provider"], "other");
    let req = last_request(&cmds);
    assert_eq!(req.step, 1);
    let note = &req.messages.last().unwrap().content;
    assert!(
        note.contains("/branch") && note.contains("Try a different approach."),
        "{note}"
    );
    // The policy now confines paths to the branch's workspace.
    let cmds = k
        .handle(reply(
            "",
            vec![call("c1", "fs_read", json!({"path": "/ws/a.txt"}))],
        ))
        .unwrap();
    assert_eq!(records(&cmds, "proposal")[0]["verdict"], "deny", "{cmds:?}");
}

#[test]
fn branch_only_from_a_model_call() {
    let mut k = kernel_with(spec());
    start(&mut k);
    k.handle(reply(
        "",
        vec![call("c1", "fs_read", json!({"path": "a.txt"}))],
    ))
    .unwrap();
    assert!(k.handle(branch_event("/b")).is_err());
}
