//! What the MCP client tests share: a scripted run through the real driver, SQLite ledger
//! and a writ listing the tools it may call.
#![allow(dead_code)] // each test file uses part of it

use praxis_core::record::{Execution, Record};
use praxis_core::{Limits, RunSpec};
use praxis_ledger::{Ledger, SqliteLedger};
use praxis_models::ScriptedProvider;
use praxis_runtime::{RunObserver, RunOptions, Runtime, WritGrant};
use praxis_tools::Registry;
use praxis_writ::{IssuerKey, WritSpec};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

pub struct Ran {
    pub records: Vec<Record>,
    pub ledger: Arc<SqliteLedger>,
    pub run_id: String,
    pub conversation: String,
}

/// Runs the scripted `calls` (tool, arguments) under a writ listing `listed`, with
/// `effect_ceiling = ceiling`.
pub async fn run(
    registry: Arc<Registry>,
    ceiling: &str,
    listed: &[&str],
    calls: &[(&str, Value)],
    (home, ws): (&Path, &Path),
    observer: &dyn RunObserver,
) -> Ran {
    let ledger = Arc::new(SqliteLedger::open(&home.join("l.db")).unwrap());
    let runtime = Runtime::new(ledger.clone(), registry);
    let key = IssuerKey::generate();
    let tools: String = listed
        .iter()
        .map(|t| format!("[[tools]]\nname = \"{t}\"\n"))
        .collect();
    let spec = WritSpec::from_toml_str(&format!(
        "subject = \"mcp\"\nexpires_in = \"1h\"\neffect_ceiling = \"{ceiling}\"\n{tools}"
    ))
    .unwrap();
    let token = praxis_writ::issue(&spec, &key, SystemTime::now()).unwrap();
    let mut turns: Vec<Value> = calls
        .iter()
        .enumerate()
        .map(|(i, (name, arguments))| {
            json!({"tool_calls": [{"id": format!("c{i}"), "name": name, "arguments": arguments}]})
        })
        .collect();
    turns.push(json!({"content": "done"}));
    let script = json!({ "turns": turns });
    let provider = Arc::new(ScriptedProvider::from_json_str(&script.to_string(), "mcp").unwrap());
    let run_spec = RunSpec {
        protocol: Default::default(),
        compaction: None,
        task: "use the MCP tools".into(),
        workspace: ws.display().to_string(),
        provider: "scripted".into(),
        model: String::new(),
        tools: None,
        read_only: false,
        limits: Limits::default(),
        conversation: Default::default(),
    };
    let options = RunOptions {
        writ: Some(WritGrant {
            token,
            anchor: key.anchor(),
        }),
        ..RunOptions::new(run_spec, provider)
    };
    let report = runtime.run(options, observer).await.unwrap();
    let records = ledger
        .entries(&report.run_id, 0)
        .unwrap()
        .iter()
        .map(|e| Record::from_entry(&e.kind, &e.payload).unwrap())
        .collect();
    let conversation = serde_json::to_string(&*report.conversation).unwrap();
    Ran {
        records,
        ledger,
        run_id: report.run_id,
        conversation,
    }
}

impl Ran {
    pub fn executions(&self) -> Vec<&Execution> {
        self.records
            .iter()
            .filter_map(|r| match r {
                Record::Execution(e) => Some(e),
                _ => None,
            })
            .collect()
    }
}
