use super::*;
use crate::contract::{CompileError, Compiled};
use proptest::prelude::*;
use serde_json::{Value, json};

/// A small contract catalogue: fs_read (read), fs_write (write), shell (exec).
struct FakeContracts;

impl Contracts for FakeContracts {
    fn specs(&self) -> Vec<ToolSpec> {
        [
            ("fs_read", Effect::Read),
            ("fs_write", Effect::Write),
            ("shell", Effect::Exec),
        ]
        .into_iter()
        .map(|(name, effect)| ToolSpec {
            name: name.into(),
            description: String::new(),
            effect,
            parameters: json!({"type": "object"}),
        })
        .collect()
    }

    fn compile(&self, tool: &str, args: &Value) -> Result<Compiled, CompileError> {
        let field = |name: &str| {
            args.get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| CompileError::InvalidArguments {
                    tool: tool.into(),
                    problems: vec![format!("missing required field `{name}`")],
                })
        };
        match tool {
            "fs_read" => Ok(Compiled {
                effect: Effect::Read,
                resources: vec![Resource::Path {
                    path: field("path")?,
                    mode: AccessMode::Read,
                }],
            }),
            "fs_write" => Ok(Compiled {
                effect: Effect::Write,
                resources: vec![Resource::Path {
                    path: field("path")?,
                    mode: AccessMode::Write,
                }],
            }),
            "shell" => Ok(Compiled {
                effect: Effect::Exec,
                resources: vec![Resource::Command {
                    command: field("command")?,
                }],
            }),
            other => Err(CompileError::UnknownTool {
                name: other.into(),
                available: vec!["fs_read".into(), "fs_write".into(), "shell".into()],
            }),
        }
    }
}

fn spec() -> RunSpec {
    RunSpec {
        conversation: Default::default(),
        protocol: Default::default(),
        compaction: None,
        task: "inspect the repo".into(),
        workspace: "/ws".into(),
        provider: "scripted".into(),
        model: String::new(),
        tools: None,
        read_only: false,
        limits: Limits {
            max_steps: 5,
            max_seconds: Some(60),
            max_invalid_replies: 3,
        },
    }
}

fn kernel_with(spec: RunSpec) -> Kernel {
    Kernel::new(spec, Arc::new(FakeContracts))
}

fn start(k: &mut Kernel) -> Vec<Command> {
    k.handle(Event::Start {
        now: 1_000,
        environment: json!({"host": "test"}),
        workspace_files: Some(manifest()),
    })
    .unwrap()
}

fn call(id: &str, name: &str, args: Value) -> ToolCall {
    ToolCall {
        id: id.into(),
        name: name.into(),
        arguments: args,
    }
}

fn reply(content: &str, calls: Vec<ToolCall>) -> Event {
    Event::ModelReplied {
        now: 2_000,
        response: ModelResponse {
            content: content.into(),
            tool_calls: calls,
            ..Default::default()
        },
    }
}

fn finished(id: &str, output: &str) -> Event {
    Event::ToolFinished {
        now: 3_000,
        call_id: id.into(),
        observation: Observation::ok(output),
    }
}

fn kinds_of(cmds: &[Command]) -> Vec<&'static str> {
    cmds.iter()
        .map(|c| match c {
            Command::Record(r) => r.kind(),
            Command::CallModel(_) => "CALL_MODEL",
            Command::Execute(_) => "EXECUTE",
            Command::AwaitApproval(_) => "AWAIT_APPROVAL",
            Command::Finish(_) => "FINISH",
        })
        .collect()
}

fn manifest() -> crate::record::Manifest {
    let file = crate::record::ManifestFile {
        blob: Some("b".repeat(64)),
        size: 1,
        skipped: None,
    };
    [("a.txt".to_string(), file)].into()
}

/// The payloads (as the ledger stores them) of the records of `kind`.
fn records(cmds: &[Command], kind: &str) -> Vec<Value> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Record(r) if r.kind() == kind => Some(r.to_payload()),
            _ => None,
        })
        .collect()
}

fn last_request(cmds: &[Command]) -> &ModelRequest {
    cmds.iter()
        .rev()
        .find_map(|c| match c {
            Command::CallModel(r) => Some(r),
            _ => None,
        })
        .expect("a model call")
}

fn result(cmds: &[Command]) -> &RunResult {
    match cmds.last() {
        Some(Command::Finish(r)) => r,
        other => panic!("expected Finish, got {other:?}"),
    }
}

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

