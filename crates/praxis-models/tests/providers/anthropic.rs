use crate::common::{Canned, TestServer, anthropic_sse};
use crate::{Sink, estimated_input, first_request, later_request, settings};
use praxis_models::{
    ModelError, NoDeltas, Protocol, Provider, ProviderSettings, ToolChoice, estimate_tokens,
    provider_from_spec,
};
use serde_json::{Value, json};
use std::sync::Arc;

const MODEL: &str = "claude-sonnet-4-5-20250929";

fn message_start(input: u64) -> Value {
    json!({"type": "message_start", "message": {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "content": [],
        "model": MODEL, "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": input, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1},
    }})
}

fn delta(index: u64, delta: Value) -> Value {
    json!({"type": "content_block_delta", "index": index, "delta": delta})
}

fn start(index: u64, block: Value) -> Value {
    json!({"type": "content_block_start", "index": index, "content_block": block})
}

fn stop(index: u64) -> Value {
    json!({"type": "content_block_stop", "index": index})
}

fn message_end(stop_reason: &str, output: u64) -> Vec<Value> {
    vec![
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": output}}),
        json!({"type": "message_stop"}),
    ]
}

/// Thinking (with signature), text, then a tool_use whose input arrives in fragments.
fn thinking_text_tool_stream() -> String {
    let mut events = vec![
        message_start(472),
        start(
            0,
            json!({"type": "thinking", "thinking": "", "signature": ""}),
        ),
        json!({"type": "ping"}),
        delta(
            0,
            json!({"type": "thinking_delta", "thinking": "The user wants"}),
        ),
        delta(
            0,
            json!({"type": "thinking_delta", "thinking": " a summary."}),
        ),
        delta(
            0,
            json!({"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3h"}),
        ),
        stop(0),
        start(1, json!({"type": "text", "text": ""})),
        delta(1, json!({"type": "text_delta", "text": "I'll read"})),
        delta(1, json!({"type": "text_delta", "text": " the README"})),
        delta(1, json!({"type": "text_delta", "text": " first."})),
        stop(1),
        start(
            2,
            json!({"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "fs_read", "input": {}}),
        ),
        delta(2, json!({"type": "input_json_delta", "partial_json": ""})),
        delta(
            2,
            json!({"type": "input_json_delta", "partial_json": "{\"path\": \"RE"}),
        ),
        delta(
            2,
            json!({"type": "input_json_delta", "partial_json": "ADME.md\"}"}),
        ),
        stop(2),
    ];
    events.extend(message_end("tool_use", 89));
    anthropic_sse(&events)
}

fn text_reply(text: &str) -> String {
    let mut events = vec![
        message_start(30),
        start(0, json!({"type": "text", "text": ""})),
        delta(0, json!({"type": "text_delta", "text": text})),
        stop(0),
    ];
    events.extend(message_end("end_turn", 3));
    anthropic_sse(&events)
}

fn anthropic_with(
    server: &TestServer,
    edit: impl FnOnce(&mut ProviderSettings),
) -> Arc<dyn Provider> {
    let mut s = settings(&server.url());
    edit(&mut s);
    provider_from_spec("anthropic:claude-sonnet-4-5", &s, None).unwrap()
}

fn anthropic(server: &TestServer) -> Arc<dyn Provider> {
    anthropic_with(server, |_| {})
}

#[tokio::test]
async fn streams_thinking_text_and_a_tool_call() {
    let server = TestServer::start(vec![Canned::sse(&thinking_text_tool_stream())]).await;
    let sink = Sink::default();
    let response = anthropic(&server)
        .complete(&first_request(), &sink)
        .await
        .unwrap();

    assert_eq!(response.content, "I'll read the README first.");
    assert_eq!(sink.text().len(), 3);
    assert_eq!(sink.text().concat(), response.content);
    assert_eq!(sink.reasoning().concat(), "The user wants a summary.");
    assert_eq!(response.reasoning.len(), 1);
    assert_eq!(response.reasoning[0].text, "The user wants a summary.");
    assert_eq!(
        response.reasoning[0].signature.as_deref(),
        Some("EqQBCgIYAhIM1gbcDa9GJwZA2b3h")
    );
    assert_eq!(response.tool_calls.len(), 1);
    let call = &response.tool_calls[0];
    assert_eq!(call.id, "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
    assert_eq!(call.name, "fs_read");
    assert_eq!(call.arguments, json!({"path": "README.md"}));
    assert_eq!(sink.arguments_of(0), "{\"path\": \"README.md\"}");
    assert_eq!(
        (response.usage.input_tokens, response.usage.output_tokens),
        (472, 89)
    );
    assert_eq!(response.model, MODEL);

    let request = &server.requests()[0];
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
    let body = request.json();
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert_eq!(body["max_tokens"], 4096);
    assert_eq!(body["stream"], true);
    assert_eq!(body["system"], "You are a coding agent.");
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "Summarize the README."}]}])
    );
    assert_eq!(body["tools"][0]["name"], "fs_read");
    assert_eq!(
        body["tools"][0]["input_schema"]["required"],
        json!(["path"])
    );
    assert!(
        body.get("tool_choice").is_none() && body.get("thinking").is_none(),
        "{body}"
    );
}

