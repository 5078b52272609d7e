//! The mooncake-rs store node: its agent, its REST server and the `mooncake_store` binary.
//!
//! `mooncake_store` starts the node's data-plane shards (`mc_dataplane`), then runs the
//! [`agent`]: it mounts every shard's segment with the master, heartbeats, re-mounts when the
//! master has forgotten the node (after a restart or a drop), and unmounts on SIGTERM. The
//! agent reaches the shards only through control links carrying `mc_schema::agent`
//! messages, so it can move into its own process without changing shard code.

pub mod agent;
pub mod config;
pub mod node;
pub mod rest;

pub use config::StoreConfig;
