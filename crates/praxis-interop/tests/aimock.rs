//! The OpenAI, Anthropic and Ollama providers against aimock (npm @copilotkit/aimock), a
//! wire-format mock written by others, with the fixtures in `fixtures/aimock/`.
//!
//! What aimock does, as read from its source (1.43.0) and checked here:
//! - streams text in `chunkSize`-character pieces and tool-call arguments likewise (OpenAI:
//!   a header chunk with id and name, then argument chunks; Anthropic: `input_json_delta`
//!   events; Ollama: the whole call in one NDJSON line, its wire format has no fragments);
//! - reports a fixture's `usage` in OpenAI's final usage chunk (only when the request asks
//!   with `stream_options.include_usage`) and in Anthropic's `message_start`/`message_delta`;
//!   Ollama always gets `prompt_eval_count: 0, eval_count: 0`;
//! - error fixtures answer their `status` with a JSON error body (429 adds `Retry-After`);
//! - `truncateAfterChunks` destroys the connection in the middle of a streamed body;
//! - `--chaos-disconnect 1` destroys every connection before any response head;
//! - `--chaos-malformed 1` answers every request `200 application/json` with the body
//!   `{malformed json: <<<chaos>>>`;
//! - `sequenceIndex` fixtures count matches per fixture group for the life of the server,
//!   even when chaos or truncation spoils the answer, so "fail once, then succeed" fixtures
//!   work once per server start (which is why those fixtures are per dialect).
//!
//! Retries use the provider's policy with short delays (see `settings_for`): 3 attempts.

mod common;

use common::*;
use praxis_core::Usage;
use praxis_models::{ModelError, Provider, provider_from_spec};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Hang guard of one provider call, retries included.
const CALL_GUARD: Duration = Duration::from_secs(60);
/// Hang guard of a whole scenario (the call plus aimock journal reads).
const TEST_GUARD: Duration = Duration::from_secs(120);
/// Hang guard of a whole `praxis run` with its export and verification.
const RUN_GUARD: Duration = Duration::from_secs(180);
/// `settings_for` allows this many attempts per call.
const ATTEMPTS: u32 = 3;
/// Added to failures of the "fail once, then succeed" scenarios.
const SEQUENCE_HINT: &str = " (if that is a 404 \"No fixture matched\": this aimock already served \
    the fixture's sequence, which works once per server start; restart aimock, as .ci/interop \
    does on every run)";

fn provider(dialect: Dialect, base: &str) -> Arc<dyn Provider> {
    provider_from_spec(dialect.spec(), &settings_for(base), None)
        .unwrap_or_else(|e| panic!("provider_from_spec({}): {e}", dialect.spec()))
}

/// The model name in the spec; aimock echoes the request's model back.
fn model_of(dialect: Dialect) -> &'static str {
    dialect.spec().split_once(':').map_or("", |(_, m)| m)
}

/// Calls the provider with `user` (which picks the fixture) and returns the outcome, the
/// recorded deltas and the journal entries this call added for the dialect's endpoint.
async fn call(
    dialect: Dialect,
    base: &str,
    user: &str,
    marker: &str,
    tools: Vec<praxis_core::ToolSpec>,
) -> (
    Result<praxis_core::ModelResponse, ModelError>,
    Recorder,
    Vec<Value>,
) {
    let before = requests_for(base, dialect.path(), marker).await.len();
    let provider = provider(dialect, base);
    let sink = Recorder::default();
    let req = request(user, tools);
    let what = format!("{} call for {marker}", dialect.word());
    let result = hang_guard(CALL_GUARD, &what, provider.complete(&req, &sink)).await;
    let mut seen = requests_for(base, dialect.path(), marker).await;
    let added = seen.split_off(before.min(seen.len()));
    (result, sink, added)
}