#[tokio::test]
async fn history_sends_signed_thinking_back_and_groups_tool_results() {
    let server = TestServer::start(vec![
        Canned::sse(&text_reply("a")),
        Canned::sse(&text_reply("b")),
    ])
    .await;
    let provider = anthropic_with(&server, |s| s.tool_choice = ToolChoice::Required);
    provider
        .complete(&later_request(), &NoDeltas)
        .await
        .unwrap();
    provider
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap();

    let requests = server.requests();
    let later = requests[0].json();
    assert!(
        later.get("tool_choice").is_none(),
        "step 2 is auto: {later}"
    );
    assert_eq!(requests[1].json()["tool_choice"], json!({"type": "any"}));
    let messages = later["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{later}");
    assert_eq!(
        messages[1],
        json!({"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I should read it.", "signature": "sig-abc"},
            {"type": "redacted_thinking", "data": "opaque-data"},
            {"type": "text", "text": "Reading."},
            {"type": "tool_use", "id": "call_1", "name": "fs_read", "input": {"path": "README.md"}},
            {"type": "tool_use", "id": "call_2", "name": "grep", "input": {"_invalid_arguments": "{\"pattern\": \"TO"}},
        ]})
    );
    assert_eq!(
        messages[2],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "# Demo\nHello."},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "rejected: arguments are not a JSON object"},
        ]})
    );
}

