//! A user without privilege gets working commands in the default (worker) fabric: the
//! worker Landlocks itself, and its commands must still be able to map their ids in their
//! own user namespace. As root this test drops to `nobody` with `setpriv`.

use serde_json::json;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

const NOBODY: u32 = 65534;

fn open_to_all(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
}

#[test]
fn commands_run_in_the_worker_fabric_for_a_user_without_privilege() {
    // /proc/self belongs to this process's effective user.
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    let dir = tempfile::tempdir().unwrap();
    open_to_all(dir.path());
    // The binary is linked (or, across file systems, copied) where that user can execute it:
    // the build dir may be private.
    let bin = dir.path().join("praxis");
    std::fs::hard_link(env!("CARGO_BIN_EXE_praxis"), &bin)
        .or_else(|_| std::fs::copy(env!("CARGO_BIN_EXE_praxis"), &bin).map(drop))
        .unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (home, ws) = (dir.path().join("home"), dir.path().join("ws"));
    for d in [&home, &ws] {
        std::fs::create_dir(d).unwrap();
        open_to_all(d);
    }
    std::fs::write(ws.join("a.txt"), "unprivileged hello\n").unwrap();
    let script = dir.path().join("s.json");
    std::fs::write(
        &script,
        json!({"turns": [
            {"tool_calls": [{"id": "1", "name": "shell", "arguments": {"command": "cat a.txt && id -u"}}]},
            {"content": "done"}
        ]})
        .to_string(),
    )
    .unwrap();
    for p in [&script, &ws.join("a.txt")] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    let mut cmd = if root {
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "--",
        ])
        .arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    let out = cmd
        .args(["run", "--json", "--provider", "scripted", "--script"])
        .arg(&script)
        .args(["-w"])
        .arg(&ws)
        .arg("read the file")
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &home)
        .env("PRAXIS_HOME", home.join("data"))
        .env("PRAXIS_FABRIC", "worker")
        .stdin(Stdio::null())
        .output()
        .expect("praxis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("{e}: {stdout}\nstderr: {stderr}");
    });
    assert_eq!(report["status"], "completed", "{report}\n{stderr}");
    // The shell call ran (its output is in the ledger), not an error about confinement.
    let run_id = report["run_id"].as_str().expect("run id").to_string();
    let export = Command::new(&bin)
        .args(["ledger", "export", &run_id])
        .env("PRAXIS_HOME", home.join("data"))
        .output()
        .unwrap();
    let export = String::from_utf8_lossy(&export.stdout);
    assert!(export.contains("unprivileged hello"), "{export}\n{stderr}");
    assert!(!export.contains("confining it"), "{export}");
    // The record says whether the worker confined itself: it does exactly when a spawner
    // starts the commands (then they get their PID namespace from it).
    let started: serde_json::Value =
        serde_json::from_str(export.lines().next().expect("run_started")).unwrap();
    let layers = started["payload"]["environment"]["sandbox"]["layers"]
        .as_array()
        .expect("layers recorded")
        .clone();
    let active = |name: &str| {
        layers
            .iter()
            .find(|l| l["name"] == name)
            .unwrap_or_else(|| panic!("no {name} layer: {layers:?}"))["active"]
            .as_bool()
            .unwrap()
    };
    assert_eq!(
        active("worker_landlock"),
        active("pid_namespace"),
        "{layers:?}"
    );
    // CI's host offers unprivileged user namespaces: there the spawner must start for a user
    // without privilege too (it writes its own id maps before it stops being dumpable).
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        assert!(active("pid_namespace"), "{layers:?}");
    }
}
