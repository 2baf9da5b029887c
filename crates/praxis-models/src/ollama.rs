//! Ollama's native chat API (`POST {host}/api/chat`, streamed as newline-delimited JSON).
//!
//! Each line carries a piece of `message.content` / `message.thinking`, or whole
//! `message.tool_calls` (Ollama does not split a call; ids are generated as `call_N` when it
//! sends none); the last line has `done: true` with `prompt_eval_count` and `eval_count`.
//! An `{"error": "..."}` line is a failure. Ollama has no `tool_choice`, so that setting is
//! ignored here (the model decides); the output limit goes in `options.num_predict` and a
//! configured context window in `options.num_ctx` (Ollama's own default is small).

use crate::convert::{arguments_object, arguments_text, history, parse_arguments, sends_tools};
use crate::http::{Endpoint, LineReader, SharedClient, SizeCap, client, parse_url, post_json};
use crate::{DeltaSink, ModelError, ProviderSettings, estimate_usage};
use praxis_core::{Message, ModelRequest, ModelResponse, Reasoning, Role, ToolCall, Usage};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// A model served by Ollama (`ollama:MODEL`, e.g. `ollama:qwen2.5-coder:7b`).
#[derive(Clone, Debug)]
pub struct OllamaProvider {
    model: String,
    label: String,
    settings: Arc<ProviderSettings>,
    client: SharedClient,
    endpoint: Endpoint,
}

/// `OLLAMA_HOST` as a base URL: `host:port` gets `http://`, a trailing `/` goes.
fn base_url(host: &str) -> String {
    let host = host.trim().trim_end_matches('/');
    if host.contains("://") {
        host.to_string()
    } else {
        format!("http://{host}")
    }
}

impl OllamaProvider {
    /// A provider for `model` at `settings.ollama_host`; Ollama needs no key.
    pub fn new(model: &str, settings: &ProviderSettings) -> Result<Self, ModelError> {
        let base = base_url(&settings.ollama_host);
        parse_url(&base, "OLLAMA_HOST")?;
        Ok(OllamaProvider {
            model: model.to_string(),
            label: format!("ollama:{model}"),
            settings: Arc::new(settings.clone()),
            client: client(settings)?,
            endpoint: Endpoint {
                provider: "ollama",
                url: format!("{base}/api/chat"),
                key_variable: "OLLAMA_HOST (Ollama needs no key: something in front of it refused)",
            },
        })
    }

    fn body(&self, request: &ModelRequest) -> Result<Value, ModelError> {
        let settings = &self.settings;
        let mut options = json!({"num_predict": settings.max_output_tokens});
        if let Some(window) = settings.context_window {
            options["num_ctx"] = json!(window);
        }
        let mut body = json!({
            "model": self.model,
            "messages": wire_messages(&history(request, settings)),
            "stream": true,
            "options": options,
        });
        if sends_tools(request, settings) {
            let tools: Vec<Value> = request
                .tools
                .iter()
                .map(|t| {
                    json!({"type": "function", "function": {
                        "name": t.name, "description": t.description, "parameters": t.parameters,
                    }})
                })
                .collect();
            body["tools"] = Value::Array(tools);
        }
        Ok(body)
    }

