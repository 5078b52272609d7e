//! Rust client of mooncake-rs, a distributed KV cache for LLM inference.
//!
//! A [`Store`] talks to the master for metadata (where to write, where to read) and moves
//! bytes straight to and from the store nodes' shards over TCP. Every call is blocking and
//! does its I/O on the caller's thread over pooled connections; a `Store` is `Send + Sync`
//! and meant to be shared by many threads.
//!
//! Values are cut into slices of at most 16 MiB; the client computes the CRC32C of every
//! slice on put (the shard checks it before acking, the master records it at PutEnd) and
//! checks it again after every read, so corrupt bytes are never returned
//! (CHECKSUM_MISMATCH, -801). Errors carry Mooncake's numeric codes ([`ErrorCode`]).
//!
//! The master is found through a [`MasterLocator`]: one `host:port`, or the coordinator HA
//! masters elect on (`etcd://h1:2379;h2:2379`, `redis://host:port`); the client then follows
//! the leader, and a call that reached a standby or a dead leader is sent once more to the
//! new one.
//!
//! ```no_run
//! use mooncake_rs::{ReplicateConfig, Store, StoreConfig};
//! let store = Store::connect(StoreConfig::new("127.0.0.1:50051"))?;
//! store.put("greeting", b"hello", &ReplicateConfig::default())?;
//! assert_eq!(store.get("greeting")?, b"hello");
//! store.remove("greeting", true)?;
//! # Ok::<(), mooncake_rs::Error>(())
//! ```

// One function hands out buffers that transfers filled without zeroing them first
// (`store::read::hand_out`, and `received` for the hot cache), and the hot cache maps its
// memory (`store::hot::region`); no other code here is unsafe.
#![deny(unsafe_code)]

pub mod engram;
mod error;
pub mod metrics;
mod pool;
mod store;

pub use engram::EngramLayer;
pub use error::{Error, ErrorCode, Result};
pub use mc_coord::MasterLocator;
pub use mc_schema::limits::{MAX_BATCH_KEYS, MAX_KEY_LEN, MAX_OBJECT_BYTES, MAX_SLICE_BYTES};
pub use mc_schema::msg::{
    ReplicaDesc, ReplicaKind, ReplicateConfig, SliceDesc, SoftPinAction, TaskInfo, TaskKind,
    TaskState,
};
pub use mc_schema::units::parse_size;
pub use store::{
    CacheStats, CreditStats, HotCacheConfig, HotCacheStats, MemcpyMode, ObjectLocation,
    PutReservation, RangeRead, SameHostStats, Store, StoreConfig,
};
