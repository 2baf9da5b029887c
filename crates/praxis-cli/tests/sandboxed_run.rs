//! The sandbox through whole runs: a scripted agent attempts escapes with `shell`; each
//! attempt is blocked by the operating system, recorded, and the run goes on. The same
//! actions inside the workspace succeed (so each check can fail).

use serde_json::{Value, json};
use std::process::{Command, Stdio};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn escape_attempts_in_a_run_are_blocked_recorded_and_the_run_goes_on() {
    let home = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "outside-secret").unwrap();
    std::fs::write(ws.path().join("mine.txt"), "inside-content").unwrap();
    std::os::unix::fs::symlink(outside.path(), ws.path().join("door")).unwrap();
    std::fs::create_dir_all(ws.path().join(".git/hooks")).unwrap();
    let out_dir = outside.path().display().to_string();
    let attempts = [
        ("shadow", "cat /etc/shadow".to_string()),
        ("read-out", format!("cat {out_dir}/secret.txt")),
        // The writ already refuses a redirection outside the workspace (see below), so the
        // sandbox is tested with a program that opens the path itself.
        ("write-out", format!("echo pwned | tee {out_dir}/pwned.txt")),
        ("redirect-out", format!("echo pwned > {out_dir}/pwned.txt")),
        ("symlink", "cat door/secret.txt".to_string()),
        (
            "metadata",
            "python3 -c \"import socket; socket.create_connection(('169.254.169.254', 80), 3)\""
                .to_string(),
        ),
        (
            "env",
            "echo \"secret=[$PRAXIS_TEST_PARENT_SECRET]\"".to_string(),
        ),
        (
            "git-hook",
            "printf '#!/bin/sh\\ntouch pwned\\n' | tee .git/hooks/pre-commit".to_string(),
        ),
        (
            "host-procs",
            format!("cat /proc/{}/cmdline", std::process::id()),
        ),
        ("control-read", "cat mine.txt".to_string()),
        ("control-write", "echo made > made.txt".to_string()),
    ];
    let mut turns: Vec<Value> = attempts
        .iter()
        .map(|(id, cmd)| json!({"tool_calls": [{"id": id, "name": "shell", "arguments": {"command": cmd}}]}))
        .collect();
    turns.push(json!({"content": "tried everything"}));
    let script = home.path().join("attacks.json");
    std::fs::write(&script, json!({ "turns": turns }).to_string()).unwrap();
    let max_steps = (turns.len() + 1).to_string();
    let run = Command::new(env!("CARGO_BIN_EXE_praxis"))
        .args(["run", "escape", "-w", ws.path().to_str().unwrap()])
        .args([
            "--script",
            script.to_str().unwrap(),
            "--max-steps",
            &max_steps,
            "--json",
        ])
        .env("PRAXIS_HOME", home.path())
        .env("PRAXIS_TEST_PARENT_SECRET", "hunter2")
        .env_remove("PRAXIS_FABRIC")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run.stderr));
    let summary: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(summary["final_answer"], "tried everything");
    let run_id = summary["run_id"].as_str().unwrap();
    let export = Command::new(env!("CARGO_BIN_EXE_praxis"))
        .args(["ledger", "export", run_id])
        .env("PRAXIS_HOME", home.path())
        .output()
        .unwrap();
    let entries: Vec<Value> = text(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The writ judges redirection targets as paths: this one is refused before it runs.
    let refused = entries
        .iter()
        .find(|e| e["kind"] == "proposal" && e["payload"]["call_id"] == "redirect-out")
        .unwrap()["payload"]
        .clone();
    assert_eq!(
        (refused["verdict"].as_str(), refused["rule"].as_str()),
        (Some("deny"), Some("writ.commands")),
        "{refused}"
    );

    // The run recorded which layers confined it; a host without them fails here in CI.
    let sandbox = &entries[0]["payload"]["environment"]["sandbox"];
    let active: Vec<&str> = sandbox["layers"]
        .as_array()
        .map(|layers| {
            layers
                .iter()
                .filter(|l| l["active"] == true)
                .filter_map(|l| l["name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    for layer in [
        "landlock",
        "seccomp",
        "network_namespace",
        "mount_namespace",
        "pid_namespace",
        "socket_families",
    ] {
        if !active.contains(&layer) {
            let message = format!("sandbox layer {layer} is not active on this host: {sandbox}");
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{message}");
            }
            eprintln!("skipping: {message}");
            return;
        }
    }

    let execution = |id: &str| -> Value {
        entries
            .iter()
            .find(|e| e["kind"] == "execution" && e["payload"]["call_id"] == id)
            .unwrap_or_else(|| panic!("no execution recorded for {id}"))["payload"]
            .clone()
    };
    for id in [
        "shadow",
        "read-out",
        "write-out",
        "symlink",
        "metadata",
        "git-hook",
        "host-procs",
    ] {
        let e = execution(id);
        assert_ne!(e["exit_code"], 0, "{id} was not blocked: {e}");
        let output = e["output"].as_str().unwrap_or_default();
        assert!(!output.contains("outside-secret"), "{id} leaked: {e}");
        assert!(!output.contains("root:"), "{id} leaked /etc/shadow: {e}");
    }
    assert!(!outside.path().join("pwned.txt").exists());
    assert!(!ws.path().join(".git/hooks/pre-commit").exists());
    let env = execution("env");
    assert_eq!(env["output"].as_str().unwrap().trim(), "secret=[]", "{env}");
    // Controls: the same kinds of action inside the workspace work.
    let read = execution("control-read");
    assert_eq!(read["exit_code"], 0, "{read}");
    assert!(read["output"].as_str().unwrap().contains("inside-content"));
    assert_eq!(execution("control-write")["exit_code"], 0);
    assert_eq!(
        std::fs::read_to_string(ws.path().join("made.txt")).unwrap(),
        "made\n"
    );
}

/// The host pid of the live (not zombie) process that is `inner` in the PID namespace `ns`.
fn host_pid_in(ns: &str, inner: i32) -> Option<i32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid = entry.file_name().to_string_lossy().parse::<i32>().ok()?;
            let link = std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()?;
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::trim)
                    .map(str::to_string)
            };
            let id = field("NSpid:")?
                .split_whitespace()
                .last()?
                .parse::<i32>()
                .ok()?;
            let zombie = field("State:").is_some_and(|s| s.starts_with('Z'));
            (link.to_string_lossy() == ns && id == inner && !zombie).then_some(pid)
        })
}

