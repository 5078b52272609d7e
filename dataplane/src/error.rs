//! The data plane's one error type.

use mc_schema::handshake::HelloStatus;
use mc_schema::{ErrorCode, SchemaError};
use mc_transfer::header::Op;

/// Errors of the data plane: starting a shard, adding segments, serving a connection.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// Segment memory could not be set up.
    #[error("segment memory: {0}")]
    Memory(#[from] mc_hugepages::Error),
    /// Core pinning failed.
    #[error("core placement: {0}")]
    Topology(#[from] mc_topology::Error),
    /// The data port could not be bound.
    #[error(
        "cannot listen on {addr} for shard {shard}'s data port: {source} (pick another --data_port, or 0 for an ephemeral one)"
    )]
    Bind {
        /// Shard index.
        shard: usize,
        /// Address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The SSD tier could not use its directory or files.
    #[error(
        "cannot use {path} for SSD offload: {source} (the directory must be on a disk file system that takes O_DIRECT, such as ext4 or xfs; tmpfs refuses it. io_uring buffers count against the memlock limit: lower --io_memory or raise `ulimit -l`)"
    )]
    SsdOpen {
        /// The file or directory.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// An SSD read, write or sync failed.
    #[error("SSD {what} failed: {source}")]
    SsdIo {
        /// The operation.
        what: &'static str,
        /// Cause.
        source: std::io::Error,
    },
    /// The shard's SSD quota is used up.
    #[error(
        "the SSD quota of {quota_bytes} bytes is used up: offload stops (raise --ssd_quota_bytes)"
    )]
    SsdQuota {
        /// The shard's quota.
        quota_bytes: u64,
    },
    /// The glommio executor could not start.
    #[error(
        "cannot start shard {shard}'s executor: {reason} (io_uring needs memlock: lower --io_memory or raise `ulimit -l`)"
    )]
    Executor {
        /// Shard index.
        shard: usize,
        /// Cause, as glommio words it.
        reason: String,
    },
    /// The shard did not come up.
    #[error("shard {shard} failed to start: the shard thread exited during start-up")]
    Start {
        /// Shard index.
        shard: usize,
    },
    /// What an earlier data plane kept for this shard cannot be taken over.
    #[error("shard {shard} cannot take over the previous data plane's memory: {reason}")]
    Revive {
        /// Shard index.
        shard: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A segment larger than this machine's address space.
    #[error("{size_bytes} bytes do not fit in this machine's address space")]
    TooLarge {
        /// Bytes asked for.
        size_bytes: u64,
    },
    /// A plain-page segment larger than the memory the kernel has available.
    #[error(
        "{size_bytes} bytes asked for, but the machine has only {available_bytes} bytes available (MemAvailable); ask for less or free memory"
    )]
    NotEnoughMemory {
        /// Bytes asked for.
        size_bytes: u64,
        /// MemAvailable.
        available_bytes: u64,
    },
    /// A shared-memory file range that a segment of this shard already maps.
    #[error(
        "{path} bytes {offset_bytes}..{end_bytes} overlap segment {segment} mounted from the same file; unmount it first or mount another range"
    )]
    ShmOverlap {
        /// File.
        path: String,
        /// First byte asked for.
        offset_bytes: u64,
        /// One past the last byte asked for.
        end_bytes: u64,
        /// The segment already mapping part of it.
        segment: String,
    },
    /// The object index's memory files could not be made or grown.
    #[error("object index: {0}")]
    Index(#[source] mc_hugepages::Error),
    /// A key too long for the index (the transfer decoder refuses these first).
    #[error("object index: a key of {len} bytes exceeds the 4096-byte limit")]
    IndexKey {
        /// Bytes of the key.
        len: usize,
    },
    /// A data connection failed.
    #[error("data connection: {source}")]
    Connection {
        /// Cause.
        source: std::io::Error,
    },
    /// The peer's handshake was malformed.
    #[error("bad handshake: {0}")]
    BadHandshake(#[source] SchemaError),
    /// The peer's handshake was refused (another cluster, version or role).
    #[error("handshake refused: {0:?}")]
    HandshakeRefused(HelloStatus),
    /// A malformed transfer header.
    #[error("bad transfer header: {0}")]
    BadHeader(#[source] SchemaError),
    /// A malformed object info block after a WRITE header.
    #[error("bad object info: {0}")]
    BadObjectInfo(#[source] SchemaError),
    /// A header with an op clients do not send.
    #[error("unexpected op {0:?} from a client")]
    UnexpectedOp(Op),
    /// A WRITE that could not be accepted; its payload could not be skipped, so the
    /// connection closes.
    #[error("write refused with {code}: segment {segment_id:#x} offset {offset} length {length}")]
    WriteRefused {
        /// Segment named by the header.
        segment_id: u64,
        /// Offset named by the header.
        offset: u64,
        /// Length named by the header.
        length: u64,
        /// Code the ack carried.
        code: ErrorCode,
    },
}
