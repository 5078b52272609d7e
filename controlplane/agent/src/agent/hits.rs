//! Reads served from clients' location caches, reported to the master in batches so it
//! counts them as reads: LRU position and lease (`docs/why-fast-path.md`).

use std::time::{Duration, Instant};

use mc_dataplane::control::AgentLink;
use mc_schema::limits::MAX_BATCH_KEYS;
use mc_schema::msg::Request;
use tracing::debug;

use super::Agent;

/// Keys kept between two reports; more are dropped (a key that hot is read again soon).
const MAX_HITS: usize = 1 << 17;
/// How often hits are reported.
const HITS_EVERY: Duration = Duration::from_millis(500);

impl<L: AgentLink> Agent<L> {
    /// Keeps keys a shard reports hit, for the next report.
    pub(super) fn note_hits(&mut self, keys: Vec<String>) {
        for k in keys {
            if self.hits.len() >= MAX_HITS {
                break;
            }
            self.hits.insert(k);
        }
    }

    /// Reports the keys hit since the last report, when one is due. A failed report is
    /// dropped: it only delays eviction of hot keys, and the next one follows soon.
    pub(super) fn report_hits(&mut self) {
        if self.hits.is_empty() || !self.mounted || self.last_hits.elapsed() < HITS_EVERY {
            return;
        }
        self.last_hits = Instant::now();
        let keys: Vec<String> = std::mem::take(&mut self.hits).into_iter().collect();
        for chunk in keys.chunks(MAX_BATCH_KEYS) {
            let req = Request::ReportHits {
                client_id: self.client_id,
                keys: chunk.to_vec(),
            };
            if let Err(e) = self.call(&req) {
                debug!(keys = chunk.len(), "hit report dropped: {e}");
                return;
            }
        }
    }
}
