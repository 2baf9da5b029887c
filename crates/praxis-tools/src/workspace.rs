//! The workspace root and the one way tools turn a model-given path into a real one.
//!
//! Confinement happens twice: lexically with `praxis_core::policy::confine` (the same
//! function the policy uses, so there is one definition of "inside"), then physically by
//! resolving symlinks and checking the real path is still under the canonical root. Reads
//! re-check the opened descriptor itself, so swapping a path for a symlink between the check
//! and the open does not leak a file from outside.

use std::fs::File;
use std::io;
use std::path::{Component, Path, PathBuf};

/// How many symlinks `resolve_for_write` follows through dangling links before giving up
/// (the same bound the kernel uses for path resolution).
const MAX_LINK_HOPS: usize = 40;

#[derive(Clone, Debug)]
pub struct Workspace {
    /// Canonical, absolute, no symlinks.
    root: PathBuf,
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
    #[error("cannot access `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

impl WorkspaceError {
    fn io(path: &str, source: io::Error) -> Self {
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
        Ok(Workspace { root })
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

    /// The real path to write `rel` to, for a file that may not exist yet. The deepest
    /// existing ancestor is resolved and must be inside; if `rel` itself is a symlink, its
    /// target must be inside too (the returned path is the target, so the write does not go
    /// through the link).
    pub fn resolve_for_write(&self, rel: &str) -> Result<PathBuf, WorkspaceError> {
        let lexical = self.normalize(rel)?;
        if lexical == "." {
            return Err(WorkspaceError::Outside {
                path: rel.to_string(),
                reason: format!("`{rel}` is the workspace root, not a file"),
            });
        }
        let mut candidate = self.join(&lexical);
        for _ in 0..MAX_LINK_HOPS {
            let (base, rest) = split_existing(&candidate);
            let real_base = base
                .canonicalize()
                .map_err(|e| WorkspaceError::io(rel, e))?;
            if !real_base.starts_with(&self.root) {
                return Err(self.escape_error(rel, &lexical, &real_base));
            }
            let Some((first, tail)) = rest.split_first() else {
                // Exists completely: `canonicalize` already followed every link.
                return Ok(real_base);
            };
            let next = real_base.join(first);
            match next.symlink_metadata() {
                // The first missing component is a dangling symlink: writing would create
                // its target, so follow it and check that target instead.
                Ok(meta) if meta.file_type().is_symlink() => {
                    if !tail.is_empty() {
                        return Err(WorkspaceError::Outside {
                            path: rel.to_string(),
                            reason: format!(
                                "path `{rel}` goes through `{}`, a symlink to a missing target",
                                self.relative(&next)
                            ),
                        });
                    }
                    let target =
                        std::fs::read_link(&next).map_err(|e| WorkspaceError::io(rel, e))?;
                    // Normalised lexically so the write lands exactly where this check looked
                    // (the ancestors are canonicalised again on the next round).
                    let target_abs = lexical_normalize(&real_base.join(&target));
                    if !target_abs.starts_with(&self.root) {
                        return Err(WorkspaceError::SymlinkEscape {
                            path: rel.to_string(),
                            link: self.relative(&next),
                            target,
                        });
                    }
                    candidate = target_abs;
                }
                Ok(_) => {
                    // Present but unreadable (e.g. permissions): report why.
                    let source = next.metadata().err().unwrap_or_else(|| {
                        io::Error::other("the path changed while being checked")
                    });
                    return Err(WorkspaceError::io(rel, source));
                }
                Err(_) => {
                    let mut out = next;
                    for part in tail {
                        out.push(part);
                    }
                    return Ok(out);
                }
            }
        }
        Err(WorkspaceError::Outside {
            path: rel.to_string(),
            reason: format!("path `{rel}` goes through too many symlinks"),
        })
    }

    /// Opens an existing file for reading and re-checks, on the open descriptor, that the
    /// file really is inside the workspace. Returns the file and its real path. (Without a
    /// `/proc` file system the re-check is skipped and the resolved path is trusted.)
    pub fn open_read(&self, rel: &str) -> Result<(File, PathBuf), WorkspaceError> {
        let real = self.resolve(rel)?;
        let file = File::open(&real).map_err(|e| WorkspaceError::io(rel, e))?;
        if resolver_broken_for_tests() {
            return Ok((file, real));
        }
        let opened = opened_path(&file).unwrap_or_else(|| real.clone());
        if !opened.starts_with(&self.root) {
            return Err(WorkspaceError::Outside {
                path: rel.to_string(),
                reason: format!(
                    "path `{rel}` was replaced while being opened and now points to `{}`, \
                     outside the workspace",
                    opened.display()
                ),
            });
        }
        Ok((file, opened))
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

    /// Walks the workspace below `start` (a real path inside the root, e.g. from `resolve`):
    /// `.gitignore`/`.ignore` rules apply even outside a git repository, hidden files are
    /// included, `.git` is skipped, symlinks are not followed. The root's ignore files apply
    /// to subdirectories too; ignore files above the root do not (the workspace is the whole
    /// world, and the result must not depend on where it sits). A `start` that is itself
    /// ignored is walked anyway (as ripgrep does with a path named explicitly), with the
    /// ignore files found inside it.
    pub fn walk(&self, start: &Path) -> ignore::Walk {
        if start != self.root && !self.reachable(start) {
            return self.builder(start).build();
        }
        let start = start.to_path_buf();
        let mut builder = self.builder(&self.root);
        builder.filter_entry(move |entry| {
            let path = entry.path();
            entry.file_name() != ".git" && (path.starts_with(&start) || start.starts_with(path))
        });
        builder.build()
    }

    /// The regular files (not symlinks) below `start` (or `start` itself if it is a file),
    /// sorted by path.
    pub fn files_under(&self, start: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self
            .walk(start)
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_some_and(|t| t.is_file()) && e.path().starts_with(start))
            .map(ignore::DirEntry::into_path)
            .collect();
        files.sort();
        files
    }

    fn builder(&self, start: &Path) -> ignore::WalkBuilder {
        let mut builder = ignore::WalkBuilder::new(start);
        builder
            .hidden(false)
            .require_git(false)
            .parents(false)
            .git_global(false)
            .follow_links(resolver_broken_for_tests())
            .filter_entry(|entry| entry.file_name() != ".git");
        builder
    }

    /// Whether a walk from the root reaches `start` (false: it or an ancestor is ignored).
    fn reachable(&self, start: &Path) -> bool {
        let target = start.to_path_buf();
        let mut builder = self.builder(&self.root);
        builder.filter_entry(move |entry| target.starts_with(entry.path()));
        builder
            .build()
            .filter_map(Result::ok)
            .any(|e| e.path() == start)
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
    fn escaping_link(&self, lexical: &str) -> Option<(String, PathBuf)> {
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

/// Splits `path` into its deepest existing ancestor (following symlinks) and the missing
/// components after it.
/// Debug builds only: a deliberately unsafe resolver (paths joined and opened with every
/// symlink followed, no check), so tests can prove that the worker's own confinement stops
/// what a resolver bug would let through. `praxis-worker --broken-resolver-for-tests` sets
/// it; release builds have no switch.
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

fn split_existing(path: &Path) -> (PathBuf, Vec<std::ffi::OsString>) {
    let mut base = path.to_path_buf();
    let mut rest = Vec::new();
    while base.metadata().is_err() {
        match (base.file_name(), base.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                base = parent.to_path_buf();
            }
            _ => break,
        }
    }
    rest.reverse();
    (base, rest)
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

/// The path the kernel says an open descriptor refers to (Linux `/proc/self/fd/N`).
fn opened_path(file: &File) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert!(ws.open_read("/proc/self/environ").is_err());
        let err = ws.resolve_for_write("../new.txt").unwrap_err();
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
        assert!(ws.open_read("leak").is_err());
        let err = ws.resolve_for_write("leak").unwrap_err();
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
        let err = ws.resolve_for_write("out/new.txt").unwrap_err();
        assert!(
            err.to_string().contains("outside the workspace")
                || err.to_string().contains("symlink"),
            "{err}"
        );
        let err = ws.resolve_for_write("out/deeper/new.txt").unwrap_err();
        assert!(err.to_string().contains("symlink `out`"), "{err}");
        // A missing file behind an escaping link is an escape, not "not found".
        let err = ws.resolve("out/missing").unwrap_err();
        assert!(matches!(err, WorkspaceError::SymlinkEscape { .. }), "{err}");
    }

    #[test]
    fn symlink_to_proc_is_refused() {
        let (dir, _o, ws) = setup();
        symlink("/proc/self/environ", dir.path().join("env")).unwrap();
        let err = ws.open_read("env").unwrap_err();
        assert!(matches!(err, WorkspaceError::SymlinkEscape { .. }), "{err}");
        symlink("/proc/self", dir.path().join("me")).unwrap();
        assert!(ws.open_read("me/environ").is_err());
    }

    #[test]
    fn dangling_symlink_pointing_out_is_refused_for_write() {
        let (dir, outside, ws) = setup();
        let target = outside.path().join("created.txt");
        symlink(&target, dir.path().join("dangling")).unwrap();
        let err = ws.resolve_for_write("dangling").unwrap_err();
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
        let (mut file, real) = ws.open_read("alias").unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file, &mut text).unwrap();
        assert_eq!(
            (text.as_str(), real),
            ("hello", ws.root().join("src/a.txt"))
        );
        assert_eq!(
            ws.resolve_for_write("alias").unwrap(),
            ws.root().join("src/a.txt")
        );
        assert_eq!(
            ws.resolve_for_write("srcdir/b/c.txt").unwrap(),
            ws.root().join("src/b/c.txt")
        );
        // A dangling link inside, to a place inside, writes to its target.
        assert_eq!(
            ws.resolve_for_write("future").unwrap(),
            ws.root().join("src/new.txt")
        );
    }

    #[test]
    fn relative_uses_forward_slashes() {
        let (_d, _o, ws) = setup();
        assert_eq!(ws.relative(&ws.root().join("src/a.txt")), "src/a.txt");
        assert_eq!(ws.relative(ws.root()), ".");
        assert_eq!(ws.relative(Path::new("/etc/passwd")), "/etc/passwd");
    }
}
