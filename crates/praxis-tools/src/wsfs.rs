//! Every access the runtime makes to workspace files goes through here: a descriptor of the
//! workspace root, then `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` relative to it (or
//! relative to an already opened directory, with `RESOLVE_NO_SYMLINKS` too where links are
//! not followed). The kernel resolves each path in one step and refuses any resolution that
//! leaves the directory, so a component swapped for a link between a check and an open
//! cannot redirect the access: there is no check-then-open by path. Directory walks read
//! entries from directory descriptors and open each child relative to its parent's
//! descriptor; parents are created with `mkdirat` relative to the parent's descriptor.
//!
//! Non-regular files (FIFOs, sockets, devices) are recognised on an `O_PATH` descriptor and
//! refused before any open that could block; the real open is `O_NONBLOCK` and re-checked
//! to be the same regular file.

mod walk;

use crate::workspace::{Workspace, WorkspaceError};
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Read};
use std::ops::ControlFlow;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

/// Resolution flags for a path that may follow symlinks, as long as it stays beneath.
pub(crate) const FOLLOW_BENEATH: u64 = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
/// Resolution flags for one component that must not be a symlink at all.
pub(crate) const NO_LINKS: u64 =
    libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;

/// How many times an `openat2` is retried when the kernel reports a concurrent rename
/// (`EAGAIN`) it could not rule out as an escape.
const EAGAIN_RETRIES: usize = 32;
/// Ignore files larger than this are not read (a walk must not buffer a huge file).
const MAX_IGNORE_FILE_BYTES: u64 = 1024 * 1024;
/// Directories deeper than this below the walk's start are not entered (each level holds
/// one descriptor while the walk is inside it).
pub const MAX_WALK_DEPTH: usize = 128;

/// `openat2(dir, path, flags | O_CLOEXEC, resolve)`; `O_CREAT` creates with mode 0666
/// (before the umask).
pub(crate) fn openat2(
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: i32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    // SAFETY: open_how is plain data; zeroed is a valid value that is then filled in.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    if flags & libc::O_CREAT != 0 {
        how.mode = 0o666;
    }
    // The debug-only broken resolver (tests of the worker's own confinement) follows every
    // link, as a resolver bug would.
    how.resolve = if crate::workspace::resolver_broken_for_tests() {
        0
    } else {
        resolve
    };
    let mut retries = 0;
    loop {
        // SAFETY: a live descriptor, a NUL-terminated path and a pointer to a live open_how
        // of the size given.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            // SAFETY: the kernel just returned this descriptor; nothing else owns it.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EAGAIN) if retries < EAGAIN_RETRIES => retries += 1,
            Some(libc::ENOSYS) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "the file tools need openat2 (Linux 5.6 or later) to stay inside the \
                     workspace",
                ));
            }
            _ => return Err(error),
        }
    }
}

fn cstring(text: &str) -> io::Result<CString> {
    CString::new(text).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// What kind of non-regular, non-directory file a mode is, for messages.
fn kind_of(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        libc::S_IFLNK => "a symlink",
        libc::S_IFDIR => "a directory",
        _ => "not a regular file",
    }
}

/// How a regular file is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    ReadWrite,
}

/// Opens the regular file `name` relative to `dir` without ever blocking: an `O_PATH`
/// descriptor is checked first (a FIFO, socket or device is refused before it is opened
/// for I/O), then the file is opened `O_NONBLOCK` and must be the same regular file.
/// Err(Ok(kind)) names a non-regular file; Err(Err(e)) is an I/O error.
fn open_regular(
    dir: BorrowedFd<'_>,
    name: &CStr,
    access: Access,
    resolve: u64,
) -> Result<File, Refusal> {
    let probe = File::from(openat2(dir, name, libc::O_PATH, resolve).map_err(Refusal::Io)?);
    let before = probe.metadata().map_err(Refusal::Io)?;
    if !before.is_file() {
        return Err(Refusal::NotRegular(kind_of(before.mode())));
    }
    let mode = match access {
        Access::Read => libc::O_RDONLY,
        Access::ReadWrite => libc::O_RDWR,
    };
    let file = File::from(
        openat2(dir, name, mode | libc::O_NONBLOCK | libc::O_NOCTTY, resolve)
            .map_err(Refusal::Io)?,
    );
    let after = file.metadata().map_err(Refusal::Io)?;
    if !after.is_file() || (after.dev(), after.ino()) != (before.dev(), before.ino()) {
        return Err(Refusal::Io(io::Error::other(
            "the file was replaced while being opened",
        )));
    }
    clear_nonblock(&file).map_err(Refusal::Io)?;
    Ok(file)
}

