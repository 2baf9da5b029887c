//! Fuzz target (proptest; see tests/fuzz_support.rs at the workspace root for the modes):
//! streamed replies with tool calls, OpenAI SSE and Ollama NDJSON, cut into pieces at
//! random byte offsets (mid-line, mid-JSON, mid-UTF-8 character). The assembled reply equals
//! the one assembled from the same body sent whole.

use crate::common::{Canned, TestServer, ndjson, openai_sse};
use crate::{first_request, settings};
use praxis_core::ModelResponse;
use praxis_models::{NoDeltas, provider_from_spec};
use proptest::prelude::*;
use serde_json::{Value, json};

#[path = "../../../../tests/fuzz_support.rs"]
mod fuzz_support;
use fuzz_support::fuzz;

/// A tool call: name, argument text (JSON or not: models send broken JSON too), and how
/// its argument text is cut into stream fragments.
fn call() -> impl Strategy<Value = (String, String, Vec<usize>)> {
    let name = prop::sample::select(vec!["fs_read", "grep", "shell", "fs_patch"]);
    let args = prop_oneof![
        "[a-z]{1,8}".prop_map(|v| json!({"path": v}).to_string()),
        "[ -~é😀\\n]{0,30}".prop_map(|v| json!({"pattern": v, "n": 3}).to_string()),
        "[ -~]{0,20}",
    ];
    (name, args, proptest::collection::vec(1usize..12, 0..6))
        .prop_map(|(n, a, cuts)| (n.to_string(), a, cuts))
}

/// `text` cut at the char boundaries nearest `cuts` (fragments of a string in JSON).
fn fragments(text: &str, cuts: &[usize]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    for &n in cuts {
        let mut at = n.min(rest.len());
        while !rest.is_char_boundary(at) {
            at += 1;
        }
        let (head, tail) = rest.split_at(at);
        out.push(head.to_string());
        rest = tail;
    }
    out.push(rest.to_string());
    out
}

fn openai_stream(content: &str, calls: &[(String, String, Vec<usize>)]) -> String {
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut chunks = vec![chunk(
        json!({"role": "assistant", "content": content}),
        None,
    )];
    for (i, (name, args, cuts)) in calls.iter().enumerate() {
        chunks.push(chunk(
            json!({"tool_calls": [{"index": i, "id": format!("call_{i}"), "type": "function",
                    "function": {"name": name, "arguments": ""}}]}),
            None,
        ));
        for piece in fragments(args, cuts) {
            chunks.push(chunk(
                json!({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}),
                None,
            ));
        }
    }
    chunks.push(chunk(json!({}), Some("tool_calls")));
    chunks.push(json!({"id": "c", "model": "gpt-4o-mini", "choices": [],
                       "usage": {"prompt_tokens": 12, "completion_tokens": 7}}));
    openai_sse(&chunks)
}

fn ollama_stream(content: &str, calls: &[(String, String, Vec<usize>)]) -> String {
    let model = "qwen2.5-coder:7b";
    let mut lines: Vec<Value> = fragments(content, &[3, 5])
        .into_iter()
        .map(|c| json!({"model": model, "message": {"role": "assistant", "content": c}, "done": false}))
        .collect();
    for (name, args, _) in calls {
        let arguments: Value = serde_json::from_str(args).unwrap_or_else(|_| json!({"raw": args}));
        lines.push(
            json!({"model": model, "message": {"role": "assistant", "content": "",
            "tool_calls": [{"function": {"name": name, "arguments": arguments}}]}, "done": false}),
        );
    }
    lines.push(
        json!({"model": model, "message": {"role": "assistant", "content": ""},
        "done": true, "done_reason": "stop", "prompt_eval_count": 12, "eval_count": 7}),
    );
    ndjson(&lines)
}

fn complete(
    rt: &tokio::runtime::Runtime,
    spec: &str,
    canned: Canned,
) -> Result<ModelResponse, String> {
    rt.block_on(async {
        let server = TestServer::start(vec![canned]).await;
        let provider = provider_from_spec(spec, &settings(&server.url()), None).unwrap();
        provider
            .complete(&first_request(), &NoDeltas)
            .await
            .map_err(|e| e.to_string())
    })
}

#[test]
fn fuzz_streamed_tool_calls_assemble_the_same_however_the_stream_is_cut() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    fuzz(
        "streamed tool-call assembly (SSE, NDJSON)",
        file!(),
        64,
        (
            any::<bool>(),
            "[ -~é😀\\n]{0,24}",
            proptest::collection::vec(call(), 0..4),
            proptest::collection::vec(1usize..40, 1..12),
        ),
        |(sse, content, calls, pieces)| {
            let (spec, body, content_type) = if sse {
                (
                    "openai:gpt-4o-mini",
                    openai_stream(&content, &calls),
                    "text/event-stream",
                )
            } else {
                (
                    "ollama:qwen2.5-coder:7b",
                    ollama_stream(&content, &calls),
                    "application/x-ndjson",
                )
            };
            let whole = complete(&rt, spec, Canned::status(200, content_type, &body));
            let split = complete(
                &rt,
                spec,
                if sse {
                    Canned::sse(&body)
                } else {
                    Canned::ndjson(&body)
                }
                .in_pieces(pieces),
            );
            let whole = whole.map_err(TestCaseError::fail)?;
            prop_assert_eq!(whole.tool_calls.len(), calls.len());
            prop_assert_eq!(split, Ok(whole));
            Ok(())
        },
    );
}
