//! Settings shared by the HTTP providers: endpoints, keys, protocol, limits and retries.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Default OpenAI-compatible base URL; it includes `/v1`, the provider appends
/// `/chat/completions`.
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// Default Anthropic base URL; the provider appends `/v1/messages`.
pub const DEFAULT_ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";
/// Default Ollama address; the provider appends `/api/chat`.
pub const DEFAULT_OLLAMA_HOST: &str = "http://127.0.0.1:11434";

/// How the model is asked to act (native tool calls, or `<cmd>` text blocks); the same type
/// the run's spec records, so the prompt and the wire format agree.
pub use praxis_core::Protocol;

/// Whether the model must call a tool. Applies to the first model call of a run only
/// (`request.step == 1`); later calls are `auto` so the model can finish.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum ToolChoice {
    /// The model decides (the default).
    #[default]
    Auto,
    /// The model must call some tool.
    Required,
    /// The model must call this tool.
    Tool(String),
}

/// A setting value that is not one of the accepted words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingParseError(String);

impl FromStr for ToolChoice {
    type Err = SettingParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "" => Err(SettingParseError(
                "empty tool_choice: expected \"auto\", \"required\" or a tool name".into(),
            )),
            "auto" => Ok(ToolChoice::Auto),
            "required" => Ok(ToolChoice::Required),
            name => Ok(ToolChoice::Tool(name.to_string())),
        }
    }
}

impl fmt::Display for ToolChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToolChoice::Auto => f.write_str("auto"),
            ToolChoice::Required => f.write_str("required"),
            ToolChoice::Tool(name) => f.write_str(name),
        }
    }
}

impl From<ToolChoice> for String {
    fn from(choice: ToolChoice) -> String {
        choice.to_string()
    }
}

impl TryFrom<String> for ToolChoice {
    type Error = SettingParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// Retries of one provider call: jittered exponential backoff on transient failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (default 3; 1 disables retries).
    pub max_attempts: u32,
    /// Delay before the first retry, doubled per retry (default 500 ms).
    pub base_delay: Duration,
    /// Upper bound of any delay, including a server's `Retry-After` (default 20 s).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
        }
    }
}

/// Settings of the HTTP providers. `Default` gives the documented defaults with no keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderSettings {
    /// `OPENAI_API_KEY`. Not needed when `openai_base_url` is on loopback.
    pub openai_api_key: Option<String>,
    /// `OPENAI_BASE_URL`, including `/v1` (default `https://api.openai.com/v1`).
    pub openai_base_url: String,
    /// Ask the OpenAI-compatible server for a streamed reply (default true); `false` sends
    /// `"stream": false` (a reply that arrives as one JSON completion is accepted either way).
    pub openai_stream: bool,
    /// `ANTHROPIC_API_KEY`.
    pub anthropic_api_key: Option<String>,
    /// `ANTHROPIC_BASE_URL`, without `/v1` (default `https://api.anthropic.com`).
    pub anthropic_base_url: String,
    /// `OLLAMA_HOST`: `http://host:port` or `host:port` (default `http://127.0.0.1:11434`).
    pub ollama_host: String,
    /// Native tool calls (default) or the `<cmd>` text protocol.
    pub protocol: Protocol,
    /// Tool choice of the first model call of a run (default auto).
    pub tool_choice: ToolChoice,
    /// Limit of a whole request, streaming included (default 300 s).
    pub request_timeout: Duration,
    /// Limit of establishing the connection (default 10 s).
    pub connect_timeout: Duration,
    /// Longest allowed gap between two chunks of a streamed reply (default 60 s).
    pub idle_timeout: Duration,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Output token limit sent with each request (default 4096; Anthropic requires one).
    pub max_output_tokens: u32,
    /// Cap on an assembled reply (text + reasoning + tool arguments) and on any single
    /// line of the stream, in bytes (default 4 MiB); beyond it the call fails.
    pub max_response_bytes: usize,
    /// The model's context window in tokens, if known (reported by `Provider::context_window`).
    pub context_window: Option<u64>,
    /// Anthropic extended thinking `budget_tokens`; thinking is off when unset.
    pub thinking_budget: Option<u32>,
    /// The presets' variables that are set (base URLs and keys, e.g. `VLLM_BASE_URL`,
    /// `HF_TOKEN`; see [`crate::PRESETS`]).
    pub preset_vars: std::collections::BTreeMap<String, String>,
}

