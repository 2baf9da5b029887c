//! `praxis ledger key` and `praxis ledger verify --export FILE --key PUB`: an exported run
//! verifies offline with only the runtime's public key; a one-byte edit or a truncation fails.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn praxis(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_praxis"))
        .args(args)
        .env("PRAXIS_HOME", home)
        .stdin(Stdio::null())
        .output()
        .expect("praxis runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn verify(home: &Path, export: &Path, key: &str) -> Output {
    praxis(
        home,
        &[
            "ledger",
            "verify",
            "--export",
            export.to_str().unwrap(),
            "--key",
            key,
        ],
    )
}

#[test]
fn an_exported_run_verifies_offline_and_edits_or_truncation_fail() {
    let home = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("README.md"), "# demo\nhello\n").unwrap();
    let out = praxis(
        home.path(),
        &[
            "run",
            "summarize",
            "--workspace",
            ws.path().to_str().unwrap(),
            "--json",
        ],
    );
    assert!(out.status.success(), "run failed: {}", text(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let run_id = summary["run_id"].as_str().unwrap().to_string();
    let keys = home.path().join("keys");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(keys.join("runtime.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let out = praxis(home.path(), &["ledger", "export", &run_id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let export = text(&out.stdout);
    let last: Value = serde_json::from_str(export.lines().last().unwrap()).unwrap();
    assert_eq!(last["kind"], "checkpoint");

    let out = praxis(home.path(), &["ledger", "key"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let public = text(&out.stdout);
    assert_eq!(public.trim().len(), 64, "{public}");
    assert_eq!(
        public.trim(),
        std::fs::read_to_string(keys.join("runtime.pub"))
            .unwrap()
            .trim()
    );

    // Offline: a fresh directory with nothing but the export and the public key.
    let offline = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let file = offline.path().join("run.jsonl");
    let pub_file = offline.path().join("runtime.pub");
    std::fs::write(&file, &export).unwrap();
    std::fs::write(&pub_file, &public).unwrap();
    let out = verify(elsewhere.path(), &file, pub_file.to_str().unwrap());
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains(&format!("{run_id}: verified")),
        "{}",
        text(&out.stdout)
    );
    // The key as hex on the command line works too.
    assert!(
        verify(elsewhere.path(), &file, public.trim())
            .status
            .success()
    );

    // One byte changed inside a payload string: the task text in run_started.
    let needle = "\"task\":\"summarize\"";
    assert!(export.contains(needle));
    let edited = export.replacen(needle, "\"task\":\"summarizf\"", 1);
    assert_eq!(edited.len(), export.len());
    std::fs::write(&file, &edited).unwrap();
    let out = verify(elsewhere.path(), &file, pub_file.to_str().unwrap());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("FAILED at seq 1"),
        "{}",
        text(&out.stdout)
    );

    // The last line (the final checkpoint) cut off.
    let mut lines: Vec<&str> = export.lines().collect();
    lines.pop();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = verify(elsewhere.path(), &file, pub_file.to_str().unwrap());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("not covered by a signed checkpoint"),
        "{}",
        text(&out.stdout)
    );

    // Another runtime's key does not verify this export.
    std::fs::write(&file, &export).unwrap();
    let other = tempfile::tempdir().unwrap();
    let other_key = text(&praxis(other.path(), &["ledger", "key"]).stdout);
    let out = verify(elsewhere.path(), &file, other_key.trim());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
}

#[test]
fn export_conflicts_with_a_run_and_requires_a_key() {
    let home = tempfile::tempdir().unwrap();
    let out = praxis(home.path(), &["ledger", "verify", "--export", "f.jsonl"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--key"), "{}", text(&out.stderr));
    let out = praxis(
        home.path(),
        &[
            "ledger", "verify", "abc", "--export", "f.jsonl", "--key", "k",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot be used with"),
        "{}",
        text(&out.stderr)
    );
    let out = praxis(
        home.path(),
        &["ledger", "verify", "--export", "f.jsonl", "--key", "nothex"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--key nothex"),
        "{}",
        text(&out.stderr)
    );
}
