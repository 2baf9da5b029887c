//! Shared helpers for the writ tests.
#![allow(dead_code)]

use praxis_core::{AccessMode, Authorization, AuthzRequest, Effect, Resource, Spent, Verdict};
use praxis_writ::{Rules, VerifiedWrit, WritSpec};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A fixed "now" (2027-01-15T08:00:00Z) so tests never depend on the clock.
pub const NOW_SECS: u64 = 1_800_000_000;

pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

pub fn at(offset_secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs((NOW_SECS as i64 + offset_secs) as u64)
}

pub fn now_ms() -> u64 {
    NOW_SECS * 1000
}

pub fn spec(toml: &str) -> WritSpec {
    WritSpec::from_toml_str(toml).unwrap_or_else(|e| panic!("test spec does not parse: {e}"))
}

pub fn read(path: &str) -> Resource {
    Resource::Path {
        path: path.into(),
        mode: AccessMode::Read,
    }
}

pub fn write(path: &str) -> Resource {
    Resource::Path {
        path: path.into(),
        mode: AccessMode::Write,
    }
}

pub fn cmd(line: &str) -> Resource {
    Resource::Command {
        command: line.into(),
    }
}

pub fn host(h: &str) -> Resource {
    Resource::Host { host: h.into() }
}

pub fn ask(
    rules: &Rules,
    tool: &str,
    effect: Effect,
    resources: &[Resource],
    spent: &Spent,
) -> Authorization {
    ask_at(rules, tool, effect, resources, spent, now_ms())
}

pub fn ask_at(
    rules: &Rules,
    tool: &str,
    effect: Effect,
    resources: &[Resource],
    spent: &Spent,
    now: u64,
) -> Authorization {
    let args = serde_json::json!({});
    rules.authorize(&AuthzRequest {
        tool,
        arguments: &args,
        effect,
        resources,
        now,
        spent,
    })
}

pub fn authorize(
    writ: &VerifiedWrit,
    tool: &str,
    effect: Effect,
    resources: &[Resource],
) -> Authorization {
    ask(writ.rules(), tool, effect, resources, &Spent::default())
}

pub fn is_allow(a: &Authorization) -> bool {
    matches!(a, Authorization::Verdict(Verdict::Allow { .. }))
}

/// The rule an answer cites, with "exhausted:" before budget rules.
pub fn rule_of(a: &Authorization) -> String {
    match a {
        Authorization::Verdict(v) => format!("{}:{}", v.kind(), v.rule()),
        Authorization::Exhausted { rule, .. } => format!("exhausted:{rule}"),
    }
}

// Biscuit tokens are URL-safe base64 with padding; the tests decode and re-encode them to
// tamper with the bytes.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

pub fn b64_decode(text: &str) -> Vec<u8> {
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c).expect("base64 char") as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    out
}

pub fn b64_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
