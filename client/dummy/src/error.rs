//! The one error type of this crate.

use mooncake_rs::ErrorCode;

/// What went wrong between a dummy and its real client.
#[derive(Debug, thiserror::Error)]
pub enum DummyError {
    /// `server_address` is not `host:port`.
    #[error("`{addr}` is not host:port (the real client's address, e.g. 127.0.0.1:50052)")]
    BadAddress {
        /// As given.
        addr: String,
    },
    /// Nobody serves the real client's socket, or it went away and stayed away.
    #[error(
        "cannot reach the real client at @{socket} ({source}): is mooncake_client --port={port} running on this host?"
    )]
    Unreachable {
        /// Socket name.
        socket: String,
        /// Port of the real client.
        port: u16,
        /// The last error.
        #[source]
        source: std::io::Error,
    },
    /// The socket broke in the middle of a call.
    #[error("connection to the real client broke: {0}")]
    Io(#[from] std::io::Error),
    /// Bytes that do not decode.
    #[error("bad message from the peer: {0}")]
    Wire(#[from] mc_schema::SchemaError),
    /// The peer answered something that does not answer the request.
    #[error("the real client answered {got} to {asked}")]
    UnexpectedReply {
        /// The request.
        asked: &'static str,
        /// The reply's kind.
        got: String,
    },
    /// The real client refused the request.
    #[error("the real client refused the request ({code}): {reason}")]
    Refused {
        /// Its code.
        code: i32,
        /// Its reason.
        reason: String,
    },
    /// The dummy's pool could not be made.
    #[error("cannot make the dummy's memory pool of {size_bytes} bytes: {source}")]
    Pool {
        /// Size asked.
        size_bytes: usize,
        /// Why.
        #[source]
        source: mc_hugepages::Error,
    },
    /// The real client's flags do not make a store node.
    #[error("bad flags for the hosted segment: {0}")]
    NodeFlags(String),
    /// The hosted segment's node did not start.
    #[error("cannot host the segment: {0}")]
    Node(#[from] mc_agent::NodeError),
    /// The master did not accept the hosted segment in time.
    #[error("the master at {master} did not mount the hosted segment within {timeout_seconds}s")]
    MountTimeout {
        /// Master address.
        master: String,
        /// How long we waited.
        timeout_seconds: u64,
    },
    /// The master is unreachable.
    #[error("cannot reach the master at {master}: {source}")]
    Master {
        /// Master address.
        master: String,
        /// Why.
        #[source]
        source: mooncake_rs::Error,
    },
    /// A listening socket could not be bound.
    #[error("cannot listen on {addr}: {source} (is another mooncake_client on this port?)")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A request larger than a frame may be.
    #[error(
        "a request of {len} bytes exceeds the {max}-byte frame limit: put large values from memory of alloc_from_mem_pool"
    )]
    TooLarge {
        /// Frame bytes.
        len: usize,
        /// Limit.
        max: usize,
    },
}

impl DummyError {
    /// Mooncake's code for this error: RPC_FAIL for a lost real client, else the
    /// refusal's code or INVALID_PARAMS.
    pub fn code(&self) -> i32 {
        match self {
            DummyError::Refused { code, .. } => *code,
            DummyError::BadAddress { .. } | DummyError::TooLarge { .. } => {
                ErrorCode::InvalidParams.code()
            }
            DummyError::Pool { .. } => ErrorCode::InternalError.code(),
            _ => ErrorCode::RpcFail.code(),
        }
    }

    /// Whether the connection is gone (worth a reconnect).
    pub(crate) fn is_broken(&self) -> bool {
        matches!(
            self,
            DummyError::Io(_) | DummyError::Unreachable { .. } | DummyError::Wire(_)
        )
    }
}
