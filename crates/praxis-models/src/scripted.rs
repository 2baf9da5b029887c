//! The scripted provider: replays a JSON script of model turns.
//!
//! Script format: `{"turns": [{"content": "...", "tool_calls": [{"id": "c1", "name":
//! "fs_read", "arguments": {"path": "README.md"}}]}, ...]}`. Turn n answers the n-th model
//! call of a run, where n is the number of assistant messages already in the request plus
//! one; that keeps the provider stateless, so replay and branching pick the right turn.

use crate::{BoxFuture, DeltaSink, ModelError, Provider, estimate_usage, stream_words};
use praxis_core::{ModelRequest, ModelResponse, Role, ToolCall};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptFile {
    turns: Vec<ScriptTurn>,
    /// Scripts for sub-agents started with `delegate`, by task text.
    #[serde(default)]
    delegates: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptTurn {
    #[serde(default)]
    content: String,
    #[serde(default)]
    tool_calls: Vec<ScriptCall>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptCall {
    #[serde(default)]
    id: Option<String>,
    name: String,
    /// Any JSON is accepted so a script can also exercise the kernel's rejection of
    /// non-object arguments.
    #[serde(default = "empty_object")]
    arguments: Value,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// Replays the turns of a script file, one per model call.
#[derive(Debug)]
pub struct ScriptedProvider {
    model: String,
    turns: Vec<ModelResponse>,
    delegates: BTreeMap<String, Arc<ScriptedProvider>>,
    /// The run's model call the first turn answers (1, except in a branch).
    first_step: u32,
}

impl ScriptedProvider {
    /// Loads a script; the model name is the file name.
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ModelError::ScriptUnreadable {
                path: path.display().to_string(),
                source,
            })?;
        let mut provider = Self::from_json_str(&text, &path.display().to_string())?;
        if let Some(name) = path.file_name() {
            provider.model = name.to_string_lossy().into_owned();
        }
        Ok(provider)
    }

    /// Parses a script from text; `source_name` names it in errors and is the model name.
    pub fn from_json_str(text: &str, source_name: &str) -> Result<Self, ModelError> {
        let invalid = |message: String| ModelError::InvalidScript {
            source_name: source_name.to_string(),
            message,
        };
        if text.trim().is_empty() {
            return Err(invalid(
                "the script is empty; expected a JSON object like {\"turns\": [{\"content\": \"...\"}]}"
                    .into(),
            ));
        }
        // Parse untyped first: syntax errors get serde's line/column, and the value lets us
        // name the shape problems and the failing turn precisely.
        let value: Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
        let Some(object) = value.as_object() else {
            return Err(invalid(format!(
                "expected a JSON object with a `turns` array, found {}",
                kind_of(&value)
            )));
        };
        match object.get("turns") {
            None => {}
            Some(Value::Array(_)) => {}
            Some(other) => {
                return Err(invalid(format!(
                    "`turns` must be an array of turn objects, found {}",
                    kind_of(other)
                )));
            }
        }
        let script: ScriptFile = serde_json::from_str(text).map_err(|e| match locate(&value) {
            Some(path) => invalid(format!("{path}: {e}")),
            None => invalid(e.to_string()),
        })?;
        if script.turns.is_empty() {
            return Err(invalid(
                "`turns` is empty: a script needs at least one turn".into(),
            ));
        }
        let mut turns = Vec::with_capacity(script.turns.len());
        for (t, turn) in script.turns.into_iter().enumerate() {
            let number = t + 1;
            let mut seen = HashSet::new();
            let mut calls = Vec::with_capacity(turn.tool_calls.len());
            for (c, call) in turn.tool_calls.into_iter().enumerate() {
                let id = match call.id {
                    Some(id) if !id.is_empty() => id,
                    _ => format!("call-{number}-{}", c + 1),
                };
                if call.name.trim().is_empty() {
                    return Err(invalid(format!(
                        "turns[{t}].tool_calls[{c}]: `name` is empty"
                    )));
                }
                // Tool results are matched to calls by id, so ids must be unique per turn.
                if !seen.insert(id.clone()) {
                    return Err(invalid(format!(
                        "turns[{t}].tool_calls[{c}]: duplicate id `{id}` in the same turn"
                    )));
                }
                calls.push(ToolCall {
                    id,
                    name: call.name,
                    arguments: call.arguments,
                });
            }
            turns.push(ModelResponse {
                content: turn.content,
                tool_calls: calls,
                usage: Default::default(),
                model: source_name.to_string(),
                reasoning: Vec::new(),
            });
        }
        let mut delegates = BTreeMap::new();
        for (task, script) in script.delegates {
            let name = format!("{source_name}#delegates[{task:?}]");
            delegates.insert(
                task,
                Arc::new(Self::from_json_str(&script.to_string(), &name)?),
            );
        }
        Ok(ScriptedProvider {
            model: source_name.to_string(),
            turns,
            delegates,
            first_step: 1,
        })
    }

    /// Number of turns in the script.
    pub fn turns(&self) -> usize {
        self.turns.len()
    }
}

impl Provider for ScriptedProvider {
    fn name(&self) -> &str {
        "scripted"
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn for_branch(&self, first_step: u32) -> Option<Arc<dyn Provider>> {
        Some(Arc::new(ScriptedProvider {
            model: self.model.clone(),
            turns: self.turns.clone(),
            delegates: self.delegates.clone(),
            first_step: first_step.max(1),
        }))
    }

    fn for_delegate(&self, task: &str) -> Result<Arc<dyn Provider>, ModelError> {
        match self.delegates.get(task) {
            Some(script) => Ok(script.clone()),
            None => Err(ModelError::NoDelegateScript {
                source_name: self.model.clone(),
                task: task.to_string(),
            }),
        }
    }

    fn complete<'a>(
        &'a self,
        request: &'a ModelRequest,
        deltas: &'a dyn DeltaSink,
    ) -> BoxFuture<'a, Result<ModelResponse, ModelError>> {
        Box::pin(async move {
            if request.is_compaction() {
                let content = crate::extractive_summary(request);
                return Ok(ModelResponse {
                    usage: estimate_usage(request, &content, &[]),
                    content,
                    model: self.model.clone(),
                    ..Default::default()
                });
            }
            // Turn N answers model call N (counted from the branch point in a branch): the
            // conversation itself may have been compacted.
            let answered = request.step.saturating_sub(self.first_step) as usize;
            let call = answered + 1;
            let Some(turn) = self.turns.get(answered) else {
                return Err(ModelError::ScriptExhausted {
                    turns: self.turns.len(),
                    call: u32::try_from(call).unwrap_or(u32::MAX),
                });
            };
            let mut response = turn.clone();
            response.content = echo_observation(&response.content, request);
            // A few chunks, so live output shows the text arriving.
            let words = response.content.split_whitespace().count();
            stream_words(&response.content, words.div_ceil(4), deltas);
            response.model = self.model.clone();
            response.usage = estimate_usage(request, &response.content, &response.tool_calls);
            Ok(response)
        })
    }
}

