//! `praxis mcp serve`: Praxis's governed tools offered to any MCP client.
//!
//! This module speaks MCP and nothing else. What a call means is the [`Host`]'s business:
//! it lists the tools (their names, descriptions and input schemas) and opens one
//! [`HostSession`] per MCP session, a run whose every call is judged, executed and ledgered
//! (`praxis_runtime::session`). The session opens at the client's first `tools/call`, named
//! after the `clientInfo` of its `initialize`, and ends when the MCP session does.
//!
//! A call becomes an MCP tool result: the tool's output; `isError: true` with the rule and
//! reason when it was refused, with the output when the tool failed, and with why when the
//! run is over.

mod http;

pub use http::{Caller, http_service};

use praxis_core::session::{CallOutcome, SessionClient};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    InitializeResult, JsonObject, ListToolsResult, PaginatedRequestParams, ProtocolVersion,
    ServerCapabilities, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::Value;
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The protocol this server speaks to clients: MCP (`SessionClient::protocol`).
pub const PROTOCOL: &str = "mcp";

/// The newest protocol version served: the last one with an `initialize` handshake and
/// sessions (a session is a run, and its run names the client from `initialize`).
pub const NEWEST_VERSION: ProtocolVersion = ProtocolVersion::V_2025_11_25;

/// A tool as offered to clients.
#[derive(Clone, Debug)]
pub struct OfferedTool {
    pub name: String,
    pub description: String,
    /// The JSON Schema of its arguments (an object schema).
    pub input_schema: JsonObject,
}

/// What serves the calls: the tools, and one governed session per MCP session.
pub trait Host: Send + Sync + 'static {
    fn tools(&self) -> Vec<OfferedTool>;
    /// Opens the session (starts its run) for `client`; the error says why it cannot start.
    fn open(&self, client: SessionClient) -> Result<Arc<dyn HostSession>, String>;
}

/// One MCP session's run.
pub trait HostSession: Send + Sync {
    fn run_id(&self) -> &str;
    /// Proposes `tool` with `arguments` and waits for what became of it.
    fn call(&self, tool: String, arguments: Value) -> BoxFuture<'_, CallOutcome>;
    /// Ends the run (it completes); a second call does nothing.
    fn end(&self) -> BoxFuture<'_, ()>;
}

/// The MCP handler of one session (cloned per request by nothing: one per session).
#[derive(Clone)]
pub struct GovernedTools {
    host: Arc<dyn Host>,
    session: Arc<Slot>,
}

/// The session's run once its first call opened it; ended when the handler goes away.
#[derive(Default)]
struct Slot(tokio::sync::OnceCell<Result<Arc<dyn HostSession>, String>>);

impl Slot {
    fn opened(&self) -> Option<Arc<dyn HostSession>> {
        self.0.get().and_then(|s| s.as_ref().ok()).cloned()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(session) = self.opened()
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            handle.spawn(async move { session.end().await });
        }
    }
}

impl GovernedTools {
    pub fn new(host: Arc<dyn Host>) -> Self {
        GovernedTools {
            host,
            session: Arc::default(),
        }
    }

    /// Ends this session's run (if a call opened one) and waits until it is recorded.
    pub async fn end(&self) {
        if let Some(session) = self.session.opened() {
            session.end().await;
        }
    }

    async fn session(
        &self,
        context: &RequestContext<RoleServer>,
    ) -> Result<Arc<dyn HostSession>, String> {
        let opened = self
            .session
            .0
            .get_or_init(|| async {
                let client = client_of(context);
                self.host.open(client)
            })
            .await;
        opened.clone()
    }
}

/// Who is calling: the `clientInfo` of the session's `initialize`, and the tenant of the
/// API token over HTTP.
fn client_of(context: &RequestContext<RoleServer>) -> SessionClient {
    let info = context.peer.peer_info();
    let (name, version) = match &info {
        Some(params) => (
            params.client_info.name.clone(),
            params.client_info.version.clone(),
        ),
        None => ("unnamed client".to_string(), String::new()),
    };
    SessionClient {
        protocol: PROTOCOL.to_string(),
        name,
        version,
        tenant: http::caller(context).and_then(|c| c.tenant),
    }
}

/// The MCP tool result of a call's outcome.
pub fn tool_result(outcome: CallOutcome) -> CallToolResult {
    match outcome {
        CallOutcome::Ran {
            output,
            failed: false,
        } => CallToolResult::success(vec![ContentBlock::text(output)]),
        CallOutcome::Ran {
            output,
            failed: true,
        } => CallToolResult::error(vec![ContentBlock::text(output)]),
        CallOutcome::Refused { rule, reason } => CallToolResult::error(vec![ContentBlock::text(
            format!("praxis refused the call (rule {rule}): {reason}"),
        )]),
        CallOutcome::RunEnded { why } => CallToolResult::error(vec![ContentBlock::text(format!(
            "praxis did not make the call: {why}"
        ))]),
    }
}

impl ServerHandler for GovernedTools {
    fn get_info(&self) -> InitializeResult {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
            .with_protocol_version(NEWEST_VERSION)
            .with_server_info(Implementation::new("praxis", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Praxis's governed tools. Every call is judged under a writ, run in a \
                 sandbox and recorded in a hash-chained ledger; a refused call comes back as \
                 a tool error naming the rule and the reason.",
            )
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(ProtocolVersion::known_up_to(&NEWEST_VERSION))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools = self
            .host
            .tools()
            .into_iter()
            .map(|t| Tool::new(t.name, t.description, Arc::new(t.input_schema)))
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let session = self
            .session(&context)
            .await
            .map_err(|why| ErrorData::internal_error(why, None))?;
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let outcome = session.call(request.name.into_owned(), arguments).await;
        Ok(tool_result(outcome).into())
    }
}

/// Serves one MCP session over stdin/stdout until the client closes it, then ends its run.
pub async fn serve_stdio(host: Arc<dyn Host>) -> Result<(), ServeError> {
    serve(host, rmcp::transport::stdio()).await
}

/// Serves one MCP session over `transport` until it closes, then ends its run.
pub async fn serve<T, E, A>(host: Arc<dyn Host>, transport: T) -> Result<(), ServeError>
where
    T: rmcp::transport::IntoTransport<RoleServer, E, A> + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let tools = GovernedTools::new(host);
    let running = tools
        .clone()
        .serve(transport)
        .await
        .map_err(|e| ServeError::Start(e.to_string()))?;
    let ended = running.waiting().await;
    tools.end().await;
    ended
        .map(drop)
        .map_err(|e| ServeError::Stopped(e.to_string()))
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the MCP session did not start: {0}")]
    Start(String),
    #[error("the MCP session stopped abnormally: {0}")]
    Stopped(String),
}
