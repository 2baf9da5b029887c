//! A tiny MCP server written with rmcp, served in-process over streamable HTTP on a free
//! port: `echo` (text, an image and structured content), `hang` (never answers) and `grow`
//! (adds the tool `late` and tells the client its tool list changed).

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ImageContent,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone, Default)]
pub struct Peer {
    grown: Arc<AtomicBool>,
}

fn schema(value: Value) -> Arc<serde_json::Map<String, Value>> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => unreachable!("schemas are objects"),
    }
}

impl ServerHandler for Peer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut tools = vec![
            Tool::new(
                "echo",
                "Echo a message",
                schema(json!({"type": "object", "required": ["message"],
                    "properties": {"message": {"type": "string"}}})),
            ),
            Tool::new("hang", "Never answer", schema(json!({"type": "object"}))),
            Tool::new("grow", "Add a tool", schema(json!({"type": "object"}))),
        ];
        if self.grown.load(Ordering::SeqCst) {
            tools.push(Tool::new(
                "late",
                "Added later",
                schema(json!({"type": "object"})),
            ));
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        match request.name.as_ref() {
            "echo" => {
                let message = args.get("message").and_then(Value::as_str).unwrap_or("");
                let mut result = CallToolResult::success(vec![
                    ContentBlock::text(format!("echo: {message}")),
                    ContentBlock::Image(ImageContent::new("aGVsbG8=", "image/png")),
                ]);
                result.structured_content = Some(json!({"length": message.len()}));
                Ok(result.into())
            }
            "hang" => std::future::pending().await,
            "grow" => {
                self.grown.store(true, Ordering::SeqCst);
                let _ = context.peer.notify_tool_list_changed().await;
                // Over streamable HTTP the notification travels on the session's own stream
                // and the reply on the call's: nothing orders them. The test asserts that a
                // change seen before the next model call is offered there, so give the
                // notification a head start (a wait, not a timing assertion).
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                Ok(CallToolResult::success(vec![ContentBlock::text("grown")]).into())
            }
            "late" => Ok(CallToolResult::success(vec![ContentBlock::text("late answer")]).into()),
            other => Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                "no tool {other}"
            ))])
            .into()),
        }
    }
}

/// Serves a fresh [`Peer`] per session on 127.0.0.1 (a free port); returns the endpoint.
pub async fn serve_http() -> String {
    let service = StreamableHttpService::new(
        || Ok(Peer::default()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}/mcp")
}
