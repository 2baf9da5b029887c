//! Property: any tree of delegations under a writ never spends more than the writ's
//! budgets (issue 12, finding 5). Random trees of sub-runs, each reading files and
//! delegating in a random order and asking for random budgets, run through the real driver,
//! ledger and writ checks; the tool calls and model calls of every run in the ledger
//! together stay within the root writ's `tool_calls` and `model_calls`.

use praxis_core::{Limits, RunSpec};
use praxis_ledger::{Ledger, SqliteLedger};
use praxis_models::ScriptedProvider;
use praxis_runtime::{NoObserver, RunOptions, Runtime, WritGrant};
use praxis_tools::Registry;
use praxis_writ::{IssuerKey, WritSpec};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::SystemTime;

/// One run of the tree: its steps in order, and the budgets it asks for when delegated to.
#[derive(Clone, Debug)]
struct Node {
    steps: Vec<Step>,
    ask_tool_calls: Ask,
    ask_model_calls: Ask,
}

/// A budget a sub-run asks for: none, all the root writ grants (what an attacker asks
/// for), or a number.
#[derive(Clone, Copy, Debug)]
enum Ask {
    Missing,
    All,
    Exactly(u64),
}

impl Ask {
    fn value(self, all: u64) -> Option<u64> {
        match self {
            Ask::Missing => None,
            Ask::All => Some(all),
            Ask::Exactly(n) => Some(n),
        }
    }
}

fn ask() -> impl Strategy<Value = Ask> {
    prop_oneof![1 => Just(Ask::Missing), 3 => Just(Ask::All), 1 => (0u64..6).prop_map(Ask::Exactly)]
}

#[derive(Clone, Debug)]
enum Step {
    Read,
    Delegate(Node),
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = (
        proptest::collection::vec(Just(Step::Read), 0..6),
        ask(),
        ask(),
    )
        .prop_map(|(steps, t, m)| Node {
            steps,
            ask_tool_calls: t,
            ask_model_calls: m,
        });
    leaf.prop_recursive(3, 12, 3, |inner| {
        (
            proptest::collection::vec(
                prop_oneof![2 => Just(Step::Read), 1 => inner.prop_map(Step::Delegate)],
                0..6,
            ),
            ask(),
            ask(),
        )
            .prop_map(|(steps, t, m)| Node {
                steps,
                ask_tool_calls: t,
                ask_model_calls: m,
            })
    })
}

/// The scripted cognition of `node`: one turn per step, then an answer; sub-runs' scripts
/// are its `delegates`, keyed by task.
fn script(node: &Node, name: &str, budgets: (u64, u64)) -> Value {
    let mut turns = Vec::new();
    let mut delegates = serde_json::Map::new();
    for (i, step) in node.steps.iter().enumerate() {
        match step {
            Step::Read => turns.push(json!({"tool_calls": [
                {"id": format!("r{i}"), "name": "fs_read", "arguments": {"path": "README.md"}}
            ]})),
            Step::Delegate(child) => {
                let task = format!("{name}.{i}");
                let mut budget = serde_json::Map::new();
                if let Some(t) = child.ask_tool_calls.value(budgets.0) {
                    budget.insert("tool_calls".into(), json!(t));
                }
                if let Some(m) = child.ask_model_calls.value(budgets.1) {
                    budget.insert("model_calls".into(), json!(m));
                }
                let writ = json!({"subject": task, "tenant": "default", "effect_ceiling": "read",
                    "budget": budget,
                    "tools": [{"name": "fs_read"}, {"name": "delegate"}]});
                turns.push(json!({"tool_calls": [
                    {"id": format!("d{i}"), "name": "delegate", "arguments": {"task": task, "writ": writ}}
                ]}));
                delegates.insert(task.clone(), script(child, &task, budgets));
            }
        }
    }
    turns.push(json!({"content": format!("{name} done")}));
    json!({"turns": turns, "delegates": delegates})
}

/// Runs `root` under a writ with the given budgets; returns (tool calls, model calls, runs)
/// over every run in the ledger.
fn spend(root: &Node, tool_calls: u64, model_calls: u64) -> (usize, usize, usize) {
    let (home, ws) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(ws.path().join("README.md"), "# tree\n").unwrap();
    let ledger = Arc::new(SqliteLedger::open(&home.path().join("l.db")).unwrap());
    let runtime = Runtime::new(ledger.clone(), Arc::new(Registry::builtin()));
    let key = IssuerKey::generate();
    let spec = WritSpec::from_toml_str(&format!(
        "subject = \"root\"\nexpires_in = \"1h\"\neffect_ceiling = \"read\"\n\
         [budget]\ntool_calls = {tool_calls}\nmodel_calls = {model_calls}\n\
         [[tools]]\nname = \"fs_read\"\n[[tools]]\nname = \"delegate\"\n"
    ))
    .unwrap();
    let token = praxis_writ::issue(&spec, &key, SystemTime::now()).unwrap();
    let provider = Arc::new(
        ScriptedProvider::from_json_str(
            &script(root, "root", (tool_calls, model_calls)).to_string(),
            "tree",
        )
        .unwrap(),
    );
    let run_spec = RunSpec {
        conversation: Default::default(),
        protocol: Default::default(),
        compaction: None,
        task: "root".into(),
        workspace: ws.path().display().to_string(),
        provider: "scripted".into(),
        model: String::new(),
        tools: None,
        read_only: false,
        limits: Limits {
            max_steps: 50,
            ..Limits::default()
        },
    };
    let options = RunOptions {
        writ: Some(WritGrant {
            token,
            anchor: key.anchor(),
        }),
        ..RunOptions::new(run_spec, provider)
    };
    let runtime_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime_rt
        .block_on(runtime.run(options, &NoObserver))
        .unwrap();
    let runs = ledger.runs().unwrap();
    let (mut tools, mut models) = (0, 0);
    for run in &runs {
        let entries = ledger.entries(&run.run_id, 0).unwrap();
        tools += entries.iter().filter(|e| e.kind == "execution").count();
        models += entries
            .iter()
            .filter(|e| e.kind == "model_response")
            .count();
    }
    (tools, models, runs.len())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn a_tree_of_delegations_never_spends_more_than_the_writ(
        root in node(),
        tool_calls in 1u64..8,
        model_calls in 1u64..10,
    ) {
        let (tools, models, runs) = spend(&root, tool_calls, model_calls);
        prop_assert!(
            tools as u64 <= tool_calls && models as u64 <= model_calls,
            "{tools} tool calls and {models} model calls in {runs} runs under budgets of \
             {tool_calls} and {model_calls}: {root:?}"
        );
    }
}
