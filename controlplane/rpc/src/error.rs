//! The one error type of this crate: what goes wrong on a client's call and on a server's
//! connection.

use std::time::Duration;

use mc_schema::handshake::HelloStatus;
use mc_schema::{ErrorCode, SchemaError};

/// Errors of the RPC layer. The client's carry the address it called; the server's end one
/// connection (logged with the peer's address) and never the server.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// Could not open a connection.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Target.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The deadline passed before an answer came.
    #[error("no answer from {addr} before the deadline")]
    Timeout {
        /// Target.
        addr: String,
    },
    /// The peer refused the handshake or spoke another protocol.
    #[error("handshake with {addr} failed: {source}")]
    Handshake {
        /// Target.
        addr: String,
        /// Cause.
        source: SchemaError,
    },
    /// Malformed bytes from the peer.
    #[error("protocol error from {addr}: {source}")]
    Protocol {
        /// Target.
        addr: String,
        /// Cause.
        source: SchemaError,
    },
    /// Connection failed mid-call.
    #[error("connection to {addr} failed: {source}")]
    Io {
        /// Target.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },

    /// Server side: the peer sent no complete hello in time.
    #[error(
        "handshake timed out: no complete hello within {timeout:?} (the peer is slow or not a mooncake-rs client)"
    )]
    HandshakeTimeout {
        /// How long the server waited.
        timeout: Duration,
    },
    /// Server side: reading the hello failed.
    #[error("handshake read: {0}")]
    HandshakeRead(#[source] std::io::Error),
    /// Server side: the hello is not one of ours.
    #[error("bad handshake: {0}")]
    BadHello(#[source] SchemaError),
    /// Server side: the hello was refused (wrong cluster, role or version); the peer got the
    /// status in the ack.
    #[error("handshake refused: {status:?}")]
    HandshakeRefused {
        /// What the ack told the peer.
        status: HelloStatus,
    },
    /// Server side: a frame's payload is not a request (answered with INVALID_PARAMS first).
    #[error("undecodable request: {0}")]
    UndecodableRequest(#[source] SchemaError),
    /// Server side: a frame header is malformed or announces too large a frame.
    #[error("bad frame: {0}")]
    BadFrame(#[source] SchemaError),
    /// Server side: the connection sat idle for `--rpc_conn_timeout_seconds`.
    #[error("idle timeout: nothing received for {timeout:?} (rpc_conn_timeout_seconds)")]
    IdleTimeout {
        /// The idle limit.
        timeout: Duration,
    },
    /// Server side: reading from or writing to the peer failed.
    #[error("peer I/O failed: {0}")]
    PeerIo(#[source] std::io::Error),
}

impl RpcError {
    /// Mooncake error code for this failure: RPC_TIMEOUT for deadlines, RPC_FAIL otherwise.
    pub fn code(&self) -> ErrorCode {
        match self {
            RpcError::Timeout { .. } => ErrorCode::RpcTimeout,
            _ => ErrorCode::RpcFail,
        }
    }
}
