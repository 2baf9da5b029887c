//! The shape of `praxis.toml`: one struct per table, with the built-in defaults.

use praxis_core::{PriceTable, Protocol};
use praxis_models::ProviderSettings;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub model: ModelConfig,
    /// Tiers: a name usable as `--provider` -> provider specs tried in order (failover).
    pub models: BTreeMap<String, Vec<String>>,
    pub providers: ProvidersConfig,
    /// USD per million tokens by model name (merged over `$PRAXIS_HOME/prices.toml`).
    pub prices: PriceTable,
    pub limits: LimitsConfig,
    pub compaction: CompactionConfig,
    /// Tools besides the built-ins (home file or environment only).
    pub tools: ToolsConfig,
    /// MCP servers whose tools runs are offered (home file only; see [`crate::mcp_config`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mcp_servers: Vec<crate::mcp_config::McpServerConfig>,
}

/// `[tools]`: where manifest-backed tools come from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToolsConfig {
    /// Directories of `*.toml` tool manifests (relative ones from the data dir), before
    /// those in `PRAXIS_TOOL_MANIFEST_DIRS`.
    pub manifest_dirs: Vec<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// `mock`, `scripted`, `openai:MODEL`, `anthropic:MODEL`, `ollama:MODEL`, a tier name, or
    /// a comma-separated failover list.
    pub provider: String,
    pub protocol: Protocol,
    /// `auto`, `required` or a tool name; applies to the first model call.
    pub tool_choice: String,
    /// Tokens; default by provider kind (openai 128000, anthropic 200000, ollama 32768).
    pub context_window: Option<u64>,
    pub max_output_tokens: u32,
    pub request_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    /// Attempts per call, the first included (1 disables retries).
    pub max_attempts: u32,
    /// Anthropic extended thinking budget in tokens (off when unset).
    pub thinking_budget: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProvidersConfig {
    pub openai: OpenAiEndpoint,
    pub anthropic: Endpoint,
    pub ollama: OllamaEndpoint,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Endpoint {
    pub base_url: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenAiEndpoint {
    pub base_url: String,
    /// `false`: ask for one JSON completion instead of a stream (for servers that stream
    /// badly or not at all).
    pub stream: bool,
}

impl Default for OpenAiEndpoint {
    fn default() -> Self {
        OpenAiEndpoint {
            base_url: praxis_models::DEFAULT_OPENAI_BASE_URL.into(),
            stream: true,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OllamaEndpoint {
    pub host: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_steps: u32,
    pub max_seconds: u64,
    /// Memory of one command and everything it starts, bytes (its cgroup's `memory.max`).
    pub command_memory_bytes: u64,
    /// Blob bytes one run stores at most; beyond it changes are recorded by hash and size.
    pub run_blob_bytes: u64,
    /// Blob bytes the data dir holds at most (a run stores at most what is left of it).
    pub data_dir_blob_bytes: u64,
}

/// The smallest memory bound a command may get (below it not even a shell starts).
pub const MIN_COMMAND_MEMORY_BYTES: u64 = 16 << 20;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactionConfig {
    /// `truncate` (drop older observations), `summarize` (the model summarizes) or `off`.
    pub mode: String,
    /// Compact when the conversation exceeds this share of the context window (percent).
    pub threshold_percent: u8,
    /// Observations always kept whole.
    pub keep_recent: u32,
}

impl Default for ModelConfig {
    fn default() -> Self {
        let settings = ProviderSettings::default();
        ModelConfig {
            provider: "mock".into(),
            protocol: Protocol::Tools,
            tool_choice: "auto".into(),
            context_window: None,
            max_output_tokens: settings.max_output_tokens,
            request_timeout_secs: settings.request_timeout.as_secs(),
            idle_timeout_secs: settings.idle_timeout.as_secs(),
            max_attempts: settings.retry.max_attempts,
            thinking_budget: None,
        }
    }
}

impl Default for ProvidersConfig {
    fn default() -> Self {
        ProvidersConfig {
            openai: OpenAiEndpoint::default(),
            anthropic: Endpoint {
                base_url: praxis_models::DEFAULT_ANTHROPIC_BASE_URL.into(),
            },
            ollama: OllamaEndpoint {
                host: praxis_models::DEFAULT_OLLAMA_HOST.into(),
            },
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let limits = praxis_core::Limits::default();
        let capture = praxis_tools::CaptureLimits::default();
        LimitsConfig {
            max_steps: limits.max_steps,
            max_seconds: limits.max_seconds.unwrap_or(1800),
            command_memory_bytes: praxis_tools::ResourceLimits::default().memory_bytes,
            run_blob_bytes: capture.max_run_blob_bytes,
            data_dir_blob_bytes: capture.max_data_dir_blob_bytes,
        }
    }
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            mode: "truncate".into(),
            threshold_percent: 80,
            keep_recent: 4,
        }
    }
}
