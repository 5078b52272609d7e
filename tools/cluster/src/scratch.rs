//! Scratch directories for the SSD tier: record files need a file system that takes
//! O_DIRECT (ext4, xfs), and tmpfs refuses it, so tests, fault rows and `mc-bench` probe the
//! directory before they hand it to a store node.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A fresh, empty directory `parent/<name>-<pid>` (an earlier one of that name is removed)
/// whose file system takes O_DIRECT.
///
/// # Errors
/// A message saying why not (the directory could not be made, or its file system refuses
/// O_DIRECT, e.g. tmpfs); callers skip with it, logged.
pub fn o_direct_dir(parent: &Path, name: &str) -> Result<PathBuf, String> {
    let dir = parent.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let probe = dir.join("o_direct_probe");
    let opened = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&probe);
    let _ = std::fs::remove_file(&probe);
    match opened {
        Ok(_) => Ok(dir),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(format!(
                "{} does not take O_DIRECT ({e}); use a directory on ext4 or xfs, not tmpfs",
                parent.display()
            ))
        }
    }
}

/// A small ext4 file system in an image file on a loop device, mounted at
/// [`SmallExt4::mnt`], for tests that fill a disk. Unmounted (which frees the loop device)
/// and removed on drop. Needs root, `mkfs.ext4` and loop devices.
#[derive(Debug)]
pub struct SmallExt4 {
    dir: PathBuf,
    mnt: PathBuf,
}

impl SmallExt4 {
    /// Makes and mounts a `size_mb` MiB file system under `parent/<name>-<pid>/mnt`.
    ///
    /// # Errors
    /// Which step failed and its output (no root, no loop devices, no `mkfs.ext4`);
    /// callers skip with it, logged.
    pub fn new(parent: &Path, name: &str, size_mb: u32) -> Result<SmallExt4, String> {
        let dir = parent.join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mnt = dir.join("mnt");
        std::fs::create_dir_all(&mnt)
            .map_err(|e| format!("cannot create {}: {e}", mnt.display()))?;
        let img = dir.join("fs.img");
        let run = |cmd: &str, args: &[&str]| -> Result<(), String> {
            match std::process::Command::new(cmd).args(args).output() {
                Ok(o) if o.status.success() => Ok(()),
                Ok(o) => Err(format!(
                    "{cmd} {args:?} failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Err(e) => Err(format!("{cmd} not runnable: {e}")),
            }
        };
        let (img_s, mnt_s) = (img.display().to_string(), mnt.display().to_string());
        let made = run("truncate", &["-s", &format!("{size_mb}M"), &img_s])
            .and_then(|()| run("mkfs.ext4", &["-q", "-F", &img_s]))
            .and_then(|()| run("mount", &["-o", "loop", &img_s, &mnt_s]));
        if let Err(why) = made {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(why);
        }
        Ok(SmallExt4 { dir, mnt })
    }

    /// Where the file system is mounted.
    pub fn mnt(&self) -> &Path {
        &self.mnt
    }
}

/// Longest wait for a file system still held by a process that is exiting (a killed
/// node's data-plane child dies a moment after its supervisor).
const UMOUNT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

impl Drop for SmallExt4 {
    fn drop(&mut self) {
        let umount = |lazy: bool| {
            let mut cmd = std::process::Command::new("umount");
            if lazy {
                cmd.arg("-l");
            }
            cmd.arg(&self.mnt)
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let until = std::time::Instant::now() + UMOUNT_PATIENCE;
        let mut done = umount(false);
        while !done && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(50));
            done = umount(false);
        }
        if !done && !umount(true) {
            eprintln!("cannot unmount {}; unmount it by hand", self.mnt.display());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_on_the_build_disk_takes_o_direct_and_starts_empty() {
        let parent = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target");
        match o_direct_dir(&parent, "scratch-test") {
            Ok(dir) => {
                assert!(dir.is_dir());
                assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
                std::fs::remove_dir_all(&dir).unwrap();
            }
            // A build directory on tmpfs: the refusal names the fix.
            Err(why) => assert!(why.contains("O_DIRECT"), "{why}"),
        }
    }
}
