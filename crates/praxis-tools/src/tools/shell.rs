//! `shell`: one bash command in the workspace, with a timeout, a scrubbed environment and
//! capped output. Also the helpers `test_run` shares (bash spec, output rendering, timeouts).

use crate::process::{CappedOutput, ProcessOutcome, ProcessSpec, clean_env, fit_pair, run_process};
use crate::{BoxFuture, ExecContext, Tool};
use praxis_core::{AccessMode, Effect, ExecStatus, Observation, Resource};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `shell`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellArgs {
    /// The command line, run with `bash -c`.
    pub command: String,
    /// Seconds before the command and everything it started are killed. Defaults to the
    /// runtime's shell timeout; larger values are capped at its maximum.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub timeout_secs: Option<u64>,
    /// Directory to run in, relative to the workspace root (default: the root).
    #[serde(default)]
    pub cwd: Option<String>,
}

#[derive(Default)]
pub struct ShellTool;

impl Tool for ShellTool {
    type Args = ShellArgs;
    const NAME: &'static str = "shell";
    const DESCRIPTION: &'static str = "Run a bash command (`bash -c`) in the workspace. Returns stdout, then stderr after \
             a `[stderr]` line; long output keeps its head and tail. The command gets a minimal \
             environment and is killed, with everything it started, on timeout.";
    const EFFECT: Effect = Effect::Exec;

    fn touches(&self, args: &ShellArgs) -> Vec<Resource> {
        vec![
            Resource::Command {
                command: args.command.clone(),
            },
            Resource::Path {
                path: args.cwd.clone().unwrap_or_else(|| ".".to_string()),
                mode: AccessMode::Write,
            },
        ]
    }

    fn run<'a>(&'a self, ctx: &'a ExecContext, args: ShellArgs) -> BoxFuture<'a, Observation> {
        Box::pin(async move {
            let cwd_rel = args.cwd.as_deref().unwrap_or(".");
            let cwd = match resolve_dir(ctx, cwd_rel, "cwd") {
                Ok(dir) => dir,
                Err(obs) => return obs,
            };
            let timeout = match call_timeout(
                ctx,
                args.timeout_secs,
                ctx.limits.shell_timeout,
                ctx.limits.max_shell_timeout,
            ) {
                Ok(t) => t,
                Err(obs) => return obs,
            };
            let cap = ctx.limits.output_bytes;
            let outcome = run_process(&bash_spec(ctx, &args.command, cwd, timeout, cap)).await;
            let mut observation = observe(&outcome, cap, timeout);
            if ctx.sandbox.is_some() && observation.status != ExecStatus::Ok {
                push_line(&mut observation.output, SANDBOX_NOTE);
            }
            observation
        })
    }
}

/// Appended to a failed confined command, so a model reading "Permission denied" knows it
/// hit the boundary (and that retrying differently will not get through).
pub(crate) const SANDBOX_NOTE: &str = "[sandbox: this command ran confined: read-write only in \
    the workspace and a private HOME/TMPDIR, read-only system directories, no access to other \
    files, network denied unless the run allows it, process and resource limits; `Permission \
    denied` or `Operation not permitted` on anything else is the sandbox refusing it]";

/// Turns a process outcome into the `shell` observation.
pub(crate) fn observe(outcome: &ProcessOutcome, cap: usize, timeout: Duration) -> Observation {
    let duration_ms = outcome.duration.as_millis() as u64;
    if let Some(why) = &outcome.spawn_error {
        return Observation {
            duration_ms,
            ..Observation::error(why.clone())
        };
    }
    let (mut output, truncated_bytes) = render_streams(&outcome.stdout, &outcome.stderr, cap);
    let status = if outcome.timed_out {
        push_line(
            &mut output,
            &format!(
                "timed out after {}; process group killed",
                fmt_secs(timeout)
            ),
        );
        ExecStatus::Timeout
    } else if let Some(signal) = outcome.signal {
        push_line(&mut output, &format!("terminated by signal {signal}"));
        ExecStatus::Error
    } else if outcome.exit_code == Some(0) {
        ExecStatus::Ok
    } else {
        ExecStatus::Error
    };
    Observation {
        status,
        exit_code: outcome.exit_code,
        output,
        truncated_bytes,
        duration_ms,
        files_changed: Vec::new(),
        child_spent: None,
        git_removed: Vec::new(),
    }
}

