//! The crate's errors: a ring file that cannot be used, and the two ways a send can fail.

use std::io;

/// A ring file that cannot be created or opened.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    /// A system call failed.
    #[error("ring: {what} failed: {source}")]
    Io {
        /// The call.
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The capacity is not a power of two.
    #[error("ring capacity {capacity_bytes} bytes is not a power of two (try 4194304 = 4 MiB)")]
    NotPowerOfTwo {
        /// As asked.
        capacity_bytes: u64,
    },
    /// The capacity is outside the supported range.
    #[error("ring capacity {capacity_bytes} bytes is outside {min}..={max} bytes")]
    CapacityOutOfRange {
        /// As asked or found.
        capacity_bytes: u64,
        /// Smallest supported.
        min: u64,
        /// Largest supported.
        max: u64,
    },
    /// The fd is not a memfd whose size is sealed, so it could shrink under the mapping.
    #[error("the fd is not a size-sealed memfd made by SharedRing::create")]
    NotSealed,
    /// The file does not start with the ring magic.
    #[error("bad magic {found:#018x}: the file is not a mooncake-rs ring")]
    BadMagic {
        /// The first 8 bytes.
        found: u64,
    },
    /// The file was made by another layout version.
    #[error("ring layout version {theirs}, this build speaks {ours}: run matching binaries")]
    VersionMismatch {
        /// Ours.
        ours: u64,
        /// The file's.
        theirs: u64,
    },
    /// The file size does not match the capacity in its header.
    #[error("ring file is {actual} bytes; its header's capacity needs {expected}")]
    SizeMismatch {
        /// From the header.
        expected: u64,
        /// Of the file.
        actual: u64,
    },
}

impl From<RingError> for io::Error {
    fn from(e: RingError) -> io::Error {
        let kind = match &e {
            RingError::Io { source, .. } => source.kind(),
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e)
    }
}

/// The producer's local backlog is at its bound: the message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "ring backlog full: {queued_bytes} bytes queued, a {message_bytes}-byte message would pass the bound of {bound_bytes} bytes"
)]
pub struct Backpressure {
    /// The refused message.
    pub message_bytes: usize,
    /// Bytes queued and not yet written to the ring.
    pub queued_bytes: usize,
    /// The backlog's bound.
    pub bound_bytes: usize,
}

/// A blocking send that did not complete. The message may still be in the backlog (and be
/// written by a later flush) unless `RingEnd::discard_backlog` drops it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The ring stayed full (or the backlog at its bound) for the whole timeout.
    #[error("ring send timed out: the consumer is not draining the ring")]
    Timeout,
    /// The peer closed its end (orderly exit).
    #[error("ring peer closed its end")]
    PeerClosed,
    /// The peer's heartbeat stopped for longer than the peer timeout.
    #[error("ring peer is silent: its heartbeat stopped")]
    PeerSilent,
    /// The message is larger than the backlog bound and can never be queued.
    #[error(
        "message of {message_bytes} bytes exceeds the ring backlog bound of {bound_bytes} bytes"
    )]
    TooLarge {
        /// The message.
        message_bytes: usize,
        /// The bound.
        bound_bytes: usize,
    },
}
