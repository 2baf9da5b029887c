//! The MCP client through the real driver, ledger and writ, against an rmcp server served
//! in-process over streamable HTTP (no node): a call's output reaches the model and the
//! ledger, a writ that does not list the tool denies it, a hung server gives an error
//! observation and is restarted, and the run replays without the server.

mod common;
mod peer;

use common::Ran;

use praxis_core::ExecStatus;
use praxis_core::record::{Record, VerdictKind};
use praxis_mcp::client::{self, McpTools};
use praxis_runtime::NoObserver;
use praxis_runtime::home::DataHome;
use praxis_runtime::replay::{ReplayReport, replay};
use praxis_tools::{Registry, ToolOrigin};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;

/// A data dir whose home praxis.toml declares the server at `url`.
fn home_with(url: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("praxis.toml"),
        format!(
            "[[mcp_servers]]\nname = \"peer\"\nurl = \"{url}\"\neffect = \"read\"\n\
             timeout_seconds = 2\n"
        ),
    )
    .unwrap();
    home
}

/// Runs the scripted `calls` under a writ listing `listed` (ceiling exec).
async fn run(
    registry: Arc<Registry>,
    listed: &[&str],
    calls: &[(&str, Value)],
    home: &Path,
    ws: &Path,
) -> Ran {
    common::run(registry, "exec", listed, calls, (home, ws), &NoObserver).await
}

