//! The data directory: `$PRAXIS_HOME`, else the platform data dir (`~/.local/share/praxis`).

use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct DataHome {
    root: PathBuf,
}

impl DataHome {
    /// `$PRAXIS_HOME` if set and not empty, else the platform data directory.
    pub fn from_env() -> anyhow::Result<Self> {
        let root = match std::env::var_os("PRAXIS_HOME").filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => dirs::data_dir()
                .map(|d| d.join("praxis"))
                .ok_or_else(|| anyhow::anyhow!("no platform data directory; set PRAXIS_HOME"))?,
        };
        Ok(DataHome { root })
    }

    pub fn at(root: impl Into<PathBuf>) -> Self {
        DataHome { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.root.join("ledger.db")
    }
}
