//! Private homes: the directory a sandbox's commands get as `HOME`, the directory a runtime
//! makes for a worker's home (removed once the worker has exited, since a killed worker
//! cleans nothing up), and sweeping those whose maker is gone (a runtime killed itself).
//!
//! Each name carries the maker's pid: `praxis-home-<pid>-…` (made by a sandbox) and
//! `praxis-worker-<pid>-…` (made by a runtime for its worker).

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const HOME: &str = "praxis-home-";
const WORKER: &str = "praxis-worker-";

/// Makes `<parent>/<prefix><pid>-<n>-<nanos>` with mode 0700; its canonical path.
fn make_unique(parent: &Path, prefix: &str) -> std::io::Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let path = parent.join(format!(
        "{prefix}{}-{}-{nanos:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::DirBuilder::new().mode(0o700).create(&path)?;
    // Canonical, so a Landlock rule and the HOME variable name the same directory.
    path.canonicalize()
}

/// A sandbox's private home (with its `tmp`) in `parent`, default the temp dir.
pub(crate) fn make_private_home(parent: Option<&Path>) -> Result<PathBuf, crate::SandboxError> {
    let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
    let home_error = |path: PathBuf| move |source| crate::SandboxError::Home { path, source };
    let home = make_unique(&parent, HOME).map_err(home_error(parent.join(HOME)))?;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(home.join("tmp"))
        .map_err(home_error(home.clone()))?;
    Ok(home)
}

/// Removes everything in the private home `home` but its `tmp` directory, emptied (made
/// again if a command removed it).
pub(crate) fn empty_private_home(home: &Path) -> std::io::Result<()> {
    empty_dir(home, true)?;
    match std::fs::DirBuilder::new()
        .mode(0o700)
        .create(home.join("tmp"))
    {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// Removes everything in `dir` (not `dir` itself); with `keep_tmp`, its `tmp` directory is
/// emptied instead. Symbolic links are removed, never followed.
fn empty_dir(dir: &Path, keep_tmp: bool) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let (path, is_dir) = (entry.path(), entry.file_type()?.is_dir());
        match is_dir {
            true if keep_tmp && entry.file_name() == "tmp" => empty_dir(&path, false)?,
            true => std::fs::remove_dir_all(&path)?,
            false => std::fs::remove_file(&path)?,
        }
    }
    Ok(())
}

/// The directory a runtime makes in the temp dir for one worker's private home; removed
/// with everything in it when dropped (drop it once the worker has exited).
#[derive(Debug)]
pub struct WorkerHome {
    path: PathBuf,
}

impl WorkerHome {
    /// The first one a process makes also starts, on a thread of its own (never on a run's
    /// path), [`sweep_abandoned_homes`] of the temp dir: what runtimes and workers that
    /// were killed left there.
    pub fn new() -> std::io::Result<Self> {
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(|| {
            let _ = std::thread::Builder::new()
                .name("praxis-sweep-homes".into())
                .spawn(|| sweep_abandoned_homes(&std::env::temp_dir()));
        });
        make_unique(&std::env::temp_dir(), WORKER).map(|path| WorkerHome { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkerHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Removes the private homes and worker homes in `dir` that this user made from a process
/// that no longer runs (its runtime or worker was killed); how many. One whose pid runs
/// (even if reused by another program) is left alone, as is anything not a directory of
/// this user's.
fn sweep_abandoned_homes(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let own = std::process::id();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(maker_pid) else {
            continue;
        };
        if pid == own || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let path = entry.path();
        // Not followed: a link named like a home is not this user's directory.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() && meta.uid() == me && std::fs::remove_dir_all(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The maker's pid in a home's or worker home's name.
fn maker_pid(name: &str) -> Option<u32> {
    let rest = name
        .strip_prefix(HOME)
        .or_else(|| name.strip_prefix(WORKER))?;
    let (pid, tail) = rest.split_once('-')?;
    (!tail.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        .then(|| pid.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_give_their_makers_pid_and_nothing_else_does() {
        assert_eq!(maker_pid("praxis-home-123-0-abc"), Some(123));
        assert_eq!(maker_pid("praxis-worker-9-4-f"), Some(9));
        for other in [
            "praxis-home-",
            "praxis-home-123",
            "praxis-home-123-",
            "praxis-home--1-0",
            "praxis-home-+1-0-a",
            "praxis-home-99999999999-0-a",
            "praxis-homes-1-0-a",
            "tmp.praxis-home-1-0-a",
        ] {
            assert_eq!(maker_pid(other), None, "{other}");
        }
    }

    /// A pid no process has now (past the kernel's maximum).
    fn dead_pid() -> u32 {
        let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(4_194_304);
        max + 1
    }

    #[test]
    fn only_homes_whose_maker_is_gone_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dead_pid();
        let d = dir.path();
        let gone = [
            format!("praxis-home-{dead}-0-a"),
            format!("praxis-worker-{dead}-3-b"),
        ];
        for g in &gone {
            std::fs::create_dir_all(d.join(g).join("tmp")).unwrap();
            std::fs::write(d.join(g).join("tmp/f"), "x").unwrap();
        }
        let kept = [
            // Its maker runs: this process, and pid 1.
            format!("praxis-home-{}-0-a", std::process::id()),
            "praxis-worker-1-0-a".to_string(),
            // Not a home's name.
            format!("praxis-homes-{dead}-0-a"),
        ];
        for k in &kept {
            std::fs::create_dir(d.join(k)).unwrap();
        }
        // A file, and a link to a directory, named like abandoned homes.
        std::fs::write(d.join(format!("praxis-home-{dead}-1-a")), "file").unwrap();
        let target = tempfile::tempdir().unwrap();
        std::fs::write(target.path().join("keep"), "x").unwrap();
        std::os::unix::fs::symlink(target.path(), d.join(format!("praxis-worker-{dead}-2-c")))
            .unwrap();

        assert_eq!(sweep_abandoned_homes(d), 2);
        for g in &gone {
            assert!(!d.join(g).exists(), "{g} left");
        }
        for k in &kept {
            assert!(d.join(k).exists(), "{k} removed");
        }
        assert!(d.join(format!("praxis-home-{dead}-1-a")).exists());
        assert!(target.path().join("keep").exists());
    }

    #[test]
    fn a_worker_home_is_private_and_removed_on_drop() {
        let home = WorkerHome::new().unwrap();
        let path = home.path().to_path_buf();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o700);
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(maker_pid(&name), Some(std::process::id()));
        std::fs::create_dir_all(path.join("praxis-home-1-0-a/tmp")).unwrap();
        drop(home);
        assert!(!path.exists());
    }

    #[test]
    fn emptying_a_private_home_leaves_only_an_empty_tmp() {
        let parent = tempfile::tempdir().unwrap();
        let home = make_private_home(Some(parent.path())).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), "x").unwrap();
        std::fs::write(home.join(".bash_history"), "secret").unwrap();
        std::fs::create_dir_all(home.join(".cache/pip")).unwrap();
        std::fs::write(home.join(".cache/pip/f"), "x").unwrap();
        std::fs::create_dir_all(home.join("tmp/build/deep")).unwrap();
        std::fs::write(home.join("tmp/build/deep/f"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), home.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path(), home.join("tmp/link")).unwrap();
        empty_private_home(&home).unwrap();
        let names = |dir: &Path| -> Vec<String> {
            std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        };
        assert_eq!(names(&home), ["tmp"]);
        assert!(names(&home.join("tmp")).is_empty());
        // Links were removed, not followed.
        assert!(outside.path().join("keep").exists());
        // A `tmp` a command removed (or replaced by a file) is made again.
        std::fs::remove_dir(home.join("tmp")).unwrap();
        std::fs::write(home.join("tmp"), "not a dir").unwrap();
        empty_private_home(&home).unwrap();
        assert!(home.join("tmp").is_dir());
        assert_eq!(
            std::fs::metadata(home.join("tmp")).unwrap().mode() & 0o777,
            0o700
        );
    }
}
