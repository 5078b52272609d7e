//! Reads a shard served from a client's location cache, without the master knowing.
//!
//! The master counts a read for LRU and holds off eviction with a lease when it answers a
//! GetReplicaList; a read from the cache skips it. So the shard notes each slice such a
//! read hit, and hands the keys to the agent every [`REPORT_EVERY`]; the agent reports them
//! to the master in batches, which treats them as reads (`docs/why-fast-path.md`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Distinct slices remembered between two reports; hits beyond that are dropped (a key
/// that hot is read again soon).
pub const MAX_NOTED: usize = 1 << 16;
/// How often the noted hits are handed to the agent.
pub const REPORT_EVERY: Duration = Duration::from_millis(250);

/// Slices hit since the last report.
#[derive(Debug)]
pub(crate) struct Hits {
    noted: HashSet<(u64, u64)>,
    last_report: Instant,
}

impl Default for Hits {
    fn default() -> Hits {
        Hits {
            noted: HashSet::new(),
            last_report: Instant::now(),
        }
    }
}

impl Hits {
    /// Notes a hit of the slice at `offset` of `segment_id`.
    pub(crate) fn note(&mut self, segment_id: u64, offset: u64) {
        if self.noted.len() < MAX_NOTED {
            self.noted.insert((segment_id, offset));
        }
    }

    /// The slices hit since the last report, if one is due.
    pub(crate) fn take_due(&mut self, now: Instant) -> Option<Vec<(u64, u64)>> {
        if self.noted.is_empty() || now.duration_since(self.last_report) < REPORT_EVERY {
            return None;
        }
        self.last_report = now;
        Some(self.noted.drain().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_are_deduplicated_bounded_and_reported_when_due() {
        let mut h = Hits::default();
        let t0 = h.last_report;
        h.note(1, 0);
        h.note(1, 0);
        h.note(1, 64);
        assert_eq!(h.take_due(t0), None, "not due yet");
        let mut got = h.take_due(t0 + REPORT_EVERY).expect("due");
        got.sort();
        assert_eq!(got, vec![(1, 0), (1, 64)]);
        assert_eq!(h.take_due(t0 + REPORT_EVERY * 3), None, "nothing new");
        for i in 0..(MAX_NOTED as u64 + 10) {
            h.note(2, i);
        }
        assert_eq!(h.take_due(t0 + REPORT_EVERY * 4).unwrap().len(), MAX_NOTED);
    }
}
