//! What a registry offers, tool by tool: name, effect, where it comes from and the JSON
//! Schema of its arguments. `praxis tools` and `GET /v1/tools` both list this.

use crate::Registry;
use praxis_core::{Contracts, Effect, ToolSpec};
use serde::Serialize;
use serde_json::Value;
use std::path::PathBuf;

/// Where a tool comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "kebab-case")]
pub enum ToolOrigin {
    /// Built into Praxis.
    BuiltIn,
    /// A manifest file (see [`crate::manifest`]).
    Manifest { file: PathBuf },
    /// An MCP server of the home configuration, by its name there.
    Mcp { server: String },
    /// Known only from a run's record (replay, resume and branch of a run with MCP tools).
    Recorded,
}

impl ToolOrigin {
    /// `built-in`, `manifest`, `mcp` or `recorded`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ToolOrigin::BuiltIn => "built-in",
            ToolOrigin::Manifest { .. } => "manifest",
            ToolOrigin::Mcp { .. } => "mcp",
            ToolOrigin::Recorded => "recorded",
        }
    }

    /// The MCP server an MCP tool comes from.
    pub fn server(&self) -> Option<&str> {
        match self {
            ToolOrigin::Mcp { server } => Some(server),
            _ => None,
        }
    }
}

/// One tool of a registry.
#[derive(Clone, Debug, Serialize)]
pub struct ToolInfo {
    pub name: String,
    pub effect: Effect,
    /// `source` (see [`ToolOrigin::as_str`]), with `file` for a manifest tool and `server`
    /// for an MCP tool.
    #[serde(flatten)]
    pub origin: ToolOrigin,
    pub description: String,
    pub input_schema: Value,
}

impl Registry {
    /// Every tool registered here, sorted by name.
    pub fn catalogue(&self) -> Vec<ToolInfo> {
        self.specs()
            .into_iter()
            .map(|spec: ToolSpec| ToolInfo {
                origin: self
                    .get(&spec.name)
                    .map(|tool| tool.origin())
                    .unwrap_or(ToolOrigin::BuiltIn),
                name: spec.name,
                effect: spec.effect,
                description: spec.description,
                input_schema: spec.parameters,
            })
            .collect()
    }
}
