//! A size-limited tmpfs for the full-disk and read-only-mount tests (needs root, as CI has).

use super::text;
use std::path::Path;
use std::process::Command;

/// A size-limited tmpfs, unmounted when dropped.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (with the reason printed) when this process may not mount; under `CI=true`
    /// that is a failure.
    pub fn mount(size: &str) -> Option<Tmpfs> {
        let uid = Command::new("id").arg("-u").output().unwrap();
        if text(&uid.stdout).trim() != "0" {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true: the full-disk and read-only-mount tests need root (to mount a tmpfs)"
            );
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount -t tmpfs failed");
        Some(Tmpfs { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn remount_read_only(&self) {
        let status = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(status.success(), "remount,ro failed");
    }

    /// Writes until the file system refuses: ENOSPC.
    pub fn fill(&self) {
        use std::io::Write;
        let mut file = std::fs::File::create(self.path().join("filler")).unwrap();
        let block = vec![0u8; 4096];
        loop {
            if let Err(e) = file.write_all(&block).and_then(|()| file.sync_all()) {
                assert_eq!(e.raw_os_error(), Some(28), "expected ENOSPC, got {e}");
                break;
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.path()).status();
    }
}
