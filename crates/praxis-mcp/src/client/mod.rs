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
use praxis_tools::Registry;
use std::sync::Arc;

/// One tool of one server, ready to register.
pub struct ServedTool {
    pub server: String,
    pub tool: Arc<McpTool>,
}

/// The sessions of the configured servers and the tools they offer.
#[derive(Default)]
pub struct McpTools {
    sessions: Vec<Arc<Session>>,
    tools: Vec<ServedTool>,
    failures: Vec<ServerError>,
    /// Tools left out, and why (a name no provider accepts, a schema that does not compile).
    skipped: Vec<String>,
}

impl McpTools {
    /// Starts every server and lists its tools. Never fails: a server that does not start is
    /// a failure entry, and the run goes on without its tools.
    pub async fn start(servers: &[McpServer], home: &DataHome) -> Self {
        let mut set = McpTools::default();
        for server in servers {
            let session = Arc::new(Session::new(server.clone(), home.root()));
            match session.list_tools().await {
                Ok(tools) => {
                    for tool in tools {
                        let name = tool_name(server.name.as_str(), &tool.name);
                        if !usable_name(&name) {
                            set.skipped.push(format!(
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
                        set.tools.push(ServedTool {
                            server: server.name.clone(),
                            tool: Arc::new(McpTool {
                                session: session.clone(),
                                remote: tool.name.to_string(),
                                spec,
                            }),
                        });
                    }
                }
                Err(e) => set.failures.push(e),
            }
            set.sessions.push(session);
        }
        set
    }

    /// Adds every tool to `registry`; one whose schema does not compile is skipped (and
    /// listed in [`McpTools::skipped`]).
    pub fn register(&mut self, registry: &mut Registry) {
        for served in &self.tools {
            if let Err(e) = registry.register(served.tool.clone()) {
                self.skipped
                    .push(format!("MCP server `{}`: {e}", served.server));
            }
        }
    }

    pub fn sessions(&self) -> &[Arc<Session>] {
        &self.sessions
    }

    pub fn tools(&self) -> &[ServedTool] {
        &self.tools
    }

    /// The servers that did not start, with their stderr tails.
    pub fn failures(&self) -> &[ServerError] {
        &self.failures
    }

    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// What a surface says at run start: every server that failed and every tool left out.
    pub fn warnings(&self) -> Vec<String> {
        self.failures
            .iter()
            .map(ToString::to_string)
            .chain(self.skipped.iter().cloned())
            .collect()
    }

    /// The server a registered tool name belongs to, if it is an MCP tool.
    pub fn server_of(&self, tool: &str) -> Option<&str> {
        self.tools
            .iter()
            .find(|t| t.tool.spec.name == tool)
            .map(|t| t.server.as_str())
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
    let mut mcp = McpTools::start(&configured(home, env)?, home).await;
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
                    let tools: Vec<&str> = mcp
                        .tools
                        .iter()
                        .filter(|t| t.server == session.name())
                        .map(|t| t.tool.spec.name.as_str())
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
