//! Praxis cognition: model providers behind one streaming trait.
//!
//! Providers are stateless: each call derives everything from `request.messages`, so a run
//! can be replayed or branched at any step by handing the same history back. Providers:
//! `mock` (the keyless default, a deterministic inspect-and-summarize agent that really uses
//! the tools it is offered), `scripted` (replays a JSON script of turns), and three HTTP
//! dialects: OpenAI-compatible chat completions (`openai:MODEL`, also llama.cpp, vLLM, LM
//! Studio), Anthropic messages (`anthropic:MODEL`) and Ollama's native chat
//! (`ollama:MODEL`). They stream text through a [`DeltaSink`] while they assemble the
//! [`ModelResponse`]; [`failover`] chains providers and [`complete_structured`] asks for a
//! reply matching a JSON Schema.

/// The [`Provider`] impl of an HTTP dialect: the type has `model`, `settings` and `label`
/// fields, `body(&request) -> Result<Value, ModelError>` and one streamed `attempt`, which
/// is retried (and the body built once) here.
macro_rules! http_provider {
    ($type:ty, $name:literal) => {
        http_provider!($type, |_provider| $name);
    };
    ($type:ty, $field:ident) => {
        http_provider!($type, |provider| provider.$field);
    };
    ($type:ty, |$this:ident| $name:expr) => {
        impl $crate::Provider for $type {
            fn name(&self) -> &str {
                let $this = self;
                $name
            }

            fn model(&self) -> &str {
                &self.model
            }

            fn context_window(&self) -> Option<u64> {
                self.settings.context_window
            }

            fn for_delegate(
                &self,
                _task: &str,
            ) -> Result<std::sync::Arc<dyn $crate::Provider>, $crate::ModelError> {
                Ok(std::sync::Arc::new(self.clone()))
            }

            fn complete<'a>(
                &'a self,
                request: &'a praxis_core::ModelRequest,
                deltas: &'a dyn $crate::DeltaSink,
            ) -> $crate::BoxFuture<'a, Result<praxis_core::ModelResponse, $crate::ModelError>> {
                Box::pin(async move {
                    let body = self.body(request)?;
                    $crate::http::with_retry(&self.label, &self.settings.retry, || {
                        self.attempt(request, &body, deltas)
                    })
                    .await
                })
            }
        }
    };
}

mod anthropic;
mod convert;
pub mod critic;
mod failover;
mod http;
mod mock;
mod ollama;
mod openai;
mod presets;
mod scripted;
mod settings;
mod structured;

pub use anthropic::AnthropicProvider;
pub use failover::{FailoverProvider, failover};
pub use mock::MockProvider;
pub use ollama::OllamaProvider;
pub use openai::OpenAiProvider;
pub use presets::{PRESETS, Preset, PresetKey, PresetUrl, preset, preset_variables};
pub use scripted::ScriptedProvider;
pub use settings::{
    DEFAULT_ANTHROPIC_BASE_URL, DEFAULT_OLLAMA_HOST, DEFAULT_OPENAI_BASE_URL, Protocol,
    ProviderSettings, RetryPolicy, SettingParseError, ToolChoice,
};
pub use structured::{StructuredError, complete_structured};

use praxis_core::{Message, ModelRequest, ModelResponse, ToolCall, Usage};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Receives streamed text as it is produced (for live progress); only the assembled
/// response is ledgered. When an HTTP provider retries a call that failed mid-stream, the
/// sink has already seen the failed attempt's fragments and then sees the new attempt's
/// from the start; the returned response holds only the successful attempt.
pub trait DeltaSink: Send + Sync {
    /// A fragment of the reply's text.
    fn text(&self, delta: &str);
    /// A fragment of the model's reasoning (thinking) text.
    fn reasoning(&self, _delta: &str) {}
    /// A fragment of tool call `index`'s argument JSON; `name` is known from the call's
    /// first chunk on.
    fn tool_arguments(&self, _index: usize, _name: &str, _fragment: &str) {}
}

