//! One configured MCP server: its connection (started on demand, restarted after a crash or
//! a hang), its tool list, and the tail of its stderr for `praxis doctor` and run start.
//!
//! A stdio server is a process the user declared in the home `praxis.toml`. It starts with
//! the clean environment plus its declared `env`, in a working directory outside the data
//! dir, and is refused when its command, arguments or environment name the data dir (it
//! must never be handed the ledger or the keys).

use praxis_runtime::mcp_config::{McpServer, McpTransport};
use rmcp::model::{CallToolRequestParams, CallToolResult, Tool};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncReadExt;

/// How much of a server's stderr is kept (its last bytes).
const STDERR_TAIL: usize = 2048;

/// Why a server could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("MCP server `{server}`: {problem}{}", tail_suffix(stderr_tail))]
pub struct ServerError {
    pub server: String,
    pub problem: String,
    /// The end of what the server wrote to stderr (stdio servers).
    pub stderr_tail: String,
}

fn tail_suffix(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!("; its stderr ends with:\n{}", tail.trim_end())
    }
}

/// Tells the session a server's tool list changed (and bumps the shared generation).
struct Handler {
    list_changed: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
}

impl ClientHandler for Handler {
    async fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) {
        self.list_changed.store(true, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

type Service = RunningService<RoleClient, Handler>;

/// A configured server and its live connection.
pub struct Session {
    config: McpServer,
    data_dir: PathBuf,
    service: tokio::sync::Mutex<Option<Service>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    list_changed: Arc<AtomicBool>,
    /// Shared by every session of a tool set: bumped on any list change.
    generation: Arc<AtomicU64>,
    restarts: AtomicU64,
    /// The process id of a stdio server's current process (0: none).
    pid: AtomicU32,
}

impl Session {
    pub fn new(config: McpServer, data_dir: &Path, generation: Arc<AtomicU64>) -> Self {
        Session {
            config,
            data_dir: data_dir.to_path_buf(),
            service: tokio::sync::Mutex::new(None),
            stderr: Arc::default(),
            list_changed: Arc::default(),
            generation,
            restarts: AtomicU64::new(0),
            pid: AtomicU32::new(0),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn config(&self) -> &McpServer {
        &self.config
    }

    /// How many times the server was started again after a failure.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::SeqCst)
    }

    /// The process id of a stdio server's current process.
    pub fn pid(&self) -> Option<u32> {
        Some(self.pid.load(Ordering::SeqCst)).filter(|p| *p != 0)
    }

    /// Whether the server said its tool list changed since the last [`Session::list_tools`].
    pub fn list_changed(&self) -> bool {
        self.list_changed.load(Ordering::SeqCst)
    }

    fn error(&self, problem: impl Into<String>) -> ServerError {
        let tail = self.stderr.lock().map(|t| t.clone()).unwrap_or_default();
        ServerError {
            server: self.config.name.clone(),
            problem: problem.into(),
            stderr_tail: String::from_utf8_lossy(&tail).into_owned(),
        }
    }

    /// Connects (starting the process of a stdio server), within the server's timeout.
    async fn connect(&self) -> Result<Service, ServerError> {
        let handler = Handler {
            list_changed: self.list_changed.clone(),
            generation: self.generation.clone(),
        };
        let timeout = self.config.timeout;
        // A stdio server's stderr reader: a server that fails its handshake is named with
        // what it wrote, so that is read to its end first (its process has gone).
        let mut stderr_reader = None;
        let started = match &self.config.transport {
            McpTransport::Stdio { command, args, env } => {
                self.refuse_data_dir(command, args, env)?;
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args)
                    .env_clear()
                    .envs(praxis_tools::process::clean_env())
                    .envs(env)
                    .current_dir(std::env::temp_dir())
                    .kill_on_drop(true);
                let (transport, stderr) = TokioChildProcess::builder(cmd)
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .map_err(|e| self.error(format!("cannot start `{command}`: {e}")))?;
                self.pid
                    .store(transport.id().unwrap_or_default(), Ordering::SeqCst);
                if let Some(mut stderr) = stderr {
                    let tail = self.stderr.clone();
                    stderr_reader = Some(tokio::spawn(async move {
                        let mut buf = [0u8; 1024];
                        while let Ok(n) = stderr.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            if let Ok(mut tail) = tail.lock() {
                                tail.extend_from_slice(&buf[..n]);
                                let excess = tail.len().saturating_sub(STDERR_TAIL);
                                tail.drain(..excess);
                            }
                        }
                    }));
                }
                tokio::time::timeout(timeout, handler.serve(transport)).await
            }
            McpTransport::Http { url, headers } => {
                let mut custom = HashMap::new();
                for (header, var) in headers {
                    let value = std::env::var(var).map_err(|_| {
                        self.error(format!(
                            "header `{header}`: environment variable `{var}` is not set"
                        ))
                    })?;
                    let name = reqwest::header::HeaderName::try_from(header.as_str())
                        .map_err(|e| self.error(format!("header `{header}`: {e}")))?;
                    let value = reqwest::header::HeaderValue::try_from(value)
                        .map_err(|e| self.error(format!("header `{header}`: {e}")))?;
                    custom.insert(name, value);
                }
                let config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                    .custom_headers(custom);
                let transport = StreamableHttpClientTransport::from_config(config);
                tokio::time::timeout(timeout, handler.serve(transport)).await
            }
        };
        if matches!(started, Ok(Err(_)))
            && let Some(reader) = stderr_reader
        {
            // Bounded: a child of the server may hold its stderr open.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), reader).await;
        }
        match started {
            Ok(Ok(service)) => Ok(service),
            Ok(Err(e)) => Err(self.error(format!("did not start: {e}"))),
            Err(_) => Err(self.error(format!(
                "did not answer the handshake within {} s",
                timeout.as_secs()
            ))),
        }
    }

    /// A stdio server is never handed the data dir (ledger, keys): not as its program, an
    /// argument or an environment value.
    fn refuse_data_dir(
        &self,
        command: &str,
        args: &[String],
        env: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), ServerError> {
        let data_dir = self
            .data_dir
            .canonicalize()
            .unwrap_or_else(|_| self.data_dir.clone());
        let names_it = |value: &str| {
            value.split(['=', ':']).any(|piece| {
                let path = Path::new(piece);
                path.is_absolute()
                    && (path.starts_with(&data_dir)
                        || path.starts_with(&self.data_dir)
                        || path.canonicalize().is_ok_and(|p| p.starts_with(&data_dir)))
            })
        };
        let fields = std::iter::once(("command".to_string(), command))
            .chain(
                args.iter()
                    .enumerate()
                    .map(|(i, a)| (format!("args[{i}]"), a.as_str())),
            )
            .chain(env.iter().map(|(k, v)| (format!("env.{k}"), v.as_str())));
        for (field, value) in fields {
            if names_it(value) {
                return Err(self.error(format!(
                    "`{field}` names the data dir {}: an MCP server may not be given it",
                    self.data_dir.display()
                )));
            }
        }
        Ok(())
    }

    /// The server's tools, connecting first when not connected.
    pub async fn list_tools(&self) -> Result<Vec<Tool>, ServerError> {
        let mut guard = self.service.lock().await;
        if guard.is_none() {
            *guard = Some(self.connect().await?);
        }
        let Some(service) = guard.as_ref() else {
            unreachable!("connected above")
        };
        self.list_changed.store(false, Ordering::SeqCst);
        match tokio::time::timeout(self.config.timeout, service.list_all_tools()).await {
            Ok(Ok(tools)) => Ok(tools),
            Ok(Err(e)) => {
                *guard = None;
                Err(self.error(format!("tools/list failed: {e}")))
            }
            Err(_) => {
                *guard = None;
                Err(self.error(format!(
                    "tools/list did not answer within {} s",
                    self.config.timeout.as_secs()
                )))
            }
        }
    }

    /// Calls `tool` (the server's own name). A crash, a broken connection or a call past the
    /// server's timeout is an error naming what happened, and the server is started again
    /// before this returns (its outcome is said in the error).
    pub async fn call(&self, tool: &str, arguments: Value) -> Result<CallToolResult, ServerError> {
        let mut guard = self.service.lock().await;
        if guard.is_none() {
            *guard = Some(self.connect().await?);
        }
        let Some(service) = guard.as_ref() else {
            unreachable!("connected above")
        };
        let mut params = CallToolRequestParams::new(tool.to_string());
        if let Value::Object(map) = arguments {
            params.arguments = Some(map);
        }
        let timeout = self.config.timeout;
        let failure = match tokio::time::timeout(timeout, service.call_tool(params)).await {
            Ok(Ok(result)) => return Ok(result),
            Ok(Err(rmcp::ServiceError::McpError(e))) => {
                // The server answered with a JSON-RPC error: it is alive.
                return Err(self.error(format!("`{tool}` failed: {}", e.message)));
            }
            Ok(Err(e)) => format!("the connection failed during `{tool}`: {e}"),
            Err(_) => format!("`{tool}` did not answer within {} s", timeout.as_secs()),
        };
        // Crashed or hung: drop the connection (killing a stdio server's process) and start
        // the server again, so the next call finds it running.
        *guard = None;
        self.restarts.fetch_add(1, Ordering::SeqCst);
        let restarted = match self.connect().await {
            Ok(service) => {
                *guard = Some(service);
                "the server was restarted".to_string()
            }
            Err(e) => format!("restarting it failed: {}", e.problem),
        };
        Err(self.error(format!("{failure}; {restarted}")))
    }
}
