//! Copies the shards made durable on SSD, reported to the master, which adds them to the
//! objects as disk replicas (`docs/why-ssd-format.md`).

use mc_dataplane::control::AgentLink;
use mc_schema::limits::MAX_BATCH_KEYS;
use mc_schema::msg::{OffloadedSlice, Request};
use tracing::warn;

use super::Agent;

impl<L: AgentLink> Agent<L> {
    /// Reports copies at once, in batches. A report that fails leaves the records on disk
    /// unknown to the master: they are not served, and go at the next start.
    pub(super) fn report_offloaded(&mut self, entries: Vec<OffloadedSlice>) {
        for chunk in entries.chunks(MAX_BATCH_KEYS) {
            let req = Request::ReportOffloaded {
                client_id: self.client_id,
                entries: chunk.to_vec(),
            };
            match self.call(&req) {
                Ok(r) if r.status == 0 => {}
                Ok(r) => warn!(status = r.status, "offload report refused: {}", r.message),
                Err(e) => {
                    warn!(slices = chunk.len(), "offload report lost: {e}");
                    self.note_error(&e);
                }
            }
        }
    }
}
