//! Reading a snapshot back (`--enable_snapshot_restore`), at start and when an HA leader
//! begins a term.
//!
//! The snapshot `latest` names is read first; its manifest must parse, the data file must
//! match the manifest's length and CRC32C and decode. A missing or corrupt one is logged
//! and the newest valid older snapshot is used instead; with none valid the master starts
//! without (logged, not fatal). Each store is tried in turn: the primary, then
//! `--snapshot_backup_dir`.
//!
//! What is restored is only what nodes cannot tell ([`crate::recovery::hints`]): the term,
//! so generations stay above the snapshot's, and per key its pins and the segments to wait
//! for. Objects themselves come back only from the nodes' reports.

use std::collections::HashMap;

use tracing::{info, warn};

use super::clock_deadline;
use super::content::{Content, decode};
use super::manifest::{DATA_FILE, MANIFEST_FILE, Manifest};
use super::target::Target;
use crate::MasterError;
use crate::recovery::hints::{KeyHint, Restored};
use crate::service::MasterService;

/// A snapshot read back, ready to apply to a new term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The snapshot's id.
    pub id: String,
    /// Its term.
    pub term: u64,
    /// What recovery needs of it.
    pub hints: Restored,
}

impl Prepared {
    /// Applies it to a fresh term's metadata: the term moves above the snapshot's, and the
    /// hints wait for the nodes' reports. O(1): the hints are moved in.
    pub fn apply(self, svc: &MasterService) {
        let term = svc.segments.observe_term(self.term);
        info!(
            snapshot = %self.id,
            keys = self.hints.keys.len(),
            segments = self.hints.segments.len(),
            snapshot_term = self.term,
            term,
            "snapshot restored: waiting for its segments to report"
        );
        svc.recovery.hints.install(self.hints);
    }
}

/// Reads and checks snapshot `id` of `t`.
///
/// # Errors
/// [`MasterError::SnapshotMissing`] for a missing manifest or data file, the manifest's
/// and the decoder's errors for a corrupt one, and the store's for a failed read.
pub async fn load_one(t: &Target, id: &str) -> Result<Content, MasterError> {
    let missing = |file: &'static str| MasterError::SnapshotMissing {
        id: id.to_string(),
        file,
    };
    let text = t
        .read(id, MANIFEST_FILE)
        .await?
        .ok_or(missing(MANIFEST_FILE))?;
    let m = Manifest::parse(id, &text)?;
    let data = t.read(id, DATA_FILE).await?.ok_or(missing(DATA_FILE))?;
    m.verify(&data)?;
    let c = tokio::task::spawn_blocking(move || decode(&data))
        .await
        .map_err(|_| MasterError::SnapshotTaskPanicked)??;
    if c.term != m.term || c.objects.len() as u64 != m.objects {
        return Err(MasterError::SnapshotManifest {
            id: id.to_string(),
            reason: "its term or object count differs from the data file's".into(),
        });
    }
    Ok(c)
}

/// The newest valid snapshot of `t`: the one `latest` names, else the newest older one
/// that checks out. Returns it with its id and how many unusable ones were skipped.
///
/// # Errors
/// The store's error when it cannot even be listed.
pub async fn load_newest(t: &Target) -> Result<(Option<(String, Content)>, u64), MasterError> {
    let mut skipped = 0;
    let latest = t.latest().await?;
    if let Some(id) = &latest {
        match load_one(t, id).await {
            Ok(c) => return Ok((Some((id.clone(), c)), 0)),
            Err(e) => {
                skipped += 1;
                warn!(snapshot = %id, store = %t.describe(), "the latest snapshot is unusable ({e}); trying older ones");
            }
        }
    }
    let mut ids = t.ids().await?;
    ids.reverse();
    for id in ids.iter().filter(|i| Some(*i) != latest.as_ref()) {
        match load_one(t, id).await {
            Ok(c) => {
                if latest.is_some() {
                    warn!(snapshot = %id, store = %t.describe(), "restoring an older snapshot");
                }
                return Ok((Some((id.clone(), c)), skipped));
            }
            Err(e) => {
                skipped += 1;
                warn!(snapshot = %id, store = %t.describe(), "snapshot unusable ({e})");
            }
        }
    }
    Ok((None, skipped))
}

