//! `praxis mcp serve` in process, driven by an rmcp client: over a byte pipe (what stdio
//! carries) and over streamable HTTP behind the API's tokens. Each session must be one run
//! that names the client, whose calls are judged under the writ and executed by the real
//! tools, and whose record verifies and replays.

use praxis_core::record::{Record, kinds};
use praxis_core::{RunSpec, RunStatus};
use praxis_ledger::approvals::ApprovalStore;
use praxis_ledger::tokens::TokenStore;
use praxis_ledger::{Ledger, SqliteLedger, VerifyReport, verify_entries};
use praxis_runtime::approval::{Approver, StoreApprover};
use praxis_runtime::replay::{ReplayReport, replay};
use praxis_runtime::{DataHome, NoObserver, RunOptions, Runtime, WritGrant};
use praxis_server::mcp::{PrepareRun, RuntimeHost};
use praxis_server::{AuthSetting, ServerConfig};
use praxis_tools::Registry;
use praxis_writ::{IssuerKey, WritSpec};
use rmcp::ServiceExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
};
use rmcp::service::{RoleClient, RunningService};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::SystemTime;
use tempfile::TempDir;

const NOTE: &str = "hello from the governed workspace\n";

struct Setup {
    home: TempDir,
    ws: TempDir,
    ledger: Arc<SqliteLedger>,
    registry: Arc<Registry>,
}

impl Setup {
    fn new() -> Setup {
        let home = tempfile::tempdir().unwrap();
        let ws = tempfile::tempdir().unwrap();
        std::fs::write(ws.path().join("notes.txt"), NOTE).unwrap();
        let ledger = Arc::new(SqliteLedger::open(&home.path().join("ledger.db")).unwrap());
        Setup {
            home,
            ws,
            ledger,
            registry: Arc::new(Registry::builtin()),
        }
    }

    /// A host whose sessions act under the development writ without `shell`.
    fn host(&self) -> RuntimeHost {
        self.host_with(|_| {}, None)
    }

    /// The same, the writ changed by `edit`, proposals that need approval answered by
    /// `approver` (default: never).
    fn host_with(
        &self,
        edit: impl FnOnce(&mut WritSpec),
        approver: Option<Arc<dyn Approver>>,
    ) -> RuntimeHost {
        let key = IssuerKey::generate();
        let mut spec = WritSpec::development("mcp-test");
        spec.tools.retain(|grant| grant.name != "shell");
        edit(&mut spec);
        let grant = WritGrant {
            token: praxis_writ::issue(&spec, &key, SystemTime::now()).unwrap(),
            anchor: key.anchor(),
        };
        let workspace = self.ws.path().display().to_string();
        let prepare: PrepareRun = Arc::new(move || {
            let spec = RunSpec {
                task: "MCP session".into(),
                workspace: workspace.clone(),
                provider: String::new(),
                model: String::new(),
                tools: None,
                read_only: false,
                limits: Default::default(),
                protocol: Default::default(),
                compaction: None,
                conversation: Default::default(),
            };
            let mut options = RunOptions::new(spec, Arc::new(praxis_models::MockProvider::new()));
            options.writ = Some(grant.clone());
            if let Some(approver) = &approver {
                options.approver = approver.clone();
            }
            Ok(options)
        });
        let runtime = Runtime::new(self.ledger.clone(), self.registry.clone())
            .with_home(DataHome::at(self.home.path()));
        RuntimeHost::new(runtime, prepare, Arc::new(NoObserver))
    }

    /// The one run in the ledger, checked: it verifies, replays, names `client`,
    /// completed, and holds `proposals` proposals of which `executions` executed.
    fn the_run(&self, client: &str, proposals: usize, executions: usize) -> String {
        let runs = self.ledger.runs().unwrap();
        assert_eq!(runs.len(), 1, "one session, one run");
        let run_id = runs[0].run_id.clone();
        let entries = self.ledger.entries(&run_id, 0).unwrap();
        assert!(matches!(
            verify_entries(&entries),
            VerifyReport::Intact { .. }
        ));
        match replay(&*self.ledger, self.registry.clone(), &run_id).unwrap() {
            ReplayReport::Matched { unfinished, .. } => assert_eq!(unfinished, None),
            other => panic!("replay of the session's run: {other:?}"),
        }
        let records: Vec<Record> = entries
            .iter()
            .map(|e| Record::from_entry(&e.kind, &e.payload).unwrap())
            .collect();
        let Record::RunStarted(started) = &records[0] else {
            panic!("first entry: {}", entries[0].kind)
        };
        let named = started.client().expect("run_started names the client");
        assert_eq!(
            (
                named.protocol.as_str(),
                named.name.as_str(),
                named.version.as_str()
            ),
            ("mcp", client, "1.2.3")
        );
        let finished = records.iter().find_map(|r| match r {
            Record::RunFinished(f) => Some(f),
            _ => None,
        });
        assert_eq!(finished.map(|f| f.status), Some(RunStatus::Completed));
        let kinds_seen: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
        let count = |kind: &str| kinds_seen.iter().filter(|k| **k == kind).count();
        assert_eq!(count(kinds::PROPOSAL), proposals);
        assert_eq!(count(kinds::EXECUTION), executions);
        run_id
    }
}

fn client_config(name: &str) -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new(name, "1.2.3"),
    )
}

