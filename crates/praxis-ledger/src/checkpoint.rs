//! Signed checkpoints: the runtime signs the head of a run's chain with its own Ed25519 key,
//! so an exported ledger can be verified offline by someone holding only the public key.
//!
//! The hash chain alone proves an export is internally consistent, but anyone can rebuild a
//! consistent chain after editing it, or cut entries off its end. A `checkpoint` entry binds
//! `(run_id, head_seq, head_hash)` to the runtime key; requiring each run to END in a valid
//! checkpoint makes both edits and truncation detectable.
//!
//! Everything here is pure except [`CheckpointKey::load`] / [`CheckpointKey::save`].

use crate::{Entry, VerifyReport, verify_entries};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use praxis_core::Record;
use praxis_core::record::Checkpoint;
use serde::Serialize;
use serde_json::Value;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Kind of the entry the driver appends to attest the chain head.
pub const CHECKPOINT_KIND: &str = praxis_core::record::kinds::CHECKPOINT;
pub const PRIVATE_KEY_FILE: &str = "runtime.key";
pub const PUBLIC_KEY_FILE: &str = "runtime.pub";
/// Domain separation: these signatures can never be mistaken for any other signed message.
const DOMAIN: &str = "praxis-checkpoint-v1";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{input}: {reason}")]
    Key { input: String, reason: String },
    #[error("{} already exists; refusing to replace a signing key", path.display())]
    KeyExists { path: PathBuf },
    #[error("cannot generate a key: the OS random source failed: {0}")]
    Random(String),
    #[error("export line {line}: {reason}")]
    ExportLine { line: usize, reason: String },
}

/// A short, stable name for a public key in messages: its first 16 hex digits.
pub fn key_id(public_hex: &str) -> String {
    public_hex.chars().take(16).collect()
}

/// The runtime's checkpoint signing key (distinct from the writ issuer key: it attests what
/// was recorded, not what was authorised).
pub struct CheckpointKey {
    key: SigningKey,
}

impl std::fmt::Debug for CheckpointKey {
    // Never print the private half.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointKey")
            .field("public", &self.public_hex())
            .finish()
    }
}

impl CheckpointKey {
    pub fn generate() -> Result<Self, CheckpointError> {
        let mut secret = [0u8; 32];
        getrandom::getrandom(&mut secret).map_err(|e| CheckpointError::Random(e.to_string()))?;
        Ok(CheckpointKey {
            key: SigningKey::from_bytes(&secret),
        })
    }

    /// A private key as 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, CheckpointError> {
        let bytes = decode32(text.trim()).map_err(|reason| CheckpointError::Key {
            input: "the checkpoint private key".into(),
            reason,
        })?;
        Ok(CheckpointKey {
            key: SigningKey::from_bytes(&bytes),
        })
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.key.to_bytes())
    }

    pub fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    /// Writes `runtime.key` (private hex, mode 0600) and `runtime.pub` (public hex) into
    /// `dir`, creating it. Refuses to replace an existing `runtime.key`.
    pub fn save(&self, dir: &Path) -> Result<(), CheckpointError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CheckpointError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        let private = dir.join(PRIVATE_KEY_FILE);
        let public = dir.join(PUBLIC_KEY_FILE);
        let mut options = fs::OpenOptions::new();
        // create_new: two processes generating at once cannot overwrite each other's key.
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&private).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                CheckpointError::KeyExists {
                    path: private.clone(),
                }
            } else {
                CheckpointError::Io {
                    path: private.clone(),
                    source,
                }
            }
        })?;
        file.write_all(format!("{}\n", self.to_hex()).as_bytes())
            .map_err(io(&private))?;
        file.sync_all().map_err(io(&private))?;
        fs::write(&public, format!("{}\n", self.public_hex())).map_err(io(&public))?;
        Ok(())
    }

    /// Reads `runtime.key` from `dir`; if `runtime.pub` is there too it must match.
    pub fn load(dir: &Path) -> Result<Self, CheckpointError> {
        let private = dir.join(PRIVATE_KEY_FILE);
        let text = fs::read_to_string(&private).map_err(|source| CheckpointError::Io {
            path: private.clone(),
            source,
        })?;
        let key = Self::from_hex(&text).map_err(|e| match e {
            CheckpointError::Key { reason, .. } => CheckpointError::Key {
                input: private.display().to_string(),
                reason,
            },
            other => other,
        })?;
        let public = dir.join(PUBLIC_KEY_FILE);
        if let Ok(text) = fs::read_to_string(&public)
            && text.trim() != key.public_hex()
        {
            return Err(CheckpointError::Key {
                input: public.display().to_string(),
                reason: format!(
                    "public key {} does not belong to the private key in {} (key {})",
                    key_id(text.trim()),
                    private.display(),
                    key_id(&key.public_hex())
                ),
            });
        }
        Ok(key)
    }

    fn sign(&self, run_id: &str, head_seq: u64, head_hash: &str) -> String {
        let message = signed_message(run_id, head_seq, head_hash);
        hex::encode(self.key.sign(message.as_bytes()).to_bytes())
    }
}

