//! The seam between the kernel and the tool fabric: compiling an intent against a tool's
//! contract is pure (schema validation, resource naming), so the kernel can do it itself.

use crate::types::{Effect, Resource, ToolSpec};
use serde_json::Value;

/// An intent that passed its tool's contract: what it would do and what it would touch.
#[derive(Clone, Debug, PartialEq)]
pub struct Compiled {
    pub effect: Effect,
    pub resources: Vec<Resource>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("unknown tool `{name}`; available tools: {}", available.join(", "))]
    UnknownTool {
        name: String,
        available: Vec<String>,
    },
    #[error("invalid arguments for `{tool}`: {}", problems.join("; "))]
    InvalidArguments { tool: String, problems: Vec<String> },
}

/// The catalogue of tool contracts. Implementations must be pure: no I/O, same answer for
/// the same input, so that replaying a run compiles every intent the same way.
pub trait Contracts: Send + Sync {
    fn specs(&self) -> Vec<ToolSpec>;
    fn compile(&self, tool: &str, arguments: &Value) -> Result<Compiled, CompileError>;

    /// The specs of tools whose contracts come from outside this installation (an MCP
    /// server's tools): the kernel records them in `run_started`, so replay compiles their
    /// calls from the record instead of asking the server again.
    fn recorded_specs(&self) -> Vec<ToolSpec> {
        Vec::new()
    }
}
