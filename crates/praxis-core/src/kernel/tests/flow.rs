//! A run's flow: start, replies, calls, denials, limits, cancels, approvals.

use super::*;

#[test]
fn start_records_the_run_and_asks_the_model() {
    let mut k = kernel_with(spec());
    let cmds = start(&mut k);
    assert_eq!(
        kinds_of(&cmds),
        vec!["run_started", "workspace_snapshot", "CALL_MODEL"]
    );
    assert_eq!(
        records(&cmds, "run_started")[0]["spec"]["task"],
        "inspect the repo"
    );
    let req = last_request(&cmds);
    assert_eq!(req.step, 1);
    assert_eq!(req.messages[0].role, Role::System);
    assert!(req.messages[0].content.contains("Workspace: /ws"));
    assert!(req.messages[0].content.contains("Date: 1970-01-01"));
    assert_eq!(req.messages[1].content, "inspect the repo");
    assert_eq!(req.tools.len(), 3);
}

#[test]
fn system_prompt_follows_the_protocol() {
    let names = |p: Protocol, tools: Option<Vec<String>>| {
        let mut k = kernel_with(RunSpec {
            protocol: p,
            tools,
            ..spec()
        });
        let cmds = start(&mut k);
        last_request(&cmds).messages[0].content.clone()
    };
    let tools = names(Protocol::Tools, None);
    assert!(tools.contains("Tools: "), "{tools}");
    assert!(tools.contains(std::env::consts::OS), "{tools}");
    assert!(!tools.contains("<cmd>"), "{tools}");
    let cmd = names(Protocol::Cmd, None);
    assert!(cmd.contains("<cmd>") && cmd.contains("<result>"), "{cmd}");
    assert!(!cmd.contains("Tools: "), "{cmd}");
    let no_shell = names(Protocol::Cmd, Some(vec!["fs_read".into()]));
    assert!(no_shell.contains("offers no shell"), "{no_shell}");
    // The protocol is part of the recorded spec only when it is not the default.
    let mut k = kernel_with(RunSpec {
        protocol: Protocol::Cmd,
        ..spec()
    });
    assert_eq!(
        records(&start(&mut k), "run_started")[0]["spec"]["protocol"],
        "cmd"
    );
    assert!(
        records(&start(&mut kernel_with(spec())), "run_started")[0]["spec"]
            .get("protocol")
            .is_none()
    );
}