/// One streamed fragment, owned: what a sink that keeps deltas for later holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Delta {
    Text(String),
    Reasoning(String),
    ToolArguments {
        index: usize,
        name: String,
        fragment: String,
    },
}

impl Delta {
    /// Hands this fragment to `sink`, as a provider streams it.
    pub fn send_to(&self, sink: &dyn DeltaSink) {
        match self {
            Delta::Text(text) => sink.text(text),
            Delta::Reasoning(text) => sink.reasoning(text),
            Delta::ToolArguments {
                index,
                name,
                fragment,
            } => sink.tool_arguments(*index, name, fragment),
        }
    }
}

/// A sink that drops every delta, for callers that only want the assembled response.
pub struct NoDeltas;

impl DeltaSink for NoDeltas {
    fn text(&self, _delta: &str) {}
}

/// A source of model replies.
pub trait Provider: Send + Sync {
    /// Provider kind: "mock", "scripted", "openai", "anthropic", "ollama" or "failover".
    fn name(&self) -> &str;
    /// The model behind it, e.g. "mock-inspector-1", the script's file name, "gpt-4o".
    fn model(&self) -> &str;
    /// Answers one model call. Text is streamed to `deltas` while it is produced; the
    /// returned response is the complete reply.
    fn complete<'a>(
        &'a self,
        request: &'a ModelRequest,
        deltas: &'a dyn DeltaSink,
    ) -> BoxFuture<'a, Result<ModelResponse, ModelError>>;
    /// The cognition for a sub-agent that `delegate` starts with `task`. Stateless providers
    /// hand out a fresh instance; the scripted provider plays the script's `delegates[task]`.
    fn for_delegate(&self, task: &str) -> Result<Arc<dyn Provider>, ModelError>;
    /// The cognition for a branch whose first new model call is the run's call
    /// `first_step` (the history's calls count). The scripted provider answers it with its
    /// first turn; the others stay as they are (None).
    fn for_branch(&self, _first_step: u32) -> Option<Arc<dyn Provider>> {
        None
    }
    /// The model's context window in tokens, when known (from the settings).
    fn context_window(&self) -> Option<u64> {
        None
    }
}

/// Provider specs accepted by [`provider_from_spec`] (the HTTP ones take `:MODEL`).
pub const KNOWN_PROVIDERS: &[&str] = &[
    "mock",
    "scripted",
    "openai:MODEL",
    "anthropic:MODEL",
    "ollama:MODEL",
    "huggingface:MODEL",
    "lmstudio:MODEL",
    "vllm:MODEL",
    "llamacpp:MODEL",
];

/// Which limit a [`ModelError::Timeout`] hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutKind {
    /// The whole request (`request_timeout`).
    Request,
    /// The gap between two chunks of the stream (`idle_timeout`).
    Idle,
}

impl std::fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeoutKind::Request => "the request took longer than request_timeout",
            TimeoutKind::Idle => "the stream sent nothing for longer than idle_timeout",
        })
    }
}