/// In a turn's content, [`LAST_OBSERVATION`] stands for what the model was last shown: the
/// content of the request's last tool result or user message (a denial's reason, a
/// command's output), so a script can react to what really happened.
pub const LAST_OBSERVATION: &str = "{{last_observation}}";

fn echo_observation(content: &str, request: &ModelRequest) -> String {
    if !content.contains(LAST_OBSERVATION) {
        return content.to_string();
    }
    let last = request
        .messages
        .iter()
        .rev()
        .find(|m| matches!(m.role, Role::Tool | Role::User))
        .map_or("", |m| m.content.as_str());
    content.replace(LAST_OBSERVATION, last)
}

/// Where in the script a typed parse failed: the first turn (or tool call of it) that does
/// not deserialize on its own.
fn locate(value: &Value) -> Option<String> {
    let turns = value.get("turns")?.as_array()?;
    for (t, turn) in turns.iter().enumerate() {
        if serde_json::from_value::<ScriptTurn>(turn.clone()).is_ok() {
            continue;
        }
        if let Some(calls) = turn.get("tool_calls").and_then(Value::as_array) {
            for (c, call) in calls.iter().enumerate() {
                if serde_json::from_value::<ScriptCall>(call.clone()).is_err() {
                    return Some(format!("turns[{t}].tool_calls[{c}]"));
                }
            }
        }
        return Some(format!("turns[{t}]"));
    }
    None
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
