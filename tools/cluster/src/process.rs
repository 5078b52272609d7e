//! One supervised child process: spawning with its output in a log file, readiness polling,
//! signals and reaping.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::Error;
use crate::logs::{read_from, tail_file};

/// Pause between two readiness probes.
const READY_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Pause between two checks whether a child has exited.
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Spawn attempts while the binary is reported busy (`ETXTBSY`).
const SPAWN_BUSY_ATTEMPTS: u32 = 20;
/// Lines of a child's log quoted in an error about that child.
pub(crate) const ERROR_LOG_LINES: usize = 40;

/// A child process this crate started, with the log file its stdout and stderr go to.
///
/// The process is reaped exactly once and its status kept, so its pid is never signalled
/// after it could have been recycled. Dropping a `ManagedChild` SIGKILLs and reaps it.
#[derive(Debug)]
pub(crate) struct ManagedChild {
    /// Human name used in errors, e.g. `master` or `node 1 on 127.0.0.2`.
    what: String,
    /// Log file, appended to across restarts so earlier runs stay readable.
    log_path: PathBuf,
    /// The current (or last) process; `None` before the first spawn.
    process: Option<Child>,
    /// Exit status of `process` once it has been reaped.
    exit_status: Option<ExitStatus>,
    /// Length of the log file when `process` was spawned: where its own output starts.
    log_offset_bytes: u64,
}

impl ManagedChild {
    /// A child that has not been spawned yet.
    pub(crate) fn new(what: String, log_path: PathBuf) -> Self {
        ManagedChild {
            what,
            log_path,
            process: None,
            exit_status: None,
            log_offset_bytes: 0,
        }
    }

    /// Human name used in errors.
    pub(crate) fn what(&self) -> &str {
        &self.what
    }

    /// The log file's path.
    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Starts `binary args...` with stdin closed and stdout+stderr appended to the log file,
    /// after SIGKILLing and reaping any process still running under this handle. The
    /// environment (`RUST_LOG` included) is inherited.
    pub(crate) fn spawn(&mut self, binary: &Path, args: &[String]) -> Result<(), Error> {
        self.spawn_with_env(binary, args, &[])
    }

    /// [`spawn`](Self::spawn) with `env` set on top of the inherited environment.
    pub(crate) fn spawn_with_env(
        &mut self,
        binary: &Path,
        args: &[String],
        env: &[(String, String)],
    ) -> Result<(), Error> {
        self.kill();
        let log_error = |source| Error::Io {
            action: "could not write log file",
            path: self.log_path.clone(),
            source,
        };
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(log_error)?;
        writeln!(
            log,
            "=== mc-cluster: starting {}: {} {} ===",
            self.what,
            binary.display(),
            args.join(" ")
        )
        .map_err(log_error)?;
        self.log_offset_bytes = log.metadata().map_err(log_error)?.len();
        let mut attempt = 1;
        let child = loop {
            let stdout = log.try_clone().map_err(log_error)?;
            let stderr = log.try_clone().map_err(log_error)?;
            let spawned = Command::new(binary)
                .args(args)
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(Stdio::from(stdout))
                .stderr(Stdio::from(stderr))
                .spawn();
            match spawned {
                Ok(child) => break child,
                // ETXTBSY: a binary or script written just now can still be open for writing
                // in a process another thread forked in between; that fd closes on its exec.
                Err(err)
                    if err.raw_os_error() == Some(libc::ETXTBSY)
                        && attempt < SPAWN_BUSY_ATTEMPTS =>
                {
                    attempt += 1;
                    std::thread::sleep(READY_POLL_INTERVAL);
                }
                Err(source) => {
                    return Err(Error::Spawn {
                        what: self.what.clone(),
                        binary: binary.to_path_buf(),
                        source,
                    });
                }
            }
        };
        self.process = Some(child);
        self.exit_status = None;
        Ok(())
    }

