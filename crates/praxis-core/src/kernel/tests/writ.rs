//! Runs under a writ: its rules, budgets, expiry and approvals.

use super::*;
use crate::authority::AuthzRequest;

/// A writ stand-in: a tool-call budget, a deadline, fs_write needing approval, shell denied.
struct FakeWrit {
    tool_calls: u64,
    expires: Millis,
}

impl Authority for FakeWrit {
    fn authorize(&self, req: &AuthzRequest<'_>) -> Authorization {
        if req.now >= self.expires {
            return Authorization::Verdict(Verdict::deny("writ.time_window", "expired"));
        }
        if req.spent.tool_calls + 1 > self.tool_calls {
            return Authorization::Exhausted {
                rule: "writ.budget.tool_calls".into(),
                reason: "limit reached".into(),
            };
        }
        match req.tool {
            "shell" => {
                Authorization::Verdict(Verdict::deny("writ.tools", "shell is not in the writ"))
            }
            "fs_write" => {
                // Paths reach the writ normalised relative to the workspace.
                assert_eq!(
                    req.resources,
                    &[Resource::Path {
                        path: "a/b".into(),
                        mode: AccessMode::Write
                    }]
                );
                Authorization::Verdict(Verdict::NeedsApproval {
                    rule: "writ.approvals".into(),
                    reason: "writes".into(),
                })
            }
            _ => Authorization::Verdict(Verdict::allow("writ")),
        }
    }
    fn before_model_call(&self, now: Millis, spent: &Spent) -> Authorization {
        if now >= self.expires {
            return Authorization::Verdict(Verdict::deny("writ.time_window", "expired"));
        }
        if spent.model_calls + 1 > 4 {
            return Authorization::Exhausted {
                rule: "writ.budget.model_calls".into(),
                reason: "4 calls".into(),
            };
        }
        Authorization::Verdict(Verdict::allow("writ"))
    }
    fn describe(&self) -> Value {
        json!({"id": "fake"})
    }
}

fn writ_kernel(tool_calls: u64) -> Kernel {
    kernel_with(spec()).with_authority(Arc::new(FakeWrit {
        tool_calls,
        expires: 50_000,
    }))
}

#[test]
fn the_writ_is_recorded_and_its_denials_name_the_rule() {
    let mut k = writ_kernel(10);
    let cmds = start(&mut k);
    assert_eq!(records(&cmds, "run_started")[0]["writ"]["id"], "fake");
    let cmds = k
        .handle(reply(
            "",
            vec![call("s", "shell", json!({"command": "ls"}))],
        ))
        .unwrap();
    let p = records(&cmds, "proposal")[0].clone();
    assert_eq!(
        (p["verdict"].as_str(), p["rule"].as_str()),
        (Some("deny"), Some("writ.tools"))
    );
    assert!(
        last_request(&cmds)
            .messages
            .last()
            .unwrap()
            .content
            .contains("denied by policy (writ.tools)")
    );
    // The run's own policy still comes first: an escape is denied by confinement.
    let cmds = k
        .handle(reply(
            "",
            vec![call("r", "fs_read", json!({"path": "../x"}))],
        ))
        .unwrap();
    assert_eq!(
        records(&cmds, "proposal")[0]["rule"],
        "workspace_confinement"
    );
}

#[test]
fn a_proposal_over_budget_is_denied_and_ends_the_run() {
    let mut k = writ_kernel(1);
    start(&mut k);
    k.handle(reply("", vec![call("a", "fs_read", json!({"path": "x"}))]))
        .unwrap();
    k.handle(finished("a", "x")).unwrap();
    let cmds = k
        .handle(reply("", vec![call("b", "fs_read", json!({"path": "y"}))]))
        .unwrap();
    assert_eq!(
        kinds_of(&cmds),
        vec!["model_response", "proposal", "run_finished", "FINISH"]
    );
    let p = records(&cmds, "proposal")[0].clone();
    assert_eq!(
        (p["verdict"].as_str(), p["rule"].as_str()),
        (Some("deny"), Some("writ.budget.tool_calls"))
    );
    let r = result(&cmds);
    assert_eq!(
        (r.stop_reason, r.tool_calls),
        (StopReason::BudgetExhausted, 1)
    );
    assert!(
        r.error
            .as_deref()
            .unwrap()
            .starts_with("writ.budget.tool_calls")
    );
}

