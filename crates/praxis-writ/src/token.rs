//! Issuing, verifying, attenuating and printing writ tokens (biscuit, Ed25519).
//!
//! Every block carries its spec as `writ_spec("<compact JSON>")` and time checks that
//! biscuit enforces itself; the authority block also names the issuer key as
//! `issuer_key("<hex>")`, so a token from another issuer can be told from a tampered one.

use crate::error::WritError;
use crate::eval::Rules;
use crate::kept::Kept;
use crate::keys::{IssuerKey, TrustAnchor, key_id};
use crate::narrow;
use crate::spec::{WritSpec, format_millis, millis};
use biscuit_auth::builder::{Term, date, fact, string};
use biscuit_auth::error::{Format, Token};
use biscuit_auth::{
    AuthorizerBuilder, AuthorizerLimits, Biscuit, BlockBuilder, PublicKey, UnverifiedBiscuit,
};
use praxis_core::{Authority, Authorization, AuthzRequest, Millis, Spent};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SPEC_FACT: &str = "writ_spec";
const ISSUER_FACT: &str = "issuer_key";

/// Signs `spec` (with `expires_in` resolved against `now`) and returns the base64 token.
pub fn issue(spec: &WritSpec, key: &IssuerKey, now: SystemTime) -> Result<String, WritError> {
    let resolved = spec.resolved(now)?;
    let block = spec_block(&resolved)?;
    let builder = Biscuit::builder()
        .merge(block)
        .fact(fact(ISSUER_FACT, &[string(&key.public_hex())]))
        .map_err(build)?;
    builder
        .build(key.pair())
        .and_then(|b| b.to_base64())
        .map_err(build)
}

/// Verifies the token's signature chain against `anchor`, parses every block and checks the
/// validity window at `now`.
///
/// What does not depend on `now` (the signatures, the blocks' specs, the issuer and tenant
/// checks) is the same for the same token text and anchor, so it is worked out once per
/// process ([`signed`]); both time checks run on every call.
pub fn verify(
    token: &str,
    anchor: &TrustAnchor,
    now: SystemTime,
) -> Result<VerifiedWrit, WritError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(WritError::Malformed("the token is empty".into()));
    }
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let signed = signed(token, digest, anchor)?;
    let rules = Rules::new(signed.specs.clone())?;
    rules.check_time(millis(now))?;

    // Biscuit enforces the time checks embedded in the blocks too: a second, independent
    // implementation of the same window.
    // Biscuit's default time limit (1 ms) fails valid writs on a loaded host; our blocks are
    // one fact and one check each, so a generous bound only caps pathological tokens (whose
    // fact and iteration counts keep the default limits).
    let limits = AuthorizerLimits {
        max_time: Duration::from_secs(1),
        ..AuthorizerLimits::default()
    };
    let mut authorizer = AuthorizerBuilder::new()
        .set_limits(limits.clone())
        .fact(fact("time", &[date(&now)]))
        .and_then(|a| a.policy("allow if true"))
        .and_then(|a| a.build(&signed.biscuit))
        .map_err(|e| WritError::Rejected(e.to_string()))?;
    authorizer
        .authorize_with_limits(limits)
        .map_err(|e| WritError::Rejected(e.to_string()))?;

    Ok(VerifiedWrit {
        id: hex::encode(digest),
        issuer_hex: anchor.public_hex(),
        revocation_ids: signed.revocation_ids.clone(),
        specs: signed.specs.clone(),
        rules,
    })
}

/// What a token's signatures and blocks say, checked against an anchor: the same for the
/// same token text and anchor, whenever it is asked.
struct Signed {
    biscuit: Biscuit,
    specs: Vec<WritSpec>,
    revocation_ids: Vec<String>,
}

/// How many distinct (token, anchor) pairs a process keeps checked.
const SIGNED_CACHE_MAX: usize = 256;

