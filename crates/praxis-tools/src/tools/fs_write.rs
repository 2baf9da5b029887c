//! `fs_write`: create or overwrite a file inside the workspace.

use crate::registry::{path_resource, run_blocking, tool_spec};
use crate::{BoxFuture, ExecContext, ToolContract, Workspace};
use praxis_core::{AccessMode, Effect, Observation, Resource, ToolSpec};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

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

impl ToolContract for FsWriteTool {
    fn spec(&self) -> ToolSpec {
        tool_spec::<FsWriteArgs>(
            NAME,
            "Write a file of the workspace with the given content (creating it, or replacing \
             its whole content). For small changes to an existing file prefer fs_patch.",
            Effect::Write,
        )
    }

    fn resources(&self, args: &Value) -> Vec<Resource> {
        path_resource(args, AccessMode::Write)
    }

    fn execute<'a>(&'a self, ctx: &'a ExecContext, args: Value) -> BoxFuture<'a, Observation> {
        let ws = ctx.workspace.clone();
        run_blocking(NAME, args, move |args: FsWriteArgs| write(&ws, &args))
    }
}

fn write(ws: &Workspace, args: &FsWriteArgs) -> Observation {
    let target = match ws.resolve_for_write(&args.path) {
        Ok(t) => t,
        Err(e) => return Observation::error(e.to_string()),
    };
    let rel = ws.relative(&target);
    let existed = match target.symlink_metadata() {
        Ok(meta) if meta.is_dir() => {
            return Observation::error(format!("`{rel}` is a directory, not a file"));
        }
        Ok(_) => true,
        Err(_) => false,
    };
    if let Some(parent) = target.parent()
        && !parent.is_dir()
    {
        if !args.create_dirs {
            return Observation::error(format!(
                "directory `{}` does not exist (pass create_dirs: true to create it)",
                ws.relative(parent)
            ));
        }
        if let Err(e) = std::fs::create_dir_all(parent) {
            return Observation::error(format!(
                "cannot create directory `{}`: {e}",
                ws.relative(parent)
            ));
        }
    }
    match write_no_follow(ws, &target, args.content.as_bytes()) {
        Ok(()) => Observation::ok(format!(
            "wrote {} bytes to {rel} ({})",
            args.content.len(),
            if existed { "overwritten" } else { "created" }
        )),
        Err(e) => Observation::error(format!("cannot write `{rel}`: {e}")),
    }
}

/// Writes `bytes` to `path` (from `resolve_for_write`, so inside `ws`) without letting a
/// concurrent swap send the write elsewhere: the file is opened with `openat2` relative to
/// the workspace root with `RESOLVE_BENEATH`, so the kernel refuses any resolution that
/// leaves the workspace (a parent directory replaced by a symlink pointing out, `..`), and
/// `O_NOFOLLOW` refuses a symlink planted at the final component. Kernels without `openat2`
/// (before 5.6) get the `O_NOFOLLOW` open of the checked path alone.
pub(crate) fn write_no_follow(ws: &Workspace, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = match path.strip_prefix(ws.root()) {
        Ok(relative) => match open_beneath(ws.root(), relative)? {
            Some(file) => file,
            None => open_no_follow(path)?,
        },
        Err(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{} is outside the workspace", path.display()),
            ));
        }
    };
    file.write_all(bytes)?;
    file.flush()
}

fn open_no_follow(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// `openat2(root, relative, O_WRONLY|O_CREAT|O_TRUNC|O_NOFOLLOW, RESOLVE_BENEATH |
/// RESOLVE_NO_MAGICLINKS)`; None when the kernel has no `openat2`.
fn open_beneath(root: &Path, relative: &Path) -> std::io::Result<Option<std::fs::File>> {
    use std::ffi::CString;
    use std::os::fd::{AsRawFd, FromRawFd};
    use std::os::unix::ffi::OsStrExt;
    let dir = std::fs::File::open(root)?;
    let name = CString::new(relative.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: open_how is plain data; zeroed is a valid value that is then filled in.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags =
        (libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            as u64;
    how.mode = 0o666;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: valid fd, NUL-terminated path and a pointer to a live open_how of the size given.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            name.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        let error = std::io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(libc::ENOSYS) => Ok(None),
            Some(libc::EXDEV) => Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{} resolves outside the workspace (a component was swapped for a link)",
                    relative.display()
                ),
            )),
            _ => Err(error),
        };
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(Some(unsafe { std::fs::File::from_raw_fd(fd as i32) }))
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

    /// The race `resolve_for_write` alone cannot close: a checked parent directory is
    /// swapped for a symlink pointing out before the open. The kernel refuses the open.
    #[test]
    fn a_parent_swapped_for_a_link_after_the_check_is_refused() {
        let (dir, ctx) = fixture();
        let outside = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        let ws = &ctx.workspace;
        let target = ws.resolve_for_write("sub/file.txt").unwrap();
        // Control: unswapped, the write lands inside.
        write_no_follow(ws, &target, b"inside").unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "inside");
        fs::remove_dir_all(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("sub")).unwrap();
        let err = write_no_follow(ws, &target, b"escaped").unwrap_err();
        assert!(err.to_string().contains("outside the workspace"), "{err}");
        assert!(!outside.path().join("file.txt").exists());
    }
}
