//! The MCP client: the servers of the home `[[mcp_servers]]`, their tools offered to the
//! model as `mcp__{server}__{tool}` and governed like any tool (schema-checked, judged by the
//! policy and the writ, ledgered, budgeted, output capped).
//!
//! [`McpTools::start`] connects to every server; one that fails to start is kept in
//! [`McpTools::failures`] with its stderr tail (`praxis doctor` and run start name it), the
//! others' tools join the registry. The runtime process holds the sessions.

mod output;
mod session;
mod tool;

pub use output::{McpOutput, Part};
pub use session::{ServerError, Session};
pub use tool::{McpTool, PREFIX, tool_name, usable_name};

use praxis_core::ToolSpec;
use praxis_runtime::config;
use praxis_runtime::home::DataHome;
use praxis_runtime::mcp_config::{self, McpServer};
use praxis_runtime::tool_set::{self, ToolSetError};
use praxis_tools::{BoxFuture, Registry, ToolContract, ToolRefresh, ToolUpdates};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One tool of one server, ready to register.
#[derive(Clone)]
pub struct ServedTool {
    pub server: String,
    pub tool: Arc<McpTool>,
}

/// The sessions of the configured servers and the tools they offer. Cheap to clone (the
/// state is shared): the registry keeps a clone to follow list changes.
#[derive(Clone, Default)]
pub struct McpTools {
    sessions: Arc<Vec<Arc<Session>>>,
    tools: Arc<Mutex<Vec<ServedTool>>>,
    failures: Arc<Vec<ServerError>>,
    /// Tools left out, and why (a name no provider accepts, a schema that does not compile).
    skipped: Arc<Mutex<Vec<String>>>,
    /// Bumped by any server's `notifications/tools/list_changed`.
    generation: Arc<AtomicU64>,
}

/// The tools of `session` as Praxis tools; names no provider accepts go to `skipped`.
fn served(
    session: &Arc<Session>,
    tools: Vec<rmcp::model::Tool>,
    skipped: &mut Vec<String>,
) -> Vec<ServedTool> {
    let server = session.config();
    let mut out = Vec::new();
    for tool in tools {
        let name = tool_name(server.name.as_str(), &tool.name);
        if !usable_name(&name) {
            skipped.push(format!(
                "MCP server `{}`: tool {:?} has a name no model provider accepts",
                server.name, tool.name
            ));
            continue;
        }
        let description = tool
            .description
            .as_deref()
            .unwrap_or("(no description)")
            .to_string();
        let spec = ToolSpec {
            name,
            description: format!("[MCP server {}] {description}", server.name),
            effect: server.effect,
            parameters: serde_json::Value::Object((*tool.input_schema).clone()),
        };
        out.push(ServedTool {
            server: server.name.clone(),
            tool: Arc::new(McpTool {
                session: session.clone(),
                remote: tool.name.to_string(),
                spec,
            }),
        });
    }
    out
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl McpTools {
    /// Starts every server and lists its tools. Never fails: a server that does not start is
    /// a failure entry, and the run goes on without its tools.
    pub async fn start(servers: &[McpServer], home: &DataHome) -> Self {
        let generation = Arc::new(AtomicU64::new(0));
        let (mut sessions, mut tools, mut failures, mut skipped) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for server in servers {
            let session = Arc::new(Session::new(
                server.clone(),
                home.root(),
                generation.clone(),
            ));
            match session.list_tools().await {
                Ok(listed) => tools.extend(served(&session, listed, &mut skipped)),
                Err(e) => failures.push(e),
            }
            sessions.push(session);
        }
        McpTools {
            sessions: Arc::new(sessions),
            tools: Arc::new(Mutex::new(tools)),
            failures: Arc::new(failures),
            skipped: Arc::new(Mutex::new(skipped)),
            generation,
        }
    }

    /// Adds every tool to `registry` (one whose schema does not compile is skipped, and
    /// listed in [`McpTools::skipped`]), and has the registry follow list changes.
    pub fn register(&self, registry: &mut Registry) {
        let generation = self.generation.load(Ordering::SeqCst);
        for served in self.tools() {
            if let Err(e) = registry.register(served.tool.clone()) {
                locked(&self.skipped).push(format!("MCP server `{}`: {e}", served.server));
            }
        }
        registry.set_updates(Arc::new(self.clone()), generation);
    }

    pub fn sessions(&self) -> &[Arc<Session>] {
        &self.sessions
    }

    /// The tools offered now.
    pub fn tools(&self) -> Vec<ServedTool> {
        locked(&self.tools).clone()
    }

    /// The servers that did not start, with their stderr tails.
    pub fn failures(&self) -> &[ServerError] {
        &self.failures
    }

    pub fn skipped(&self) -> Vec<String> {
        locked(&self.skipped).clone()
    }

    /// What a surface says at run start: every server that failed and every tool left out.
    pub fn warnings(&self) -> Vec<String> {
        self.failures
            .iter()
            .map(ToString::to_string)
            .chain(self.skipped())
            .collect()
    }

    /// The server a registered tool name belongs to, if it is an MCP tool.
    pub fn server_of(&self, tool: &str) -> Option<String> {
        locked(&self.tools)
            .iter()
            .find(|t| t.tool.spec.name == tool)
            .map(|t| t.server.clone())
    }
}

impl ToolUpdates for McpTools {
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Lists the tools of every server that said its list changed again; a server that
    /// fails to answer keeps its previous tools.
    fn refresh(&self) -> BoxFuture<'_, ToolRefresh> {
        Box::pin(async move {
            let generation = self.generation.load(Ordering::SeqCst);
            let mut changed = Vec::new();
            for session in self.sessions.iter().filter(|s| s.list_changed()) {
                let mut skipped = Vec::new();
                if let Ok(listed) = session.list_tools().await {
                    let fresh = served(session, listed, &mut skipped);
                    let mut tools = locked(&self.tools);
                    tools.retain(|t| t.server != session.name());
                    tools.extend(fresh);
                    changed.push(format!("mcp server {}", session.name()));
                }
                locked(&self.skipped).extend(skipped);
            }
            ToolRefresh {
                generation,
                source: changed.join(", "),
                tools: self
                    .tools()
                    .into_iter()
                    .map(|t| t.tool as Arc<dyn ToolContract>)
                    .collect(),
            }
        })
    }
}

