//! `list_files`: the files under a directory, honouring ignore rules.

use crate::registry::{capped_ok, path_resource, run_blocking};
use crate::{BoxFuture, ExecContext, Tool};
use globset::{Glob, GlobMatcher};
use praxis_core::{AccessMode, Effect, Observation, Resource};
use schemars::JsonSchema;
use serde::Deserialize;
use std::ops::ControlFlow;
use std::path::Path;

pub const NAME: &str = "list_files";

/// Arguments of `list_files`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListFilesArgs {
    /// Directory to list, relative to the workspace root (default: the root).
    #[serde(default = "dot")]
    pub path: String,
    /// Only list files whose path (relative to the workspace root or to `path`) matches this
    /// glob, e.g. "*.rs" or "src/**/test_*.py".
    #[serde(default)]
    pub glob: Option<String>,
    /// List at most this many files (default 500).
    #[serde(default = "default_max_entries")]
    pub max_entries: usize,
}

fn dot() -> String {
    ".".to_string()
}

fn default_max_entries() -> usize {
    500
}

/// Compiles an optional glob argument, or an error message naming it.
pub(crate) fn compile_glob(glob: Option<&str>) -> Result<Option<GlobMatcher>, String> {
    glob.map(|g| {
        Glob::new(g)
            .map(|g| g.compile_matcher())
            .map_err(|e| format!("invalid glob `{g}`: {e}"))
    })
    .transpose()
}

/// Whether the file `rel` (workspace-relative) matches `glob`, tried on that path and on its
/// path relative to the listed directory `dir` (so "*.rs" and "sub/*.rs" both work from
/// anywhere).
pub(crate) fn glob_matches(glob: &GlobMatcher, rel: &str, dir: &str) -> bool {
    glob.is_match(rel)
        || Path::new(rel)
            .strip_prefix(dir)
            .is_ok_and(|p| !p.as_os_str().is_empty() && glob.is_match(p))
}

#[derive(Clone, Copy, Debug, Default)]
pub struct ListFilesTool;

impl Tool for ListFilesTool {
    type Args = ListFilesArgs;
    const NAME: &'static str = NAME;
    const DESCRIPTION: &'static str = "List the files under a directory of the workspace \
         (recursively, sorted, one path per line relative to the workspace root). Honours \
         .gitignore; skips .git.";
    const EFFECT: Effect = Effect::Read;

    fn touches(&self, args: &ListFilesArgs) -> Vec<Resource> {
        path_resource(&args.path, AccessMode::Read)
    }

    fn run<'a>(&'a self, ctx: &'a ExecContext, args: ListFilesArgs) -> BoxFuture<'a, Observation> {
        let limit = ctx.limits.output_bytes;
        let ws = ctx.workspace.clone();
        run_blocking(NAME, args, move |args: ListFilesArgs| {
            list(&ws, &args, limit)
        })
    }
}

