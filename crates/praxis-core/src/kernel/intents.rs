//! What a model reply asks for: native tool calls, `<cmd>` blocks, or a final answer.

use crate::cmd;
use crate::types::*;
use serde_json::json;

pub(super) enum Reply {
    Intents(Vec<Intent>),
    Final(String),
    Unusable(String),
}

/// Native tool calls take precedence; otherwise `<cmd>` blocks; otherwise the text is the answer.
pub(super) fn intents_of(step: u32, response: &ModelResponse) -> Reply {
    if !response.tool_calls.is_empty() {
        return Reply::Intents(
            response
                .tool_calls
                .iter()
                .map(|call| Intent {
                    call_id: call.id.clone(),
                    tool: call.name.clone(),
                    arguments: call.arguments.clone(),
                    source: IntentSource::ToolCall,
                })
                .collect(),
        );
    }
    match cmd::parse_cmd_blocks(&response.content) {
        Err(error) => Reply::Unusable(error.to_string()),
        Ok(blocks) if blocks.is_empty() => {
            let answer = response.content.trim();
            if answer.is_empty() {
                Reply::Unusable("the reply was empty".into())
            } else {
                Reply::Final(answer.into())
            }
        }
        Ok(blocks) => {
            let intents: Vec<Intent> = blocks
                .into_iter()
                .filter(|body| !body.is_empty())
                .enumerate()
                .map(|(i, command)| Intent {
                    call_id: format!("cmd-{step}-{}", i + 1),
                    tool: "shell".into(),
                    arguments: json!({ "command": command }),
                    source: IntentSource::CmdBlock,
                })
                .collect();
            if intents.is_empty() {
                Reply::Unusable("every <cmd> block was empty".into())
            } else {
                Reply::Intents(intents)
            }
        }
    }
}
