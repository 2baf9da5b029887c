//! Budgets cannot grow (issue 12, finding 5): attenuation cannot turn a hard budget into an
//! approval, a hand-built block cannot either, and what a writ still allows after some
//! spending is the least any block has left.

mod common;

use biscuit_auth::builder::{fact, string};
use biscuit_auth::{Biscuit, BlockBuilder};
use common::*;
use praxis_core::{Authorization, Effect, Spent, Verdict};
use praxis_writ::{Budget, IssuerKey, Rules, WritError, attenuate, issue, verify};

const HARD: &str = r#"
subject = "agent-1"
expires_in = "1h"
effect_ceiling = "read"
[budget]
tool_calls = 5
[[tools]]
name = "fs_read"
"#;

const CHILD_WANTS_APPROVALS: &str = r#"
subject = "agent-1/child"
effect_ceiling = "read"
[budget]
tool_calls = 5
[[tools]]
name = "fs_read"
[approvals]
budgets = true
"#;

fn five_calls_spent() -> Spent {
    Spent {
        tool_calls: 5,
        ..Spent::default()
    }
}

#[test]
fn attenuation_cannot_turn_a_hard_budget_into_an_approval() {
    let key = IssuerKey::generate();
    let anchor = key.anchor();
    let token = issue(&spec(HARD), &key, now()).unwrap();
    match attenuate(&token, &anchor, &spec(CHILD_WANTS_APPROVALS), now()) {
        Err(WritError::Widening { field, detail }) => {
            assert_eq!(field, "approvals.budgets");
            assert!(detail.contains("hard"), "{detail}");
        }
        other => panic!("expected a widening refusal, got {other:?}"),
    }
    // Under a parent that already lets a person approve overruns, the child may keep it.
    let soft = format!("{HARD}\n[approvals]\nbudgets = true\n");
    let token = issue(&spec(&soft), &key, now()).unwrap();
    attenuate(&token, &anchor, &spec(CHILD_WANTS_APPROVALS), now()).unwrap();
    // And with no budget at all, approvals for the child's own budgets narrow nothing away.
    let unlimited = HARD.replace("[budget]\ntool_calls = 5\n", "");
    let token = issue(&spec(&unlimited), &key, now()).unwrap();
    attenuate(&token, &anchor, &spec(CHILD_WANTS_APPROVALS), now()).unwrap();
}

#[test]
fn a_hand_built_block_cannot_soften_a_hard_budget() {
    let key = IssuerKey::generate();
    let anchor = key.anchor();
    let token = issue(&spec(HARD), &key, now()).unwrap();
    // Appended straight through biscuit, bypassing `attenuate`'s checks.
    let mut child = spec(CHILD_WANTS_APPROVALS);
    child.expires_in = Some("10m".into());
    let json = serde_json::to_string(&child.resolved(now()).unwrap()).unwrap();
    let block = BlockBuilder::new()
        .fact(fact("writ_spec", &[string(&json)]))
        .unwrap();
    let forged = Biscuit::from_base64(&token, anchor.public_key())
        .unwrap()
        .append(block)
        .unwrap()
        .to_base64()
        .unwrap();
    let writ = verify(&forged, &anchor, now()).unwrap();
    let answer = ask(
        writ.rules(),
        "fs_read",
        Effect::Read,
        &[read("README.md")],
        &five_calls_spent(),
    );
    assert!(
        matches!(&answer, Authorization::Exhausted { rule, .. } if rule == "writ.budget.tool_calls"),
        "{answer:?}"
    );
}

#[test]
fn a_soft_block_narrower_than_a_hard_one_asks_then_the_hard_one_stops() {
    let key = IssuerKey::generate();
    let token = issue(&spec(HARD), &key, now()).unwrap();
    let anchor = key.anchor();
    let mut child = spec(&CHILD_WANTS_APPROVALS.replace("tool_calls = 5", "tool_calls = 3"));
    child.approvals.budgets = false;
    let narrowed = attenuate(&token, &anchor, &child, now()).unwrap();
    let mut specs = verify(&narrowed, &anchor, now()).unwrap().blocks().to_vec();
    // The child block alone softens its own, narrower limit.
    specs[1].approvals.budgets = true;
    let rules = Rules::new(specs).unwrap();
    let at = |calls| {
        ask(
            &rules,
            "fs_read",
            Effect::Read,
            &[read("README.md")],
            &Spent {
                tool_calls: calls,
                ..Spent::default()
            },
        )
    };
    assert!(is_allow(&at(2)));
    assert!(matches!(
        at(3),
        Authorization::Verdict(Verdict::NeedsApproval { .. })
    ));
    assert!(matches!(at(5), Authorization::Exhausted { .. }));
}

#[test]
fn remaining_is_the_least_any_block_has_left() {
    let outer = spec(
        r#"
subject = "a"
expires_in = "1h"
[budget]
tool_calls = 10
model_calls = 6
usd = 1.0
wall_seconds = 60
"#,
    )
    .resolved(now())
    .unwrap();
    let inner = spec(
        r#"
subject = "a/b"
expires_in = "1h"
[budget]
tool_calls = 4
model_tokens = 1000
"#,
    )
    .resolved(now())
    .unwrap();
    let rules = Rules::new(vec![outer.clone(), inner.clone()]).unwrap();
    // Whichever block is narrower, outer or inner (a hand-built chain may narrow first).
    let reversed = Rules::new(vec![inner, outer]).unwrap();
    let spent = Spent {
        tool_calls: 3,
        model_calls: 2,
        model_tokens: 1500,
        wall_ms: 10_500,
        usd_micros: 250_000,
        bytes_written: 7,
    };
    assert_eq!(
        rules.remaining(&spent),
        Budget {
            tool_calls: Some(1),
            model_calls: Some(4),
            model_tokens: Some(0),
            wall_seconds: Some(49),
            usd: Some(0.75),
            bytes_written: None,
        }
    );
    assert_eq!(reversed.remaining(&spent), rules.remaining(&spent));
    let asked = Budget {
        tool_calls: Some(5),
        model_calls: Some(2),
        ..Budget::default()
    };
    assert_eq!(
        asked.within(&rules.remaining(&spent)),
        Budget {
            tool_calls: Some(1),
            model_calls: Some(2),
            model_tokens: Some(0),
            wall_seconds: Some(49),
            usd: Some(0.75),
            bytes_written: None,
        }
    );
}
