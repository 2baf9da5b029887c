use super::*;
use std::collections::HashMap;

fn known() -> Vec<String> {
    ["fs_read", "shell", "list_files"]
        .map(String::from)
        .to_vec()
}

fn parse(vars: &[(&str, &str)]) -> Result<JobConfig, JobConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let dir = std::env::temp_dir();
    let mut map = map;
    map.entry(WORKSPACE.into())
        .or_insert(dir.display().to_string());
    JobConfig::from_env(&|k| map.get(k).cloned(), &known())
}

const MOCK: &str = r#"{"provider": "mock", "name": "mock"}"#;

fn refused(vars: &[(&str, &str)]) -> JobConfigError {
    parse(vars).expect_err("refused")
}

#[test]
fn a_full_configuration_becomes_typed_values() {
    let job = parse(&[
        ("THOUGHTMESH_MODEL_CONFIG", r#"{"provider": "openai", "name": "gpt-4.1-mini", "api_key": "sk-1", "base_url": "http://127.0.0.1:9/v1"}"#),
        ("THOUGHTMESH_OBJECTIVE", " Summarize "),
        ("THOUGHTMESH_KEY_RESULTS", r#"["a summary", {"text": "a file", "check": "test -f out"}]"#),
        ("PRAXIS_TOOLS", r#"[{"name": "shell", "config": {"allow_commands": ["ls"]}}, {"name": "fs_read"}]"#),
    ])
    .unwrap();
    assert_eq!(job.objective, "Summarize");
    assert_eq!(job.model.provider, ProviderKind::Openai);
    assert_eq!(
        job.model.env_overrides(),
        vec![
            ("OPENAI_API_KEY", "sk-1".to_string()),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1".to_string())
        ]
    );
    assert_eq!(job.key_results[1].check(), Some("test -f out"));
    assert_eq!(job.tools_var, "PRAXIS_TOOLS");
    assert_eq!(job.tools.unwrap().len(), 2);
    assert_eq!(job.writ, WritSource::Development);
    assert!(!format!("{:?}", job.model).contains("sk-1"));
}

#[test]
fn every_refusal_names_the_variable_and_the_problem() {
    let e = refused(&[("THOUGHTMESH_MODEL_CONFIG", MOCK)]);
    assert_eq!(e.variable, "THOUGHTMESH_OBJECTIVE");
    let e = refused(&[("THOUGHTMESH_OBJECTIVE", "x")]);
    assert_eq!(e.variable, "THOUGHTMESH_MODEL_CONFIG");
    assert!(e.problem.contains("missing"));
    let e = refused(&[
        ("THOUGHTMESH_OBJECTIVE", "x"),
        ("PRAXIS_MODEL_CONFIG", "{not json"),
    ]);
    assert_eq!(e.variable, "PRAXIS_MODEL_CONFIG");
    let e = refused(&[
        ("THOUGHTMESH_OBJECTIVE", "x"),
        (
            "THOUGHTMESH_MODEL_CONFIG",
            r#"{"provider": "gemini", "name": "g"}"#,
        ),
    ]);
    assert!(
        e.problem.contains("provider") && e.problem.contains("gemini"),
        "{e}"
    );
    let e = refused(&[
        ("THOUGHTMESH_OBJECTIVE", "x"),
        (
            "THOUGHTMESH_MODEL_CONFIG",
            r#"{"provider": "mock", "name": "m", "apikey": "k"}"#,
        ),
    ]);
    assert!(e.problem.contains("apikey"), "{e}");
    let e = refused(&[
        ("THOUGHTMESH_OBJECTIVE", "x"),
        (
            "THOUGHTMESH_MODEL_CONFIG",
            r#"{"provider": "ollama", "name": "m", "api_key": "k"}"#,
        ),
    ]);
    assert!(e.problem.contains("api_key"), "{e}");
    let e = refused(&[
        ("THOUGHTMESH_OBJECTIVE", "x"),
        (
            "THOUGHTMESH_MODEL_CONFIG",
            r#"{"provider": "openai", "name": "m", "base_url": "file:///etc"}"#,
        ),
    ]);
    assert!(e.problem.contains("base_url"), "{e}");
    let e = refused(&[
        ("THOUGHTMESH_OBJECTIVE", "x"),
        ("THOUGHTMESH_MODEL_CONFIG", MOCK),
        ("THOUGHTMESH_TOOLS", r#"[{"name": "rm_rf"}]"#),
    ]);
    assert_eq!(e.variable, "THOUGHTMESH_TOOLS");
    assert!(e.problem.contains("unknown tool `rm_rf`"), "{e}");
    let e = refused(&[
        ("THOUGHTMESH_OBJECTIVE", "x"),
        ("THOUGHTMESH_MODEL_CONFIG", MOCK),
        (
            "THOUGHTMESH_TOOLS",
            r#"[{"name": "shell", "config": {"paths": ["../etc"]}}]"#,
        ),
    ]);
    assert!(
        e.problem.contains("[0].config") && e.problem.contains(".."),
        "{e}"
    );
    let e = refused(&[
        ("THOUGHTMESH_OBJECTIVE", "x"),
        ("THOUGHTMESH_MODEL_CONFIG", MOCK),
        (
            "THOUGHTMESH_TOOLS",
            r#"[{"name": "shell", "config": {"sudo": true}}]"#,
        ),
    ]);
    assert!(e.problem.contains("sudo"), "{e}");
    let e = refused(&[
        ("THOUGHTMESH_OBJECTIVE", "x"),
        ("THOUGHTMESH_MODEL_CONFIG", MOCK),
        (
            "THOUGHTMESH_KEY_RESULTS",
            r#"[{"text": "t", "check": "  "}]"#,
        ),
    ]);
    assert_eq!(e.variable, "THOUGHTMESH_KEY_RESULTS");
    let e = refused(&[
        ("THOUGHTMESH_OBJECTIVE", "x"),
        ("THOUGHTMESH_MODEL_CONFIG", MOCK),
        ("THOUGHTMESH_KEY_RESULTS", r#"{"text": "t"}"#),
    ]);
    assert!(e.problem.contains("sequence"), "{e}");
    let e = refused(&[
        ("THOUGHTMESH_OBJECTIVE", "x"),
        ("PRAXIS_OBJECTIVE", "y"),
        ("THOUGHTMESH_MODEL_CONFIG", MOCK),
    ]);
    assert_eq!(e.variable, "THOUGHTMESH_OBJECTIVE/PRAXIS_OBJECTIVE");
    let e = refused(&[
        ("THOUGHTMESH_OBJECTIVE", "x"),
        ("THOUGHTMESH_MODEL_CONFIG", MOCK),
        (WRIT, "/no/such.writ"),
    ]);
    assert_eq!(e.variable, WRIT);
    let e = refused(&[
        ("THOUGHTMESH_OBJECTIVE", "x"),
        ("THOUGHTMESH_MODEL_CONFIG", MOCK),
        (WORKSPACE, "/no/such/dir"),
    ]);
    assert_eq!(e.variable, WORKSPACE);
}

#[test]
fn a_narrowing_replaces_fields_and_keeps_the_writs_denials() {
    let granted = ToolGrant {
        paths: Some(vec!["**".into()]),
        deny_commands: Some(vec!["rm".into()]),
        ..ToolGrant::new("shell")
    };
    let narrowing = ToolNarrowing {
        paths: Some(vec!["src/**".into()]),
        deny_commands: Some(vec!["curl".into()]),
        ..ToolNarrowing::default()
    };
    let grant = narrowing.narrow(&granted);
    assert_eq!(grant.paths, Some(vec!["src/**".to_string()]));
    assert_eq!(
        grant.deny_commands,
        Some(vec!["rm".to_string(), "curl".to_string()])
    );
}

#[test]
fn the_run_id_a_job_attaches_to_is_checked_and_the_model_config_round_trips() {
    let base = [
        ("THOUGHTMESH_MODEL_CONFIG", MOCK),
        ("THOUGHTMESH_OBJECTIVE", "x"),
    ];
    assert_eq!(parse(&base).unwrap().run_id, None);
    let id = "01jd8k2q9xabcdefghjkmnpqrs";
    let with = |value: &str| {
        let mut vars = base.to_vec();
        vars.push((RUN_ID, value));
        parse(&vars)
    };
    assert_eq!(with(id).unwrap().run_id.as_deref(), Some(id));
    for bad in ["", "ABC", "a/b", "../x", "-a", "a-", "a b", &"x".repeat(53)] {
        let e = with(bad).expect_err(bad);
        assert_eq!(e.variable, RUN_ID, "{bad}: {e}");
    }
    // What the server's executor writes is what the job reads.
    let model = ModelConfig {
        provider: ProviderKind::Ollama,
        name: "qwen3".into(),
        api_key: None,
        base_url: None,
    };
    let text = serde_json::to_string(&model).unwrap();
    assert_eq!(text, r#"{"provider":"ollama","name":"qwen3"}"#);
    let tools = vec![ToolConfig {
        name: "fs_read".into(),
        config: None,
    }];
    let tools_text = serde_json::to_string(&tools).unwrap();
    let back = parse(&[
        ("THOUGHTMESH_MODEL_CONFIG", &text),
        ("THOUGHTMESH_OBJECTIVE", "x"),
        ("THOUGHTMESH_TOOLS", &tools_text),
    ])
    .unwrap();
    assert_eq!(back.model.provider, ProviderKind::Ollama);
    assert_eq!(back.tools, Some(tools));
}