/// One provider's failure inside a failover chain.
#[derive(Debug)]
pub struct FailedAttempt {
    /// `provider:model` of the provider that failed.
    pub provider: String,
    pub error: ModelError,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("the script {source_name} has no `delegates` entry for the sub-agent task {task:?}")]
    NoDelegateScript { source_name: String, task: String },
    #[error(
        "the script has {turns} {noun} but the run asked for turn {call}; add a turn, or end \
         the script with a final answer (a turn without tool calls or <cmd> blocks)",
        noun = if *turns == 1 { "turn" } else { "turns" }
    )]
    ScriptExhausted { turns: usize, call: u32 },
    #[error("invalid script {source_name}: {message}")]
    InvalidScript {
        source_name: String,
        message: String,
    },
    #[error("cannot read script {path}: {source}")]
    ScriptUnreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("provider `scripted` needs a script file (a JSON file with a `turns` array)")]
    ScriptRequired,
    #[error(
        "provider `{provider}` does not use a script file; use provider `scripted` to replay {path}"
    )]
    ScriptNotUsed { provider: String, path: String },
    #[error("unknown provider `{name}`; known providers: {}", KNOWN_PROVIDERS.join(", "))]
    UnknownProvider { name: String },
    #[error(
        "provider `{provider}` needs a base URL: set {variable} to its OpenAI-compatible \
         endpoint including /v1 (e.g. {example})"
    )]
    MissingBaseUrl {
        provider: &'static str,
        variable: &'static str,
        example: &'static str,
    },
    #[error("provider `{provider}` needs a model: write `{provider}:MODEL`, e.g. `{example}`")]
    MissingModel {
        provider: String,
        example: &'static str,
    },
    #[error(
        "provider `{provider}` needs an API key for {url}: set {variable}{}",
        if *variable == "OPENAI_API_KEY" {
            " (a key is only optional for an OpenAI-compatible server on this machine: \
             127.0.0.1, localhost or ::1)"
        } else {
            ""
        }
    )]
    MissingKey {
        provider: String,
        variable: &'static str,
        url: String,
    },
    /// A setting that cannot work; fix the configuration.
    #[error("invalid provider configuration: {0}")]
    Config(String),
    /// The server refused the credentials (HTTP 401/403). Never retried.
    #[error(
        "{provider} refused the request with HTTP {status} at {url}: {message}; set {variable} \
         to a valid key"
    )]
    Auth {
        provider: String,
        url: String,
        status: u16,
        variable: &'static str,
        message: String,
    },
    /// Any other non-success HTTP status; `message` quotes the server (truncated).
    /// Retryable for 408, 429 and 5xx.
    #[error("{provider} answered HTTP {status} at {url}: {message}")]
    Status {
        provider: String,
        url: String,
        status: u16,
        message: String,
        /// The server's `Retry-After`, if it sent one.
        retry_after: Option<std::time::Duration>,
    },
    #[error("cannot connect to {provider} at {url}: {message}")]
    Connect {
        provider: String,
        url: String,
        message: String,
    },
    #[error("{provider} at {url}: {kind} ({after:?})")]
    Timeout {
        provider: String,
        url: String,
        kind: TimeoutKind,
        after: std::time::Duration,
    },
    /// The connection failed or the stream ended before its end marker.
    #[error("{provider} at {url}: the reply stream broke off before its end: {message}")]
    StreamBroken {
        provider: String,
        url: String,
        message: String,
    },
    /// A reply that is not the expected JSON / event stream (HTML, empty, garbage).
    #[error("{provider} at {url} (HTTP {status}) sent {problem}; start of the body: {snippet:?}")]
    BadBody {
        provider: String,
        url: String,
        status: u16,
        problem: String,
        snippet: String,
    },
    #[error(
        "{provider} at {url}: the reply exceeds the {limit}-byte cap (max_response_bytes); the \
         call was abandoned"
    )]
    TooLarge {
        provider: String,
        url: String,
        limit: usize,
    },
    /// An error the server reported inside an otherwise successful stream.
    #[error("{provider} at {url} reported an error in the stream: {kind}: {message}")]
    Remote {
        provider: String,
        url: String,
        kind: String,
        message: String,
        retryable: bool,
    },
    /// A transient failure that persisted through every attempt.
    #[error("{provider} failed {attempts} times in a row; last error: {last}")]
    RetriesExhausted {
        provider: String,
        attempts: u32,
        last: Box<ModelError>,
    },
    /// Every provider of a failover chain failed.
    #[error("all {} providers failed: {}", attempts.len(), list_attempts(attempts))]
    AllFailed { attempts: Vec<FailedAttempt> },
}

