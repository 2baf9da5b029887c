use super::*;
use crate::{Registry, RegistryError, Workspace};
use praxis_core::{CompileError, Contracts};
use serde_json::json;

const ECHO: &str = r#"
name = "echo_args"
description = "Print each argument on its own line"
effect = "read"
command = ["printf", "%s\n", "{text}", "{count}"]
timeout_seconds = 10

[args]
type = "object"
required = ["text"]
[args.properties.text]
type = "string"
[args.properties.count]
type = "integer"
"#;

fn ctx(dir: &Path) -> ExecContext {
    ExecContext::new(Workspace::new(dir).unwrap())
}

fn manifest(text: &str) -> ToolManifest {
    parse(Path::new("/m/echo.toml"), text).unwrap()
}

/// The error's text for a manifest that must be refused.
fn refused(text: &str) -> String {
    parse(Path::new("/m/bad.toml"), text)
        .unwrap_err()
        .to_string()
}

#[test]
fn a_manifest_becomes_a_spec_with_a_closed_schema() {
    let m = manifest(ECHO);
    assert_eq!(m.spec.name, "echo_args");
    assert_eq!(m.spec.effect, Effect::Read);
    assert_eq!(m.program, "printf");
    assert_eq!(
        m.argv,
        vec![
            ArgvItem::Literal("%s\n".into()),
            ArgvItem::Arg("text".into()),
            ArgvItem::Arg("count".into())
        ]
    );
    assert_eq!(m.spec.parameters["additionalProperties"], json!(false));
    assert_eq!(m.spec.parameters["required"], json!(["text"]));
    assert_eq!(m.timeout, Duration::from_secs(10));
    assert_eq!(
        ManifestTool(m).resources(&json!({"text": "x"})),
        vec![Resource::Path {
            path: ".".into(),
            mode: AccessMode::Read
        }]
    );
}

#[tokio::test]
async fn a_manifest_tool_runs_its_argv() {
    let dir = tempfile::tempdir().unwrap();
    let tool = ManifestTool(manifest(ECHO));
    let obs = tool
        .execute(&ctx(dir.path()), json!({"text": "hello world", "count": 3}))
        .await;
    assert_eq!(obs.status, ExecStatus::Ok, "{}", obs.output);
    assert_eq!(obs.output, "hello world\n3\n");
    // An absent optional argument drops its item.
    let obs = tool
        .execute(&ctx(dir.path()), json!({"text": "alone"}))
        .await;
    assert_eq!(obs.output, "alone\n");
}

#[tokio::test]
async fn an_injection_attempt_is_one_argument_never_shell() {
    let dir = tempfile::tempdir().unwrap();
    let tool = ManifestTool(manifest(ECHO));
    for attack in [
        "\"; touch pwned; echo \"",
        "; touch pwned",
        "$(touch pwned)",
        "`touch pwned`",
        "a && touch pwned",
        "x\ntouch pwned",
    ] {
        let obs = tool
            .execute(&ctx(dir.path()), json!({ "text": attack }))
            .await;
        assert_eq!(obs.status, ExecStatus::Ok, "{}", obs.output);
        assert_eq!(obs.output, format!("{attack}\n"));
        assert!(!dir.path().join("pwned").exists(), "{attack} ran");
    }
    // A NUL byte cannot be passed in an argv item: refused, nothing runs.
    let obs = tool
        .execute(&ctx(dir.path()), json!({ "text": "a\u{0}b" }))
        .await;
    assert_eq!(obs.status, ExecStatus::Error);
    assert!(obs.output.contains("NUL"), "{}", obs.output);
}

#[tokio::test]
async fn env_cwd_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let tool = ManifestTool(manifest(
        r#"
name = "where"
description = "d"
effect = "exec"
command = ["bash", "-c", "echo \"$PWD $GREETING\"; exit 3"]
cwd = "sub"
env = { GREETING = "hi" }
[args]
type = "object"
"#,
    ));
    assert_eq!(
        tool.resources(&json!({})),
        vec![Resource::Path {
            path: "sub".into(),
            mode: AccessMode::Write
        }]
    );
    let obs = tool.execute(&ctx(dir.path()), json!({})).await;
    assert_eq!(obs.status, ExecStatus::Error);
    assert_eq!(obs.exit_code, Some(3));
    let sub = dir.path().join("sub").canonicalize().unwrap();
    assert_eq!(obs.output, format!("{} hi\n", sub.display()));
    // A cwd that turned into a link out of the workspace is refused when the call runs.
    std::fs::remove_dir(dir.path().join("sub")).unwrap();
    std::os::unix::fs::symlink("/", dir.path().join("sub")).unwrap();
    let obs = tool.execute(&ctx(dir.path()), json!({})).await;
    assert_eq!(obs.status, ExecStatus::Error);
    assert!(obs.output.contains("invalid cwd `sub`"), "{}", obs.output);
}

