//! A run driven from outside, one call at a time (an MCP client's session): who drives it,
//! and what became of each call. The driver lives in `praxis_runtime::session`; the
//! protocol that carries the calls (MCP) lives in `praxis-mcp`.

use serde::{Deserialize, Serialize};

/// The client that drives a run from outside, one call at a time (an MCP client's
/// session), as its `run_started` host facts name it (`environment.client`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClient {
    /// The protocol it speaks: `mcp`.
    pub protocol: String,
    /// How it names itself (MCP `clientInfo.name`).
    pub name: String,
    /// Its version (MCP `clientInfo.version`).
    pub version: String,
    /// The API token's tenant it called under (HTTP with tokens), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// What became of one call an outside client made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// It ran: the tool's (capped) output, and whether the tool reported a failure.
    Ran { output: String, failed: bool },
    /// It was refused: by its contract, the run's policy or the writ (the rule and reason
    /// its proposal was recorded with), or by the person who denied it (rule `approval`).
    Refused { rule: String, reason: String },
    /// The run is over (its limits, a budget, a cancel), so the call was not made.
    RunEnded { why: String },
}
