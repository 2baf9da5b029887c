//! `fs_read`: the raw text of a file, or of a range of its lines.

use crate::registry::{path_resource, run_blocking, tool_spec};
use crate::{BoxFuture, ExecContext, ToolContract, Workspace};
use praxis_core::{AccessMode, Effect, Observation, Resource, ToolSpec};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};

pub const NAME: &str = "fs_read";

/// How much of the start of a file is checked for NUL bytes (git's heuristic).
pub(crate) const BINARY_PROBE_BYTES: usize = 8 * 1024;

/// Arguments of `fs_read`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FsReadArgs {
    /// File to read, relative to the workspace root.
    pub path: String,
    /// First line to return (1-based, inclusive; default 1).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub start_line: Option<usize>,
    /// Last line to return (1-based, inclusive; default: the end of the file).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub end_line: Option<usize>,
    /// Return at most this many bytes (capped by the runtime's read limit).
    #[serde(default)]
    pub max_bytes: Option<usize>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct FsReadTool;

impl ToolContract for FsReadTool {
    fn spec(&self) -> ToolSpec {
        tool_spec::<FsReadArgs>(
            NAME,
            "Read a text file of the workspace, optionally only lines start_line..=end_line \
             (1-based). Returns the raw text without line numbers.",
            Effect::Read,
        )
    }

    fn resources(&self, args: &Value) -> Vec<Resource> {
        path_resource(args, AccessMode::Read)
    }

    fn execute<'a>(&'a self, ctx: &'a ExecContext, args: Value) -> BoxFuture<'a, Observation> {
        let ws = ctx.workspace.clone();
        let read_limit = ctx.limits.read_bytes.min(ctx.limits.output_bytes);
        run_blocking(NAME, args, move |args: FsReadArgs| {
            let limit = args.max_bytes.unwrap_or(read_limit).min(read_limit);
            read(&ws, &args, limit)
        })
    }
}

fn read(ws: &Workspace, args: &FsReadArgs, limit: usize) -> Observation {
    let start = args.start_line.unwrap_or(1);
    if start == 0 {
        return Observation::error("start_line is 1-based: use 1 for the first line");
    }
    if let Some(end) = args.end_line
        && end < start
    {
        return Observation::error(format!("end_line {end} is before start_line {start}"));
    }
    let (file, real) = match ws.open_read(&args.path) {
        Ok(f) => f,
        Err(e) => return Observation::error(e.to_string()),
    };
    if real.is_dir() {
        return Observation::error(format!(
            "`{}` is a directory; use list_files to see its contents",
            args.path
        ));
    }
    let mut reader = BufReader::new(file);
    let io_error =
        |e: std::io::Error| Observation::error(format!("cannot read `{}`: {e}", args.path));
    match reader.fill_buf() {
        Ok(head) => {
            let probe = &head[..head.len().min(BINARY_PROBE_BYTES)];
            if probe.contains(&0) {
                return Observation::error(format!(
                    "`{}` is a binary file (it contains NUL bytes); fs_read only returns text",
                    args.path
                ));
            }
        }
        Err(e) => return io_error(e),
    }

    // Stream the lines: keep the selected ones up to `limit` bytes, count the rest.
    let mut kept: Vec<u8> = Vec::new();
    let mut dropped: u64 = 0;
    let mut line = Vec::new();
    let mut number = 0usize;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return io_error(e),
        }
        number += 1;
        if number < start {
            continue;
        }
        if args.end_line.is_some_and(|end| number > end) {
            break;
        }
        let room = limit.saturating_sub(kept.len());
        if line.len() <= room && dropped == 0 {
            kept.extend_from_slice(&line);
        } else {
            if dropped == 0 {
                let cut = char_boundary(&line, room);
                kept.extend_from_slice(&line[..cut]);
                dropped += (line.len() - cut) as u64;
            } else {
                dropped += line.len() as u64;
            }
            if args.end_line.is_none() {
                // The rest of the file is selected: count it without reading it line by line.
                let mut rest = 0u64;
                let mut buf = [0u8; 64 * 1024];
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => rest += n as u64,
                        Err(e) => return io_error(e),
                    }
                }
                dropped += rest;
                break;
            }
        }
    }
    if number < start && !(number == 0 && start == 1) {
        return Observation::error(format!(
            "start_line {start} is past the end of `{}`, which has {number} lines",
            args.path
        ));
    }
    let mut text = String::from_utf8_lossy(&kept).into_owned();
    if dropped > 0 {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("[... truncated: {dropped} more bytes ...]"));
    }
    Observation {
        truncated_bytes: dropped,
        ..Observation::ok(text)
    }
}