/// Turns `c` into hints, converting soft-pin deadlines from wall-clock time to the master
/// clock (`now_ms` and `now_unix_ms` read together).
pub fn hints(c: Content, now_ms: u64, now_unix_ms: u64) -> Restored {
    let index: HashMap<u64, u32> = c
        .segments
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id, i as u32))
        .collect();
    let mut keys = HashMap::with_capacity(c.objects.len());
    for o in c.objects {
        let mut segs: Vec<u32> = o
            .locs
            .iter()
            .filter_map(|l| index.get(&l.segment_id).copied())
            .collect();
        segs.sort_unstable();
        segs.dedup();
        let hint = KeyHint {
            put_generation: o.put_generation,
            hard_pin: o.hard_pin,
            soft_pin_until_ms: clock_deadline(o.soft_pin_until_unix_ms, now_unix_ms, now_ms),
            segments: segs.into_boxed_slice(),
        };
        keys.insert(o.key, hint);
    }
    Restored {
        segments: c.segments.into_iter().map(|s| s.id).collect(),
        keys,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mc_schema::msg::{InventoryEntry, ReplicateConfig, Request, SoftPinAction};

    use super::*;
    use crate::clock::ManualClock;
    use crate::service::ServiceConfig;
    use crate::snapshot::collect::{encode, tests::service_with};
    use crate::snapshot::local::LocalDir;

    /// The entries the node holding `c`'s objects would report.
    fn inventory(c: &Content) -> Vec<InventoryEntry> {
        c.objects
            .iter()
            .map(|o| InventoryEntry {
                key: o.key.clone(),
                segment_id: o.locs[0].segment_id,
                offset: o.locs[0].offset,
                length: o.size,
                generation: o.locs[0].generation,
                put_generation: o.put_generation,
                object_size: o.size,
                slice_index: 0,
                slice_count: 1,
                crc32c: 9,
                replica_index: 0,
                pins: u32::from(o.hard_pin) | if o.soft_pin_until_unix_ms > 0 { 2 } else { 0 },
                committed: true,
            })
            .collect()
    }

    #[test]
    fn a_restored_term_applies_the_snapshots_pins_when_a_node_reports_the_put() {
        let clock = Arc::new(ManualClock::default());
        let soft = ReplicateConfig {
            soft_pin_action: SoftPinAction::Enable,
            soft_pin_ttl_ms: 60_000,
            ..ReplicateConfig::default()
        };
        let old = service_with(
            clock.clone(),
            &[("soft", soft), ("plain", ReplicateConfig::default())],
        );
        clock.advance_ms(20_000);
        let content = decode(&encode(&old, 1_000_000).data).unwrap();
        let entries = inventory(&content);

        // A new master, 5 s of wall time later, on the same clock.
        clock.advance_ms(5_000);
        let svc = MasterService::new(ServiceConfig::default(), clock.clone());
        let now = svc.now_ms();
        Prepared {
            id: "x".into(),
            term: content.term,
            hints: hints(content, now, 1_005_000),
        }
        .apply(&svc);
        assert!(
            svc.segments.term() > old.segments.term(),
            "generations stay above"
        );
        assert!(
            svc.recovery.awaits_hint("soft", now),
            "its segment has not reported"
        );
        assert!(!svc.recovery.awaits_hint("never-there", now));
        let mount = Request::MountSegment {
            client_id: 7,
            segment_id: 70,
            name: "n:1".into(),
            host: "n".into(),
            endpoint: "n:1".into(),
            size: 64 << 20,
            term_seen: old.segments.term(),
            reports_inventory: true,
            disk: false,
        };
        assert_eq!(svc.handle_now(0, mount).status, 0);
        let r = svc.handle_now(
            0,
            Request::ReportInventory {
                client_id: 7,
                entries,
            },
        );
        assert_eq!(r.status, 0);
        // Adoption runs off the RPC runtime: its answer is deferred.
        let done = match mc_rpc::Service::handle(&*svc, 0, Request::InventoryDone { client_id: 7 })
        {
            mc_rpc::Reply::Now(r) => r,
            mc_rpc::Reply::Later(f) => tokio::runtime::Runtime::new().unwrap().block_on(f),
        };
        assert_eq!(done.status, 0);
        // Pinned at 0 for 60 s; 25 s have passed: the deadline is kept, not a fresh 30 min.
        assert_eq!(svc.objects.pins("soft"), Some((false, 60_000)));
        assert_eq!(svc.objects.pins("plain"), Some((false, 0)));
        assert!(!svc.recovery.hints.is_live(), "every hint was consumed");
        assert_eq!(
            svc.recovery
                .hints
                .applied_total
                .load(std::sync::atomic::Ordering::Relaxed),
            2
        );
    }

    fn is_waiting(svc: &MasterService, key: &str) -> bool {
        let req = Request::GetReplicaList {
            keys: vec![key.to_string()],
        };
        matches!(
            mc_rpc::Service::handle(svc, 0, req),
            mc_rpc::Reply::Later(_)
        )
    }

    #[tokio::test]
    async fn hinted_keys_wait_for_their_segment_until_client_ttl_then_are_dropped() {
        let clock = Arc::new(ManualClock::default());
        let old = service_with(clock.clone(), &[("k", ReplicateConfig::default())]);
        let content = decode(&encode(&old, 1_000).data).unwrap();
        let svc = MasterService::new(ServiceConfig::default(), clock.clone());
        Prepared {
            id: "x".into(),
            term: content.term,
            hints: hints(content, svc.now_ms(), 1_000),
        }
        .apply(&svc);
        // No node is reporting and the grace is 0: only the snapshot makes "k" wait.
        assert!(svc.recovery.settled(svc.now_ms()));
        assert!(is_waiting(&svc, "k"));
        assert!(
            !is_waiting(&svc, "unknown"),
            "keys it does not name answer at once"
        );
        clock.advance_ms(9_999);
        svc.maintain();
        assert!(is_waiting(&svc, "k"), "client_ttl (10 s) has not passed");
        clock.advance_ms(1);
        svc.maintain();
        assert!(!is_waiting(&svc, "k"));
        assert!(
            !svc.recovery.hints.is_live(),
            "unconfirmed hints are dropped"
        );
        assert_eq!(
            svc.recovery
                .hints
                .dropped_total
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    #[tokio::test]
    async fn a_corrupt_latest_falls_back_to_the_newest_valid_snapshot() {
        let base = std::env::temp_dir().join(format!("mc-snap-{}-restore", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let dir = LocalDir::new(&base, "c");
        let t = Target::Local(dir.clone());
        assert_eq!(load_newest(&t).await.unwrap(), (None, 0));
        let mut ids = Vec::new();
        for (i, term) in [3u64, 4, 5].iter().enumerate() {
            let c = Content {
                term: *term,
                ..Content::default()
            };
            let id = format!("20240301_00000{i}_000");
            let data = c.encode();
            let m = Manifest::describe(&id, "c", (*term, 0), (0, 0), &data);
            t.write(&id, Arc::new(data), Arc::new(m.to_json()))
                .await
                .unwrap();
            t.set_latest(&id).await.unwrap();
            ids.push(id);
        }
        let (got, skipped) = load_newest(&t).await.unwrap();
        assert_eq!((got.unwrap().1.term, skipped), (5, 0));
        // Flip a byte of the latest's data file: its CRC no longer matches.
        let data = dir.root().join(&ids[2]).join(DATA_FILE);
        let mut bytes = std::fs::read(&data).unwrap();
        bytes[20] ^= 0x40;
        std::fs::write(&data, bytes).unwrap();
        // And the one before lost its manifest.
        std::fs::remove_file(dir.root().join(&ids[1]).join(MANIFEST_FILE)).unwrap();
        let (got, skipped) = load_newest(&t).await.unwrap();
        let (id, c) = got.unwrap();
        assert_eq!((id.as_str(), c.term, skipped), (ids[0].as_str(), 3, 2));
        // A latest naming nothing falls back too.
        std::fs::write(dir.root().join("latest"), "20990101_000000_000\n").unwrap();
        assert_eq!(load_newest(&t).await.unwrap().0.unwrap().0, ids[0]);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
