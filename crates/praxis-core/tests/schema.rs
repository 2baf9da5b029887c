//! The published JSON Schemas (`schema/*.schema.json`, from which the console generates its
//! types) must be what the code generates. `PRAXIS_UPDATE_SCHEMA=1 cargo test -p praxis-core
//! --test schema` rewrites them.

use praxis_core::record::{feed_schema, record_schema};
use serde_json::Value;
use std::path::PathBuf;

fn check(file: &str, schema: Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../schema")
        .join(file);
    let generated = serde_json::to_string_pretty(&schema).unwrap() + "\n";
    if std::env::var_os("PRAXIS_UPDATE_SCHEMA").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date: rerun with PRAXIS_UPDATE_SCHEMA=1 and commit it",
        path.display()
    );
}

#[test]
fn records_schema_is_in_sync() {
    check("records.schema.json", record_schema());
}

#[test]
fn feed_schema_is_in_sync() {
    check("feed.schema.json", feed_schema());
}

#[test]
fn the_schema_names_every_kind() {
    let text = record_schema().to_string();
    for kind in [
        "run_started",
        "workspace_snapshot",
        "model_response",
        "invalid_output",
        "model_error",
        "proposal",
        "approval_requested",
        "approval_decided",
        "execution",
        "compaction",
        "run_resumed",
        "run_finished",
        "checkpoint",
    ] {
        assert!(text.contains(&format!("\"{kind}\"")), "{kind}");
    }
}
