//! `grep`: regex search over the workspace with ripgrep's own crates.

use crate::registry::{capped_ok, path_resource, run_blocking};
use crate::tools::list_files::{compile_glob, glob_matches};
use crate::{BoxFuture, ExecContext, Tool, Workspace};
use grep_regex::RegexMatcherBuilder;
use grep_searcher::{BinaryDetection, SearcherBuilder, sinks::Lossy};
use praxis_core::{AccessMode, Effect, Observation, Resource};
use schemars::JsonSchema;
use serde::Deserialize;
use std::ops::ControlFlow;

pub const NAME: &str = "grep";

/// A matching line longer than this is shortened in the output (minified files would
/// otherwise flood it).
const MAX_LINE_CHARS: usize = 500;
/// The most memory the searcher may hold for one file's lines.
const MAX_LINE_BUFFER: usize = 8 * 1024 * 1024;

/// Arguments of `grep`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrepArgs {
    /// Regular expression (Rust regex syntax), matched against each line.
    pub pattern: String,
    /// File or directory to search, relative to the workspace root (default: the root).
    #[serde(default = "dot")]
    pub path: String,
    /// Only search files whose path matches this glob, e.g. "*.rs".
    #[serde(default)]
    pub glob: Option<String>,
    /// Match case-insensitively (default false).
    #[serde(default)]
    pub case_insensitive: bool,
    /// Show at most this many matching lines (default 100).
    #[serde(default = "default_max_matches")]
    pub max_matches: usize,
}

fn dot() -> String {
    ".".to_string()
}

fn default_max_matches() -> usize {
    100
}

#[derive(Clone, Copy, Debug, Default)]
pub struct GrepTool;

impl Tool for GrepTool {
    type Args = GrepArgs;
    const NAME: &'static str = NAME;
    const DESCRIPTION: &'static str = "Search the workspace for lines matching a regular \
         expression. Output: one `path:line:text` per matching line, sorted by path then \
         line. Honours .gitignore; skips binary files.";
    const EFFECT: Effect = Effect::Read;

    fn touches(&self, args: &GrepArgs) -> Vec<Resource> {
        path_resource(&args.path, AccessMode::Read)
    }

    fn run<'a>(&'a self, ctx: &'a ExecContext, args: GrepArgs) -> BoxFuture<'a, Observation> {
        let (ws, limit) = (ctx.workspace.clone(), ctx.limits.output_bytes);
        run_blocking(NAME, args, move |args: GrepArgs| search(&ws, &args, limit))
    }
}

fn search(ws: &Workspace, args: &GrepArgs, limit: usize) -> Observation {
    let matcher = match RegexMatcherBuilder::new()
        .case_insensitive(args.case_insensitive)
        // Lines are searched one at a time: a pattern cannot match across them.
        .line_terminator(Some(b'\n'))
        .build(&args.pattern)
    {
        Ok(m) => m,
        Err(e) => {
            return Observation::error(format!("invalid regex `{}`: {e}", args.pattern));
        }
    };
    let glob = match compile_glob(args.glob.as_deref()) {
        Ok(g) => g,
        Err(e) => return Observation::error(e),
    };
    let start = match ws.normalize(&args.path) {
        Ok(p) => p,
        Err(e) => return Observation::error(e.to_string()),
    };
    let mut searcher = SearcherBuilder::new()
        .line_number(true)
        .binary_detection(BinaryDetection::quit(0))
        // A line longer than this is an error for that file, not a buffer of its size.
        .heap_limit(Some(MAX_LINE_BUFFER))
        .build();
    let mut shown: Vec<String> = Vec::new();
    let mut total = 0usize;
    let mut unreadable = Vec::new();
    // Each file is searched through the descriptor the walk opened, relative to its
    // directory's descriptor: never by path.
    let walked = ws.walk(&args.path, |entry| {
        let rel = entry.rel;
        if glob.as_ref().is_some_and(|g| !glob_matches(g, rel, &start)) {
            return ControlFlow::Continue(());
        }
        let result = entry.open().and_then(|file| {
            searcher.search_file(
                &matcher,
                &file,
                Lossy(|line, text| {
                    total += 1;
                    if shown.len() < args.max_matches {
                        shown.push(format!("{rel}:{line}:{}", shorten(text)));
                    }
                    Ok(true)
                }),
            )
        });
        if result.is_err() {
            unreadable.push(rel.to_string());
        }
        ControlFlow::Continue(())
    });
    if let Err(e) = walked {
        return Observation::error(e.to_string());
    }
    let mut text = String::new();
    for line in &shown {
        text.push_str(line);
        text.push('\n');
    }
    if total == 0 {
        text.push_str("no matches\n");
    } else if total > shown.len() {
        text.push_str(&format!(
            "[... {} more matches not shown ...]\n",
            total - shown.len()
        ));
    }
    if !unreadable.is_empty() {
        text.push_str(&format!("[could not read: {}]\n", unreadable.join(", ")));
    }
    capped_ok(limit, text)
}