#[tokio::test]
async fn named_tool_choice_cmd_protocol_and_thinking_budget() {
    let server = TestServer::start(vec![
        Canned::sse(&text_reply("a")),
        Canned::sse(&text_reply("b")),
        Canned::sse(&text_reply("c")),
    ])
    .await;
    anthropic_with(&server, |s| s.tool_choice = ToolChoice::Tool("grep".into()))
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap();
    anthropic_with(&server, |s| s.protocol = Protocol::Cmd)
        .complete(&later_request(), &NoDeltas)
        .await
        .unwrap();
    anthropic_with(&server, |s| s.thinking_budget = Some(2048))
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap();

    let requests = server.requests();
    assert_eq!(
        requests[0].json()["tool_choice"],
        json!({"type": "tool", "name": "grep"})
    );
    let cmd = requests[1].json();
    assert!(cmd.get("tools").is_none(), "{cmd}");
    let text = cmd.to_string();
    assert!(
        !text.contains("tool_use") && !text.contains("tool_result"),
        "{text}"
    );
    assert_eq!(
        cmd["messages"][2]["content"][0]["text"],
        "<result>\n# Demo\nHello.\n</result>\n<result>\nrejected: arguments are not a JSON object\n</result>"
    );
    assert_eq!(
        requests[2].json()["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
}

#[tokio::test]
async fn thinking_settings_that_cannot_work_fail_at_construction() {
    let base = settings("http://127.0.0.1:9");
    let forced = ProviderSettings {
        thinking_budget: Some(2048),
        tool_choice: ToolChoice::Required,
        ..base.clone()
    };
    let err = provider_from_spec("anthropic:m", &forced, None)
        .err()
        .unwrap();
    assert!(err.to_string().contains("thinking_budget"), "{err}");
    let too_big = ProviderSettings {
        thinking_budget: Some(8000),
        ..base
    };
    let err = provider_from_spec("anthropic:m", &too_big, None)
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("max_output_tokens (4096)"),
        "{err}"
    );
}

#[tokio::test]
async fn malformed_input_json_arrives_as_a_string() {
    let mut events = vec![
        message_start(10),
        start(
            0,
            json!({"type": "tool_use", "id": "toolu_1", "name": "grep", "input": {}}),
        ),
        delta(
            0,
            json!({"type": "input_json_delta", "partial_json": "{\"pattern\": tr"}),
        ),
        stop(0),
    ];
    events.extend(message_end("tool_use", 5));
    let server = TestServer::start(vec![Canned::sse(&anthropic_sse(&events))]).await;
    let response = anthropic(&server)
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap();
    assert_eq!(response.tool_calls[0].arguments, json!("{\"pattern\": tr"));
}

#[tokio::test]
async fn a_tool_without_input_fragments_keeps_its_start_input() {
    let mut events = vec![
        message_start(10),
        start(
            0,
            json!({"type": "tool_use", "id": "toolu_1", "name": "repo_map", "input": {}}),
        ),
        stop(0),
    ];
    events.extend(message_end("tool_use", 5));
    let server = TestServer::start(vec![Canned::sse(&anthropic_sse(&events))]).await;
    let response = anthropic(&server)
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap();
    assert_eq!(response.tool_calls[0].arguments, json!({}));
}

#[tokio::test]
async fn usage_is_estimated_when_the_stream_has_none() {
    let events = vec![
        json!({"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant", "content": [], "model": MODEL}}),
        start(0, json!({"type": "text", "text": ""})),
        delta(
            0,
            json!({"type": "text_delta", "text": "Short answer here."}),
        ),
        stop(0),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}}),
        json!({"type": "message_stop"}),
    ];
    let server = TestServer::start(vec![Canned::sse(&anthropic_sse(&events))]).await;
    let request = first_request();
    let response = anthropic(&server)
        .complete(&request, &NoDeltas)
        .await
        .unwrap();
    assert_eq!(response.usage.input_tokens, estimated_input(&request));
    assert_eq!(
        response.usage.output_tokens,
        estimate_tokens("Short answer here.")
    );
}

#[tokio::test]
async fn an_overloaded_error_event_and_a_529_are_retried() {
    let overloaded = anthropic_sse(&[
        message_start(10),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ]);
    let server = TestServer::start(vec![
        Canned::sse(&overloaded),
        Canned::status(
            529,
            "application/json",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ),
        Canned::sse(&text_reply("done")),
    ])
    .await;
    let response = anthropic(&server)
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap();
    assert_eq!(response.content, "done");
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn an_invalid_request_error_event_is_not_retried() {
    let body = anthropic_sse(&[
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long"}}),
    ]);
    let server = TestServer::start(vec![Canned::sse(&body)]).await;
    let err = anthropic(&server)
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(
        err.to_string()
            .contains("invalid_request_error: prompt is too long"),
        "{err}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_broken_stream_is_retried() {
    let full = thinking_text_tool_stream();
    let server = TestServer::start(vec![
        Canned::sse(&full).disconnect_after(full.len() * 2 / 3),
        Canned::sse(&text_reply("again")),
    ])
    .await;
    let response = anthropic(&server)
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap();
    assert_eq!(response.content, "again");
    assert!(response.tool_calls.is_empty() && response.reasoning.is_empty());
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn unauthorized_names_the_variable_and_is_not_retried() {
    let server = TestServer::start(vec![Canned::status(
        401,
        "application/json",
        r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
    )])
    .await;
    let err = anthropic(&server)
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap_err();
    assert!(matches!(err, ModelError::Auth { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("ANTHROPIC_API_KEY") && text.contains("invalid x-api-key"),
        "{text}"
    );
    assert!(text.contains("/v1/messages"), "{text}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_key_is_always_required() {
    let s = ProviderSettings {
        anthropic_base_url: "http://127.0.0.1:9".into(),
        ..ProviderSettings::default()
    };
    let err = provider_from_spec("anthropic:claude-haiku-4-5", &s, None)
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            ModelError::MissingKey {
                variable: "ANTHROPIC_API_KEY",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("set ANTHROPIC_API_KEY"), "{err}");
}
