//! Properties over random model replies.

use super::*;

/// A model reply drawn at random: final answers, empty replies, `<cmd>` text, and tool calls
/// that are valid, unknown, malformed or escaping the workspace.
fn arb_reply() -> impl Strategy<Value = ModelResponse> {
    let tool_call = prop_oneof![
        Just(("fs_read", json!({"path": "src/lib.rs"}))),
        Just(("fs_read", json!({"path": "../secret"}))),
        Just(("fs_write", json!({"path": "out.txt"}))),
        Just(("shell", json!({"command": "cargo test"}))),
        Just(("nope", json!({}))),
        Just(("fs_read", json!(["bad"]))),
    ];
    let calls = prop::collection::vec(tool_call, 0..4);
    let content = prop_oneof![
        Just(String::new()),
        Just("done".to_string()),
        Just("<cmd>ls</cmd><cmd>pwd</cmd>".to_string()),
        Just("<cmd>unclosed".to_string()),
    ];
    (content, calls).prop_map(|(content, calls)| ModelResponse {
        content,
        tool_calls: calls
            .into_iter()
            .enumerate()
            .map(|(i, (name, arguments))| ToolCall {
                id: format!("c{i}"),
                name: name.into(),
                arguments,
            })
            .collect(),
        ..Default::default()
    })
}

/// Drives a kernel through `replies`, answering every Execute with an ok observation.
fn drive(replies: &[ModelResponse], tools: Option<Vec<String>>) -> Vec<Command> {
    let mut s = spec();
    s.limits.max_steps = 8;
    s.tools = tools;
    let mut k = kernel_with(s);
    let mut all = start(&mut k);
    let mut replies = replies.iter();
    while !k.is_finished() {
        let event = match all.last() {
            Some(Command::Execute(x)) => finished(&x.call_id, "ok"),
            Some(Command::CallModel(_)) => match replies.next() {
                Some(r) => Event::ModelReplied {
                    now: 2_000,
                    response: r.clone(),
                },
                None => Event::ModelFailed {
                    now: 2_000,
                    error: "out of replies".into(),
                },
            },
            other => panic!("kernel stalled after {other:?}"),
        };
        all.extend(k.handle(event).expect("valid event"));
    }
    all
}

proptest! {
    /// Nothing executes unless the allow verdict for that very call was recorded first.
    #[test]
    fn every_execute_follows_its_recorded_allow_verdict(replies in prop::collection::vec(arb_reply(), 1..10)) {
        let cmds = drive(&replies, None);
        for (i, c) in cmds.iter().enumerate() {
            if let Command::Execute(x) = c {
                let recorded = cmds[..i].iter().rev().find_map(|c| match c {
                    Command::Record(crate::record::Record::Proposal(p)) if p.call_id == x.call_id => Some(p),
                    _ => None,
                });
                let p = recorded.expect("proposal recorded before execution");
                prop_assert_eq!(p.verdict, crate::record::VerdictKind::Allow);
            }
        }
        prop_assert!(matches!(cmds.last(), Some(Command::Finish(_))));
        prop_assert_eq!(cmds.iter().filter(|c| matches!(c, Command::Record(r) if r.kind() == kinds::RUN_FINISHED)).count(), 1);
    }

    /// The kernel is deterministic: the same events yield the same commands (replay rests on this).
    #[test]
    fn same_events_same_commands(replies in prop::collection::vec(arb_reply(), 1..10)) {
        prop_assert_eq!(drive(&replies, None), drive(&replies, None));
    }

    /// A tool outside the allowlist never executes, whatever the model asks.
    #[test]
    fn allowlist_is_never_bypassed(replies in prop::collection::vec(arb_reply(), 1..10)) {
        let cmds = drive(&replies, Some(vec!["fs_read".into()]));
        for c in &cmds {
            if let Command::Execute(x) = c {
                prop_assert_eq!(x.tool.as_str(), "fs_read");
            }
        }
    }
}