/// A writ stand-in: a tool-call budget, a deadline, fs_write needing approval, shell denied.
struct FakeWrit {
    tool_calls: u64,
    expires: Millis,
}

impl Authority for FakeWrit {
    fn authorize(&self, req: &AuthzRequest<'_>) -> Authorization {
        if req.now >= self.expires {
            return Authorization::Verdict(Verdict::deny("writ.time_window", "expired"));
        }
        if req.spent.tool_calls + 1 > self.tool_calls {
            return Authorization::Exhausted {
                rule: "writ.budget.tool_calls".into(),
                reason: "limit reached".into(),
            };
        }
        match req.tool {
            "shell" => {
                Authorization::Verdict(Verdict::deny("writ.tools", "shell is not in the writ"))
            }
            "fs_write" => {
                // Paths reach the writ normalised relative to the workspace.
                assert_eq!(
                    req.resources,
                    &[Resource::Path {
                        path: "a/b".into(),
                        mode: AccessMode::Write
                    }]
                );
                Authorization::Verdict(Verdict::NeedsApproval {
                    rule: "writ.approvals".into(),
                    reason: "writes".into(),
                })
            }
            _ => Authorization::Verdict(Verdict::allow("writ")),
        }
    }
    fn before_model_call(&self, now: Millis, spent: &Spent) -> Authorization {
        if now >= self.expires {
            return Authorization::Verdict(Verdict::deny("writ.time_window", "expired"));
        }
        if spent.model_calls + 1 > 4 {
            return Authorization::Exhausted {
                rule: "writ.budget.model_calls".into(),
                reason: "4 calls".into(),
            };
        }
        Authorization::Verdict(Verdict::allow("writ"))
    }
    fn describe(&self) -> Value {
        json!({"id": "fake"})
    }
}

fn writ_kernel(tool_calls: u64) -> Kernel {
    kernel_with(spec()).with_authority(Arc::new(FakeWrit {
        tool_calls,
        expires: 50_000,
    }))
}

#[test]
fn the_writ_is_recorded_and_its_denials_name_the_rule() {
    let mut k = writ_kernel(10);
    let cmds = start(&mut k);
    assert_eq!(records(&cmds, "run_started")[0]["writ"]["id"], "fake");
    let cmds = k
        .handle(reply(
            "",
            vec![call("s", "shell", json!({"command": "ls"}))],
        ))
        .unwrap();
    let p = records(&cmds, "proposal")[0].clone();
    assert_eq!(
        (p["verdict"].as_str(), p["rule"].as_str()),
        (Some("deny"), Some("writ.tools"))
    );
    assert!(
        last_request(&cmds)
            .messages
            .last()
            .unwrap()
            .content
            .contains("denied by policy (writ.tools)")
    );
    // The run's own policy still comes first: an escape is denied by confinement.
    let cmds = k
        .handle(reply(
            "",
            vec![call("r", "fs_read", json!({"path": "../x"}))],
        ))
        .unwrap();
    assert_eq!(
        records(&cmds, "proposal")[0]["rule"],
        "workspace_confinement"
    );
}

#[test]
fn a_proposal_over_budget_is_denied_and_ends_the_run() {
    let mut k = writ_kernel(1);
    start(&mut k);
    k.handle(reply("", vec![call("a", "fs_read", json!({"path": "x"}))]))
        .unwrap();
    k.handle(finished("a", "x")).unwrap();
    let cmds = k
        .handle(reply("", vec![call("b", "fs_read", json!({"path": "y"}))]))
        .unwrap();
    assert_eq!(
        kinds_of(&cmds),
        vec!["model_response", "proposal", "run_finished", "FINISH"]
    );
    let p = records(&cmds, "proposal")[0].clone();
    assert_eq!(
        (p["verdict"].as_str(), p["rule"].as_str()),
        (Some("deny"), Some("writ.budget.tool_calls"))
    );
    let r = result(&cmds);
    assert_eq!(
        (r.stop_reason, r.tool_calls),
        (StopReason::BudgetExhausted, 1)
    );
    assert!(
        r.error
            .as_deref()
            .unwrap()
            .starts_with("writ.budget.tool_calls")
    );
}

