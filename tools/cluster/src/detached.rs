//! Processes that outlive the command that started them, for `mc-cluster up`.
//!
//! [`crate::LocalCluster`] owns its children and kills them when dropped, which is what a test
//! wants. A person running `mc-cluster up` wants the opposite: the cluster keeps running
//! after the command returns, and a later `mc-cluster down` (another process) stops it. So a
//! detached process runs in its own session (`setsid`, so a terminal's hang-up or Ctrl-C does
//! not reach it), with stdin closed and its output appended to a log file, and is named
//! afterwards by a [`ProcessId`]: its pid plus its start time, so a pid the kernel recycled
//! for an unrelated process is never taken for it, let alone signalled.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

/// Pause between two checks whether a process has exited.
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A process named by pid and start time (clock ticks after boot, `/proc/<pid>/stat` field 22).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessId {
    /// The process id.
    pub pid: u32,
    /// When the process started, in clock ticks since boot.
    pub start_ticks: u64,
}

impl ProcessId {
    /// The process as it is now, if `pid` runs (zombies count as gone).
    pub fn of(pid: u32) -> Option<ProcessId> {
        let (state, start_ticks) = stat_of(pid)?;
        (state != 'Z' && state != 'X').then_some(ProcessId { pid, start_ticks })
    }

    /// True while this very process runs: same pid, same start time, not a zombie.
    pub fn is_alive(&self) -> bool {
        ProcessId::of(self.pid) == Some(*self)
    }

    /// Sends `signal` if the process is still alive; false if it is gone or `kill(2)` failed.
    pub fn signal(&self, signal: i32) -> bool {
        self.is_alive() && send_signal(self.pid, signal)
    }

    /// Polls until the process is gone or `timeout` passes; true when it is gone.
    pub fn wait_gone(&self, timeout: Duration) -> bool {
        let started = Instant::now();
        while self.is_alive() {
            if started.elapsed() >= timeout {
                return false;
            }
            std::thread::sleep(EXIT_POLL_INTERVAL);
        }
        true
    }
}

/// State letter and start time of `pid` from `/proc/<pid>/stat`.
fn stat_of(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 3 is the state; the start time is field 22, so 19 fields further on.
    let start_ticks = fields.nth(18)?.parse().ok()?;
    Some((state, start_ticks))
}

fn send_signal(pid: u32, signal: i32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) takes two integers and touches none of our memory. Callers checked just
    // before that `pid` still names the process they started (same start time).
    unsafe { libc::kill(pid, signal) == 0 }
}

/// What to run detached: binary, arguments, extra environment, working directory and log.
#[derive(Debug, Clone, Copy)]
pub struct DetachedCommand<'a> {
    /// Human name for errors, e.g. `master-0`.
    pub what: &'a str,
    /// The executable.
    pub binary: &'a Path,
    /// Its arguments.
    pub args: &'a [String],
    /// Environment set on top of this process's.
    pub env: &'a [(String, String)],
    /// Working directory (a cluster's directory: it also marks the process as the cluster's).
    pub cwd: &'a Path,
    /// Log file its stdout and stderr are appended to.
    pub log: &'a Path,
}

/// Starts `cmd` in a new session and returns the [`Child`] handle (for early-exit checks while
/// the caller waits for readiness) and its [`ProcessId`]. Dropping the handle neither kills
/// nor waits for the process; once the caller exits, init reaps it.
///
/// # Errors
/// [`Error::Io`] when the log cannot be opened, [`Error::Spawn`] when the binary cannot run.
pub fn spawn_detached(cmd: &DetachedCommand<'_>) -> Result<(Child, ProcessId), Error> {
    let io_error = |source| Error::Io {
        action: "could not write log file",
        path: cmd.log.to_path_buf(),
        source,
    };
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(cmd.log)
        .map_err(io_error)?;
    writeln!(
        log,
        "=== mc-cluster: starting {}: {} {} ===",
        cmd.what,
        cmd.binary.display(),
        cmd.args.join(" ")
    )
    .map_err(io_error)?;
    let stderr = log.try_clone().map_err(io_error)?;
    let mut command = Command::new(cmd.binary);
    command
        .args(cmd.args)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .current_dir(cmd.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(stderr));
    // SAFETY: the closure runs in the forked child before exec and calls only setsid(2),
    // which is async-signal-safe and allocates nothing.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn().map_err(|source| Error::Spawn {
        what: cmd.what.to_string(),
        binary: cmd.binary.to_path_buf(),
        source,
    })?;
    let id = ProcessId {
        pid: child.id(),
        start_ticks: stat_of(child.id()).map_or(0, |(_, ticks)| ticks),
    };
    Ok((child, id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::unique_temp_dir;

    #[test]
    fn detached_process_has_its_own_session_and_log() {
        let dir = unique_temp_dir("mc-cluster-detached").unwrap();
        let log = dir.join("x.log");
        let args = [
            "-c".to_string(),
            "echo hello-detached; exec sleep 600".to_string(),
        ];
        let (mut child, id) = spawn_detached(&DetachedCommand {
            what: "sleeper",
            binary: Path::new("/bin/sh"),
            args: &args,
            env: &[],
            cwd: &dir,
            log: &log,
        })
        .unwrap();
        assert!(id.is_alive());
        assert_eq!(ProcessId::of(id.pid), Some(id));
        // Its own session: the session id is its own pid (field 6 of /proc/<pid>/stat).
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", id.pid)).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 1..];
        let sid: u32 = after.split_whitespace().nth(3).unwrap().parse().unwrap();
        assert_eq!(sid, id.pid);
        let cwd = std::fs::read_link(format!("/proc/{}/cwd", id.pid)).unwrap();
        assert_eq!(cwd, dir);

        // A different start time is another process, never signalled.
        let other = ProcessId {
            start_ticks: id.start_ticks + 1,
            ..id
        };
        assert!(!other.is_alive() && !other.signal(libc::SIGTERM));

        assert!(id.signal(libc::SIGTERM));
        child.wait().unwrap();
        assert!(id.wait_gone(Duration::from_secs(600)));
        assert!(!id.signal(libc::SIGTERM));
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("starting sleeper"), "{text}");
        assert!(text.contains("hello-detached"), "{text}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_binary_is_a_spawn_error() {
        let dir = unique_temp_dir("mc-cluster-detached").unwrap();
        let err = spawn_detached(&DetachedCommand {
            what: "ghost",
            binary: &dir.join("no-such-binary"),
            args: &[],
            env: &[],
            cwd: &dir,
            log: &dir.join("g.log"),
        })
        .unwrap_err();
        assert!(err.to_string().contains("ghost"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