/// Usage as the fixture states it (OpenAI and Anthropic carry it); for Ollama see below.
fn check_usage(dialect: Dialect, usage: Usage, fixture: &Value) {
    match dialect {
        Dialect::OpenAi | Dialect::Anthropic => {
            let expected = Usage {
                input_tokens: fixture["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
                output_tokens: fixture["usage"]["completion_tokens"].as_u64().unwrap_or(0),
            };
            assert_eq!(
                usage, expected,
                "{dialect:?}: usage must be the server's own figures (OpenAI sends them only \
                 when the request has stream_options.include_usage)"
            );
        }
        // aimock's Ollama dialect always sends `prompt_eval_count: 0, eval_count: 0`: the
        // provider may record those figures as they are, or estimate; nothing else.
        Dialect::Ollama => assert!(
            usage == Usage::default() || (usage.input_tokens > 0 && usage.output_tokens > 0),
            "Ollama: expected the server's zero counts or an estimate, got {usage:?}"
        ),
    }
}

async fn text_stream(dialect: Dialect) {
    let base = server_url("PRAXIS_AIMOCK_URL");
    let fixture = fixture_response("[text-stream]");
    let text = fixture["content"].as_str().expect("fixture content");
    let (result, sink, requests) = call(
        dialect,
        &base,
        "Say something. [text-stream]",
        "[text-stream]",
        vec![],
    )
    .await;
    let reply = result.unwrap_or_else(|e| panic!("{dialect:?} text stream failed: {e}"));
    assert_eq!(reply.content, text);
    assert!(reply.tool_calls.is_empty(), "{:?}", reply.tool_calls);
    assert_eq!(reply.model, model_of(dialect));
    let deltas = sink.texts();
    // 140-odd characters in 16-character chunks: several deltas, not one block.
    assert!(
        deltas.len() >= 5,
        "{dialect:?}: expected the text in several deltas, got {deltas:?}"
    );
    assert_eq!(
        deltas.concat(),
        reply.content,
        "deltas must join to the reply"
    );
    check_usage(dialect, reply.usage, &fixture);
    assert_eq!(requests.len(), 1, "one request, no retry: {requests:?}");
}

async fn tool_call_stream(dialect: Dialect) {
    let base = server_url("PRAXIS_AIMOCK_URL");
    let fixture = fixture_response("[tool-stream]");
    let expected_call = &fixture["toolCalls"][0];
    let (result, sink, _) = call(
        dialect,
        &base,
        "Read src/lib.rs please. [tool-stream]",
        "[tool-stream]",
        vec![read_file_tool()],
    )
    .await;
    let reply = result.unwrap_or_else(|e| panic!("{dialect:?} tool-call stream failed: {e}"));
    assert_eq!(reply.content, fixture["content"].as_str().expect("content"));
    assert_eq!(sink.texts().concat(), reply.content);
    assert_eq!(reply.tool_calls.len(), 1, "{:?}", reply.tool_calls);
    let got = &reply.tool_calls[0];
    assert_eq!(got.name, "read_file");
    assert_eq!(
        got.arguments, expected_call["arguments"],
        "assembled arguments must equal the fixture's"
    );
    assert!(got.arguments.is_object());
    match dialect {
        // Ollama's wire format has no call ids; the provider must make one up.
        Dialect::Ollama => assert!(!got.id.is_empty(), "a tool call needs an id"),
        _ => assert_eq!(got.id, expected_call["id"].as_str().expect("id")),
    }

    let fragments = sink.tool_fragments(0);
    if dialect == Dialect::Ollama {
        // One NDJSON line carries the whole call; whatever was reported must still add up.
        if !fragments.is_empty() {
            let joined: String = fragments.iter().map(|(_, f)| f.as_str()).collect();
            let parsed: Value = serde_json::from_str(&joined)
                .unwrap_or_else(|e| panic!("Ollama argument deltas {joined:?}: {e}"));
            assert_eq!(parsed, got.arguments);
        }
    } else {
        assert!(
            fragments.len() >= 3,
            "{dialect:?}: the arguments came in 8-character pieces, expected several \
             tool_arguments deltas for call 0, got {fragments:?} (all deltas: {:?})",
            sink.deltas()
        );
        assert!(
            fragments.iter().all(|(name, _)| name == "read_file"),
            "{fragments:?}"
        );
        let joined: String = fragments.iter().map(|(_, f)| f.as_str()).collect();
        let parsed: Value = serde_json::from_str(&joined)
            .unwrap_or_else(|e| panic!("{dialect:?}: argument deltas {joined:?}: {e}"));
        assert_eq!(
            parsed, got.arguments,
            "fragments must join to the arguments"
        );
    }
    check_usage(dialect, reply.usage, &fixture);
}

/// The last error of a retried call, checking that every attempt was made.
fn exhausted(dialect: Dialect, err: &ModelError) -> &ModelError {
    match err {
        ModelError::RetriesExhausted { attempts, last, .. } => {
            assert_eq!(*attempts, ATTEMPTS, "{dialect:?}: {err}");
            last
        }
        other => panic!(
            "{dialect:?}: expected RetriesExhausted after {ATTEMPTS} attempts, got {other:?}"
        ),
    }
}

/// A persistent retryable status: every attempt is made, and the typed error keeps the
/// status (and for 429 the server's Retry-After).
async fn retryable_status(dialect: Dialect, marker: &str, status: u16) {
    let base = server_url("PRAXIS_AIMOCK_URL");
    let user = format!("Please answer. {marker}");
    let (result, _, requests) = call(dialect, &base, &user, marker, vec![]).await;
    let err = result.expect_err("an error fixture must fail the call");
    match exhausted(dialect, &err) {
        ModelError::Status {
            status: got,
            retry_after,
            message,
            ..
        } => {
            assert_eq!(*got, status, "{dialect:?}: {err}");
            assert!(
                message.contains("interop fixture"),
                "the server's message should be quoted: {message}"
            );
            if status == 429 {
                assert_eq!(*retry_after, Some(Duration::from_secs(1)), "{err}");
            }
        }
        other => {
            panic!("{dialect:?}: expected the last attempt to be HTTP {status}, got {other:?}")
        }
    }
    assert!(err.is_retryable(), "{err}");
    assert!(
        err.to_string().contains(&base),
        "the error should name the URL: {err}"
    );
    assert_eq!(
        requests.len() as u32,
        ATTEMPTS,
        "aimock should have seen every attempt"
    );
}

async fn status_429(dialect: Dialect) {
    retryable_status(dialect, "[status-429]", 429).await;
}

async fn status_500(dialect: Dialect) {
    retryable_status(dialect, "[status-500]", 500).await;
}

/// A 400 is the caller's fault: one attempt, a typed non-retryable error.
async fn status_400(dialect: Dialect) {
    let base = server_url("PRAXIS_AIMOCK_URL");
    let (result, _, requests) = call(
        dialect,
        &base,
        "Please answer. [status-400]",
        "[status-400]",
        vec![],
    )
    .await;
    let err = result.expect_err("a 400 fixture must fail the call");
    match &err {
        ModelError::Status {
            status, message, ..
        } => {
            assert_eq!(*status, 400);
            assert!(
                message.contains("Invalid request (interop fixture)"),
                "{message}"
            );
        }
        other => panic!("{dialect:?}: expected Status 400 without retries, got {other:?}"),
    }
    assert!(!err.is_retryable());
    assert_eq!(requests.len(), 1, "a 400 must not be retried");
}

/// 503 on the first attempt, a reply on the second: the caller only sees the reply.
async fn recovers_after_503(dialect: Dialect) {
    let base = server_url("PRAXIS_AIMOCK_URL");
    let marker = format!("[flaky-503 {}]", dialect.word());
    let user = format!("Please answer. {marker}");
    let (result, sink, requests) = call(dialect, &base, &user, &marker, vec![]).await;
    let reply = result
        .unwrap_or_else(|e| panic!("{dialect:?}: the retry should succeed: {e}{SEQUENCE_HINT}"));
    // sequenceIndex 0 is the 503; the reply is the group's second fixture.
    assert_eq!(fixture_response_at(&marker, 0)["status"], 503);
    let expected = fixture_response_at(&marker, 1);
    assert_eq!(
        reply.content,
        expected["content"].as_str().expect("content")
    );
    assert_eq!(sink.texts().concat(), reply.content);
    let statuses: Vec<&Value> = requests.iter().map(|e| &e["response"]["status"]).collect();
    assert_eq!(statuses, [503, 200], "{dialect:?}: {requests:?}");
}

/// Every attempt's stream is cut after a few chunks: the typed error says so, after every
/// attempt was made, and the text seen before each cut was streamed.
async fn truncated_stream(dialect: Dialect) {
    let base = server_url("PRAXIS_AIMOCK_URL");
    let (result, sink, requests) = call(
        dialect,
        &base,
        "Please answer. [truncated]",
        "[truncated]",
        vec![],
    )
    .await;
    let err = result.expect_err("a stream cut every time must fail the call");
    match exhausted(dialect, &err) {
        ModelError::StreamBroken { .. } => {}
        other => panic!("{dialect:?}: expected StreamBroken as the last error, got {other:?}"),
    }
    assert_eq!(requests.len() as u32, ATTEMPTS, "{requests:?}");
    assert!(
        requests
            .iter()
            .all(|e| e["response"]["interrupted"] == true),
        "aimock should report every stream as interrupted: {requests:?}"
    );
    let text = fixture_response("[truncated]")["content"]
        .as_str()
        .expect("content")
        .to_string();
    let deltas = sink.texts();
    assert!(
        !deltas.is_empty() && deltas.iter().all(|d| text.contains(d.as_str())),
        "text before the cut should have been streamed: {deltas:?}"
    );
}

/// The first stream is cut, the retry streams the whole reply: the response holds only the
/// successful attempt, while the sink saw the broken attempt's fragments first (documented
/// on `DeltaSink`).
async fn recovers_after_truncation(dialect: Dialect) {
    let base = server_url("PRAXIS_AIMOCK_URL");
    let marker = format!("[truncated-once {}]", dialect.word());
    let user = format!("Please answer. {marker}");
    let (result, sink, requests) = call(dialect, &base, &user, &marker, vec![]).await;
    let reply = result
        .unwrap_or_else(|e| panic!("{dialect:?}: the retry should succeed: {e}{SEQUENCE_HINT}"));
    let text = fixture_response(&marker)["content"]
        .as_str()
        .expect("content")
        .to_string();
    assert_eq!(reply.content, text);
    let streamed = sink.texts().concat();
    assert!(
        streamed.len() > text.len() && streamed.ends_with(&text),
        "the sink should see the cut attempt, then the whole reply: {streamed:?}"
    );
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0]["response"]["interrupted"], true);
    assert!(requests[1]["response"].get("interrupted").is_none());
}

