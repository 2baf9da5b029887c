//! The MCP client against servers written by others, from the npm registry:
//! `@modelcontextprotocol/server-everything` over stdio and streamable HTTP, and
//! `@modelcontextprotocol/server-filesystem` over stdio, each driven through a real run
//! (scripted provider, SQLite ledger, writ).
//!
//! `PRAXIS_MCP_NODE_MODULES` names the `node_modules` they are installed in (`.ci/mcp-client`
//! installs them and runs these ignored tests). Without it they say why and pass, except
//! under `CI=true`, where they fail.

mod common;

use common::Ran;
use praxis_core::ExecStatus;
use praxis_core::record::{Record, VerdictKind};
use praxis_mcp::client::{self, McpTools};
use praxis_runtime::home::DataHome;
use praxis_runtime::{LiveEvent, NoObserver, RunObserver};
use praxis_tools::Registry;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn node_modules() -> Option<PathBuf> {
    match std::env::var_os("PRAXIS_MCP_NODE_MODULES") {
        Some(dir) => Some(PathBuf::from(dir)),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("PRAXIS_MCP_NODE_MODULES is not set under CI=true: run .ci/mcp-client")
        }
        None => {
            eprintln!("skipped: PRAXIS_MCP_NODE_MODULES is not set (run .ci/mcp-client)");
            None
        }
    }
}

fn bin(modules: &Path, name: &str) -> String {
    modules.join(".bin").join(name).display().to_string()
}

fn home_with(config: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("praxis.toml"), config).unwrap();
    home
}

async fn tool_set(home: &Path) -> (Registry, McpTools) {
    let (registry, mcp) = client::tool_set(&DataHome::at(home), &|_| None)
        .await
        .unwrap();
    assert!(mcp.failures().is_empty(), "{:?}", mcp.failures());
    (registry, mcp)
}

async fn run(
    registry: Registry,
    listed: &[&str],
    calls: &[(&str, Value)],
    dirs: (&Path, &Path),
    observer: &dyn RunObserver,
) -> Ran {
    common::run(Arc::new(registry), "network", listed, calls, dirs, observer).await
}