/// `bash -c COMMAND` in `cwd` with the clean environment, confined by the context's
/// sandbox when it has one.
pub(crate) fn bash_spec(
    ctx: &ExecContext,
    command: &str,
    cwd: PathBuf,
    timeout: Duration,
    cap: usize,
) -> ProcessSpec {
    ProcessSpec {
        program: PathBuf::from("bash"),
        args: vec!["-c".to_string(), command.to_string()],
        cwd,
        env: clean_env(),
        timeout,
        output_cap: cap,
        sandbox: ctx.sandbox.clone(),
    }
}

/// Stdout, then (if there was any) a `[stderr]` line and stderr, together held to `cap`
/// bytes. Returns the text and the bytes cut from both streams.
pub(crate) fn render_streams(
    stdout: &CappedOutput,
    stderr: &CappedOutput,
    cap: usize,
) -> (String, u64) {
    let (out, err) = fit_pair(stdout, stderr, cap);
    let mut text = out.to_text_with_marker();
    if !err.is_empty() {
        push_line(&mut text, "[stderr]");
        text.push('\n');
        text.push_str(&err.to_text_with_marker());
    }
    (text, out.cut() + err.cut())
}

/// Appends `line` on a line of its own.
pub(crate) fn push_line(text: &mut String, line: &str) {
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(line);
}

/// The real path of a directory inside the workspace, or an error observation naming the
/// argument.
pub(crate) fn resolve_dir(ctx: &ExecContext, rel: &str, arg: &str) -> Result<PathBuf, Observation> {
    let dir = ctx
        .workspace
        .resolve(rel)
        .map_err(|e| Observation::error(format!("invalid {arg} `{rel}`: {e}")))?;
    if !dir.is_dir() {
        return Err(Observation::error(format!(
            "invalid {arg} `{rel}`: not a directory"
        )));
    }
    Ok(dir)
}

/// The timeout of one call: the request (or the default), at most `max`, and never past
/// the run's deadline. A deadline already reached is a timeout observation: nothing runs.
pub(crate) fn call_timeout(
    ctx: &ExecContext,
    requested: Option<u64>,
    default: Duration,
    max: Duration,
) -> Result<Duration, Observation> {
    if requested == Some(0) {
        return Err(Observation::error(
            "invalid timeout_secs 0: must be at least 1".to_string(),
        ));
    }
    let wanted = requested
        .map(Duration::from_secs)
        .unwrap_or(default)
        .min(max);
    let timeout = ctx.clamp_timeout(wanted);
    if timeout.is_zero() {
        return Err(Observation {
            status: ExecStatus::Timeout,
            ..Observation::error("not run: the run's deadline has passed")
        });
    }
    Ok(timeout)
}