/// `--chaos-disconnect 1`: no response head ever arrives. Retried, then a typed retryable
/// error (a connection or stream failure, depending on when the client notices).
async fn chaos_disconnect(dialect: Dialect) {
    let base = server_url("PRAXIS_AIMOCK_DISCONNECT_URL");
    let (result, _, requests) = call(
        dialect,
        &base,
        "Say something. [text-stream]",
        "[text-stream]",
        vec![],
    )
    .await;
    let err = result.expect_err("every connection is destroyed");
    match exhausted(dialect, &err) {
        ModelError::Connect { .. } | ModelError::StreamBroken { .. } => {}
        other => panic!("{dialect:?}: expected Connect or StreamBroken, got {other:?}"),
    }
    assert!(err.is_retryable());
    assert!(err.to_string().contains(&base), "{err}");
    assert_eq!(requests.len() as u32, ATTEMPTS, "{requests:?}");
    assert!(
        requests
            .iter()
            .all(|e| e["response"]["chaosAction"] == "disconnect"),
        "{requests:?}"
    );
}

/// `--chaos-malformed 1`: a 200 whose body is broken JSON, not a stream. Not retried (a
/// server that answers garbage with 200 will do it again); a typed BadBody that quotes it.
async fn chaos_malformed(dialect: Dialect) {
    let base = server_url("PRAXIS_AIMOCK_MALFORMED_URL");
    let (result, sink, requests) = call(
        dialect,
        &base,
        "Say something. [text-stream]",
        "[text-stream]",
        vec![],
    )
    .await;
    let err = result.expect_err("a malformed body must fail the call");
    match &err {
        ModelError::BadBody {
            status, snippet, ..
        } => {
            assert_eq!(*status, 200, "{err}");
            assert!(snippet.contains("malformed json"), "{snippet:?}");
        }
        other => panic!("{dialect:?}: expected BadBody, got {other:?}"),
    }
    assert!(!err.is_retryable(), "{err}");
    assert!(
        sink.texts().is_empty(),
        "nothing should be streamed: {:?}",
        sink.deltas()
    );
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["response"]["chaosAction"], "malformed");
}

