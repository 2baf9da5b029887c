use crate::common::{Canned, TestServer, openai_sse};
use crate::{Sink, estimated_input, first_request, later_request, settings};
use praxis_core::{Message, ModelRequest, Role};
use praxis_models::{
    ModelError, NoDeltas, Protocol, Provider, ProviderSettings, TimeoutKind, ToolChoice,
    estimate_tokens, provider_from_spec,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-9x", "object": "chat.completion.chunk", "created": 1_731_000_000,
        "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_0ba0d124f1",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        "usage": null,
    })
}

fn usage_chunk(prompt: u64, completion: u64) -> Value {
    json!({
        "id": "chatcmpl-9x", "object": "chat.completion.chunk", "created": 1_731_000_000,
        "model": "gpt-4o-mini-2024-07-18", "choices": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    })
}

/// "Hello there, the README says hi." in five content chunks, with usage.
fn text_stream() -> String {
    let mut chunks = vec![chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        None,
    )];
    for piece in ["Hello", " there,", " the README", " says", " hi."] {
        chunks.push(chunk(json!({"content": piece}), None));
    }
    chunks.push(chunk(json!({}), Some("stop")));
    chunks.push(usage_chunk(31, 9));
    openai_sse(&chunks)
}

fn text_reply(text: &str) -> String {
    openai_sse(&[
        chunk(json!({"role": "assistant", "content": text}), None),
        chunk(json!({}), Some("stop")),
        usage_chunk(10, 2),
    ])
}

fn openai(server: &TestServer) -> Arc<dyn Provider> {
    provider_from_spec("openai:gpt-4o-mini", &settings(&server.url()), None).unwrap()
}

fn openai_with(server: &TestServer, edit: impl FnOnce(&mut ProviderSettings)) -> Arc<dyn Provider> {
    let mut s = settings(&server.url());
    edit(&mut s);
    provider_from_spec("openai:gpt-4o-mini", &s, None).unwrap()
}

#[tokio::test]
async fn streams_text_and_reads_usage_from_the_wire() {
    let server = TestServer::start(vec![Canned::sse(&text_stream())]).await;
    let provider = openai_with(&server, |s| s.openai_api_key = Some("sk-test".into()));
    let sink = Sink::default();
    let response = provider.complete(&first_request(), &sink).await.unwrap();

    assert_eq!(response.content, "Hello there, the README says hi.");
    assert!(sink.text().len() >= 5, "{:?}", sink.text());
    assert_eq!(sink.text().concat(), response.content);
    assert_eq!(
        (response.usage.input_tokens, response.usage.output_tokens),
        (31, 9)
    );
    assert_eq!(response.model, "gpt-4o-mini-2024-07-18");
    assert!(response.tool_calls.is_empty());

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(request.header("authorization"), Some("Bearer sk-test"));
    let body = request.json();
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert_eq!(body["max_tokens"], 4096);
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "You are a coding agent."},
            {"role": "user", "content": "Summarize the README."},
        ])
    );
    assert_eq!(body["tools"][0]["type"], "function");
    assert_eq!(body["tools"][0]["function"]["name"], "fs_read");
    assert_eq!(
        body["tools"][1]["function"]["parameters"]["required"],
        json!(["pattern"])
    );
    assert!(
        body.get("tool_choice").is_none(),
        "auto is not sent: {body}"
    );
}