fn decode32(text: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(text).map_err(|e| format!("`{text}` is not hex: {e}"))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("expected 32 bytes (64 hex digits), found {}", bytes.len()))
}

/// Parses an Ed25519 public key in hex (surrounding whitespace ignored).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, CheckpointError> {
    let invalid = |reason: String| CheckpointError::Key {
        input: "the checkpoint public key".into(),
        reason,
    };
    let bytes = decode32(text.trim()).map_err(invalid)?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| invalid(format!("not an Ed25519 public key: {e}")))
}

fn signed_message(run_id: &str, head_seq: u64, head_hash: &str) -> String {
    format!("{DOMAIN}\n{run_id}\n{head_seq}\n{head_hash}")
}

/// The payload of a `checkpoint` entry attesting that `run_id`'s chain has head
/// `(head_seq, head_hash)`.
pub fn checkpoint_payload(
    key: &CheckpointKey,
    run_id: &str,
    head_seq: u64,
    head_hash: &str,
) -> Value {
    Record::Checkpoint(Checkpoint {
        head_seq,
        head_hash: head_hash.to_string(),
        key: key.public_hex(),
        signature: key.sign(run_id, head_seq, head_hash),
    })
    .to_payload()
}

/// Parses a JSON-lines export (the format of `praxis ledger export`); blank lines are skipped.
pub fn parse_export(text: &str) -> Result<Vec<Entry>, CheckpointError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|e| CheckpointError::ExportLine {
                line: index + 1,
                reason: format!("not a ledger entry: {e}"),
            })
        })
        .collect()
}

/// The verdict on one run of an export.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunVerdict {
    pub run_id: String,
    pub entries: u64,
    /// Valid checkpoints seen (up to the first problem).
    pub checkpoints: u64,
    pub ok: bool,
    /// The first problem, naming the bad seq.
    pub problem: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExportReport {
    pub runs: Vec<RunVerdict>,
}

impl ExportReport {
    /// True when the export holds at least one run and every run verifies.
    pub fn ok(&self) -> bool {
        !self.runs.is_empty() && self.runs.iter().all(|r| r.ok)
    }
}

/// Verifies an export offline: each run's hash chain, every checkpoint's head and signature
/// under `public_hex`, and that each run ends with a valid checkpoint.
pub fn verify_export(entries: &[Entry], public_hex: &str) -> ExportReport {
    let key = parse_public_key(public_hex);
    let public_hex = public_hex.trim().to_ascii_lowercase();
    // Group by run, keeping the order runs first appear in and entries' order within each.
    let mut runs: Vec<(&str, Vec<Entry>)> = Vec::new();
    for entry in entries {
        match runs.iter_mut().find(|(id, _)| *id == entry.run_id) {
            Some((_, list)) => list.push(entry.clone()),
            None => runs.push((&entry.run_id, vec![entry.clone()])),
        }
    }
    let runs = runs
        .into_iter()
        .map(|(run_id, list)| {
            let mut verdict = RunVerdict {
                run_id: run_id.to_string(),
                entries: list.len() as u64,
                checkpoints: 0,
                ok: false,
                problem: None,
            };
            let problem = match &key {
                Ok(key) => verify_run(&list, key, &public_hex, &mut verdict.checkpoints),
                Err(e) => Some(e.to_string()),
            };
            verdict.ok = problem.is_none();
            verdict.problem = problem;
            verdict
        })
        .collect();
    ExportReport { runs }
}

/// The first problem with one run's entries, if any.
fn verify_run(
    entries: &[Entry],
    key: &VerifyingKey,
    public_hex: &str,
    checkpoints: &mut u64,
) -> Option<String> {
    if let VerifyReport::Broken { seq, problem } = verify_entries(entries) {
        return Some(format!("seq {seq}: {problem}"));
    }
    let mut last_checkpoint = None;
    for (index, entry) in entries.iter().enumerate() {
        if entry.kind != CHECKPOINT_KIND {
            continue;
        }
        if let Err(problem) = check_checkpoint(entries, index, key, public_hex) {
            return Some(format!("seq {}: checkpoint {problem}", entry.seq));
        }
        *checkpoints += 1;
        last_checkpoint = Some(index);
    }
    let uncovered = match last_checkpoint {
        Some(index) => entries.len() - index - 1,
        None => entries.len(),
    };
    if uncovered > 0 {
        let first = entries[entries.len() - uncovered].seq;
        let run_id = &entries[0].run_id;
        return Some(format!(
            "seq {first}: the last {uncovered} entries of run {run_id} are not covered by a \
             signed checkpoint (the export was truncated, or the run did not finish)"
        ));
    }
    None
}

