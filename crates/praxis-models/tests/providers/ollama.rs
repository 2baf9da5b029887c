use crate::common::{Canned, TestServer, ndjson};
use crate::{Sink, estimated_input, first_request, later_request, settings};
use praxis_models::{
    ModelError, NoDeltas, Protocol, Provider, ProviderSettings, ToolChoice, estimate_tokens,
    provider_from_spec,
};
use serde_json::{Value, json};
use std::sync::Arc;

const MODEL: &str = "qwen2.5-coder:7b";

fn line(content: &str) -> Value {
    json!({"model": MODEL, "created_at": "2025-11-20T10:00:00.000Z",
           "message": {"role": "assistant", "content": content}, "done": false})
}

fn done(prompt: u64, eval: u64) -> Value {
    json!({"model": MODEL, "created_at": "2025-11-20T10:00:01.000Z",
           "message": {"role": "assistant", "content": ""}, "done_reason": "stop", "done": true,
           "total_duration": 4_883_583_458u64, "load_duration": 1_334_875, "prompt_eval_count": prompt,
           "prompt_eval_duration": 342_546_000, "eval_count": eval, "eval_duration": 4_535_599_000u64})
}

fn ollama_with(server: &TestServer, edit: impl FnOnce(&mut ProviderSettings)) -> Arc<dyn Provider> {
    let mut s = settings(&server.url());
    // OLLAMA_HOST style: host:port without a scheme.
    s.ollama_host = format!("127.0.0.1:{}", server.port());
    edit(&mut s);
    provider_from_spec(&format!("ollama:{MODEL}"), &s, None).unwrap()
}

fn ollama(server: &TestServer) -> Arc<dyn Provider> {
    ollama_with(server, |_| {})
}

#[tokio::test]
async fn streams_text_and_thinking_with_usage_from_the_done_line() {
    let lines = vec![
        json!({"model": MODEL, "message": {"role": "assistant", "content": "", "thinking": "Hmm,"}, "done": false}),
        json!({"model": MODEL, "message": {"role": "assistant", "content": "", "thinking": " easy."}, "done": false}),
        line("The README"),
        line(" greets"),
        line(" the reader."),
        done(26, 7),
    ];
    let server = TestServer::start(vec![Canned::ndjson(&ndjson(&lines))]).await;
    let sink = Sink::default();
    let response = ollama_with(&server, |s| {
        s.context_window = Some(16_384);
        s.tool_choice = ToolChoice::Required;
    })
    .complete(&first_request(), &sink)
    .await
    .unwrap();

    assert_eq!(response.content, "The README greets the reader.");
    assert_eq!(sink.text().len(), 3);
    assert_eq!(sink.text().concat(), response.content);
    assert_eq!(response.reasoning[0].text, "Hmm, easy.");
    assert_eq!(response.reasoning[0].signature, None);
    assert_eq!(
        (response.usage.input_tokens, response.usage.output_tokens),
        (26, 7)
    );
    assert_eq!(response.model, MODEL);

    let request = &server.requests()[0];
    assert_eq!(request.path, "/api/chat");
    let body = request.json();
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["stream"], true);
    assert_eq!(
        body["options"],
        json!({"num_predict": 4096, "num_ctx": 16384})
    );
    assert_eq!(body["tools"][1]["function"]["name"], "grep");
    // Ollama has no tool_choice: the setting is not sent.
    assert!(body.get("tool_choice").is_none(), "{body}");
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "You are a coding agent."},
            {"role": "user", "content": "Summarize the README."},
        ])
    );
}

#[tokio::test]
async fn whole_tool_calls_get_ids_and_usage_is_estimated_without_counts() {
    let lines = vec![
        json!({"model": MODEL, "message": {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "fs_read", "arguments": {"path": "README.md"}}},
            {"function": {"index": 1, "name": "grep", "arguments": {"pattern": "TODO"}}},
        ]}, "done": false}),
        json!({"model": MODEL, "message": {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_xyz", "function": {"name": "grep", "arguments": "{\"pattern\": "}},
        ]}, "done": false}),
        json!({"model": MODEL, "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop"}),
    ];
    let server = TestServer::start(vec![Canned::ndjson(&ndjson(&lines))]).await;
    let sink = Sink::default();
    let request = first_request();
    let response = ollama(&server).complete(&request, &sink).await.unwrap();

    let calls = &response.tool_calls;
    assert_eq!(calls.len(), 3);
    assert_eq!(
        (calls[0].id.as_str(), calls[0].name.as_str()),
        ("call_1", "fs_read")
    );
    assert_eq!(calls[0].arguments, json!({"path": "README.md"}));
    assert_eq!(calls[1].id, "call_2");
    assert_eq!(calls[1].arguments, json!({"pattern": "TODO"}));
    assert_eq!(calls[2].id, "call_xyz");
    // Unparseable argument text is passed on as a string.
    assert_eq!(calls[2].arguments, json!("{\"pattern\": "));
    assert_eq!(sink.arguments_of(0), "{\"path\":\"README.md\"}");

    let output: u64 = calls
        .iter()
        .map(|c| estimate_tokens(&c.name) + estimate_tokens(&c.arguments.to_string()))
        .sum();
    assert_eq!(response.usage.input_tokens, estimated_input(&request));
    assert_eq!(response.usage.output_tokens, output);
}

