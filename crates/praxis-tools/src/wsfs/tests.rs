//! Unit tests of the workspace file access module.

use super::*;
use std::fs;

fn walked(ws: &Workspace, rel: &str) -> Vec<String> {
    let mut out = Vec::new();
    ws.walk(rel, |e| {
        out.push(e.rel.to_string());
        ControlFlow::Continue(())
    })
    .unwrap();
    out
}

#[test]
fn walk_applies_ignore_files_like_git_and_skips_links_and_special_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for d in ["build", "sub", ".git/info"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    for (path, text) in [
        (".gitignore", "*.log\n!keep.log\nbuild/\n"),
        (".git/info/exclude", "excluded.txt\n"),
        (".git/HEAD", "ref"),
        ("a.log", ""),
        ("keep.log", ""),
        ("excluded.txt", ""),
        ("z.txt", "z"),
        ("build/x", ""),
        ("sub/.gitignore", "!*.log\n"),
        ("sub/.ignore", "*.tmp\n"),
        ("sub/b.log", ""),
        ("sub/x.tmp", ""),
    ] {
        fs::write(root.join(path), text).unwrap();
    }
    std::os::unix::fs::symlink("z.txt", root.join("link")).unwrap();
    let fifo = CString::new(root.join("pipe").as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let ws = Workspace::new(root).unwrap();
    assert_eq!(
        walked(&ws, "."),
        [
            ".gitignore",
            "keep.log",
            "sub/.gitignore",
            "sub/.ignore",
            "sub/b.log",
            "z.txt"
        ]
    );
    assert_eq!(
        walked(&ws, "sub"),
        ["sub/.gitignore", "sub/.ignore", "sub/b.log"]
    );
    // Named explicitly, an ignored directory is walked; `.git` never is.
    assert_eq!(walked(&ws, "build"), ["build/x"]);
    assert!(walked(&ws, ".git").is_empty());
    assert_eq!(walked(&ws, "z.txt"), ["z.txt"]);
    // A visitor can stop the walk.
    let mut seen = 0;
    ws.walk(".", |_| {
        seen += 1;
        ControlFlow::Break(())
    })
    .unwrap();
    assert_eq!(seen, 1);
    // Opening a walked file reads it through the directory's descriptor.
    let mut text = String::new();
    ws.walk("z.txt", |e| {
        e.open().unwrap().read_to_string(&mut text).unwrap();
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(text, "z");
    // Special files are refused by name without blocking.
    let err = ws.open_file("pipe", Access::Read).unwrap_err();
    assert!(
        matches!(err, WorkspaceError::NotRegular { kind: "a FIFO", .. }),
        "{err}"
    );
}

#[test]
fn create_file_makes_parents_beneath_and_refuses_links_out() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
    let ws = Workspace::new(dir.path()).unwrap();
    let (file, existed) = ws.create_file("a/b/c.txt", true).unwrap();
    assert_eq!((file.display.as_str(), existed), ("a/b/c.txt", false));
    let (_, existed) = ws.create_file("a/b/c.txt", false).unwrap();
    assert!(existed);
    let err = ws.create_file("n/c.txt", false).unwrap_err();
    assert!(
        matches!(err, WorkspaceError::MissingDirectory { .. }),
        "{err}"
    );
    for path in ["out/x", "out/d/e/x", "a/../out/x"] {
        let err = ws.create_file(path, true).unwrap_err();
        assert!(
            matches!(err, WorkspaceError::SymlinkEscape { .. }),
            "{path}: {err}"
        );
    }
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
}