fn shorten(line: &str) -> String {
    let line = line.trim_end_matches(['\n', '\r']);
    if line.chars().count() <= MAX_LINE_CHARS {
        return line.to_string();
    }
    let mut out: String = line.chars().take(MAX_LINE_CHARS).collect();
    out.push_str(" [...]");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Registry, ToolContract};
    use praxis_core::{Contracts, ExecStatus};
    use serde_json::Value;
    use serde_json::json;
    use std::fs;

    fn fixture() -> (tempfile::TempDir, ExecContext) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("src")).unwrap();
        fs::create_dir_all(root.join("build")).unwrap();
        fs::write(root.join(".gitignore"), "build/\n").unwrap();
        fs::write(
            root.join("src/b.rs"),
            "fn beta() {}\nlet Todo = 1;\n// TODO later\n",
        )
        .unwrap();
        fs::write(root.join("src/a.rs"), "// TODO first\nfn alpha() {}\n").unwrap();
        fs::write(root.join("notes.md"), "TODO: docs\n").unwrap();
        fs::write(root.join("build/out.rs"), "TODO generated\n").unwrap();
        fs::write(root.join("blob.bin"), b"TODO\0binary").unwrap();
        let ctx = ExecContext::new(Workspace::new(root).unwrap());
        (dir, ctx)
    }

    async fn run(ctx: &ExecContext, args: Value) -> Observation {
        GrepTool.execute(ctx, args).await
    }

    #[tokio::test]
    async fn finds_matches_sorted_by_path_then_line() {
        let (_d, ctx) = fixture();
        let o = run(&ctx, json!({"pattern": "TODO"})).await;
        assert_eq!(o.status, ExecStatus::Ok);
        assert_eq!(
            o.output,
            "notes.md:1:TODO: docs\nsrc/a.rs:1:// TODO first\nsrc/b.rs:3:// TODO later\n"
        );
        let o = run(
            &ctx,
            json!({"pattern": "todo", "case_insensitive": true, "path": "src/b.rs"}),
        )
        .await;
        assert_eq!(
            o.output,
            "src/b.rs:2:let Todo = 1;\nsrc/b.rs:3:// TODO later\n"
        );
        let o = run(&ctx, json!({"pattern": r"fn \w+\(", "glob": "*.rs"})).await;
        assert_eq!(
            o.output,
            "src/a.rs:2:fn alpha() {}\nsrc/b.rs:1:fn beta() {}\n"
        );
        let o = run(&ctx, json!({"pattern": "nothing-like-this"})).await;
        assert_eq!(
            (o.status, o.output.as_str()),
            (ExecStatus::Ok, "no matches\n")
        );
    }

    #[tokio::test]
    async fn max_matches_and_output_cap_add_markers() {
        let (_d, mut ctx) = fixture();
        let o = run(&ctx, json!({"pattern": "TODO", "max_matches": 1})).await;
        assert_eq!(
            o.output,
            "notes.md:1:TODO: docs\n[... 2 more matches not shown ...]\n"
        );
        ctx.limits.output_bytes = 10;
        let o = run(&ctx, json!({"pattern": "TODO"})).await;
        assert!(
            o.output.starts_with("notes.md:1\n[... truncated: "),
            "{}",
            o.output
        );
        assert!(o.truncated_bytes > 0);
    }

    #[tokio::test]
    async fn bad_regex_and_escapes_are_errors() {
        let (dir, ctx) = fixture();
        let o = run(&ctx, json!({"pattern": "fn (unclosed"})).await;
        assert_eq!(o.status, ExecStatus::Error);
        assert!(
            o.output.starts_with("invalid regex `fn (unclosed`:"),
            "{}",
            o.output
        );
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret.rs"), "TODO secret").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        for path in ["..", "/etc", "out"] {
            let o = run(&ctx, json!({"pattern": "TODO", "path": path})).await;
            assert_eq!(o.status, ExecStatus::Error, "{path}: {}", o.output);
        }
        let o = run(&ctx, json!({"pattern": "secret"})).await;
        assert_eq!(o.output, "no matches\n");
    }

    #[test]
    fn schema_rejects_bad_arguments() {
        let r = Registry::builtin();
        let err = r
            .compile(NAME, &json!({"regex": "x"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing required field `pattern`"), "{err}");
        assert!(err.contains("unknown field `regex`"), "{err}");
        let err = r
            .compile(NAME, &json!({"pattern": "x", "case_insensitive": "yes"}))
            .unwrap_err();
        assert!(err.to_string().contains("`case_insensitive`"), "{err}");
    }
}
