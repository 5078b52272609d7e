//! The one error type of this crate: why a flag value is refused, why a store node cannot
//! start, and why one of the agent's calls to the master failed (the agent logs those and
//! retries; they never stop a running node). Messages name the cause and what to do.
//!
//! A REST command's answer is not one of these: it is a
//! [`CommandError`](crate::state::CommandError), which maps onto an HTTP status.

use std::io;

use mc_dataplane::control::LinkClosed;
use mc_schema::ErrorCode;

/// Everything that refuses a flag, stops a store node from starting, or fails one agent call
/// to the master.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Bad combination of flags.
    #[error("{0}")]
    Config(String),
    /// `--protocol=rdma`: Mooncake's RDMA transport, which this build does not have.
    #[error("protocol `rdma`: this build has no RDMA support (no device here); use `tcp`")]
    RdmaUnsupported,
    /// A `--protocol` that Mooncake does not have either.
    #[error("unknown protocol `{name}`; accepted: tcp, rdma")]
    UnknownProtocol {
        /// The name as given.
        name: String,
    },
    /// The node's processes (supervisor, data plane, agent) could not be started or
    /// wired together.
    #[error("store node processes: {0}")]
    Process(String),
    /// Core planning failed.
    #[error("{0}")]
    Topology(#[from] mc_topology::Error),
    /// A shard failed to start. Boxed because the data plane's error is large and
    /// [`Agent::new`](crate::agent::Agent::new) hands a `NodeError` back next to the links.
    #[error("{0}")]
    Dataplane(#[source] Box<mc_dataplane::DataplaneError>),
    /// The REST port could not be bound.
    #[error("REST server on {addr}: {source} (pick another --port)")]
    Rest {
        /// Address.
        addr: String,
        /// Cause.
        source: io::Error,
    },
    /// The REST server's runtime or thread could not start.
    #[error(
        "REST server on {addr}: cannot start its runtime or thread: {source} (the process may be out of threads or memory; check `ulimit -u`)"
    )]
    RestThread {
        /// Address.
        addr: String,
        /// Cause.
        source: io::Error,
    },
    /// A shard came up but never announced its segment to the agent.
    #[error(
        "agent: shard {shard} did not announce its segment within {timeout_seconds} s (see the shard's log lines above)"
    )]
    ShardSilent {
        /// The shard's index.
        shard: usize,
        /// How long the agent waited.
        timeout_seconds: u64,
    },
    /// A shard did not report its object index in time.
    #[error("agent: shard {shard} did not report its object index within {timeout_seconds} s")]
    InventorySilent {
        /// The shard's index.
        shard: usize,
        /// How long the agent waited.
        timeout_seconds: u64,
    },
    /// The master refused the node's inventory.
    #[error("agent: the master refused this node's inventory with {code}: {message}")]
    InventoryRefused {
        /// Mooncake code.
        code: mc_schema::ErrorCode,
        /// The master's message.
        message: String,
    },
    /// A shard stopped while the agent waited for its segment.
    #[error("agent: shard {shard}: {source} (see the shard's log lines above)")]
    ShardLink {
        /// The shard's index.
        shard: usize,
        /// The closed link.
        source: LinkClosed,
    },
    /// The agent's thread could not start.
    #[error(
        "agent: cannot start its thread: {0} (the process may be out of threads or memory; check `ulimit -u`)"
    )]
    AgentThread(#[source] io::Error),
    /// A part of the node ended without being asked to (a shard thread or the agent
    /// panicked): the node stopped, so the master drops its segments rather than placing
    /// data on a port nobody serves.
    #[error("{0}; the node stopped (its segments were unmounted at the master): restart it")]
    PartDied(String),
    /// SIGTERM and SIGINT could not be watched.
    #[error("cannot watch SIGTERM/SIGINT: {0}")]
    Signals(#[source] io::Error),
    /// A call to the master failed (no connection, a timeout, a broken reply).
    #[error("{0}")]
    Master(#[from] mc_rpc::RpcError),
    /// `--master_server` is not a master address or coordinator locator.
    #[error("--master_server=`{value}`: {source}")]
    MasterLocator {
        /// The value as given.
        value: String,
        /// What is wrong with it.
        source: mc_coord::CoordError,
    },
    /// No master served a call: the one reached is a standby (or recovering), and no leader
    /// took it before the deadline.
    #[error("no master serves: {message}")]
    NotServing {
        /// The last master's explanation.
        message: String,
    },
    /// The master answered a segment mount with an error.
    #[error("mount of {segment} refused: {code} {message}")]
    MountRefused {
        /// The segment's name.
        segment: String,
        /// The master's error code.
        code: ErrorCode,
        /// The master's explanation.
        message: String,
    },
}

impl From<mc_dataplane::DataplaneError> for NodeError {
    fn from(e: mc_dataplane::DataplaneError) -> NodeError {
        NodeError::Dataplane(Box::new(e))
    }
}
