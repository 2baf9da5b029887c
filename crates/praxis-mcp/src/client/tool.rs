//! An MCP server's tool as a Praxis tool: `mcp__{server}__{tool}`, its input schema, the
//! server's effect class. It runs in the runtime process, which holds the sessions (an I/O
//! driver: the kernel has judged the call before it gets here).

use super::output::McpOutput;
use super::session::Session;
use praxis_core::{Observation, Resource, ToolSpec};
use praxis_tools::{BoxFuture, ExecContext, Placement, ToolContract, ToolOrigin};
use serde_json::Value;
use std::sync::Arc;

/// What every MCP tool's name starts with.
pub const PREFIX: &str = "mcp__";

/// `mcp__{server}__{tool}`.
pub fn tool_name(server: &str, tool: &str) -> String {
    format!("{PREFIX}{server}__{tool}")
}

/// Whether a server's tool name can become a Praxis tool name (providers accept
/// `[A-Za-z0-9_-]{1,64}`).
pub fn usable_name(full: &str) -> bool {
    !full.is_empty()
        && full.len() <= 64
        && full
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub struct McpTool {
    pub(crate) session: Arc<Session>,
    /// The tool's name on its server.
    pub(crate) remote: String,
    pub(crate) spec: ToolSpec,
}

impl McpTool {
    /// The server this tool comes from.
    pub fn server(&self) -> &str {
        self.session.name()
    }
}

impl ToolContract for McpTool {
    fn spec(&self) -> ToolSpec {
        self.spec.clone()
    }

    /// An MCP tool names no workspace resource: the writ governs it by name and effect.
    fn resources(&self, _: &Value) -> Vec<Resource> {
        Vec::new()
    }

    fn execute<'a>(&'a self, ctx: &'a ExecContext, args: Value) -> BoxFuture<'a, Observation> {
        Box::pin(async move {
            match self.session.call(&self.remote, args).await {
                Ok(result) => McpOutput::from_result(result).observation(ctx.limits.output_bytes),
                Err(e) => Observation::error(e.to_string()),
            }
        })
    }

    fn placement(&self) -> Placement {
        Placement::Driver
    }

    fn recorded(&self) -> bool {
        true
    }

    fn origin(&self) -> ToolOrigin {
        ToolOrigin::Mcp {
            server: self.server().to_string(),
        }
    }
}
