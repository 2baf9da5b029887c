//! `praxis serve` as a child process of a test: where it listens, its log, signals.

use super::Praxis;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct Served {
    pub child: Child,
    pub url: String,
    pub log: mpsc::Receiver<String>,
}

impl Served {
    /// `praxis serve --bind 127.0.0.1:0 EXTRA` in `praxis`'s home, once it listens.
    /// Clients' workspaces are accepted anywhere under the temporary directory.
    pub fn start(praxis: &Praxis, extra: &[&str]) -> Served {
        let mut cmd = praxis.cmd(&[]);
        cmd.env("PRAXIS_WORKSPACE_ROOTS", std::env::temp_dir());
        Self::start_with(cmd, extra)
    }

    /// The same from a prepared command (for extra environment).
    pub fn start_with(mut cmd: Command, extra: &[&str]) -> Served {
        let mut child = cmd
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("praxis serve never said where it listens");
            };
            if let Some(at) = line.find("listening on http://") {
                let url = line[at + "listening on ".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .to_string();
                return Served {
                    child,
                    url,
                    log: rx,
                };
            }
        }
    }

    /// `host:port` of the listener.
    pub fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Sends `sig` (as `kill` spells it: `-TERM`, `-KILL`).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.pid()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the server to exit; its exit status and the rest of its log.
    pub fn wait(mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log: Vec<String> = self.log.try_iter().collect();
                return (status, log.join("\n"));
            }
            assert!(Instant::now() < deadline, "the server did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9`: no shutdown, no last checkpoint.
    pub fn crash(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// One HTTP call, without a token: its status (0 when no answer came) and body text.
pub fn call(method: &str, url: &str, body: Option<serde_json::Value>) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let request = match method {
            "POST" => client
                .post(url)
                .json(&body.unwrap_or_else(|| serde_json::json!({}))),
            _ => client.get(url),
        };
        match request.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.text().await.unwrap_or_default())
            }
            Err(e) => (0, e.to_string()),
        }
    })
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            // What the server said helps explain the failure.
            for line in self.log.try_iter() {
                eprintln!("praxis serve: {line}");
            }
        }
    }
}
