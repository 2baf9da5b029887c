//! The OpenAI-compatible presets (`huggingface:`, `lmstudio:`, `vllm:`, `llamacpp:`), each
//! against a local server speaking the dialect: the path, the auth header (or its absence)
//! and the model name sent; a preset without its base URL fails naming the variable.

use crate::common::{Canned, TestServer, openai_sse};
use crate::{Sink, first_request, settings};
use praxis_core::ModelRequest;
use praxis_models::{ModelError, PRESETS, Provider, ProviderSettings, provider_from_spec};
use serde_json::json;

fn reply() -> Canned {
    Canned::sse(&openai_sse(&[
        json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": "ok"}, "finish_reason": null}]}),
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}),
    ]))
}

/// Settings whose only preset variables are `vars`.
fn with_vars(server: &TestServer, vars: &[(&str, String)]) -> ProviderSettings {
    let mut s = settings(&server.url());
    // The preset must not fall back to the openai settings.
    s.openai_base_url = "http://127.0.0.1:9/unused".into();
    s.openai_api_key = Some("sk-openai-must-not-be-sent".into());
    s.preset_vars = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    s
}

async fn call(spec: &str, s: &ProviderSettings) -> (std::sync::Arc<dyn Provider>, String) {
    let provider = provider_from_spec(spec, s, None).unwrap();
    let request: ModelRequest = first_request();
    let response = provider.complete(&request, &Sink::default()).await.unwrap();
    (provider, response.content)
}

#[tokio::test]
async fn huggingface_sends_hf_token_and_the_model_to_the_router_dialect() {
    let server = TestServer::start(vec![reply()]).await;
    let s = with_vars(
        &server,
        &[
            ("HF_BASE_URL", format!("{}/v1", server.url())),
            ("HF_TOKEN", "hf_secret".into()),
        ],
    );
    let (provider, text) = call("huggingface:meta-llama/Llama-3.1-8B-Instruct", &s).await;
    assert_eq!(text, "ok");
    assert_eq!(provider.name(), "huggingface");
    assert_eq!(provider.model(), "meta-llama/Llama-3.1-8B-Instruct");
    let request = &server.requests()[0];
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(request.header("authorization"), Some("Bearer hf_secret"));
    assert_eq!(request.json()["model"], "meta-llama/Llama-3.1-8B-Instruct");
}

#[test]
fn huggingface_defaults_to_the_router_and_needs_hf_token() {
    let err = provider_from_spec("huggingface:m", &ProviderSettings::default(), None)
        .err()
        .expect("no HF_TOKEN");
    let text = err.to_string();
    assert!(
        matches!(
            err,
            ModelError::MissingKey {
                variable: "HF_TOKEN",
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("https://router.huggingface.co/v1/chat/completions"),
        "{text}"
    );
}

#[tokio::test]
async fn lmstudio_sends_no_key() {
    let server = TestServer::start(vec![reply()]).await;
    let s = with_vars(
        &server,
        &[("LMSTUDIO_BASE_URL", format!("{}/v1", server.url()))],
    );
    let (provider, _) = call("lmstudio:qwen2.5-7b-instruct", &s).await;
    assert_eq!(provider.name(), "lmstudio");
    let request = &server.requests()[0];
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(request.header("authorization"), None);
    assert_eq!(request.json()["model"], "qwen2.5-7b-instruct");
}

#[test]
fn lmstudio_defaults_to_localhost_1234() {
    let line = PRESETS
        .iter()
        .find(|p| p.name == "lmstudio")
        .unwrap()
        .describe(&ProviderSettings::default());
    assert!(line.contains("http://localhost:1234/v1"), "{line}");
    assert!(line.contains("no key"), "{line}");
}

#[tokio::test]
async fn vllm_and_llamacpp_use_their_base_url_variable_and_an_optional_key() {
    for (preset, url_var, key_var) in [
        ("vllm", "VLLM_BASE_URL", "VLLM_API_KEY"),
        ("llamacpp", "LLAMACPP_BASE_URL", "LLAMACPP_API_KEY"),
    ] {
        // Without a key: no header.
        let server = TestServer::start(vec![reply(), reply()]).await;
        let base = format!("{}/v1/", server.url());
        let s = with_vars(&server, &[(url_var, base.clone())]);
        let (provider, _) = call(&format!("{preset}:Qwen/Qwen2.5:7b"), &s).await;
        assert_eq!(provider.name(), preset);
        // With one: a bearer header.
        let s = with_vars(&server, &[(url_var, base), (key_var, "local-key".into())]);
        call(&format!("{preset}:Qwen/Qwen2.5:7b"), &s).await;
        let requests = server.requests();
        assert_eq!(requests.len(), 2, "{preset}");
        for r in &requests {
            assert_eq!(r.path, "/v1/chat/completions", "{preset}");
            assert_eq!(r.json()["model"], "Qwen/Qwen2.5:7b", "{preset}");
        }
        assert_eq!(requests[0].header("authorization"), None, "{preset}");
        assert_eq!(
            requests[1].header("authorization"),
            Some("Bearer local-key"),
            "{preset}"
        );
    }
}

#[test]
fn a_preset_without_its_base_url_names_the_variable() {
    for (spec, var) in [
        ("vllm:m", "VLLM_BASE_URL"),
        ("llamacpp:m", "LLAMACPP_BASE_URL"),
    ] {
        let err = provider_from_spec(spec, &ProviderSettings::default(), None)
            .err()
            .expect("unset base URL");
        assert!(matches!(err, ModelError::MissingBaseUrl { variable, .. } if variable == var));
        assert!(err.to_string().contains(var), "{err}");
    }
    // Without a model, the error shows the preset's example.
    let err = provider_from_spec("vllm", &ProviderSettings::default(), None)
        .err()
        .unwrap();
    assert!(err.to_string().contains("vllm:Qwen/"), "{err}");
}

#[test]
fn preset_variables_come_from_the_environment_and_bad_urls_are_refused() {
    let s = ProviderSettings::from_vars(|k| match k {
        "VLLM_BASE_URL" => Some(" http://gpu-box:8000/v1 ".into()),
        "HF_TOKEN" => Some("".into()),
        _ => None,
    });
    assert_eq!(
        s.preset_vars.get("VLLM_BASE_URL").map(String::as_str),
        Some("http://gpu-box:8000/v1")
    );
    assert!(
        !s.preset_vars.contains_key("HF_TOKEN"),
        "empty counts as unset"
    );
    let mut bad = ProviderSettings::default();
    bad.preset_vars
        .insert("LLAMACPP_BASE_URL".into(), "not a url".into());
    let err = provider_from_spec("llamacpp:m", &bad, None).err().unwrap();
    assert!(err.to_string().contains("LLAMACPP_BASE_URL"), "{err}");
}