    async fn attempt(
        &self,
        request: &ModelRequest,
        body: &Value,
        deltas: &dyn DeltaSink,
    ) -> Result<ModelResponse, ModelError> {
        let response = post_json(&self.client, &self.endpoint, &[], body, &self.settings).await?;
        let mut reader = LineReader::new(response, &self.endpoint, &self.settings);
        let mut cap = SizeCap::new(self.settings.max_response_bytes);
        let mut content = String::new();
        let mut thinking = String::new();
        let mut calls: Vec<ToolCall> = Vec::new();
        let mut model = None;
        let mut usage = None;
        loop {
            let Some(line) = reader.next().await? else {
                return Err(reader.ended_early());
            };
            let value: Value =
                serde_json::from_str(&line).map_err(|e| reader.bad_data(&e, &line))?;
            if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
                let message = error
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| error.to_string());
                // Errors inside a started stream are runtime failures (a crashed runner,
                // memory): worth another attempt. Request errors come as an HTTP status.
                return Err(self.endpoint.remote("error", &message, true));
            }
            if model.is_none()
                && let Some(name) = value
                    .get("model")
                    .and_then(Value::as_str)
                    .filter(|m| !m.is_empty())
            {
                model = Some(name.to_string());
            }
            if let Some(message) = value.get("message") {
                if let Some(text) = message
                    .get("content")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    cap.add(text.len(), &self.endpoint)?;
                    content.push_str(text);
                    deltas.text(text);
                }
                if let Some(text) = message
                    .get("thinking")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    cap.add(text.len(), &self.endpoint)?;
                    thinking.push_str(text);
                    deltas.reasoning(text);
                }
                for call in message
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let call = tool_call(call, calls.len());
                    let text = arguments_text(&call.arguments);
                    cap.add(call.name.len() + text.len(), &self.endpoint)?;
                    deltas.tool_arguments(calls.len(), &call.name, &text);
                    calls.push(call);
                }
            }
            if value.get("done").and_then(Value::as_bool) == Some(true) {
                let count = |k: &str| value.get(k).and_then(Value::as_u64);
                // 0/0 means the server did not count (some Ollama-compatible servers send
                // zeros): estimated locally then, like an absent count.
                if let (Some(input), Some(output)) =
                    (count("prompt_eval_count"), count("eval_count"))
                    && input + output > 0
                {
                    usage = Some(Usage {
                        input_tokens: input,
                        output_tokens: output,
                    });
                }
                break;
            }
        }
        let usage = usage.unwrap_or_else(|| estimate_usage(request, &content, &calls));
        let reasoning = if thinking.is_empty() {
            Vec::new()
        } else {
            vec![Reasoning {
                text: thinking,
                signature: None,
                redacted: false,
            }]
        };
        Ok(ModelResponse {
            content,
            tool_calls: calls,
            usage,
            model: model.unwrap_or_else(|| self.model.clone()),
            reasoning,
        })
    }
}

/// One whole tool call of a line. Arguments come as an object; some models give a string
/// of JSON, which is parsed like a streamed one (unparseable text stays a string).
fn tool_call(call: &Value, position: usize) -> ToolCall {
    let function = call.get("function").unwrap_or(&Value::Null);
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let arguments = match function.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(value @ Value::Object(_)) => value.clone(),
        Some(Value::String(text)) => parse_arguments(text),
        Some(other) => Value::String(other.to_string()),
    };
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("call_{}", position + 1));
    ToolCall {
        id,
        name,
        arguments,
    }
}

fn wire_messages(messages: &[Message]) -> Vec<Value> {
    // Ollama matches a tool result to its call by the tool's name.
    let names: HashMap<&str, &str> = messages
        .iter()
        .flat_map(|m| &m.tool_calls)
        .map(|c| (c.id.as_str(), c.name.as_str()))
        .collect();
    messages
        .iter()
        .map(|m| {
            let mut out = Map::new();
            let role = match m.role {
                Role::System => "system",
                Role::User => "user",
                Role::Assistant => "assistant",
                Role::Tool => "tool",
            };
            out.insert("role".into(), json!(role));
            out.insert("content".into(), json!(m.content));
            if m.role == Role::Tool
                && let Some(id) = &m.tool_call_id
            {
                out.insert("tool_call_id".into(), json!(id));
                if let Some(name) = names.get(id.as_str()) {
                    out.insert("tool_name".into(), json!(name));
                }
            }
            let thinking: Vec<&str> = m
                .reasoning
                .iter()
                .filter(|r| !r.redacted)
                .map(|r| r.text.as_str())
                .collect();
            if !thinking.is_empty() {
                out.insert("thinking".into(), json!(thinking.join("\n")));
            }
            if !m.tool_calls.is_empty() {
                let calls: Vec<Value> = m
                    .tool_calls
                    .iter()
                    .map(|c| {
                        json!({"id": c.id, "function": {
                            "name": c.name, "arguments": arguments_object(&c.arguments),
                        }})
                    })
                    .collect();
                out.insert("tool_calls".into(), Value::Array(calls));
            }
            Value::Object(out)
        })
        .collect()
}

http_provider!(OllamaProvider, "ollama");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_forms() {
        assert_eq!(base_url("127.0.0.1:11434"), "http://127.0.0.1:11434");
        assert_eq!(base_url("http://box:1/"), "http://box:1");
        assert_eq!(base_url("https://x.example"), "https://x.example");
    }
}