/// The token's signature chain verified against `anchor`, every block parsed, the issuer
/// and tenant checked. A pair that passed is kept (keyed by the SHA-256 of the token text
/// (`digest`) and the anchor's key; the first [`SIGNED_CACHE_MAX`] pairs), so each run's
/// start and a server's check of the same writ do not verify its signatures and parse its
/// blocks again. A failure is never kept.
fn signed(token: &str, digest: [u8; 32], anchor: &TrustAnchor) -> Result<Arc<Signed>, WritError> {
    static CHECKED: Kept<([u8; 32], String), Arc<Signed>> = Kept::new(SIGNED_CACHE_MAX);
    CHECKED.get_or_try((digest, anchor.public_hex()), || {
        check_signed(token, anchor)
    })
}

/// [`signed`]'s work: the signatures, every block's spec, the issuer and the tenant.
fn check_signed(token: &str, anchor: &TrustAnchor) -> Result<Arc<Signed>, WritError> {
    let biscuit =
        Biscuit::from_base64(token, anchor.public_key()).map_err(|e| classify(token, anchor, e))?;
    let mut specs = Vec::with_capacity(biscuit.block_count());
    for index in 0..biscuit.block_count() {
        let source = biscuit
            .print_block_source(index)
            .map_err(|e| WritError::Malformed(format!("block {index}: {e}")))?;
        specs.push(spec_of_block(index, &source)?);
    }
    let issuer_hex = match biscuit.print_block_source(0) {
        Ok(source) => string_fact(&source, ISSUER_FACT),
        Err(_) => None,
    };
    if issuer_hex.as_deref() != Some(anchor.public_hex().as_str()) {
        return Err(WritError::BadBlock {
            block: 0,
            reason: format!(
                "it does not name the issuer key {} that signed it",
                anchor.key_id()
            ),
        });
    }
    let tenant = &specs[0].tenant;
    for (index, spec) in specs.iter().enumerate() {
        if spec.tenant != *tenant {
            return Err(WritError::BadBlock {
                block: index,
                reason: format!(
                    "its tenant `{}` differs from the writ's tenant `{tenant}`",
                    spec.tenant
                ),
            });
        }
    }
    let revocation_ids = biscuit
        .revocation_identifiers()
        .iter()
        .map(hex::encode)
        .collect();
    Ok(Arc::new(Signed {
        biscuit,
        specs,
        revocation_ids,
    }))
}

/// Verifies `token`, checks that `child` grants nothing the writ does not (see `narrow`), and
/// returns the token with `child` appended as a new block. A child without an expiry
/// inherits the writ's.
pub fn attenuate(
    token: &str,
    anchor: &TrustAnchor,
    child: &WritSpec,
    now: SystemTime,
) -> Result<String, WritError> {
    let parent = verify(token, anchor, now)?;
    let mut child = child.clone();
    if child.expires_in.is_none() && child.expires_at.is_none() {
        child.expires_at = Some(format_millis(parent.rules.expires_at()));
    }
    let child = child.resolved(now)?;
    for (index, spec) in parent.specs.iter().enumerate() {
        narrow::check(spec, index, &child)?;
    }
    let biscuit = Biscuit::from_base64(token.trim(), anchor.public_key())
        .map_err(|e| classify(token, anchor, e))?;
    biscuit
        .append(spec_block(&child)?)
        .and_then(|b| b.to_base64())
        .map_err(build)
}

/// The blocks of a token printed back as TOML, without verifying the signature:
///
/// ```text
/// # writ <sha256 of the token> (signature NOT verified), issuer key <key id>
/// # block 0 (issued)
/// subject = "..."
/// ...
///
/// # block 1 (attenuation)
/// ...
/// ```
pub fn inspect(token: &str) -> Result<String, WritError> {
    let token = token.trim();
    let unverified = UnverifiedBiscuit::from_base64(token).map_err(malformed)?;
    let mut out = String::new();
    let issuer = unverified
        .print_block_source(0)
        .ok()
        .and_then(|s| string_fact(&s, ISSUER_FACT))
        .map(|hex| key_id(&hex))
        .unwrap_or_else(|| "unknown".into());
    out.push_str(&format!(
        "# writ {} (signature NOT verified), issuer key {issuer}\n",
        hex::encode(Sha256::digest(token.as_bytes()))
    ));
    for index in 0..unverified.block_count() {
        let source = unverified
            .print_block_source(index)
            .map_err(|e| WritError::Malformed(format!("block {index}: {e}")))?;
        let spec = spec_of_block(index, &source)?;
        let text = toml::to_string(&spec).map_err(|e| WritError::BadBlock {
            block: index,
            reason: format!("cannot print as TOML: {e}"),
        })?;
        let kind = if index == 0 { "issued" } else { "attenuation" };
        if index > 0 {
            out.push('\n');
        }
        out.push_str(&format!("# block {index} ({kind})\n{text}"));
    }
    Ok(out)
}

