mod common;

use common::*;
use praxis_core::Effect;
use praxis_writ::{ToolMode, WritError, WritSpec};

fn spec_error(toml: &str) -> (String, String) {
    match WritSpec::from_toml_str(toml) {
        Err(WritError::Spec { field, reason }) => (field, reason),
        other => panic!("expected a spec error for\n{toml}\ngot {other:?}"),
    }
}

#[test]
fn the_documented_example_parses() {
    let s = spec(
        r#"
subject = "agent-1"
tenant = "default"
expires_in = "1h"
effect_ceiling = "exec"
[budget]
tool_calls = 20
model_calls = 30
model_tokens = 100000
wall_seconds = 600
usd = 1.0
bytes_written = 1048576
[[tools]]
name = "fs_read"
paths = ["**"]
[[tools]]
name = "fs_write"
paths = ["src/**"]
mode = "read-write"
[[tools]]
name = "shell"
allow_commands = ["ls *", "cat *", "cargo *"]
deny_commands = ["rm *"]
[[tools]]
name = "http"
hosts = ["api.example.com"]
[approvals]
tools = ["fs_write"]
effects = ["exec"]
timeout_seconds = 300
"#,
    );
    assert_eq!(s.effect_ceiling, Effect::Exec);
    assert_eq!(s.budget.usd, Some(1.0));
    assert_eq!(s.tools.len(), 4);
    assert_eq!(s.tool("fs_write").unwrap().mode(), ToolMode::ReadWrite);
    assert_eq!(s.approvals.effects, vec![Effect::Exec]);
    // Defaults: tenant "default", ceiling read.
    let minimal = spec("subject = \"x\"\nexpires_in = \"5m\"\n");
    assert_eq!(minimal.tenant, "default");
    assert_eq!(minimal.effect_ceiling, Effect::Read);
    // JSON with the same keys.
    let j = WritSpec::from_json_str(
        r#"{"subject":"a","expires_at":"2027-01-01T00:00:00Z","effect_ceiling":"write",
            "tools":[{"name":"fs_read","paths":["src/**"],"mode":"read"}]}"#,
    )
    .unwrap();
    assert_eq!(j.tool("fs_read").unwrap().mode(), ToolMode::Read);
}