/// Why a file was not opened.
#[derive(Debug)]
enum Refusal {
    NotRegular(&'static str),
    Io(io::Error),
}

fn clear_nonblock(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A regular file of the workspace, opened beneath its root.
#[derive(Debug)]
pub struct WsFile {
    pub file: File,
    /// Its workspace-relative path as the kernel names the open descriptor (the target when
    /// the given path went through a symlink inside the workspace). For messages only:
    /// nothing is ever opened by this name.
    pub display: String,
}

impl Workspace {
    pub(crate) fn root_fd(&self) -> BorrowedFd<'_> {
        self.root_dir.as_fd()
    }

    /// The error for a failed resolution of `rel` (`lexical` is its confined form): a
    /// symlink leading out is named, a missing file is "not found".
    pub(crate) fn resolve_error(&self, rel: &str, lexical: &str, e: io::Error) -> WorkspaceError {
        match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::EXDEV) | Some(libc::ELOOP) => {
                if let Some((link, target)) = self.escaping_link(lexical) {
                    return WorkspaceError::SymlinkEscape {
                        path: rel.to_string(),
                        link,
                        target,
                    };
                }
                if e.raw_os_error() == Some(libc::ENOENT) {
                    return WorkspaceError::NotFound {
                        path: rel.to_string(),
                    };
                }
                WorkspaceError::Outside {
                    path: rel.to_string(),
                    reason: format!(
                        "path `{rel}` does not resolve inside the workspace (a symlink on the \
                         way is absolute or leads out, or a component was swapped for one)"
                    ),
                }
            }
            _ => WorkspaceError::Io {
                path: rel.to_string(),
                source: e,
            },
        }
    }

    /// Opens the existing regular file `rel` (symlinks inside the workspace are followed).
    /// A directory or a FIFO, socket or device is an error, found without blocking.
    pub fn open_file(&self, rel: &str, access: Access) -> Result<WsFile, WorkspaceError> {
        let lexical = self.normalize(rel)?;
        let name = cstring(&lexical).map_err(|e| WorkspaceError::io(rel, e))?;
        let file =
            open_regular(self.root_fd(), &name, access, FOLLOW_BENEATH).map_err(|r| match r {
                Refusal::NotRegular("a directory") => WorkspaceError::IsDirectory {
                    path: rel.to_string(),
                },
                Refusal::NotRegular(kind) => WorkspaceError::NotRegular {
                    path: rel.to_string(),
                    kind,
                },
                Refusal::Io(e) => self.resolve_error(rel, &lexical, e),
            })?;
        let display = self.display_name(&file).unwrap_or(lexical);
        Ok(WsFile { file, display })
    }

    /// Creates or truncates the regular file `rel` for writing. Missing parent directories
    /// are created (when `create_dirs`) one at a time with `mkdirat` relative to the
    /// descriptor of the directory above, and each new one is opened with no symlink
    /// allowed. Returns the file and whether it existed before.
    pub fn create_file(
        &self,
        rel: &str,
        create_dirs: bool,
    ) -> Result<(WsFile, bool), WorkspaceError> {
        let lexical = self.normalize(rel)?;
        if lexical == "." {
            return Err(WorkspaceError::Outside {
                path: rel.to_string(),
                reason: format!("`{rel}` is the workspace root, not a file"),
            });
        }
        let io = |e: io::Error| self.resolve_error(rel, &lexical, e);
        let (parent, name) = lexical.rsplit_once('/').unwrap_or((".", &lexical));
        // The parent's descriptor, and whether it was created now (then the file is opened
        // relative to it with no link allowed; else beneath the root by its whole path, so
        // links inside the workspace keep working).
        let (parent_fd, created) = self.parent_dir(rel, parent, create_dirs)?;
        let (dir, target, resolve) = if created {
            (parent_fd.as_fd(), cstring(name).map_err(io)?, NO_LINKS)
        } else {
            (
                self.root_fd(),
                cstring(&lexical).map_err(io)?,
                FOLLOW_BENEATH,
            )
        };
        let existed = match openat2(dir, &target, libc::O_PATH, resolve) {
            Ok(probe) => {
                let meta = File::from(probe).metadata().map_err(io)?;
                if meta.is_dir() {
                    return Err(WorkspaceError::IsDirectory {
                        path: rel.to_string(),
                    });
                }
                if !meta.is_file() {
                    return Err(WorkspaceError::NotRegular {
                        path: rel.to_string(),
                        kind: kind_of(meta.mode()),
                    });
                }
                true
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => false,
            Err(e) => return Err(io(e)),
        };
        let fd = openat2(
            dir,
            &target,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NONBLOCK | libc::O_NOCTTY,
            resolve,
        )
        .map_err(io)?;
        let file = File::from(fd);
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(WorkspaceError::NotRegular {
                path: rel.to_string(),
                kind: kind_of(meta.mode()),
            });
        }
        clear_nonblock(&file).map_err(io)?;
        let display = self.display_name(&file).unwrap_or(lexical.clone());
        Ok((WsFile { file, display }, existed))
    }

    /// The descriptor of directory `parent` (lexical, "." for the root), creating what is
    /// missing when `create`. The existing part is opened beneath the root (links inside
    /// followed); from the first missing component on, each is made with `mkdirat` in the
    /// descriptor above and opened from it with no link allowed.
    fn parent_dir(
        &self,
        rel: &str,
        parent: &str,
        create: bool,
    ) -> Result<(OwnedFd, bool), WorkspaceError> {
        let io = |e: io::Error| self.resolve_error(rel, parent, e);
        let dot = cstring(".").map_err(io)?;
        let whole = cstring(parent).map_err(io)?;
        match openat2(
            self.root_fd(),
            &whole,
            libc::O_PATH | libc::O_DIRECTORY,
            FOLLOW_BENEATH,
        ) {
            Ok(fd) => return Ok((fd, false)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(io(e)),
        }
        if !create {
            return Err(WorkspaceError::MissingDirectory {
                path: parent.to_string(),
            });
        }
        let mut fd = openat2(
            self.root_fd(),
            &dot,
            libc::O_PATH | libc::O_DIRECTORY,
            NO_LINKS,
        )
        .map_err(io)?;
        let mut creating = false;
        let mut prefix = String::new();
        for part in parent.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            let name = cstring(part).map_err(io)?;
            if !creating {
                let path = cstring(&prefix).map_err(io)?;
                match openat2(
                    self.root_fd(),
                    &path,
                    libc::O_PATH | libc::O_DIRECTORY,
                    FOLLOW_BENEATH,
                ) {
                    Ok(next) => {
                        fd = next;
                        continue;
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => creating = true,
                    Err(e) => return Err(io(e)),
                }
            }
            // SAFETY: a live directory descriptor and a NUL-terminated single component.
            if unsafe { libc::mkdirat(fd.as_raw_fd(), name.as_ptr(), 0o777) } != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EEXIST) {
                    return Err(WorkspaceError::Io {
                        path: prefix.clone(),
                        source: e,
                    });
                }
            }
            fd = openat2(
                fd.as_fd(),
                &name,
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                NO_LINKS,
            )
            .map_err(|e| self.resolve_error(rel, &prefix, e))?;
        }
        Ok((fd, true))
    }

    /// Opens the regular file `rel` for reading beneath the root with no symlink anywhere on
    /// the way (the tracker's view: it never follows links), without blocking. None when it
    /// is missing, not a regular file, or reached through a link.
    pub fn open_no_links(&self, rel: &str) -> Option<File> {
        let lexical = self.normalize(rel).ok()?;
        let name = cstring(&lexical).ok()?;
        open_regular(self.root_fd(), &name, Access::Read, NO_LINKS).ok()
    }

    /// The content of the regular file `rel` if it exists and holds at most `max` bytes
    /// (opened like [`Workspace::open_file`]: never blocking, never outside).
    pub fn read_capped(&self, rel: &str, max: u64) -> Option<Vec<u8>> {
        let opened = self.open_file(rel, Access::Read).ok()?;
        let mut bytes = Vec::new();
        opened.file.take(max + 1).read_to_end(&mut bytes).ok()?;
        (bytes.len() as u64 <= max).then_some(bytes)
    }

    /// The names of the entries of directory `rel` (any kind, sorted), read from its
    /// descriptor opened beneath the root.
    pub fn list_dir(&self, rel: &str) -> Result<Vec<String>, WorkspaceError> {
        let lexical = self.normalize(rel)?;
        let io = |e: io::Error| self.resolve_error(rel, &lexical, e);
        let path = cstring(&lexical).map_err(io)?;
        let dir = openat2(
            self.root_fd(),
            &path,
            libc::O_RDONLY | libc::O_DIRECTORY,
            FOLLOW_BENEATH,
        )
        .map_err(io)?;
        let entries = read_entries(dir.as_fd()).map_err(io)?;
        Ok(entries.iter().map(|(name, _, _)| component(name)).collect())
    }

    /// The workspace-relative name the kernel gives an open descriptor, for messages only.
    fn display_name(&self, file: &File) -> Option<String> {
        let real = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
        real.starts_with(self.root()).then(|| self.relative(&real))
    }

    /// Walks the regular files below `rel` (or `rel` itself if it is a regular file), in
    /// path order, calling `visit` for each until it breaks. `.gitignore`/`.ignore` rules
    /// apply even outside a git repository (the root's `.git/info/exclude` too), hidden
    /// files are included, `.git` is skipped, symlinks are never followed. Ignore files
    /// above the start apply (those between the root and it), unless the start itself is
    /// ignored: then it is walked anyway with only the ignore files found inside it (as
    /// ripgrep does with a path named explicitly). Every directory is read from its
    /// descriptor and every child opened relative to it, with no symlink allowed.
    pub fn walk(
        &self,
        rel: &str,
        mut visit: impl FnMut(&WalkEntry<'_>) -> ControlFlow<()>,
    ) -> Result<(), WorkspaceError> {
        let lexical = self.normalize(rel)?;
        let io = |e: io::Error| self.resolve_error(rel, &lexical, e);
        let start = cstring(&lexical).map_err(io)?;
        let probe = openat2(self.root_fd(), &start, libc::O_PATH, FOLLOW_BENEATH).map_err(io)?;
        if lexical.split('/').any(|part| part == ".git") {
            return Ok(());
        }
        let meta = File::from(probe.try_clone().map_err(io)?)
            .metadata()
            .map_err(io)?;
        if meta.is_file() {
            let entry = WalkEntry {
                rel: &lexical,
                dir: self.root_fd(),
                name: &start,
                resolve: FOLLOW_BENEATH,
            };
            let _ = visit(&entry);
            return Ok(());
        }
        if !meta.is_dir() {
            return Ok(());
        }
        let dot = cstring(".").map_err(io)?;
        let dir = openat2(
            probe.as_fd(),
            &dot,
            libc::O_RDONLY | libc::O_DIRECTORY,
            NO_LINKS,
        )
        .map_err(io)?;
        let mut rules = walk::Rules::new(self.root());
        if !rules.ancestors_allow(self, &lexical) {
            rules = walk::Rules::new(self.root());
        }
        let prefix = if lexical == "." { "" } else { &lexical };
        let _ = walk::walk_dir(dir, prefix, 0, &mut rules, &mut visit);
        Ok(())
    }

    /// Walks every regular file below the root, in path order, with no ignore rule and
    /// `.git` included (what [`Workspace::walk`] leaves out too), through descriptors as
    /// that walk does: each directory read from its descriptor, each child opened relative
    /// to it with no symlink allowed.
    pub fn walk_everything(&self, mut visit: impl FnMut(&WalkEntry<'_>) -> ControlFlow<()>) {
        let Ok(dir) = open_subdir(self.root_fd(), c".") else {
            return;
        };
        let mut rules = walk::Rules::none(self.root());
        let _ = walk::walk_dir(dir, "", 0, &mut rules, &mut visit);
    }

    /// The regular files below `start` (a real path inside the root), sorted; the walk of
    /// [`Workspace::walk`] collected. Absolute paths, for callers that still name files by
    /// path (prefer `walk` and [`WalkEntry::open`]).
    pub fn files_under(&self, start: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut files = Vec::new();
        let rel = self.relative(start);
        let _ = self.walk(&rel, |entry| {
            files.push(self.root().join(entry.rel));
            ControlFlow::Continue(())
        });
        files
    }
}

/// A regular file found by [`Workspace::walk`].
pub struct WalkEntry<'a> {
    /// Workspace-relative path (forward slashes).
    pub rel: &'a str,
    pub(crate) dir: BorrowedFd<'a>,
    pub(crate) name: &'a CStr,
    pub(crate) resolve: u64,
}

