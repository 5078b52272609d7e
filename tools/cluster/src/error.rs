//! The crate's one error type.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Everything that can go wrong while starting, probing or restarting a local cluster.
///
/// Variants about a child process carry the tail of that child's log, so a failing test prints
/// the reason without anyone having to find the log directory.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A cluster binary was not found in any of the searched directories.
    #[error(
        "binary `{name}` not found (searched: {searched}); run `cargo build --workspace --bins` \
         first, or point MC_BIN_DIR (or ClusterSpec::bin_dir) at the directory that holds it"
    )]
    BinaryNotFound {
        /// The binary's file name, e.g. `mooncake_master`.
        name: String,
        /// The directories searched, in order, separated by `, `.
        searched: String,
    },

    /// A tool binary (etcd, redis-server, prometheus) is not on PATH.
    #[error(
        "`{name}` is not on PATH: install the Debian package `{package}` (scripts/setup.sh \
         installs it)"
    )]
    ToolNotFound {
        /// The binary's name.
        name: String,
        /// The Debian package that provides it.
        package: String,
    },

    /// A [`crate::FaultProxy`] could not start (a target off this machine, no socket).
    #[error("fault proxy in front of {target}: {why}")]
    Proxy {
        /// The address the proxy was to forward to.
        target: String,
        /// What went wrong.
        why: String,
    },

    /// No free TCP port could be reserved on a host address.
    #[error("could not pick a free TCP port on {host}: {source}")]
    PortPick {
        /// The host the port was to be bound on, e.g. `127.0.0.2`.
        host: String,
        /// The bind or name-resolution error.
        #[source]
        source: std::io::Error,
    },

    /// A file-system operation on the log directory or a log file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. `could not create log directory`.
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The binary could not be executed at all.
    #[error("could not spawn {what} from {binary}: {source}")]
    Spawn {
        /// Which child, e.g. `master` or `node 1`.
        what: String,
        /// The binary that failed to start.
        binary: PathBuf,
        /// The error from `fork`/`exec`.
        #[source]
        source: std::io::Error,
    },

    /// The child exited before it became ready because one of its ports was taken.
    ///
    /// Ports are picked by binding port 0 and releasing it, so another process can take one in
    /// between; starts that are free to pick new ports retry once on this error.
    #[error(
        "{what} exited with {status} before becoming ready: one of its ports ({ports}) was \
         already in use\n--- log tail ---\n{log_tail}"
    )]
    AddressInUse {
        /// Which child, e.g. `master` or `node 1`.
        what: String,
        /// The ports the child was given, e.g. `rpc 40001, metrics 40002`.
        ports: String,
        /// The child's exit status.
        status: ExitStatus,
        /// The last lines of the child's log.
        log_tail: String,
    },

    /// The child exited before it became ready.
    #[error("{what} exited with {status} before becoming ready\n--- log tail ---\n{log_tail}")]
    ExitedEarly {
        /// Which child, e.g. `master` or `node 1`.
        what: String,
        /// The child's exit status.
        status: ExitStatus,
        /// The last lines of the child's log.
        log_tail: String,
    },

    /// The child kept running but did not report ready within the timeout.
    #[error(
        "{what} was not ready after {timeout:?} (last probe: {last_probe})\n--- log tail ---\n\
         {log_tail}"
    )]
    NotReady {
        /// Which child, e.g. `master` or `node 1`.
        what: String,
        /// The readiness timeout that ran out.
        timeout: Duration,
        /// What the last readiness probe saw, e.g. `HTTP 503` or `connection refused`.
        last_probe: String,
        /// The last lines of the child's log.
        log_tail: String,
    },

    /// A probe could not get an answer at all (nothing listening, a reset, a timeout).
    #[error("GET {url}: {source}")]
    Probe {
        /// The URL probed, e.g. `http://127.0.0.1:9003/health`.
        url: String,
        /// The connect, read or parse error.
        #[source]
        source: std::io::Error,
    },

    /// A probe got an HTTP status other than 200.
    #[error("GET {url}: HTTP {status}")]
    ProbeStatus {
        /// The URL probed.
        url: String,
        /// The status code received.
        status: u16,
    },

    /// A store node's `/health` body lacks the segment counters.
    #[error("GET {url}: no \"mounted_segments\"/\"shards\" in body {body:?}")]
    ProbeNoCounters {
        /// The URL probed.
        url: String,
        /// The start of the body (at most 200 characters).
        body: String,
    },

    /// A store node answers but has not mounted all its segments yet.
    #[error("GET {url}: {mounted} of {segments} segments mounted")]
    ProbeNotMounted {
        /// The URL probed.
        url: String,
        /// Segments the master has accepted.
        mounted: u64,
        /// Segments the node serves.
        segments: u64,
    },

    /// A reply ends before the blank line that closes the headers.
    #[error("malformed HTTP response: no end of headers in {len} bytes")]
    HttpNoHeaderEnd {
        /// Bytes received.
        len: usize,
    },

    /// A reply does not start with `HTTP/x.y <code>`.
    #[error("malformed HTTP response: bad status line {line:?}")]
    HttpStatusLine {
        /// The first line received.
        line: String,
    },

    /// A chunked body has a size line without its CRLF.
    #[error("malformed HTTP response: chunk size line without CRLF")]
    HttpChunkLine,

    /// A chunked body has a size that is not hexadecimal.
    #[error("malformed HTTP response: bad chunk size {size:?}")]
    HttpChunkSize {
        /// The size field as received.
        size: String,
    },

    /// A chunked body ends inside a chunk.
    #[error("malformed HTTP response: chunk of {size} bytes truncated to {got}")]
    HttpChunkTruncated {
        /// The chunk's announced size.
        size: usize,
        /// Bytes present.
        got: usize,
    },
}
