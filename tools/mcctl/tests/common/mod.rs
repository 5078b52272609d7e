//! Running the `mc-cluster` binary from tests, with a guard that stops (and if need be
//! SIGKILLs) every process of the cluster directory when the test ends, panics included.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// A cluster directory used by one test, cleaned up on drop.
pub struct ClusterDir {
    pub dir: PathBuf,
}

impl ClusterDir {
    /// A fresh directory path (not created: `up` creates it).
    pub fn new(tag: &str) -> ClusterDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mc-cluster-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        ClusterDir { dir }
    }

    /// Runs `mc-cluster ARGS --dir DIR` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_path(args, None)
    }

    /// As [`Self::run`], with PATH replaced when `path` is given.
    pub fn run_with_path(&self, args: &[&str], path: Option<&str>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mc-cluster"));
        cmd.args(args).arg("--dir").arg(&self.dir);
        if let Some(path) = path {
            cmd.env("PATH", path);
        }
        cmd.output().expect("mc-cluster runs")
    }

    /// Runs a command that must succeed and returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "mc-cluster {args:?} failed ({}):\n{stdout}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.logs_tail()
        );
        stdout
    }

    /// The last lines of every log, for failure messages.
    pub fn logs_tail(&self) -> String {
        let mut out = String::new();
        let Ok(entries) = std::fs::read_dir(self.dir.join("logs")) else {
            return out;
        };
        for e in entries.flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out += &format!("==> {} <==\n", e.path().display());
            out += &lines[lines.len().saturating_sub(15)..].join("\n");
            out.push('\n');
        }
        out
    }
}

impl Drop for ClusterDir {
    fn drop(&mut self) {
        if self.dir.exists() {
            let _ = self.run(&["down", "--force", "--timeout", "5"]);
        }
        // Whatever is still there (a failed `up`, a broken state file) dies here.
        for pid in procs_in(&self.dir) {
            // kill(1) rather than libc: this test crate has no unsafe code.
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Pids of live processes whose working directory is `dir` (or was, if it was removed):
/// `mc-cluster up` starts every process there.
pub fn procs_in(dir: &Path) -> Vec<u32> {
    let want = dir.to_string_lossy().into_owned();
    let deleted = format!("{want} (deleted)");
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) else {
            continue;
        };
        let cwd = cwd.to_string_lossy();
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true);
        if (cwd == want || cwd == deleted) && !zombie {
            pids.push(pid);
        }
    }
    pids
}

/// [`procs_in`] without the processes whose parent is one of them: a store node's
/// `dataplane` and `agent` children count as part of their node.
pub fn top_procs_in(dir: &Path) -> Vec<u32> {
    let all = procs_in(dir);
    let parent = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    all.iter()
        .copied()
        .filter(|&p| parent(p).is_none_or(|pp| !all.contains(&pp)))
        .collect()
}
