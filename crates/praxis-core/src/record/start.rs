//! The records of a run's start: `run_started` (the spec and the host facts it was judged
//! in, with the typed views of those facts) and `workspace_snapshot` (the start manifest).

use crate::session::SessionClient;
use crate::types::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// `run_started`: the run's spec and the context it was judged in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunStarted {
    pub spec: RunSpec,
    /// Host facts (platform, sandbox layers, versions, parent run); open shape.
    pub environment: Value,
    /// What the writ the run acts under says of itself (see [`WritSummary`]), or null.
    pub writ: Option<Value>,
    /// The price table in force (runs recorded before prices were had none).
    #[serde(default)]
    pub prices: PriceTable,
    /// A branch names the run and entry its history comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<BranchOrigin>,
    pub now: Millis,
    /// The tools whose contracts come from outside the installation (MCP servers' tools,
    /// `mcp__{server}__{tool}`), as offered at the start: replay compiles their calls from
    /// these, without the server. Absent when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
}

impl RunStarted {
    /// The recorded writ description, typed (None: no writ, or not a Praxis writ).
    pub fn writ_summary(&self) -> Option<WritSummary> {
        self.writ
            .as_ref()
            .and_then(|w| WritSummary::deserialize(w).ok())
    }

    /// The process that drove the run from its start.
    pub fn driver(&self) -> DriverProcess {
        DriverProcess::of(&self.environment)
    }

    /// The run and `delegate` call that started this run, if it is a sub-run.
    pub fn parent(&self) -> Option<ParentCall> {
        #[derive(Deserialize)]
        struct Facts {
            parent: Option<ParentCall>,
        }
        Facts::deserialize(&self.environment).ok()?.parent
    }

    /// The outside client whose calls drive the run (an MCP session), if any.
    pub fn client(&self) -> Option<SessionClient> {
        #[derive(Deserialize)]
        struct Facts {
            client: Option<SessionClient>,
        }
        Facts::deserialize(&self.environment).ok()?.client
    }
}

/// The parent of a sub-run, as its `run_started` host facts name it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ParentCall {
    pub run_id: String,
    pub call_id: String,
}

/// The driver process named by a record's host facts (`environment`), as far as recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct DriverProcess {
    pub host: Option<String>,
    pub pid: Option<i64>,
    pub boot_id: Option<String>,
    /// Start time of the process since boot (tells a live driver from a reused pid).
    pub pid_start_ticks: Option<u64>,
}

impl DriverProcess {
    pub(super) fn of(environment: &Value) -> Self {
        DriverProcess::deserialize(environment).unwrap_or_default()
    }
}

/// A signed writ as recorded in `run_started.writ`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WritSummary {
    pub id: String,
    pub subject: String,
    pub tenant: String,
    pub issuer: String,
    pub expires_at: Value,
    pub revocation_ids: Vec<String>,
    /// The writ's blocks (specs), open shape.
    pub blocks: Value,
}

/// Where a branch's history comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BranchOrigin {
    pub run_id: String,
    pub seq: u64,
    pub hash: String,
}

/// The start state of the workspace: relative path -> file.
pub type Manifest = BTreeMap<String, ManifestFile>;

/// One file of a start manifest: its blob, or why its content was not captured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ManifestFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// `workspace_snapshot`: the start-state manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkspaceSnapshot {
    pub files: Manifest,
}