#[test]
fn model_call_budget_and_expiry_stop_the_run_before_calling() {
    let mut k = writ_kernel(100);
    start(&mut k);
    let mut cmds = Vec::new();
    for i in 0..4 {
        let id = format!("c{i}");
        k.handle(reply("", vec![call(&id, "fs_read", json!({"path": "x"}))]))
            .unwrap();
        cmds = k.handle(finished(&id, "x")).unwrap();
    }
    assert_eq!(result(&cmds).stop_reason, StopReason::BudgetExhausted);
    assert_eq!(result(&cmds).steps, 4);

    let mut k = writ_kernel(100);
    start(&mut k);
    k.handle(reply("", vec![call("a", "fs_read", json!({"path": "x"}))]))
        .unwrap();
    let late = Event::ToolFinished {
        now: 50_000,
        call_id: "a".into(),
        observation: Observation::ok("x"),
    };
    let cmds = k.handle(late).unwrap();
    assert_eq!(result(&cmds).stop_reason, StopReason::Denied);
    assert!(
        result(&cmds)
            .error
            .as_deref()
            .unwrap()
            .contains("writ.time_window")
    );
}

#[test]
fn approval_suspends_and_an_approval_is_rechecked_against_the_writ() {
    let mut k = writ_kernel(10);
    start(&mut k);
    let cmds = k
        .handle(reply(
            "",
            vec![call("w", "fs_write", json!({"path": "./a/../a/b"}))],
        ))
        .unwrap();
    assert_eq!(
        kinds_of(&cmds),
        vec![
            "model_response",
            "proposal",
            "approval_requested",
            "AWAIT_APPROVAL"
        ]
    );
    assert_eq!(records(&cmds, "proposal")[0]["verdict"], "needs_approval");
    // Approved, but only after the writ expired: it must not run.
    let late = Event::ApprovalDecided {
        now: 60_000,
        call_id: "w".into(),
        approved: true,
        by: "op".into(),
        reason: String::new(),
    };
    let cmds = k.handle(late).unwrap();
    assert!(
        !kinds_of(&cmds).contains(&"EXECUTE"),
        "{:?}",
        kinds_of(&cmds)
    );
    assert_eq!(result(&cmds).stop_reason, StopReason::Denied);

    let mut k = writ_kernel(10);
    start(&mut k);
    k.handle(reply(
        "",
        vec![call("w", "fs_write", json!({"path": "a/b"}))],
    ))
    .unwrap();
    let ok = Event::ApprovalDecided {
        now: 3_000,
        call_id: "w".into(),
        approved: true,
        by: "op".into(),
        reason: String::new(),
    };
    assert_eq!(
        kinds_of(&k.handle(ok).unwrap()),
        vec!["approval_decided", "EXECUTE"]
    );
}

#[test]
fn bytes_written_and_money_are_counted() {
    let mut prices = PriceTable::default();
    prices.0.insert(
        "m".into(),
        ModelPrice {
            input_per_mtok: 2.0,
            output_per_mtok: 10.0,
        },
    );
    let mut k = kernel_with(spec()).with_prices(prices);
    start(&mut k);
    let response = ModelResponse {
        tool_calls: vec![call("a", "fs_write", json!({"path": "x"}))],
        usage: Usage {
            input_tokens: 1000,
            output_tokens: 100,
        },
        model: "m".into(),
        ..Default::default()
    };
    let cmds = k.handle(Event::ModelReplied { now: 2, response }).unwrap();
    // Each priced call records its cost; unpriced ones carry no cost field.
    assert_eq!(records(&cmds, "model_response")[0]["cost_usd_micros"], 3000);
    let mut unpriced = kernel_with(spec());
    start(&mut unpriced);
    let cmds = unpriced.handle(reply("done", vec![])).unwrap();
    assert!(
        records(&cmds, "model_response")[0]
            .get("cost_usd_micros")
            .is_none()
    );
    let change = FileChange {
        path: "x".into(),
        before: None,
        after: Some("id".into()),
        size: Some(42),
    };
    let observation = Observation {
        files_changed: vec![change],
        ..Observation::ok("wrote")
    };
    k.handle(Event::ToolFinished {
        now: 3,
        call_id: "a".into(),
        observation,
    })
    .unwrap();
    let spent = k.spent(10);
    assert_eq!(
        (spent.bytes_written, spent.usd_micros, spent.model_tokens),
        (42, 3000, 1100)
    );
}

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

fn compacting(mode: CompactionMode) -> Kernel {
    kernel_with(RunSpec {
        compaction: Some(Compaction {
            mode,
            // The system prompt and tool schemas alone take a few hundred tokens; each big
            // observation below adds 500.
            context_window: 2_000,
            threshold_percent: 80,
            keep_recent: 1,
        }),
        limits: Limits {
            max_steps: 20,
            max_seconds: None,
            max_invalid_replies: 3,
        },
        ..spec()
    })
}