#[tokio::test]
async fn history_sends_tool_calls_as_objects_and_results_with_tool_names() {
    let server = TestServer::start(vec![
        Canned::ndjson(&ndjson(&[line("ok"), done(1, 1)])),
        Canned::ndjson(&ndjson(&[line("ok"), done(1, 1)])),
    ])
    .await;
    ollama(&server)
        .complete(&later_request(), &NoDeltas)
        .await
        .unwrap();
    ollama_with(&server, |s| s.protocol = Protocol::Cmd)
        .complete(&later_request(), &NoDeltas)
        .await
        .unwrap();

    let requests = server.requests();
    let body = requests[0].json();
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(
        messages[2]["tool_calls"],
        json!([
            {"id": "call_1", "function": {"name": "fs_read", "arguments": {"path": "README.md"}}},
            {"id": "call_2", "function": {"name": "grep", "arguments": {"_invalid_arguments": "{\"pattern\": \"TO"}}},
        ])
    );
    // Only unredacted reasoning goes back, as `thinking`.
    assert_eq!(messages[2]["thinking"], "I should read it.");
    assert_eq!(
        messages[3],
        json!({"role": "tool", "content": "# Demo\nHello.", "tool_call_id": "call_1", "tool_name": "fs_read"})
    );
    assert_eq!(messages[4]["tool_name"], "grep");

    let cmd = requests[1].json();
    assert!(cmd.get("tools").is_none(), "{cmd}");
    assert!(
        cmd["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["role"] != "tool")
    );
}

#[tokio::test]
async fn an_error_line_is_an_error() {
    let body = ndjson(&[
        line("Partial"),
        json!({"error": "model runner has unexpectedly stopped"}),
    ]);
    let server = TestServer::start(vec![Canned::ndjson(&body)]).await;
    let err = ollama_with(&server, |s| s.retry.max_attempts = 1)
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap_err();
    assert!(matches!(err, ModelError::Remote { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("model runner has unexpectedly stopped"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unknown_model_quotes_ollama_and_is_not_retried() {
    let server = TestServer::start(vec![Canned::status(
        404,
        "application/json; charset=utf-8",
        r#"{"error":"model 'qwen2.5-coder:7b' not found"}"#,
    )])
    .await;
    let err = ollama(&server)
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ModelError::Status { status: 404, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("model 'qwen2.5-coder:7b' not found"),
        "{err}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_stream_without_its_done_line_is_retried() {
    let full = ndjson(&[line("One"), line(" two"), done(5, 2)]);
    let server = TestServer::start(vec![
        Canned::ndjson(&full).disconnect_after(full.len() / 2),
        Canned::ndjson(&ndjson(&[line("Again"), done(5, 1)])),
    ])
    .await;
    let response = ollama(&server)
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap();
    assert_eq!(response.content, "Again");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_line_that_is_not_json_is_a_bad_body() {
    let server = TestServer::start(vec![Canned::ndjson("this is not json\n")]).await;
    let err = ollama(&server)
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap_err();
    assert!(matches!(err, ModelError::BadBody { .. }), "{err}");
    assert!(err.to_string().contains("this is not json"), "{err}");
}

#[tokio::test]
async fn a_bad_host_is_a_config_error_naming_the_variable() {
    let s = ProviderSettings {
        ollama_host: "my box:11434".into(),
        ..ProviderSettings::default()
    };
    let err = provider_from_spec("ollama:m", &s, None).err().unwrap();
    assert!(matches!(err, ModelError::Config(_)), "{err}");
    assert!(err.to_string().contains("OLLAMA_HOST"), "{err}");
}