/// A writ whose signature chain, blocks and validity window were checked. It is the
/// `Authority` a run consults.
#[derive(Clone, Debug)]
pub struct VerifiedWrit {
    id: String,
    issuer_hex: String,
    revocation_ids: Vec<String>,
    specs: Vec<WritSpec>,
    rules: Rules,
}

impl VerifiedWrit {
    /// Lowercase hex SHA-256 of the token text (each attenuation has its own id).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The subject of the newest block: whoever holds this (possibly delegated) writ.
    pub fn subject(&self) -> &str {
        self.specs.last().map(|s| s.subject.as_str()).unwrap_or("")
    }

    pub fn tenant(&self) -> &str {
        &self.specs[0].tenant
    }

    /// Every block's spec, block 0 (issued) first, with absolute times.
    pub fn blocks(&self) -> &[WritSpec] {
        &self.specs
    }

    /// The earliest expiry over all blocks.
    pub fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.rules.expires_at())
    }

    pub fn issuer_public_hex(&self) -> &str {
        &self.issuer_hex
    }

    /// Biscuit revocation identifiers (hex), one per block.
    pub fn revocation_ids(&self) -> &[String] {
        &self.revocation_ids
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// `{id, subject, tenant, issuer, expires_at, revocation_ids, blocks}`.
    pub fn describe(&self) -> Value {
        json!({
            "id": self.id,
            "subject": self.subject(),
            "tenant": self.tenant(),
            "issuer": self.issuer_hex,
            "expires_at": format_millis(self.rules.expires_at()),
            "revocation_ids": self.revocation_ids,
            "blocks": self.specs,
        })
    }
}

impl Authority for VerifiedWrit {
    fn authorize(&self, request: &AuthzRequest<'_>) -> Authorization {
        self.rules.authorize(request)
    }

    fn before_model_call(&self, now: Millis, spent: &Spent) -> Authorization {
        self.rules.before_model_call(now, spent)
    }

    fn describe(&self) -> Value {
        VerifiedWrit::describe(self)
    }

    fn approval_timeout_ms(&self) -> Option<u64> {
        self.rules.approval_timeout_ms()
    }

    fn commands_write_git(&self, tools: &[String]) -> bool {
        self.rules.commands_write_git(tools)
    }
}

/// The Datalog of one block: its spec and the biscuit time checks for its window.
fn spec_block(spec: &WritSpec) -> Result<BlockBuilder, WritError> {
    let json = serde_json::to_string(spec).map_err(|e| WritError::Build(e.to_string()))?;
    let (not_before, expires_at) = spec.window()?;
    let at = |ms: u64| -> Term { date(&(UNIX_EPOCH + Duration::from_millis(ms))) };
    let mut block = BlockBuilder::new()
        .fact(fact(SPEC_FACT, &[string(&json)]))
        .map_err(build)?;
    // Biscuit dates have second precision: round the expiry down and the start up, so
    // biscuit is never more lenient than our own check.
    let params = HashMap::from([("exp".to_string(), at(expires_at / 1000 * 1000))]);
    block = block
        .code_with_params("check if time($t), $t <= {exp}", params, HashMap::new())
        .map_err(build)?;
    if let Some(nb) = not_before {
        let params = HashMap::from([("nb".to_string(), at(nb.div_ceil(1000) * 1000))]);
        block = block
            .code_with_params("check if time($t), $t >= {nb}", params, HashMap::new())
            .map_err(build)?;
    }
    Ok(block)
}