/// One `#[tokio::test]` per dialect for each scenario.
macro_rules! per_dialect {
    ($($scenario:ident: $openai:ident, $anthropic:ident, $ollama:ident;)+) => {$(
        #[tokio::test]
        #[ignore = "needs the interop servers: run .ci/interop"]
        async fn $openai() {
            hang_guard(TEST_GUARD, stringify!($openai), $scenario(Dialect::OpenAi)).await;
        }
        #[tokio::test]
        #[ignore = "needs the interop servers: run .ci/interop"]
        async fn $anthropic() {
            hang_guard(TEST_GUARD, stringify!($anthropic), $scenario(Dialect::Anthropic)).await;
        }
        #[tokio::test]
        #[ignore = "needs the interop servers: run .ci/interop"]
        async fn $ollama() {
            hang_guard(TEST_GUARD, stringify!($ollama), $scenario(Dialect::Ollama)).await;
        }
    )+};
}

per_dialect! {
    text_stream: openai_text_stream, anthropic_text_stream, ollama_text_stream;
    tool_call_stream: openai_tool_call_stream, anthropic_tool_call_stream, ollama_tool_call_stream;
    status_429: openai_429_retried_then_typed_error, anthropic_429_retried_then_typed_error, ollama_429_retried_then_typed_error;
    status_500: openai_500_retried_then_typed_error, anthropic_500_retried_then_typed_error, ollama_500_retried_then_typed_error;
    status_400: openai_400_not_retried, anthropic_400_not_retried, ollama_400_not_retried;
    recovers_after_503: openai_recovers_after_503, anthropic_recovers_after_503, ollama_recovers_after_503;
    truncated_stream: openai_cut_stream_typed_error, anthropic_cut_stream_typed_error, ollama_cut_stream_typed_error;
    recovers_after_truncation: openai_cut_stream_retried, anthropic_cut_stream_retried, ollama_cut_stream_retried;
    chaos_disconnect: openai_chaos_disconnect, anthropic_chaos_disconnect, ollama_chaos_disconnect;
    chaos_malformed: openai_chaos_malformed, anthropic_chaos_malformed, ollama_chaos_malformed;
}

