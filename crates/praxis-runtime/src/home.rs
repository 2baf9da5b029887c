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

/// The PostgreSQL ledger at `url` (its schema migrated).
pub fn open_postgres(
    url: &str,
) -> Result<std::sync::Arc<praxis_ledger::PostgresLedger>, HomeError> {
    praxis_ledger::PostgresLedger::connect(url)
        .map(std::sync::Arc::new)
        .map_err(postgres_error(url))
}

/// A PostgreSQL ledger that could not be opened, named by its URL without the password.
pub(crate) fn postgres_error(url: &str) -> impl FnOnce(praxis_ledger::LedgerError) -> HomeError {
    let path = PathBuf::from(praxis_ledger::redact_url(url));
    move |source| HomeError::Ledger {
        path,
        source: Box::new(source),
    }
}

/// A data-dir file that cannot be read or made.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("price table {path}: {message}")]
    Prices { path: PathBuf, message: String },
    #[error("opening ledger {path}: {source}")]
    Ledger {
        path: PathBuf,
        source: Box<praxis_ledger::LedgerError>,
    },
    #[error("{name}: {reason}")]
    Setting { name: &'static str, reason: String },
    #[error("PRAXIS_LEDGER_URL: {reason}")]
    LedgerUrl { reason: String },
    #[error("{context}: {source}")]
    Writ {
        context: String,
        source: praxis_writ::WritError,
    },
    #[error("locking {path} (the keys directory's lock): {source}")]
    KeysLock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the runtime checkpoint key in {dir}: {source}")]
    CheckpointKey {
        dir: PathBuf,
        source: praxis_ledger::checkpoint::CheckpointError,
    },
}

impl DataHome {
    /// `$PRAXIS_HOME/keys`: the writ issuer key and the runtime checkpoint key.
    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }

    /// Runs `f` holding the keys directory's lock (`keys/.lock`, across threads and
    /// processes), so a key generated on first use is never read half-written and two
    /// first uses at once agree on one key.
    fn with_keys_locked<T>(
        &self,
        f: impl FnOnce(&Path) -> Result<T, HomeError>,
    ) -> Result<T, HomeError> {
        let dir = self.keys_dir();
        let path = dir.join(".lock");
        let lock_error = |source| HomeError::KeysLock {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(lock_error)?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(lock_error)?;
        lock.lock().map_err(lock_error)?;
        // Released when `lock` is dropped (closed), also on an early return.
        f(&dir)
    }

    /// `PRAXIS_LEDGER_URL`: a `postgres://` URL selects a PostgreSQL ledger instead of the
    /// data dir's SQLite file. Anything else set there is refused.
    pub fn ledger_url(&self) -> Result<Option<String>, HomeError> {
        match std::env::var("PRAXIS_LEDGER_URL") {
            Ok(url) if url.is_empty() => Ok(None),
            Ok(url) if praxis_ledger::is_postgres_url(&url) => Ok(Some(url)),
            Ok(url) => Err(HomeError::LedgerUrl {
                reason: format!(
                    "{:?} is not a postgres:// or postgresql:// URL (the SQLite ledger needs no URL: it is {})",
                    praxis_ledger::redact_url(&url),
                    self.ledger_path().display()
                ),
            }),
            Err(_) => Ok(None),
        }
    }

    /// The API token and run-owner tables of the selected ledger (PostgreSQL when
    /// `PRAXIS_LEDGER_URL` names one, else the data dir's SQLite file).
    pub fn token_store(&self) -> Result<praxis_ledger::tokens::TokenStore, HomeError> {
        match self.ledger_url()? {
            Some(url) => Ok(open_postgres(&url)?.tokens()),
            None => praxis_ledger::tokens::TokenStore::open(&self.ledger_path())
                .map_err(|e| self.sqlite_error(e)),
        }
    }

    /// The approvals table of the selected ledger (see [`DataHome::token_store`]).
    pub fn approval_store(&self) -> Result<praxis_ledger::approvals::ApprovalStore, HomeError> {
        match self.ledger_url()? {
            Some(url) => Ok(open_postgres(&url)?.approvals()),
            None => praxis_ledger::approvals::ApprovalStore::open(&self.ledger_path())
                .map_err(|e| self.sqlite_error(e)),
        }
    }

    /// The cancel-request table of the selected ledger (see [`DataHome::token_store`]).
    pub fn cancel_store(&self) -> Result<praxis_ledger::cancels::CancelStore, HomeError> {
        match self.ledger_url()? {
            Some(url) => Ok(open_postgres(&url)?.cancels()),
            None => praxis_ledger::cancels::CancelStore::open(&self.ledger_path())
                .map_err(|e| self.sqlite_error(e)),
        }
    }

    /// An error of the data dir's SQLite ledger file, naming it.
    pub(crate) fn sqlite_error(&self, source: praxis_ledger::LedgerError) -> HomeError {
        HomeError::Ledger {
            path: self.ledger_path(),
            source: Box::new(source),
        }
    }

    /// The data dir's SQLite ledger, opened (and created) at [`DataHome::ledger_path`],
    /// whatever `PRAXIS_LEDGER_URL` says (for a caller that already chose it).
    pub fn open_sqlite_ledger(
        &self,
    ) -> Result<std::sync::Arc<praxis_ledger::SqliteLedger>, HomeError> {
        let path = self.ledger_path();
        praxis_ledger::SqliteLedger::open(&path)
            .map(std::sync::Arc::new)
            .map_err(|source| HomeError::Ledger {
                path,
                source: Box::new(source),
            })
    }

    /// The ledger a command that writes runs works on: the PostgreSQL database
    /// `PRAXIS_LEDGER_URL` names (migrated on connect; a handle that holds run leases as
    /// [`crate::stores::local_owner_id`]), else the data dir's SQLite file (created).
    pub fn open_ledger(&self) -> Result<crate::stores::Selected, HomeError> {
        use crate::stores::Selected;
        match self.ledger_url()? {
            Some(url) => praxis_ledger::PostgresLedger::connect_as(
                &url,
                Some(crate::stores::local_owner_id()),
            )
            .map(|pg| Selected::Postgres(std::sync::Arc::new(pg)))
            .map_err(postgres_error(&url)),
            None => Ok(Selected::Sqlite(self.open_sqlite_ledger()?)),
        }
    }

    /// The ledger for commands that only read it, never written through: PostgreSQL in
    /// read-only sessions without migrating ([`praxis_ledger::PostgresLedger::connect_read_only`]),
    /// or the SQLite file opened read-only (it can never checkpoint or delete what a running
    /// writer depends on).
    pub fn read_ledger(&self) -> Result<std::sync::Arc<dyn praxis_ledger::Ledger>, HomeError> {
        if let Some(url) = self.ledger_url()? {
            return praxis_ledger::PostgresLedger::connect_read_only(&url)
                .map(|pg| std::sync::Arc::new(pg) as std::sync::Arc<dyn praxis_ledger::Ledger>)
                .map_err(postgres_error(&url));
        }
        let path = self.ledger_path();
        praxis_ledger::SqliteLedger::open_read_only(&path)
            .map(|l| std::sync::Arc::new(l) as std::sync::Arc<dyn praxis_ledger::Ledger>)
            .map_err(|source| HomeError::Ledger {
                path,
                source: Box::new(source),
            })
    }

    /// `$PRAXIS_HOME/prices.toml`: `[MODEL] input_per_mtok = 3.0, output_per_mtok = 15.0`
    /// (USD); empty when there is none.
    pub fn prices(&self) -> Result<praxis_core::PriceTable, HomeError> {
        let path = self.root.join("prices.toml");
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| HomeError::Prices {
                path,
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
            Err(source) => Err(HomeError::Read { path, source }),
        }
    }

    /// The runtime checkpoint key in [`DataHome::keys_dir`], generated on first use; the
    /// flag says whether it was generated now.
    pub fn checkpoint_key(
        &self,
    ) -> Result<(praxis_ledger::checkpoint::CheckpointKey, bool), HomeError> {
        use praxis_ledger::checkpoint::{self, CheckpointKey};
        self.with_keys_locked(|dir| {
            let error = |source| HomeError::CheckpointKey {
                dir: dir.to_path_buf(),
                source,
            };
            if dir.join(checkpoint::PRIVATE_KEY_FILE).exists() {
                return CheckpointKey::load(dir).map(|k| (k, false)).map_err(error);
            }
            let key = CheckpointKey::generate().map_err(error)?;
            key.save(dir).map_err(error)?;
            Ok((key, true))
        })
    }
}