fn list(ws: &crate::Workspace, args: &ListFilesArgs, limit: usize) -> Observation {
    let glob = match compile_glob(args.glob.as_deref()) {
        Ok(g) => g,
        Err(e) => return Observation::error(e),
    };
    let dir = match ws.normalize(&args.path) {
        Ok(d) => d,
        Err(e) => return Observation::error(e.to_string()),
    };
    let mut listed = Vec::new();
    let mut total = 0usize;
    let walked = ws.walk(&args.path, |file| {
        if glob
            .as_ref()
            .is_none_or(|g| glob_matches(g, file.rel, &dir))
        {
            total += 1;
            if listed.len() < args.max_entries {
                listed.push(file.rel.to_string());
            }
        }
        ControlFlow::Continue(())
    });
    if let Err(e) = walked {
        return Observation::error(e.to_string());
    }
    let mut text = String::new();
    for rel in &listed {
        text.push_str(rel);
        text.push('\n');
    }
    if total > listed.len() {
        text.push_str(&format!(
            "[... {} more files not listed ...]\n",
            total - listed.len()
        ));
    }
    if total == 0 {
        text.push_str("no files\n");
    }
    capped_ok(limit, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Registry, ToolContract, Workspace};
    use praxis_core::ExecStatus;
    use serde_json::Value;
    use serde_json::json;
    use std::fs;

    fn fixture() -> (tempfile::TempDir, ExecContext) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("src/nested")).unwrap();
        fs::create_dir_all(root.join("target/debug")).unwrap();
        fs::create_dir_all(root.join(".git/objects")).unwrap();
        fs::write(root.join(".gitignore"), "target/\n*.log\n").unwrap();
        fs::write(root.join("README.md"), "readme").unwrap();
        fs::write(root.join("src/main.rs"), "fn main() {}").unwrap();
        fs::write(root.join("src/nested/lib.rs"), "").unwrap();
        fs::write(root.join("src/.hidden"), "").unwrap();
        fs::write(root.join("debug.log"), "").unwrap();
        fs::write(root.join("target/debug/app"), "").unwrap();
        fs::write(root.join(".git/HEAD"), "ref").unwrap();
        let ctx = ExecContext::new(Workspace::new(root).unwrap());
        (dir, ctx)
    }

    async fn run(ctx: &ExecContext, args: Value) -> Observation {
        ListFilesTool.execute(ctx, args).await
    }

    #[tokio::test]
    async fn lists_sorted_files_honouring_gitignore_and_skipping_git() {
        let (_d, ctx) = fixture();
        let o = run(&ctx, json!({})).await;
        assert_eq!(o.status, ExecStatus::Ok);
        assert_eq!(
            o.output,
            ".gitignore\nREADME.md\nsrc/.hidden\nsrc/main.rs\nsrc/nested/lib.rs\n"
        );
        let o = run(&ctx, json!({"path": "src/nested"})).await;
        assert_eq!(o.output, "src/nested/lib.rs\n");
        // Named explicitly, an ignored directory or file is listed (as ripgrep does).
        let o = run(&ctx, json!({"path": "target"})).await;
        assert_eq!(o.output, "target/debug/app\n");
        let o = run(&ctx, json!({"path": "debug.log"})).await;
        assert_eq!(o.output, "debug.log\n");
        let o = run(&ctx, json!({"path": ".git"})).await;
        assert_eq!(o.output, "no files\n");
    }

    #[tokio::test]
    async fn glob_filters_and_max_entries_caps_with_marker() {
        let (_d, ctx) = fixture();
        let o = run(&ctx, json!({"glob": "*.rs"})).await;
        assert_eq!(o.output, "src/main.rs\nsrc/nested/lib.rs\n");
        let o = run(&ctx, json!({"path": "src", "glob": "nested/*.rs"})).await;
        assert_eq!(o.output, "src/nested/lib.rs\n");
        let o = run(&ctx, json!({"max_entries": 2})).await;
        assert_eq!(
            o.output,
            ".gitignore\nREADME.md\n[... 3 more files not listed ...]\n"
        );
        let o = run(&ctx, json!({"glob": "*.zig"})).await;
        assert_eq!(o.output, "no files\n");
        let o = run(&ctx, json!({"glob": "a[b"})).await;
        assert_eq!(o.status, ExecStatus::Error);
        assert!(o.output.contains("invalid glob `a[b`"), "{}", o.output);
    }

    #[tokio::test]
    async fn output_is_capped_at_the_output_limit() {
        let (_d, mut ctx) = fixture();
        let full = run(&ctx, json!({})).await.output;
        ctx.limits.output_bytes = 12;
        let o = run(&ctx, json!({})).await;
        let dropped = full.len() - 12;
        assert_eq!(
            o.output,
            format!(".gitignore\nR\n[... truncated: {dropped} more bytes ...]")
        );
        assert_eq!(o.truncated_bytes, dropped as u64);
    }

    #[tokio::test]
    async fn escapes_are_error_observations() {
        let (dir, ctx) = fixture();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("x.rs"), "").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        for path in ["..", "/etc", "out", "out/"] {
            let o = run(&ctx, json!({ "path": path })).await;
            assert_eq!(o.status, ExecStatus::Error, "{path}: {}", o.output);
        }
        // The symlink itself is not followed by the walk.
        let o = run(&ctx, json!({})).await;
        assert!(!o.output.contains("x.rs"), "{}", o.output);
        let o = run(&ctx, json!({"path": "missing"})).await;
        assert_eq!(o.output, "`missing` does not exist in the workspace");
    }

    #[test]
    fn schema_rejects_bad_arguments() {
        let r = Registry::builtin();
        use praxis_core::Contracts;
        let err = r
            .compile(NAME, &json!({"path": 1, "max_entries": "x", "extra": true}))
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`path`: 1 is not of type \"string\""),
            "{text}"
        );
        assert!(
            text.contains("`max_entries`: \"x\" is not of type \"integer\""),
            "{text}"
        );
        assert!(text.contains("unknown field `extra`"), "{text}");
    }
}