#[test]
fn model_call_budget_and_expiry_stop_the_run_before_calling() {
    let mut k = writ_kernel(100);
    start(&mut k);
    let mut cmds = Vec::new();
    for i in 0..4 {
        let id = format!("c{i}");
        k.handle(reply("", vec![call(&id, "fs_read", json!({"path": "x"}))]))
            .unwrap();
        cmds = k.handle(finished(&id, "x")).unwrap();
    }
    assert_eq!(result(&cmds).stop_reason, StopReason::BudgetExhausted);
    assert_eq!(result(&cmds).steps, 4);

    let mut k = writ_kernel(100);
    start(&mut k);
    k.handle(reply("", vec![call("a", "fs_read", json!({"path": "x"}))]))
        .unwrap();
    let late = Event::ToolFinished {
        now: 50_000,
        call_id: "a".into(),
        observation: Observation::ok("x"),
    };
    let cmds = k.handle(late).unwrap();
    assert_eq!(result(&cmds).stop_reason, StopReason::Denied);
    assert!(
        result(&cmds)
            .error
            .as_deref()
            .unwrap()
            .contains("writ.time_window")
    );
}

#[test]
fn approval_suspends_and_an_approval_is_rechecked_against_the_writ() {
    let mut k = writ_kernel(10);
    start(&mut k);
    let cmds = k
        .handle(reply(
            "",
            vec![call("w", "fs_write", json!({"path": "./a/../a/b"}))],
        ))
        .unwrap();
    assert_eq!(
        kinds_of(&cmds),
        vec![
            "model_response",
            "proposal",
            "approval_requested",
            "AWAIT_APPROVAL"
        ]
    );
    assert_eq!(records(&cmds, "proposal")[0]["verdict"], "needs_approval");
    // Approved, but only after the writ expired: it must not run.
    let late = Event::ApprovalDecided {
        now: 60_000,
        call_id: "w".into(),
        approved: true,
        by: "op".into(),
        reason: String::new(),
    };
    let cmds = k.handle(late).unwrap();
    assert!(
        !kinds_of(&cmds).contains(&"EXECUTE"),
        "{:?}",
        kinds_of(&cmds)
    );
    assert_eq!(result(&cmds).stop_reason, StopReason::Denied);

    let mut k = writ_kernel(10);
    start(&mut k);
    k.handle(reply(
        "",
        vec![call("w", "fs_write", json!({"path": "a/b"}))],
    ))
    .unwrap();
    let ok = Event::ApprovalDecided {
        now: 3_000,
        call_id: "w".into(),
        approved: true,
        by: "op".into(),
        reason: String::new(),
    };
    assert_eq!(
        kinds_of(&k.handle(ok).unwrap()),
        vec!["approval_decided", "EXECUTE"]
    );
}

#[test]
fn bytes_written_and_money_are_counted() {
    let mut prices = PriceTable::default();
    prices.0.insert(
        "m".into(),
        ModelPrice {
            input_per_mtok: 2.0,
            output_per_mtok: 10.0,
        },
    );
    let mut k = kernel_with(spec()).with_prices(prices);
    start(&mut k);
    let response = ModelResponse {
        tool_calls: vec![call("a", "fs_write", json!({"path": "x"}))],
        usage: Usage {
            input_tokens: 1000,
            output_tokens: 100,
        },
        model: "m".into(),
        ..Default::default()
    };
    let cmds = k.handle(Event::ModelReplied { now: 2, response }).unwrap();
    // Each priced call records its cost; unpriced ones carry no cost field.
    assert_eq!(records(&cmds, "model_response")[0]["cost_usd_micros"], 3000);
    let mut unpriced = kernel_with(spec());
    start(&mut unpriced);
    let cmds = unpriced.handle(reply("done", vec![])).unwrap();
    assert!(
        records(&cmds, "model_response")[0]
            .get("cost_usd_micros")
            .is_none()
    );
    let change = FileChange {
        path: "x".into(),
        before: None,
        after: Some("id".into()),
        size: Some(42),
    };
    let observation = Observation {
        files_changed: vec![change],
        ..Observation::ok("wrote")
    };
    k.handle(Event::ToolFinished {
        now: 3,
        call_id: "a".into(),
        observation,
    })
    .unwrap();
    let spent = k.spent(10);
    assert_eq!(
        (spent.bytes_written, spent.usd_micros, spent.model_tokens),
        (42, 3000, 1100)
    );
}
