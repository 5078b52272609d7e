//! Same-host reads: the shard's memory files, offered to clients of its host.
//!
//! A client on the node's host reads an object by copying it out of the shard's segment
//! memory, validated through the shard's index records, instead of asking over TCP
//! (`docs/why-fast-path.md`, "Same-host reads and writes"). This module is the shard's side:
//! a [`LocalKeeper`] sees every descriptor the shard hands its keeper (`crate::keep`: the
//! index files at start, each segment's memfd as it is mounted, a `Gone` as it leaves),
//! keeps a copy, passes the originals on to the node's real keeper, if any, and serves the
//! copies on the abstract Unix socket `mc_schema::local::socket_name(endpoint)` ([`serve`]).
//!
//! Nothing here is on a shard's hot path: a thread of its own accepts connections, and the
//! shard only clones descriptors when its segments change.

mod serve;

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use mc_schema::agent::SegmentKind;
use tracing::warn;

use crate::keep::{KeeperHandle, Kept, KeptSource};

/// What one shard offers: its index records file and its memfd-backed segments.
#[derive(Debug, Default)]
pub(crate) struct Offered {
    /// The records file (`Index::files().0`).
    pub(crate) records: Option<OwnedFd>,
    /// Segment id → (memfd, usable bytes).
    pub(crate) segments: BTreeMap<u64, (OwnedFd, u64)>,
}

/// A keeper that also serves the shard's memory files to clients of this host.
pub struct LocalKeeper {
    inner: Option<KeeperHandle>,
    cluster_id: String,
    offered: Arc<Mutex<Offered>>,
    /// The endpoint served, once the start-up segment named it.
    serving: Mutex<Option<String>>,
    /// Dropped with the keeper: the serving thread then stops.
    alive: Arc<()>,
}

impl LocalKeeper {
    /// A keeper for one shard of cluster `cluster_id`, passing everything on to `inner`.
    pub fn handle(cluster_id: &str, inner: Option<KeeperHandle>) -> KeeperHandle {
        KeeperHandle(Arc::new(LocalKeeper {
            inner,
            cluster_id: cluster_id.to_string(),
            offered: Arc::default(),
            serving: Mutex::new(None),
            alive: Arc::new(()),
        }))
    }

    /// Copies what `what` offers into the table.
    fn note(&self, what: &Kept) -> std::io::Result<()> {
        let mut o = self.offered.lock().unwrap_or_else(|p| p.into_inner());
        match what {
            Kept::Index { files, .. } => o.records = Some(files.records.try_clone()?),
            Kept::Segment(s) => {
                if let KeptSource::Memfd(fd) = &s.source {
                    o.segments
                        .insert(s.info.segment_id, (fd.try_clone()?, s.info.size_bytes));
                }
            }
            Kept::Gone { segment_id, .. } => {
                o.segments.remove(segment_id);
            }
        }
        Ok(())
    }

    /// Starts serving once the start-up segment names the shard's endpoint.
    fn serve_if_named(&self, what: &Kept) {
        let Kept::Segment(s) = what else { return };
        if s.info.kind != SegmentKind::Startup {
            return;
        }
        let mut serving = self.serving.lock().unwrap_or_else(|p| p.into_inner());
        if serving.is_some() {
            return;
        }
        let endpoint = s.info.endpoint.clone();
        let server = serve::Server {
            endpoint: endpoint.clone(),
            cluster_id: self.cluster_id.clone(),
            offered: self.offered.clone(),
            alive: Arc::downgrade(&self.alive),
        };
        match serve::start(server) {
            Ok(()) => *serving = Some(endpoint),
            Err(e) => warn!(
                %endpoint,
                "same-host reads not offered (clients of this host use TCP): {e}"
            ),
        }
    }
}

impl crate::keep::Keeper for LocalKeeper {
    fn keep(&self, what: Kept) {
        if let Err(e) = self.note(&what) {
            warn!("a descriptor could not be kept for same-host reads: {e}");
        }
        self.serve_if_named(&what);
        if let Some(inner) = &self.inner {
            inner.0.keep(what);
        }
    }
}
