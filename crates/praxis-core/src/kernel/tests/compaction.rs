//! Context compaction: truncation and summaries.

use super::*;

fn compacting(mode: CompactionMode) -> Kernel {
    kernel_with(RunSpec {
        compaction: Some(Compaction {
            mode,
            // The system prompt and tool schemas alone take a few hundred tokens; each big
            // observation below adds 500.
            context_window: 2_000,
            threshold_percent: 80,
            keep_recent: 1,
        }),
        limits: Limits {
            max_steps: 20,
            max_seconds: None,
            max_invalid_replies: 3,
        },
        ..spec()
    })
}

/// Runs up to `n` fs_read steps, each observing 2000 characters, stopping at the first
/// compaction; returns the last commands.
fn big_reads(k: &mut Kernel, n: usize) -> Vec<Command> {
    start(k);
    let mut cmds = Vec::new();
    for i in 0..n {
        let id = format!("r{i}");
        k.handle(reply(
            "",
            vec![call(&id, "fs_read", json!({"path": "a.txt"}))],
        ))
        .unwrap();
        cmds = k.handle(finished(&id, &"x".repeat(2_000))).unwrap();
        if !records(&cmds, "compaction").is_empty() || last_request(&cmds).is_compaction() {
            break;
        }
    }
    cmds
}

#[test]
fn truncation_drops_the_oldest_observations_and_records_them() {
    let mut k = compacting(CompactionMode::Truncate);
    let cmds = big_reads(&mut k, 4);
    let compactions = records(&cmds, "compaction");
    assert_eq!(compactions.len(), 1, "{cmds:?}");
    let c = &compactions[0];
    assert_eq!(c["mode"], "truncate");
    assert!(c["tokens_after"].as_u64() < c["tokens_before"].as_u64());
    assert!(c["tokens_after"].as_u64().unwrap() <= 1_600, "{c}");
    assert_eq!(c["dropped"][0]["call_id"], "r0");
    let req = last_request(&cmds);
    let tool_results: Vec<&Message> = req
        .messages
        .iter()
        .filter(|m| m.role == Role::Tool)
        .collect();
    assert!(tool_results[0].content.starts_with("[compacted:"));
    // The latest observation is always kept whole.
    assert_eq!(tool_results.last().unwrap().content.len(), 2_000);
}

#[test]
fn no_compaction_below_the_threshold_or_without_a_window() {
    let mut k = compacting(CompactionMode::Truncate);
    let cmds = big_reads(&mut k, 1);
    assert!(records(&cmds, "compaction").is_empty());
    let mut k = kernel_with(spec());
    let cmds = big_reads(&mut k, 4);
    assert!(records(&cmds, "compaction").is_empty());
}

#[test]
fn summarize_asks_the_model_then_replaces_older_turns() {
    let mut k = compacting(CompactionMode::Summarize);
    let cmds = big_reads(&mut k, 4);
    // The step's call is preceded by a summary request.
    let req = last_request(&cmds);
    assert!(req.is_compaction(), "{cmds:?}");
    assert!(req.tools.is_empty());
    assert!(req.messages[1].content.contains("[tool call] fs_read"));
    let before = k.steps();
    let cmds = k
        .handle(Event::ModelReplied {
            now: 4_000,
            response: ModelResponse {
                content: "read a.txt several times".into(),
                usage: Usage {
                    input_tokens: 900,
                    output_tokens: 10,
                },
                ..Default::default()
            },
        })
        .unwrap();
    assert_eq!(kinds_of(&cmds), vec!["compaction", "CALL_MODEL"]);
    let c = records(&cmds, "compaction")[0].clone();
    assert_eq!(c["mode"], "summarize");
    assert_eq!(c["summary"], "read a.txt several times");
    let req = last_request(&cmds);
    assert_eq!(req.step, before, "the summary is not a step");
    assert!(req.messages[1].content.contains("read a.txt several times"));
    assert!(req.messages[1].content.starts_with("inspect the repo"));
    // Tool results still follow their calls: the kept turn starts with the assistant.
    assert_eq!(req.messages[2].role, Role::Assistant);
    assert_eq!(req.messages[3].role, Role::Tool);
    assert_eq!(
        req.messages[3].tool_call_id,
        req.messages[2].tool_calls.first().map(|c| c.id.clone())
    );
    // The summary's tokens count towards the run's usage.
    assert!(k.spent(4_000).model_tokens >= 910);
}

#[test]
fn a_failed_summary_falls_back_to_truncation() {
    let mut k = compacting(CompactionMode::Summarize);
    big_reads(&mut k, 4);
    let cmds = k
        .handle(Event::ModelFailed {
            now: 4_000,
            error: "HTTP 500".into(),
        })
        .unwrap();
    assert_eq!(kinds_of(&cmds), vec!["compaction", "CALL_MODEL"]);
    let c = records(&cmds, "compaction")[0].clone();
    assert_eq!(c["mode"], "truncate");
    assert_eq!(c["summary_error"], "HTTP 500");
    assert!(!last_request(&cmds).is_compaction());
}
