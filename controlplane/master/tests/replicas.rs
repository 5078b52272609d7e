//! Replica bookkeeping of the master, driven in-process through its RPC handler: failed
//! replicas at PutEnd, segments going away under complete and pending objects, values of
//! several slices, and eviction among many objects (sampled, not a full sort).

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use mc_master::clock::{Clock, ManualClock};
use mc_master::objects::Policy;
use mc_master::service::{MasterService, ServiceConfig};

use mc_schema::limits::MAX_SLICE_BYTES;
use mc_schema::msg::{PutEndItem, ReplicaDesc, ReplicateConfig, Request, ResponseBody};

const SEG: u64 = 256 << 20;

/// A master with one segment on each host in `hosts` (segment ids 1, 2, ...; client id =
/// segment id).
fn master(hosts: &[&str]) -> (std::sync::Arc<MasterService>, Arc<ManualClock>) {
    let cfg = ServiceConfig {
        policy: Policy {
            lease_ms: 1_000,
            ..Policy::default()
        },
        ..ServiceConfig::default()
    };
    common::master_on(cfg, hosts, SEG)
}

fn start(svc: &MasterService, key: &str, len: u64, cfg: &ReplicateConfig) -> Vec<ReplicaDesc> {
    let r = svc.handle_now(
        0,
        Request::PutStart {
            client_id: 1,
            client_host: String::new(),
            items: vec![(key.into(), len)],
            config: cfg.clone(),
        },
    );
    let ResponseBody::PutStart(mut v) = r.body else {
        panic!("{r:?}")
    };
    assert_eq!(v[0].status, 0, "PutStart {key}");
    // Every slice to write carries its write token; replica lists carry none, so the
    // tokens are dropped for comparing with them.
    let mut replicas = v.remove(0).replicas;
    for s in replicas.iter_mut().flat_map(|r| r.slices.iter_mut()) {
        let t = s.token.take().expect("a write token per slice");
        assert_eq!((t.range_offset, t.range_length), (s.offset, s.length));
    }
    replicas
}

fn end(svc: &MasterService, key: &str, crcs: Vec<u32>, failed: Vec<u32>, generation: u64) -> i32 {
    let r = svc.handle_now(
        0,
        Request::PutEnd {
            items: vec![PutEndItem {
                key: key.into(),
                slice_crcs: crcs,
                failed_replicas: failed,
                generation,
            }],
        },
    );
    let ResponseBody::Statuses(v) = r.body else {
        panic!("{r:?}")
    };
    v[0]
}

use common::{replica_list as get, used};

fn two_replicas() -> ReplicateConfig {
    ReplicateConfig {
        replica_num: 2,
        ..ReplicateConfig::default()
    }
}

fn endpoints(replicas: &[ReplicaDesc]) -> Vec<String> {
    replicas
        .iter()
        .map(|r| r.slices[0].endpoint.clone())
        .collect()
}

#[test]
fn a_failed_replica_is_dropped_at_put_end_and_the_rest_committed() {
    let (svc, _) = master(&["ha", "hb"]);
    let placed = start(&svc, "k", 4096, &two_replicas());
    assert_eq!(placed.len(), 2);
    let mut hosts = endpoints(&placed);
    hosts.sort();
    assert_eq!(hosts, ["ha:1", "hb:1"], "replicas on distinct hosts");
    assert_eq!(used(&svc), 2 * 4096);
    let generation = placed[0].slices[0].generation;
    assert_eq!(end(&svc, "k", vec![9], vec![0], generation), 0);
    assert_eq!(used(&svc), 4096, "the failed replica's space is freed");
    let got = get(&svc, "k");
    assert_eq!((got.status, got.size, got.slice_crcs), (0, 4096, vec![9]));
    assert_eq!(got.replicas.len(), 1);
    assert_eq!(got.replicas[0].slices, placed[1].slices);
    // Every replica failed: the put is gone and so is its space.
    let placed = start(&svc, "k2", 4096, &two_replicas());
    let generation = placed[0].slices[0].generation;
    assert_eq!(
        end(&svc, "k2", vec![0], vec![0, 1], generation),
        mc_schema::ErrorCode::TransferFail as i32
    );
    assert_eq!(
        get(&svc, "k2").status,
        mc_schema::ErrorCode::ObjectNotFound as i32
    );
    assert_eq!(used(&svc), 4096);
}