fn call(tool: &str, arguments: Value) -> CallToolRequestParams {
    let Value::Object(arguments) = arguments else {
        panic!("arguments must be an object")
    };
    CallToolRequestParams::new(tool.to_string()).with_arguments(arguments)
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

/// Lists the tools, reads a file, and makes a call the writ denies.
async fn exercise(client: &RunningService<RoleClient, ClientConfig>) {
    let tools = client.list_all_tools().await.unwrap();
    let fs_read = tools
        .iter()
        .find(|t| t.name == "fs_read")
        .expect("fs_read is offered");
    assert!(
        fs_read.input_schema["properties"].get("path").is_some(),
        "fs_read's input schema: {:?}",
        fs_read.input_schema
    );
    assert!(tools.iter().all(|t| t.name != "delegate"));

    let read = client
        .call_tool(call("fs_read", json!({"path": "notes.txt"})))
        .await
        .unwrap();
    assert_ne!(read.is_error, Some(true), "{}", text(&read));
    assert!(text(&read).contains(NOTE.trim()), "{}", text(&read));

    let denied = client
        .call_tool(call("shell", json!({"command": "echo should-not-run"})))
        .await
        .unwrap();
    assert_eq!(denied.is_error, Some(true));
    let message = text(&denied);
    assert!(message.contains("rule writ"), "{message}");
    assert!(message.contains("shell"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_over_a_pipe_is_one_governed_run() {
    let setup = Setup::new();
    let host: Arc<dyn praxis_mcp::server::Host> = Arc::new(setup.host());
    let (client_side, server_side) = tokio::io::duplex(1 << 16);
    let server = tokio::spawn(praxis_mcp::server::serve(host, server_side));
    let client = client_config("pipe-client")
        .serve(client_side)
        .await
        .unwrap();
    exercise(&client).await;
    client.cancel().await.unwrap();
    // The server returns once the session's run is recorded as ended.
    server.await.unwrap().unwrap();
    // Both calls were proposals; only the allowed one executed.
    setup.the_run("pipe-client", 2, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_over_http_needs_a_token_and_is_the_tenants_run() {
    let setup = Setup::new();
    let tokens = TokenStore::open(&setup.home.path().join("ledger.db")).unwrap();
    let token = tokens.create("acme").unwrap();
    let mut config = ServerConfig::new(DataHome::at(setup.home.path()));
    config.auth = AuthSetting::On;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let host = setup.host();
    let server = tokio::spawn(async move {
        praxis_server::mcp::serve_http(listener, host, &config, async {
            let _ = stopped.await;
        })
        .await
    });

    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "anonymous", "version": "0"}}});
    let http = reqwest::Client::new();
    for auth in [None, Some("Bearer not-a-token")] {
        let mut request = http
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(
            answer.status(),
            reqwest::StatusCode::UNAUTHORIZED,
            "{auth:?}"
        );
    }

    let transport = rmcp::transport::StreamableHttpClientTransport::from_config(
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
            url.clone(),
        )
        .auth_header(token),
    );
    let client = client_config("http-client").serve(transport).await.unwrap();
    exercise(&client).await;
    client.cancel().await.unwrap();
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    let run_id = setup.the_run("http-client", 2, 1);
    assert_eq!(tokens.run_tenant(&run_id).unwrap().as_deref(), Some("acme"));
}

/// Answers the one approval request the session's run files, once it is filed.
async fn decide(store: &ApprovalStore, approved: bool) {
    let pending = loop {
        let pending = store.pending().unwrap();
        if !pending.is_empty() {
            break pending;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].tool, "list_files");
    store
        .decide(&pending[0].run_id, None, approved, "tester", "checked")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_needs_approval_waits_for_the_decision() {
    let setup = Setup::new();
    let store = Arc::new(ApprovalStore::open(&setup.home.path().join("ledger.db")).unwrap());
    let host = setup.host_with(
        |spec| spec.approvals.tools = vec!["list_files".into()],
        Some(Arc::new(StoreApprover::new(store.clone()))),
    );
    let host: Arc<dyn praxis_mcp::server::Host> = Arc::new(host);
    let (client_side, server_side) = tokio::io::duplex(1 << 16);
    let server = tokio::spawn(praxis_mcp::server::serve(host, server_side));
    let client = client_config("approval-client")
        .serve(client_side)
        .await
        .unwrap();

    let (approved, ()) = tokio::join!(
        client.call_tool(call("list_files", json!({"path": "."}))),
        decide(&store, true)
    );
    let approved = approved.unwrap();
    assert_ne!(approved.is_error, Some(true), "{}", text(&approved));
    assert!(text(&approved).contains("notes.txt"), "{}", text(&approved));

    let (denied, ()) = tokio::join!(
        client.call_tool(call("list_files", json!({"path": "."}))),
        decide(&store, false)
    );
    let denied = denied.unwrap();
    assert_eq!(denied.is_error, Some(true));
    assert!(text(&denied).contains("rule approval"), "{}", text(&denied));
    assert!(text(&denied).contains("tester"), "{}", text(&denied));

    // A tool nobody registered is refused by its (missing) contract, not executed.
    let unknown = client
        .call_tool(call("no_such_tool", json!({"x": "; rm -rf ~"})))
        .await
        .unwrap();
    assert_eq!(unknown.is_error, Some(true));
    assert!(
        text(&unknown).contains("no_such_tool"),
        "{}",
        text(&unknown)
    );

    client.cancel().await.unwrap();
    server.await.unwrap().unwrap();
    setup.the_run("approval-client", 3, 1);
}
