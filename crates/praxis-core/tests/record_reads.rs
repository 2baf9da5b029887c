//! Records are read through their types (`praxis_core::record`), never by string key: no
//! `payload["x"]` / `payload.get("x")` and no string-key reads of a `RunRow`'s recorded
//! payloads (`started[...]`, `finished[...]`, `resumed[...]`) in any crate's sources, outside
//! the record module itself. Unit-test modules are not checked (they may assert the JSON
//! shape on purpose).

use std::path::{Path, PathBuf};

/// Patterns of a record field looked up by key.
const PATTERNS: &[&str] = &[
    "payload[",
    "payload.get(",
    "payload.as_object",
    "started[",
    "finished[",
    "resumed[",
    ".started.get(",
    ".finished.get(",
    ".resumed.get(",
];

/// Files allowed to look inside payloads by key: the record module (the one place that knows
/// their shape) and the ledger's canonical-JSON and hashing code (which treats payloads as
/// opaque JSON).
const ALLOWED: &[&str] = &[
    "crates/praxis-core/src/record.rs",
    "crates/praxis-ledger/src/lib.rs",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `file:line: text` of every key read of a record field under `root/crates/*/src`.
fn offending_reads(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for krate in std::fs::read_dir(root.join("crates")).unwrap() {
        let src = krate.unwrap().path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files);
        }
    }
    let mut found = Vec::new();
    for file in files {
        let relative = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        // Unit tests: a `tests.rs` module, or a `tests/` module directory under `src`.
        if ALLOWED.contains(&relative.as_str())
            || relative.ends_with("/tests.rs")
            || relative.contains("/tests/")
        {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // A trailing unit-test module is not production code.
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
        for (n, line) in code.lines().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("//") {
                continue;
            }
            if PATTERNS.iter().any(|p| line.contains(p)) {
                found.push(format!("{relative}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn no_record_field_is_read_by_string_key() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let found = offending_reads(&root);
    assert!(
        found.is_empty(),
        "read these through praxis_core::record instead:\n{}",
        found.join("\n")
    );
}