async fn tool_set(home: &Path) -> (Registry, McpTools) {
    client::tool_set(&DataHome::at(home), &|_| None)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_reaches_the_model_and_the_ledger_and_replays_without_the_server() {
    let url = peer::serve_http().await;
    let (home, ws) = (home_with(&url), tempfile::tempdir().unwrap());
    let (registry, mcp) = tool_set(home.path()).await;
    assert!(mcp.failures().is_empty(), "{:?}", mcp.failures());
    assert_eq!(mcp.server_of("mcp__peer__echo"), Some("peer".to_string()));
    // The listing (`praxis tools`, `GET /v1/tools`) names the server.
    let listed = registry.catalogue();
    let echo = listed.iter().find(|t| t.name == "mcp__peer__echo").unwrap();
    assert_eq!(
        echo.origin,
        ToolOrigin::Mcp {
            server: "peer".into()
        }
    );
    let json = serde_json::to_value(echo).unwrap();
    assert_eq!(
        (&json["source"], &json["server"]),
        (&json!("mcp"), &json!("peer"))
    );
    let read = listed.iter().find(|t| t.name == "fs_read").unwrap();
    assert_eq!(read.origin, ToolOrigin::BuiltIn);
    let ran = run(
        Arc::new(registry),
        &["mcp__peer__echo"],
        &[("mcp__peer__echo", json!({"message": "hi there"}))],
        home.path(),
        ws.path(),
    )
    .await;
    let started = match &ran.records[0] {
        Record::RunStarted(s) => s,
        other => panic!("{other:?}"),
    };
    assert!(
        started.tools.iter().any(|t| t.name == "mcp__peer__echo"),
        "{:?}",
        started.tools
    );
    let proposal = ran
        .records
        .iter()
        .find_map(|r| match r {
            Record::Proposal(p) => Some(p),
            _ => None,
        })
        .unwrap();
    assert_eq!(proposal.verdict, VerdictKind::Allow, "{proposal:?}");
    let execution = ran.executions()[0];
    assert_eq!(execution.status, ExecStatus::Ok, "{}", execution.output);
    for part in [
        "echo: hi there",
        "[image: image/png, 5 bytes]",
        "{\"length\":8}",
    ] {
        assert!(execution.output.contains(part), "{}", execution.output);
        assert!(
            ran.conversation.contains(&part.replace('"', "\\\"")),
            "the model did not see {part}: {}",
            ran.conversation
        );
    }
    // Replay compiles the call from the recorded spec: the server is not asked (the
    // registry has no MCP tool at all).
    match replay(&*ran.ledger, Arc::new(Registry::builtin()), &ran.run_id).unwrap() {
        ReplayReport::Matched {
            unfinished: None, ..
        } => {}
        other => panic!("{other:?}"),
    }
    drop(mcp);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_writ_that_does_not_list_the_tool_denies_it() {
    let url = peer::serve_http().await;
    let (home, ws) = (home_with(&url), tempfile::tempdir().unwrap());
    let (registry, _mcp) = tool_set(home.path()).await;
    let ran = run(
        Arc::new(registry),
        &["fs_read"],
        &[("mcp__peer__echo", json!({"message": "no"}))],
        home.path(),
        ws.path(),
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
    assert!(proposal.rule.starts_with("writ"), "{proposal:?}");
    assert!(proposal.reason.contains("mcp__peer__echo"), "{proposal:?}");
    assert!(ran.executions().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_server_gives_an_error_observation_and_is_restarted() {
    let url = peer::serve_http().await;
    let (home, ws) = (home_with(&url), tempfile::tempdir().unwrap());
    let (registry, mcp) = tool_set(home.path()).await;
    let ran = run(
        Arc::new(registry),
        &["mcp__peer__hang", "mcp__peer__echo"],
        &[
            ("mcp__peer__hang", json!({})),
            ("mcp__peer__echo", json!({"message": "after"})),
        ],
        home.path(),
        ws.path(),
    )
    .await;
    let done = ran.executions();
    assert_eq!(done[0].status, ExecStatus::Error, "{}", done[0].output);
    assert!(
        done[0].output.contains("did not answer within 2 s")
            && done[0].output.contains("the server was restarted"),
        "{}",
        done[0].output
    );
    assert_eq!(mcp.sessions()[0].restarts(), 1);
    assert_eq!(done[1].status, ExecStatus::Ok, "{}", done[1].output);
    assert!(done[1].output.contains("echo: after"), "{}", done[1].output);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_does_not_start_is_named_with_its_stderr() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("praxis.toml"),
        "[[mcp_servers]]\nname = \"broken\"\ncommand = \"sh\"\n\
         args = [\"-c\", \"echo cannot find my config >&2; exit 3\"]\n",
    )
    .unwrap();
    let (registry, mcp) = tool_set(home.path()).await;
    assert!(!registry.names().iter().any(|n| n.starts_with("mcp__")));
    let failure = &mcp.failures()[0];
    assert_eq!(failure.server, "broken");
    assert!(
        failure.stderr_tail.contains("cannot find my config"),
        "{failure:?}"
    );
    assert!(failure.to_string().contains("`broken`"), "{failure}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stdio_server_is_never_given_the_data_dir() {
    let home = tempfile::tempdir().unwrap();
    let key = home.path().join("issuer.key");
    std::fs::write(
        home.path().join("praxis.toml"),
        format!(
            "[[mcp_servers]]\nname = \"nosy\"\ncommand = \"cat\"\nargs = [\"{}\"]\n",
            key.display()
        ),
    )
    .unwrap();
    let (_, mcp) = tool_set(home.path()).await;
    let failure = mcp.failures()[0].to_string();
    assert!(
        failure.contains("`args[0]` names the data dir"),
        "{failure}"
    );
}

#[tokio::test]
async fn a_workspace_cannot_declare_servers() {
    let home = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(
        ws.path().join("praxis.toml"),
        "[[mcp_servers]]\nname = \"evil\"\ncommand = \"sh\"\n",
    )
    .unwrap();
    let layered =
        praxis_runtime::config::load(&DataHome::at(home.path()), Some(ws.path()), &[], &|_| None)
            .unwrap();
    assert!(layered.config.mcp_servers.is_empty());
    let warning = layered
        .warnings
        .iter()
        .find(|w| w.starts_with("ignored mcp_servers in"))
        .expect("a warning");
    assert!(
        warning.contains(&ws.path().join("praxis.toml").display().to_string()),
        "{warning}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_list_change_is_offered_at_the_next_model_call_recorded_and_replayed() {
    let url = peer::serve_http().await;
    let (home, ws) = (home_with(&url), tempfile::tempdir().unwrap());
    let (registry, _mcp) = tool_set(home.path()).await;
    assert!(registry.get("mcp__peer__late").is_none());
    let ran = run(
        Arc::new(registry),
        &["mcp__peer__grow", "mcp__peer__late"],
        &[
            ("mcp__peer__grow", json!({})),
            ("mcp__peer__late", json!({})),
        ],
        home.path(),
        ws.path(),
    )
    .await;
    let change = ran
        .records
        .iter()
        .find_map(|r| match r {
            Record::ToolsChanged(c) => Some(c),
            _ => None,
        })
        .expect("a tools_changed entry");
    assert_eq!(change.source, "mcp server peer");
    assert!(
        change.tools.iter().any(|t| t.name == "mcp__peer__late"),
        "{change:?}"
    );
    let done = ran.executions();
    assert_eq!(done.len(), 2, "{:?}", ran.records);
    assert!(done[1].output.contains("late answer"), "{}", done[1].output);
    // Replay takes the change from the record: the new tool compiles without the server.
    match replay(&*ran.ledger, Arc::new(Registry::builtin()), &ran.run_id).unwrap() {
        ReplayReport::Matched {
            unfinished: None, ..
        } => {}
        other => panic!("{other:?}"),
    }
}