fn list_attempts(attempts: &[FailedAttempt]) -> String {
    attempts
        .iter()
        .enumerate()
        .map(|(i, a)| format!("({}) {}: {}", i + 1, a.provider, a.error))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ModelError {
    /// Whether the failure may go away by itself (rate limits, overload, network, broken
    /// streams, timeouts). Auth, configuration, script and request errors are the user's to
    /// fix and are never retried.
    pub fn is_retryable(&self) -> bool {
        match self {
            ModelError::Status { status, .. } => retryable_status(*status),
            ModelError::BadBody { status, .. } => *status >= 500,
            ModelError::Connect { .. }
            | ModelError::Timeout { .. }
            | ModelError::StreamBroken { .. }
            | ModelError::RetriesExhausted { .. } => true,
            ModelError::Remote { retryable, .. } => *retryable,
            ModelError::AllFailed { attempts } => attempts.iter().all(|a| a.error.is_retryable()),
            _ => false,
        }
    }

    /// How long the server asked us to wait before trying again.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            ModelError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

pub(crate) fn retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..=599).contains(&status)
}

/// Builds a provider by name: "mock" (no script) or "scripted" (needs `script`). HTTP
/// providers need settings: use [`provider_from_spec`].
pub fn provider_from_name(
    name: &str,
    script: Option<&Path>,
) -> Result<Arc<dyn Provider>, ModelError> {
    match (name, script) {
        ("mock", None) => Ok(Arc::new(MockProvider::new())),
        ("mock", Some(path)) => Err(ModelError::ScriptNotUsed {
            provider: name.into(),
            path: path.display().to_string(),
        }),
        ("scripted", Some(path)) => Ok(Arc::new(ScriptedProvider::from_file(path)?)),
        ("scripted", None) => Err(ModelError::ScriptRequired),
        _ => Err(ModelError::UnknownProvider { name: name.into() }),
    }
}

/// Builds a provider from a spec: `mock`, `scripted` (needs `script`), `openai:MODEL`,
/// `anthropic:MODEL`, `ollama:MODEL` or a preset of an OpenAI-compatible server
/// (`huggingface:MODEL`, `lmstudio:MODEL`, `vllm:MODEL`, `llamacpp:MODEL`, see [`PRESETS`]);
/// the model is everything after the first colon, so `ollama:qwen2.5-coder:7b` works. Several specs joined by commas make a failover chain
/// tried in order (see [`failover`]). Missing keys fail here, never at the first call, and
/// nothing falls back to `mock`.
pub fn provider_from_spec(
    spec: &str,
    settings: &ProviderSettings,
    script: Option<&Path>,
) -> Result<Arc<dyn Provider>, ModelError> {
    if spec.contains(',') {
        let chain = spec
            .split(',')
            .map(|one| provider_from_spec(one, settings, script))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(failover(chain));
    }
    let spec = spec.trim();
    let (kind, model) = match spec.split_once(':') {
        Some((kind, model)) => (kind.trim(), Some(model.trim())),
        None => (spec, None),
    };
    let model = model.filter(|m| !m.is_empty());
    let missing = |example| ModelError::MissingModel {
        provider: kind.to_string(),
        example,
    };
    match (kind, model) {
        ("mock" | "scripted", None) => provider_from_name(kind, script),
        ("openai", Some(model)) => Ok(Arc::new(OpenAiProvider::new(model, settings)?)),
        ("openai", None) => Err(missing("openai:gpt-4o-mini")),
        ("anthropic", Some(model)) => Ok(Arc::new(AnthropicProvider::new(model, settings)?)),
        ("anthropic", None) => Err(missing("anthropic:claude-sonnet-4-5")),
        ("ollama", Some(model)) => Ok(Arc::new(OllamaProvider::new(model, settings)?)),
        ("ollama", None) => Err(missing("ollama:qwen2.5-coder:7b")),
        (kind, Some(model)) if preset(kind).is_some() => {
            let preset = preset(kind).expect("matched above");
            Ok(Arc::new(preset.provider(model, settings)?))
        }
        (kind, None) if preset(kind).is_some() => {
            Err(missing(preset(kind).expect("matched above").example))
        }
        _ => Err(ModelError::UnknownProvider { name: spec.into() }),
    }
}