/// Runs up to `n` fs_read steps, each observing 2000 characters, stopping at the first
/// compaction; returns the last commands.
fn big_reads(k: &mut Kernel, n: usize) -> Vec<Command> {
    start(k);
    let mut cmds = Vec::new();
    for i in 0..n {
        let id = format!("r{i}");
        k.handle(reply(
            "",
            vec![call(&id, "fs_read", json!({"path": "a.txt"}))],
        ))
        .unwrap();
        cmds = k.handle(finished(&id, &"x".repeat(2_000))).unwrap();
        if !records(&cmds, "compaction").is_empty() || last_request(&cmds).is_compaction() {
            break;
        }
    }
    cmds
}

#[test]
fn truncation_drops_the_oldest_observations_and_records_them() {
    let mut k = compacting(CompactionMode::Truncate);
    let cmds = big_reads(&mut k, 4);
    let compactions = records(&cmds, "compaction");
    assert_eq!(compactions.len(), 1, "{cmds:?}");
    let c = &compactions[0];
    assert_eq!(c["mode"], "truncate");
    assert!(c["tokens_after"].as_u64() < c["tokens_before"].as_u64());
    assert!(c["tokens_after"].as_u64().unwrap() <= 1_600, "{c}");
    assert_eq!(c["dropped"][0]["call_id"], "r0");
    let req = last_request(&cmds);
    let tool_results: Vec<&Message> = req
        .messages
        .iter()
        .filter(|m| m.role == Role::Tool)
        .collect();
    assert!(tool_results[0].content.starts_with("[compacted:"));
    // The latest observation is always kept whole.
    assert_eq!(tool_results.last().unwrap().content.len(), 2_000);
}

#[test]
fn no_compaction_below_the_threshold_or_without_a_window() {
    let mut k = compacting(CompactionMode::Truncate);
    let cmds = big_reads(&mut k, 1);
    assert!(records(&cmds, "compaction").is_empty());
    let mut k = kernel_with(spec());
    let cmds = big_reads(&mut k, 4);
    assert!(records(&cmds, "compaction").is_empty());
}

#[test]
fn summarize_asks_the_model_then_replaces_older_turns() {
    let mut k = compacting(CompactionMode::Summarize);
    let cmds = big_reads(&mut k, 4);
    // The step's call is preceded by a summary request.
    let req = last_request(&cmds);
    assert!(req.is_compaction(), "{cmds:?}");
    assert!(req.tools.is_empty());
    assert!(req.messages[1].content.contains("[tool call] fs_read"));
    let before = k.steps();
    let cmds = k
        .handle(Event::ModelReplied {
            now: 4_000,
            response: ModelResponse {
                content: "read a.txt several times".into(),
                usage: Usage {
                    input_tokens: 900,
                    output_tokens: 10,
                },
                ..Default::default()
            },
        })
        .unwrap();
    assert_eq!(kinds_of(&cmds), vec!["compaction", "CALL_MODEL"]);
    let c = records(&cmds, "compaction")[0].clone();
    assert_eq!(c["mode"], "summarize");
    assert_eq!(c["summary"], "read a.txt several times");
    let req = last_request(&cmds);
    assert_eq!(req.step, before, "the summary is not a step");
    assert!(req.messages[1].content.contains("read a.txt several times"));
    assert!(req.messages[1].content.starts_with("inspect the repo"));
    // Tool results still follow their calls: the kept turn starts with the assistant.
    assert_eq!(req.messages[2].role, Role::Assistant);
    assert_eq!(req.messages[3].role, Role::Tool);
    assert_eq!(
        req.messages[3].tool_call_id,
        req.messages[2].tool_calls.first().map(|c| c.id.clone())
    );
    // The summary's tokens count towards the run's usage.
    assert!(k.spent(4_000).model_tokens >= 910);
}

#[test]
fn a_failed_summary_falls_back_to_truncation() {
    let mut k = compacting(CompactionMode::Summarize);
    big_reads(&mut k, 4);
    let cmds = k
        .handle(Event::ModelFailed {
            now: 4_000,
            error: "HTTP 500".into(),
        })
        .unwrap();
    assert_eq!(kinds_of(&cmds), vec!["compaction", "CALL_MODEL"]);
    let c = records(&cmds, "compaction")[0].clone();
    assert_eq!(c["mode"], "truncate");
    assert_eq!(c["summary_error"], "HTTP 500");
    assert!(!last_request(&cmds).is_compaction());
}
