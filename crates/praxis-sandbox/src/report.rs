//! What a sandbox applies, layer by layer, as recorded in `run_started`.

use serde::{Deserialize, Serialize};

/// One layer of the boundary as applied to a run: active or not, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    pub name: String,
    pub active: bool,
    pub detail: String,
}

/// What the sandbox applies to every command it confines.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxReport {
    pub layers: Vec<Layer>,
    /// Grants dropped because they covered a deny path (e.g. a PATH entry of `~`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped_grants: Vec<String>,
    /// How commands are started: by the sandbox's spawner (the layers are applied once and
    /// inherited) or directly (the layers are applied in each command), and why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub launcher: String,
}

impl SandboxReport {
    pub fn layer(&self, name: &str) -> Option<&Layer> {
        self.layers.iter().find(|l| l.name == name)
    }

    /// Layers that are not active, as `name (why)`.
    pub fn unavailable(&self) -> Vec<String> {
        self.layers
            .iter()
            .filter(|l| !l.active)
            .map(|l| format!("{} ({})", l.name, l.detail))
            .collect()
    }

    pub(crate) fn push(&mut self, name: &str, active: bool, detail: impl Into<String>) {
        self.layers.push(Layer {
            name: name.into(),
            active,
            detail: detail.into(),
        });
    }
}
