use crate::common::{Canned, TestServer, ndjson, openai_sse};
use crate::{first_request, settings};
use praxis_models::{
    ModelError, NoDeltas, Provider, ProviderSettings, failover, provider_from_spec,
};
use serde_json::json;
use std::sync::Arc;

fn busy() -> Canned {
    Canned::status(
        503,
        "application/json",
        r#"{"error":{"message":"upstream overloaded","type":"server_error"}}"#,
    )
}

fn ollama_reply(text: &str) -> Canned {
    Canned::ndjson(&ndjson(&[
        json!({"model": "llama3.2:3b", "message": {"role": "assistant", "content": text}, "done": false}),
        json!({"model": "llama3.2:3b", "message": {"role": "assistant", "content": ""}, "done": true, "prompt_eval_count": 12, "eval_count": 3}),
    ]))
}

fn two_attempts(url: &str) -> ProviderSettings {
    let mut s = settings(url);
    s.retry.max_attempts = 2;
    s
}

fn chain(first: &TestServer, second: &TestServer) -> Arc<dyn Provider> {
    let a = provider_from_spec("openai:gpt-4o-mini", &two_attempts(&first.url()), None).unwrap();
    let b = provider_from_spec("ollama:llama3.2:3b", &two_attempts(&second.url()), None).unwrap();
    failover(vec![a, b])
}

#[tokio::test]
async fn moves_to_the_next_provider_after_the_first_exhausts_its_retries() {
    let first = TestServer::start(vec![busy(), busy()]).await;
    let second = TestServer::start(vec![ollama_reply("From the backup.")]).await;
    let provider = chain(&first, &second);
    assert_eq!(
        (provider.name(), provider.model()),
        ("openai", "gpt-4o-mini")
    );
    let response = provider
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap();
    assert_eq!(response.content, "From the backup.");
    assert_eq!(response.model, "llama3.2:3b");
    assert_eq!(first.requests().len(), 2);
    assert_eq!(second.requests().len(), 1);
}

#[tokio::test]
async fn the_first_provider_answers_when_it_can() {
    let ok = openai_sse(&[
        json!({"model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": "Primary."}, "finish_reason": "stop"}]}),
    ]);
    let first = TestServer::start(vec![Canned::sse(&ok)]).await;
    let second = TestServer::start(vec![]).await;
    let response = chain(&first, &second)
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap();
    assert_eq!(
        (response.content.as_str(), response.model.as_str()),
        ("Primary.", "gpt-4o-mini")
    );
    assert!(second.requests().is_empty());
}

#[tokio::test]
async fn auth_errors_are_returned_at_once() {
    let first = TestServer::start(vec![Canned::status(
        401,
        "application/json",
        r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}"#,
    )])
    .await;
    let second = TestServer::start(vec![ollama_reply("unused")]).await;
    let err = chain(&first, &second)
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap_err();
    assert!(matches!(err, ModelError::Auth { .. }), "{err}");
    assert_eq!(first.requests().len(), 1);
    assert!(second.requests().is_empty());
}

#[tokio::test]
async fn when_all_fail_the_error_lists_each_attempt() {
    let first = TestServer::start(vec![busy(), busy()]).await;
    let second = TestServer::start(vec![
        Canned::status(500, "text/html", "<html>Internal Server Error</html>"),
        Canned::status(500, "text/html", "<html>Internal Server Error</html>"),
    ])
    .await;
    let err = chain(&first, &second)
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap_err();
    let ModelError::AllFailed { attempts } = &err else {
        panic!("expected AllFailed, got {err}");
    };
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].provider, "openai:gpt-4o-mini");
    assert_eq!(attempts[1].provider, "ollama:llama3.2:3b");
    let text = err.to_string();
    assert!(
        text.contains("upstream overloaded") && text.contains("Internal Server Error"),
        "{text}"
    );
    assert!(
        text.contains("(1) openai:gpt-4o-mini") && text.contains("(2) ollama:llama3.2:3b"),
        "{text}"
    );
}

#[tokio::test]
async fn comma_separated_specs_build_a_chain() {
    let first = TestServer::start(vec![busy(), busy()]).await;
    let second = TestServer::start(vec![ollama_reply("chained")]).await;
    let mut s = two_attempts(&first.url());
    s.ollama_host = second.url();
    let provider = provider_from_spec("openai:gpt-4o-mini, ollama:llama3.2:3b", &s, None).unwrap();
    let response = provider
        .complete(&first_request(), &NoDeltas)
        .await
        .unwrap();
    assert_eq!(response.content, "chained");
    let delegate = provider.for_delegate("sub task").unwrap();
    assert_eq!(delegate.model(), "gpt-4o-mini");
}
