//! Mooncake's dummy client, both sides.
//!
//! A *real client* (`mooncake_client`, [`server`]) hosts a segment and holds a connection to
//! the master, and serves the processes of its host over a Unix socket named after its port
//! (`@mooncake_client_<port>.sock`, abstract, as Mooncake). A *dummy* ([`client::Dummy`],
//! what `setup_dummy` makes) keeps no connection to the cluster of its own: it maps a
//! memory pool (a memfd, [`pool::Pool`]), hands the descriptor to the real client once per
//! connection, and turns every store call into one request
//! ([`mc_schema::dummy::Request`]). Buffers inside the pool travel as offsets: the real
//! client moves the bytes straight between the pool and the shards, without a copy through
//! the socket. Other buffers travel inline.
//!
//! A dummy that finds its connection broken (the real client restarted) reconnects and
//! registers its pool again before it retries the call; the pool's bytes stay where they
//! are, in the dummy's memfd.

pub mod client;
mod error;
mod io;
pub mod pool;
pub mod server;

pub use error::DummyError;

/// The abstract Unix socket name (without the leading NUL) of the real client whose
/// service port is `port`: Mooncake's `@mooncake_client_<port>.sock`.
pub fn socket_name(port: u16) -> String {
    format!("mooncake_client_{port}.sock")
}