/// "30s", or "2.5s" for a timeout cut short by the run's deadline.
pub(crate) fn fmt_secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ToolContract, ToolLimits, Workspace};
    use serde_json::json;

    fn ctx(dir: &std::path::Path) -> ExecContext {
        ExecContext::new(Workspace::new(dir).unwrap())
    }

    #[tokio::test]
    async fn success_and_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ctx(dir.path());
        let obs = ShellTool
            .execute(&ctx, json!({"command": "echo hello"}))
            .await;
        assert_eq!(obs.status, ExecStatus::Ok);
        assert_eq!(obs.exit_code, Some(0));
        assert_eq!(obs.output, "hello\n");
        assert_eq!(obs.truncated_bytes, 0);
    }

    #[tokio::test]
    async fn failure_shows_stderr_after_marker_line() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ctx(dir.path());
        let obs = ShellTool
            .execute(&ctx, json!({"command": "printf out; echo bad >&2; exit 4"}))
            .await;
        assert_eq!(obs.status, ExecStatus::Error);
        assert_eq!(obs.exit_code, Some(4));
        assert_eq!(obs.output, "out\n[stderr]\nbad\n");
    }

    #[tokio::test]
    async fn killed_by_signal_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ctx(dir.path());
        let obs = ShellTool
            .execute(&ctx, json!({"command": "kill -KILL $$"}))
            .await;
        assert_eq!(obs.status, ExecStatus::Error);
        assert_eq!(obs.exit_code, None);
        assert_eq!(obs.output, "terminated by signal 9");
    }

    #[tokio::test]
    async fn timeout_status_and_message() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ctx(dir.path());
        let obs = ShellTool
            .execute(
                &ctx,
                json!({"command": "echo begun; sleep 30", "timeout_secs": 1}),
            )
            .await;
        assert_eq!(obs.status, ExecStatus::Timeout);
        assert_eq!(
            obs.output,
            "begun\ntimed out after 1s; process group killed"
        );
    }

    #[tokio::test]
    async fn timeout_is_capped_by_the_maximum() {
        let dir = tempfile::tempdir().unwrap();
        let mut ctx = ctx(dir.path());
        ctx.limits = ToolLimits {
            max_shell_timeout: Duration::from_secs(1),
            ..ToolLimits::default()
        };
        let obs = ShellTool
            .execute(&ctx, json!({"command": "sleep 30", "timeout_secs": 600}))
            .await;
        assert_eq!(obs.status, ExecStatus::Timeout);
        assert!(obs.output.contains("timed out after 1s"), "{}", obs.output);
    }

    #[tokio::test]
    async fn past_deadline_runs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut ctx = ctx(dir.path());
        ctx.deadline = Some(std::time::Instant::now());
        let obs = ShellTool
            .execute(&ctx, json!({"command": "touch ran"}))
            .await;
        assert_eq!(obs.status, ExecStatus::Timeout);
        assert!(!dir.path().join("ran").exists());
    }

    #[tokio::test]
    async fn cwd_inside_and_outside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let ctx = ctx(dir.path());
        let obs = ShellTool
            .execute(&ctx, json!({"command": "basename \"$PWD\"", "cwd": "sub"}))
            .await;
        assert_eq!(obs.output, "sub\n");

        let obs = ShellTool
            .execute(&ctx, json!({"command": "touch escaped", "cwd": ".."}))
            .await;
        assert_eq!(obs.status, ExecStatus::Error);
        assert!(obs.output.contains("invalid cwd `..`"), "{}", obs.output);

        std::fs::write(dir.path().join("file"), "x").unwrap();
        let obs = ShellTool
            .execute(&ctx, json!({"command": "true", "cwd": "file"}))
            .await;
        assert_eq!(obs.status, ExecStatus::Error);
        assert!(obs.output.contains("not a directory"), "{}", obs.output);
    }

    #[tokio::test]
    async fn bad_arguments_are_an_error_observation() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ctx(dir.path());
        let obs = ShellTool
            .execute(&ctx, json!({"command": "true", "bogus": 1}))
            .await;
        assert_eq!(obs.status, ExecStatus::Error);
        assert!(obs.output.contains("bogus"), "{}", obs.output);
        let obs = ShellTool.execute(&ctx, json!({"cmd": "true"})).await;
        assert_eq!(obs.status, ExecStatus::Error);
        let obs = ShellTool
            .execute(&ctx, json!({"command": "true", "timeout_secs": 0}))
            .await;
        assert_eq!(obs.status, ExecStatus::Error);
        assert!(obs.output.contains("timeout_secs"), "{}", obs.output);
    }

    #[tokio::test]
    async fn output_is_capped_across_both_streams() {
        let dir = tempfile::tempdir().unwrap();
        let mut ctx = ctx(dir.path());
        ctx.limits.output_bytes = 100;
        let obs = ShellTool
            .execute(
                &ctx,
                json!({"command": "head -c 1000 /dev/zero | tr '\\0' o; head -c 1000 /dev/zero | tr '\\0' e >&2"}),
            )
            .await;
        assert_eq!(obs.status, ExecStatus::Ok);
        assert_eq!(obs.truncated_bytes, 1900);
        let expected = format!(
            "{o}\n[... 950 bytes cut ...]\n{o}\n[stderr]\n{e}\n[... 950 bytes cut ...]\n{e}",
            o = "o".repeat(25),
            e = "e".repeat(25)
        );
        assert_eq!(obs.output, expected);
    }

    #[test]
    fn spec_and_resources() {
        let spec = ShellTool.spec();
        assert_eq!(spec.name, "shell");
        assert_eq!(spec.effect, Effect::Exec);
        assert_eq!(spec.parameters["additionalProperties"], json!(false));
        assert_eq!(spec.parameters["required"], json!(["command"]));
        assert_eq!(
            ShellTool.resources(&json!({"command": "make", "cwd": "src"})),
            vec![
                Resource::Command {
                    command: "make".into()
                },
                Resource::Path {
                    path: "src".into(),
                    mode: AccessMode::Write
                },
            ]
        );
        assert_eq!(
            ShellTool.resources(&json!({"command": "ls"}))[1],
            Resource::Path {
                path: ".".into(),
                mode: AccessMode::Write
            }
        );
    }
}
