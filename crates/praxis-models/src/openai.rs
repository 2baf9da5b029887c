//! OpenAI-compatible chat completions (`POST {base}/chat/completions`, streamed as SSE, or
//! one JSON completion: when `stream = false` is configured, or when a server answers a
//! streaming request with `application/json` anyway).
//!
//! Works with OpenAI and with local servers that speak the same dialect (llama.cpp, vLLM,
//! LM Studio, Ollama's `/v1`). Tool calls arrive in pieces keyed by `index`: the first
//! piece of a call carries its id and name, later pieces carry argument fragments, and one
//! chunk may carry pieces of several calls. Usage comes in a last chunk with empty
//! `choices` (requested with `stream_options.include_usage`); `reasoning_content`
//! (DeepSeek, vLLM, llama.cpp) is kept as an unsigned reasoning block.

use crate::convert::{arguments_text, forced_choice, history, parse_arguments, sends_tools};
use crate::http::{
    Endpoint, SharedClient, SizeCap, SseReader, client, is_json, is_loopback, parse_url, post_json,
    read_body,
};
use crate::{DeltaSink, ModelError, ProviderSettings, ToolChoice, estimate_usage};
use praxis_core::{Message, ModelRequest, ModelResponse, Reasoning, Role, ToolCall, Usage};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// A model behind an OpenAI-compatible chat completions endpoint (`openai:MODEL`).
#[derive(Clone, Debug)]
pub struct OpenAiProvider {
    /// `openai`, or the preset's name (`vllm`, `huggingface`, ...).
    kind: &'static str,
    model: String,
    label: String,
    settings: Arc<ProviderSettings>,
    client: SharedClient,
    endpoint: Endpoint,
    api_key: Option<String>,
    /// OpenAI's own API wants `max_completion_tokens` (its reasoning models reject
    /// `max_tokens`); compatible servers know only `max_tokens`.
    max_tokens_field: &'static str,
}

impl OpenAiProvider {
    /// A provider for `model` at `settings.openai_base_url`. The key is required unless the
    /// base URL is on loopback (local servers need none).
    pub fn new(model: &str, settings: &ProviderSettings) -> Result<Self, ModelError> {
        let base = settings.openai_base_url.trim().trim_end_matches('/');
        let parsed = parse_url(base, "OPENAI_BASE_URL")?;
        if settings.openai_api_key.is_none() && !is_loopback(&parsed) {
            return Err(ModelError::MissingKey {
                provider: "openai".into(),
                variable: "OPENAI_API_KEY",
                url: format!("{base}/chat/completions"),
            });
        }
        Self::compatible(
            "openai",
            "OPENAI_BASE_URL",
            base,
            settings.openai_api_key.clone(),
            "OPENAI_API_KEY",
            model,
            settings,
        )
    }

