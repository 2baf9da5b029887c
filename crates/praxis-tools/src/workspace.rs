//! The workspace root and the one way tools turn a model-given path into a real one.
//!
//! Confinement happens twice: lexically with `praxis_core::policy::confine` (the same
//! function the policy uses, so there is one definition of "inside"), then physically: every
//! open resolves beneath the root's descriptor with `openat2(RESOLVE_BENEATH)` (see
//! [`crate::wsfs`], which holds every file access). `resolve` (a real path, by
//! `canonicalize`) remains for naming things and for command working directories; nothing
//! opens a file by the path it returns.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct Workspace {
    /// Canonical, absolute, no symlinks.
    root: PathBuf,
    /// The root directory, opened once: every file access resolves beneath this descriptor
    /// (see [`crate::wsfs`]), never by a path string.
    pub(crate) root_dir: Arc<OwnedFd>,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("workspace root `{}` is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    /// Lexical escape (`..`, absolute path outside) or a real path found outside the root.
    #[error("{reason}")]
    Outside { path: String, reason: String },
    #[error(
        "path `{path}` leaves the workspace through the symlink `{link}` (pointing to `{}`)",
        target.display()
    )]
    SymlinkEscape {
        path: String,
        link: String,
        target: PathBuf,
    },
    #[error("`{path}` does not exist in the workspace")]
    NotFound { path: String },
    #[error("`{path}` is a directory")]
    IsDirectory { path: String },
    /// A FIFO, socket or device: refused before any open that could block.
    #[error("`{path}` is {kind}, not a regular file; file tools only open regular files")]
    NotRegular { path: String, kind: &'static str },
    #[error("directory `{path}` does not exist (pass create_dirs: true to create it)")]
    MissingDirectory { path: String },
    #[error("cannot access `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

impl WorkspaceError {
    pub(crate) fn io(path: &str, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::NotFound {
            WorkspaceError::NotFound {
                path: path.to_string(),
            }
        } else {
            WorkspaceError::Io {
                path: path.to_string(),
                source,
            }
        }
    }
}

impl Workspace {
    /// Opens the workspace at `root` (canonicalised; must be a directory).
    pub fn new(root: impl AsRef<Path>) -> Result<Self, WorkspaceError> {
        let given = root.as_ref();
        let root = given.canonicalize().map_err(|source| WorkspaceError::Io {
            path: given.display().to_string(),
            source,
        })?;
        if !root.is_dir() {
            return Err(WorkspaceError::NotADirectory { path: root });
        }
        let dir = std::fs::File::open(&root).map_err(|source| WorkspaceError::Io {
            path: root.display().to_string(),
            source,
        })?;
        Ok(Workspace {
            root,
            root_dir: Arc::new(OwnedFd::from(dir)),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The lexically confined form of `rel` ("." for the root), relative to the root.
    pub fn normalize(&self, rel: &str) -> Result<String, WorkspaceError> {
        praxis_core::policy::confine(&self.root, rel).map_err(|reason| WorkspaceError::Outside {
            path: rel.to_string(),
            reason,
        })
    }

    /// The real path of an existing file or directory, which must lie inside the workspace
    /// after every symlink is resolved.
    pub fn resolve(&self, rel: &str) -> Result<PathBuf, WorkspaceError> {
        let lexical = self.normalize(rel)?;
        let joined = self.join(&lexical);
        if resolver_broken_for_tests() {
            return Ok(joined);
        }
        match joined.canonicalize() {
            Ok(real) if real.starts_with(&self.root) => Ok(real),
            Ok(real) => Err(self.escape_error(rel, &lexical, &real)),
            Err(e) => {
                // A symlink pointing outside to something missing must not read as "not
                // found inside": name the link.
                if let Some((link, target)) = self.escaping_link(&lexical) {
                    return Err(WorkspaceError::SymlinkEscape {
                        path: rel.to_string(),
                        link,
                        target,
                    });
                }
                Err(WorkspaceError::io(rel, e))
            }
        }
    }

    /// `abs` relative to the root with forward slashes ("." for the root itself); a path
    /// outside the root is returned whole.
    pub fn relative(&self, abs: &Path) -> String {
        match abs.strip_prefix(&self.root) {
            Ok(rest) => {
                let parts: Vec<String> = rest
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if parts.is_empty() {
                    ".".to_string()
                } else {
                    parts.join("/")
                }
            }
            Err(_) => abs.display().to_string(),
        }
    }

    fn join(&self, lexical: &str) -> PathBuf {
        if lexical == "." {
            self.root.clone()
        } else {
            self.root.join(lexical)
        }
    }

    fn escape_error(&self, rel: &str, lexical: &str, real: &Path) -> WorkspaceError {
        match self.escaping_link(lexical) {
            Some((link, target)) => WorkspaceError::SymlinkEscape {
                path: rel.to_string(),
                link,
                target,
            },
            None => WorkspaceError::Outside {
                path: rel.to_string(),
                reason: format!(
                    "path `{rel}` resolves to `{}`, outside the workspace",
                    real.display()
                ),
            },
        }
    }

    /// The first symlink along `lexical` whose resolution leaves the workspace (or cannot be
    /// resolved while pointing outside), with its literal target.
    pub(crate) fn escaping_link(&self, lexical: &str) -> Option<(String, PathBuf)> {
        let mut prefix = self.root.clone();
        for part in lexical.split('/').filter(|p| *p != "." && !p.is_empty()) {
            prefix.push(part);
            let meta = prefix.symlink_metadata().ok()?;
            if !meta.file_type().is_symlink() {
                continue;
            }
            let target = std::fs::read_link(&prefix).ok()?;
            let escapes = match prefix.canonicalize() {
                Ok(real) => !real.starts_with(&self.root),
                Err(_) => {
                    let parent = prefix.parent().unwrap_or(&self.root);
                    !lexical_normalize(&parent.join(&target)).starts_with(&self.root)
                }
            };
            if escapes {
                return Some((self.relative(&prefix), target));
            }
        }
        None
    }
}

/// `path` with `.` and `..` applied lexically (no file system access).
fn lexical_normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Debug builds only: a deliberately unsafe resolver (every symlink followed, no check), so
/// tests can prove that the worker's own confinement stops what a resolver bug would let
/// through. `praxis-worker --broken-resolver-for-tests` sets it; release builds have no switch.
#[cfg(debug_assertions)]
static BROKEN_RESOLVER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns the resolver's checks off in this process (debug builds only; see
/// [`resolver_broken_for_tests`]).
#[cfg(debug_assertions)]
#[doc(hidden)]
pub fn break_resolver_for_tests() {
    BROKEN_RESOLVER.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Whether the test-only switch turned the resolver's checks off (never in release builds).
pub(crate) fn resolver_broken_for_tests() -> bool {
    #[cfg(debug_assertions)]
    {
        BROKEN_RESOLVER.load(std::sync::atomic::Ordering::SeqCst)
    }
    #[cfg(not(debug_assertions))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wsfs::Access;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, tempfile::TempDir, Workspace) {
        let ws_dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), "secret").unwrap();
        std::fs::create_dir(ws_dir.path().join("src")).unwrap();
        std::fs::write(ws_dir.path().join("src/a.txt"), "hello").unwrap();
        let ws = Workspace::new(ws_dir.path()).unwrap();
        (ws_dir, outside, ws)
    }

    #[test]
    fn new_rejects_files_and_missing_paths() {
        let (dir, _o, _ws) = setup();
        let err = Workspace::new(dir.path().join("src/a.txt")).unwrap_err();
        assert!(matches!(err, WorkspaceError::NotADirectory { .. }), "{err}");
        let err = Workspace::new(dir.path().join("nope")).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn resolves_inside_paths_and_rejects_dot_dot_and_absolute() {
        let (_d, outside, ws) = setup();
        let real = ws.resolve("src/../src/a.txt").unwrap();
        assert_eq!(real, ws.root().join("src/a.txt"));
        assert_eq!(ws.resolve(".").unwrap(), ws.root());
        let abs = ws.root().join("src/a.txt");
        assert_eq!(ws.resolve(abs.to_str().unwrap()).unwrap(), abs);

        let err = ws.resolve("../x").unwrap_err();
        assert!(
            err.to_string()
                .contains("escapes the workspace through `..`"),
            "{err}"
        );
        let secret = outside.path().join("secret.txt");
        let err = ws.resolve(secret.to_str().unwrap()).unwrap_err();
        assert!(err.to_string().contains("outside the workspace"), "{err}");
        let err = ws.resolve("/proc/self/environ").unwrap_err();
        assert!(err.to_string().contains("outside the workspace"), "{err}");
        assert!(ws.open_file("/proc/self/environ", Access::Read).is_err());
        let err = ws.create_file("../new.txt", true).unwrap_err();
        assert!(matches!(err, WorkspaceError::Outside { .. }), "{err}");
    }

    #[test]
    fn missing_file_is_not_found() {
        let (_d, _o, ws) = setup();
        let err = ws.resolve("src/missing.rs").unwrap_err();
        assert!(matches!(err, WorkspaceError::NotFound { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "`src/missing.rs` does not exist in the workspace"
        );
    }

    #[test]
    fn symlinked_file_pointing_out_is_refused_and_named() {
        let (dir, outside, ws) = setup();
        let target = outside.path().join("secret.txt");
        symlink(&target, dir.path().join("leak")).unwrap();
        let err = ws.resolve("leak").unwrap_err();
        match &err {
            WorkspaceError::SymlinkEscape {
                link, target: t, ..
            } => {
                assert_eq!(link, "leak");
                assert_eq!(t, &target);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("symlink `leak`"), "{err}");
        assert!(ws.open_file("leak", Access::Read).is_err());
        let err = ws.create_file("leak", true).unwrap_err();
        assert!(matches!(err, WorkspaceError::SymlinkEscape { .. }), "{err}");
        // Nothing outside was touched.
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "secret");
    }

    #[test]
    fn symlinked_dir_pointing_out_is_refused_for_read_and_write() {
        let (dir, outside, ws) = setup();
        symlink(outside.path(), dir.path().join("out")).unwrap();
        let err = ws.resolve("out/secret.txt").unwrap_err();
        assert!(
            matches!(err, WorkspaceError::SymlinkEscape { ref link, .. } if link == "out"),
            "{err}"
        );
        let err = ws.create_file("out/new.txt", true).unwrap_err();
        assert!(
            err.to_string().contains("outside the workspace")
                || err.to_string().contains("symlink"),
            "{err}"
        );
        let err = ws.create_file("out/deeper/new.txt", true).unwrap_err();
        assert!(err.to_string().contains("symlink `out`"), "{err}");
        // A missing file behind an escaping link is an escape, not "not found".
        let err = ws.resolve("out/missing").unwrap_err();
        assert!(matches!(err, WorkspaceError::SymlinkEscape { .. }), "{err}");
    }

    #[test]
    fn symlink_to_proc_is_refused() {
        let (dir, _o, ws) = setup();
        symlink("/proc/self/environ", dir.path().join("env")).unwrap();
        let err = ws.open_file("env", Access::Read).unwrap_err();
        assert!(matches!(err, WorkspaceError::SymlinkEscape { .. }), "{err}");
        symlink("/proc/self", dir.path().join("me")).unwrap();
        assert!(ws.open_file("me/environ", Access::Read).is_err());
    }

    #[test]
    fn dangling_symlink_pointing_out_is_refused_for_write() {
        let (dir, outside, ws) = setup();
        let target = outside.path().join("created.txt");
        symlink(&target, dir.path().join("dangling")).unwrap();
        let err = ws.create_file("dangling", true).unwrap_err();
        assert!(matches!(err, WorkspaceError::SymlinkEscape { .. }), "{err}");
        assert!(!target.exists());
    }

    #[test]
    fn symlinks_inside_pointing_inside_are_allowed() {
        let (dir, _o, ws) = setup();
        symlink("src/a.txt", dir.path().join("alias")).unwrap();
        symlink("src", dir.path().join("srcdir")).unwrap();
        symlink("src/new.txt", dir.path().join("future")).unwrap();
        assert_eq!(ws.resolve("alias").unwrap(), ws.root().join("src/a.txt"));
        assert_eq!(
            ws.resolve("srcdir/a.txt").unwrap(),
            ws.root().join("src/a.txt")
        );
        let mut opened = ws.open_file("alias", Access::Read).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut opened.file, &mut text).unwrap();
        assert_eq!(
            (text.as_str(), opened.display.as_str()),
            ("hello", "src/a.txt")
        );
        let (w, existed) = ws.create_file("alias", true).unwrap();
        assert_eq!((w.display.as_str(), existed), ("src/a.txt", true));
        let (w, existed) = ws.create_file("srcdir/b/c.txt", true).unwrap();
        assert_eq!((w.display.as_str(), existed), ("src/b/c.txt", false));
        assert!(ws.root().join("src/b/c.txt").is_file());
        // A dangling link inside, to a place inside, writes to its target.
        let (w, existed) = ws.create_file("future", true).unwrap();
        assert_eq!((w.display.as_str(), existed), ("src/new.txt", false));
    }

    #[test]
    fn relative_uses_forward_slashes() {
        let (_d, _o, ws) = setup();
        assert_eq!(ws.relative(&ws.root().join("src/a.txt")), "src/a.txt");
        assert_eq!(ws.relative(ws.root()), ".");
        assert_eq!(ws.relative(Path::new("/etc/passwd")), "/etc/passwd");
    }
}