    /// The pid while the process has not been reaped (it may be a zombie already).
    pub(crate) fn pid(&self) -> Option<u32> {
        match (&self.process, self.exit_status) {
            (Some(child), None) => Some(child.id()),
            _ => None,
        }
    }

    /// The exit status if the process has exited, reaping it if that has not happened yet.
    /// `None` while it runs or before it was ever spawned.
    pub(crate) fn try_reap(&mut self) -> Option<ExitStatus> {
        if self.exit_status.is_none() {
            self.exit_status = self
                .process
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
        }
        self.exit_status
    }

    /// SIGKILLs the process if it has not been reaped yet, then reaps it.
    pub(crate) fn kill(&mut self) {
        if self.exit_status.is_some() {
            return;
        }
        if let Some(child) = &mut self.process {
            // An error only means it already exited; `wait` below reaps it either way.
            let _ = child.kill();
            if let Ok(status) = child.wait() {
                self.exit_status = Some(status);
            }
        }
    }

    /// Sends `signal` to the process if it has not been reaped yet; false if there was no
    /// process to signal or `kill(2)` failed.
    pub(crate) fn signal(&self, signal: i32) -> bool {
        self.pid()
            .is_some_and(|pid| send_signal(pid, signal).is_ok())
    }

    /// Waits up to `timeout` for the process to exit and returns its status (at once if it
    /// was reaped before); `None` if it is still running when the time is up.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.try_reap() {
                return Some(status);
            }
            let elapsed = started.elapsed();
            if elapsed >= timeout || self.process.is_none() {
                return None;
            }
            std::thread::sleep(EXIT_POLL_INTERVAL.min(timeout - elapsed));
        }
    }

    /// The last `lines` lines of the log file.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.log_path, lines)
    }

    /// Polls `probe` every 50 ms until it returns `Ok`, the process exits, or `timeout`
    /// passes. `ports` describes the ports the process was given, for the error message.
    ///
    /// An early exit whose own output mentions a taken address becomes
    /// [`Error::AddressInUse`] so callers can retry with other ports.
    pub(crate) fn wait_ready<T, E: std::fmt::Display>(
        &mut self,
        timeout: Duration,
        ports: &str,
        mut probe: impl FnMut() -> Result<T, E>,
    ) -> Result<T, Error> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.try_reap() {
                return Err(self.exited_early(status, ports));
            }
            match probe() {
                // Re-check the process: if it lost its port to another server, that server
                // answered the probe, and this child is about to exit (or has).
                Ok(value) => match self.try_reap() {
                    None => return Ok(value),
                    Some(status) => return Err(self.exited_early(status, ports)),
                },
                Err(last_probe) if started.elapsed() >= timeout => {
                    return Err(Error::NotReady {
                        what: self.what.clone(),
                        timeout,
                        last_probe: last_probe.to_string(),
                        log_tail: self.log_tail(ERROR_LOG_LINES),
                    });
                }
                Err(_) => std::thread::sleep(READY_POLL_INTERVAL),
            }
        }
    }

    fn exited_early(&self, status: ExitStatus, ports: &str) -> Error {
        let own_output = read_from(&self.log_path, self.log_offset_bytes);
        let log_tail = self.log_tail(ERROR_LOG_LINES);
        if mentions_address_in_use(&own_output) {
            Error::AddressInUse {
                what: self.what.clone(),
                ports: ports.to_string(),
                status,
                log_tail,
            }
        } else {
            Error::ExitedEarly {
                what: self.what.clone(),
                status,
                log_tail,
            }
        }
    }
}

impl Drop for ManagedChild {
    fn drop(&mut self) {
        self.kill();
    }
}

/// True when a child's output says a bind failed because the address was taken
/// (Rust's `AddrInUse` text, the raw errno 98 text, or a C++ server's message).
pub(crate) fn mentions_address_in_use(output: &str) -> bool {
    let output = output.to_ascii_lowercase();
    [
        "address already in use",
        "address in use",
        "addrinuse",
        "os error 98",
    ]
    .iter()
    .any(|marker| output.contains(marker))
}

