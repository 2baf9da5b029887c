//! The OpenTelemetry trace sink (feature `otel`): a local OTLP/HTTP receiver decodes the
//! protobuf spans of a scripted run made by a child process (this test binary again) with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at it: names, parent links and GenAI attributes.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use std::sync::{Arc, Mutex};

const SCRIPT_VAR: &str = "PRAXIS_OTEL_TEST_SCRIPT";

/// The child: one scripted run (read the README, answer). Prints its run id.
#[tokio::test]
#[ignore = "run by spans_of_a_scripted_run_reach_an_otlp_receiver (as a child process)"]
async fn child_runs_a_scripted_agent() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README.md"), "hello\n").unwrap();
    let script = match std::env::var(SCRIPT_VAR) {
        Ok(path) => std::path::PathBuf::from(path),
        Err(_) => {
            let path = dir.path().join("script.json");
            std::fs::write(&path, script()).unwrap();
            path
        }
    };
    let agent = praxis::Agent::builder()
        .provider(format!("scripted:{}", script.display()))
        .workspace(dir.path())
        .build()
        .unwrap();
    let result = agent
        .run(&[], "What does the README say?", Default::default())
        .await
        .unwrap();
    assert_eq!(result.status, praxis::RunStatus::Completed);
    println!("RUN_ID={}", result.run_id);
}

fn script() -> String {
    serde_json::json!({"turns": [
        {"tool_calls": [{"id": "r1", "name": "fs_read", "arguments": {"path": "README.md"}}]},
        {"content": "It says hello."}
    ]})
    .to_string()
}

fn attr<'s>(span: &'s Span, key: &str) -> Option<&'s Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text(span: &Span, key: &str) -> String {
    match attr(span, key) {
        Some(Value::StringValue(s)) => s.clone(),
        other => panic!("span `{}`: `{key}` is {other:?}", span.name),
    }
}

fn int(span: &Span, key: &str) -> i64 {
    match attr(span, key) {
        Some(Value::IntValue(n)) => *n,
        other => panic!("span `{}`: `{key}` is {other:?}", span.name),
    }
}

#[tokio::test]
async fn spans_of_a_scripted_run_reach_an_otlp_receiver() {
    // The receiver: OTLP/HTTP protobuf on a free port.
    let received: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let app = Router::new()
        .route(
            "/v1/traces",
            post(
                |State(received): State<Arc<Mutex<Vec<Bytes>>>>, body: Bytes| async move {
                    received.lock().unwrap().push(body);
                    (
                        [("content-type", "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let script_path = dir.path().join("script.json");
    std::fs::write(&script_path, script()).unwrap();
    let out = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_runs_a_scripted_agent",
            "--ignored",
            "--nocapture",
        ])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}"))
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
        .env_remove("OTEL_SDK_DISABLED")
        .env(SCRIPT_VAR, &script_path)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run_id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RUN_ID="))
        .expect("the child prints its run id")
        .trim()
        .to_string();

    // The child flushed before its run returned: everything is here.
    let spans: Vec<Span> = received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|body| {
            ExportTraceServiceRequest::decode(body.as_ref())
                .unwrap()
                .resource_spans
        })
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .collect();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let run: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "invoke_agent praxis")
        .collect();
    assert_eq!(run.len(), 1, "{names:?}");
    let run = run[0];
    assert!(run.parent_span_id.is_empty());
    assert_eq!(run.kind, SpanKind::Internal as i32);
    assert_eq!(text(run, "gen_ai.operation.name"), "invoke_agent");
    assert_eq!(text(run, "gen_ai.agent.name"), "praxis");
    assert_eq!(text(run, "gen_ai.conversation.id"), run_id);
    assert_eq!(text(run, "gen_ai.provider.name"), "scripted");
    assert_eq!(text(run, "gen_ai.system"), "scripted");
    assert_eq!(text(run, "praxis.run.status"), "completed");
    let model = text(run, "gen_ai.request.model");

    // Two model calls, children of the run span.
    let chats: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name.starts_with("chat"))
        .collect();
    assert_eq!(chats.len(), 2, "{names:?}");
    let (mut input, mut output) = (0, 0);
    for chat in &chats {
        assert_eq!(chat.name, format!("chat {model}"));
        assert_eq!(chat.trace_id, run.trace_id);
        assert_eq!(chat.parent_span_id, run.span_id);
        assert_eq!(chat.kind, SpanKind::Client as i32);
        assert_eq!(text(chat, "gen_ai.operation.name"), "chat");
        assert_eq!(text(chat, "gen_ai.provider.name"), "scripted");
        assert_eq!(text(chat, "gen_ai.request.model"), model);
        assert!(chat.start_time_unix_nano <= chat.end_time_unix_nano);
        input += int(chat, "gen_ai.usage.input_tokens");
        output += int(chat, "gen_ai.usage.output_tokens");
    }
    assert!(input > 0 && output > 0);
    // The run's usage is its calls' sum.
    assert_eq!(int(run, "gen_ai.usage.input_tokens"), input);
    assert_eq!(int(run, "gen_ai.usage.output_tokens"), output);

    // One tool execution, a child of the run span too.
    let tools: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name.starts_with("execute_tool"))
        .collect();
    assert_eq!(tools.len(), 1, "{names:?}");
    let tool = tools[0];
    assert_eq!(tool.name, "execute_tool fs_read");
    assert_eq!(tool.parent_span_id, run.span_id);
    assert_eq!(text(tool, "gen_ai.operation.name"), "execute_tool");
    assert_eq!(text(tool, "gen_ai.tool.name"), "fs_read");
    assert_eq!(text(tool, "gen_ai.tool.call.id"), "r1");
    assert!(run.start_time_unix_nano <= tool.start_time_unix_nano);
    assert!(tool.end_time_unix_nano <= run.end_time_unix_nano);
    assert_eq!(spans.len(), 4, "{names:?}");
}