#[test]
fn an_unmounted_segment_takes_its_replicas_with_it() {
    let (svc, _) = master(&["ha", "hb"]);
    let both = start(&svc, "both", 4096, &two_replicas());
    let g = both[0].slices[0].generation;
    assert_eq!(end(&svc, "both", vec![1], vec![], g), 0);
    let only_hb = ReplicateConfig {
        preferred_segments: vec!["hb".into()],
        ..ReplicateConfig::default()
    };
    let solo = start(&svc, "solo", 4096, &only_hb);
    assert_eq!(endpoints(&solo), ["hb:1"]);
    assert_eq!(
        end(&svc, "solo", vec![2], vec![], solo[0].slices[0].generation),
        0
    );
    // A pending put whose first replica is on hb: its PutEnd still names it after hb goes.
    let pending = start(
        &svc,
        "pending",
        4096,
        &ReplicateConfig {
            preferred_segments: vec!["hb".into()],
            ..two_replicas()
        },
    );
    assert_eq!(endpoints(&pending), ["hb:1", "ha:1"]);
    let r = svc.handle_now(
        0,
        Request::UnmountSegment {
            client_id: 2,
            segment_id: 2,
        },
    );
    assert_eq!(r.status, 0);
    let got = get(&svc, "both");
    assert_eq!(endpoints(&got.replicas), ["ha:1"]);
    assert_eq!(
        get(&svc, "solo").status,
        mc_schema::ErrorCode::ObjectNotFound as i32
    );
    let g = pending[0].slices[0].generation;
    assert_eq!(end(&svc, "pending", vec![3], vec![], g), 0);
    assert_eq!(endpoints(&get(&svc, "pending").replicas), ["ha:1"]);
    assert_eq!(used(&svc), 2 * 4096, "only ha's ranges are still counted");
    // Removing frees ha's ranges; hb's are gone with its segment.
    let r = svc.handle_now(0, Request::RemoveAll { force: true });
    assert_eq!(r.body, ResponseBody::Count(2));
    assert_eq!(used(&svc), 0);
}

#[test]
fn a_value_of_several_slices_keeps_every_slice_and_crc() {
    let (svc, _) = master(&["ha", "hb"]);
    let len = 2 * MAX_SLICE_BYTES + 1000;
    let placed = start(&svc, "big", len, &two_replicas());
    assert_eq!(placed.len(), 2);
    for r in &placed {
        let lengths: Vec<u64> = r.slices.iter().map(|s| s.length).collect();
        assert_eq!(lengths, [MAX_SLICE_BYTES, MAX_SLICE_BYTES, 1000]);
    }
    let g = placed[0].slices[0].generation;
    let generations: HashSet<u64> = placed
        .iter()
        .flat_map(|r| r.slices.iter().map(|s| s.generation))
        .collect();
    assert_eq!(generations.len(), 6, "one generation per slice");
    assert_eq!(end(&svc, "big", vec![1, 2, 3], vec![], g), 0);
    let got = get(&svc, "big");
    assert_eq!((got.size, got.slice_crcs), (len, vec![1, 2, 3]));
    let slices: Vec<_> = got.replicas.iter().map(|r| r.slices.clone()).collect();
    let want: Vec<_> = placed.iter().map(|r| r.slices.clone()).collect();
    assert_eq!(slices, want);
    assert!(got.replicas.iter().all(|r| r.complete));
}

#[test]
fn eviction_among_many_objects_takes_old_ones_and_spares_pins_and_leases() {
    let (svc, clock) = master(&["ha"]);
    let plain = ReplicateConfig::default();
    let pinned = ReplicateConfig {
        with_hard_pin: true,
        ..ReplicateConfig::default()
    };
    // 20000 objects, far more than a shard's sample, one per millisecond; every 50th is
    // hard-pinned.
    let n = 20_000u64;
    for i in 0..n {
        clock.advance_ms(1);
        let key = format!("o{i}");
        let cfg = if i % 50 == 0 { &pinned } else { &plain };
        let placed = start(&svc, &key, 1024, cfg);
        assert_eq!(
            end(&svc, &key, vec![0], vec![], placed[0].slices[0].generation),
            0
        );
    }
    // The 100 oldest plain objects are read now, so leased.
    let leased: Vec<u64> = (0..n).filter(|i| i % 50 != 0).take(100).collect();
    for i in &leased {
        assert_eq!(get(&svc, &format!("o{i}")).status, 0);
    }
    let before = used(&svc);
    let target = before / 10;
    let (objects, bytes) = svc.objects.evict(target, clock.now_ms());
    assert!(bytes >= target, "freed {bytes} of {target}");
    assert_eq!(before - used(&svc), bytes);
    assert_eq!(objects, bytes / 1024);
    let gone: Vec<u64> = (0..n)
        .filter(|i| get(&svc, &format!("o{i}")).status != 0)
        .collect();
    assert_eq!(gone.len() as u64, objects);
    assert!(gone.iter().all(|i| i % 50 != 0), "a hard pin was evicted");
    assert!(
        gone.iter().all(|i| !leased.contains(i)),
        "a leased object was evicted"
    );
    // Sampled LRU: about the oldest tenth goes; nothing from the newer half.
    assert!(
        gone.iter().all(|&i| i < n / 2),
        "newest evicted: {:?}",
        gone.last()
    );
}