fn check_checkpoint(
    entries: &[Entry],
    index: usize,
    key: &VerifyingKey,
    public_hex: &str,
) -> Result<(), String> {
    let entry = &entries[index];
    let Some(head) = index.checked_sub(1).map(|i| &entries[i]) else {
        return Err("is the first entry: it attests nothing".into());
    };
    let Checkpoint {
        head_seq,
        head_hash,
        key: signer,
        signature,
    } = match Record::from_entry(&entry.kind, &entry.payload) {
        Ok(Record::Checkpoint(checkpoint)) => checkpoint,
        Ok(other) => return Err(format!("is a `{}` record", other.kind())),
        Err(e) => return Err(e.to_string()),
    };
    let (head_hash, signer, signature) = (head_hash.as_str(), signer.as_str(), &signature);
    if head_seq != head.seq || head_hash != head.hash {
        return Err(format!(
            "attests head seq {head_seq} hash {head_hash}, but the previous entry is seq {} hash {}",
            head.seq, head.hash
        ));
    }
    if !signer.eq_ignore_ascii_case(public_hex) {
        return Err(format!(
            "is signed by key {}, not the trusted key {}",
            key_id(signer),
            key_id(public_hex)
        ));
    }
    let bytes = hex::decode(signature).map_err(|e| format!("signature is not hex: {e}"))?;
    let signature =
        Signature::from_slice(&bytes).map_err(|e| format!("signature is malformed: {e}"))?;
    key.verify(
        signed_message(&entry.run_id, head_seq, head_hash).as_bytes(),
        &signature,
    )
    .map_err(|_| format!("signature does not verify under key {}", key_id(public_hex)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn verify_payload(payload: &Value, run_id: &str, public_hex: &str) -> bool {
        let key = parse_public_key(public_hex).unwrap();
        let sig = hex::decode(payload["signature"].as_str().unwrap()).unwrap();
        let sig = Signature::from_slice(&sig).unwrap();
        let message = signed_message(
            run_id,
            payload["head_seq"].as_u64().unwrap(),
            payload["head_hash"].as_str().unwrap(),
        );
        key.verify(message.as_bytes(), &sig).is_ok()
    }

    #[test]
    fn sign_verify_round_trip_and_hex_round_trip() {
        let key = CheckpointKey::generate().unwrap();
        let payload = checkpoint_payload(&key, "r1", 7, &"a".repeat(64));
        assert_eq!(payload["head_seq"], 7);
        assert_eq!(payload["key"], key.public_hex());
        assert!(verify_payload(&payload, "r1", &key.public_hex()));
        let again = CheckpointKey::from_hex(&format!(" {}\n", key.to_hex())).unwrap();
        assert_eq!(again.public_hex(), key.public_hex());
        // Ed25519 is deterministic: the same key signs the same head identically.
        assert_eq!(
            checkpoint_payload(&again, "r1", 7, &"a".repeat(64)),
            payload
        );
    }

    #[test]
    fn wrong_key_does_not_verify() {
        let key = CheckpointKey::generate().unwrap();
        let other = CheckpointKey::generate().unwrap();
        let payload = checkpoint_payload(&key, "r1", 3, &"b".repeat(64));
        assert!(!verify_payload(&payload, "r1", &other.public_hex()));
    }

    #[test]
    fn tampered_head_or_run_does_not_verify() {
        let key = CheckpointKey::generate().unwrap();
        let mut payload = checkpoint_payload(&key, "r1", 3, &"b".repeat(64));
        assert!(!verify_payload(&payload, "r2", &key.public_hex()));
        payload["head_seq"] = json!(4);
        assert!(!verify_payload(&payload, "r1", &key.public_hex()));
        let mut payload = checkpoint_payload(&key, "r1", 3, &"b".repeat(64));
        payload["head_hash"] = json!("c".repeat(64));
        assert!(!verify_payload(&payload, "r1", &key.public_hex()));
    }

    #[test]
    fn bad_key_text_is_refused_with_a_reason() {
        let e = CheckpointKey::from_hex("zz").unwrap_err().to_string();
        assert!(e.contains("not hex"), "{e}");
        let e = parse_public_key("abcd").unwrap_err().to_string();
        assert!(e.contains("expected 32 bytes"), "{e}");
    }

    #[test]
    fn save_then_load_and_refuse_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let key = CheckpointKey::generate().unwrap();
        key.save(dir.path()).unwrap();
        let loaded = CheckpointKey::load(dir.path()).unwrap();
        assert_eq!(loaded.public_hex(), key.public_hex());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(PRIVATE_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = CheckpointKey::generate().unwrap();
        assert!(matches!(
            other.save(dir.path()),
            Err(CheckpointError::KeyExists { .. })
        ));
        fs::write(dir.path().join(PUBLIC_KEY_FILE), other.public_hex()).unwrap();
        let e = CheckpointKey::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("does not belong"), "{e}");
    }
}