    /// A provider of kind `kind` (its [`crate::Provider::name`], e.g. a preset's name) for
    /// `model` at `base` (including `/v1`, set by `url_variable`), sending `api_key` as a
    /// bearer token when there is one (`key_variable` is named when it is refused).
    pub fn compatible(
        kind: &'static str,
        url_variable: &'static str,
        base: &str,
        api_key: Option<String>,
        key_variable: &'static str,
        model: &str,
        settings: &ProviderSettings,
    ) -> Result<Self, ModelError> {
        let base = base.trim().trim_end_matches('/');
        let parsed = parse_url(base, url_variable)?;
        let max_tokens_field = if parsed.host_str() == Some("api.openai.com") {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        Ok(OpenAiProvider {
            kind,
            model: model.to_string(),
            label: format!("{kind}:{model}"),
            settings: Arc::new(settings.clone()),
            client: client(settings)?,
            endpoint: Endpoint {
                provider: kind,
                url: format!("{base}/chat/completions"),
                key_variable,
            },
            api_key,
            max_tokens_field,
        })
    }

    /// The JSON body of a request.
    fn body(&self, request: &ModelRequest) -> Result<Value, ModelError> {
        let settings = &self.settings;
        let messages: Vec<Value> = history(request, settings)
            .iter()
            .map(wire_message)
            .collect();
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "stream": settings.openai_stream,
        });
        if settings.openai_stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        body[self.max_tokens_field] = json!(settings.max_output_tokens);
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
            match forced_choice(request, settings)? {
                // With one tool on offer "required" means that tool; the named form is also
                // the one servers with grammar-constrained calling (llama-cpp-python) accept.
                Some(ToolChoice::Required) if request.tools.len() == 1 => {
                    let name = &request.tools[0].name;
                    body["tool_choice"] = json!({"type": "function", "function": {"name": name}});
                }
                Some(ToolChoice::Required) => body["tool_choice"] = json!("required"),
                Some(ToolChoice::Tool(name)) => {
                    body["tool_choice"] = json!({"type": "function", "function": {"name": name}});
                }
                _ => {}
            }
        }
        Ok(body)
    }

    async fn attempt(
        &self,
        request: &ModelRequest,
        body: &Value,
        deltas: &dyn DeltaSink,
    ) -> Result<ModelResponse, ModelError> {
        let headers: Vec<(&'static str, String)> = match &self.api_key {
            Some(key) => vec![("authorization", format!("Bearer {key}"))],
            None => Vec::new(),
        };
        let response =
            post_json(&self.client, &self.endpoint, &headers, body, &self.settings).await?;
        let mut reply = Assembly::new(self.settings.max_response_bytes);
        // Asked for a stream or not, a server may answer with one whole completion.
        if is_json(&response) {
            let (status, bytes) = read_body(response, &self.endpoint, &self.settings).await?;
            let mut completion: Completion = serde_json::from_slice(&bytes).map_err(|e| {
                self.endpoint.bad_body(
                    status,
                    format!("a completion that is not the expected JSON ({e})"),
                    &bytes,
                )
            })?;
            if let Some(error) = completion.error.take().filter(|e| !e.is_null()) {
                return Err(stream_error(&self.endpoint, &error));
            }
            reply.apply_completion(completion, deltas, &self.endpoint)?;
            return Ok(reply.finish(request, &self.model));
        }
        let mut reader = SseReader::new(response, &self.endpoint, &self.settings);
        loop {
            let Some(event) = reader.next().await? else {
                // Some servers close right after the finishing chunk without `[DONE]`.
                if reply.finished {
                    break;
                }
                return Err(reader.ended_early());
            };
            let data = event.data.trim();
            if data.is_empty() {
                continue;
            }
            if data == "[DONE]" {
                break;
            }
            let chunk: Value = serde_json::from_str(data).map_err(|e| reader.bad_data(&e, data))?;
            if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
                return Err(stream_error(&self.endpoint, error));
            }
            reply.apply(&chunk, deltas, &self.endpoint)?;
        }
        Ok(reply.finish(request, &self.model))
    }
}

http_provider!(OpenAiProvider, kind);

fn wire_message(m: &Message) -> Value {
    match m.role {
        Role::System => json!({"role": "system", "content": m.content}),
        Role::User => json!({"role": "user", "content": m.content}),
        Role::Tool => json!({
            "role": "tool",
            "tool_call_id": m.tool_call_id.as_deref().unwrap_or_default(),
            "content": m.content,
        }),
        Role::Assistant => {
            let mut out = Map::new();
            out.insert("role".into(), json!("assistant"));
            // A reply that only called tools goes back with empty text rather than null:
            // OpenAI accepts both, and some compatible servers (llama-cpp-python) reject null.
            out.insert("content".into(), json!(m.content));
            if !m.tool_calls.is_empty() {
                let calls: Vec<Value> = m
                    .tool_calls
                    .iter()
                    .map(|c| {
                        json!({"id": c.id, "type": "function", "function": {
                            "name": c.name, "arguments": arguments_text(&c.arguments),
                        }})
                    })
                    .collect();
                out.insert("tool_calls".into(), Value::Array(calls));
            }
            Value::Object(out)
        }
    }
}

/// An `{"error": ...}` object inside the stream. Server-side and overload errors are worth
/// retrying; anything else (context length, invalid request) is not.
fn stream_error(endpoint: &Endpoint, error: &Value) -> ModelError {
    let message = match error {
        Value::String(s) => s.clone(),
        other => other
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| other.to_string()),
    };
    let kind = ["type", "code"]
        .iter()
        .find_map(|k| error.get(k).and_then(Value::as_str))
        .unwrap_or("error")
        .to_string();
    let retryable = matches!(
        kind.as_str(),
        "server_error"
            | "api_error"
            | "overloaded_error"
            | "rate_limit_exceeded"
            | "rate_limit_error"
    );
    endpoint.remote(&kind, &message, retryable)
}

/// A whole (non-streamed) chat completion.
#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<CompletionChoice>,
    #[serde(default)]
    usage: Option<CompletionUsage>,
    /// Some servers answer a failure with 200 and an error object.
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct CompletionChoice {
    #[serde(default)]
    index: u64,
    message: CompletionMessage,
}

#[derive(Deserialize)]
struct CompletionMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default, alias = "reasoning")]
    reasoning_content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<CompletionToolCall>,
}

#[derive(Deserialize)]
struct CompletionToolCall {
    #[serde(default)]
    id: Option<String>,
    function: CompletionFunction,
}

#[derive(Deserialize)]
struct CompletionFunction {
    name: String,
    /// A JSON text (OpenAI), or an object (some compatible servers).
    #[serde(default)]
    arguments: Option<Value>,
}

