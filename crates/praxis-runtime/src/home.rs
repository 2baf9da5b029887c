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

/// The directory under the data dir that holds the workspaces the runtime makes itself
/// (branches, server runs without a workspace), one per run, and nothing else.
pub const WORKSPACES_DIR: &str = "workspaces";

/// Why a directory may not be a run's workspace.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceRefused {
    #[error("`{path}` is not an accessible directory: {source}")]
    Inaccessible {
        path: String,
        source: std::io::Error,
    },
    #[error("`{path}` is not a directory")]
    NotADirectory { path: String },
    #[error(
        "`{path}` {relation} the praxis data directory {home} (it holds the signing keys and the ledger); choose a directory outside it"
    )]
    DataDir {
        path: String,
        relation: &'static str,
        home: String,
    },
}

/// Whether a workspace was named by a caller, or made by the runtime under
/// [`WORKSPACES_DIR`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkspaceOrigin {
    /// Given by a user or client: nothing of the data dir may be reachable from it.
    Given,
    /// Made by the runtime: `$PRAXIS_HOME/workspaces/NAME` is allowed too.
    RuntimeMade,
}

impl DataHome {
    /// `$PRAXIS_HOME/workspaces`: the runtime's own workspaces, and nothing else.
    pub fn workspaces_dir(&self) -> PathBuf {
        self.root.join(WORKSPACES_DIR)
    }

    /// A fresh workspace `$PRAXIS_HOME/workspaces/NAME` for run `name` (not created).
    pub fn runtime_workspace(&self, name: &str) -> PathBuf {
        self.workspaces_dir().join(name)
    }

    /// `workspace`, canonical (symlinks resolved), if a run may work in it: a directory
    /// that is not the data dir, does not lie inside it and does not contain it. A
    /// runtime-made workspace may be one directory directly under
    /// `$PRAXIS_HOME/workspaces/`.
    pub fn admit_workspace(
        &self,
        workspace: &Path,
        origin: WorkspaceOrigin,
    ) -> Result<PathBuf, WorkspaceRefused> {
        let shown = workspace.display().to_string();
        let path =
            std::fs::canonicalize(workspace).map_err(|source| WorkspaceRefused::Inaccessible {
                path: shown.clone(),
                source,
            })?;
        if !path.is_dir() {
            return Err(WorkspaceRefused::NotADirectory { path: shown });
        }
        self.outside_data_dir(&path, &shown, origin)?;
        Ok(path)
    }

    /// The canonical path `workspace` will have once created (it may not exist yet), if a
    /// run may work there (see [`DataHome::admit_workspace`]); nothing is created.
    pub fn admit_new_workspace(
        &self,
        workspace: &Path,
        origin: WorkspaceOrigin,
    ) -> Result<PathBuf, WorkspaceRefused> {
        let shown = workspace.display().to_string();
        let mut existing = workspace;
        let mut rest = Vec::new();
        while !existing.exists() {
            match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_os_string());
                    existing = parent;
                }
                _ => break,
            }
        }
        let mut path =
            std::fs::canonicalize(existing).map_err(|source| WorkspaceRefused::Inaccessible {
                path: shown.clone(),
                source,
            })?;
        for name in rest.into_iter().rev() {
            path.push(name);
        }
        self.outside_data_dir(&path, &shown, origin)?;
        Ok(path)
    }

    /// Refuses a canonical `path` that is, lies inside or contains the data dir (a data dir
    /// that does not exist yet cannot be reached).
    fn outside_data_dir(
        &self,
        path: &Path,
        shown: &str,
        origin: WorkspaceOrigin,
    ) -> Result<(), WorkspaceRefused> {
        let Ok(home) = std::fs::canonicalize(&self.root) else {
            return Ok(());
        };
        let refuse = |relation| {
            Err(WorkspaceRefused::DataDir {
                path: shown.to_string(),
                relation,
                home: home.display().to_string(),
            })
        };
        if path == home {
            return refuse("is");
        }
        if home.starts_with(path) {
            return refuse("contains");
        }
        if path.starts_with(&home) {
            let runtime_made = origin == WorkspaceOrigin::RuntimeMade
                && path.parent() == Some(home.join(WORKSPACES_DIR).as_path());
            if !runtime_made {
                return refuse("lies inside");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_dir_is_out_of_reach() {
        let base = tempfile::tempdir().unwrap();
        let home_dir = base.path().join("home");
        std::fs::create_dir_all(home_dir.join("keys")).unwrap();
        let home = DataHome::at(&home_dir);
        let outside = base.path().join("ws");
        std::fs::create_dir(&outside).unwrap();
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&home_dir, &link).unwrap();
        let made = home.runtime_workspace("01run");
        std::fs::create_dir_all(&made).unwrap();
        let given = WorkspaceOrigin::Given;
        for refused in [
            home_dir.clone(),
            home_dir.join("keys"),
            base.path().to_path_buf(),
            link.clone(),
            home_dir.join("keys/../keys"),
            outside.join("../home"),
            made.clone(),
        ] {
            let e = home.admit_workspace(&refused, given).unwrap_err();
            assert!(
                matches!(e, WorkspaceRefused::DataDir { .. }),
                "{} was admitted: {e}",
                refused.display()
            );
        }
        assert!(home.admit_workspace(&outside, given).is_ok());
        assert!(
            home.admit_workspace(&made, WorkspaceOrigin::RuntimeMade)
                .is_ok()
        );
        assert!(
            home.admit_workspace(&home.workspaces_dir(), WorkspaceOrigin::RuntimeMade)
                .is_err()
        );
    }
}