/// The `[[mcp_servers]]` of the home configuration, checked.
pub fn configured(
    home: &DataHome,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<McpServer>, ToolSetError> {
    let layered = config::load(home, None, &[], env)?;
    mcp_config::check(&layered.config.mcp_servers).map_err(|e| {
        ToolSetError::Config(config::ConfigError::Invalid {
            source_name: "the home configuration".into(),
            message: e.to_string(),
        })
    })
}

/// The installation's tool set with the MCP servers' tools: what `praxis run`, `praxis
/// tools` and `praxis doctor` use. The sessions must live as long as the registry is used.
pub async fn tool_set(
    home: &DataHome,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Registry, McpTools), ToolSetError> {
    let mut registry = tool_set::registry(home, env)?;
    let mcp = McpTools::start(&configured(home, env)?, home).await;
    mcp.register(&mut registry);
    Ok((registry, mcp))
}

/// [`tool_set`] with this process's environment.
pub async fn tool_set_from_env(home: &DataHome) -> Result<(Registry, McpTools), ToolSetError> {
    tool_set(home, &|k| std::env::var(k).ok()).await
}

/// One `praxis doctor` check per configured server: its tool count, or why it did not
/// start (with its stderr tail).
pub fn doctor_checks(mcp: &McpTools) -> Vec<praxis_runtime::doctor::Check> {
    mcp.sessions
        .iter()
        .map(|session| {
            let name = format!("mcp server {}", session.name());
            match mcp.failures.iter().find(|f| f.server == session.name()) {
                Some(failure) => praxis_runtime::doctor::Check {
                    name,
                    ok: false,
                    detail: failure.to_string(),
                },
                None => {
                    let tools: Vec<String> = mcp
                        .tools()
                        .into_iter()
                        .filter(|t| t.server == session.name())
                        .map(|t| t.tool.spec.name.clone())
                        .collect();
                    praxis_runtime::doctor::Check {
                        name,
                        ok: true,
                        detail: format!("{} tools: {}", tools.len(), tools.join(", ")),
                    }
                }
            }
        })
        .collect()
}
