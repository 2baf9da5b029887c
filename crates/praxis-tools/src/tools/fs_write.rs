//! `fs_write`: create or overwrite a file inside the workspace.

use crate::registry::{path_resource, run_blocking};
use crate::{BoxFuture, ExecContext, Tool, Workspace, WorkspaceError};
use praxis_core::{AccessMode, Effect, Observation, Resource};
use schemars::JsonSchema;
use serde::Deserialize;
use std::io::Write;

pub const NAME: &str = "fs_write";

/// Arguments of `fs_write`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FsWriteArgs {
    /// File to write, relative to the workspace root. Overwritten if it exists.
    pub path: String,
    /// The complete new content of the file.
    pub content: String,
    /// Create missing parent directories (default true).
    #[serde(default = "yes")]
    pub create_dirs: bool,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Copy, Debug, Default)]
pub struct FsWriteTool;

impl Tool for FsWriteTool {
    type Args = FsWriteArgs;
    const NAME: &'static str = NAME;
    const DESCRIPTION: &'static str = "Write a file of the workspace with the given content \
         (creating it, or replacing its whole content). For small changes to an existing file \
         prefer fs_patch.";
    const EFFECT: Effect = Effect::Write;

    fn touches(&self, args: &FsWriteArgs) -> Vec<Resource> {
        path_resource(&args.path, AccessMode::Write)
    }

    fn run<'a>(&'a self, ctx: &'a ExecContext, args: FsWriteArgs) -> BoxFuture<'a, Observation> {
        let ws = ctx.workspace.clone();
        run_blocking(NAME, args, move |args: FsWriteArgs| write(&ws, &args))
    }
}

/// Creates or truncates the file through [`Workspace::create_file`] (parents made with
/// `mkdirat` relative to their parent's descriptor, the file opened beneath the root) and
/// writes the content to that descriptor.
fn write(ws: &Workspace, args: &FsWriteArgs) -> Observation {
    let (mut opened, existed) = match ws.create_file(&args.path, args.create_dirs) {
        Ok(f) => f,
        Err(WorkspaceError::IsDirectory { .. }) => {
            let rel = ws
                .normalize(&args.path)
                .unwrap_or_else(|_| args.path.clone());
            return Observation::error(format!("`{rel}` is a directory, not a file"));
        }
        Err(e) => return Observation::error(e.to_string()),
    };
    let rel = opened.display.clone();
    match opened
        .file
        .write_all(args.content.as_bytes())
        .and_then(|()| opened.file.flush())
    {
        Ok(()) => Observation::ok(format!(
            "wrote {} bytes to {rel} ({})",
            args.content.len(),
            if existed { "overwritten" } else { "created" }
        )),
        Err(e) => Observation::error(format!("cannot write `{rel}`: {e}")),
    }
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
        let ctx = ExecContext::new(Workspace::new(dir.path()).unwrap());
        (dir, ctx)
    }

    async fn run(ctx: &ExecContext, args: Value) -> Observation {
        FsWriteTool.execute(ctx, args).await
    }

    #[tokio::test]
    async fn creates_overwrites_and_makes_directories() {
        let (dir, ctx) = fixture();
        let o = run(&ctx, json!({"path": "a/b/c.txt", "content": "héllo"})).await;
        assert_eq!(
            (o.status, o.output.as_str()),
            (ExecStatus::Ok, "wrote 6 bytes to a/b/c.txt (created)")
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("a/b/c.txt")).unwrap(),
            "héllo"
        );
        let o = run(&ctx, json!({"path": "./a/b/c.txt", "content": "x"})).await;
        assert_eq!(o.output, "wrote 1 bytes to a/b/c.txt (overwritten)");
        assert_eq!(
            fs::read_to_string(dir.path().join("a/b/c.txt")).unwrap(),
            "x"
        );
        let o = run(
            &ctx,
            json!({"path": "new/d.txt", "content": "", "create_dirs": false}),
        )
        .await;
        assert_eq!(o.status, ExecStatus::Error);
        assert_eq!(
            o.output,
            "directory `new` does not exist (pass create_dirs: true to create it)"
        );
        let o = run(&ctx, json!({"path": "a", "content": "x"})).await;
        assert_eq!(o.output, "`a` is a directory, not a file");
    }

    #[tokio::test]
    async fn writes_through_inside_symlink_to_its_target() {
        let (dir, ctx) = fixture();
        fs::write(dir.path().join("real.txt"), "old").unwrap();
        std::os::unix::fs::symlink("real.txt", dir.path().join("alias")).unwrap();
        let o = run(&ctx, json!({"path": "alias", "content": "new"})).await;
        assert_eq!(o.output, "wrote 3 bytes to real.txt (overwritten)");
        assert_eq!(
            fs::read_to_string(dir.path().join("real.txt")).unwrap(),
            "new"
        );
    }

    #[tokio::test]
    async fn escapes_are_refused_and_nothing_outside_changes() {
        let (dir, ctx) = fixture();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret.txt");
        fs::write(&secret, "secret").unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join("leak")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("outdir")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("made.txt"), dir.path().join("dangling"))
            .unwrap();
        let abs = outside.path().join("abs.txt");
        for path in [
            "../x.txt",
            abs.to_str().unwrap(),
            "leak",
            "outdir/new.txt",
            "outdir/sub/new.txt",
            "dangling",
            "/proc/self/environ",
        ] {
            let o = run(&ctx, json!({ "path": path, "content": "pwned" })).await;
            assert_eq!(o.status, ExecStatus::Error, "{path}: {}", o.output);
        }
        assert_eq!(fs::read_to_string(&secret).unwrap(), "secret");
        let entries: Vec<_> = fs::read_dir(outside.path()).unwrap().collect();
        assert_eq!(entries.len(), 1, "nothing new appeared outside");
        let o = run(&ctx, json!({"path": "leak", "content": "pwned"})).await;
        assert!(o.output.contains("symlink `leak`"), "{}", o.output);
    }

    #[test]
    fn schema_rejects_bad_arguments() {
        let r = Registry::builtin();
        let err = r
            .compile(NAME, &json!({"path": "a"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing required field `content`"), "{err}");
        let err = r
            .compile(NAME, &json!({"path": "a", "content": 3, "mode": "w"}))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`content`: 3 is not of type \"string\""),
            "{err}"
        );
        assert!(err.contains("unknown field `mode`"), "{err}");
    }

    /// A checked parent directory swapped for a symlink pointing out: the open resolves
    /// beneath the root's descriptor, so the kernel refuses it and nothing is created
    /// outside (not the file, not a parent directory).
    #[tokio::test]
    async fn a_parent_that_is_a_link_out_is_refused_and_nothing_is_created_outside() {
        let (dir, ctx) = fixture();
        let outside = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        // Control: a real directory, the write lands inside.
        let o = run(&ctx, json!({"path": "sub/x/file.txt", "content": "in"})).await;
        assert_eq!(o.status, ExecStatus::Ok, "{}", o.output);
        fs::remove_dir_all(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("sub")).unwrap();
        for path in ["sub/file.txt", "sub/x/file.txt", "sub/x/y/file.txt"] {
            let o = run(&ctx, json!({"path": path, "content": "out"})).await;
            assert_eq!(o.status, ExecStatus::Error, "{path}: {}", o.output);
        }
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}
