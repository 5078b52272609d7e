//! The fault suite: scenarios that break a real mooncake-rs cluster (processes killed,
//! stopped and partitioned, memory oversubscribed and corrupted, garbage on every port,
//! failpoints in the write path) and check what survives.
//!
//! Each scenario starts its own processes through `mc-cluster` on ports picked at run
//! time, drives a client against them, injects its fault, then reads back every object the
//! client was told was stored ([`ledger`]). Its [`Row`] counts acknowledged objects lost,
//! reads that returned wrong bytes, and the time until service came back. Everything a
//! scenario starts is killed when it ends, also when it fails. `scripts/faults.sh` builds
//! this with the `failpoints` feature and prints the table (`docs/reliability.md`).

pub mod harness;
pub mod ledger;
pub mod load;
pub mod row;
pub mod scenarios;
pub mod writer;

pub use row::{Row, table};
pub use scenarios::{Ctx, all, run_scenario};
