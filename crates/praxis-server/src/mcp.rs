//! Praxis as an MCP server (`praxis mcp serve`): [`RuntimeHost`], the host that turns each
//! MCP session into a run of the runtime (`praxis_runtime::session`), and [`serve_http`],
//! the streamable-HTTP endpoint `/mcp` behind the API's tokens and tenants (a request
//! without a valid token gets the API's 401; a session's run belongs to the token's tenant).
//! The MCP protocol itself is `praxis_mcp::server`'s.

use crate::api::{self, DEFAULT_TENANT};
use crate::config::ServerConfig;
use crate::{ServerError, listen};
use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use praxis_core::Contracts;
use praxis_core::session::{CallOutcome, SessionClient};
use praxis_ledger::tokens::TokenStore;
use praxis_mcp::server::{BoxFuture, Caller, Host, HostSession, OfferedTool};
use praxis_runtime::session::Session;
use praxis_runtime::{RunObserver, RunOptions, Runtime};
use serde_json::Value;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Builds the options of a session's run (writ, approver, limits, checkpoint key) from what
/// the surface was given; the error names the setting that is wrong.
pub type PrepareRun = Arc<dyn Fn() -> Result<RunOptions, String> + Send + Sync>;

/// The runtime as an MCP host: its registry's tools, one run per session.
pub struct RuntimeHost {
    runtime: Runtime,
    prepare: PrepareRun,
    observer: Arc<dyn RunObserver>,
    /// Set over HTTP with tokens: a session's run is recorded as its tenant's.
    tokens: Option<Arc<TokenStore>>,
    open: Mutex<Vec<Arc<RunSession>>>,
}

impl RuntimeHost {
    pub fn new(runtime: Runtime, prepare: PrepareRun, observer: Arc<dyn RunObserver>) -> Self {
        RuntimeHost {
            runtime,
            prepare,
            observer,
            tokens: None,
            open: Mutex::new(Vec::new()),
        }
    }

    /// Ends every session's run still open (each completes) and waits until recorded.
    pub async fn end_all(&self) {
        let open: Vec<_> = self
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .drain(..)
            .collect();
        for session in open {
            session.end().await;
        }
    }
}

impl Host for RuntimeHost {
    fn tools(&self) -> Vec<OfferedTool> {
        self.runtime
            .registry()
            .specs()
            .into_iter()
            // A sub-agent needs a model; the client is none.
            .filter(|spec| spec.name != praxis_tools::tools::delegate::NAME)
            .map(|spec| OfferedTool {
                input_schema: match spec.parameters {
                    Value::Object(schema) => schema,
                    _ => Default::default(),
                },
                name: spec.name,
                description: spec.description,
            })
            .collect()
    }

    fn open(&self, client: SessionClient) -> Result<Arc<dyn HostSession>, String> {
        let mut options = (self.prepare)()?;
        options.spec.task = format!(
            "Tool calls of the MCP client {} {}",
            client.name, client.version
        );
        let tenant = client.tenant.clone();
        let session = Session::start(self.runtime.clone(), options, client, self.observer.clone());
        if let (Some(tokens), Some(tenant)) = (&self.tokens, tenant) {
            tokens
                .set_run_tenant(session.run_id(), &tenant)
                .map_err(|e| format!("recording the run's tenant: {e}"))?;
        }
        let session = Arc::new(RunSession(session));
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        open.push(session.clone());
        Ok(session)
    }
}

/// One MCP session's run.
struct RunSession(Session);

impl HostSession for RunSession {
    fn run_id(&self) -> &str {
        self.0.run_id()
    }

    fn call(&self, tool: String, arguments: Value) -> BoxFuture<'_, CallOutcome> {
        Box::pin(async move { self.0.call(&tool, arguments).await })
    }

    fn end(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(Err(e)) = self.0.end().await {
                eprintln!("praxis mcp: run {} failed: {e}", self.0.run_id());
            }
        })
    }
}

/// Who may call the endpoint: the API's setting and tokens.
#[derive(Clone)]
struct Gate {
    setting: crate::AuthSetting,
    tokens: Arc<TokenStore>,
}

async fn authenticate(State(gate): State<Gate>, mut req: Request, next: Next) -> Response {
    let verdict = api::auth_on(gate.setting, &gate.tokens)
        .map_err(api::ApiError::from)
        .and_then(|on| Ok((on, api::tenant_of(on, &gate.tokens, req.headers())?)));
    match verdict {
        Ok((on, tenant)) => {
            if let Some(slot) = req.extensions().get::<listen::ConnectionSlot>() {
                slot.authenticated();
            }
            let tenant = Some(tenant.0).filter(|t| on || t != DEFAULT_TENANT);
            req.extensions_mut().insert(Caller { tenant });
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// Serves the MCP endpoint at `/mcp` on `listener` until `shutdown` resolves, then ends
/// every session's run. Authentication, the tenants and the connection bounds are those of
/// `praxis serve` (`config`).
pub async fn serve_http(
    listener: TcpListener,
    mut host: RuntimeHost,
    config: &ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let tokens = Arc::new(TokenStore::open(&config.home.ledger_path())?);
    host.tokens = Some(tokens.clone());
    let host = Arc::new(host);
    let local = listener.local_addr()?;
    let mut allowed_hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .into_iter()
        .map(String::from)
        .collect();
    if !local.ip().is_unspecified() {
        allowed_hosts.push(local.ip().to_string());
    }
    let stop_sessions = CancellationToken::new();
    let service =
        praxis_mcp::server::http_service(host.clone(), allowed_hosts, stop_sessions.clone());
    let gate = Gate {
        setting: config.auth,
        tokens,
    };
    let app = Router::new()
        .nest_service("/mcp", service)
        .layer(middleware::from_fn_with_state(gate, authenticate));
    let bounds = listen::Bounds {
        header_read_timeout: config.header_read_timeout,
        max_unauthenticated: config.max_unauthenticated,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let server = listen::serve(listener, app, bounds, stop_rx);
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result?,
        () = shutdown => {
            let _ = stop_tx.send(true);
            stop_sessions.cancel();
            let _ = tokio::time::timeout(config.shutdown_grace, &mut server).await;
        }
    }
    host.end_all().await;
    Ok(())
}