impl WalkEntry<'_> {
    /// Opens the file for reading relative to its directory's descriptor, with no symlink
    /// allowed and without blocking (a file swapped for a FIFO or a link is refused).
    pub fn open(&self) -> io::Result<File> {
        open_regular(self.dir, self.name, Access::Read, self.resolve).map_err(|r| match r {
            Refusal::NotRegular(kind) => io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is {kind}", self.rel),
            ),
            Refusal::Io(e) => e,
        })
    }

    /// The file's metadata, read from an `O_PATH` descriptor opened relative to its
    /// directory's descriptor with no symlink allowed (the file itself is not opened).
    pub fn metadata(&self) -> io::Result<std::fs::Metadata> {
        let fd = openat2(
            self.dir,
            self.name,
            libc::O_PATH | libc::O_NOFOLLOW,
            self.resolve,
        )?;
        File::from(fd).metadata()
    }

    /// Reads at most `max` bytes of the file; None when it is larger (or unreadable).
    pub fn read_capped(&self, max: u64) -> Option<Vec<u8>> {
        let file = self.open().ok()?;
        if file.metadata().ok()?.len() > max {
            return None;
        }
        let mut bytes = Vec::new();
        file.take(max + 1).read_to_end(&mut bytes).ok()?;
        (bytes.len() as u64 <= max).then_some(bytes)
    }
}