#[test]
fn malformed_manifests_name_the_file_and_field() {
    let with = |from: &str, to: &str| ECHO.replacen(from, to, 1);
    let cases = [
        (
            with("name = \"echo_args\"", "name = \"Echo Args\""),
            "field `name`",
        ),
        (
            with("name = \"echo_args\"", "name = \"mcp__x__y\""),
            "field `name`",
        ),
        (
            with(
                "description = \"Print each argument on its own line\"",
                "description = \" \"",
            ),
            "field `description`",
        ),
        (
            with("type = \"object\"", "type = \"array\""),
            "field `args`",
        ),
        (
            with("\"{text}\"", "\"--text={text}\""),
            "field `command[2]`: `--text={text}`: a placeholder must be a whole argv item",
        ),
        (
            with("\"{text}\"", "\"{nope}\""),
            "field `command[2]`: `{nope}` names no property of `args`",
        ),
        (with("[\"printf\",", "[\"{text}\","), "field `command[0]`"),
        (
            with(
                "command = [\"printf\", \"%s\\n\", \"{text}\", \"{count}\"]",
                "command = []",
            ),
            "field `command`",
        ),
        (
            with("timeout_seconds = 10", "timeout_seconds = 0"),
            "field `timeout_seconds`",
        ),
        (
            with(
                "timeout_seconds = 10",
                "timeout_seconds = 10\ncwd = \"../up\"",
            ),
            "field `cwd`",
        ),
        (
            with(
                "timeout_seconds = 10",
                "timeout_seconds = 10\ncwd = \"/etc\"",
            ),
            "field `cwd`",
        ),
        (
            with(
                "timeout_seconds = 10",
                "timeout_seconds = 10\nenv = { \"A-B\" = \"x\" }",
            ),
            "field `env.A-B`",
        ),
        (
            with(
                "[args.properties.count]\ntype = \"integer\"",
                "[args.properties.count]\ntype = \"array\"",
            ),
            "field `command[3]`: `{count}`: property `count` must declare type",
        ),
        (
            with(
                "[args.properties.text]\ntype = \"string\"",
                "[args.properties.text]\ntype = 5",
            ),
            "field `args`: not a valid JSON Schema",
        ),
        (
            with("effect = \"read\"", "effect = \"everything\""),
            "unknown variant `everything`",
        ),
        (
            with("effect = \"read\"", "effect = \"read\"\nshell = true"),
            "unknown field `shell`",
        ),
        (with("effect = \"read\"\n", ""), "missing field `effect`"),
        ("name = ".to_string(), "bad.toml"),
    ];
    for (text, expected) in cases {
        let error = refused(&text);
        assert!(
            error.starts_with("tool manifest `/m/bad.toml`: "),
            "{error}"
        );
        assert!(error.contains(expected), "expected {expected:?} in {error}");
    }
}

#[test]
fn directories_load_sorted_and_refuse_a_bad_file() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    std::fs::write(a.path().join("z.toml"), ECHO.replace("echo_args", "zeta")).unwrap();
    std::fs::write(a.path().join("a.toml"), ECHO.replace("echo_args", "alpha")).unwrap();
    std::fs::write(a.path().join("notes.txt"), "not a manifest").unwrap();
    std::fs::write(b.path().join("b.toml"), ECHO).unwrap();
    let env = format!("{}::{}", a.path().display(), b.path().display());
    let dirs = manifest_dirs(&[], Some(&env));
    assert_eq!(dirs, vec![a.path().to_path_buf(), b.path().to_path_buf()]);
    let names: Vec<String> = load_dirs(&dirs)
        .unwrap()
        .into_iter()
        .map(|m| m.spec.name)
        .collect();
    assert_eq!(names, ["alpha", "zeta", "echo_args"]);

    std::fs::write(b.path().join("c.toml"), "name = 1").unwrap();
    let error = load_dirs(&dirs).unwrap_err().to_string();
    let file = b.path().join("c.toml");
    assert!(
        error.starts_with(&format!("tool manifest `{}`", file.display())),
        "{error}"
    );
    let missing = a.path().join("missing");
    let error = load_dirs(std::slice::from_ref(&missing))
        .unwrap_err()
        .to_string();
    assert!(error.contains(&missing.display().to_string()), "{error}");
}

#[test]
fn the_registry_compiles_manifest_tools_and_refuses_taken_names() {
    let registry = Registry::with_manifests(vec![manifest(ECHO)]).unwrap();
    assert!(registry.names().contains(&"echo_args".to_string()));
    assert_eq!(registry.manifests().len(), 1);
    let listed = registry.catalogue();
    let echo = listed.iter().find(|t| t.name == "echo_args").unwrap();
    assert_eq!(
        echo.origin,
        crate::ToolOrigin::Manifest {
            file: "/m/echo.toml".into()
        }
    );
    assert_eq!(
        serde_json::to_value(echo).unwrap()["file"],
        json!("/m/echo.toml")
    );
    let compiled = registry
        .compile("echo_args", &json!({"text": "x"}))
        .unwrap();
    assert_eq!(compiled.effect, Effect::Read);
    match registry
        .compile("echo_args", &json!({"text": 5, "extra": true}))
        .unwrap_err()
    {
        CompileError::InvalidArguments { problems, .. } => assert_eq!(
            problems,
            vec![
                "`text`: 5 is not of type \"string\"".to_string(),
                "unknown field `extra`".to_string()
            ]
        ),
        other => panic!("{other:?}"),
    }
    let error =
        Registry::with_manifests(vec![manifest(&ECHO.replace("echo_args", "shell"))]).unwrap_err();
    assert!(matches!(error, RegistryError::Manifest { .. }));
    assert_eq!(
        error.to_string(),
        "tool manifest `/m/echo.toml`: a tool named `shell` is already registered"
    );
}
