//! The MCP server over streamable HTTP: an rmcp tower service, one [`GovernedTools`] per
//! MCP session. Authentication is the embedding server's: it checks the request's API token
//! before the service sees it and hands the token's tenant in as a [`Caller`].

use super::{GovernedTools, Host};
use rmcp::RoleServer;
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Who sent an HTTP request, as the embedding server authenticated it: put into the
/// request's extensions before the MCP service runs.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    /// The API token's tenant (None when authentication is off).
    pub tenant: Option<String>,
}

/// The [`Caller`] of the HTTP request behind `context` (None over stdio).
pub(super) fn caller(context: &RequestContext<RoleServer>) -> Option<Caller> {
    context
        .extensions
        .get::<http::request::Parts>()?
        .extensions
        .get::<Caller>()
        .cloned()
}

/// The MCP endpoint as a tower service (mount it at `/mcp`). `allowed_hosts` are the
/// `Host` header values it answers (DNS-rebinding guard); `stop` ends every session.
pub fn http_service(
    host: Arc<dyn Host>,
    allowed_hosts: Vec<String>,
    stop: CancellationToken,
) -> StreamableHttpService<GovernedTools, LocalSessionManager> {
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed_hosts)
        .with_legacy_session_mode(true)
        .with_cancellation_token(stop);
    StreamableHttpService::new(
        move || Ok(GovernedTools::new(host.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}
