//! `praxis fanout`: every task with every provider, one JSON line each, recorded.

use std::process::Command;

#[test]
fn fanout_runs_each_task_with_each_provider_and_records_them() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    std::fs::write(ws.join("README.md"), "# hi\n").unwrap();
    let tasks = dir.path().join("tasks.txt");
    std::fs::write(&tasks, "Summarize\n\n# a comment\nList files\n").unwrap();
    let home = dir.path().join("home");
    let out = Command::new(env!("CARGO_BIN_EXE_praxis"))
        .args(["fanout", "--tasks"])
        .arg(&tasks)
        .args([
            "--providers",
            "mock,mock",
            "--global",
            "2",
            "--per-provider",
            "1",
            "-w",
        ])
        .arg(&ws)
        .env("PRAXIS_HOME", &home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    let asked: Vec<&str> = lines.iter().map(|l| l["task"].as_str().unwrap()).collect();
    assert_eq!(
        asked,
        ["Summarize", "Summarize", "List files", "List files"]
    );
    // Each run is in the data dir's ledger and verifies.
    for line in &lines {
        assert_eq!(line["status"], "completed");
        let verify = Command::new(env!("CARGO_BIN_EXE_praxis"))
            .args(["ledger", "verify", line["run_id"].as_str().unwrap()])
            .env("PRAXIS_HOME", &home)
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "{}",
            String::from_utf8_lossy(&verify.stdout)
        );
    }
    // An empty tasks file is refused, naming the flag.
    std::fs::write(&tasks, "# nothing\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_praxis"))
        .args(["fanout", "--tasks"])
        .arg(&tasks)
        .args(["--providers", "mock"])
        .env("PRAXIS_HOME", &home)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tasks"));
}
