//! Anthropic Messages API (`POST {base}/v1/messages`, streamed as SSE events).
//!
//! Mapping of the history: leading system messages become the top-level `system` string
//! (a later system message is sent as user text, since the API has no system role in
//! `messages`); tool results become `tool_result` blocks of a user message, consecutive
//! ones together; an assistant message becomes blocks in the order thinking /
//! redacted_thinking (signed, sent back verbatim: the API rejects a tool-use turn whose
//! thinking was dropped) -> text -> tool_use. Reasoning without a signature (from another
//! provider) cannot be verified by Anthropic and is not sent. Consecutive messages of one
//! role are merged into one message, and empty text is left out (the API rejects both).

use crate::convert::{arguments_object, forced_choice, history, parse_arguments, sends_tools};
use crate::http::{Endpoint, SharedClient, SizeCap, SseReader, client, parse_url, post_json};
use crate::{DeltaSink, ModelError, ProviderSettings, ToolChoice, estimate_usage};
use praxis_core::{Message, ModelRequest, ModelResponse, Reasoning, Role, ToolCall, Usage};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

const API_VERSION: &str = "2023-06-01";

/// A Claude model behind the Anthropic Messages API (`anthropic:MODEL`).
#[derive(Clone, Debug)]
pub struct AnthropicProvider {
    model: String,
    label: String,
    settings: Arc<ProviderSettings>,
    client: SharedClient,
    endpoint: Endpoint,
    api_key: String,
}

impl AnthropicProvider {
    /// A provider for `model` at `settings.anthropic_base_url`; needs `anthropic_api_key`.
    pub fn new(model: &str, settings: &ProviderSettings) -> Result<Self, ModelError> {
        let base = settings.anthropic_base_url.trim().trim_end_matches('/');
        parse_url(base, "ANTHROPIC_BASE_URL")?;
        let url = format!("{base}/v1/messages");
        let Some(api_key) = settings.anthropic_api_key.clone() else {
            return Err(ModelError::MissingKey {
                provider: "anthropic".into(),
                variable: "ANTHROPIC_API_KEY",
                url,
            });
        };
        if let Some(budget) = settings.thinking_budget {
            if settings.max_output_tokens <= budget {
                return Err(ModelError::Config(format!(
                    "max_output_tokens ({}) must be larger than thinking_budget ({budget}): \
                     Anthropic counts thinking within max_tokens",
                    settings.max_output_tokens
                )));
            }
            if settings.tool_choice != ToolChoice::Auto {
                return Err(ModelError::Config(format!(
                    "Anthropic does not allow tool_choice `{}` together with extended thinking; \
                     set tool_choice to auto or unset thinking_budget",
                    settings.tool_choice
                )));
            }
        }
        Ok(AnthropicProvider {
            model: model.to_string(),
            label: format!("anthropic:{model}"),
            settings: Arc::new(settings.clone()),
            client: client(settings)?,
            endpoint: Endpoint {
                provider: "anthropic",
                url,
                key_variable: "ANTHROPIC_API_KEY",
            },
            api_key,
        })
    }

