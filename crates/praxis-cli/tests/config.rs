//! `praxis config` and what configuration does to a run (compaction), end to end.

use serde_json::{Value, json};
use std::process::{Command, Output, Stdio};

fn praxis(home: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_praxis"));
    cmd.args(args)
        .env("PRAXIS_HOME", home)
        .env_remove("PRAXIS_PROVIDER")
        .env_remove("OPENAI_BASE_URL")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("praxis runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn config_shows_each_value_with_its_source_and_never_a_key() {
    let home = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("praxis.toml"),
        "[model]\nprovider = \"ollama:qwen2.5-coder\"\n",
    )
    .unwrap();
    std::fs::write(
        ws.path().join("praxis.toml"),
        "[limits]\nmax_steps = 12\n[providers.openai]\nbase_url = \"https://elsewhere.example/v1\"\n",
    )
    .unwrap();
    let out = praxis(
        home.path(),
        &[
            "config",
            "--workspace",
            ws.path().to_str().unwrap(),
            "--json",
        ],
        &[
            ("OPENAI_API_KEY", "sk-secret-value"),
            ("PRAXIS_PROTOCOL", "cmd"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("sk-secret-value"));
    // The workspace may not redirect endpoints: it is said, and ignored.
    assert!(
        text(&out.stderr).contains("ignored [providers]"),
        "{}",
        text(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let setting = |key: &str| {
        report["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["key"] == key)
            .unwrap_or_else(|| panic!("{key} missing: {report}"))
            .clone()
    };
    assert_eq!(setting("model.provider")["value"], "ollama:qwen2.5-coder");
    assert_eq!(setting("model.provider")["source"]["kind"], "file");
    assert_eq!(setting("limits.max_steps")["value"], 12);
    assert_eq!(
        setting("model.protocol")["source"],
        json!({"kind": "env", "name": "PRAXIS_PROTOCOL"})
    );
    assert_eq!(
        setting("providers.openai.base_url")["value"],
        "https://api.openai.com/v1"
    );
    assert_eq!(report["api_keys"]["OPENAI_API_KEY"], true);
}

#[test]
fn a_run_over_its_context_budget_is_compacted_by_a_summary_and_still_replays() {
    let home = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("big.txt"), "line of text\n".repeat(400)).unwrap();
    std::fs::write(
        home.path().join("praxis.toml"),
        "[model]\ncontext_window = 3000\n[compaction]\nmode = \"summarize\"\nthreshold_percent = 60\nkeep_recent = 1\n",
    )
    .unwrap();
    let read = |id: &str| json!({"tool_calls": [{"id": id, "name": "fs_read", "arguments": {"path": "big.txt"}}]});
    let script =
        json!({"turns": [read("a"), read("b"), read("c"), read("d"), {"content": "done"}]});
    let file = home.path().join("s.json");
    std::fs::write(&file, script.to_string()).unwrap();
    let out = praxis(
        home.path(),
        &[
            "run",
            "read it",
            "-w",
            ws.path().to_str().unwrap(),
            "--script",
            file.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["final_answer"], "done");
    let run_id = summary["run_id"].as_str().unwrap();
    let export = praxis(home.path(), &["ledger", "export", run_id], &[]);
    let entries: Vec<Value> = text(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let compactions: Vec<&Value> = entries
        .iter()
        .filter(|e| e["kind"] == "compaction")
        .collect();
    assert!(!compactions.is_empty(), "no compaction recorded");
    let first = &compactions[0]["payload"];
    assert_eq!(first["mode"], "summarize");
    assert!(
        first["summary"].as_str().unwrap().contains("fs_read"),
        "{first}"
    );
    assert!(first["tokens_after"].as_u64() < first["tokens_before"].as_u64());
    let replay = praxis(home.path(), &["replay", run_id], &[]);
    assert!(replay.status.success(), "{}", text(&replay.stdout));
}

/// A repository's praxis.toml may only narrow the home configuration, and says what it set.
#[test]
fn a_workspace_config_cannot_switch_to_a_paid_model_or_raise_limits() {
    let home = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("praxis.toml"), "[limits]\nmax_steps = 5\n").unwrap();
    std::fs::write(
        ws.path().join("praxis.toml"),
        "[model]\nprovider = \"openai:gpt-4.1\"\nprotocol = \"cmd\"\n[limits]\nmax_steps = 50\n",
    )
    .unwrap();
    let out = praxis(
        home.path(),
        &[
            "run",
            "Summarize this repository",
            "--workspace",
            ws.path().to_str().unwrap(),
            "--json",
        ],
        &[("OPENAI_API_KEY", "sk-test")],
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("ignored model.provider") && stderr.contains("limits.max_steps = 50"),
        "{stderr}"
    );
    assert!(
        stderr.contains("praxis.toml sets ") && stderr.contains("model.protocol = \"cmd\""),
        "{stderr}"
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = summary["run_id"].as_str().unwrap();
    let export = praxis(home.path(), &["ledger", "export", run], &[]);
    let first: Value = serde_json::from_str(text(&export.stdout).lines().next().unwrap()).unwrap();
    let spec = &first["payload"]["spec"];
    // The keyless mock stays; the limit is the home's; narrowing (protocol) applies.
    assert_eq!(spec["provider"], "mock");
    assert_eq!(spec["limits"]["max_steps"], 5);
    assert_eq!(spec["protocol"], "cmd");
}