#[tokio::test]
async fn assembles_parallel_tool_calls_split_across_chunks_and_estimates_missing_usage() {
    let call = |index: u64, id: &str, name: &str| json!({"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": ""}});
    let args =
        |index: u64, fragment: &str| json!({"index": index, "function": {"arguments": fragment}});
    let chunks = vec![
        chunk(
            json!({"role": "assistant", "content": null, "tool_calls": [call(0, "call_Ab1", "fs_read")]}),
            None,
        ),
        chunk(json!({"tool_calls": [args(0, "{\"pa")]}), None),
        chunk(json!({"tool_calls": [args(0, "th\": \"REA")]}), None),
        // One chunk carrying the end of call 0 and the header of call 1.
        chunk(
            json!({"tool_calls": [args(0, "DME.md\"}"), call(1, "call_Cd2", "grep")]}),
            None,
        ),
        chunk(json!({"tool_calls": [args(1, "{\"pattern\":")]}), None),
        chunk(json!({"tool_calls": [args(1, " \"TODO|FIX")]}), None),
        chunk(json!({"tool_calls": [args(1, "ME\"}")]}), None),
        chunk(json!({}), Some("tool_calls")),
    ];
    let server = TestServer::start(vec![Canned::sse(&openai_sse(&chunks))]).await;
    let sink = Sink::default();
    let request = first_request();
    let response = openai(&server).complete(&request, &sink).await.unwrap();

    assert_eq!(response.tool_calls.len(), 2);
    let (a, b) = (&response.tool_calls[0], &response.tool_calls[1]);
    assert_eq!((a.id.as_str(), a.name.as_str()), ("call_Ab1", "fs_read"));
    assert_eq!(a.arguments, json!({"path": "README.md"}));
    assert_eq!((b.id.as_str(), b.name.as_str()), ("call_Cd2", "grep"));
    assert_eq!(b.arguments, json!({"pattern": "TODO|FIXME"}));
    assert_eq!(sink.arguments_of(0), "{\"path\": \"README.md\"}");
    assert_eq!(sink.arguments_of(1), "{\"pattern\": \"TODO|FIXME\"}");
    assert!(
        sink.arguments
            .lock()
            .unwrap()
            .iter()
            .all(|(i, name, _)| { (*i == 0 && name == "fs_read") || (*i == 1 && name == "grep") })
    );
    assert_eq!(response.content, "");

    // No usage chunk: estimated locally.
    let output: u64 = response
        .tool_calls
        .iter()
        .map(|c| estimate_tokens(&c.name) + estimate_tokens(&c.arguments.to_string()))
        .sum();
    assert_eq!(response.usage.input_tokens, estimated_input(&request));
    assert_eq!(response.usage.output_tokens, output);
}

#[tokio::test]
async fn malformed_arguments_arrive_as_a_json_string() {
    let chunks = vec![
        chunk(
            json!({"role": "assistant", "tool_calls": [
                {"index": 0, "id": "call_x", "type": "function", "function": {"name": "fs_read", "arguments": "{\"path\": "}}
            ]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"READ"}}]}),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
        usage_chunk(20, 8),
    ];
    let server = TestServer::start(vec![Canned::sse(&openai_sse(&chunks))]).await;
    let response = openai(&server)
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap();
    assert_eq!(response.tool_calls[0].arguments, json!("{\"path\": \"READ"));
}

#[tokio::test]
async fn reasoning_content_is_kept_without_signature() {
    let chunks = vec![
        chunk(
            json!({"role": "assistant", "content": null, "reasoning_content": "Let me"}),
            None,
        ),
        chunk(json!({"reasoning_content": " think."}), None),
        chunk(json!({"content": "Answer."}), None),
        chunk(json!({}), Some("stop")),
    ];
    let server = TestServer::start(vec![Canned::sse(&openai_sse(&chunks))]).await;
    let sink = Sink::default();
    let response = openai(&server)
        .complete(&first_request(), &sink)
        .await
        .unwrap();
    assert_eq!(response.content, "Answer.");
    assert_eq!(response.reasoning.len(), 1);
    assert_eq!(response.reasoning[0].text, "Let me think.");
    assert_eq!(response.reasoning[0].signature, None);
    assert_eq!(sink.reasoning().concat(), "Let me think.");
}

#[tokio::test]
async fn history_maps_tool_calls_and_results_and_tool_choice_applies_to_step_one_only() {
    let server = TestServer::start(vec![
        Canned::sse(&text_reply("a")),
        Canned::sse(&text_reply("b")),
        Canned::sse(&text_reply("c")),
    ])
    .await;
    let required = openai_with(&server, |s| s.tool_choice = ToolChoice::Required);
    required
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap();
    required
        .complete(&later_request(), &NoDeltas)
        .await
        .unwrap();
    let named = openai_with(&server, |s| s.tool_choice = ToolChoice::Tool("grep".into()));
    named.complete(&first_request(), &NoDeltas).await.unwrap();

    let requests = server.requests();
    assert_eq!(requests[0].json()["tool_choice"], "required");
    let later = requests[1].json();
    assert!(later.get("tool_choice").is_none(), "{later}");
    assert_eq!(
        requests[2].json()["tool_choice"],
        json!({"type": "function", "function": {"name": "grep"}})
    );
    let messages = later["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 5);
    assert_eq!(
        messages[2],
        json!({"role": "assistant", "content": "Reading.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "fs_read", "arguments": "{\"path\":\"README.md\"}"}},
            // The invalid arguments go back exactly as the model sent them.
            {"id": "call_2", "type": "function", "function": {"name": "grep", "arguments": "{\"pattern\": \"TO"}},
        ]})
    );
    assert_eq!(
        messages[3],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "# Demo\nHello."})
    );
    assert_eq!(messages[4]["tool_call_id"], "call_2");
}

