//! Embedded mode: `setup(global_segment_size > 0)` hosts a store node in this process.

use crate::setup::SetupArgs;

/// A store node running inside this process.
pub struct Embedded;

impl Embedded {
    /// Starts the node and waits until its segment is mounted.
    pub fn start(_args: &SetupArgs) -> Result<Embedded, String> {
        Err("embedded mode is not wired yet".into())
    }
}