/// The writ source: the issuer key in [`DataHome::keys_dir`] (development writs) and the
/// trust anchor writs must chain to.
impl DataHome {
    /// The trust anchor: `PRAXIS_TRUST_ANCHOR` as `env` gives it (a public key in hex, or a
    /// file holding one), else the local issuer's public key.
    pub fn trust_anchor(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<praxis_writ::TrustAnchor, HomeError> {
        use praxis_writ::TrustAnchor;
        if let Some(value) = env("PRAXIS_TRUST_ANCHOR").filter(|v| !v.is_empty()) {
            let path = Path::new(&value);
            return if path.is_file() {
                TrustAnchor::from_file(path).map_err(|source| HomeError::Writ {
                    context: format!("PRAXIS_TRUST_ANCHOR file {value}"),
                    source,
                })
            } else {
                TrustAnchor::from_hex(&value).map_err(|source| HomeError::Writ {
                    context: "PRAXIS_TRUST_ANCHOR (expected a public key in hex or a file)".into(),
                    source,
                })
            };
        }
        self.local_anchor().map_err(|e| match e {
            HomeError::Writ { source, .. } => HomeError::Writ {
                context: format!(
                    "no trust anchor: {} is missing (run `praxis writ keygen`, or set PRAXIS_TRUST_ANCHOR)",
                    self.keys_dir().join("issuer.pub").display()
                ),
                source,
            },
            other => other,
        })
    }

    /// The local issuer's public key (what development writs chain to).
    pub fn local_anchor(&self) -> Result<praxis_writ::TrustAnchor, HomeError> {
        let file = self.keys_dir().join("issuer.pub");
        praxis_writ::TrustAnchor::from_file(&file).map_err(|source| HomeError::Writ {
            context: format!("reading {}", file.display()),
            source,
        })
    }

    /// The local issuer key, generated on first use; the flag says whether it was now.
    pub fn issuer_key(&self) -> Result<(praxis_writ::IssuerKey, bool), HomeError> {
        use praxis_writ::IssuerKey;
        self.with_keys_locked(|dir| {
            if dir.join(praxis_writ::PRIVATE_KEY_FILE).exists() {
                return IssuerKey::load(dir).map(|k| (k, false)).map_err(|source| {
                    HomeError::Writ {
                        context: format!("loading the issuer key from {}", dir.display()),
                        source,
                    }
                });
            }
            Ok((save_issuer_key(dir, false)?, true))
        })
    }

    /// A new issuer key written to [`DataHome::keys_dir`] (`praxis writ keygen`); refused
    /// when one is there unless `force`. Readers never see it half-written.
    pub fn generate_issuer_key(&self, force: bool) -> Result<praxis_writ::IssuerKey, HomeError> {
        self.with_keys_locked(|dir| save_issuer_key(dir, force))
    }

    /// A development writ (workspace read-write, exec allowed, network denied, modest
    /// budgets) for `developer@HOST`, issued now with the local key; the flag says whether
    /// the key was generated for it.
    pub fn development_writ(&self) -> Result<(String, bool), HomeError> {
        let (key, generated) = self.issuer_key()?;
        let token = praxis_writ::issue(
            &praxis_writ::WritSpec::development(&crate::host::this_process().host),
            &key,
            std::time::SystemTime::now(),
        )
        .map_err(|source| HomeError::Writ {
            context: "issuing the development writ".into(),
            source,
        })?;
        Ok((token, generated))
    }

    /// The writ a run acts under: `token` (a client's or `--writ`'s), paired with the
    /// configured trust anchor; without one, a development writ paired with the local key.
    pub fn writ_grant(
        &self,
        token: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<crate::WritGrant, HomeError> {
        Ok(match token {
            Some(token) => crate::WritGrant {
                token: token.trim().to_string(),
                anchor: self.trust_anchor(env)?,
            },
            None => {
                let now = std::time::SystemTime::now();
                let keys = self.keys_dir();
                // The anchor is read every time: a key replaced on disk is never paired with
                // a writ the old one signed.
                if let Ok(anchor) = self.local_anchor()
                    && let Some(token) = kept_development_writ(&keys, &anchor, now)
                {
                    return Ok(crate::WritGrant { token, anchor });
                }
                let token = self.development_writ()?.0;
                let anchor = self.local_anchor()?;
                keep_development_writ(keys, &anchor, &token, now);
                crate::WritGrant { token, anchor }
            }
        })
    }
}

/// How long a development writ is handed out again after it was issued: half its life
/// (`WritSpec::development` gives it 24 hours), so a run that takes it has at least 12
/// hours, far more than its own time budget.
const DEVELOPMENT_WRIT_REUSE: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// A development writ issued in this process: the keys directory it came from, the anchor
/// that verifies it, its token, and until when it is handed out again.
struct KeptWrit {
    keys: PathBuf,
    anchor_hex: String,
    token: String,
    until: std::time::SystemTime,
}

/// The development writs issued here, one per keys directory: issuing one (loading the key
/// under its lock, building and signing the token) was a fifth of a server's `POST /v1/runs`.
static DEVELOPMENT_WRITS: std::sync::Mutex<Vec<KeptWrit>> = std::sync::Mutex::new(Vec::new());

/// The development writ kept for `keys`, if `anchor` still verifies it and its reuse window
/// is open at `now`.
fn kept_development_writ(
    keys: &Path,
    anchor: &praxis_writ::TrustAnchor,
    now: std::time::SystemTime,
) -> Option<String> {
    let kept = DEVELOPMENT_WRITS.lock().ok()?;
    kept.iter()
        .find(|k| k.keys == keys && k.anchor_hex == anchor.public_hex())
        .filter(|k| now < k.until)
        .map(|k| k.token.clone())
}

/// Keeps `token`, just issued from `keys`, for [`DEVELOPMENT_WRIT_REUSE`] from `now`.
fn keep_development_writ(
    keys: PathBuf,
    anchor: &praxis_writ::TrustAnchor,
    token: &str,
    now: std::time::SystemTime,
) {
    let Ok(mut kept) = DEVELOPMENT_WRITS.lock() else {
        return;
    };
    kept.retain(|k| k.keys != keys);
    kept.push(KeptWrit {
        keys,
        anchor_hex: anchor.public_hex(),
        token: token.to_string(),
        until: now + DEVELOPMENT_WRIT_REUSE,
    });
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

/// A new issuer key, written into `dir` (refused over an existing one unless `force`).
fn save_issuer_key(dir: &Path, force: bool) -> Result<praxis_writ::IssuerKey, HomeError> {
    let key = praxis_writ::IssuerKey::generate();
    key.save(dir, force).map_err(|source| HomeError::Writ {
        context: format!("saving a new issuer key in {}", dir.display()),
        source,
    })?;
    Ok(key)
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
