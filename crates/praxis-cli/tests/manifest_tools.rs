//! Manifest tools at the CLI: `praxis tools` lists them with their file; a malformed
//! manifest refuses `praxis tools` and `praxis run` at start, naming the file and field.

mod common;

use common::Praxis;
use serde_json::Value;

const TOOL: &str = r#"
name = "word_count"
description = "Count the words of a file"
effect = "read"
command = ["wc", "-w", "--", "{path}"]
[args]
type = "object"
required = ["path"]
[args.properties.path]
type = "string"
"#;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn manifest_tools_are_listed_and_a_malformed_one_refuses_the_start() {
    let env = Praxis::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("word_count.toml");
    std::fs::write(&file, TOOL).unwrap();
    let dirs = dir.path().display().to_string();

    let out = env
        .cmd(&["tools", "--json"])
        .env("PRAXIS_TOOL_MANIFEST_DIRS", &dirs)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let tool = listed
        .iter()
        .find(|t| t["name"] == "word_count")
        .expect("word_count listed");
    assert_eq!(tool["source"], "manifest");
    assert_eq!(tool["effect"], "read");
    assert_eq!(tool["file"], file.display().to_string());
    assert_eq!(tool["input_schema"]["required"][0], "path");
    let out = env
        .cmd(&["tools"])
        .env("PRAXIS_TOOL_MANIFEST_DIRS", &dirs)
        .output()
        .unwrap();
    assert!(
        text(&out.stdout).contains("word_count  read     manifest  path*: string"),
        "{}",
        text(&out.stdout)
    );

    // The same directory named in the home praxis.toml works too.
    env.file(
        "praxis.toml",
        &format!("[tools]\nmanifest_dirs = [{dirs:?}]\n"),
    );
    let out = env.praxis(&["tools", "--json"]);
    assert!(text(&out.stdout).contains("\"word_count\""));

    let broken = dir.path().join("zz.toml");
    std::fs::write(&broken, TOOL.replace("{path}\"]", "--file={path}\"]")).unwrap();
    for args in [
        vec!["tools"],
        vec![
            "run",
            "count",
            "--provider",
            "mock",
            "--fabric",
            "in-process",
        ],
    ] {
        let out = env.praxis(&args);
        assert!(!out.status.success(), "{args:?} started");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!("tool manifest `{}`", broken.display()))
                && stderr.contains("field `command[3]`"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn doctor_names_a_malformed_manifest() {
    let env = Praxis::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok.toml"), TOOL).unwrap();
    let dirs = dir.path().display().to_string();
    let doctor = |env: &Praxis| {
        let out = env
            .cmd(&["doctor", "--json"])
            .env("PRAXIS_TOOL_MANIFEST_DIRS", &dirs)
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "tool manifests")
            .cloned()
            .expect("a tool manifests check")
    };
    let check = doctor(&env);
    assert_eq!(
        (check["ok"].clone(), check["detail"].clone()),
        (true.into(), "word_count".into())
    );
    std::fs::write(
        dir.path().join("bad.toml"),
        TOOL.replace("effect = \"read\"", "effect = 3"),
    )
    .unwrap();
    let check = doctor(&env);
    assert_eq!(check["ok"], false);
    let detail = check["detail"].as_str().unwrap();
    assert!(
        detail.contains("bad.toml") && detail.contains("effect"),
        "{detail}"
    );
}

/// `praxis serve` offers manifest tools at `GET /v1/tools`, and a malformed manifest
/// refuses its start.
#[test]
fn the_server_lists_manifest_tools_and_refuses_a_malformed_one() {
    let env = Praxis::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("word_count.toml"), TOOL).unwrap();
    let dirs = dir.path().display().to_string();
    let mut cmd = env.cmd(&[]);
    cmd.env("PRAXIS_TOOL_MANIFEST_DIRS", &dirs)
        .env("PRAXIS_AUTH", "off");
    let served = common::served::Served::start_with(cmd, &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body: Value = rt.block_on(async {
        reqwest::get(format!("{}/v1/tools", served.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let tool = body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "word_count")
        .cloned()
        .expect("word_count offered");
    assert_eq!(tool["effect"], "read");
    assert_eq!(tool["parameters"]["required"][0], "path");
    drop(served);

    std::fs::write(dir.path().join("bad.toml"), "name = \"bad\"\n").unwrap();
    let out = env
        .cmd(&["serve", "--bind", "127.0.0.1:0"])
        .env("PRAXIS_TOOL_MANIFEST_DIRS", &dirs)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bad.toml") && stderr.contains("missing field `description`"),
        "{stderr}"
    );
}
