//! The store node as processes (`docs/node-process.md`): `mooncake_store` is a supervisor
//! that starts and restarts two children, `mooncake_store dataplane ...` (the glommio shards,
//! their segments and data ports) and `mooncake_store agent ...` (master RPC, heartbeats,
//! inventories, the REST server). The children talk only over one shared-memory ring pair
//! per shard (`mc_ring`, flatbuffer messages); the supervisor holds the data plane's memory
//! descriptors ([`vault`]) so a restarted data plane serves the same bytes.
//!
//! What a child needs from the supervisor travels in environment variables (descriptor
//! numbers it inherits) next to the node's own flags, which both children parse again.

mod agent_proc;
mod dataplane;
mod supervisor;
pub(crate) mod vault;

use crate::{NodeError, StoreConfig};

/// First argument of the data-plane child.
pub const DATAPLANE_ROLE: &str = "dataplane";
/// First argument of the agent child.
pub const AGENT_ROLE: &str = "agent";

/// Env: pid of the supervisor (a child checks it is still its parent).
const ENV_SUPERVISOR: &str = "MC_NODE_SUPERVISOR_PID";
/// Env: inherited descriptors of the ring pairs, shard by shard, comma-separated.
const ENV_RINGS: &str = "MC_NODE_RING_FDS";
/// Env (data plane): inherited vault socket.
const ENV_VAULT: &str = "MC_NODE_VAULT_FD";
/// Env (agent): the node's id at the master, kept across agent restarts.
const ENV_CLIENT_ID: &str = "MC_NODE_CLIENT_ID";
/// Env (agent): inherited pipe the agent writes one byte to once it serves.
const ENV_READY: &str = "MC_NODE_READY_FD";
/// Env (agent): agent processes the supervisor started before this one.
const ENV_AGENT_RESTARTS: &str = "MC_NODE_AGENT_RESTARTS";
/// Env (agent): data-plane processes the supervisor started after the first.
const ENV_DATAPLANE_RESTARTS: &str = "MC_NODE_DATAPLANE_RESTARTS";

/// Which process this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `mooncake_store ...`: starts and supervises the two others.
    Supervisor,
    /// `mooncake_store dataplane ...`.
    DataPlane,
    /// `mooncake_store agent ...`.
    Agent,
}

/// The role named by the first argument, and the arguments without it.
pub fn role_of(mut args: Vec<String>) -> (Role, Vec<String>) {
    let role = match args.get(1).map(String::as_str) {
        Some(DATAPLANE_ROLE) => Role::DataPlane,
        Some(AGENT_ROLE) => Role::Agent,
        _ => return (Role::Supervisor, args),
    };
    args.remove(1);
    (role, args)
}

/// Runs this process's part of the node until it ends. `args` are the node's flags (for the
/// supervisor, what the children get).
pub fn run(role: Role, cfg: StoreConfig, args: Vec<String>) -> Result<(), NodeError> {
    match role {
        Role::Supervisor => supervisor::run(cfg, args),
        Role::DataPlane => dataplane::run(cfg),
        Role::Agent => agent_proc::run(cfg),
    }
}

/// An environment variable a child must have been given.
fn env(name: &str) -> Result<String, NodeError> {
    std::env::var(name).map_err(|_| {
        NodeError::Process(format!(
            "{name} is not set: this process is started by the `mooncake_store` supervisor, not by hand"
        ))
    })
}

/// An inherited descriptor named by env `name`.
fn env_fd(name: &str) -> Result<std::os::fd::OwnedFd, NodeError> {
    let text = env(name)?;
    let raw: i32 = text
        .parse()
        .map_err(|_| NodeError::Process(format!("{name}={text:?} is not a descriptor number")))?;
    mc_hugepages::handover::adopt(raw).map_err(|e| NodeError::Process(format!("{name}: {e}")))
}

/// The ring pairs named by [`ENV_RINGS`], opened.
fn env_rings() -> Result<Vec<mc_ring::SharedRing>, NodeError> {
    let text = env(ENV_RINGS)?;
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|n| {
            let raw: i32 = n.parse().map_err(|_| {
                NodeError::Process(format!("{ENV_RINGS}={text:?} is not a list of descriptors"))
            })?;
            let fd = mc_hugepages::handover::adopt(raw)
                .map_err(|e| NodeError::Process(format!("{ENV_RINGS}: {e}")))?;
            mc_ring::SharedRing::open(fd)
                .map_err(|e| NodeError::Process(format!("{ENV_RINGS}: ring {raw}: {e}")))
        })
        .collect()
}

/// Makes this process die with the supervisor, which must still be its parent.
fn die_with_supervisor() -> Result<(), NodeError> {
    let text = env(ENV_SUPERVISOR)?;
    let pid: u32 = text
        .parse()
        .map_err(|_| NodeError::Process(format!("{ENV_SUPERVISOR}={text:?} is not a pid")))?;
    mc_hugepages::handover::die_with_parent(pid)
        .map_err(|e| NodeError::Process(format!("cannot follow the supervisor: {e}")))
}
