//! `praxis shell` driven with commands on stdin (not a terminal: read line by line, no
//! prompt), against a real `praxis serve` child process, and locally.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

mod common;
use common::{Praxis, text};

struct Env {
    base: Praxis,
    ws: TempDir,
}

impl std::ops::Deref for Env {
    type Target = Praxis;
    fn deref(&self) -> &Praxis {
        &self.base
    }
}

/// A `praxis serve` child, killed when dropped.
struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Env {
    fn new() -> Self {
        let env = Env {
            base: Praxis::new(),
            ws: tempfile::tempdir().unwrap(),
        };
        std::fs::write(env.ws.path().join("README.md"), "# Served\n").unwrap();
        env
    }

    fn serve(&self) -> Served {
        let mut child = self
            .cmd(&["serve", "--bind", "127.0.0.1:0"])
            .env("PRAXIS_WORKSPACE_ROOTS", self.ws.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let url = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("praxis serve never said where it listens");
            };
            if let Some(at) = line.find("listening on http://") {
                break line[at + "listening on ".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .to_string();
            }
        };
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Served { child, url }
    }

    fn script(&self, name: &str, turns: Value) -> String {
        path_str(&self.file(name, &json!({ "turns": turns }).to_string()))
    }

    /// Runs `praxis shell ARGS` with `commands` on stdin; its output once it exits.
    fn shell(&self, args: &[&str], token: Option<&str>, commands: &str) -> Output {
        let mut cmd = self.cmd(&[&["shell"], args].concat());
        if let Some(token) = token {
            cmd.env("PRAXIS_TOKEN", token);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(commands.as_bytes())
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "the shell did not finish:\nstdout:\n{}\nstderr:\n{}",
                    text(&out.stdout),
                    text(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    }
}

fn path_str(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

fn answer_turns(answer: &str) -> Value {
    json!([
        {"tool_calls": [{"id": "c1", "name": "fs_read", "arguments": {"path": "README.md"}}]},
        {"content": answer},
    ])
}

/// The run id in `run ID submitted` lines, in order.
fn submitted(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("run ")?.split_once(" submitted"))
        .map(|(id, _)| id.to_string())
        .collect()
}

#[test]
fn a_scripted_session_against_a_server() {
    let env = Env::new();
    assert!(env.praxis(&["writ", "keygen"]).status.success());
    let spec = env.file(
        "approve.toml",
        "subject = \"agent\"\ntenant = \"ops\"\nexpires_in = \"1h\"\neffect_ceiling = \"exec\"\n[[tools]]\nname = \"fs_read\"\npaths = [\"**\"]\n[[tools]]\nname = \"fs_write\"\npaths = [\"**\"]\n[approvals]\ntools = [\"fs_write\"]\n",
    );
    let out = env.praxis(&["writ", "issue", "--spec", &path_str(&spec)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let writ = path_str(&env.file("approve.writ", &text(&out.stdout)));
    let server = env.serve();
    let out = env.praxis(&["token", "create", "--tenant", "ops"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_string();

    let ws = path_str(env.ws.path());
    let answer = env.script("answer.json", answer_turns("the readme says Served"));
    let write = |name: &str, content: &str| {
        env.script(
            name,
            json!([
                {"tool_calls": [{"id": "w1", "name": "fs_write", "arguments": {"path": "out.txt", "content": content}}]},
                {"content": format!("wrote {}", content.trim())},
            ]),
        )
    };
    let first_write = write("write.json", "first\n");
    let second_write = write("write2.json", "second\n");
    let commands = format!(
        "# a comment, then blank lines, are skipped\n\n\
         help\n\
         run \"read the readme\" --workspace {ws} --script {answer}\n\
         runs\n\
         status last\n\
         run 'write a file' --workspace {ws} --script {first_write} --writ {writ}\n\
         approvals\n\
         approve last \"looks fine\"\n\
         follow last\n\
         run -d 'write again' --workspace {ws} --script {second_write} --writ {writ}\n\
         cancel last\n\
         follow last\n\
         status 01nosuchrun\n\
         explode\n\
         deny last\n\
         exit\n\
         status 01afterexit\n"
    );
    let out = env.shell(&["--server", &server.url], Some(&token), &commands);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let context = format!("stdout:\n{stdout}\nstderr:\n{stderr}");

    // `help` lists the commands.
    for command in ["approvals", "approve", "cancel", "follow", "status", "exit"] {
        assert!(stdout.contains(command), "help lacks {command}: {context}");
    }
    let ids = submitted(&stdout);
    assert_eq!(ids.len(), 3, "{context}");
    let (read, wrote, cancelled) = (&ids[0], &ids[1], &ids[2]);
    // The first run is followed to its answer.
    assert!(
        stdout.contains(&format!("run {read} completed\nthe readme says Served\n")),
        "{context}"
    );
    assert!(
        stdout.contains("fs_read"),
        "progress lines are printed: {context}"
    );
    // `runs` lists it, `status last` shows it.
    assert!(
        stdout.matches(read.as_str()).count() >= 4,
        "runs and status show the run: {context}"
    );
    assert!(stdout.contains("task: read the readme"), "{context}");
    // The second stops at its approval, which is listed, approved, and followed to the end.
    assert!(
        stdout.contains(&format!("run {wrote} awaits approval")),
        "{context}"
    );
    assert!(
        stdout.contains(&format!("{wrote}:w1  fs_write")),
        "{context}"
    );
    assert!(
        stdout.contains(&format!("approved w1 of run {wrote}")),
        "{context}"
    );
    assert!(
        stdout.contains(&format!("run {wrote} completed\nwrote first\n")),
        "{context}"
    );
    assert_eq!(
        std::fs::read_to_string(env.ws.path().join("out.txt")).unwrap(),
        "first\n"
    );
    // The detached one is cancelled, and following it shows how it ended.
    assert!(
        stdout.contains(&format!("run {cancelled} submitted")),
        "{context}"
    );
    assert!(
        stdout.contains(&format!("run {cancelled} cancel")),
        "{context}"
    );
    assert!(
        stdout.contains(&format!("run {cancelled} cancelled")),
        "{context}"
    );
    // Failing commands say why and the session goes on; nothing runs after `exit`.
    assert!(stderr.contains("01nosuchrun"), "{context}");
    assert!(stderr.contains("explode"), "{context}");
    assert!(stderr.contains("<REASON>"), "{context}");
    assert!(
        !stdout.contains("01afterexit") && !stderr.contains("01afterexit"),
        "{context}"
    );
    assert_eq!(out.status.code(), Some(1), "a command failed: {context}");

    // Without a token the server refuses, and the shell says how to fix it.
    let out = env.shell(&["--server", &server.url], None, "runs\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("PRAXIS_TOKEN"),
        "{}",
        text(&out.stderr)
    );
    // A clean session exits 0.
    let out = env.shell(
        &["--server", &server.url],
        Some(&token),
        &format!("status {read}\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("completed"));
}

#[test]
fn a_scripted_session_on_the_local_data_directory() {
    let env = Env::new();
    let ws = path_str(env.ws.path());
    let answer = env.script("answer.json", answer_turns("local answer"));
    let commands = format!(
        "run 'read it' --workspace {ws} --script {answer} --approve never\n\
         runs\n\
         status last\n\
         cancel last\n"
    );
    let out = env.shell(&[], None, &commands);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let context = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("local answer"), "{context}");
    assert!(stdout.contains("task: read it"), "{context}");
    assert!(stdout.contains("completed"), "{context}");
    // `cancel` reaches local runs too; this one has already ended, which it says.
    assert!(stderr.contains("already ended"), "{context}");
    // History is only kept for terminal sessions.
    assert!(!env.home.path().join("shell_history").exists());
}
