//! Conversions shared by the HTTP dialects: tool-call arguments, the `<cmd>` rendering of a
//! tool-call history, and the per-request tool choice.

use crate::{ModelError, Protocol, ProviderSettings, ToolChoice};
use praxis_core::{Message, ModelRequest, Role, cmd};
use serde_json::{Value, json};
use std::borrow::Cow;

/// The arguments of a streamed tool call. An object is kept; empty text means "no
/// arguments" (servers send "" for parameterless calls); anything else (unparseable text,
/// or JSON that is not an object) is passed on as a JSON string holding the exact text, so
/// the kernel rejects it with a message the model can recover from.
pub(crate) fn parse_arguments(text: &str) -> Value {
    if text.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(text) {
        Ok(value @ Value::Object(_)) => value,
        _ => Value::String(text.to_string()),
    }
}

/// Arguments as the JSON text the OpenAI dialect carries: a string argument is the model's
/// own unparseable text and goes back verbatim, so the model sees what it sent.
pub(crate) fn arguments_text(arguments: &Value) -> String {
    match arguments {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Arguments as the JSON object Anthropic and Ollama require in history. Invalid arguments
/// (a string, see [`parse_arguments`]) cannot be sent as they were, and the call cannot be
/// dropped either (its rejection result refers to it), so the text is wrapped as
/// `{"_invalid_arguments": text}`: the model still sees what it sent.
pub(crate) fn arguments_object(arguments: &Value) -> Value {
    match arguments {
        Value::Object(_) => arguments.clone(),
        Value::String(text) => json!({ "_invalid_arguments": text }),
        other => json!({ "_invalid_arguments": other.to_string() }),
    }
}

/// The history a dialect sends: as is for native tools; for the `<cmd>` protocol, tool
/// calls are rendered as text in the assistant message and tool results become user
/// messages of `<result>` blocks (consecutive results in one message, as the kernel sends
/// `<cmd>` results), so a model without tool support can read them.
pub(crate) fn history<'a>(
    request: &'a ModelRequest,
    settings: &ProviderSettings,
) -> Cow<'a, [Message]> {
    match settings.protocol {
        Protocol::Tools => Cow::Borrowed(request.messages.as_slice()),
        Protocol::Cmd => Cow::Owned(cmd_history(&request.messages)),
    }
}

fn cmd_history(messages: &[Message]) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::with_capacity(messages.len());
    let mut in_results = false;
    for m in messages {
        match m.role {
            Role::Tool => {
                let block = cmd::format_result(&m.content, None);
                match out.last_mut() {
                    Some(last) if in_results => {
                        last.content.push('\n');
                        last.content.push_str(&block);
                    }
                    _ => out.push(Message::new(Role::User, block)),
                }
                in_results = true;
                continue;
            }
            Role::Assistant if !m.tool_calls.is_empty() => {
                let mut text = m.content.clone();
                for call in &m.tool_calls {
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&render_call(&call.name, &call.arguments));
                }
                out.push(Message {
                    content: text,
                    tool_calls: Vec::new(),
                    ..m.clone()
                });
            }
            _ => out.push(m.clone()),
        }
        in_results = false;
    }
    out
}

/// A tool call as text: a `shell` call is the `<cmd>` block it stands for; other tools are
/// described in brackets, which the kernel does not act on.
fn render_call(name: &str, arguments: &Value) -> String {
    if name == "shell"
        && let Some(command) = arguments.get("command").and_then(Value::as_str)
    {
        return cmd::format_cmd(command);
    }
    format!("[tool call {name} {}]", arguments_text(arguments))
}

/// The tool choice to send with this request, if any: only with native tools on offer, only
/// on the first model call of a run (later calls are auto so the model can finish), and a
/// named tool must be one of the offered tools.
pub(crate) fn forced_choice<'a>(
    request: &ModelRequest,
    settings: &'a ProviderSettings,
) -> Result<Option<&'a ToolChoice>, ModelError> {
    if settings.protocol != Protocol::Tools || request.step != 1 || request.tools.is_empty() {
        return Ok(None);
    }
    match &settings.tool_choice {
        ToolChoice::Auto => Ok(None),
        ToolChoice::Required => Ok(Some(&settings.tool_choice)),
        ToolChoice::Tool(name) => {
            if request.tools.iter().any(|t| &t.name == name) {
                Ok(Some(&settings.tool_choice))
            } else {
                let offered: Vec<&str> = request.tools.iter().map(|t| t.name.as_str()).collect();
                Err(ModelError::Config(format!(
                    "tool_choice names the tool `{name}`, which this run does not offer (offered: {})",
                    offered.join(", ")
                )))
            }
        }
    }
}

/// Whether tools are sent with this request.
pub(crate) fn sends_tools(request: &ModelRequest, settings: &ProviderSettings) -> bool {
    settings.protocol == Protocol::Tools && !request.tools.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use praxis_core::ToolCall;

    #[test]
    fn arguments_keep_objects_and_pass_bad_text_on() {
        assert_eq!(parse_arguments(r#"{"a": 1}"#), json!({"a": 1}));
        assert_eq!(parse_arguments("  "), json!({}));
        assert_eq!(parse_arguments(r#"{"a": 1"#), json!(r#"{"a": 1"#));
        assert_eq!(parse_arguments("[1]"), json!("[1]"));
        assert_eq!(arguments_text(&json!("{oops")), "{oops");
        assert_eq!(arguments_text(&json!({"a": 1})), r#"{"a":1}"#);
        assert_eq!(
            arguments_object(&json!("{oops")),
            json!({"_invalid_arguments": "{oops"})
        );
    }

    #[test]
    fn cmd_history_renders_calls_and_results_as_text() {
        let messages = vec![
            Message::new(Role::User, "go"),
            Message {
                tool_calls: vec![
                    ToolCall {
                        id: "a".into(),
                        name: "shell".into(),
                        arguments: json!({"command": "ls"}),
                    },
                    ToolCall {
                        id: "b".into(),
                        name: "fs_read".into(),
                        arguments: json!({"path": "x"}),
                    },
                ],
                ..Message::new(Role::Assistant, "Looking.")
            },
            Message::tool_result("a", "file1\n"),
            Message::tool_result("b", "text"),
            Message::new(Role::Assistant, "done"),
        ];
        let out = cmd_history(&messages);
        assert_eq!(out.len(), 4);
        assert_eq!(
            out[1].content,
            "Looking.\n<cmd>ls</cmd>\n[tool call fs_read {\"path\":\"x\"}]"
        );
        assert!(out[1].tool_calls.is_empty());
        assert_eq!(out[2].role, Role::User);
        assert_eq!(
            out[2].content,
            "<result>\nfile1\n</result>\n<result>\ntext\n</result>"
        );
        assert!(out.iter().all(|m| m.role != Role::Tool));
    }
}
