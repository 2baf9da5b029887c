//! Every way a writ, its spec or its keys can be refused. Each variant names the input that
//! caused it, so a user can fix the spec or tell a forged token from an expired one.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum WritError {
    /// The spec parsed but says something invalid or contradictory; `field` is its path
    /// (e.g. `tools[1].paths[0]`, `budget.usd`).
    #[error("invalid writ spec: `{field}`: {reason}")]
    Spec { field: String, reason: String },

    /// The spec text is not valid TOML/JSON for the spec's shape (unknown fields included;
    /// the parser's message names the field and position).
    #[error("cannot parse writ spec ({format}): {reason}")]
    Parse {
        format: &'static str,
        reason: String,
    },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{} already exists (use --force to overwrite the issuer key)", path.display())]
    KeyExists { path: PathBuf },

    #[error("invalid key material in {input}: {reason}")]
    Key { input: String, reason: String },

    /// Not a token at all: bad base64, truncated, or not a biscuit.
    #[error("malformed writ token: {0}")]
    Malformed(String),

    /// Signed for our trusted key, but the signature does not hold: the token was forged or
    /// altered after signing.
    #[error("writ signature is invalid (forged or tampered): {0}")]
    Tampered(String),

    /// Validly shaped, but issued by another issuer key than the one we trust.
    #[error(
        "writ was issued by key {token_key_id}, but the trusted issuer key is {trusted_key_id}"
    )]
    WrongAnchor {
        token_key_id: String,
        trusted_key_id: String,
    },

    #[error("writ expired: block {block} expired at {expires_at} (now {now})")]
    Expired {
        block: usize,
        expires_at: String,
        now: String,
    },

    #[error("writ is not yet valid: block {block} starts at {not_before} (now {now})")]
    NotYetValid {
        block: usize,
        not_before: String,
        now: String,
    },

    /// A correctly signed block whose content is not a valid writ spec.
    #[error("writ block {block} is invalid: {reason}")]
    BadBlock { block: usize, reason: String },

    /// An attenuation that would grant more than its parent.
    #[error("attenuation would widen the writ at `{field}`: {detail}")]
    Widening { field: String, detail: String },

    /// The biscuit's own Datalog checks refused the token.
    #[error("writ refused by its embedded checks: {0}")]
    Rejected(String),

    /// Signing or building the token failed (should not happen with valid input).
    #[error("cannot build the writ token: {0}")]
    Build(String),
}

impl WritError {
    pub(crate) fn spec(field: impl Into<String>, reason: impl Into<String>) -> Self {
        WritError::Spec {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn widening(field: impl Into<String>, detail: impl Into<String>) -> Self {
        WritError::Widening {
            field: field.into(),
            detail: detail.into(),
        }
    }
}
