//! Round trips of payloads exactly as v0.1 wrote them (the `json!` shapes the kernel used
//! before records were typed): reading one into a [`Record`] and writing it back must give
//! the same JSON, down to absent keys, `null`s and number forms, so every hash stays valid.

use super::*;
use serde_json::json;

/// Every kind, in every shape v0.1 wrote it.
fn v01_payloads() -> Vec<(&'static str, Value)> {
    let spec = json!({
        "task": "Fix the failing test", "workspace": "/w", "provider": "scripted", "model": "m",
        "read_only": false,
        "limits": {"max_steps": 30, "max_seconds": 1800, "max_invalid_replies": 3},
    });
    let full_spec = json!({
        "task": "t", "workspace": "/w", "provider": "openai", "model": "gpt",
        "tools": ["fs_read", "shell"], "read_only": true,
        "limits": {"max_steps": 5, "max_seconds": null, "max_invalid_replies": 1},
        "protocol": "cmd",
        "compaction": {"mode": "summarize", "context_window": 8000, "threshold_percent": 80,
                       "keep_recent": 2},
    });
    let writ = json!({
        "id": "ab12", "subject": "ci-bot", "tenant": "acme", "issuer": "ff00",
        "expires_at": "2026-12-31T00:00:00Z", "revocation_ids": ["r1", "r2"],
        "blocks": [{"subject": "ci-bot", "tenant": "acme", "tools": ["fs_read"],
                    "budgets": {"tool_calls": 10}}],
    });
    let spent = json!({"tool_calls": 1, "model_calls": 2, "model_tokens": 300, "wall_ms": 1500,
                       "usd_micros": 0, "bytes_written": 12});
    vec![
        (
            "run_started",
            json!({"spec": spec, "environment": {"host": "h", "pid": 42, "sandbox": {"fabric": "in-process"}},
                   "writ": null, "prices": {}, "now": 1_764_000_000_000u64}),
        ),
        (
            "run_started",
            json!({"spec": full_spec, "environment": {}, "writ": writ,
                   "prices": {"gpt": {"input_per_mtok": 2.5, "output_per_mtok": 10.0},
                              "m": {"input_per_mtok": 0.1, "output_per_mtok": 3.0}},
                   "branch": {"run_id": "01origin", "seq": 7, "hash": "9f".repeat(32)},
                   "now": 5}),
        ),
        (
            "workspace_snapshot",
            json!({"files": {
                "src/a.rs": {"blob": "a".repeat(64), "size": 5},
                "big.bin": {"size": 99_999_999u64, "skipped": "larger than max_file_bytes"},
            }}),
        ),
        ("workspace_snapshot", json!({"files": {}})),
        (
            "model_response",
            json!({"step": 1, "model": "m", "content": "done", "tool_calls": [],
                   "usage": {"input_tokens": 10, "output_tokens": 2}, "now": 2}),
        ),
        (
            "model_response",
            json!({"step": 2, "model": "claude", "content": "",
                   "tool_calls": [{"id": "c1", "name": "fs_read", "arguments": {"path": "a"}},
                                  {"id": "c2", "name": "shell", "arguments": "{not json"}],
                   "usage": {"input_tokens": 0, "output_tokens": 0},
                   "reasoning": [{"text": "think", "signature": "sig"},
                                 {"text": "opaque", "redacted": true}, {"text": "plain"}],
                   "cost_usd_micros": 1234, "now": 3}),
        ),
        (
            "invalid_output",
            json!({"step": 3, "reason": "the reply was empty", "in_a_row": 2}),
        ),
        (
            "model_error",
            json!({"step": 1, "error": "connection refused", "now": 9}),
        ),
        (
            "proposal",
            json!({"call_id": "c9", "tool": "nope", "arguments": {"x": 1}, "source": "tool_call",
                   "verdict": "deny", "rule": "contract",
                   "reason": "unknown tool `nope`; available tools: fs_read",
                   "outcome": "rejected"}),
        ),
        (
            "proposal",
            json!({"call_id": "c10", "tool": "fs_read", "arguments": [1, 2],
                   "source": "tool_call", "verdict": "deny", "rule": "contract",
                   "reason": "arguments must be a JSON object", "outcome": "rejected"}),
        ),
        (
            "proposal",
            json!({"call_id": "cmd-1-1", "tool": "shell", "arguments": {"command": "ls"},
                   "source": "cmd_block", "effect": "exec",
                   "resources": [{"kind": "command", "command": "ls"}],
                   "verdict": "allow", "rule": "default.allow", "reason": "",
                   "now": 4, "spent": spent}),
        ),
        (
            "proposal",
            json!({"call_id": "c2", "tool": "fs_write", "arguments": {"path": "../x", "content": ""},
                   "source": "tool_call", "effect": "write",
                   "resources": [{"kind": "path", "path": "../x", "mode": "write"},
                                 {"kind": "host", "host": "example.com"}],
                   "verdict": "deny", "rule": "path.outside_workspace", "reason": "escapes",
                   "now": 4, "spent": spent, "outcome": "rejected"}),
        ),
        (
            "proposal",
            json!({"call_id": "c3", "tool": "shell", "arguments": {"command": "rm -rf x"},
                   "source": "tool_call", "effect": "exec",
                   "resources": [{"kind": "command", "command": "rm -rf x"}],
                   "verdict": "needs_approval", "rule": "approval.exec", "reason": "asks",
                   "now": 4, "spent": spent, "outcome": "suspended"}),
        ),
        ("approval_requested", json!({"call_id": "c3"})),
        (
            "approval_requested",
            json!({"call_id": "c3", "rule": "resume.interrupted_call", "reason": "it may have run partly"}),
        ),
        (
            "approval_decided",
            json!({"call_id": "c3", "approved": false, "by": "alice", "reason": "no", "now": 11}),
        ),
        (
            "execution",
            json!({"status": "ok", "output": "hello", "truncated_bytes": 0, "duration_ms": 12,
                   "call_id": "c1", "tool": "fs_read", "outcome": "committed", "now": 5}),
        ),
        (
            "execution",
            json!({"status": "error", "exit_code": -1, "output": "boom", "truncated_bytes": 4096,
                   "duration_ms": 0,
                   "files_changed": [
                       {"path": "a", "before": null, "after": "b".repeat(64), "size": 3},
                       {"path": "c", "before": "d".repeat(64), "after": null},
                   ],
                   "call_id": "c2", "tool": "shell", "outcome": "failed", "now": 6}),
        ),
        (
            "execution",
            json!({"status": "cancelled", "output": "cancelled: stop", "truncated_bytes": 0,
                   "duration_ms": 0, "call_id": "c4", "tool": "shell", "outcome": "failed",
                   "now": 7}),
        ),
        (
            "compaction",
            json!({"step": 4, "mode": "truncate",
                   "dropped": [{"message": 3, "call_id": "c1", "bytes": 1000},
                               {"message": 5, "call_id": null, "bytes": 20}],
                   "tokens_before": 9000, "tokens_after": 5000, "now": 8}),
        ),
        (
            "compaction",
            json!({"step": 4, "mode": "truncate", "dropped": [], "tokens_before": 9000,
                   "tokens_after": 9000, "now": 8, "summary_error": "model call failed"}),
        ),
        (
            "compaction",
            json!({"step": 5, "mode": "summarize", "replaced_messages": 6, "summary": "s",
                   "model": "m", "usage": {"input_tokens": 100, "output_tokens": 10},
                   "tokens_before": 9000, "tokens_after": 1200, "now": 9}),
        ),
        (
            "run_resumed",
            json!({"now": 10, "environment": {"host": "h2", "pid": 7, "boot_id": "b",
                   "pid_start_ticks": 123}, "waiting_for": "model", "interrupted_call": null}),
        ),
        (
            "run_resumed",
            json!({"now": 10, "environment": {}, "waiting_for": "approval",
                   "interrupted_call": "c3"}),
        ),
        (
            "run_finished",
            json!({"status": "completed", "stop_reason": "completed", "final_answer": "done",
                   "error": null, "steps": 2, "tool_calls": 1,
                   "usage": {"input_tokens": 10, "output_tokens": 2}, "now": 12}),
        ),
        (
            "run_finished",
            json!({"status": "failed", "stop_reason": "budget_exhausted", "final_answer": null,
                   "error": "budget.tool_calls: 10 used", "steps": 9, "tool_calls": 10,
                   "usage": {"input_tokens": 0, "output_tokens": 0}, "now": 13}),
        ),
        (
            "tools_changed",
            json!({"source": "mcp server s", "tools": [{"name": "mcp__s__t", "description": "d",
                   "effect": "exec", "parameters": {"type": "object"}}], "now": 11}),
        ),
        (
            "checkpoint",
            json!({"head_seq": 64, "head_hash": "e".repeat(64), "key": "k".repeat(64),
                   "signature": "5".repeat(128)}),
        ),
    ]
}