impl Default for ProviderSettings {
    fn default() -> Self {
        ProviderSettings {
            openai_api_key: None,
            openai_base_url: DEFAULT_OPENAI_BASE_URL.into(),
            openai_stream: true,
            anthropic_api_key: None,
            anthropic_base_url: DEFAULT_ANTHROPIC_BASE_URL.into(),
            ollama_host: DEFAULT_OLLAMA_HOST.into(),
            protocol: Protocol::Tools,
            tool_choice: ToolChoice::Auto,
            request_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            max_output_tokens: 4096,
            max_response_bytes: 4 * 1024 * 1024,
            context_window: None,
            thinking_budget: None,
            preset_vars: Default::default(),
        }
    }
}

impl ProviderSettings {
    /// Defaults overridden by OPENAI_API_KEY, OPENAI_BASE_URL, ANTHROPIC_API_KEY,
    /// ANTHROPIC_BASE_URL, OLLAMA_HOST and the presets' variables. Empty variables count as unset.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Like [`ProviderSettings::from_env`], reading variables through `var` (for tests and
    /// for callers with their own environment map).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| {
            var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let defaults = ProviderSettings::default();
        ProviderSettings {
            openai_api_key: get("OPENAI_API_KEY"),
            openai_base_url: get("OPENAI_BASE_URL").unwrap_or(defaults.openai_base_url.clone()),
            anthropic_api_key: get("ANTHROPIC_API_KEY"),
            anthropic_base_url: get("ANTHROPIC_BASE_URL")
                .unwrap_or(defaults.anthropic_base_url.clone()),
            ollama_host: get("OLLAMA_HOST").unwrap_or(defaults.ollama_host.clone()),
            preset_vars: crate::preset_variables()
                .filter_map(|name| Some((name.to_string(), get(name)?)))
                .collect(),
            ..defaults
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for p in ["tools", "cmd"] {
            assert_eq!(p.parse::<Protocol>().unwrap().to_string(), p);
        }
        assert!(
            "xml"
                .parse::<Protocol>()
                .unwrap_err()
                .to_string()
                .contains("\"xml\"")
        );
        assert_eq!("auto".parse::<ToolChoice>().unwrap(), ToolChoice::Auto);
        assert_eq!(
            "required".parse::<ToolChoice>().unwrap(),
            ToolChoice::Required
        );
        assert_eq!(
            "fs_read".parse::<ToolChoice>().unwrap(),
            ToolChoice::Tool("fs_read".into())
        );
        assert!("".parse::<ToolChoice>().is_err());
        assert_eq!(
            serde_json::to_string(&ToolChoice::Tool("grep".into())).unwrap(),
            "\"grep\""
        );
        assert_eq!(
            serde_json::from_str::<ToolChoice>("\"required\"").unwrap(),
            ToolChoice::Required
        );
        assert_eq!(serde_json::to_string(&Protocol::Cmd).unwrap(), "\"cmd\"");
        assert_eq!(
            serde_json::from_str::<Protocol>("\"tools\"").unwrap(),
            Protocol::Tools
        );
    }

    #[test]
    fn env_overrides_defaults_and_empty_is_unset() {
        let s = ProviderSettings::from_vars(|k| match k {
            "OPENAI_API_KEY" => Some("sk-1".into()),
            "OPENAI_BASE_URL" => Some("http://localhost:8080/v1".into()),
            "ANTHROPIC_API_KEY" => Some("  ".into()),
            "OLLAMA_HOST" => Some("box:11434".into()),
            _ => None,
        });
        assert_eq!(s.openai_api_key.as_deref(), Some("sk-1"));
        assert_eq!(s.openai_base_url, "http://localhost:8080/v1");
        assert_eq!(s.anthropic_api_key, None);
        assert_eq!(s.anthropic_base_url, DEFAULT_ANTHROPIC_BASE_URL);
        assert_eq!(s.ollama_host, "box:11434");
        assert_eq!(s.max_output_tokens, 4096);
        assert_eq!(s.retry.max_attempts, 3);
    }
}
