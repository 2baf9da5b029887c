//! The library embedded with no data dir and no home: a two-turn conversation against a
//! local OpenAI-compatible server that streams reasoning, every callback in order.

#[path = "../../praxis-models/tests/common/mod.rs"]
mod common;

use common::{Canned, TestServer, openai_sse};
use praxis::{Agent, Callbacks, Role, StopReason};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_731_000_000,
        "model": "fake-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    })
}

fn usage(prompt: u64, completion: u64) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_731_000_000,
        "model": "fake-model", "choices": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                  "total_tokens": prompt + completion},
    })
}

/// Turn 1, step 1: reasoning, then a call to read `notes.txt`.
fn reasoning_then_call() -> Canned {
    Canned::sse(&openai_sse(&[
        chunk(
            json!({"role": "assistant", "reasoning_content": "Let me"}),
            None,
        ),
        chunk(json!({"reasoning_content": " look."}), None),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                "function": {"name": "fs_read", "arguments": "{\"path\": "}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"notes.txt\"}"}}]}),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
        usage(100, 20),
    ]))
}

fn answer(parts: &[&str], prompt: u64) -> Canned {
    let mut chunks: Vec<Value> = parts
        .iter()
        .map(|p| chunk(json!({"content": p}), None))
        .collect();
    chunks.push(chunk(json!({}), Some("stop")));
    chunks.push(usage(prompt, 5));
    Canned::sse(&openai_sse(&chunks))
}

fn recorder(events: &Arc<Mutex<Vec<String>>>) -> Callbacks {
    let log = |events: &Arc<Mutex<Vec<String>>>| {
        let events = events.clone();
        move |line: String| events.lock().unwrap().push(line)
    };
    let (a, b, c, d, e, f, g, h) = (
        log(events),
        log(events),
        log(events),
        log(events),
        log(events),
        log(events),
        log(events),
        log(events),
    );
    Callbacks::default()
        .on_step_start(move |step| a(format!("step_start {step}")))
        .on_reasoning_delta(move |t| b(format!("reasoning {t}")))
        .on_delta(move |t| c(format!("delta {t}")))
        .on_step_usage(move |step, u| {
            d(format!(
                "usage {step} {}+{}",
                u.input_tokens, u.output_tokens
            ))
        })
        .on_step_end(move |reply| {
            e(format!(
                "step_end {} {:?} calls={}",
                reply.step,
                reply.content,
                reply.tool_calls.len()
            ))
        })
        .on_tool_call(move |call| {
            f(format!(
                "tool_call {} {} {:?} {}",
                call.call_id, call.tool, call.verdict, call.arguments
            ))
        })
        .on_tool_result(move |result| {
            g(format!(
                "tool_result {} {:?} {}",
                result.call_id,
                result.status,
                result.output.trim()
            ))
        })
        .on_turn_end(move |reason| h(format!("turn_end {}", reason.as_str())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_turns_without_a_data_dir_or_home_fire_every_callback_in_order() {
    // No home: HOME points at an empty directory that must stay empty, and no PRAXIS_HOME.
    let home = tempfile::tempdir().unwrap();
    // SAFETY: this test binary has this one test; nothing else reads the environment
    // concurrently while it is changed.
    unsafe {
        std::env::set_var("HOME", home.path());
        std::env::remove_var("PRAXIS_HOME");
        std::env::remove_var("OPENAI_API_KEY");
    }
    let workspace = tempfile::tempdir().unwrap();
    std::fs::write(workspace.path().join("notes.txt"), "the build is green\n").unwrap();
    let server = TestServer::start(vec![
        reasoning_then_call(),
        answer(&["The notes say ", "the build is green."], 150),
        answer(&["You asked about the notes."], 200),
    ])
    .await;

    let agent = Agent::builder()
        .provider("openai:fake-model")
        .config("providers.openai.base_url", format!("{}/v1", server.url()))
        .workspace(workspace.path())
        .instructions("Answer in one sentence.")
        .build()
        .unwrap();

    let events = Arc::new(Mutex::new(Vec::new()));
    let first = agent
        .run(&[], "What do the notes say?", recorder(&events))
        .await
        .unwrap();
    assert_eq!(
        first.stop_reason,
        StopReason::Completed,
        "{:?}",
        first.error
    );
    assert_eq!(
        first.text.as_deref(),
        Some("The notes say the build is green.")
    );
    let turn1 = std::mem::take(&mut *events.lock().unwrap());
    assert_eq!(
        turn1,
        [
            "step_start 1",
            "reasoning Let me",
            "reasoning  look.",
            "usage 1 100+20",
            "step_end 1 \"\" calls=1",
            "tool_call call_1 fs_read Allow {\"path\":\"notes.txt\"}",
            "tool_result call_1 Ok the build is green",
            "step_start 2",
            "delta The notes say ",
            "delta the build is green.",
            "usage 2 150+5",
            "step_end 2 \"The notes say the build is green.\" calls=0",
            "turn_end completed",
        ]
    );
    assert_eq!(first.steps.len(), 2);
    assert_eq!(first.steps[0].calls[0].tool, "fs_read");
    assert_eq!(first.steps[0].reply.reasoning[0].text, "Let me look.");
    assert_eq!(first.usage.input_tokens, 250);
    // The record is a real chain, signed at its end.
    assert_eq!(
        praxis_ledger::verify_entries(&first.entries),
        praxis_ledger::VerifyReport::Intact {
            entries: first.entries.len() as u64
        }
    );
    assert_eq!(first.entries.last().unwrap().kind, "checkpoint");
    // New messages: the task, the call, its result, the answer.
    let roles: Vec<Role> = first.new_messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [Role::User, Role::Assistant, Role::Tool, Role::Assistant]
    );

    // Turn 2: the caller passes the history back.
    let history = first.new_messages.clone();
    let second = agent
        .run(&history, "What did I ask?", recorder(&events))
        .await
        .unwrap();
    assert_eq!(second.text.as_deref(), Some("You asked about the notes."));
    let turn2 = std::mem::take(&mut *events.lock().unwrap());
    assert_eq!(
        turn2,
        [
            "step_start 1",
            "delta You asked about the notes.",
            "usage 1 200+5",
            "step_end 1 \"You asked about the notes.\" calls=0",
            "turn_end completed",
        ]
    );
    assert_ne!(first.run_id, second.run_id);

    // What the model saw on turn 2: the system prompt with the instructions, the history,
    // then the new task.
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    let messages = requests[2].json()["messages"].clone();
    let messages = messages.as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    assert!(
        messages[0]["content"]
            .as_str()
            .unwrap()
            .ends_with("Answer in one sentence.")
    );
    let contents: Vec<&str> = messages
        .iter()
        .map(|m| m["content"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(contents[1], "What do the notes say?");
    assert_eq!(messages[2]["tool_calls"][0]["function"]["name"], "fs_read");
    assert!(contents[3].contains("the build is green"));
    assert_eq!(contents[4], "The notes say the build is green.");
    assert_eq!(contents[5], "What did I ask?");
    assert_eq!(messages.len(), 6);

    // Nothing was written under HOME.
    assert_eq!(std::fs::read_dir(home.path()).unwrap().count(), 0);
}