/// Reads a small ignore file `name` in `dir` (no link, regular, at most 1 MiB); None if it
/// is missing or anything else.
pub(crate) fn read_small(dir: BorrowedFd<'_>, name: &str) -> Option<Vec<u8>> {
    let name = cstring(name).ok()?;
    let file = open_regular(dir, &name, Access::Read, NO_LINKS).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_IGNORE_FILE_BYTES)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(bytes)
}

/// `openat2(dir, name, O_RDONLY|O_DIRECTORY|O_NOFOLLOW)` with no link allowed.
pub(crate) fn open_subdir(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    openat2(
        dir,
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        NO_LINKS,
    )
}

/// `fstatat` of `name` in `dir`, the last component not followed; `None` if it fails.
pub(crate) fn stat_nofollow(dir: BorrowedFd<'_>, name: &CStr) -> Option<libc::stat> {
    // SAFETY: plain stat buffer filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: live descriptor, NUL-terminated name, valid buffer.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    (rc == 0).then_some(st)
}

/// The entries of an open directory (without `.` and `..`), as (name, is_dir, is_file),
/// sorted by name; symlinks and special files have both false. Read from the descriptor.
pub(crate) fn read_entries(dir: BorrowedFd<'_>) -> io::Result<Vec<(CString, bool, bool)>> {
    // SAFETY: duplicating a live descriptor; the copy is owned by the DIR stream below.
    let dup = unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup` is ours; on success fdopendir owns it (closedir closes it).
    let stream = unsafe { libc::fdopendir(dup) };
    if stream.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so we still own `dup`.
        unsafe { libc::close(dup) };
        return Err(e);
    }
    let mut out = Vec::new();
    loop {
        // SAFETY: a live DIR stream used by this thread only.
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            break;
        }
        // SAFETY: readdir returned a valid dirent whose d_name is NUL-terminated.
        let (name, kind) = unsafe {
            (
                CStr::from_ptr((*entry).d_name.as_ptr()).to_owned(),
                (*entry).d_type,
            )
        };
        if name.as_bytes() == b"." || name.as_bytes() == b".." {
            continue;
        }
        let (is_dir, is_file) = match kind {
            libc::DT_DIR => (true, false),
            libc::DT_REG => (false, true),
            libc::DT_UNKNOWN => {
                let Some(st) = stat_nofollow(dir, &name) else {
                    continue;
                };
                let fmt = st.st_mode & libc::S_IFMT;
                (fmt == libc::S_IFDIR, fmt == libc::S_IFREG)
            }
            _ => (false, false),
        };
        out.push((name, is_dir, is_file));
    }
    // SAFETY: closing the stream we opened (and its descriptor).
    unsafe { libc::closedir(stream) };
    out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(out)
}

/// Bytes of `name` as a str path component (lossy for non-UTF-8 names).
pub(crate) fn component(name: &CStr) -> String {
    String::from_utf8_lossy(std::ffi::OsStr::from_bytes(name.to_bytes()).as_bytes()).into_owned()
}

#[cfg(test)]
mod tests;