/// The largest index <= `at` that does not split a UTF-8 character in `bytes`.
fn char_boundary(bytes: &[u8], at: usize) -> usize {
    let mut cut = at.min(bytes.len());
    while cut > 0 && cut < bytes.len() && (bytes[cut] & 0xC0) == 0x80 {
        cut -= 1;
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;
    use praxis_core::{Contracts, ExecStatus};
    use serde_json::json;
    use std::fs;

    fn fixture() -> (tempfile::TempDir, ExecContext) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("five.txt"), "one\ntwo\nthree\nfour\nfive\n").unwrap();
        fs::write(dir.path().join("bin.dat"), b"abc\0def").unwrap();
        let ctx = ExecContext::new(Workspace::new(dir.path()).unwrap());
        (dir, ctx)
    }

    async fn run(ctx: &ExecContext, args: Value) -> Observation {
        FsReadTool.execute(ctx, args).await
    }

    #[tokio::test]
    async fn reads_whole_file_and_line_ranges_raw() {
        let (_d, ctx) = fixture();
        let o = run(&ctx, json!({"path": "five.txt"})).await;
        assert_eq!(
            (o.status, o.output.as_str()),
            (ExecStatus::Ok, "one\ntwo\nthree\nfour\nfive\n")
        );
        let o = run(
            &ctx,
            json!({"path": "five.txt", "start_line": 2, "end_line": 3}),
        )
        .await;
        assert_eq!(o.output, "two\nthree\n");
        let o = run(&ctx, json!({"path": "five.txt", "start_line": 4})).await;
        assert_eq!(o.output, "four\nfive\n");
        let o = run(&ctx, json!({"path": "five.txt", "end_line": 1})).await;
        assert_eq!(o.output, "one\n");
        let o = run(&ctx, json!({"path": "./five.txt", "end_line": 99})).await;
        assert_eq!(o.output, "one\ntwo\nthree\nfour\nfive\n");
    }

    #[tokio::test]
    async fn bad_ranges_binary_files_and_directories_are_errors() {
        let (_d, ctx) = fixture();
        let o = run(&ctx, json!({"path": "five.txt", "start_line": 9})).await;
        assert_eq!(o.status, ExecStatus::Error);
        assert_eq!(
            o.output,
            "start_line 9 is past the end of `five.txt`, which has 5 lines"
        );
        let o = run(
            &ctx,
            json!({"path": "five.txt", "start_line": 3, "end_line": 2}),
        )
        .await;
        assert_eq!(o.output, "end_line 2 is before start_line 3");
        let o = run(&ctx, json!({"path": "five.txt", "start_line": 0})).await;
        assert_eq!(o.status, ExecStatus::Error);
        let o = run(&ctx, json!({"path": "bin.dat"})).await;
        assert_eq!(o.status, ExecStatus::Error);
        assert!(o.output.contains("binary file"), "{}", o.output);
        let o = run(&ctx, json!({"path": "."})).await;
        assert!(o.output.contains("is a directory"), "{}", o.output);
    }

    #[tokio::test]
    async fn caps_at_max_bytes_and_read_limit_with_marker() {
        let (_d, mut ctx) = fixture();
        let o = run(&ctx, json!({"path": "five.txt", "max_bytes": 6})).await;
        assert_eq!(o.output, "one\ntw\n[... truncated: 18 more bytes ...]");
        assert_eq!(o.truncated_bytes, 18);
        let o = run(
            &ctx,
            json!({"path": "five.txt", "end_line": 2, "max_bytes": 4}),
        )
        .await;
        assert_eq!(o.output, "one\n[... truncated: 4 more bytes ...]");
        ctx.limits.read_bytes = 8;
        let o = run(&ctx, json!({"path": "five.txt", "max_bytes": 1000})).await;
        assert_eq!(o.output, "one\ntwo\n[... truncated: 16 more bytes ...]");
        assert_eq!(o.truncated_bytes, 16);
        // A cut never splits a UTF-8 character.
        fs::write(ctx.workspace.root().join("u.txt"), "aé").unwrap();
        let o = run(&ctx, json!({"path": "u.txt", "max_bytes": 2})).await;
        assert_eq!(o.output, "a\n[... truncated: 2 more bytes ...]");
    }

    #[tokio::test]
    async fn escapes_are_error_observations() {
        let (dir, ctx) = fixture();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "secret").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link")).unwrap();
        let abs = outside.path().join("secret");
        for path in [
            "../secret",
            abs.to_str().unwrap(),
            "link",
            "/proc/self/environ",
        ] {
            let o = run(&ctx, json!({ "path": path })).await;
            assert_eq!(o.status, ExecStatus::Error, "{path}");
            assert!(
                !o.output.contains("secret\n") && o.output != "secret",
                "{path}"
            );
        }
        let o = run(&ctx, json!({"path": "link"})).await;
        assert!(o.output.contains("symlink `link`"), "{}", o.output);
    }

    #[test]
    fn schema_rejects_bad_arguments() {
        let r = Registry::builtin();
        let err = r
            .compile(NAME, &json!({"path": "a", "start_line": -1}))
            .unwrap_err();
        assert!(err.to_string().contains("`start_line`"), "{err}");
        let err = r
            .compile(NAME, &json!({"path": "a", "lines": "1-2"}))
            .unwrap_err();
        assert!(err.to_string().contains("unknown field `lines`"), "{err}");
    }
}
