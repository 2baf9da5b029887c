//! The HTTP providers against a local server speaking each provider's real wire format.

#[path = "../common/mod.rs"]
mod common;

mod anthropic;
mod failover;
mod fuzz;
mod ollama;
mod openai;
mod presets;
mod structured;

use praxis_core::{Effect, Message, ModelRequest, Role, ToolCall, ToolSpec};
use praxis_models::{DeltaSink, ProviderSettings, RetryPolicy, estimate_tokens};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Records every delta.
#[derive(Default)]
pub struct Sink {
    pub text: Mutex<Vec<String>>,
    pub reasoning: Mutex<Vec<String>>,
    pub arguments: Mutex<Vec<(usize, String, String)>>,
}

impl DeltaSink for Sink {
    fn text(&self, delta: &str) {
        self.text.lock().unwrap().push(delta.to_string());
    }
    fn reasoning(&self, delta: &str) {
        self.reasoning.lock().unwrap().push(delta.to_string());
    }
    fn tool_arguments(&self, index: usize, name: &str, fragment: &str) {
        self.arguments
            .lock()
            .unwrap()
            .push((index, name.to_string(), fragment.to_string()));
    }
}

impl Sink {
    pub fn text(&self) -> Vec<String> {
        self.text.lock().unwrap().clone()
    }
    pub fn reasoning(&self) -> Vec<String> {
        self.reasoning.lock().unwrap().clone()
    }
    /// The argument fragments of call `index`, concatenated.
    pub fn arguments_of(&self, index: usize) -> String {
        self.arguments
            .lock()
            .unwrap()
            .iter()
            .filter(|(i, _, _)| *i == index)
            .map(|(_, _, f)| f.as_str())
            .collect()
    }
}

/// Settings pointing every provider at `url` with fast retries.
pub fn settings(url: &str) -> ProviderSettings {
    ProviderSettings {
        openai_base_url: format!("{url}/v1"),
        anthropic_base_url: url.to_string(),
        anthropic_api_key: Some("sk-ant-test".into()),
        ollama_host: url.to_string(),
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(20),
        },
        ..ProviderSettings::default()
    }
}

pub fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "fs_read".into(),
            description: "Read a file".into(),
            effect: Effect::Read,
            parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
        },
        ToolSpec {
            name: "grep".into(),
            description: "Search files".into(),
            effect: Effect::Read,
            parameters: json!({"type": "object", "properties": {"pattern": {"type": "string"}}, "required": ["pattern"]}),
        },
    ]
}

/// A first-step request: system prompt and task, tools on offer.
pub fn first_request() -> ModelRequest {
    ModelRequest {
        step: 1,
        messages: Arc::new(vec![
            Message::new(Role::System, "You are a coding agent."),
            Message::new(Role::User, "Summarize the README."),
        ]),
        tools: Arc::new(tools()),
    }
}

/// A later request whose history holds signed reasoning, two tool calls (one with invalid
/// arguments, kept as the string the model sent) and their results.
pub fn later_request() -> ModelRequest {
    let mut messages = first_request().messages.as_ref().clone();
    messages.push(Message {
        role: Role::Assistant,
        content: "Reading.".into(),
        tool_calls: vec![
            ToolCall {
                id: "call_1".into(),
                name: "fs_read".into(),
                arguments: json!({"path": "README.md"}),
            },
            ToolCall {
                id: "call_2".into(),
                name: "grep".into(),
                arguments: json!("{\"pattern\": \"TO"),
            },
        ],
        tool_call_id: None,
        reasoning: vec![
            praxis_core::Reasoning {
                text: "I should read it.".into(),
                signature: Some("sig-abc".into()),
                redacted: false,
            },
            praxis_core::Reasoning {
                text: "opaque-data".into(),
                signature: None,
                redacted: true,
            },
        ],
    });
    messages.push(Message::tool_result("call_1", "# Demo\nHello."));
    messages.push(Message::tool_result(
        "call_2",
        "rejected: arguments are not a JSON object",
    ));
    ModelRequest {
        step: 2,
        messages: Arc::new(messages),
        tools: Arc::new(tools()),
    }
}

/// The local estimate of a request's input tokens (no tool calls in its history).
pub fn estimated_input(request: &ModelRequest) -> u64 {
    request
        .messages
        .iter()
        .map(|m| {
            estimate_tokens(&m.content)
                + m.tool_calls
                    .iter()
                    .map(|c| estimate_tokens(&c.name) + estimate_tokens(&c.arguments.to_string()))
                    .sum::<u64>()
        })
        .sum()
}
