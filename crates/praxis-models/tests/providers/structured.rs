use crate::common::{Canned, TestServer, openai_sse};
use crate::settings;
use praxis_core::{Message, Role};
use praxis_models::{NoDeltas, StructuredError, complete_structured, provider_from_spec};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize, schemars::JsonSchema, PartialEq)]
struct Review {
    approve: bool,
    reasons: Vec<String>,
}

fn reply(text: &str) -> Canned {
    Canned::sse(&openai_sse(&[
        json!({"model": "m", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]}),
        json!({"model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        json!({"model": "m", "choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 10}}),
    ]))
}

fn messages() -> Vec<Message> {
    vec![
        Message::new(Role::System, "You review patches."),
        Message::new(Role::User, "Review: fix typo in README."),
    ]
}

#[tokio::test]
async fn an_invalid_first_reply_is_corrected_once() {
    let server = TestServer::start(vec![
        reply("{\"approve\": \"yes\"}"),
        reply("```json\n{\"approve\": true, \"reasons\": [\"small and safe\"]}\n```"),
    ])
    .await;
    let provider = provider_from_spec("openai:m", &settings(&server.url()), None).unwrap();
    let (review, response) =
        complete_structured::<Review>(provider.as_ref(), messages(), &NoDeltas)
            .await
            .unwrap();
    assert_eq!(
        review,
        Review {
            approve: true,
            reasons: vec!["small and safe".into()]
        }
    );
    // Both calls are counted.
    assert_eq!(response.usage.input_tokens, 200);

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let first = requests[0].json();
    let sent = first["messages"].as_array().unwrap();
    assert_eq!(sent[0]["content"], "You review patches.");
    assert_eq!(sent[1]["role"], "system");
    let instruction = sent[1]["content"].as_str().unwrap();
    assert!(
        instruction.contains("JSON Schema") && instruction.contains("\"reasons\""),
        "{instruction}"
    );
    assert!(first.get("tools").is_none());
    let second = requests[1].json();
    let sent = second["messages"].as_array().unwrap();
    assert_eq!(
        sent[3],
        json!({"role": "assistant", "content": "{\"approve\": \"yes\"}"})
    );
    let correction = sent[4]["content"].as_str().unwrap();
    assert!(
        correction.contains("does not match the schema"),
        "{correction}"
    );
    assert!(
        correction.contains("reasons") && correction.contains("\"yes\""),
        "{correction}"
    );
}

#[tokio::test]
async fn two_invalid_replies_are_an_error_naming_both_problems() {
    let server = TestServer::start(vec![reply("I approve!"), reply("{\"approve\": true}")]).await;
    let provider = provider_from_spec("openai:m", &settings(&server.url()), None).unwrap();
    let err = complete_structured::<Review>(provider.as_ref(), messages(), &NoDeltas)
        .await
        .unwrap_err();
    let StructuredError::Invalid {
        first,
        second,
        reply,
        ..
    } = &err
    else {
        panic!("expected Invalid, got {err}");
    };
    assert!(first.contains("not valid JSON"), "{first}");
    assert!(second.contains("reasons"), "{second}");
    assert_eq!(reply, "{\"approve\": true}");
    assert!(err.to_string().contains("Review"), "{err}");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn model_errors_pass_through() {
    let server = TestServer::start(vec![Canned::status(
        400,
        "application/json",
        r#"{"error":{"message":"bad","type":"invalid_request_error"}}"#,
    )])
    .await;
    let provider = provider_from_spec("openai:m", &settings(&server.url()), None).unwrap();
    let err = complete_structured::<Review>(provider.as_ref(), messages(), &NoDeltas)
        .await
        .unwrap_err();
    assert!(matches!(err, StructuredError::Model(_)), "{err}");
}