#[tokio::test]
async fn a_tool_choice_naming_an_unoffered_tool_is_a_config_error() {
    let server = TestServer::start(vec![]).await;
    let provider = openai_with(&server, |s| {
        s.tool_choice = ToolChoice::Tool("deploy".into())
    });
    let err = provider
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap_err();
    assert!(matches!(err, ModelError::Config(_)), "{err}");
    assert!(
        err.to_string().contains("`deploy`") && err.to_string().contains("fs_read"),
        "{err}"
    );
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn cmd_protocol_sends_no_tools_and_renders_tool_history_as_text() {
    let server = TestServer::start(vec![Canned::sse(&text_reply("ok"))]).await;
    let provider = openai_with(&server, |s| {
        s.protocol = Protocol::Cmd;
        s.tool_choice = ToolChoice::Required;
    });
    let mut request = later_request();
    request.step = 1;
    provider.complete(&request, &NoDeltas).await.unwrap();
    let body = server.requests()[0].json();
    assert!(
        body.get("tools").is_none() && body.get("tool_choice").is_none(),
        "{body}"
    );
    let messages = body["messages"].as_array().unwrap();
    assert!(
        messages
            .iter()
            .all(|m| m["role"] != "tool" && m.get("tool_calls").is_none())
    );
    assert_eq!(
        messages[2]["content"],
        "Reading.\n[tool call fs_read {\"path\":\"README.md\"}]\n[tool call grep {\"pattern\": \"TO]"
    );
    assert_eq!(messages[3]["role"], "user");
    assert_eq!(
        messages[3]["content"],
        "<result>\n# Demo\nHello.\n</result>\n<result>\nrejected: arguments are not a JSON object\n</result>"
    );
}

#[tokio::test]
async fn rate_limit_with_retry_after_is_retried() {
    let server = TestServer::start(vec![
        Canned::status(
            429,
            "application/json",
            r#"{"error":{"message":"Rate limit reached for gpt-4o-mini","type":"requests","code":"rate_limit_exceeded"}}"#,
        )
        .header("retry-after", "1"),
        Canned::sse(&text_stream()),
    ])
    .await;
    let response = openai(&server)
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap();
    assert_eq!(response.content, "Hello there, the README says hi.");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn server_errors_and_html_gateway_pages_are_retried() {
    let server = TestServer::start(vec![
        Canned::status(
            500,
            "application/json",
            r#"{"error":{"message":"The server had an error","type":"server_error"}}"#,
        ),
        Canned::status(
            502,
            "text/html",
            "<html><head><title>502 Bad Gateway</title></head></html>",
        ),
        Canned::sse(&text_reply("fine")),
    ])
    .await;
    let response = openai(&server)
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap();
    assert_eq!(response.content, "fine");
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn persistent_server_errors_exhaust_the_retries() {
    let busy = || {
        Canned::status(
            503,
            "application/json",
            r#"{"error":{"message":"overloaded","type":"server_error"}}"#,
        )
    };
    let server = TestServer::start(vec![busy(), busy(), busy()]).await;
    let err = openai(&server)
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ModelError::RetriesExhausted { attempts: 3, .. }),
        "{err}"
    );
    assert!(err.is_retryable());
    let text = err.to_string();
    assert!(
        text.contains("HTTP 503") && text.contains("server_error: overloaded"),
        "{text}"
    );
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn a_stream_that_breaks_off_is_retried_and_only_the_good_attempt_is_returned() {
    let full = text_stream();
    let server = TestServer::start(vec![
        Canned::sse(&full).disconnect_after(full.len() / 2),
        Canned::sse(&text_reply("Second attempt.")),
    ])
    .await;
    let response = openai(&server)
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap();
    assert_eq!(response.content, "Second attempt.");
    assert_eq!(response.usage.input_tokens, 10);
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_broken_stream_without_retries_left_says_so() {
    let full = text_stream();
    let partial = openai_sse(&[chunk(json!({"role": "assistant", "content": "Hel"}), None)]);
    let partial = partial.trim_end_matches("data: [DONE]\n\n").to_string();
    let server = TestServer::start(vec![
        Canned::sse(&full).disconnect_after(full.len() / 2),
        Canned::sse(&partial),
    ])
    .await;
    let provider = openai_with(&server, |s| s.retry.max_attempts = 1);
    for _ in 0..2 {
        let err = provider
            .complete(&first_request(), &NoDeltas)
            .await
            .unwrap_err();
        assert!(matches!(err, ModelError::StreamBroken { .. }), "{err}");
        assert!(err.is_retryable());
    }
}

#[tokio::test]
async fn a_stream_closed_cleanly_before_its_end_is_retried() {
    // The body is complete HTTP-wise but the SSE stream stops mid-reply.
    let partial = openai_sse(&[chunk(json!({"role": "assistant", "content": "Hel"}), None)]);
    let partial = partial.trim_end_matches("data: [DONE]\n\n").to_string();
    let server =
        TestServer::start(vec![Canned::sse(&partial), Canned::sse(&text_reply("ok"))]).await;
    let response = openai(&server)
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap();
    assert_eq!(response.content, "ok");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn unauthorized_is_an_auth_error_naming_the_variable_and_is_not_retried() {
    let server = TestServer::start(vec![Canned::status(
        401,
        "application/json",
        r#"{"error":{"message":"Incorrect API key provided: sk-bad.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
    )])
    .await;
    let provider = openai_with(&server, |s| s.openai_api_key = Some("sk-bad".into()));
    let err = provider
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap_err();
    assert!(matches!(err, ModelError::Auth { status: 401, .. }), "{err}");
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(text.contains("OPENAI_API_KEY"), "{text}");
    assert!(
        text.contains(&format!("{}/v1/chat/completions", server.url())),
        "{text}"
    );
    assert!(text.contains("Incorrect API key provided"), "{text}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn bad_request_quotes_the_server_and_is_not_retried() {
    let server = TestServer::start(vec![Canned::status(
        400,
        "application/json",
        r#"{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","code":"context_length_exceeded"}}"#,
    )])
    .await;
    let err = openai(&server)
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ModelError::Status { status: 400, .. }),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert!(
        err.to_string().contains("maximum context length is 128000"),
        "{err}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn an_html_page_with_status_200_is_a_bad_body_with_a_snippet() {
    let server = TestServer::start(vec![Canned::status(
        200,
        "text/html",
        "<!DOCTYPE html>\n<html><body><h1>Welcome to nginx!</h1></body></html>",
    )])
    .await;
    let err = openai(&server)
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ModelError::BadBody { status: 200, .. }),
        "{err}"
    );
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(
        text.contains("HTML page") && text.contains("Welcome to nginx!"),
        "{text}"
    );
    assert!(text.contains("/v1/chat/completions"), "{text}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn an_empty_body_is_a_bad_body() {
    let server = TestServer::start(vec![Canned::status(200, "text/event-stream", "")]).await;
    let err = openai(&server)
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap_err();
    assert!(matches!(err, ModelError::BadBody { .. }), "{err}");
    assert!(err.to_string().contains("empty body"), "{err}");
}

#[tokio::test]
async fn an_event_that_is_not_json_is_a_bad_body() {
    let server = TestServer::start(vec![Canned::sse(
        "data: {\"choices\": [\n\ndata: [DONE]\n\n",
    )])
    .await;
    let err = openai(&server)
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap_err();
    assert!(matches!(err, ModelError::BadBody { .. }), "{err}");
    assert!(err.to_string().contains("{\\\"choices\\\": ["), "{err}");
}

#[tokio::test]
async fn an_oversized_reply_is_an_error() {
    let chunks: Vec<Value> = (0..20)
        .map(|_| chunk(json!({"content": "0123456789"}), None))
        .collect();
    let server = TestServer::start(vec![Canned::sse(&openai_sse(&chunks))]).await;
    let provider = openai_with(&server, |s| s.max_response_bytes = 100);
    let err = provider
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ModelError::TooLarge { limit: 100, .. }),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("max_response_bytes"), "{err}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn an_endless_line_hits_the_cap_too() {
    let body = format!("data: {{\"x\": \"{}", "a".repeat(5000));
    let server = TestServer::start(vec![Canned::sse(&body).hang_after(body.len())]).await;
    let provider = openai_with(&server, |s| s.max_response_bytes = 1000);
    let err = provider
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ModelError::TooLarge { limit: 1000, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_silent_stream_hits_the_idle_timeout() {
    let full = text_stream();
    let server = TestServer::start(vec![Canned::sse(&full).hang_after(full.len() / 3)]).await;
    let provider = openai_with(&server, |s| {
        s.idle_timeout = Duration::from_millis(300);
        s.retry.max_attempts = 1;
    });
    let err = provider
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::Timeout {
                kind: TimeoutKind::Idle,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_retryable());
    assert!(err.to_string().contains("idle_timeout"), "{err}");
}

#[tokio::test]
async fn an_error_object_inside_the_stream_is_reported() {
    let body = "data: {\"error\": {\"message\": \"the request exceeds the available context size\", \"type\": \"exceed_context_size_error\", \"code\": 400}}\n\n";
    let server = TestServer::start(vec![Canned::sse(body)]).await;
    let err = openai(&server)
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::Remote {
                retryable: false,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("exceed_context_size_error: the request exceeds"),
        "{err}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    // Bind and drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut s = settings(&format!("http://127.0.0.1:{port}"));
    s.retry.max_attempts = 1;
    let provider = provider_from_spec("openai:m", &s, None).unwrap();
    let err = provider
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap_err();
    assert!(matches!(err, ModelError::Connect { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test]
async fn a_key_is_required_off_loopback_only() {
    let err = provider_from_spec("openai:gpt-4o", &ProviderSettings::default(), None)
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            ModelError::MissingKey {
                variable: "OPENAI_API_KEY",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("OPENAI_API_KEY"), "{err}");

    for host in ["localhost", "[::1]", "127.0.0.2"] {
        let s = ProviderSettings {
            openai_base_url: format!("http://{host}:8080/v1"),
            ..ProviderSettings::default()
        };
        assert!(
            provider_from_spec("openai:local", &s, None).is_ok(),
            "{host}"
        );
    }
    // And no Authorization header goes to a keyless local server.
    let server = TestServer::start(vec![Canned::sse(&text_reply("hi"))]).await;
    openai(&server)
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap();
    assert_eq!(server.requests()[0].header("authorization"), None);
}

#[tokio::test]
async fn specs_name_the_model_after_the_first_colon() {
    let s = settings("http://127.0.0.1:9");
    let p = provider_from_spec("ollama:qwen2.5-coder:7b", &s, None).unwrap();
    assert_eq!((p.name(), p.model()), ("ollama", "qwen2.5-coder:7b"));
    for kind in ["openai", "anthropic", "ollama"] {
        for spec in [kind.to_string(), format!("{kind}:")] {
            let err = provider_from_spec(&spec, &s, None).err().unwrap();
            assert!(matches!(err, ModelError::MissingModel { .. }), "{err}");
            assert!(
                err.to_string().contains(&format!("`{kind}:MODEL`")),
                "{err}"
            );
        }
    }
    let err = provider_from_spec("gemini:pro", &s, None).err().unwrap();
    assert!(err.to_string().contains("openai:MODEL"), "{err}");
    assert_eq!(provider_from_spec("mock", &s, None).unwrap().name(), "mock");
    let err = provider_from_spec("scripted", &s, None).err().unwrap();
    assert!(matches!(err, ModelError::ScriptRequired));
    let with_window = ProviderSettings {
        context_window: Some(32_000),
        ..s
    };
    let p = provider_from_spec("openai:m", &with_window, None).unwrap();
    assert_eq!(p.context_window(), Some(32_000));
}

#[tokio::test]
async fn system_messages_and_empty_assistant_content() {
    let server = TestServer::start(vec![Canned::sse(&text_reply("x"))]).await;
    let mut messages = first_request().messages.as_ref().clone();
    messages.push(Message {
        tool_calls: vec![praxis_core::ToolCall {
            id: "c".into(),
            name: "fs_read".into(),
            arguments: json!({"path": "a"}),
        }],
        ..Message::new(Role::Assistant, "")
    });
    messages.push(Message::tool_result("c", "text"));
    let request = ModelRequest {
        step: 2,
        messages: Arc::new(messages),
        tools: first_request().tools,
    };
    openai(&server).complete(&request, &NoDeltas).await.unwrap();
    let body = server.requests()[0].json();
    // Empty text, not null: compatible servers such as llama-cpp-python reject null.
    assert_eq!(body["messages"][2]["content"], "");
}

#[tokio::test]
async fn required_with_a_single_tool_names_that_tool() {
    let server = TestServer::start(vec![Canned::sse(&text_reply("a"))]).await;
    let required = openai_with(&server, |s| s.tool_choice = ToolChoice::Required);
    let mut request = first_request();
    request.tools = Arc::new(request.tools[..1].to_vec());
    required.complete(&request, &NoDeltas).await.unwrap();
    let body = server.requests()[0].json();
    let name = request.tools[0].name.clone();
    assert_eq!(
        body["tool_choice"],
        json!({"type": "function", "function": {"name": name}})
    );
}

/// A whole chat completion, as `"stream": false` gets it (and as some servers answer a
/// streaming request anyway).
fn completion(message: Value, prompt: u64, completion: u64) -> String {
    json!({
        "id": "chatcmpl-9y", "object": "chat.completion", "created": 1_731_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    })
    .to_string()
}

#[tokio::test]
async fn a_plain_json_completion_answering_a_streaming_request_is_accepted() {
    let text = completion(
        json!({"role": "assistant", "content": "Hello there, the README says hi.", "refusal": null}),
        31,
        9,
    );
    let calls = completion(
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_Ab1", "type": "function", "function": {"name": "fs_read", "arguments": "{\"path\": \"README.md\"}"}},
            {"id": "call_Cd2", "type": "function", "function": {"name": "grep", "arguments": {"pattern": "TODO"}}},
        ]}),
        40,
        22,
    );
    let server = TestServer::start(vec![
        Canned::json_chunked(&text),
        Canned::json_chunked(&calls),
    ])
    .await;
    let provider = openai(&server);
    let sink = Sink::default();
    let response = provider.complete(&first_request(), &sink).await.unwrap();
    assert_eq!(response.content, "Hello there, the README says hi.");
    assert_eq!(sink.text().concat(), response.content);
    assert_eq!(
        (response.usage.input_tokens, response.usage.output_tokens),
        (31, 9),
        "usage as the server reported it"
    );
    assert_eq!(response.model, "gpt-4o-mini-2024-07-18");
    assert_eq!(server.requests()[0].json()["stream"], true);

    let response = provider
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap();
    assert_eq!(response.content, "");
    let calls: Vec<(&str, &str, Value)> = response
        .tool_calls
        .iter()
        .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.clone()))
        .collect();
    assert_eq!(
        calls,
        vec![
            ("call_Ab1", "fs_read", json!({"path": "README.md"})),
            ("call_Cd2", "grep", json!({"pattern": "TODO"})),
        ]
    );
    assert_eq!(
        (response.usage.input_tokens, response.usage.output_tokens),
        (40, 22)
    );
}

#[tokio::test]
async fn stream_false_asks_for_one_completion_and_reads_it() {
    let reply = completion(json!({"role": "assistant", "content": "fine"}), 12, 1);
    let server = TestServer::start(vec![Canned::json_chunked(&reply)]).await;
    let provider = openai_with(&server, |s| s.openai_stream = false);
    let response = provider
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap();
    assert_eq!(response.content, "fine");
    assert_eq!(
        (response.usage.input_tokens, response.usage.output_tokens),
        (12, 1)
    );
    let body = server.requests()[0].json();
    assert_eq!(body["stream"], false, "{body}");
    assert!(body.get("stream_options").is_none(), "{body}");
}

#[tokio::test]
async fn a_json_completion_is_held_to_the_response_cap_and_its_errors_are_quoted() {
    let long = completion(
        json!({"role": "assistant", "content": "x".repeat(5000)}),
        1,
        1,
    );
    let failed =
        json!({"error": {"message": "upstream overloaded", "type": "server_error"}}).to_string();
    let server = TestServer::start(vec![
        Canned::json_chunked(&long),
        Canned::json_chunked(&failed),
        Canned::json_chunked(&failed),
        Canned::json_chunked(&failed),
    ])
    .await;
    let provider = openai_with(&server, |s| s.max_response_bytes = 1000);
    let err = provider
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("max_response_bytes"), "{err}");
    let err = openai(&server)
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("upstream overloaded"), "{err}");
}
