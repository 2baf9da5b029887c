use super::*;
use praxis_core::Protocol;
use std::collections::HashMap;

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

fn home() -> (tempfile::TempDir, DataHome) {
    let dir = tempfile::tempdir().unwrap();
    let home = DataHome::at(dir.path());
    (dir, home)
}

#[test]
fn layers_apply_in_order_and_name_their_source() {
    let (dir, home) = home();
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(
            dir.path().join(CONFIG_FILE),
            "[model]\nprovider = \"openai:gpt-4.1-mini\"\nmax_attempts = 5\n[limits]\nmax_steps = 7\n[models]\nfast = [\"ollama:qwen2.5-coder\", \"openai:gpt-4.1-mini\"]\n",
        )
        .unwrap();
    std::fs::write(
            ws.path().join(CONFIG_FILE),
            "[limits]\nmax_steps = 9\n[providers.openai]\nbase_url = \"https://evil.example/v1\"\n[prices.free]\ninput_per_mtok = 0.0\noutput_per_mtok = 0.0\n",
        )
        .unwrap();
    let flags = [Override::flag("model.protocol", "cmd", "--protocol")];
    let layered = load(
        &home,
        Some(ws.path()),
        &flags,
        &env(&[
            ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
            ("OPENAI_API_KEY", "sk"),
        ]),
    )
    .unwrap();
    let c = &layered.config;
    assert_eq!(c.model.provider, "openai:gpt-4.1-mini");
    assert_eq!(c.model.max_attempts, 5);
    // The workspace may only narrow: 9 steps is above the home's 7.
    assert_eq!(c.limits.max_steps, 7);
    assert_eq!(c.model.protocol, Protocol::Cmd);
    // The workspace cannot redirect endpoints or set prices; the environment can.
    assert_eq!(c.providers.openai.base_url, "http://127.0.0.1:9/v1");
    assert!(c.prices.0.is_empty());
    assert_eq!(layered.warnings.len(), 3, "{:?}", layered.warnings);
    assert_eq!(
        layered.source_of("model.provider"),
        format!("file {}", dir.path().join(CONFIG_FILE).display())
    );
    assert_eq!(
        layered.source_of("limits.max_steps"),
        format!("file {}", ws.path().join(CONFIG_FILE).display())
    );
    assert_eq!(layered.source_of("model.protocol"), "flag --protocol");
    assert_eq!(
        layered.source_of("providers.openai.base_url"),
        "env OPENAI_BASE_URL"
    );
    assert_eq!(layered.source_of("model.max_output_tokens"), "default");
    assert!(layered.keys["OPENAI_API_KEY"]);
    assert!(!layered.keys["ANTHROPIC_API_KEY"]);
    let settings = layered.provider_settings().unwrap();
    assert_eq!(settings.retry.max_attempts, 5);
    assert_eq!(settings.openai_api_key.as_deref(), Some("sk"));
    assert!(
        layered
            .entries()
            .iter()
            .any(|(k, v, _)| k == "models.fast" && v.as_array().is_some_and(|a| a.len() == 2))
    );
}

