//! Copies the shards made durable on SSD, and slices they promoted from SSD into memory,
//! reported to the master, which adds them to the objects as replicas
//! (`docs/why-ssd-format.md`).

use mc_dataplane::control::AgentLink;
use mc_schema::limits::MAX_BATCH_KEYS;
use mc_schema::msg::{DroppedSlice, OffloadedSlice, PromotedSlice, Request};
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

    /// Reports promoted slices at once, in batches. A lost report leaves the range to the
    /// master, which frees it when the promotion times out.
    pub(super) fn report_promoted(&mut self, entries: Vec<PromotedSlice>) {
        for chunk in entries.chunks(MAX_BATCH_KEYS) {
            let req = Request::ReportPromoted {
                client_id: self.client_id,
                entries: chunk.to_vec(),
            };
            match self.call(&req) {
                Ok(r) if r.status == 0 => {}
                Ok(r) => warn!(status = r.status, "promotion report refused: {}", r.message),
                Err(e) => {
                    warn!(slices = chunk.len(), "promotion report lost: {e}");
                    self.note_error(&e);
                }
            }
        }
    }

    /// Reports SSD records the shards dropped on their own, so the master forgets them.
    pub(super) fn report_dropped(&mut self, entries: Vec<DroppedSlice>) {
        for chunk in entries.chunks(MAX_BATCH_KEYS) {
            let req = Request::ReportDropped {
                client_id: self.client_id,
                entries: chunk.to_vec(),
            };
            match self.call(&req) {
                Ok(r) if r.status == 0 => {}
                Ok(r) => warn!(status = r.status, "drop report refused: {}", r.message),
                Err(e) => {
                    warn!(slices = chunk.len(), "drop report lost: {e}");
                    self.note_error(&e);
                }
            }
        }
    }
}
