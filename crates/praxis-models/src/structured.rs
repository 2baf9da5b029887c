//! Structured output: ask a provider for a reply that is JSON matching a Rust type's schema.

use crate::{DeltaSink, ModelError, Provider};
use praxis_core::{Message, ModelRequest, ModelResponse, Role};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;

/// Validation problems listed in an error at most.
const MAX_PROBLEMS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum StructuredError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("cannot use the JSON Schema of {type_name}: {message}")]
    Schema { type_name: String, message: String },
    #[error(
        "the model did not produce a valid {type_name} in two tries: first reply: {first}; \
         second reply, after being told: {second}"
    )]
    Invalid {
        type_name: String,
        /// What was wrong with the first reply.
        first: String,
        /// What was wrong with the second reply.
        second: String,
        /// The second reply's text.
        reply: String,
    },
}

/// Asks `provider` for a JSON value of type `T`: a system instruction with `T`'s JSON Schema
/// is added after the leading system messages, the reply's JSON (a ```json fence or
/// surrounding prose is tolerated) is validated against the schema and deserialized. If that
/// fails, the model is asked once more, with the problem quoted; a second failure is
/// [`StructuredError::Invalid`] naming both problems. No tools are offered. The returned
/// response is the one that produced the value, with the usage of both calls when there
/// were two (so budgets count everything spent).
pub async fn complete_structured<T>(
    provider: &dyn Provider,
    messages: Vec<Message>,
    deltas: &dyn DeltaSink,
) -> Result<(T, ModelResponse), StructuredError>
where
    T: schemars::JsonSchema + DeserializeOwned,
{
    let type_name = T::schema_name().to_string();
    let schema = schemars::schema_for!(T);
    let schema = schema.as_value();
    let validator = jsonschema::validator_for(schema).map_err(|e| StructuredError::Schema {
        type_name: type_name.clone(),
        message: e.to_string(),
    })?;
    let pretty = serde_json::to_string_pretty(schema).unwrap_or_else(|_| schema.to_string());
    let instruction = format!(
        "Reply with a single JSON value that matches this JSON Schema, and nothing else (no \
         prose, no code fence):\n{pretty}"
    );
    let mut messages = messages;
    let at = messages
        .iter()
        .position(|m| m.role != Role::System)
        .unwrap_or(messages.len());
    messages.insert(at, Message::new(Role::System, instruction));

    let first = call(provider, 1, &messages, deltas).await?;
    let first_problem = match check::<T>(&validator, &first.content) {
        Ok(value) => return Ok((value, first)),
        Err(problem) => problem,
    };
    messages.push(Message {
        reasoning: first.reasoning.clone(),
        ..Message::new(Role::Assistant, first.content.clone())
    });
    messages.push(Message::new(
        Role::User,
        format!(
            "That reply is not valid: {first_problem}. Reply again with only the JSON value, \
             matching the schema."
        ),
    ));
    let mut second = call(provider, 2, &messages, deltas).await?;
    second.usage.add(first.usage);
    match check::<T>(&validator, &second.content) {
        Ok(value) => Ok((value, second)),
        Err(second_problem) => Err(StructuredError::Invalid {
            type_name,
            first: first_problem,
            second: second_problem,
            reply: second.content,
        }),
    }
}

async fn call(
    provider: &dyn Provider,
    step: u32,
    messages: &[Message],
    deltas: &dyn DeltaSink,
) -> Result<ModelResponse, ModelError> {
    let request = ModelRequest {
        step,
        messages: Arc::new(messages.to_vec()),
        tools: Arc::new(Vec::new()),
    };
    provider.complete(&request, deltas).await
}

/// The value of a reply, or what is wrong with it (in words meant for the model).
fn check<T: DeserializeOwned>(validator: &jsonschema::Validator, reply: &str) -> Result<T, String> {
    let text = extract_json(reply);
    if text.is_empty() {
        return Err("it contains no JSON value".into());
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("it is not valid JSON ({e})"))?;
    let problems: Vec<String> = validator
        .iter_errors(&value)
        .take(MAX_PROBLEMS)
        .map(|e| {
            let path = e.instance_path().to_string();
            let at = if path.is_empty() {
                "/".to_string()
            } else {
                path
            };
            format!("at {at}: {e}")
        })
        .collect();
    if !problems.is_empty() {
        return Err(format!(
            "it does not match the schema: {}",
            problems.join("; ")
        ));
    }
    serde_json::from_value(value).map_err(|e| format!("it does not match the expected type ({e})"))
}

/// The JSON part of a reply: the whole text if it parses, else the body of the first code
/// fence, else the span from the first `{`/`[` to the last `}`/`]`.
fn extract_json(reply: &str) -> &str {
    let text = reply.trim();
    if serde_json::from_str::<Value>(text).is_ok() {
        return text;
    }
    if let Some(start) = text.find("```") {
        let after = &text[start + 3..];
        // Skip the info string (`json`) up to the end of the fence line.
        let body_start = after.find('\n').map_or(after.len(), |i| i + 1);
        let body = &after[body_start..];
        let end = body.find("```").unwrap_or(body.len());
        return body[..end].trim();
    }
    let open = text.find(['{', '[']);
    let close = text.rfind(['}', ']']);
    match (open, close) {
        (Some(open), Some(close)) if close > open => &text[open..=close],
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_found_in_fences_and_prose() {
        assert_eq!(extract_json(" {\"a\": 1} "), "{\"a\": 1}");
        assert_eq!(extract_json("```json\n{\"a\": 1}\n```"), "{\"a\": 1}");
        assert_eq!(extract_json("Here:\n```\n[1, 2]\n```\nDone."), "[1, 2]");
        assert_eq!(
            extract_json("Sure! {\"a\": {\"b\": 2}} hope it helps"),
            "{\"a\": {\"b\": 2}}"
        );
        assert_eq!(extract_json("no json"), "no json");
    }
}
