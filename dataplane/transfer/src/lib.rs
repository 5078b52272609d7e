//! The transfer protocol of a shard's data port, blocking side.
//!
//! A data connection opens with the handshake of `mc_schema::handshake`, then carries
//! fixed 64-byte [`header`]s, each WRITE followed by its payload and each READ answered by a
//! header and the payload. The shards (glommio, in `mc-dataplane`) decode the same headers;
//! clients use [`DataConn`], which does its I/O on the caller's thread. Keeping this apart
//! from the data plane means an application links neither glommio nor liburing.
//!
//! [`net`] holds the connect + handshake helpers that the master RPC client reuses.

pub mod conn;
pub mod header;
pub mod net;
pub mod uninit;

pub use conn::{DataConn, TransferError};
pub use header::{ObjectInfo, Op, TRANSFER_HEADER_BYTES, TransferHeader};
