//! Cores and the core plan of a mooncake-rs store node.
//!
//! A store node runs its data plane as shards, one thread each (thread-per-core). Which cores
//! those threads may use is decided once at start-up, in three steps:
//!
//! 1. [`online_cpus`] lists the cores this process may run on (its affinity mask, so `taskset`
//!    and cgroup cpusets are honoured).
//! 2. The operator's `--cores` flag is parsed into a [`CoreSpec`]: `auto`, a shard count (`4`)
//!    or a core list (`0,2,4-7`).
//! 3. [`plan`] turns spec and cores into a [`CorePlan`]: one [`ShardPlacement`] per shard, each
//!    pinned to a core or left to the scheduler, plus a sentence saying why, for the log.
//!
//! Pinning is only worth it when the pinned shards do not fight the rest of the node (the agent,
//! the REST endpoint, the kernel's own work) for their cores, so the plan keeps cores free for
//! those and runs unpinned when it cannot. Each shard thread then calls
//! [`pin_current_thread`] with its core.
//!
//! With the machine's topology in view, [`Topology::discover`] reads NUMA nodes, cores with
//! their SMT siblings, and NICs (netdevs and RDMA devices) from sysfs under a root that tests
//! point at fixture trees; [`select_nics`] picks the NICs a node uses (Mooncake's
//! `MC_MS_AUTO_DISC` and `MC_MS_FILTERS`, read by [`NicConfig::from_env`]); [`plan_for`]
//! puts the shards on cores near them and names the NUMA node each shard's memory is bound
//! to.
//!
//! [`interface_ipv4`] finds the IPv4 address of a named network interface, for services that
//! bind and advertise one NIC's address.

#![warn(missing_docs)]

mod cpus;
mod discover;
mod error;
mod local;
mod net;
mod nics;
mod plan;
mod spec;
mod sysfs;

pub use cpus::{online_cpus, pin_current_thread};
pub use discover::{Core, NumaNode, Topology};
pub use error::Error;
pub use local::plan_for;
pub use net::interface_ipv4;
pub use nics::{Nic, NicChoice, NicConfig, NicKind, select_nics};
pub use plan::{CorePlan, ShardPlacement, plan};
pub use spec::{CoreSpec, MAX_CORE_ID, MAX_SHARDS};
pub use sysfs::SYSFS_ROOT;
