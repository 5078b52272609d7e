//! Starts a local mooncake-rs cluster as child processes, for integration tests, `mc-bench`
//! and the `mc-cluster` tool.
//!
//! The model: a [`ClusterSpec`] says how many store nodes to run and with which flags;
//! [`LocalCluster::start`] finds the `mooncake_master` and `mooncake_store` binaries
//! ([`find_binary`]), picks free loopback ports at run time, starts the master and waits until
//! its `GET /health` answers 200, then starts each node and waits until its `GET /health`
//! reports every shard's segment mounted. Each child's stdout and stderr go to a log file in a
//! fresh temporary directory, so a failure can quote the child's last words
//! ([`LocalCluster::logs_tail`]). Tests then kill, signal, restart and add processes through
//! the handle; dropping it SIGKILLs and reaps everything it started. Readiness is polled with
//! a tiny blocking HTTP/1.0 client ([`probe`]) so this crate needs no async runtime.
//!
//! Fault tests put a [`FaultProxy`] between two processes to delay, drop, stall or reset
//! their traffic. For HA tests, [`Coordinator`] runs a real etcd or redis-server the same way, and a
//! [`ClusterSpec`] may start several masters electing on it, with nodes following its
//! locator.
//!
//! The `mc-cluster` tool wants the opposite lifetime: processes that outlive the command
//! that started them. [`detached`] starts those (own session, output in a log, named by pid
//! and start time), and [`command_line`], [`answers`] and [`find_tool`] give it the
//! coordinators' command lines, readiness probes and the package to install when a tool is
//! missing.

#![warn(missing_docs)]

mod binary;
pub mod children;
mod cluster;
mod coordinator;
pub mod detached;
mod error;
mod logs;
mod ports;
pub mod probe;
mod process;
pub mod proxy;
mod scratch;
mod spec;

pub use binary::{MASTER_BINARY, STORE_BINARY, find_binary};
pub use cluster::LocalCluster;
pub use coordinator::{Coordinator, CoordinatorKind, answers, command_line, find_tool};
pub use error::Error;
pub use ports::{pick_free_port, pick_free_ports};
pub use probe::NodeHealth;
pub use proxy::{Direction, FaultProxy, Mode};
pub use scratch::{SmallExt4, o_direct_dir};
pub use spec::{ClusterSpec, NodeSpec};