/// Local token estimate for providers that report no usage: ceil(chars / 4).
pub use praxis_core::estimate_tokens;

/// The deterministic answer of the keyless providers (mock, scripted) to a compaction
/// request: the tool calls of the transcript, one per line, so nothing is invented.
pub(crate) fn extractive_summary(request: &ModelRequest) -> String {
    let transcript = request.messages.last().map_or("", |m| m.content.as_str());
    let calls: Vec<&str> = transcript
        .lines()
        .filter_map(|l| l.strip_prefix("[tool call] "))
        .collect();
    format!(
        "Earlier work ({} transcript lines) made these tool calls:\n{}",
        transcript.lines().count(),
        calls.join("\n")
    )
}

/// Estimated usage of a call: input from every message of the request (text plus any tool
/// calls it carries), output from the reply.
pub(crate) fn estimate_usage(request: &ModelRequest, content: &str, calls: &[ToolCall]) -> Usage {
    let input = request
        .messages
        .iter()
        .map(|m: &Message| estimate_tokens(&m.content) + calls_tokens(&m.tool_calls))
        .sum();
    Usage {
        input_tokens: input,
        output_tokens: estimate_tokens(content) + calls_tokens(calls),
    }
}

fn calls_tokens(calls: &[ToolCall]) -> u64 {
    calls
        .iter()
        .map(|c| estimate_tokens(&c.name) + estimate_tokens(&c.arguments.to_string()))
        .sum()
}

/// Sends `text` to the sink in chunks of `words_per_chunk` words (each word keeps the
/// whitespace after it), so the chunks concatenate back to exactly `text`.
pub(crate) fn stream_words(text: &str, words_per_chunk: usize, sink: &dyn DeltaSink) {
    let per_chunk = words_per_chunk.max(1);
    let mut start = 0;
    let mut words = 0;
    let mut in_space = false;
    // Leading whitespace belongs to the first word rather than being a word of its own.
    let mut seen_word = false;
    for (i, ch) in text.char_indices() {
        let space = ch.is_whitespace();
        if in_space && !space && seen_word {
            // A new word begins at `i`: the previous word and its whitespace are complete.
            words += 1;
            if words == per_chunk {
                sink.text(&text[start..i]);
                start = i;
                words = 0;
            }
        }
        in_space = space;
        seen_word |= !space;
    }
    if start < text.len() {
        sink.text(&text[start..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Collect(Mutex<Vec<String>>);
    impl DeltaSink for Collect {
        fn text(&self, delta: &str) {
            self.0.lock().unwrap().push(delta.to_string());
        }
    }

    #[test]
    fn estimate_rounds_up_by_characters_not_bytes() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
        // Four multi-byte characters are still one token's worth.
        assert_eq!(estimate_tokens("éééé"), 1);
    }

    #[test]
    fn streamed_words_reassemble_exactly() {
        let text = "  one two\nthree   four five ünï six ";
        for per in [1, 2, 3, 10] {
            let sink = Collect::default();
            stream_words(text, per, &sink);
            let chunks = sink.0.into_inner().unwrap();
            assert_eq!(chunks.concat(), text, "per={per}");
            assert!(chunks.iter().all(|c| !c.is_empty()));
            if per == 1 {
                assert_eq!(chunks.len(), 7, "{chunks:?}");
            }
        }
    }

    #[test]
    fn provider_names() {
        assert_eq!(provider_from_name("mock", None).unwrap().name(), "mock");
        let err = provider_from_name("gpt", None).err().unwrap().to_string();
        assert!(
            err.contains("`gpt`") && err.contains("mock, scripted"),
            "{err}"
        );
        let err = provider_from_name("scripted", None).err().unwrap();
        assert!(matches!(err, ModelError::ScriptRequired));
        let err = provider_from_name("mock", Some(Path::new("s.json")))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("s.json"), "{err}");
    }
}
