//! The directory walk of [`Workspace::walk`]: depth first in path order, each directory read
//! from its own descriptor, each child opened relative to it with no symlink allowed, and
//! ignore rules (`.ignore`, `.gitignore`, the root's `.git/info/exclude`) read through the
//! same descriptors and matched with the `ignore` crate's gitignore matcher.

use super::{
    MAX_WALK_DEPTH, NO_LINKS, WalkEntry, component, open_subdir, read_entries, read_small,
};
use crate::workspace::Workspace;
use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use std::ffi::CString;
use std::ops::ControlFlow;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The ignore matchers in force: one level per directory from the walk's first rule
/// directory down to the current one (deeper levels win; in a level `.ignore` beats
/// `.gitignore`), then the repository's exclude file.
pub(crate) struct Rules {
    root: PathBuf,
    levels: Vec<[Option<Gitignore>; 2]>,
    exclude: Option<Gitignore>,
    /// false: no file is ignored, and `.git` is entered too (the tracker's scan of what
    /// the ignore rules hide).
    apply: bool,
}

fn matcher(base: &Path, bytes: Option<Vec<u8>>) -> Option<Gitignore> {
    let bytes = bytes?;
    let mut builder = GitignoreBuilder::new(base);
    for line in String::from_utf8_lossy(&bytes).lines() {
        // A bad line is skipped, as git does.
        let _ = builder.add_line(None, line);
    }
    builder.build().ok().filter(|g| !g.is_empty())
}

impl Rules {
    pub(crate) fn new(root: &Path) -> Self {
        Rules {
            root: root.to_path_buf(),
            levels: Vec::new(),
            exclude: None,
            apply: true,
        }
    }

    /// No rules: every file, `.git` included.
    pub(crate) fn none(root: &Path) -> Self {
        Rules {
            apply: false,
            ..Rules::new(root)
        }
    }

    fn base(&self, rel_dir: &str) -> PathBuf {
        if rel_dir.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel_dir)
        }
    }

    /// Enters directory `rel_dir` ("" for the root): reads its ignore files.
    fn push(&mut self, dir: BorrowedFd<'_>, rel_dir: &str) {
        if !self.apply {
            return;
        }
        let base = self.base(rel_dir);
        self.levels.push([
            matcher(&base, read_small(dir, ".ignore")),
            matcher(&base, read_small(dir, ".gitignore")),
        ]);
    }

    fn pop(&mut self) {
        if !self.apply {
            return;
        }
        self.levels.pop();
    }

    /// Whether `rel` (a directory when `is_dir`) is ignored by the rules in force.
    pub(crate) fn ignored(&self, rel: &str, is_dir: bool) -> bool {
        if !self.apply {
            return false;
        }
        let path = self.root.join(rel);
        let levels = self.levels.iter().rev().flat_map(|level| level.iter());
        for m in levels.chain(std::iter::once(&self.exclude)).flatten() {
            match m.matched(&path, is_dir) {
                Match::Ignore(_) => return true,
                Match::Whitelist(_) => return false,
                Match::None => {}
            }
        }
        false
    }

    /// Loads the rules of the root and of every directory between it and `lexical` (the
    /// walk's start, a directory), and says whether the start is reachable: false when it
    /// or a directory above it is ignored, or a directory on the way is a symlink (then the
    /// caller starts afresh with only the rules inside the start).
    pub(crate) fn ancestors_allow(&mut self, ws: &Workspace, lexical: &str) -> bool {
        let Ok(mut dir) = open_subdir(ws.root_dir.as_fd(), c".") else {
            return false;
        };
        self.exclude =
            exclude_file(dir.as_fd()).and_then(|bytes| matcher(&self.root.clone(), Some(bytes)));
        if lexical == "." {
            return true;
        }
        let mut prefix = String::new();
        for part in lexical.split('/') {
            self.push(dir.as_fd(), &prefix);
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if self.ignored(&prefix, true) {
                return false;
            }
            let Ok(name) = CString::new(part) else {
                return false;
            };
            match open_subdir(dir.as_fd(), &name) {
                Ok(next) => dir = next,
                Err(_) => return false,
            }
        }
        true
    }
}

/// The root's `.git/info/exclude`, read through descriptors with no link allowed.
fn exclude_file(root: BorrowedFd<'_>) -> Option<Vec<u8>> {
    let git = open_subdir(root, c".git").ok()?;
    let info = open_subdir(git.as_fd(), c"info").ok()?;
    read_small(info.as_fd(), "exclude")
}

/// Walks directory `dir` (workspace-relative `prefix`, "" for the root).
pub(crate) fn walk_dir(
    dir: OwnedFd,
    prefix: &str,
    depth: usize,
    rules: &mut Rules,
    visit: &mut dyn FnMut(&WalkEntry<'_>) -> ControlFlow<()>,
) -> ControlFlow<()> {
    rules.push(dir.as_fd(), prefix);
    let flow = walk_entries(&dir, prefix, depth, rules, visit);
    rules.pop();
    flow
}

fn walk_entries(
    dir: &OwnedFd,
    prefix: &str,
    depth: usize,
    rules: &mut Rules,
    visit: &mut dyn FnMut(&WalkEntry<'_>) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let Ok(entries) = read_entries(dir.as_fd()) else {
        return ControlFlow::Continue(());
    };
    for (name, is_dir, is_file) in &entries {
        let part = component(name);
        if (part == ".git" && rules.apply) || !(*is_dir || *is_file) {
            continue;
        }
        let rel = if prefix.is_empty() {
            part
        } else {
            format!("{prefix}/{part}")
        };
        if rules.ignored(&rel, *is_dir) {
            continue;
        }
        if *is_dir {
            if depth >= MAX_WALK_DEPTH {
                continue;
            }
            // A directory swapped for a link since it was listed is refused here.
            let Ok(child) = open_subdir(dir.as_fd(), name) else {
                continue;
            };
            walk_dir(child, &rel, depth + 1, rules, visit)?;
        } else {
            visit(&WalkEntry {
                rel: &rel,
                dir: dir.as_fd(),
                name,
                resolve: NO_LINKS,
            })?;
        }
    }
    ControlFlow::Continue(())
}
