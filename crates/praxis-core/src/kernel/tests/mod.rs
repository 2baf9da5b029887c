use super::*;
use crate::contract::{CompileError, Compiled};
use proptest::prelude::*;
use serde_json::{Value, json};

mod compaction;
mod flow;
mod properties;
mod resume;
mod writ;

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
