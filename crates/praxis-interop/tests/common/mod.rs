//! Helpers shared by the interop tests: where the servers are, provider settings for them, a
//! delta sink that records everything, the fixtures, aimock's request journal, the hang
//! guard and the `praxis` binary.

#![allow(dead_code)] // Each test binary uses its own subset of these helpers.

use praxis_core::{Message, ModelRequest, Role, ToolSpec};
use praxis_models::{Delta, DeltaSink, ProviderSettings, RetryPolicy};
use serde_json::Value;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The base URL of an interop server from its environment variable. The tests only run when
/// asked for (`--ignored`), so a missing server is a failure, not a skip.
pub fn server_url(var: &str) -> String {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => url.trim().trim_end_matches('/').to_string(),
        _ => panic!(
            "{var} is not set: this test needs the interop servers; run .ci/interop, which \
             installs and starts them and exports {var}"
        ),
    }
}

/// Fails the test if `fut` has not finished within `limit`. A hang guard only: the servers
/// answer in milliseconds, so hitting it means a hang, never a slow machine.
pub async fn hang_guard<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(value) => value,
        Err(_) => panic!("hang guard: {what} did not finish within {limit:?}"),
    }
}

/// Settings pointing every dialect at one server (aimock serves all three on one port), with
/// short retry delays so that the retry tests stay quick.
pub fn settings_for(base: &str) -> ProviderSettings {
    ProviderSettings {
        openai_base_url: format!("{base}/v1"),
        anthropic_base_url: base.to_string(),
        ollama_host: base.to_string(),
        // aimock checks no key, but the Anthropic provider always wants one; OpenAI and
        // Ollama go keyless, as they may on loopback.
        anthropic_api_key: Some("interop-test-key".into()),
        request_timeout: Duration::from_secs(60),
        connect_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(30),
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(20),
            // Also caps aimock's `Retry-After: 1` on 429s.
            max_delay: Duration::from_millis(100),
        },
        ..ProviderSettings::default()
    }
}

/// The three wire dialects aimock speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Anthropic,
    Ollama,
}

impl Dialect {
    /// The provider spec; aimock echoes any model name.
    pub fn spec(self) -> &'static str {
        match self {
            Dialect::OpenAi => "openai:gpt-4o-mini",
            Dialect::Anthropic => "anthropic:claude-sonnet-4-5",
            Dialect::Ollama => "ollama:llama3.2",
        }
    }
    pub fn word(self) -> &'static str {
        match self {
            Dialect::OpenAi => "openai",
            Dialect::Anthropic => "anthropic",
            Dialect::Ollama => "ollama",
        }
    }
    /// The endpoint the provider posts to, as aimock's journal records it.
    pub fn path(self) -> &'static str {
        match self {
            Dialect::OpenAi => "/v1/chat/completions",
            Dialect::Anthropic => "/v1/messages",
            Dialect::Ollama => "/api/chat",
        }
    }
}

/// A sink that records every delta in order.
#[derive(Default)]
pub struct Recorder(Mutex<Vec<Delta>>);

impl Recorder {
    pub fn deltas(&self) -> Vec<Delta> {
        self.0.lock().expect("recorder lock").clone()
    }
    pub fn texts(&self) -> Vec<String> {
        self.deltas()
            .into_iter()
            .filter_map(|d| match d {
                Delta::Text(t) => Some(t),
                _ => None,
            })
            .collect()
    }
    /// The argument fragments of tool call `index`, with the name reported for each.
    pub fn tool_fragments(&self, index: usize) -> Vec<(String, String)> {
        self.deltas()
            .into_iter()
            .filter_map(|d| match d {
                Delta::ToolArguments {
                    index: i,
                    name,
                    fragment,
                } if i == index => Some((name, fragment)),
                _ => None,
            })
            .collect()
    }
    fn push(&self, delta: Delta) {
        self.0.lock().expect("recorder lock").push(delta);
    }
}

impl DeltaSink for Recorder {
    fn text(&self, delta: &str) {
        self.push(Delta::Text(delta.to_string()));
    }
    fn reasoning(&self, delta: &str) {
        self.push(Delta::Reasoning(delta.to_string()));
    }
    fn tool_arguments(&self, index: usize, name: &str, fragment: &str) {
        self.push(Delta::ToolArguments {
            index,
            name: name.to_string(),
            fragment: fragment.to_string(),
        });
    }
}

/// A first-step request: a system prompt, then `user` (which selects the aimock fixture).
pub fn request(user: &str, tools: Vec<ToolSpec>) -> ModelRequest {
    ModelRequest {
        step: 1,
        messages: Arc::new(vec![
            Message::new(Role::System, "You are a careful assistant."),
            Message::new(Role::User, user),
        ]),
        tools: Arc::new(tools),
    }
}

/// The `read_file` tool as the tool-call fixtures expect it.
pub fn read_file_tool() -> ToolSpec {
    ToolSpec {
        name: "read_file".into(),
        description: "Read lines of a file of the workspace.".into(),
        effect: praxis_core::Effect::Read,
        parameters: serde_json::json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "File path relative to the workspace"},
                "start_line": {"type": "integer"},
                "end_line": {"type": "integer"}
            },
            "required": ["path"]
        }),
    }
}

pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `response` of the first aimock fixture whose `match.userMessage` is `marker` (and
/// whose `sequenceIndex`, if any, is 0), so the tests compare against the same file the
/// server serves.
pub fn fixture_response(marker: &str) -> Value {
    fixture_response_at(marker, 0)
}

/// Like [`fixture_response`], for the fixture with `sequenceIndex` `seq` (0: also one without).
pub fn fixture_response_at(marker: &str, seq: u64) -> Value {
    let dir = crate_dir().join("fixtures/aimock");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let doc: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", file.display()));
        for fixture in doc["fixtures"].as_array().into_iter().flatten() {
            let m = &fixture["match"];
            if m["userMessage"] == marker && m["sequenceIndex"].as_u64().unwrap_or(0) == seq {
                return fixture["response"].clone();
            }
        }
    }
    panic!(
        "no fixture with userMessage {marker:?} in {}",
        dir.display()
    )
}

/// aimock's request journal (`GET /__aimock/journal`): every request it received, with the
/// path, the body and what it answered (status, chaos action, interruption).
pub async fn journal(base: &str) -> Vec<Value> {
    let body = http_get(base, "/__aimock/journal").await;
    match serde_json::from_str::<Value>(&body) {
        Ok(Value::Array(entries)) => entries,
        _ => panic!("aimock at {base}: the journal is not a JSON array: {body:.300}"),
    }
}

/// Journal entries for `path` whose request body mentions `marker`.
pub async fn requests_for(base: &str, path: &str, marker: &str) -> Vec<Value> {
    journal(base)
        .await
        .into_iter()
        .filter(|e| e["path"] == path && e["body"].to_string().contains(marker))
        .collect()
}

/// A plain HTTP/1.0 GET (so the body is neither chunked nor kept alive), returning the body
/// of a 200 answer.
async fn http_get(base: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = base
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("expected an http:// URL, got {base}"));
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {base}: {e}"));
    let head =
        format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nAccept: application/json\r\n\r\n");
    stream
        .write_all(head.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("cannot send GET {path} to {base}: {e}"));
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .await
        .unwrap_or_else(|e| panic!("cannot read GET {path} from {base}: {e}"));
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {base}{path}: no HTTP header end in {raw:.300}"));
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "GET {base}{path} answered {head:.200}"
    );
    body.to_string()
}

/// The `praxis` binary: `PRAXIS_BIN`, else `target/debug/praxis` of this workspace.
pub fn praxis_bin() -> PathBuf {
    let path = match std::env::var_os("PRAXIS_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => crate_dir().join("../../target/debug/praxis"),
    };
    assert!(
        path.is_file(),
        "the praxis binary is not at {}: build it with `cargo build -p praxis-cli` or set \
         PRAXIS_BIN (.ci/interop does both)",
        path.display()
    );
    path
}

/// What a `praxis` invocation printed.
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `praxis ARGS` with its data in `home` and only the provider variables in `env` (the
/// others are removed, so a developer's own keys or hosts never leak into the test). The
/// child is killed if the hang guard drops the future.
pub async fn praxis(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(praxis_bin());
    cmd.args(args)
        .env("PRAXIS_HOME", home)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    for var in [
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "OLLAMA_HOST",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", praxis_bin().display()));
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A finished `praxis run --json` whose ledger verified: its summary and its entries.
pub struct RunRecord {
    pub summary: Value,
    pub entries: Vec<Value>,
}

impl RunRecord {
    pub fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.entries.iter().filter(|e| e["kind"] == kind).collect()
    }
}

/// Runs `praxis run ARGS --json` in `home`, then exports the run's ledger and checks that
/// `praxis ledger verify RUN` passes.
pub async fn praxis_run(home: &Path, args: &[&str], env: &[(&str, &str)]) -> RunRecord {
    let mut full = vec!["run"];
    full.extend_from_slice(args);
    full.push("--json");
    let run = praxis(home, &full, env).await;
    let summary: Value = run
        .stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| {
            panic!(
                "praxis {full:?} printed no JSON summary (exit {:?})\nstdout: {}\nstderr: {}",
                run.code, run.stdout, run.stderr
            )
        });
    let run_id = summary["run_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no run_id in the summary {summary}\nstderr: {}", run.stderr))
        .to_string();

    let export = praxis(home, &["ledger", "export", &run_id], &[]).await;
    assert_eq!(
        export.code,
        Some(0),
        "praxis ledger export {run_id} failed: {}",
        export.stderr
    );
    let entries: Vec<Value> = export
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("ledger export line is not JSON ({e}): {l}"))
        })
        .collect();

    let verify = praxis(home, &["ledger", "verify", &run_id], &[]).await;
    assert_eq!(
        verify.code,
        Some(0),
        "praxis ledger verify {run_id} failed:\n{}{}",
        verify.stdout,
        verify.stderr
    );
    assert!(
        verify.stdout.contains("intact"),
        "praxis ledger verify {run_id} did not report an intact chain: {}",
        verify.stdout
    );
    RunRecord { summary, entries }
}
