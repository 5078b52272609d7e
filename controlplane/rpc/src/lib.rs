//! Master RPC over TCP.
//!
//! Every connection opens with the handshake of `mc_schema::handshake`, then carries frames
//! of `mc_schema::frame`. The [`client`] is blocking and does its I/O on the caller's thread
//! (no hand-off to a runtime per call); the [`server`] runs on tokio, answers each request
//! inline as soon as its frame is complete, and lets a client keep many requests in flight
//! on one connection (answers carry the request id). The server is behind the `server`
//! feature, so clients do not compile tokio.

#![forbid(unsafe_code)]

pub mod client;
mod error;
#[cfg(feature = "server")]
pub mod server;

pub use client::RpcClient;
pub use error::RpcError;
#[cfg(feature = "server")]
pub use server::{Reply, ServerConfig, Service, serve};