fn stdio_everything(modules: &Path) -> String {
    format!(
        "[[mcp_servers]]\nname = \"everything\"\ncommand = \"node\"\nargs = [\"{}\"]\n\
         timeout_seconds = 30\n",
        bin(modules, "mcp-server-everything")
    )
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the npm MCP servers: .ci/mcp-client runs it"]
async fn everything_over_stdio_reaches_the_model_and_the_ledger() {
    let Some(modules) = node_modules() else {
        return;
    };
    let (home, ws) = (
        home_with(&stdio_everything(&modules)),
        tempfile::tempdir().unwrap(),
    );
    let (registry, _mcp) = tool_set(home.path()).await;
    let ran = run(
        registry,
        &["mcp__everything__echo", "mcp__everything__get-tiny-image"],
        &[
            (
                "mcp__everything__echo",
                json!({"message": "praxis-was-here"}),
            ),
            ("mcp__everything__get-tiny-image", json!({})),
        ],
        (home.path(), ws.path()),
        &NoObserver,
    )
    .await;
    let done = ran.executions();
    assert_eq!(done[0].status, ExecStatus::Ok, "{}", done[0].output);
    assert!(
        done[0].output.contains("praxis-was-here"),
        "{}",
        done[0].output
    );
    assert!(ran.conversation.contains("praxis-was-here"));
    assert!(
        done[1].output.contains("[image: image/png, "),
        "{}",
        done[1].output
    );
    assert!(ran.conversation.contains("[image: image/png, "));
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the npm MCP servers: .ci/mcp-client runs it"]
async fn a_writ_that_does_not_list_a_server_tool_denies_it() {
    let Some(modules) = node_modules() else {
        return;
    };
    let (home, ws) = (
        home_with(&stdio_everything(&modules)),
        tempfile::tempdir().unwrap(),
    );
    let (registry, _mcp) = tool_set(home.path()).await;
    let ran = run(
        registry,
        &["mcp__everything__echo"],
        &[("mcp__everything__get-sum", json!({"a": 1, "b": 2}))],
        (home.path(), ws.path()),
        &NoObserver,
    )
    .await;
    let proposal = ran
        .records
        .iter()
        .find_map(|r| match r {
            Record::Proposal(p) => Some(p),
            _ => None,
        })
        .unwrap();
    assert_eq!(proposal.verdict, VerdictKind::Deny, "{proposal:?}");
    assert!(
        proposal.reason.contains("mcp__everything__get-sum"),
        "{proposal:?}"
    );
    assert!(ran.executions().is_empty());
}

/// Kills the server's process when the call it names starts.
struct KillOnStart {
    mcp: Arc<McpTools>,
    tool: &'static str,
}

impl RunObserver for KillOnStart {
    fn on_event(&self, _: &str, event: LiveEvent<'_>) {
        if let LiveEvent::ToolStarted { tool, .. } = event
            && tool == self.tool
        {
            let pid = self.mcp.sessions()[0]
                .pid()
                .expect("a stdio server has a pid");
            // SAFETY: kill(2) with a pid we started; no memory is involved.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the npm MCP servers: .ci/mcp-client runs it"]
async fn killing_the_server_mid_run_is_an_error_observation_and_a_restart() {
    let Some(modules) = node_modules() else {
        return;
    };
    let (home, ws) = (
        home_with(&stdio_everything(&modules)),
        tempfile::tempdir().unwrap(),
    );
    let (registry, mcp) = tool_set(home.path()).await;
    let mcp = Arc::new(mcp);
    let killer = KillOnStart {
        mcp: mcp.clone(),
        tool: "mcp__everything__trigger-long-running-operation",
    };
    let ran = run(
        registry,
        &[
            "mcp__everything__trigger-long-running-operation",
            "mcp__everything__echo",
        ],
        &[
            (
                "mcp__everything__trigger-long-running-operation",
                json!({"duration": 10, "steps": 2}),
            ),
            ("mcp__everything__echo", json!({"message": "back again"})),
        ],
        (home.path(), ws.path()),
        &killer,
    )
    .await;
    let done = ran.executions();
    assert_eq!(done[0].status, ExecStatus::Error, "{}", done[0].output);
    assert!(
        done[0].output.contains("the server was restarted"),
        "{}",
        done[0].output
    );
    assert_eq!(mcp.sessions()[0].restarts(), 1);
    assert_eq!(done[1].status, ExecStatus::Ok, "{}", done[1].output);
    assert!(done[1].output.contains("back again"), "{}", done[1].output);
}

/// A free port on 127.0.0.1 (bound, then released for the server to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the npm MCP servers: .ci/mcp-client runs it"]
async fn everything_over_streamable_http() {
    let Some(modules) = node_modules() else {
        return;
    };
    let port = free_port();
    let mut server = tokio::process::Command::new("node")
        .arg(bin(&modules, "mcp-server-everything"))
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Ready when it accepts connections.
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(server.try_wait().unwrap().is_none(), "the server exited");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let home = home_with(&format!(
        "[[mcp_servers]]\nname = \"web\"\nurl = \"http://127.0.0.1:{port}/mcp\"\n\
         effect = \"network\"\ntimeout_seconds = 30\n"
    ));
    let ws = tempfile::tempdir().unwrap();
    let (registry, _mcp) = tool_set(home.path()).await;
    let ran = run(
        registry,
        &["mcp__web__get-sum", "mcp__web__echo"],
        &[
            ("mcp__web__get-sum", json!({"a": 20, "b": 22})),
            ("mcp__web__echo", json!({"message": "over http"})),
            ("mcp__web__get-tiny-image", json!({})),
        ],
        (home.path(), ws.path()),
        &NoObserver,
    )
    .await;
    let done = ran.executions();
    assert!(done[0].output.contains("42"), "{}", done[0].output);
    assert!(ran.conversation.contains("over http"));
    // Not listed in the writ: denied and recorded.
    assert_eq!(done.len(), 2);
    let denied = ran.records.iter().any(|r| {
        matches!(r, Record::Proposal(p) if p.tool == "mcp__web__get-tiny-image"
            && p.verdict == VerdictKind::Deny)
    });
    assert!(denied);
    server.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the npm MCP servers: .ci/mcp-client runs it"]
async fn filesystem_over_stdio_reads_a_file() {
    let Some(modules) = node_modules() else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join("note.txt"), "the note says hello\n").unwrap();
    let home = home_with(&format!(
        "[[mcp_servers]]\nname = \"files\"\ncommand = \"node\"\nargs = [\"{}\", \"{}\"]\n\
         effect = \"read\"\n",
        bin(&modules, "mcp-server-filesystem"),
        shared.path().display()
    ));
    let ws = tempfile::tempdir().unwrap();
    let (registry, _mcp) = tool_set(home.path()).await;
    let path = shared.path().join("note.txt").display().to_string();
    let ran = run(
        registry,
        &["mcp__files__read_text_file"],
        &[("mcp__files__read_text_file", json!({ "path": path }))],
        (home.path(), ws.path()),
        &NoObserver,
    )
    .await;
    let done = ran.executions();
    assert_eq!(done[0].status, ExecStatus::Ok, "{}", done[0].output);
    assert!(
        done[0].output.contains("the note says hello"),
        "{}",
        done[0].output
    );
    assert!(ran.conversation.contains("the note says hello"));
}
