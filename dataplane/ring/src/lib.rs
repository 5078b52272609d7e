//! A pair of bounded single-producer single-consumer byte-message rings (agent → shard and
//! shard → agent) in one shared memfd, for two processes that map the same file.
//!
//! The model: [`SharedRing::create`] makes a sealed memfd holding a 4 KiB header and two
//! data areas of `capacity_bytes` each; any process holding the fd maps it with
//! [`SharedRing::open`]. Each process then [`attach`](SharedRing::attach)es as one
//! [`Side`] and gets a [`RingEnd`] that produces on one ring and consumes the other.
//! Messages of any size travel as 8-byte-aligned, length-prefixed frames with FIRST/LAST
//! flags (a message bigger than the ring streams as fragments). A frame becomes visible only
//! by a release-store of the write index, so a crash of the producer never exposes half a
//! frame, and the consumer only delivers complete messages. Liveness is a heartbeat word per
//! side ([`Heartbeat`] bumps it from a small thread) plus an orderly `closed` state; an
//! `epoch` word per side tells the other that its peer restarted.
//!
//! Layout, frame format and failure behaviour: `docs/rings.md`.

mod consumer;
mod dir;
mod end;
mod error;
mod heartbeat;
mod layout;
mod map;
mod producer;
mod shared;

pub use end::{EndConfig, Peer, RingEnd};
pub use error::{Backpressure, RingError, SendError};
pub use heartbeat::Heartbeat;
pub use layout::{
    DEFAULT_BACKLOG_BYTES, DEFAULT_CAPACITY_BYTES, DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_PEER_TIMEOUT, MAX_CAPACITY_BYTES, MIN_CAPACITY_BYTES,
};
pub use shared::{SharedRing, Side};

#[cfg(test)]
mod tests;
