//! Fuzz target (proptest; see tests/fuzz_support.rs at the workspace root for the modes):
//! the API's request bodies, sent over HTTP to a real server. Whatever the body, the answer
//! is never a 5xx, a refused typed body names its field when the field is known, and the
//! server keeps answering.

#[path = "../../../tests/fuzz_support.rs"]
mod fuzz_support;

use fuzz_support::{fuzz, mutate, mutations};
use praxis_runtime::{DataHome, WritGrant};
use praxis_server::{Server, ServerConfig, WorkspaceRoots};
use praxis_writ::{IssuerKey, WritSpec};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::SystemTime;

const FIELDS: &[&str] = &[
    "task",
    "workspace",
    "provider",
    "model",
    "writ",
    "protocol",
    "tool_choice",
    "max_steps",
    "max_seconds",
    "limits",
    "read_only",
    "tools",
    "script",
    "approve",
    "token",
    "decision",
    "reason",
    "at",
    "max_invalid_replies",
    "bogus",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        any::<u64>().prop_map(Value::from),
        "[ -~é😀]{0,16}".prop_map(Value::from),
        prop::sample::select(vec![
            "mock", "scripted", "tools", "cmd", "auto", "approve", "deny"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::vec((prop::sample::select(FIELDS), inner), 0..5).prop_map(
                |pairs| Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            ),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    let object = proptest::collection::vec((prop::sample::select(FIELDS), json_value()), 0..6)
        .prop_map(|pairs| {
            Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
        });
    prop_oneof![
        4 => object.prop_map(|v| v.to_string().into_bytes()),
        1 => (json_value(), mutations())
            .prop_map(|(v, m)| mutate(v.to_string().as_bytes(), &m)),
        1 => proptest::collection::vec(any::<u8>(), 0..64),
    ]
}

#[test]
fn fuzz_api_request_bodies() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let roots = tempfile::tempdir().unwrap();
    let key = Arc::new(IssuerKey::generate());
    let mut config = ServerConfig::new(DataHome::at(home.path()));
    config.workspace_roots = WorkspaceRoots::parse(roots.path().to_str().unwrap()).unwrap();
    let writ_key = key.clone();
    config.writs = Some(Arc::new(move |token: Option<&str>| {
        let token = match token {
            Some(t) => t.to_string(),
            None => {
                praxis_writ::issue(&WritSpec::development("test"), &writ_key, SystemTime::now())?
            }
        };
        Ok(WritGrant {
            token,
            anchor: writ_key.anchor(),
        })
    }));
    let server = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Server::start(listener, config).await.unwrap()
    });
    let url = server.url();
    let http = reqwest::Client::new();
    let paths = prop::sample::select(vec![
        "/v1/runs",
        "/v1/writs/verify",
        "/v1/approvals/01nope:call-1",
        "/v1/runs/01nope/resume",
        "/v1/runs/01nope/branch",
        "/v1/runs/01nope/whatif",
    ]);
    fuzz(
        "API request bodies",
        file!(),
        128,
        (paths, body()),
        |(path, body)| {
            let (status, answer) = rt.block_on(async {
                let response = http
                    .post(format!("{url}{path}"))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                (status, response.bytes().await.unwrap())
            });
            prop_assert!(
                !status.is_server_error(),
                "{path} answered {status} to {}: {}",
                String::from_utf8_lossy(&body),
                String::from_utf8_lossy(&answer)
            );
            if status.as_u16() == 422 {
                let error: Value = serde_json::from_slice(&answer).unwrap();
                let message = error["error"].as_str().unwrap_or_default();
                prop_assert!(!message.is_empty());
                if let Some(field) = error["field"].as_str() {
                    let leaf = field.rsplit('.').next().unwrap_or(field);
                    prop_assert!(
                        message.contains(leaf),
                        "{message:?} does not name {field:?}"
                    );
                }
            }
            Ok(())
        },
    );
    // Still serving.
    let health = rt.block_on(async {
        http.get(format!("{url}/v1/runs"))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert!(health.is_success(), "{health}");
    drop(server);
}
