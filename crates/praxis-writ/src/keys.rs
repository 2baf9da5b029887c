//! The issuer's Ed25519 key pair (signs writs) and the trust anchor (its public half, which
//! verifiers hold).

use crate::error::WritError;
use biscuit_auth::{Algorithm, KeyPair, PrivateKey, PublicKey};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const PRIVATE_KEY_FILE: &str = "issuer.key";
pub const PUBLIC_KEY_FILE: &str = "issuer.pub";

/// A short, stable name for a public key in messages: its first 16 hex digits.
pub fn key_id(public_hex: &str) -> String {
    public_hex.chars().take(16).collect()
}

pub struct IssuerKey {
    pair: KeyPair,
}

impl std::fmt::Debug for IssuerKey {
    // Never print the private half.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerKey")
            .field("public", &self.public_hex())
            .finish()
    }
}

impl IssuerKey {
    pub fn generate() -> Self {
        IssuerKey {
            pair: KeyPair::new_with_algorithm(Algorithm::Ed25519),
        }
    }

    /// Writes `issuer.key` (private key hex, mode 0600) and `issuer.pub` (public key hex)
    /// into `dir`, creating it. Refuses to replace existing key files unless `force`.
    pub fn save(&self, dir: &Path, force: bool) -> Result<(), WritError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| WritError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        let private = dir.join(PRIVATE_KEY_FILE);
        let public = dir.join(PUBLIC_KEY_FILE);
        if !force {
            for path in [&private, &public] {
                if path.exists() {
                    return Err(WritError::KeyExists { path: path.clone() });
                }
            }
        }
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&private).map_err(io(&private))?;
        #[cfg(unix)]
        {
            // `mode` only applies to new files; an overwritten key file gets 0600 too.
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(io(&private))?;
        }
        let secret = self.pair.private().to_bytes_hex();
        file.write_all(format!("{secret}\n").as_bytes())
            .map_err(io(&private))?;
        fs::write(&public, format!("{}\n", self.public_hex())).map_err(io(&public))?;
        Ok(())
    }

    /// Reads `issuer.key` from `dir`; if `issuer.pub` is there too it must match.
    pub fn load(dir: &Path) -> Result<Self, WritError> {
        let private = dir.join(PRIVATE_KEY_FILE);
        let text = read(&private)?;
        let key = PrivateKey::from_bytes_hex(text.trim(), Algorithm::Ed25519).map_err(|e| {
            WritError::Key {
                input: private.display().to_string(),
                reason: e.to_string(),
            }
        })?;
        let issuer = IssuerKey {
            pair: KeyPair::from(&key),
        };
        let public = dir.join(PUBLIC_KEY_FILE);
        if public.exists() {
            let anchor = TrustAnchor::from_file(&public)?;
            if anchor.public_hex() != issuer.public_hex() {
                return Err(WritError::Key {
                    input: public.display().to_string(),
                    reason: format!(
                        "public key {} does not belong to the private key in {} (key {})",
                        key_id(&anchor.public_hex()),
                        private.display(),
                        key_id(&issuer.public_hex())
                    ),
                });
            }
        }
        Ok(issuer)
    }

    pub fn public_hex(&self) -> String {
        self.pair.public().to_bytes_hex()
    }

    pub fn anchor(&self) -> TrustAnchor {
        TrustAnchor {
            key: self.pair.public(),
        }
    }

    pub(crate) fn pair(&self) -> &KeyPair {
        &self.pair
    }
}

/// The public key a verifier trusts to have issued writs.
#[derive(Clone, Debug, PartialEq)]
pub struct TrustAnchor {
    key: PublicKey,
}

impl TrustAnchor {
    pub fn from_hex(text: &str) -> Result<Self, WritError> {
        let key = PublicKey::from_bytes_hex(text.trim(), Algorithm::Ed25519).map_err(|e| {
            WritError::Key {
                input: "the trust anchor".into(),
                reason: format!("`{}` is not an Ed25519 public key in hex: {e}", text.trim()),
            }
        })?;
        Ok(TrustAnchor { key })
    }

    pub fn from_file(path: &Path) -> Result<Self, WritError> {
        let text = read(path)?;
        Self::from_hex(&text).map_err(|e| match e {
            WritError::Key { reason, .. } => WritError::Key {
                input: path.display().to_string(),
                reason,
            },
            other => other,
        })
    }

    pub fn public_hex(&self) -> String {
        self.key.to_bytes_hex()
    }

    pub fn key_id(&self) -> String {
        key_id(&self.public_hex())
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }
}

fn read(path: &Path) -> Result<String, WritError> {
    fs::read_to_string(path).map_err(|source| WritError::Io {
        path: PathBuf::from(path),
        source,
    })
}
