//! The `<cmd>` protocol for callers that drive their own loop: find the blocks in a
//! model's reply, run them (concurrently, optionally in the sandbox), and format the
//! results for the next message.
//!
//! Parsing and formatting are the kernel's own (`praxis_core::cmd`); processes are
//! started by the same code as the `shell` tool (`praxis_tools::process`, with the clean
//! environment), confined by the same sandbox (`praxis_sandbox`: Landlock, seccomp,
//! namespaces, rlimits). No policy or writ judges these commands: that is what
//! [`crate::Agent`] is for. Here the caller decides what runs and the sandbox bounds it.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use praxis::cmd::{ExecConfig, execute_blocks, format_results, parse_cmd_blocks};
//! let reply = "Let me look. <cmd>echo hello</cmd> <cmd>exit 3</cmd>";
//! let blocks = parse_cmd_blocks(reply).unwrap();
//! let config = ExecConfig::unconfined(std::env::temp_dir());
//! let results = execute_blocks(&config, &blocks).await;
//! assert_eq!(results[0].stdout, "hello\n");
//! assert_eq!(results[1].exit_code, Some(3));
//! let next_message = format_results(&results);
//! assert!(next_message.contains("[exit code 3]"));
//! # }
//! ```

pub use praxis_core::cmd::{CmdParseError, parse_cmd_blocks, strip_cmd_blocks};
use praxis_tools::process::{ProcessSpec, clean_env, run_process};
use praxis_tools::{Sandbox, SandboxSettings};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How a path is granted to sandboxed commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathAccess {
    ReadOnly,
    ReadWrite,
}

/// How [`execute_blocks`] runs commands.
#[derive(Clone, Debug)]
pub struct ExecConfig {
    /// Where commands start. Read-write for sandboxed commands (it is the sandbox's
    /// workspace).
    pub workdir: PathBuf,
    /// Confine each command: only `workdir`, `paths`, the system's read-only directories
    /// and a private home are reachable; no network unless `allow_network`.
    pub sandbox: bool,
    pub allow_network: bool,
    /// Extra paths sandboxed commands may use, each read-only or read-write.
    pub paths: Vec<(PathBuf, PathAccess)>,
    /// Variables added to the clean environment (`PATH`, `HOME`, `LANG`...): nothing else
    /// of this process's environment reaches a command.
    pub env: BTreeMap<String, String>,
    /// Per command; its whole process group is killed when it expires.
    pub timeout: Duration,
    /// Bytes kept of each stream (head and tail).
    pub output_cap: usize,
}

impl ExecConfig {
    /// Sandboxed commands in `workdir` (read-write), 60 s each.
    pub fn sandboxed(workdir: impl Into<PathBuf>) -> Self {
        ExecConfig {
            workdir: workdir.into(),
            sandbox: true,
            allow_network: false,
            paths: Vec::new(),
            env: BTreeMap::new(),
            timeout: Duration::from_secs(60),
            output_cap: 64 * 1024,
        }
    }

    /// Unconfined commands (the clean environment and the timeout still apply).
    pub fn unconfined(workdir: impl Into<PathBuf>) -> Self {
        ExecConfig {
            sandbox: false,
            ..Self::sandboxed(workdir)
        }
    }

    /// Grants `path` to sandboxed commands.
    pub fn path(mut self, path: impl Into<PathBuf>, access: PathAccess) -> Self {
        self.paths.push((path.into(), access));
        self
    }

    /// Adds `name=value` to every command's environment.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }
}

/// What one command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmdResult {
    pub command: String,
    pub stdout: String,
    pub stderr: String,
    /// None when it did not exit normally (killed, timed out, never started).
    pub exit_code: Option<i32>,
    /// Why it did not run or finish: not started, timed out, killed by a signal, sandbox
    /// unavailable.
    pub error: Option<String>,
}

/// Runs every block concurrently (`bash -c BLOCK` each) and returns their results in the
/// blocks' order. An empty block gives an error result without running anything.
pub async fn execute_blocks(config: &ExecConfig, blocks: &[String]) -> Vec<CmdResult> {
    let sandbox = if config.sandbox {
        match sandbox(config) {
            Ok(sandbox) => Some(sandbox),
            Err(why) => {
                return blocks
                    .iter()
                    .map(|command| failed(command, why.clone()))
                    .collect();
            }
        }
    } else {
        None
    };
    let mut env = clean_env();
    env.retain(|(name, _)| !config.env.contains_key(name));
    env.extend(config.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let runs = blocks.iter().map(|command| {
        let spec = ProcessSpec {
            program: PathBuf::from("bash"),
            args: vec!["-c".into(), command.clone()],
            cwd: config.workdir.clone(),
            env: env.clone(),
            timeout: config.timeout,
            output_cap: config.output_cap,
            sandbox: sandbox.clone(),
        };
        async move {
            if command.trim().is_empty() {
                return failed(command, "empty command".into());
            }
            let outcome = run_process(&spec).await;
            let error = if let Some(why) = &outcome.spawn_error {
                Some(why.clone())
            } else if outcome.timed_out {
                Some(format!("timed out after {:?}", config.timeout))
            } else {
                outcome.signal.map(|s| format!("killed by signal {s}"))
            };
            CmdResult {
                command: command.clone(),
                stdout: outcome.stdout.to_text_with_marker(),
                stderr: outcome.stderr.to_text_with_marker(),
                exit_code: outcome.exit_code,
                error,
            }
        }
    });
    futures_util::future::join_all(runs).await
}

fn failed(command: &str, why: String) -> CmdResult {
    CmdResult {
        command: command.to_string(),
        stdout: String::new(),
        stderr: String::new(),
        exit_code: None,
        error: Some(why),
    }
}

/// The sandbox for `config`, refused when the host cannot confine (so "sandbox on" never
/// silently runs unconfined).
fn sandbox(config: &ExecConfig) -> Result<Arc<Sandbox>, String> {
    let mut settings = SandboxSettings {
        allow_network: config.allow_network,
        ..SandboxSettings::default()
    };
    for (path, access) in &config.paths {
        match access {
            PathAccess::ReadOnly => settings.read_paths.push(path.clone()),
            PathAccess::ReadWrite => settings.write_paths.push(path.clone()),
        }
    }
    let sandbox = Sandbox::new(settings.policy(&config.workdir))
        .map_err(|e| format!("sandbox could not be prepared: {e}"))?;
    if let Some(layer) = sandbox.report().layer("landlock").filter(|l| !l.active) {
        return Err(format!(
            "sandbox requested but Landlock is unavailable on this host: {}",
            layer.detail
        ));
    }
    Ok(Arc::new(sandbox))
}

/// The results as the next message to the model: one `<result>` block per command, in
/// order (stdout, then stderr, then a non-zero exit code or the error).
pub fn format_results(results: &[CmdResult]) -> String {
    results
        .iter()
        .map(|r| {
            let mut output = r.stdout.clone();
            if !r.stderr.is_empty() {
                if !output.is_empty() && !output.ends_with('\n') {
                    output.push('\n');
                }
                output.push_str(&r.stderr);
            }
            if let Some(error) = &r.error {
                if !output.is_empty() && !output.ends_with('\n') {
                    output.push('\n');
                }
                output.push_str(&format!("[error: {error}]"));
            }
            praxis_core::cmd::format_result(&output, r.exit_code)
        })
        .collect::<Vec<_>>()
        .join("\n")
}
