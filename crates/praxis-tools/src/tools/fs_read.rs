//! `fs_read`: the raw text of a file, or of a range of its lines.

use crate::registry::{path_resource, run_blocking};
use crate::{Access, BoxFuture, ExecContext, Tool, Workspace, WorkspaceError};
use praxis_core::{AccessMode, Effect, Observation, Resource};
use schemars::JsonSchema;
use serde::Deserialize;
use std::io::{BufRead, BufReader};

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

impl Tool for FsReadTool {
    type Args = FsReadArgs;
    const NAME: &'static str = NAME;
    const DESCRIPTION: &'static str = "Read a text file of the workspace, optionally only lines \
         start_line..=end_line (1-based). Returns the raw text without line numbers.";
    const EFFECT: Effect = Effect::Read;

    fn touches(&self, args: &FsReadArgs) -> Vec<Resource> {
        path_resource(&args.path, AccessMode::Read)
    }

    fn run<'a>(&'a self, ctx: &'a ExecContext, args: FsReadArgs) -> BoxFuture<'a, Observation> {
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
    let opened = match ws.open_file(&args.path, Access::Read) {
        Ok(f) => f,
        Err(WorkspaceError::IsDirectory { .. }) => {
            return Observation::error(format!(
                "`{}` is a directory; use list_files to see its contents",
                args.path
            ));
        }
        Err(e) => return Observation::error(e.to_string()),
    };
    let size = opened.file.metadata().ok().map(|m| m.len());
    let mut reader = BufReader::with_capacity(64 * 1024, opened.file);
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
    let selected = match select_lines(&mut reader, size, start, args.end_line, limit) {
        Ok(s) => s,
        Err(e) => return io_error(e),
    };
    let number = selected.lines;
    if number < start && !(number == 0 && start == 1) {
        return Observation::error(format!(
            "start_line {start} is past the end of `{}`, which has {number} lines",
            args.path
        ));
    }
    let dropped = selected.dropped;
    let mut text = String::from_utf8_lossy(&selected.kept).into_owned();
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

/// Lines `start..=end` of a stream, at most `limit` bytes of them kept.
#[derive(Debug, PartialEq, Eq)]
struct Selected {
    kept: Vec<u8>,
    /// Selected bytes not kept.
    dropped: u64,
    /// Lines seen (all of them when the stream was read to its end).
    lines: usize,
}

/// Streams `reader` chunk by chunk, never holding more than `limit` bytes plus one buffer:
/// a line is never buffered whole (a 3 GB line costs no more memory than a short one).
/// When the selection runs to the end of the file and `size` (the file's length) is known,
/// the rest is counted from it instead of being read.
fn select_lines(
    reader: &mut impl BufRead,
    size: Option<u64>,
    start: usize,
    end: Option<usize>,
    limit: usize,
) -> std::io::Result<Selected> {
    let mut kept: Vec<u8> = Vec::new();
    let mut dropped: u64 = 0;
    let mut lines = 0usize;
    let mut at_line_start = true;
    let mut consumed: u64 = 0;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        let mut at = 0;
        let mut done = false;
        while at < chunk.len() {
            if at_line_start {
                lines += 1;
                at_line_start = false;
                if end.is_some_and(|end| lines > end) {
                    lines -= 1;
                    done = true;
                    break;
                }
            }
            let (until, ends_line) = match chunk[at..].iter().position(|&b| b == b'\n') {
                Some(i) => (at + i + 1, true),
                None => (chunk.len(), false),
            };
            let piece = &chunk[at..until];
            if lines >= start {
                let room = limit.saturating_sub(kept.len());
                if dropped == 0 && piece.len() <= room {
                    kept.extend_from_slice(piece);
                } else if dropped == 0 {
                    let cut = char_boundary(piece, room);
                    kept.extend_from_slice(&piece[..cut]);
                    dropped += (piece.len() - cut) as u64;
                } else {
                    dropped += piece.len() as u64;
                }
                if dropped > 0
                    && end.is_none()
                    && let Some(size) = size
                {
                    // Everything after this piece is selected and dropped.
                    dropped += size.saturating_sub(consumed + until as u64);
                    at = until;
                    done = true;
                    break;
                }
            }
            at_line_start = ends_line;
            at = until;
        }
        consumed += at as u64;
        reader.consume(at);
        if done {
            break;
        }
    }
    Ok(Selected {
        kept,
        dropped,
        lines,
    })
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
    use crate::{Registry, ToolContract};
    use praxis_core::{Contracts, ExecStatus};
    use serde_json::Value;
    use serde_json::json;
    use std::fs;
    use std::io::Read;

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

    /// Finding 7: a FIFO in the workspace is refused before any open that could block
    /// (opening it for reading would wait for a writer forever).
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let (dir, ctx) = fixture();
        let fifo = std::ffi::CString::new(
            dir.path()
                .join("pipe")
                .as_os_str()
                .as_encoded_bytes()
                .to_vec(),
        )
        .unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let read = rt.block_on(run(&ctx, json!({"path": "pipe"})));
            let patch = rt.block_on(crate::tools::fs_patch::FsPatchTool.execute(
                &ctx,
                json!({"path": "pipe", "edits": [{"search": "a", "replace": "b"}]}),
            ));
            let write = rt.block_on(
                crate::tools::fs_write::FsWriteTool
                    .execute(&ctx, json!({"path": "pipe", "content": "x"})),
            );
            tx.send((read, patch, write)).unwrap();
        });
        // A hang is the failure this test exists for: wait long, then say so.
        let (read, patch, write) = rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("a file tool blocked on a FIFO");
        for o in [read, patch, write] {
            assert_eq!(o.status, ExecStatus::Error, "{}", o.output);
            assert!(
                o.output.contains("is a FIFO, not a regular file"),
                "{}",
                o.output
            );
        }
    }

    /// Finding 9: a huge one-line file is not buffered. The file is sparse, 64 GiB long: an
    /// implementation that reads the line into memory cannot answer.
    #[tokio::test]
    async fn a_huge_single_line_is_capped_without_reading_it() {
        let (dir, ctx) = fixture();
        let path = dir.path().join("huge.txt");
        let file = fs::File::create(&path).unwrap();
        std::io::Write::write_all(&mut &file, &[b'a'; 16 * 1024]).unwrap();
        const SIZE: u64 = 64 << 30;
        file.set_len(SIZE).unwrap();
        let o = run(&ctx, json!({"path": "huge.txt", "max_bytes": 100})).await;
        assert_eq!(o.status, ExecStatus::Ok, "{}", o.output);
        assert_eq!(o.truncated_bytes, SIZE - 100);
        assert_eq!(
            o.output,
            format!(
                "{}\n[... truncated: {} more bytes ...]",
                "a".repeat(100),
                SIZE - 100
            )
        );
    }

    /// The scanner keeps at most `limit` bytes of a long line, with or without an end line
    /// and without knowing the size (it then counts the rest chunk by chunk).
    #[test]
    fn select_lines_streams_long_lines() {
        let long = std::io::repeat(b'x').take(8 << 20);
        let tail = std::io::Cursor::new(b"\nsecond\nthird\n".to_vec());
        let mut reader = BufReader::with_capacity(4096, long.chain(tail));
        let s = select_lines(&mut reader, None, 1, Some(2), 10).unwrap();
        assert_eq!(s.kept, b"xxxxxxxxxx");
        assert_eq!(s.dropped, (8 << 20) - 10 + 1 + 7);
        assert_eq!(s.lines, 2);
        assert!(s.kept.capacity() < 4096, "{}", s.kept.capacity());
        let mut reader =
            BufReader::with_capacity(4096, std::io::Cursor::new(b"one\ntwo\nthree".to_vec()));
        let s = select_lines(&mut reader, None, 2, None, 5).unwrap();
        assert_eq!(
            (s.kept.as_slice(), s.dropped, s.lines),
            (&b"two\nt"[..], 4, 3)
        );
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
