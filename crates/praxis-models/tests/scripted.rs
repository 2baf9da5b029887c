use praxis_core::{Message, ModelRequest, ModelResponse, Role, ToolCall, cmd};
use praxis_models::{
    DeltaSink, ModelError, NoDeltas, Provider, ScriptedProvider, estimate_tokens,
    provider_from_name,
};
use serde_json::json;
use std::sync::Mutex;

#[derive(Default)]
struct Collect(Mutex<Vec<String>>);
impl DeltaSink for Collect {
    fn text(&self, delta: &str) {
        self.0.lock().unwrap().push(delta.to_string());
    }
}

const SCRIPT: &str = r#"{"turns": [
  {"content": "Let me look.", "tool_calls": [
     {"id": "c1", "name": "fs_read", "arguments": {"path": "README.md"}},
     {"name": "grep", "arguments": {"pattern": "TODO"}},
     {"name": "repo_map"}
  ]},
  {"content": "Now a command: <cmd>cargo test -q</cmd>"},
  {"content": "All done: the README says hello."}
]}"#;

/// The request of model call `answered + 1`, whose history holds `answered` assistant
/// replies. The turn follows the step (a compacted history may hold fewer replies).
fn request(answered: usize) -> ModelRequest {
    let mut messages = vec![
        Message::new(
            Role::System,
            "Workspace: /tmp/ws (all paths are relative to it).",
        ),
        Message::new(Role::User, "say hello"),
    ];
    for i in 0..answered {
        messages.push(Message {
            role: Role::Assistant,
            content: format!("reply {i}"),
            tool_calls: vec![ToolCall {
                id: format!("x{i}"),
                name: "fs_read".into(),
                arguments: json!({}),
            }],
            tool_call_id: None,
            reasoning: Vec::new(),
        });
        messages.push(Message::tool_result(format!("x{i}"), "contents"));
    }
    ModelRequest {
        step: answered as u32 + 1,
        messages: messages.into(),
        tools: Default::default(),
    }
}

async fn reply(provider: &ScriptedProvider, answered: usize) -> Result<ModelResponse, ModelError> {
    provider.complete(&request(answered), &NoDeltas).await
}

fn invalid(text: &str) -> String {
    match ScriptedProvider::from_json_str(text, "broken.json") {
        Ok(p) => panic!("expected an invalid script, got {} turns", p.turns()),
        Err(e @ ModelError::InvalidScript { .. }) => e.to_string(),
        Err(other) => panic!("expected InvalidScript, got {other:?}"),
    }
}

#[tokio::test]
async fn turn_is_chosen_by_step() {
    let p = ScriptedProvider::from_json_str(SCRIPT, "demo").unwrap();
    assert_eq!((p.name(), p.model(), p.turns()), ("scripted", "demo", 3));

    let first = reply(&p, 0).await.unwrap();
    assert_eq!(first.content, "Let me look.");
    assert_eq!(first.model, "demo");
    let names: Vec<&str> = first.tool_calls.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["fs_read", "grep", "repo_map"]);

    assert_eq!(
        reply(&p, 2).await.unwrap().content,
        "All done: the README says hello."
    );
    // Same history, same turn: the provider keeps no state between calls.
    assert_eq!(reply(&p, 1).await.unwrap(), reply(&p, 1).await.unwrap());
    assert_eq!(reply(&p, 0).await.unwrap().content, "Let me look.");
}

#[tokio::test]
async fn ids_are_kept_or_generated_and_arguments_default_to_an_object() {
    let p = ScriptedProvider::from_json_str(SCRIPT, "demo").unwrap();
    let calls = reply(&p, 0).await.unwrap().tool_calls;
    assert_eq!(calls[0].id, "c1");
    assert_eq!(calls[0].arguments, json!({"path": "README.md"}));
    assert_eq!(calls[1].id, "call-1-2");
    assert_eq!(calls[2].id, "call-1-3");
    assert_eq!(calls[2].arguments, json!({}));

    let later = r#"{"turns": [{"content": "a"}, {"tool_calls": [{"name": "grep", "id": ""}]}]}"#;
    let p = ScriptedProvider::from_json_str(later, "later").unwrap();
    let second = reply(&p, 1).await.unwrap();
    assert_eq!(second.content, "");
    assert_eq!(second.tool_calls[0].id, "call-2-1");
}