    fn body(&self, request: &ModelRequest) -> Result<Value, ModelError> {
        let settings = &self.settings;
        let (system, messages) = wire_messages(&history(request, settings));
        let mut body = json!({
            "model": self.model,
            "max_tokens": settings.max_output_tokens,
            "stream": true,
            "messages": messages,
        });
        if let Some(system) = system {
            body["system"] = json!(system);
        }
        if let Some(budget) = settings.thinking_budget {
            body["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
        }
        if sends_tools(request, settings) {
            let tools: Vec<Value> = request
                .tools
                .iter()
                .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
                .collect();
            body["tools"] = Value::Array(tools);
            match forced_choice(request, settings)? {
                Some(ToolChoice::Required) => body["tool_choice"] = json!({"type": "any"}),
                Some(ToolChoice::Tool(name)) => {
                    body["tool_choice"] = json!({"type": "tool", "name": name})
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
        let headers = [
            ("x-api-key", self.api_key.clone()),
            ("anthropic-version", API_VERSION.to_string()),
        ];
        let response =
            post_json(&self.client, &self.endpoint, &headers, body, &self.settings).await?;
        let mut reader = SseReader::new(response, &self.endpoint, &self.settings);
        let mut reply = Assembly::new(self.settings.max_response_bytes);
        loop {
            let Some(event) = reader.next().await? else {
                return Err(reader.ended_early());
            };
            let data = event.data.trim();
            if data.is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(data).map_err(|e| reader.bad_data(&e, data))?;
            if reply.apply(&value, deltas, &self.endpoint)? {
                break;
            }
        }
        Ok(reply.finish(request, &self.model))
    }
}

http_provider!(AnthropicProvider, "anthropic");

/// The `system` string and the `messages` array of a history.
fn wire_messages(messages: &[Message]) -> (Option<String>, Vec<Value>) {
    let mut system: Vec<&str> = Vec::new();
    let mut out: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut leading = true;
    for m in messages {
        let (role, blocks) = match m.role {
            Role::System if leading => {
                system.push(&m.content);
                continue;
            }
            Role::System | Role::User => ("user", text_block(&m.content).into_iter().collect()),
            Role::Tool => {
                let mut block = json!({
                    "type": "tool_result",
                    "tool_use_id": m.tool_call_id.as_deref().unwrap_or_default(),
                });
                if !m.content.is_empty() {
                    block["content"] = json!(m.content);
                }
                ("user", vec![block])
            }
            Role::Assistant => ("assistant", assistant_blocks(m)),
        };
        leading = false;
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => out.push((role, blocks)),
        }
    }
    let system = (!system.is_empty()).then(|| system.join("\n\n"));
    let messages = out
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    (system, messages)
}

fn text_block(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({"type": "text", "text": text}))
}

fn assistant_blocks(m: &Message) -> Vec<Value> {
    let mut blocks = Vec::new();
    for r in &m.reasoning {
        if r.redacted {
            blocks.push(json!({"type": "redacted_thinking", "data": r.text}));
        } else if let Some(signature) = &r.signature {
            blocks.push(json!({"type": "thinking", "thinking": r.text, "signature": signature}));
        }
    }
    blocks.extend(text_block(&m.content));
    for call in &m.tool_calls {
        blocks.push(json!({
            "type": "tool_use",
            "id": call.id,
            "name": call.name,
            "input": arguments_object(&call.arguments),
        }));
    }
    blocks
}

enum Block {
    Text(String),
    Tool {
        id: String,
        name: String,
        /// `input_json_delta` fragments.
        json: String,
        /// The `input` of `content_block_start`, used when no fragments follow.
        input: Value,
        /// Position among the reply's tool calls, for the delta sink.
        call: usize,
    },
    Thinking {
        text: String,
        signature: String,
    },
    Redacted(String),
}

struct Assembly {
    blocks: BTreeMap<u64, Block>,
    calls: usize,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    model: Option<String>,
    cap: SizeCap,
}

fn count(usage: &Value, key: &str) -> Option<u64> {
    usage.get(key).and_then(Value::as_u64)
}

/// All input tokens of a usage object: cache writes and reads are input too.
fn input_tokens(usage: &Value) -> Option<u64> {
    let base = count(usage, "input_tokens")?;
    Some(
        base + count(usage, "cache_creation_input_tokens").unwrap_or(0)
            + count(usage, "cache_read_input_tokens").unwrap_or(0),
    )
}

impl Assembly {
    fn new(limit: usize) -> Self {
        Assembly {
            blocks: BTreeMap::new(),
            calls: 0,
            input_tokens: None,
            output_tokens: None,
            model: None,
            cap: SizeCap::new(limit),
        }
    }

    /// Applies one event; true at `message_stop`.
    fn apply(
        &mut self,
        event: &Value,
        deltas: &dyn DeltaSink,
        endpoint: &Endpoint,
    ) -> Result<bool, ModelError> {
        let index = event.get("index").and_then(Value::as_u64).unwrap_or(0);
        let str_of =
            |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        match event.get("type").and_then(Value::as_str).unwrap_or("") {
            "message_start" => {
                let message = event.get("message").unwrap_or(&Value::Null);
                if let Some(model) = message
                    .get("model")
                    .and_then(Value::as_str)
                    .filter(|m| !m.is_empty())
                {
                    self.model = Some(model.to_string());
                }
                if let Some(usage) = message.get("usage") {
                    self.input_tokens = input_tokens(usage).or(self.input_tokens);
                    self.output_tokens = count(usage, "output_tokens").or(self.output_tokens);
                }
            }
            "content_block_start" => {
                let start = event.get("content_block").unwrap_or(&Value::Null);
                let block = match start.get("type").and_then(Value::as_str).unwrap_or("") {
                    "tool_use" => {
                        let name = str_of(start, "name");
                        self.cap.add(name.len(), endpoint)?;
                        self.calls += 1;
                        Block::Tool {
                            id: str_of(start, "id"),
                            name,
                            json: String::new(),
                            input: start.get("input").cloned().unwrap_or(Value::Null),
                            call: self.calls - 1,
                        }
                    }
                    "thinking" => {
                        let text = str_of(start, "thinking");
                        self.cap.add(text.len(), endpoint)?;
                        if !text.is_empty() {
                            deltas.reasoning(&text);
                        }
                        Block::Thinking {
                            text,
                            signature: str_of(start, "signature"),
                        }
                    }
                    "redacted_thinking" => {
                        let data = str_of(start, "data");
                        self.cap.add(data.len(), endpoint)?;
                        Block::Redacted(data)
                    }
                    // "text" and any block type added later: keep its text, if any.
                    _ => {
                        let text = str_of(start, "text");
                        self.cap.add(text.len(), endpoint)?;
                        if !text.is_empty() {
                            deltas.text(&text);
                        }
                        Block::Text(text)
                    }
                };
                self.blocks.insert(index, block);
            }
            "content_block_delta" => {
                let delta = event.get("delta").unwrap_or(&Value::Null);
                self.delta(index, delta, deltas, endpoint)?;
            }
            "message_delta" => {
                if let Some(usage) = event.get("usage") {
                    // Counts here are cumulative for the message.
                    self.output_tokens = count(usage, "output_tokens").or(self.output_tokens);
                    self.input_tokens = input_tokens(usage).or(self.input_tokens);
                }
            }
            "message_stop" => return Ok(true),
            "error" => {
                let error = event.get("error").unwrap_or(&Value::Null);
                let kind = error.get("type").and_then(Value::as_str).unwrap_or("error");
                let message = error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("(no message)");
                let retryable =
                    matches!(kind, "overloaded_error" | "api_error" | "rate_limit_error");
                return Err(endpoint.remote(kind, message, retryable));
            }
            // ping, content_block_stop, and event types added later.
            _ => {}
        }
        Ok(false)
    }

    fn delta(
        &mut self,
        index: u64,
        delta: &Value,
        deltas: &dyn DeltaSink,
        endpoint: &Endpoint,
    ) -> Result<(), ModelError> {
        let kind = delta.get("type").and_then(Value::as_str).unwrap_or("");
        let field = match kind {
            "text_delta" => "text",
            "input_json_delta" => "partial_json",
            "thinking_delta" => "thinking",
            "signature_delta" => "signature",
            _ => return Ok(()),
        };
        let Some(piece) = delta.get(field).and_then(Value::as_str) else {
            return Ok(());
        };
        self.cap.add(piece.len(), endpoint)?;
        // A delta for a block whose start was not seen opens a block of the matching kind.
        let block = self.blocks.entry(index).or_insert_with(|| match kind {
            "input_json_delta" => {
                self.calls += 1;
                Block::Tool {
                    id: String::new(),
                    name: String::new(),
                    json: String::new(),
                    input: Value::Null,
                    call: self.calls - 1,
                }
            }
            "thinking_delta" | "signature_delta" => Block::Thinking {
                text: String::new(),
                signature: String::new(),
            },
            _ => Block::Text(String::new()),
        });
        match (kind, block) {
            ("text_delta", Block::Text(text)) => {
                text.push_str(piece);
                deltas.text(piece);
            }
            (
                "input_json_delta",
                Block::Tool {
                    json, name, call, ..
                },
            ) => {
                json.push_str(piece);
                if !piece.is_empty() {
                    deltas.tool_arguments(*call, name, piece);
                }
            }
            ("thinking_delta", Block::Thinking { text, .. }) => {
                text.push_str(piece);
                deltas.reasoning(piece);
            }
            ("signature_delta", Block::Thinking { signature, .. }) => signature.push_str(piece),
            _ => {
                return Err(endpoint.bad_body(
                    200,
                    format!("a {kind} for content block {index}, which is not of that kind"),
                    delta.to_string().as_bytes(),
                ));
            }
        }
        Ok(())
    }

    fn finish(self, request: &ModelRequest, configured_model: &str) -> ModelResponse {
        let mut content = String::new();
        let mut tool_calls = Vec::new();
        let mut reasoning = Vec::new();
        for block in self.blocks.into_values() {
            match block {
                Block::Text(text) => content.push_str(&text),
                Block::Tool {
                    id,
                    name,
                    json,
                    input,
                    ..
                } => {
                    let arguments = if json.trim().is_empty() && input.is_object() {
                        input
                    } else {
                        parse_arguments(&json)
                    };
                    let id = if id.is_empty() {
                        format!("call_{}", tool_calls.len() + 1)
                    } else {
                        id
                    };
                    tool_calls.push(ToolCall {
                        id,
                        name,
                        arguments,
                    });
                }
                Block::Thinking { text, signature } => reasoning.push(Reasoning {
                    text,
                    signature: (!signature.is_empty()).then_some(signature),
                    redacted: false,
                }),
                Block::Redacted(data) => reasoning.push(Reasoning {
                    text: data,
                    signature: None,
                    redacted: true,
                }),
            }
        }
        let usage = match (self.input_tokens, self.output_tokens) {
            (None, None) => estimate_usage(request, &content, &tool_calls),
            (input, output) => {
                let estimate = estimate_usage(request, &content, &tool_calls);
                Usage {
                    input_tokens: input.unwrap_or(estimate.input_tokens),
                    output_tokens: output.unwrap_or(estimate.output_tokens),
                }
            }
        };
        ModelResponse {
            content,
            tool_calls,
            usage,
            model: self.model.unwrap_or_else(|| configured_model.to_string()),
            reasoning,
        }
    }
}
