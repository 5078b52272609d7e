//! The operator tools of mooncake-rs. `mcctl` (its own binary, `src/main.rs`) looks at a
//! running cluster; [`cluster`] is `mc-cluster`, which starts a whole local HA cluster in the
//! background, checks it, runs the kill-the-leader drill and stops it; [`topo`] is
//! `mc-topo`, which prints the topology and core plan a store node sees.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cluster;
pub mod topo;