#[tokio::test]
async fn exhaustion_names_the_turn_count_and_the_turn_asked_for() {
    let p = ScriptedProvider::from_json_str(SCRIPT, "demo").unwrap();
    let err = reply(&p, 3).await.unwrap_err();
    assert!(
        matches!(err, ModelError::ScriptExhausted { turns: 3, call: 4 }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("the script has 3 turns but the run asked for turn 4"),
        "{text}"
    );

    let one = ScriptedProvider::from_json_str(r#"{"turns": [{"content": "x"}]}"#, "one").unwrap();
    let text = reply(&one, 1).await.unwrap_err().to_string();
    assert!(
        text.contains("the script has 1 turn but the run asked for turn 2"),
        "{text}"
    );
}

#[tokio::test]
async fn cmd_blocks_pass_through_untouched() {
    let p = ScriptedProvider::from_json_str(SCRIPT, "demo").unwrap();
    let second = reply(&p, 1).await.unwrap();
    assert_eq!(second.content, "Now a command: <cmd>cargo test -q</cmd>");
    assert!(second.tool_calls.is_empty());
    assert_eq!(
        cmd::parse_cmd_blocks(&second.content).unwrap(),
        ["cargo test -q"]
    );
}

#[tokio::test]
async fn content_streams_in_chunks_and_usage_is_estimated() {
    let text = "one two three four five six seven eight nine ten eleven twelve";
    let script = json!({"turns": [{"content": text}]}).to_string();
    let p = ScriptedProvider::from_json_str(&script, "s").unwrap();
    let sink = Collect::default();
    let req = request(0);
    let response = p.complete(&req, &sink).await.unwrap();
    let chunks = sink.0.into_inner().unwrap();
    assert!(chunks.len() >= 3, "{chunks:?}");
    assert_eq!(chunks.concat(), text);
    let input: u64 = req
        .messages
        .iter()
        .map(|m| estimate_tokens(&m.content))
        .sum();
    assert_eq!(response.usage.input_tokens, input);
    assert_eq!(response.usage.output_tokens, estimate_tokens(text));
}

#[test]
fn malformed_scripts_get_clear_messages() {
    let empty = invalid("  \n");
    assert!(
        empty.contains("broken.json") && empty.contains("empty"),
        "{empty}"
    );

    let syntax = invalid("{\"turns\": [\n  {\"content\": \"a\",}\n]}");
    assert!(
        syntax.contains("not valid JSON") && syntax.contains("line 2"),
        "{syntax}"
    );

    let array = invalid("[1, 2]");
    assert!(
        array.contains("expected a JSON object") && array.contains("found an array"),
        "{array}"
    );

    let not_array = invalid(r#"{"turns": {"content": "a"}}"#);
    assert!(
        not_array.contains("`turns` must be an array") && not_array.contains("found an object"),
        "{not_array}"
    );

    let wrong_type = invalid("{\"turns\": [\n {\"content\": \"ok\"},\n {\"content\": 5}\n]}");
    assert!(
        wrong_type.starts_with(
            "invalid script broken.json: turns[1]: invalid type: integer `5`, expected a string"
        ),
        "{wrong_type}"
    );
    assert!(wrong_type.contains("line 3"), "{wrong_type}");

    let missing_name = invalid(
        r#"{"turns": [{"content": "a"}, {"content": "b"}, {"tool_calls": [{"arguments": {}}]}]}"#,
    );
    assert!(
        missing_name.contains("turns[2].tool_calls[0]: missing field `name`"),
        "{missing_name}"
    );

    let none = invalid(r#"{"turns": []}"#);
    assert!(none.contains("`turns` is empty"), "{none}");

    let missing_turns = invalid(r#"{}"#);
    assert!(
        missing_turns.contains("missing field `turns`"),
        "{missing_turns}"
    );

    let dup = invalid(
        r#"{"turns": [{"tool_calls": [{"id": "a", "name": "x"}, {"id": "a", "name": "y"}]}]}"#,
    );
    assert!(
        dup.contains("turns[0].tool_calls[1]: duplicate id `a`"),
        "{dup}"
    );
}

#[test]
fn unknown_fields_are_refused() {
    let top = invalid(r#"{"turns": [{"content": "a"}], "turn": []}"#);
    assert!(top.contains("unknown field `turn`"), "{top}");

    let in_turn = invalid(r#"{"turns": [{"contents": "a"}]}"#);
    assert!(
        in_turn.contains("turns[0]: unknown field `contents`"),
        "{in_turn}"
    );

    let in_call = invalid(r#"{"turns": [{"tool_calls": [{"name": "grep", "argument": {}}]}]}"#);
    assert!(
        in_call.contains("turns[0].tool_calls[0]: unknown field `argument`"),
        "{in_call}"
    );
}

#[tokio::test]
async fn scripts_load_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fix-bug.json");
    std::fs::write(&path, SCRIPT).unwrap();
    let p = provider_from_name("scripted", Some(&path)).unwrap();
    assert_eq!((p.name(), p.model()), ("scripted", "fix-bug.json"));
    let first = p.complete(&request(0), &NoDeltas).await.unwrap();
    assert_eq!(first.model, "fix-bug.json");

    let missing = dir.path().join("nope.json");
    let err = ScriptedProvider::from_file(&missing)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot read script") && err.contains("nope.json"),
        "{err}"
    );

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"turns\": 3}").unwrap();
    let err = ScriptedProvider::from_file(&bad).unwrap_err().to_string();
    assert!(
        err.contains("bad.json") && err.contains("found a number"),
        "{err}"
    );
}

#[tokio::test]
async fn a_compaction_request_is_answered_without_using_a_turn() {
    let p = ScriptedProvider::from_json_str(SCRIPT, "demo").unwrap();
    let mut summary_request = request(1);
    summary_request.step = praxis_core::COMPACTION_STEP;
    summary_request.messages = vec![Message::new(
        Role::User,
        "Task: t\n\nTranscript:\n[assistant] x\n[tool call] fs_read {\"path\":\"a\"}\n",
    )]
    .into();
    let summary = p.complete(&summary_request, &NoDeltas).await.unwrap();
    assert!(summary.content.contains("fs_read"), "{}", summary.content);
    assert!(summary.tool_calls.is_empty());
    // The script's turns are untouched: call 2 still gets turn 2.
    assert_eq!(
        reply(&p, 1).await.unwrap().content,
        "Now a command: <cmd>cargo test -q</cmd>"
    );
}

#[tokio::test]
async fn last_observation_echoes_what_the_model_was_shown() {
    let provider = ScriptedProvider::from_json_str(
        r#"{"turns": [{"content": "a"}, {"content": "I was told: {{last_observation}}."}]}"#,
        "echo.json",
    )
    .unwrap();
    let mut req = request(1);
    let mut messages = (*req.messages).clone();
    messages.pop();
    messages.push(Message::tool_result(
        "x0",
        "denied by operator: not the lockfile",
    ));
    req.messages = messages.into();
    let sink = Collect::default();
    let reply = provider.complete(&req, &sink).await.unwrap();
    assert_eq!(
        reply.content,
        "I was told: denied by operator: not the lockfile."
    );
    // What streams is what is recorded.
    assert_eq!(sink.0.lock().unwrap().concat(), reply.content);
    // Turns without the placeholder are replayed verbatim.
    assert_eq!(reply_text(&provider, 0).await, "a");
}

async fn reply_text(provider: &ScriptedProvider, answered: usize) -> String {
    reply(provider, answered).await.unwrap().content
}
