//! Turning the live metadata into a snapshot data file.
//!
//! The walk takes one object shard lock at a time and only copies records into the
//! output buffer while holding it, so requests on the other 255 shards go on and a request
//! on the walked shard waits for one shard's worth of copying. It runs on tokio's blocking
//! pool, never on an RPC worker. Soft-pin deadlines are converted from the master's
//! monotonic clock to wall-clock Unix milliseconds, the only clock a later process shares.

use super::content::{Encoder, LocRecord, SegmentRecord};
use super::unix_deadline;
use crate::service::MasterService;

/// A snapshot data file and what is in it.
#[derive(Debug)]
pub struct Encoded {
    /// The data file.
    pub data: Vec<u8>,
    /// The master's term.
    pub term: u64,
    /// Complete objects.
    pub objects: u64,
    /// Mounted segments.
    pub segments: u64,
}

/// Encodes what `svc` holds now; `now_unix_ms` is the wall clock at the call.
pub fn encode(svc: &MasterService, now_unix_ms: u64) -> Encoded {
    let now_ms = svc.now_ms();
    let segments: Vec<SegmentRecord> = svc
        .segments
        .list()
        .iter()
        .map(|s| SegmentRecord {
            id: s.id,
            client_id: s.client_id,
            size_bytes: s.size_bytes,
            name: s.name.clone(),
            host: s.host.clone(),
            endpoint: s.endpoint.clone(),
        })
        .collect();
    let term = svc.segments.term();
    let mut e = Encoder::new(term, now_unix_ms, &segments);
    let mut slot_ids = svc.segments.slot_ids();
    let mut locs: Vec<LocRecord> = Vec::new();
    for shard in 0..svc.objects.shard_count() {
        svc.objects.for_each_complete(shard, |key, o| {
            locs.clear();
            for l in o.locs() {
                if l.segment as usize >= slot_ids.len() {
                    // Mounted during the walk (slots only grow).
                    slot_ids = svc.segments.slot_ids();
                }
                locs.push(LocRecord {
                    segment_id: slot_ids.get(l.segment as usize).copied().unwrap_or(0),
                    offset: l.offset,
                    generation: l.generation,
                });
            }
            let soft = unix_deadline(o.soft_pin_until_ms(), now_ms, now_unix_ms);
            e.object(
                key,
                o.put_generation(),
                o.size(),
                (o.hard_pin(), soft),
                &locs,
            );
        });
    }
    let (data, objects) = e.finish();
    Encoded {
        data,
        term,
        objects,
        segments: segments.len() as u64,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use mc_schema::msg::{PutEndItem, ReplicateConfig, Request, ResponseBody, SoftPinAction};

    use super::*;
    use crate::clock::ManualClock;
    use crate::service::ServiceConfig;
    use crate::snapshot::content::decode;

    /// A service with one 64 MiB segment and `keys` put and committed, each with `cfg`.
    pub(crate) fn service_with(
        clock: Arc<ManualClock>,
        keys: &[(&str, ReplicateConfig)],
    ) -> Arc<MasterService> {
        let svc = MasterService::new(ServiceConfig::default(), clock);
        svc.handle_now(
            0,
            Request::MountSegment {
                client_id: 7,
                segment_id: 70,
                name: "n:1".into(),
                host: "n".into(),
                endpoint: "n:1".into(),
                size: 64 << 20,
                term_seen: 4,
                reports_inventory: false,
                disk: false,
            },
        );
        for (key, cfg) in keys {
            let r = svc.handle_now(
                0,
                Request::PutStart {
                    client_id: 1,
                    client_host: String::new(),
                    items: vec![(key.to_string(), 1000)],
                    config: cfg.clone(),
                },
            );
            let ResponseBody::PutStart(v) = r.body else {
                panic!("{r:?}")
            };
            let item = PutEndItem {
                key: key.to_string(),
                generation: v[0].replicas[0].slices[0].generation,
                slice_crcs: vec![9],
                failed_replicas: Vec::new(),
            };
            let r = svc.handle_now(0, Request::PutEnd { items: vec![item] });
            assert_eq!(r.body, ResponseBody::Statuses(vec![0]));
        }
        svc
    }

    #[test]
    fn the_snapshot_holds_the_term_segments_pins_and_locations() {
        let clock = Arc::new(ManualClock::default());
        clock.advance_ms(1_000);
        let soft = ReplicateConfig {
            soft_pin_action: SoftPinAction::Enable,
            soft_pin_ttl_ms: 60_000,
            ..ReplicateConfig::default()
        };
        let hard = ReplicateConfig {
            with_hard_pin: true,
            ..ReplicateConfig::default()
        };
        let svc = service_with(
            clock.clone(),
            &[
                ("plain", ReplicateConfig::default()),
                ("soft", soft),
                ("hard", hard),
            ],
        );
        // An object in flight is not in the snapshot.
        svc.handle_now(
            0,
            Request::PutStart {
                client_id: 1,
                client_host: String::new(),
                items: vec![("pending".into(), 10)],
                config: ReplicateConfig::default(),
            },
        );
        clock.advance_ms(10_000);
        let e = encode(&svc, 5_000_000);
        let c = decode(&e.data).unwrap();
        assert_eq!((e.objects, e.segments, e.term), (3, 1, 5));
        assert_eq!((c.term, c.created_unix_ms), (5, 5_000_000));
        assert_eq!(c.segments[0].id, 70);
        assert_eq!(c.segments[0].client_id, 7);
        let mut objects = c.objects.clone();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        let keys: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["hard", "plain", "soft"]);
        let [hard, plain, soft] = &objects[..] else {
            unreachable!()
        };
        assert!(hard.hard_pin && !plain.hard_pin && !soft.hard_pin);
        // Pinned at 1 s for 60 s, snapshot at 11 s: 50 s left on the wall clock.
        assert_eq!(soft.soft_pin_until_unix_ms, 5_050_000);
        assert_eq!(plain.soft_pin_until_unix_ms, 0);
        assert_eq!(plain.size, 1000);
        assert_eq!(plain.locs.len(), 1);
        assert_eq!(plain.locs[0].segment_id, 70);
        assert_eq!(plain.put_generation, plain.locs[0].generation);
        assert_eq!(mc_schema::generation::term_of(plain.put_generation), 5);
    }
}