#[test]
fn unknown_fields_are_refused_by_name() {
    for (toml, name) in [
        ("subject = \"a\"\nexpires = \"1h\"\n", "expires"),
        ("subject = \"a\"\n[budget]\ntokens = 5\n", "tokens"),
        (
            "subject = \"a\"\n[[tools]]\nname = \"x\"\npath = [\"a\"]\n",
            "path",
        ),
        ("subject = \"a\"\n[approvals]\ntimeout = 5\n", "timeout"),
    ] {
        let err = WritSpec::from_toml_str(toml).unwrap_err();
        assert!(matches!(err, WritError::Parse { .. }), "{err}");
        assert!(err.to_string().contains(&format!("`{name}`")), "{err}");
    }
    let err = WritSpec::from_json_str(r#"{"subject":"a","color":"red"}"#).unwrap_err();
    assert!(err.to_string().contains("`color`"), "{err}");
    let err = WritSpec::from_toml_str("subject = \"a\"\neffect_ceiling = \"root\"\n").unwrap_err();
    assert!(err.to_string().contains("root"), "{err}");
}

#[test]
fn contradictions_and_bad_values_name_the_field() {
    let cases = [
        ("subject = \"  \"\n", "subject"),
        ("subject = \"a\"\ntenant = \"\"\n", "tenant"),
        (
            "subject = \"a\"\nexpires_in = \"1h\"\nexpires_at = \"2027-01-01T00:00:00Z\"\n",
            "expires_in",
        ),
        ("subject = \"a\"\nexpires_in = \"soon\"\n", "expires_in"),
        ("subject = \"a\"\nexpires_in = \"0s\"\n", "expires_in"),
        ("subject = \"a\"\nexpires_at = \"tomorrow\"\n", "expires_at"),
        (
            "subject = \"a\"\nnot_before = \"2027-01-02T00:00:00Z\"\nexpires_at = \"2027-01-01T00:00:00Z\"\n",
            "expires_at",
        ),
        (
            "subject = \"a\"\n[approvals]\ntimeout_seconds = 0\n",
            "approvals.timeout_seconds",
        ),
        ("subject = \"a\"\n[budget]\nusd = -1.0\n", "budget.usd"),
        ("subject = \"a\"\n[budget]\nusd = nan\n", "budget.usd"),
        ("subject = \"a\"\n[budget]\nusd = inf\n", "budget.usd"),
        (
            "subject = \"a\"\n[[tools]]\nname = \"a\"\n[[tools]]\nname = \"b\"\npaths = [\"src/[\"]\n",
            "tools[1].paths[0]",
        ),
        (
            "subject = \"a\"\n[[tools]]\nname = \"a\"\npaths = [\"/etc/**\"]\n",
            "tools[0].paths[0]",
        ),
        (
            "subject = \"a\"\n[[tools]]\nname = \"a\"\npaths = [\"src\", \"../x\"]\n",
            "tools[0].paths[1]",
        ),
        (
            "subject = \"a\"\n[[tools]]\nname = \"a\"\n[[tools]]\nname = \"b\"\n[[tools]]\nname = \"c\"\n[[tools]]\nname = \"a\"\n",
            "tools[3].name",
        ),
        ("subject = \"a\"\n[[tools]]\nname = \"\"\n", "tools[0].name"),
        (
            "subject = \"a\"\n[[tools]]\nname = \"h\"\nhosts = [\"*\"]\n",
            "tools[0].hosts[0]",
        ),
        (
            "subject = \"a\"\n[[tools]]\nname = \"s\"\ndeny_commands = [\"\"]\n",
            "tools[0].deny_commands[0]",
        ),
    ];
    for (toml, field) in cases {
        let (got, reason) = spec_error(toml);
        assert_eq!(got, field, "{toml}: {reason}");
    }
    // A spec that never expires cannot be issued.
    let key = praxis_writ::IssuerKey::generate();
    let err = praxis_writ::issue(&spec("subject = \"a\"\n"), &key, now()).unwrap_err();
    assert!(
        matches!(&err, WritError::Spec { field, .. } if field == "expires_at"),
        "{err}"
    );
}

#[test]
fn specs_load_from_files_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("w.toml");
    std::fs::write(&toml, "subject = \"t\"\nexpires_in = \"1h\"\n").unwrap();
    assert_eq!(WritSpec::from_path(&toml).unwrap().subject, "t");
    let json = dir.path().join("w.json");
    std::fs::write(&json, r#"{"subject":"j","expires_in":"1h"}"#).unwrap();
    assert_eq!(WritSpec::from_path(&json).unwrap().subject, "j");
    let other = dir.path().join("writ");
    std::fs::write(&other, r#"{"subject":"k","expires_in":"1h"}"#).unwrap();
    assert_eq!(WritSpec::from_path(&other).unwrap().subject, "k");
    std::fs::write(&other, "subject = \"m\"\n").unwrap();
    assert_eq!(WritSpec::from_path(&other).unwrap().subject, "m");
    assert!(matches!(
        WritSpec::from_path(&dir.path().join("missing.toml")),
        Err(WritError::Io { .. })
    ));
}

#[test]
fn development_writ_grants_builtins_up_to_exec() {
    let dev = WritSpec::development("ws");
    dev.validate().unwrap();
    assert_eq!(dev.effect_ceiling, Effect::Exec);
    assert_eq!(dev.tools.len(), 9);
    assert!(dev.tools.iter().any(|t| t.name == "delegate"));
    assert!(
        dev.tools
            .iter()
            .all(|t| t.paths.as_deref() == Some(&["**".to_string()][..]))
    );
    assert_eq!(dev.budget.tool_calls, Some(200));
    assert_eq!(dev.budget.model_calls, Some(100));
    assert_eq!(dev.budget.model_tokens, Some(2_000_000));
    assert_eq!(dev.budget.wall_seconds, Some(3600));
    assert_eq!(dev.budget.bytes_written, Some(1 << 30));
    assert_eq!(dev.expires_in.as_deref(), Some("24h"));
    assert!(dev.approvals.is_empty());
    // It round-trips through TOML.
    let text = toml::to_string(&dev).unwrap();
    assert_eq!(WritSpec::from_toml_str(&text).unwrap(), dev);
}