#[test]
fn history_sits_between_the_system_prompt_and_the_task_and_is_recorded() {
    let history = vec![
        Message::new(Role::User, "earlier question"),
        Message::new(Role::Assistant, "earlier answer"),
        Message::new(Role::System, "a system turn in the history"),
    ];
    let with = |system_prompt: Option<SystemPrompt>| {
        let mut k = kernel_with(RunSpec {
            conversation: Box::new(Conversation {
                history: history.clone(),
                system_prompt,
            }),
            ..spec()
        });
        let cmds = start(&mut k);
        (last_request(&cmds).messages.as_ref().clone(), cmds)
    };
    let (messages, cmds) = with(Some(SystemPrompt::Append("Be brief.".into())));
    let roles: Vec<Role> = messages.iter().map(|m| m.role).collect();
    // A system turn in the history goes as a user turn: the prompt is the spec's alone.
    assert_eq!(
        roles,
        [
            Role::System,
            Role::User,
            Role::Assistant,
            Role::User,
            Role::User
        ]
    );
    assert!(messages[0].content.contains("Workspace: /ws"));
    assert!(
        messages[0].content.ends_with("\n\nBe brief."),
        "{}",
        messages[0].content
    );
    assert_eq!(messages[2].content, "earlier answer");
    assert_eq!(messages[4].content, "inspect the repo");
    // The conversation is part of the recorded spec, so replay rebuilds it.
    let started = cmds
        .iter()
        .find_map(|c| match c {
            Command::Record(Record::RunStarted(r)) => Some(r.spec.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(started.conversation.history, history);
    let (messages, _) = with(Some(SystemPrompt::Replace("You are terse.".into())));
    assert_eq!(messages[0].content, "You are terse.");
    // Without any, the spec records no conversation at all (old hashes stay as they were).
    assert!(
        records(&start(&mut kernel_with(spec())), "run_started")[0]["spec"]
            .get("conversation")
            .is_none()
    );
}

#[test]
fn plain_text_reply_completes_the_run() {
    let mut k = kernel_with(spec());
    start(&mut k);
    let cmds = k.handle(reply("All done.", vec![])).unwrap();
    assert_eq!(
        kinds_of(&cmds),
        vec!["model_response", "run_finished", "FINISH"]
    );
    let r = result(&cmds);
    assert_eq!(
        (r.status, r.stop_reason),
        (RunStatus::Completed, StopReason::Completed)
    );
    assert_eq!(r.final_answer.as_deref(), Some("All done."));
    assert!(k.is_finished());
}

#[test]
fn allowed_call_is_recorded_before_it_executes_then_observed() {
    let mut k = kernel_with(spec());
    start(&mut k);
    let cmds = k
        .handle(reply(
            "",
            vec![call("c1", "fs_read", json!({"path": "README.md"}))],
        ))
        .unwrap();
    assert_eq!(
        kinds_of(&cmds),
        vec!["model_response", "proposal", "EXECUTE"]
    );
    let p = records(&cmds, "proposal")[0].clone();
    assert_eq!(
        (p["verdict"].as_str(), p["rule"].as_str()),
        (Some("allow"), Some("default_allow"))
    );
    assert_eq!(p["effect"], "read");
    let Command::Execute(exec) = &cmds[2] else {
        unreachable!()
    };
    assert_eq!(
        (exec.call_id.as_str(), exec.tool.as_str()),
        ("c1", "fs_read")
    );
    assert_eq!(exec.deadline, Some(61_000));

    let cmds = k.handle(finished("c1", "# Title")).unwrap();
    assert_eq!(kinds_of(&cmds), vec!["execution", "CALL_MODEL"]);
    let e = records(&cmds, "execution")[0].clone();
    assert_eq!(
        (e["status"].as_str(), e["outcome"].as_str()),
        (Some("ok"), Some("committed"))
    );
    let req = last_request(&cmds);
    assert_eq!(req.step, 2);
    let last = req.messages.last().unwrap();
    assert_eq!(
        (
            last.role,
            last.tool_call_id.as_deref(),
            last.content.as_str()
        ),
        (Role::Tool, Some("c1"), "# Title")
    );
}

#[test]
fn several_calls_in_one_reply_run_one_after_another() {
    let mut k = kernel_with(spec());
    start(&mut k);
    let calls = vec![
        call("a", "fs_read", json!({"path": "x"})),
        call("b", "fs_read", json!({"path": "y"})),
    ];
    let cmds = k.handle(reply("", calls)).unwrap();
    assert_eq!(
        kinds_of(&cmds),
        vec!["model_response", "proposal", "EXECUTE"]
    );
    let cmds = k.handle(finished("a", "x")).unwrap();
    assert_eq!(kinds_of(&cmds), vec!["execution", "proposal", "EXECUTE"]);
    let cmds = k.handle(finished("b", "y")).unwrap();
    assert_eq!(kinds_of(&cmds), vec!["execution", "CALL_MODEL"]);
    let ids: Vec<_> = last_request(&cmds)
        .messages
        .iter()
        .filter_map(|m| m.tool_call_id.clone())
        .collect();
    assert_eq!(ids, vec!["a", "b"]);
}

#[test]
fn tool_result_for_another_call_is_a_protocol_error() {
    let mut k = kernel_with(spec());
    start(&mut k);
    k.handle(reply("", vec![call("c1", "fs_read", json!({"path": "x"}))]))
        .unwrap();
    let err = k.handle(finished("zzz", "x")).unwrap_err();
    assert_eq!(
        err,
        KernelError::WrongCall {
            expected: "c1".into(),
            got: "zzz".into()
        }
    );
}

#[test]
fn events_out_of_phase_are_refused() {
    let mut k = kernel_with(spec());
    assert!(matches!(
        k.handle(reply("hi", vec![])),
        Err(KernelError::UnexpectedEvent { .. })
    ));
    start(&mut k);
    assert!(matches!(
        k.handle(finished("c1", "x")),
        Err(KernelError::UnexpectedEvent { .. })
    ));
    k.handle(reply("done", vec![])).unwrap();
    let cancel = Event::Cancel {
        now: 5,
        reason: "late".into(),
    };
    assert!(matches!(
        k.handle(cancel),
        Err(KernelError::UnexpectedEvent { .. })
    ));
}

#[test]
fn policy_denial_is_recorded_observed_and_the_run_goes_on() {
    let mut k = kernel_with(spec());
    start(&mut k);
    let cmds = k
        .handle(reply(
            "",
            vec![call("c1", "fs_read", json!({"path": "../../etc/shadow"}))],
        ))
        .unwrap();
    assert_eq!(
        kinds_of(&cmds),
        vec!["model_response", "proposal", "CALL_MODEL"]
    );
    let p = records(&cmds, "proposal")[0].clone();
    assert_eq!(p["verdict"], "deny");
    assert_eq!(p["rule"], "workspace_confinement");
    assert_eq!(p["outcome"], "rejected");
    let observed = &last_request(&cmds).messages.last().unwrap().content;
    assert!(
        observed.starts_with("denied by policy (workspace_confinement):"),
        "{observed}"
    );
}

#[test]
fn read_only_run_denies_writes_and_allowlist_limits_offered_tools() {
    let mut s = spec();
    s.read_only = true;
    s.tools = Some(vec!["fs_read".into(), "fs_write".into()]);
    let mut k = kernel_with(s);
    let cmds = start(&mut k);
    let offered: Vec<_> = last_request(&cmds)
        .tools
        .iter()
        .map(|t| t.name.clone())
        .collect();
    assert_eq!(offered, vec!["fs_read", "fs_write"]);
    let cmds = k
        .handle(reply(
            "",
            vec![
                call("w", "fs_write", json!({"path": "a"})),
                call("s", "shell", json!({"command": "ls"})),
            ],
        ))
        .unwrap();
    let rules: Vec<_> = records(&cmds, "proposal")
        .iter()
        .map(|p| p["rule"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(rules, vec!["read_only", "tool_allowlist"]);
    assert!(!kinds_of(&cmds).contains(&"EXECUTE"));
}

#[test]
fn contract_rejections_count_as_unusable_and_three_in_a_row_stop_the_run() {
    let mut k = kernel_with(spec());
    start(&mut k);
    let cmds = k
        .handle(reply("", vec![call("c1", "nope", json!({}))]))
        .unwrap();
    let p = records(&cmds, "proposal")[0].clone();
    assert_eq!(
        (p["verdict"].as_str(), p["rule"].as_str()),
        (Some("deny"), Some("contract"))
    );
    assert!(
        p["reason"]
            .as_str()
            .unwrap()
            .contains("unknown tool `nope`")
    );
    assert_eq!(records(&cmds, "invalid_output")[0]["in_a_row"], 1);
    let tool_msg = &last_request(&cmds)
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::Tool)
        .unwrap()
        .content;
    assert!(
        tool_msg.starts_with("rejected: unknown tool `nope`"),
        "{tool_msg}"
    );

    let cmds = k
        .handle(reply("", vec![call("c2", "fs_read", json!({"pth": "x"}))]))
        .unwrap();
    assert!(
        records(&cmds, "proposal")[0]["reason"]
            .as_str()
            .unwrap()
            .contains("missing required field `path`")
    );
    let cmds = k
        .handle(reply(
            "",
            vec![call("c3", "fs_read", json!("not an object"))],
        ))
        .unwrap();
    assert!(
        records(&cmds, "proposal")[0]["reason"]
            .as_str()
            .unwrap()
            .contains("must be a JSON object")
    );
    let r = result(&cmds);
    assert_eq!(r.stop_reason, StopReason::InvalidOutputLimit);
    assert_eq!(r.status, RunStatus::Failed);
}

#[test]
fn a_usable_reply_resets_the_unusable_count() {
    let mut k = kernel_with(spec());
    start(&mut k);
    k.handle(reply("", vec![])).unwrap();
    k.handle(reply("<cmd>unclosed", vec![])).unwrap();
    k.handle(reply("", vec![call("ok", "fs_read", json!({"path": "x"}))]))
        .unwrap();
    k.handle(finished("ok", "fine")).unwrap();
    let cmds = k.handle(reply("<cmd> </cmd>", vec![])).unwrap();
    assert_eq!(records(&cmds, "invalid_output")[0]["in_a_row"], 1);
    assert!(
        records(&cmds, "invalid_output")[0]["reason"]
            .as_str()
            .unwrap()
            .contains("empty")
    );
    assert!(!k.is_finished());
}

#[test]
fn cmd_blocks_become_shell_intents_with_results_in_one_message() {
    let mut k = kernel_with(spec());
    start(&mut k);
    let cmds = k
        .handle(reply(
            "Let me look. <cmd>ls</cmd> <cmd></cmd> <cmd>cat a.txt</cmd>",
            vec![],
        ))
        .unwrap();
    let p = records(&cmds, "proposal")[0].clone();
    assert_eq!(
        (p["tool"].as_str(), p["source"].as_str()),
        (Some("shell"), Some("cmd_block"))
    );
    assert_eq!(p["arguments"]["command"], "ls");
    let Some(Command::Execute(first)) = cmds.last() else {
        panic!()
    };
    assert_eq!(first.call_id, "cmd-1-1");
    let cmds = k.handle(finished("cmd-1-1", "a.txt\n")).unwrap();
    let Some(Command::Execute(second)) = cmds.last() else {
        panic!()
    };
    assert_eq!(
        (
            second.call_id.as_str(),
            second.arguments["command"].as_str()
        ),
        ("cmd-1-2", Some("cat a.txt"))
    );
    let failing = Observation {
        exit_code: Some(1),
        ..Observation::error("no such file")
    };
    let cmds = k
        .handle(Event::ToolFinished {
            now: 3,
            call_id: "cmd-1-2".into(),
            observation: failing,
        })
        .unwrap();
    let last = last_request(&cmds).messages.last().unwrap();
    assert_eq!(last.role, Role::User);
    assert_eq!(
        last.content,
        "<result>\na.txt\n</result>\n<result>\n[error] no such file\n[exit code 1]\n</result>"
    );
}

#[test]
fn step_limit_stops_with_max_steps() {
    let mut s = spec();
    s.limits.max_steps = 2;
    let mut k = kernel_with(s);
    start(&mut k);
    k.handle(reply("", vec![call("a", "fs_read", json!({"path": "x"}))]))
        .unwrap();
    let cmds = k.handle(finished("a", "x")).unwrap();
    assert_eq!(last_request(&cmds).step, 2);
    k.handle(reply("", vec![call("b", "fs_read", json!({"path": "x"}))]))
        .unwrap();
    let cmds = k.handle(finished("b", "x")).unwrap();
    assert_eq!(result(&cmds).stop_reason, StopReason::MaxSteps);
    assert_eq!(result(&cmds).steps, 2);
    assert_eq!(result(&cmds).tool_calls, 2);
}

#[test]
fn deadline_stops_the_run_after_a_tool() {
    let mut k = kernel_with(spec());
    start(&mut k);
    k.handle(reply("", vec![call("a", "fs_read", json!({"path": "x"}))]))
        .unwrap();
    let late = Event::ToolFinished {
        now: 61_000,
        call_id: "a".into(),
        observation: Observation::ok("x"),
    };
    let cmds = k.handle(late).unwrap();
    assert_eq!(kinds_of(&cmds), vec!["execution", "run_finished", "FINISH"]);
    assert_eq!(result(&cmds).stop_reason, StopReason::Deadline);
}

#[test]
fn cancel_during_a_tool_records_the_cancelled_execution() {
    let mut k = kernel_with(spec());
    start(&mut k);
    k.handle(reply(
        "",
        vec![call("a", "shell", json!({"command": "sleep 30"}))],
    ))
    .unwrap();
    let cmds = k
        .handle(Event::Cancel {
            now: 4_000,
            reason: "operator".into(),
        })
        .unwrap();
    assert_eq!(kinds_of(&cmds), vec!["execution", "run_finished", "FINISH"]);
    assert_eq!(records(&cmds, "execution")[0]["status"], "cancelled");
    assert_eq!(result(&cmds).status, RunStatus::Cancelled);
}

#[test]
fn model_failure_fails_the_run_with_the_error() {
    let mut k = kernel_with(spec());
    start(&mut k);
    let cmds = k
        .handle(Event::ModelFailed {
            now: 2,
            error: "script has 1 turn".into(),
        })
        .unwrap();
    assert_eq!(
        kinds_of(&cmds),
        vec!["model_error", "run_finished", "FINISH"]
    );
    let r = result(&cmds);
    assert_eq!(r.stop_reason, StopReason::Failed);
    assert!(r.error.as_deref().unwrap().contains("script has 1 turn"));
}

#[test]
fn approval_decisions_execute_or_observe_a_denial() {
    let mut k = kernel_with(spec());
    start(&mut k);
    // The skeleton policy never asks for approval; drive the phase directly.
    let proposal = Proposal {
        call_id: "a".into(),
        tool: "shell".into(),
        arguments: json!({"command": "ls"}),
        effect: Effect::Exec,
        resources: vec![],
        verdict: Verdict::NeedsApproval {
            rule: "r".into(),
            reason: "exec".into(),
        },
    };
    k.phase = Phase::AwaitingApproval(proposal.clone(), IntentSource::ToolCall);
    k.reply_usable = true; // as `advance` sets it once the proposal compiled
    let decide = |approved| Event::ApprovalDecided {
        now: 5,
        call_id: "a".into(),
        approved,
        by: "op".into(),
        reason: "ok".into(),
    };
    let cmds = k.handle(decide(true)).unwrap();
    assert_eq!(kinds_of(&cmds), vec!["approval_decided", "EXECUTE"]);
    k.phase = Phase::AwaitingApproval(proposal, IntentSource::ToolCall);
    let cmds = k.handle(decide(false)).unwrap();
    assert_eq!(kinds_of(&cmds), vec!["approval_decided", "CALL_MODEL"]);
    assert!(
        last_request(&cmds)
            .messages
            .last()
            .unwrap()
            .content
            .starts_with("denied by approver op")
    );
}

#[test]
fn civil_dates() {
    assert_eq!(civil_date(0), "1970-01-01");
    assert_eq!(civil_date(1_795_000_000_000), "2026-11-18");
    assert_eq!(civil_date(951_782_400_000), "2000-02-29");
}

/// What the runtime calls the model with while a new run's drive opens is exactly the
/// start's first request (history and its system turn included), worked out without
/// changing the kernel; a started run has none.
#[test]
fn the_first_model_request_is_the_starts() {
    let mut with_history = spec();
    with_history.conversation.history = vec![
        Message::new(Role::System, "earlier rules".to_string()),
        Message::new(Role::User, "earlier question".to_string()),
    ];
    let mut k = kernel_with(with_history);
    let early = k
        .first_model_request(1_000)
        .expect("a start asks the model");
    assert_eq!(k.messages().len(), 0, "asking changed the kernel");
    let asked = start(&mut k)
        .into_iter()
        .find_map(|c| match c {
            Command::CallModel(request) => Some(request),
            _ => None,
        })
        .unwrap();
    assert_eq!(early, asked);
    assert_eq!(early.messages.len(), 4);
    assert!(k.first_model_request(1_000).is_none());
    // No step left: the start asks nothing.
    let mut spent = spec();
    spent.limits.max_steps = 0;
    assert!(kernel_with(spent).first_model_request(1_000).is_none());
}