#[test]
fn v01_payloads_round_trip_unchanged() {
    for (kind, payload) in v01_payloads() {
        let record =
            Record::from_entry(kind, &payload).unwrap_or_else(|e| panic!("{kind} {payload}: {e}"));
        assert_eq!(record.kind(), kind);
        let again = record.to_payload();
        assert_eq!(again, payload, "{kind} changed in a round trip");
        // Same text too (numbers keep their form: 10.0 stays a float, 10 an integer).
        assert_eq!(again.to_string(), payload.to_string(), "{kind}");
    }
}

#[test]
fn every_kind_is_covered() {
    let covered: std::collections::BTreeSet<&str> =
        v01_payloads().iter().map(|(kind, _)| *kind).collect();
    let all = [
        kinds::RUN_STARTED,
        kinds::WORKSPACE_SNAPSHOT,
        kinds::MODEL_RESPONSE,
        kinds::MODEL_ERROR,
        kinds::INVALID_OUTPUT,
        kinds::PROPOSAL,
        kinds::EXECUTION,
        kinds::APPROVAL_REQUESTED,
        kinds::APPROVAL_DECIDED,
        kinds::RUN_FINISHED,
        kinds::RUN_RESUMED,
        kinds::COMPACTION,
        kinds::CHECKPOINT,
        kinds::TOOLS_CHANGED,
    ];
    assert_eq!(covered, all.into_iter().collect());
}

#[test]
fn a_malformed_payload_names_its_field() {
    let error = Record::from_entry(
        "execution",
        &json!({"status": "exploded", "output": "", "truncated_bytes": 0, "duration_ms": 0,
                "call_id": "c", "tool": "t", "outcome": "failed", "now": 1}),
    )
    .unwrap_err();
    assert!(
        matches!(&error, RecordError::Malformed { field, .. } if field == "status"),
        "{error}"
    );
    let error = Record::from_entry("run_finished", &json!({"status": "completed"})).unwrap_err();
    assert!(error.to_string().contains("stop_reason"), "{error}");
    assert!(matches!(
        Record::from_entry("mystery", &json!({})),
        Err(RecordError::UnknownKind(kind)) if kind == "mystery"
    ));
}

#[test]
fn the_tagged_form_carries_kind_and_payload() {
    let (kind, payload) = v01_payloads().remove(7);
    let record = Record::from_entry(kind, &payload).unwrap();
    assert_eq!(
        serde_json::to_value(&record).unwrap(),
        json!({"kind": kind, "payload": payload})
    );
}