/// The spec of a block, from its printed Datalog. Strings are printed unescaped, so the
/// fact is found as a whole line: compact JSON never contains a raw newline.
fn spec_of_block(index: usize, source: &str) -> Result<WritSpec, WritError> {
    let json = string_fact(source, SPEC_FACT).ok_or_else(|| WritError::BadBlock {
        block: index,
        reason: format!("it carries no `{SPEC_FACT}` fact"),
    })?;
    let spec: WritSpec = serde_json::from_str(&json).map_err(|e| WritError::BadBlock {
        block: index,
        reason: format!("its spec does not parse: {e}"),
    })?;
    spec.validate().map_err(|e| WritError::BadBlock {
        block: index,
        reason: e.to_string(),
    })?;
    Ok(spec)
}

fn string_fact(source: &str, name: &str) -> Option<String> {
    let prefix = format!("{name}(\"");
    let mut found = source.lines().filter_map(|line| {
        line.strip_suffix(';')
            .unwrap_or(line)
            .strip_prefix(&prefix)?
            .strip_suffix("\")")
            .map(str::to_string)
    });
    let first = found.next()?;
    // Two spec facts in one block would be ambiguous: treat as missing.
    found.next().is_none().then_some(first)
}

/// Turns a biscuit parse/verify failure into the matching refusal.
fn classify(token: &str, anchor: &TrustAnchor, e: Token) -> WritError {
    let format = match e {
        Token::Format(f) => f,
        Token::Base64(b) => return WritError::Malformed(format!("not valid base64: {b}")),
        other => return WritError::Malformed(other.to_string()),
    };
    let signature_problem = matches!(
        format,
        Format::Signature(_)
            | Format::SealedSignature
            | Format::InvalidSignatureSize(_)
            | Format::SignatureDeserializationError(_)
            | Format::BlockSignatureDeserializationError(_)
            | Format::InvalidKey(_)
            | Format::InvalidKeySize(_)
            | Format::EmptyKeys
            | Format::UnknownPublicKey
    );
    if !signature_problem {
        return WritError::Malformed(describe_format(&format));
    }
    // Another issuer: the token names a key that is not ours AND its signatures hold for
    // that key. Anything else that fails the signature was forged or altered.
    if let Some(claimed) = claimed_issuer(token)
        && claimed.to_bytes_hex() != anchor.public_hex()
        && Biscuit::from_base64(token, claimed).is_ok()
    {
        return WritError::WrongAnchor {
            token_key_id: key_id(&claimed.to_bytes_hex()),
            trusted_key_id: anchor.key_id(),
        };
    }
    WritError::Tampered(describe_format(&format))
}

fn claimed_issuer(token: &str) -> Option<PublicKey> {
    let unverified = UnverifiedBiscuit::from_base64(token).ok()?;
    let hex = string_fact(&unverified.print_block_source(0).ok()?, ISSUER_FACT)?;
    PublicKey::from_bytes_hex(&hex, biscuit_auth::Algorithm::Ed25519).ok()
}

fn describe_format(f: &Format) -> String {
    match f {
        Format::DeserializationError(s)
        | Format::BlockDeserializationError(s)
        | Format::InvalidKey(s)
        | Format::SignatureDeserializationError(s)
        | Format::BlockSignatureDeserializationError(s) => format!("{f}: {s}"),
        Format::Signature(s) => format!("{f}: {s}"),
        other => other.to_string(),
    }
}

fn malformed(e: Token) -> WritError {
    match e {
        Token::Base64(b) => WritError::Malformed(format!("not valid base64: {b}")),
        Token::Format(f) => WritError::Malformed(describe_format(&f)),
        other => WritError::Malformed(other.to_string()),
    }
}

fn build(e: Token) -> WritError {
    WritError::Build(e.to_string())
}
