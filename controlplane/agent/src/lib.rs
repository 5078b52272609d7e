//! The mooncake-rs store node: its agent, its REST server and the `mooncake_store` binary.
//!
//! `mooncake_store` starts the node's data-plane shards (`mc_dataplane`), then runs the
//! [`agent`]: it mounts every shard's segment with the master, heartbeats, re-mounts when the
//! master has forgotten the node (after a restart or a drop), and unmounts on SIGTERM. The
//! agent reaches the shards only through control links carrying `mc_schema::agent`
//! messages, so it can move into its own process without changing shard code. It reaches
//! the master through [`leader::MasterLink`], which follows the HA leader.
//!
//! The [`rest`] server on `--port` serves `/health`, `/metrics` ([`metrics`]) and Mooncake's store REST
//! API: segments mounted and unmounted at run time (handed to the agent as
//! [`agent::Command`]s) and inspection of stored objects through the Rust client. The two
//! meet only in [`state`]: the commands, their answers and the status the agent publishes.
//! [`node::start`] brings all of it up inside any process and returns a
//! [`node::NodeHandle`]; [`node::run`] is the binary's life around it.

#![forbid(unsafe_code)]

pub mod agent;
pub mod config;
mod error;
pub mod leader;
pub mod metrics;
pub mod node;
pub mod rest;
pub mod split;
pub mod state;
mod tasks;

pub use config::StoreConfig;
pub use error::NodeError;