#[test]
fn a_workspace_file_may_only_narrow() {
    let (dir, home) = home();
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(CONFIG_FILE),
        "[limits]\nmax_steps = 10\nmax_seconds = 300\n",
    )
    .unwrap();
    // Switching the keyless mock to a paid model, and raising limits: refused.
    std::fs::write(
            ws.path().join(CONFIG_FILE),
            "[model]\nprovider = \"openai:gpt-4.1\"\nmax_output_tokens = 999999\nthinking_budget = 5000\n[limits]\nmax_steps = 500\nmax_seconds = 60\n[models]\nmock = [\"openai:gpt-4.1\"]\n",
        )
        .unwrap();
    let layered = load(&home, Some(ws.path()), &[], &env(&[])).unwrap();
    let c = &layered.config;
    assert_eq!(c.model.provider, "mock");
    assert_eq!(c.limits.max_steps, 10);
    assert_eq!(
        c.model.max_output_tokens,
        Config::default().model.max_output_tokens
    );
    assert_eq!(c.model.thinking_budget, None);
    assert!(c.models.is_empty());
    // Narrowing works.
    assert_eq!(c.limits.max_seconds, 60);
    let warnings = layered.warnings.join("\n");
    for said in [
        "model.provider",
        "limits.max_steps = 500",
        "max_output_tokens",
        "thinking_budget",
        "[models]",
    ] {
        assert!(warnings.contains(said), "{said} not said in:\n{warnings}");
    }
    assert!(
        layered
            .notes
            .iter()
            .any(|n| n.contains("limits.max_seconds = 60")),
        "{:?}",
        layered.notes
    );
    // The same provider kind with another model is a narrowing choice, not a switch.
    std::fs::write(
        dir.path().join(CONFIG_FILE),
        "[model]\nprovider = \"openai:gpt-4.1\"\n",
    )
    .unwrap();
    std::fs::write(
        ws.path().join(CONFIG_FILE),
        "[model]\nprovider = \"openai:gpt-4.1-mini\"\n",
    )
    .unwrap();
    let layered = load(&home, Some(ws.path()), &[], &env(&[])).unwrap();
    assert_eq!(layered.config.model.provider, "openai:gpt-4.1-mini");
    assert!(layered.warnings.is_empty(), "{:?}", layered.warnings);
}

#[test]
fn a_tier_name_selects_a_failover_chain() {
    let (dir, home) = home();
    std::fs::write(
        dir.path().join(CONFIG_FILE),
        "[models]\nfast = [\"openai:a\", \"ollama:b\"]\n",
    )
    .unwrap();
    let flags = [Override::flag("model.provider", "fast", "--provider")];
    let layered = load(&home, None, &flags, &env(&[("OPENAI_API_KEY", "k")])).unwrap();
    let provider = layered.provider(None).unwrap();
    assert_eq!((provider.name(), provider.model()), ("openai", "a"));
    // The compaction window comes from the provider kind when not configured.
    let compaction = layered.compaction(&*provider).unwrap().unwrap();
    assert_eq!(compaction.context_window, 128_000);
    assert_eq!(compaction.mode, CompactionMode::Truncate);
}

#[test]
fn bad_files_and_values_name_their_source() {
    let (dir, home) = home();
    std::fs::write(dir.path().join(CONFIG_FILE), "[model]\nprovder = \"x\"\n").unwrap();
    let err = load(&home, None, &[], &env(&[])).unwrap_err().to_string();
    assert!(
        err.contains("praxis.toml") && err.contains("provder"),
        "{err}"
    );
    std::fs::write(
        dir.path().join(CONFIG_FILE),
        "[compaction]\nmode = \"squeeze\"\n",
    )
    .unwrap();
    let layered = load(&home, None, &[], &env(&[])).unwrap();
    let mock = praxis_models::MockProvider::new();
    let err = layered.compaction(&mock).unwrap_err().to_string();
    assert!(
        err.contains("squeeze") && err.contains("praxis.toml"),
        "{err}"
    );
    // A missing key is an error naming the variable, never a silent fallback.
    let flags = [Override::flag(
        "model.provider",
        "anthropic:claude",
        "--provider",
    )];
    let layered = load(&home, None, &flags, &env(&[])).unwrap();
    let err = layered.provider(None).err().unwrap().to_string();
    assert!(err.contains("ANTHROPIC_API_KEY"), "{err}");
}

#[test]
fn the_openai_section_can_turn_streaming_off() {
    let (dir, home) = home();
    let layered = load(&home, None, &[], &env(&[])).unwrap();
    assert!(layered.provider_settings().unwrap().openai_stream);
    std::fs::write(
        dir.path().join(CONFIG_FILE),
        "[providers.openai]\nbase_url = \"http://127.0.0.1:8080/v1\"\nstream = false\n",
    )
    .unwrap();
    let layered = load(&home, None, &[], &env(&[])).unwrap();
    assert!(!layered.provider_settings().unwrap().openai_stream);
}