/// `praxis run` (with `fabric`) starts a command whose subshell would touch a marker after
/// 3 s; the runtime is killed with SIGKILL once it runs: the command must die with it and
/// the marker never appear.
fn commands_die_with_a_killed_runtime(fabric: &str) {
    let home = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    let command = "readlink /proc/self/ns/pid > ns; (sleep 3; touch marker) & \
                   echo $! > pid.tmp; mv pid.tmp pid; wait";
    let turns = json!({"turns": [
        {"tool_calls": [{"id": "late", "name": "shell", "arguments": {"command": command}}]},
        {"content": "done"},
    ]});
    let script = home.path().join("late.json");
    std::fs::write(&script, turns.to_string()).unwrap();
    let mut run = Command::new(env!("CARGO_BIN_EXE_praxis"))
        .args(["run", "late", "-w", ws.path().to_str().unwrap()])
        .args(["--script", script.to_str().unwrap(), "--fabric", fabric])
        .env("PRAXIS_HOME", home.path())
        .env_remove("PRAXIS_FABRIC")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pidfile = ws.path().join("pid");
    for _ in 0..600 {
        if pidfile.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let inner: i32 = std::fs::read_to_string(&pidfile)
        .expect("the command started")
        .trim()
        .parse()
        .unwrap();
    let ns = std::fs::read_to_string(ws.path().join("ns")).unwrap();
    let ns = ns.trim();
    assert!(host_pid_in(ns, inner).is_some(), "the subshell runs");
    run.kill().unwrap();
    run.wait().unwrap();
    // Bounded waits: the subshell gone, then well past when it would have touched the
    // marker, no marker.
    for _ in 0..200 {
        if host_pid_in(ns, inner).is_none() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(
        host_pid_in(ns, inner).is_none(),
        "{fabric}: the command outlived the runtime"
    );
    let marker = ws.path().join("marker");
    for _ in 0..80 {
        assert!(
            !marker.exists(),
            "{fabric}: the command finished after the runtime died"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn commands_die_with_a_runtime_killed_by_sigkill() {
    let host = praxis_tools::sandbox::probe();
    if !(host.sandbox_available() && host.pid_namespaces && host.mount_namespaces) {
        let message = format!("no PID namespace for commands on this host: {host:?}");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message}");
        }
        eprintln!("skipping: {message}");
        return;
    }
    commands_die_with_a_killed_runtime("in-process");
    commands_die_with_a_killed_runtime("worker");
}

/// Runs `praxis` with `PRAXIS_HOME=home`.
fn praxis(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_praxis"))
        .args(args)
        .env("PRAXIS_HOME", home)
        .env_remove("PRAXIS_FABRIC")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// One run under a writ whose `shell` grant has `paths`: a command plants a git hook.
/// Returns the hook's `execution` payload, or None when the mount namespace is missing
/// (outside CI only).
fn plant_hook_under(paths: &str) -> Option<(Value, tempfile::TempDir)> {
    let home = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(ws.path().join(".git/hooks")).unwrap();
    assert!(praxis(home.path(), &["writ", "keygen"]).status.success());
    let spec = home.path().join("writ.toml");
    std::fs::write(
        &spec,
        format!(
            "subject = \"agent\"\nexpires_in = \"1h\"\neffect_ceiling = \"exec\"\n[[tools]]\nname = \"shell\"\nallow_commands = [\"*\"]\npaths = {paths}\n"
        ),
    )
    .unwrap();
    let issued = praxis(
        home.path(),
        &["writ", "issue", "--spec", spec.to_str().unwrap()],
    );
    assert!(issued.status.success(), "{}", text(&issued.stderr));
    let writ = home.path().join("agent.writ");
    std::fs::write(&writ, &issued.stdout).unwrap();
    let turns = json!({"turns": [
        {"tool_calls": [{"id": "hook", "name": "shell", "arguments": {"command": "printf '#!/bin/sh\\ntouch pwned\\n' | tee .git/hooks/pre-commit"}}]},
        {"content": "done"}
    ]});
    let script = home.path().join("hook.json");
    std::fs::write(&script, turns.to_string()).unwrap();
    let run = praxis(
        home.path(),
        &[
            "run",
            "hook",
            "-w",
            ws.path().to_str().unwrap(),
            "--script",
            script.to_str().unwrap(),
            "--writ",
            writ.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(run.status.success(), "{}", text(&run.stderr));
    let summary: Value = serde_json::from_slice(&run.stdout).unwrap();
    let export = praxis(
        home.path(),
        &["ledger", "export", summary["run_id"].as_str().unwrap()],
    );
    let entries: Vec<Value> = text(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let sandbox = &entries[0]["payload"]["environment"]["sandbox"];
    let mounted = sandbox["layers"].as_array().is_some_and(|layers| {
        layers
            .iter()
            .any(|l| l["name"] == "mount_namespace" && l["active"] == true)
    });
    if !mounted {
        let message = format!("the mount namespace is not active on this host: {sandbox}");
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "{message}"
        );
        eprintln!("skipping: {message}");
        return None;
    }
    let execution = entries
        .iter()
        .find(|e| e["kind"] == "execution" && e["payload"]["call_id"] == "hook")
        .expect("the hook command ran")["payload"]
        .clone();
    Some((execution, ws))
}

/// Finding 8: `.git` is read-only to commands by default; a writ whose `shell` grant names
/// `.git` opens it to them, and what they write there is recorded in `files_changed`.
#[test]
fn a_writ_grants_commands_git_write_and_the_hook_is_recorded() {
    let Some((denied, ws)) = plant_hook_under("[\"**\"]") else {
        return;
    };
    assert_ne!(denied["exit_code"], 0, "the hook was planted: {denied}");
    assert!(!ws.path().join(".git/hooks/pre-commit").exists());

    let Some((granted, ws)) = plant_hook_under("[\"**\", \".git/**\"]") else {
        return;
    };
    assert_eq!(granted["exit_code"], 0, "{granted}");
    assert!(ws.path().join(".git/hooks/pre-commit").exists());
    let changed: Vec<&str> = granted["files_changed"]
        .as_array()
        .map(|c| c.iter().filter_map(|f| f["path"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        changed.contains(&".git/hooks/pre-commit"),
        "the hook is not in files_changed: {granted}"
    );
}

/// `git` with a fixed identity and no global or system config, in `dir`.
fn git(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=user", "-c", "user.email=user@example.com"])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(Stdio::null())
        .output()
        .expect("git runs (it is on every machine the tests run on)")
}

/// Plants, in `dir` (a shell script run there), a git repository in `sub` with a hook and
/// `core.fsmonitor`, one in `gd` that `wt/.git` (a file) names, and a hook and fsmonitor in
/// the existing nested repository `vendor/lib`; each writes a marker in `marks` if git runs
/// it.
fn plant_script(marks: &std::path::Path) -> String {
    let m = marks.display();
    let hook = |name: &str| {
        format!("printf '#!/bin/sh\\ntouch {m}/{name}\\n' > {name}-hook && chmod +x {name}-hook")
    };
    [
        hook("init"),
        "git init -q sub".into(),
        "cp init-hook sub/.git/hooks/pre-commit".into(),
        format!("git -C sub config core.fsmonitor 'touch {m}/init-fsmonitor; false'"),
        hook("gitfile"),
        "git init -q gd0 && mv gd0/.git gd && rmdir gd0".into(),
        "cp gitfile-hook gd/hooks/pre-commit".into(),
        format!("git -C gd config core.fsmonitor 'touch {m}/gitfile-fsmonitor; false'"),
        // (A redirection to `wt/.git` is refused by the writ: the file is copied in.)
        "mkdir -p wt && echo 'gitdir: ../gd' > gitfile && cp gitfile wt/.git".into(),
        hook("nested"),
        "cp nested-hook vendor/lib/.git/hooks/pre-commit".into(),
        format!("git -C vendor/lib config core.fsmonitor 'touch {m}/nested-fsmonitor; false'"),
        "true".into(),
    ]
    .join("; ")
}

/// The user's `git status` and `git commit` in each planted folder; returns the markers
/// that appeared (what git ran).
fn users_git_runs(ws: &std::path::Path, marks: &std::path::Path) -> Vec<String> {
    for folder in ["sub", "wt", "vendor/lib"] {
        let dir = ws.join(folder);
        let _ = git(&dir, &["status", "--short"]);
        let _ = git(
            &dir,
            &["commit", "-q", "--allow-empty", "-m", "user's commit"],
        );
    }
    let mut found: Vec<String> = std::fs::read_dir(marks)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    found
}

fn repo_with_nested(ws: &std::path::Path) {
    for dir in [ws.to_path_buf(), ws.join("vendor/lib")] {
        std::fs::create_dir_all(&dir).unwrap();
        assert!(git(&dir, &["init", "-q"]).status.success());
        std::fs::write(dir.join("file.txt"), "content\n").unwrap();
        assert!(git(&dir, &["add", "file.txt"]).status.success());
        assert!(git(&dir, &["commit", "-q", "-m", "first"]).status.success());
    }
}

/// Finding 8, the delayed escape: a command makes git repositories (`git init sub`; a `.git`
/// file naming a git directory elsewhere in the workspace) or writes a nested one, with a
/// pre-commit hook and `core.fsmonitor`. After the run, the user's own `git status` and
/// `git commit` in each folder run none of it. The same plant made outside Praxis does run
/// (so the check can fail).
#[test]
fn git_metadata_a_command_plants_never_runs_at_the_users_next_git_command() {
    // Control: the plant, done directly, runs at the user's git commands.
    let control = tempfile::tempdir().unwrap();
    let control_marks = tempfile::tempdir().unwrap();
    repo_with_nested(control.path());
    let planted = Command::new("sh")
        .args(["-c", &plant_script(control_marks.path())])
        .current_dir(control.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(planted.status.success(), "{}", text(&planted.stderr));
    let ran = users_git_runs(control.path(), control_marks.path());
    for marker in ["gitfile", "init", "nested"] {
        assert!(
            ran.iter().any(|m| m == marker),
            "the control's {marker} hook did not run: {ran:?}"
        );
    }

    let home = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    let marks = tempfile::tempdir().unwrap();
    repo_with_nested(ws.path());
    let turns = json!({"turns": [
        {"tool_calls": [{"id": "plant", "name": "shell", "arguments": {"command": plant_script(marks.path())}}]},
        {"content": "done"}
    ]});
    let script = home.path().join("plant.json");
    std::fs::write(&script, turns.to_string()).unwrap();
    let run = praxis(
        home.path(),
        &[
            "run",
            "plant",
            "-w",
            ws.path().to_str().unwrap(),
            "--script",
            script.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(run.status.success(), "{}", text(&run.stderr));
    let summary: Value = serde_json::from_slice(&run.stdout).unwrap();
    let export = praxis(
        home.path(),
        &["ledger", "export", summary["run_id"].as_str().unwrap()],
    );
    let entries: Vec<Value> = text(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let execution = entries
        .iter()
        .find(|e| e["kind"] == "execution" && e["payload"]["call_id"] == "plant")
        .expect("the plant command ran")["payload"]
        .clone();

    let ran = users_git_runs(ws.path(), marks.path());
    assert!(ran.is_empty(), "planted git code ran: {ran:?}; {execution}");
    // What was removed is recorded, typed, with the call.
    let removed: Vec<&str> = execution["git_removed"]
        .as_array()
        .map(|r| r.iter().filter_map(|p| p.as_str()).collect())
        .unwrap_or_default();
    for path in [
        "sub/.git/config",
        "sub/.git/hooks",
        "gd/config",
        "gd/hooks",
        "wt/.git",
    ] {
        assert!(removed.contains(&path), "{path} not removed: {execution}");
    }
    // The existing nested repository: read-only to the command where the sandbox has a
    // mount namespace, stripped after the call where it has none.
    assert!(!ws.path().join("vendor/lib/.git/hooks/pre-commit").exists());
    // The user's own repositories still work.
    assert!(git(ws.path(), &["status"]).status.success());
    assert!(
        git(&ws.path().join("vendor/lib"), &["log", "-1"])
            .status
            .success()
    );
}