/// Sends `signal` to process `pid` with `kill(2)`.
pub(crate) fn send_signal(pid: u32, signal: i32) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: kill(2) only takes integers and touches none of our memory. Callers pass the pid
    // of a child that has not been reaped, or of its live child read from /proc just before,
    // so the pid cannot name a recycled process.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::unique_temp_dir;

    fn sh(script: &str) -> (PathBuf, ManagedChild) {
        let dir = unique_temp_dir("mc-cluster-proc").unwrap();
        let mut child = ManagedChild::new("test child".to_string(), dir.join("child.log"));
        child
            .spawn(
                Path::new("/bin/sh"),
                &["-c".to_string(), script.to_string()],
            )
            .unwrap();
        (dir, child)
    }

    #[test]
    fn address_in_use_markers() {
        assert!(mentions_address_in_use(
            "Error: Address already in use (os error 98)"
        ));
        assert!(mentions_address_in_use("bind: EADDRINUSE"));
        assert!(!mentions_address_in_use("listening on 127.0.0.1:5000"));
    }

    #[test]
    fn early_exit_is_reported_with_status_and_log() {
        let (dir, mut child) = sh("echo boom-from-child; exit 3");
        let err = child
            .wait_ready(Duration::from_secs(600), "port 1", || Err::<(), _>("down"))
            .unwrap_err();
        assert!(matches!(err, Error::ExitedEarly { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains("exit status: 3"), "{message}");
        assert!(message.contains("boom-from-child"), "{message}");
        drop(child);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn address_in_use_exit_is_its_own_error_and_ignores_earlier_runs() {
        let (dir, mut child) = sh("echo 'bind: Address already in use' >&2; exit 1");
        let err = child
            .wait_ready(Duration::from_secs(600), "port 7", || Err::<(), _>("down"))
            .unwrap_err();
        assert!(matches!(err, Error::AddressInUse { .. }), "{err}");
        assert!(err.to_string().contains("port 7"), "{err}");

        // The same log now holds the marker from the first run; a second run that fails for
        // another reason must not be mistaken for a port clash.
        child
            .spawn(
                Path::new("/bin/sh"),
                &["-c".to_string(), "echo other failure; exit 2".to_string()],
            )
            .unwrap();
        let err = child
            .wait_ready(Duration::from_secs(600), "port 7", || Err::<(), _>("down"))
            .unwrap_err();
        assert!(matches!(err, Error::ExitedEarly { .. }), "{err}");
        drop(child);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn timeout_reports_last_probe_and_kill_reaps() {
        let (dir, mut child) = sh("echo still-starting; exec sleep 600");
        let err = child
            .wait_ready(Duration::ZERO, "port 1", || {
                Err::<(), _>("HTTP 503 from probe")
            })
            .unwrap_err();
        assert!(matches!(err, Error::NotReady { .. }), "{err}");
        assert!(err.to_string().contains("HTTP 503 from probe"), "{err}");

        assert!(child.pid().is_some());
        assert!(child.wait_exit(Duration::ZERO).is_none());
        child.kill();
        assert!(child.pid().is_none());
        assert!(!child.signal(libc::SIGTERM));
        let status = child.wait_exit(Duration::ZERO).unwrap();
        assert!(!status.success());
        drop(child);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn signal_reaches_the_process() {
        let (dir, mut child) = sh("exec sleep 600");
        assert!(child.signal(libc::SIGTERM));
        let status = child.wait_exit(Duration::from_secs(600)).unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        drop(child);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn ready_probe_success_returns_its_value() {
        let (dir, mut child) = sh("exec sleep 600");
        let mut probes = 0;
        let value = child
            .wait_ready(Duration::from_secs(600), "port 1", || {
                probes += 1;
                if probes < 3 {
                    Err("not yet")
                } else {
                    Ok(probes)
                }
            })
            .unwrap();
        assert_eq!(value, 3);
        drop(child);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
