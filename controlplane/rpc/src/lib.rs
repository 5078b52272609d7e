//! Master RPC over TCP.
//!
//! Every connection opens with the handshake of `mc_schema::handshake`, then carries frames
//! of `mc_schema::frame`. The [`client`] is blocking and does its I/O on the caller's thread
//! (no hand-off to a runtime per call); the [`server`] runs on tokio, answers each request
//! inline as soon as its frame is complete, and lets a client keep many requests in flight
//! on one connection (answers carry the request id).

pub mod client;
pub mod server;

pub use client::RpcClient;
pub use server::{ServerConfig, Service, serve};

use mc_schema::{ErrorCode, SchemaError};

/// Errors of the RPC layer.
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
