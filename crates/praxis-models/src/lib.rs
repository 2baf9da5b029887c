//! Praxis cognition: model providers behind one streaming trait.
//!
//! Providers are stateless: each call derives everything from `request.messages`, so a run
//! can be replayed or branched at any step by handing the same history back. Two providers
//! ship here: `mock` (the keyless default, a deterministic inspect-and-summarize agent that
//! really uses the tools it is offered) and `scripted` (replays a JSON script of turns).
//! HTTP providers plug into the same [`Provider`] trait and stream text through a
//! [`DeltaSink`] while they assemble the [`ModelResponse`].

mod mock;
mod scripted;

pub use mock::MockProvider;
pub use scripted::ScriptedProvider;

use praxis_core::{Message, ModelRequest, ModelResponse, ToolCall, Usage};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Receives streamed text as it is produced (for live progress); only the assembled
/// response is ledgered.
pub trait DeltaSink: Send + Sync {
    /// A fragment of the reply's text.
    fn text(&self, delta: &str);
    /// A fragment of the model's reasoning (thinking) text.
    fn reasoning(&self, _delta: &str) {}
    /// A fragment of tool call `index`'s argument JSON; `name` is known from the call's
    /// first chunk on.
    fn tool_arguments(&self, _index: usize, _name: &str, _fragment: &str) {}
}

/// A sink that drops every delta, for callers that only want the assembled response.
pub struct NoDeltas;

impl DeltaSink for NoDeltas {
    fn text(&self, _delta: &str) {}
}

/// A source of model replies.
pub trait Provider: Send + Sync {
    /// Provider kind: "mock" or "scripted".
    fn name(&self) -> &str;
    /// The model behind it, e.g. "mock-inspector-1" or the script's file name.
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
}

/// Names accepted by [`provider_from_name`].
pub const KNOWN_PROVIDERS: &[&str] = &["mock", "scripted"];

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
}

/// Builds a provider by name: "mock" (no script) or "scripted" (needs `script`).
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

/// Local token estimate for providers that report no usage: ceil(chars / 4).
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
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