/// A whole governed run through aimock's OpenAI dialect: the fixture asks for `list_files`,
/// then answers once the tool result is in the conversation.
#[tokio::test]
#[ignore = "needs the interop servers: run .ci/interop"]
async fn praxis_run_through_aimock_openai() {
    hang_guard(
        RUN_GUARD,
        "praxis run through aimock",
        run_through_aimock_openai(),
    )
    .await;
}

async fn run_through_aimock_openai() {
    let base = server_url("PRAXIS_AIMOCK_URL");
    let home = tempfile::tempdir().expect("tempdir");
    let workspace = tempfile::tempdir().expect("tempdir");
    std::fs::write(workspace.path().join("README.md"), "# demo\n").expect("write");
    std::fs::write(workspace.path().join("notes.txt"), "remember\n").expect("write");
    let ws = workspace.path().to_str().expect("utf-8 path").to_string();
    let openai_url = format!("{base}/v1");
    let record = praxis_run(
        home.path(),
        &[
            "List the files of this workspace. [run-list-files]",
            "--workspace",
            &ws,
            "--provider",
            "openai:gpt-4o-mini",
            "--max-steps",
            "4",
            "--approve",
            "never",
        ],
        &[("OPENAI_BASE_URL", &openai_url)],
    )
    .await;

    let s = &record.summary;
    assert_eq!(s["status"], "completed", "summary: {s}");
    assert_eq!(s["stop_reason"], "completed", "summary: {s}");
    assert_eq!(
        s["final_answer"], "The workspace holds two files: README.md and notes.txt.",
        "summary: {s}"
    );
    let finished = record.of_kind("run_finished");
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0]["payload"]["stop_reason"], "completed");

    let responses = record.of_kind("model_response");
    assert_eq!(responses.len(), 2, "a tool call, then the answer");
    let call = &responses[0]["payload"]["tool_calls"][0];
    assert_eq!(call["name"], "list_files");
    assert_eq!(call["id"], "call_list_1");
    assert_eq!(call["arguments"], serde_json::json!({"path": "."}));

    let proposal = record
        .of_kind("proposal")
        .into_iter()
        .find(|p| p["payload"]["call_id"] == "call_list_1")
        .expect("a proposal for the list_files call");
    assert_eq!(proposal["payload"]["source"], "tool_call");
    assert_eq!(proposal["payload"]["verdict"], "allow");

    let execution = record
        .of_kind("execution")
        .into_iter()
        .find(|e| e["payload"]["call_id"] == "call_list_1")
        .expect("the ledger should hold list_files's execution");
    assert_eq!(execution["payload"]["tool"], "list_files");
    assert_eq!(execution["payload"]["status"], "ok");
    let output = execution["payload"]["output"].as_str().unwrap_or("");
    assert!(
        output.contains("README.md") && output.contains("notes.txt"),
        "list_files output: {output}"
    );

    // aimock saw the tool result go back in OpenAI's format on the second request.
    let seen = requests_for(&base, "/v1/chat/completions", "[run-list-files]").await;
    let last = seen.last().expect("aimock saw the run's requests");
    let messages = last["body"]["messages"].as_array().expect("messages");
    let tool_msg = messages
        .iter()
        .find(|m| m["role"] == "tool")
        .expect("the second request carries the tool result");
    assert_eq!(tool_msg["tool_call_id"], "call_list_1");
}