#[derive(Deserialize)]
struct CompletionUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// A tool call being assembled from its pieces.
#[derive(Default)]
struct Slot {
    id: String,
    name: String,
    arguments: String,
}

/// One piece of a tool call: a streamed fragment, or a whole call of a completion.
struct Piece<'a> {
    index: u64,
    id: Option<&'a str>,
    name: Option<&'a str>,
    fragment: &'a str,
}

/// The reply assembled from the chunks of one attempt.
struct Assembly {
    content: String,
    reasoning: String,
    slots: Vec<Slot>,
    /// Wire `index` -> position in `slots`.
    by_index: HashMap<u64, usize>,
    usage: Option<Usage>,
    model: Option<String>,
    finished: bool,
    cap: SizeCap,
}

impl Assembly {
    fn new(limit: usize) -> Self {
        Assembly {
            content: String::new(),
            reasoning: String::new(),
            slots: Vec::new(),
            by_index: HashMap::new(),
            usage: None,
            model: None,
            finished: false,
            cap: SizeCap::new(limit),
        }
    }

    fn apply(
        &mut self,
        chunk: &Value,
        deltas: &dyn DeltaSink,
        endpoint: &Endpoint,
    ) -> Result<(), ModelError> {
        if self.model.is_none()
            && let Some(model) = chunk
                .get("model")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
        {
            self.model = Some(model.to_string());
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            let count = |k: &str| usage.get(k).and_then(Value::as_u64).unwrap_or(0);
            self.usage = Some(Usage {
                input_tokens: count("prompt_tokens"),
                output_tokens: count("completion_tokens"),
            });
        }
        let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
            return Ok(());
        };
        // We ask for one choice; a server that sends more gets its first one used.
        for choice in choices
            .iter()
            .filter(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
        {
            if choice.get("finish_reason").is_some_and(|r| !r.is_null()) {
                self.finished = true;
            }
            let Some(delta) = choice.get("delta") else {
                continue;
            };
            if let Some(text) = delta.get("content").and_then(Value::as_str) {
                self.text(text, deltas, endpoint)?;
            }
            if let Some(text) = ["reasoning_content", "reasoning"]
                .iter()
                .find_map(|k| delta.get(k).and_then(Value::as_str))
            {
                self.reasoning(text, deltas, endpoint)?;
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for (position, piece) in calls.iter().enumerate() {
                    self.wire_piece(position, piece, deltas, endpoint)?;
                }
            }
        }
        Ok(())
    }

