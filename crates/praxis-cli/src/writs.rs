//! `praxis writ …` and the writ a run acts under: parse and present; the work is in praxis-writ.

use anyhow::{Context, Result};
use praxis_runtime::DataHome;
use praxis_writ::{IssuerKey, TrustAnchor, WritSpec};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

pub fn keys_dir(home: &DataHome) -> PathBuf {
    home.keys_dir()
}

/// A token given on the command line: a file holding it, or the token text itself
/// (the same rule as `PRAXIS_WRIT` in `praxis job`).
pub fn read_token(arg: &str) -> Result<String> {
    praxis_runtime::job::config::token_from_arg("writ", arg).map_err(|e| anyhow::anyhow!(e.problem))
}

/// The trust anchor: `$PRAXIS_TRUST_ANCHOR` (a public key in hex, or a file holding one),
/// else the local issuer's public key.
pub fn anchor(home: &DataHome) -> Result<TrustAnchor> {
    Ok(home.trust_anchor(&|k| std::env::var(k).ok())?)
}

pub fn keygen(home: &DataHome, force: bool) -> Result<ExitCode> {
    let dir = keys_dir(home);
    let key = home.generate_issuer_key(force)?;
    println!("{}", key.public_hex());
    eprintln!(
        "praxis: issuer key written to {} (issuer.key is private, mode 0600; issuer.pub is the trust anchor)",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn issue(home: &DataHome, spec: &Path) -> Result<ExitCode> {
    let spec =
        WritSpec::from_path(spec).with_context(|| format!("writ spec {}", spec.display()))?;
    let key = IssuerKey::load(&keys_dir(home))
        .with_context(|| "no issuer key (run `praxis writ keygen`)")?;
    println!("{}", praxis_writ::issue(&spec, &key, SystemTime::now())?);
    Ok(ExitCode::SUCCESS)
}

pub fn inspect(token: &str) -> Result<ExitCode> {
    print!("{}", praxis_writ::inspect(&read_token(token)?)?);
    Ok(ExitCode::SUCCESS)
}

pub fn verify(home: &DataHome, token: &str) -> Result<ExitCode> {
    match praxis_writ::verify(&read_token(token)?, &anchor(home)?, SystemTime::now()) {
        Ok(writ) => {
            println!(
                "valid writ {} for {} (tenant {})",
                writ.id(),
                writ.subject(),
                writ.tenant()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            println!("invalid writ: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub fn attenuate(home: &DataHome, token: &str, child: &Path) -> Result<ExitCode> {
    let child = WritSpec::from_path(child)
        .with_context(|| format!("child writ spec {}", child.display()))?;
    let token = praxis_writ::attenuate(
        &read_token(token)?,
        &anchor(home)?,
        &child,
        SystemTime::now(),
    )?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

/// The writ a run acts under: `--writ FILE` (checked again by the runtime against the
/// trust anchor), or a development writ issued with the local key (said on stderr).
pub fn for_run(home: &DataHome, writ: Option<&Path>) -> Result<String> {
    if let Some(path) = writ {
        return read_token(&path.display().to_string());
    }
    let (token, generated) = home.development_writ()?;
    if generated {
        eprintln!(
            "praxis: generated a development signing key in {} (for production, issue writs with a key you manage)",
            home.keys_dir().display()
        );
    }
    eprintln!(
        "praxis: no --writ given: running under a development writ issued with the local key \
         (workspace read-write, exec allowed, network denied, modest budgets)"
    );
    Ok(token)
}

/// The anchor a run's writ must chain to: the configured one for `--writ`, the local key for
/// the development writ.
pub fn anchor_for_run(home: &DataHome, explicit_writ: bool) -> Result<TrustAnchor> {
    if explicit_writ {
        anchor(home)
    } else {
        Ok(home.local_anchor()?)
    }
}