    /// A whole completion, as if it had come as one chunk: the same cap, the same deltas.
    fn apply_completion(
        &mut self,
        completion: Completion,
        deltas: &dyn DeltaSink,
        endpoint: &Endpoint,
    ) -> Result<(), ModelError> {
        self.model = completion.model.filter(|m| !m.is_empty());
        self.usage = completion.usage.map(|u| Usage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
        });
        // We ask for one choice; a server that sends more gets its first one used.
        let Some(choice) = completion.choices.into_iter().find(|c| c.index == 0) else {
            return Err(endpoint.bad_body(200, "a completion without a choice", b""));
        };
        self.finished = true;
        let message = choice.message;
        self.reasoning(
            message.reasoning_content.as_deref().unwrap_or(""),
            deltas,
            endpoint,
        )?;
        self.text(message.content.as_deref().unwrap_or(""), deltas, endpoint)?;
        for (position, call) in message.tool_calls.into_iter().enumerate() {
            let arguments = match call.function.arguments {
                Some(Value::String(text)) => text,
                Some(Value::Null) | None => String::new(),
                Some(object) => object.to_string(),
            };
            let piece = Piece {
                index: position as u64,
                id: call.id.as_deref(),
                name: Some(call.function.name.as_str()),
                fragment: &arguments,
            };
            self.tool_piece(piece, deltas, endpoint)?;
        }
        Ok(())
    }

    fn text(
        &mut self,
        text: &str,
        deltas: &dyn DeltaSink,
        endpoint: &Endpoint,
    ) -> Result<(), ModelError> {
        if !text.is_empty() {
            self.cap.add(text.len(), endpoint)?;
            self.content.push_str(text);
            deltas.text(text);
        }
        Ok(())
    }

    fn reasoning(
        &mut self,
        text: &str,
        deltas: &dyn DeltaSink,
        endpoint: &Endpoint,
    ) -> Result<(), ModelError> {
        if !text.is_empty() {
            self.cap.add(text.len(), endpoint)?;
            self.reasoning.push_str(text);
            deltas.reasoning(text);
        }
        Ok(())
    }

    /// A streamed piece of a tool call, as sent.
    fn wire_piece(
        &mut self,
        position: usize,
        piece: &Value,
        deltas: &dyn DeltaSink,
        endpoint: &Endpoint,
    ) -> Result<(), ModelError> {
        let function = piece.get("function");
        let piece = Piece {
            index: piece
                .get("index")
                .and_then(Value::as_u64)
                .unwrap_or(position as u64),
            id: piece.get("id").and_then(Value::as_str),
            name: function.and_then(|f| f.get("name")).and_then(Value::as_str),
            fragment: function
                .and_then(|f| f.get("arguments"))
                .and_then(Value::as_str)
                .unwrap_or(""),
        };
        self.tool_piece(piece, deltas, endpoint)
    }

    fn tool_piece(
        &mut self,
        piece: Piece<'_>,
        deltas: &dyn DeltaSink,
        endpoint: &Endpoint,
    ) -> Result<(), ModelError> {
        let index = piece.index;
        let id = piece.id.filter(|s| !s.is_empty());
        let name = piece.name.filter(|s| !s.is_empty());
        let fragment = piece.fragment;
        let existing = self.by_index.get(&index).copied();
        // A new id on a known index is a new call: some servers number every call 0.
        let slot = match (existing, id) {
            (Some(at), Some(id)) if !self.slots[at].id.is_empty() && self.slots[at].id != id => {
                None
            }
            (at, _) => at,
        };
        let at = match slot {
            Some(at) => at,
            None => {
                self.slots.push(Slot::default());
                self.by_index.insert(index, self.slots.len() - 1);
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[at];
        if let Some(id) = id
            && slot.id.is_empty()
        {
            slot.id = id.to_string();
        }
        if let Some(name) = name
            && slot.name.is_empty()
        {
            self.cap.add(name.len(), endpoint)?;
            slot.name = name.to_string();
        }
        if !fragment.is_empty() {
            self.cap.add(fragment.len(), endpoint)?;
            slot.arguments.push_str(fragment);
            deltas.tool_arguments(at, &slot.name, fragment);
        }
        Ok(())
    }

    fn finish(self, request: &ModelRequest, configured_model: &str) -> ModelResponse {
        let tool_calls: Vec<ToolCall> = self
            .slots
            .into_iter()
            .enumerate()
            .map(|(i, slot)| ToolCall {
                id: if slot.id.is_empty() {
                    format!("call_{}", i + 1)
                } else {
                    slot.id
                },
                name: slot.name,
                arguments: parse_arguments(&slot.arguments),
            })
            .collect();
        let usage = self
            .usage
            .unwrap_or_else(|| estimate_usage(request, &self.content, &tool_calls));
        let reasoning = if self.reasoning.is_empty() {
            Vec::new()
        } else {
            vec![Reasoning {
                text: self.reasoning,
                signature: None,
                redacted: false,
            }]
        };
        ModelResponse {
            content: self.content,
            tool_calls,
            usage,
            model: self.model.unwrap_or_else(|| configured_model.to_string()),
            reasoning,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_official_api_gets_max_completion_tokens_and_others_max_tokens() {
        let request = ModelRequest {
            step: 1,
            messages: Arc::new(vec![Message::new(Role::User, "hi")]),
            tools: Arc::new(Vec::new()),
        };
        let official = ProviderSettings {
            openai_api_key: Some("sk-x".into()),
            ..ProviderSettings::default()
        };
        let body = OpenAiProvider::new("o3-mini", &official)
            .unwrap()
            .body(&request)
            .unwrap();
        assert_eq!(body["max_completion_tokens"], 4096);
        assert!(body.get("max_tokens").is_none());
        assert!(body.get("tools").is_none(), "no tools offered, none sent");
        let local = ProviderSettings {
            openai_base_url: "http://127.0.0.1:8080/v1/".into(),
            ..ProviderSettings::default()
        };
        let provider = OpenAiProvider::new("llama", &local).unwrap();
        assert_eq!(
            provider.endpoint.url,
            "http://127.0.0.1:8080/v1/chat/completions"
        );
        assert_eq!(provider.body(&request).unwrap()["max_tokens"], 4096);
    }

    #[test]
    fn providers_of_one_configuration_share_one_http_client() {
        // Two runs of the same provider configuration: one client, so the TLS root store
        // is loaded and the connection pool started once.
        let settings = ProviderSettings {
            openai_base_url: "http://127.0.0.1:8080/v1".into(),
            connect_timeout: std::time::Duration::from_millis(4321),
            ..ProviderSettings::default()
        };
        let first = OpenAiProvider::new("a", &settings).unwrap();
        let second = OpenAiProvider::new("b", &settings).unwrap();
        assert!(Arc::ptr_eq(&first.client, &second.client));
        // Another configuration (other timeouts) gets a client of its own.
        let other = ProviderSettings {
            request_timeout: std::time::Duration::from_millis(98_765),
            ..settings
        };
        let third = OpenAiProvider::new("a", &other).unwrap();
        assert!(!Arc::ptr_eq(&first.client, &third.client));
    }
}
