//! The master's side of the SSD tier, driven in-process: offload notices after PutEnd, SSD
//! copies becoming disk replicas (or refused), eviction keeping them, removes freeing
//! them, and `--offload_on_evict` parking an object until its copy lands.

use std::sync::Arc;

use mc_master::clock::ManualClock;
use mc_master::objects::Policy;
use mc_master::service::{MasterService, ServiceConfig};
use mc_schema::msg::{
    Notice, OffloadedSlice, PutEndItem, ReplicaKind, ReplicateConfig, Request, ResponseBody,
};

const NODE: u64 = 7;
const MEM: u64 = 70;
const DISK: u64 = 71;
const SEG: u64 = 8 << 20;

fn master(offload_on_evict: bool) -> Arc<MasterService> {
    master_with(Policy {
        lease_ms: 0,
        offload: true,
        offload_on_evict,
        ..Policy::default()
    })
}

fn master_with(policy: Policy) -> Arc<MasterService> {
    let svc = MasterService::new(
        ServiceConfig {
            policy,
            ..ServiceConfig::default()
        },
        Arc::new(ManualClock::default()),
    );
    for (id, name, disk) in [(MEM, "n:1", false), (DISK, "n:1#ssd", true)] {
        let r = svc.handle_now(
            0,
            Request::MountSegment {
                client_id: NODE,
                segment_id: id,
                name: name.into(),
                host: "n".into(),
                endpoint: "n:1".into(),
                size: SEG,
                term_seen: 0,
                reports_inventory: false,
                disk,
            },
        );
        assert_eq!(r.status, 0, "{r:?}");
    }
    svc
}

/// Puts `key` of `len` bytes; returns the generation of its (only) slice.
fn put(svc: &MasterService, key: &str, len: u64) -> u64 {
    let r = svc.handle_now(
        0,
        Request::PutStart {
            client_id: 1,
            client_host: String::new(),
            items: vec![(key.into(), len)],
            config: ReplicateConfig::default(),
        },
    );
    let ResponseBody::PutStart(v) = r.body else {
        panic!("{r:?}")
    };
    assert_eq!(v[0].status, 0, "PutStart {key}: {v:?}");
    let s = &v[0].replicas[0].slices[0];
    assert_eq!(s.segment_id, MEM, "never placed on the disk segment");
    let generation = s.generation;
    let r = svc.handle_now(
        0,
        Request::PutEnd {
            items: vec![PutEndItem {
                key: key.into(),
                slice_crcs: vec![5],
                failed_replicas: vec![],
                generation,
            }],
        },
    );
    assert_eq!(r.body, ResponseBody::Statuses(vec![0]));
    generation
}

/// Takes the notices queued for the node.
fn notices(svc: &MasterService) -> Vec<Notice> {
    svc.segments
        .notices
        .sync(NODE, 0)
        .map(|(_, n)| n)
        .unwrap_or_default()
}

fn copy(key: &str, generation: u64, len: u64, disk_offset: u64) -> OffloadedSlice {
    OffloadedSlice {
        key: key.into(),
        put_generation: generation,
        slice_index: 0,
        slice_count: 1,
        source_segment_id: MEM,
        source_offset: 0,
        disk_segment_id: DISK,
        disk_offset,
        length: len,
        generation,
        crc32c: 5,
    }
}

fn kinds(svc: &MasterService, key: &str) -> Vec<ReplicaKind> {
    let r = svc.handle_now(
        0,
        Request::GetReplicaList {
            keys: vec![key.into()],
        },
    );
    let ResponseBody::ReplicaLists(v) = r.body else {
        panic!("{r:?}")
    };
    v[0].replicas.iter().map(|r| r.kind).collect()
}

fn report(svc: &MasterService, entries: Vec<OffloadedSlice>) -> u64 {
    let r = svc.handle_now(
        0,
        Request::ReportOffloaded {
            client_id: NODE,
            entries,
        },
    );
    match r.body {
        ResponseBody::Count(n) => n,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_reported_copy_becomes_a_disk_replica_that_eviction_keeps() {
    let svc = master(false);
    let g = put(&svc, "k", 1 << 20);
    let n = notices(&svc);
    assert!(
        n.iter().any(
            |n| matches!(n, Notice::Offload { segment_id: MEM, generation, .. } if *generation == g)
        ),
        "{n:?}"
    );
    // A copy of another put (a stale generation) is refused and its record freed.
    assert_eq!(report(&svc, vec![copy("k", g + 1, 1 << 20, 0)]), 0);
    let n = notices(&svc);
    assert!(
        n.iter().any(|n| matches!(
            n,
            Notice::Free {
                segment_id: DISK,
                offset: 0,
                ..
            }
        )),
        "{n:?}"
    );
    assert_eq!(report(&svc, vec![copy("k", g, 1 << 20, 8192)]), 1);
    assert_eq!(
        kinds(&svc, "k"),
        [ReplicaKind::Memory, ReplicaKind::LocalDisk]
    );
    assert_eq!(slices(&svc), 1);
    // A second copy of the same object is refused.
    assert_eq!(report(&svc, vec![copy("k", g, 1 << 20, 1 << 40)]), 0);
    // SSD copies take no memory: only the memory replica counts as allocated.
    let (allocated, capacity) = svc.segments.usage();
    assert_eq!((allocated, capacity), (1 << 20, SEG));
    // Eviction frees the memory and keeps the object on SSD.
    let (objects, bytes) = svc.objects.evict(1 << 20, 1_000);
    assert_eq!((objects, bytes), (1, 1 << 20));
    assert_eq!(svc.segments.usage().0, 0);
    assert_eq!(kinds(&svc, "k"), [ReplicaKind::LocalDisk]);
    // Nothing left in memory: not an eviction candidate any more.
    assert_eq!(svc.objects.evict(1 << 20, 2_000), (0, 0));
    notices(&svc);
    // A remove frees the SSD record too.
    assert_eq!(
        svc.objects.remove("k", true, 3_000),
        mc_schema::ErrorCode::Ok
    );
    let n = notices(&svc);
    assert!(
        n.iter().any(|n| matches!(
            n,
            Notice::Free {
                segment_id: DISK,
                offset: 8192,
                ..
            }
        )),
        "{n:?}"
    );
    assert_eq!(slices(&svc), 0);
}

fn slices(svc: &MasterService) -> u64 {
    svc.segments
        .disk_slices
        .load(std::sync::atomic::Ordering::Relaxed)
}

#[test]
fn an_upsert_retires_the_ssd_copy_and_counts_it_out_once() {
    let svc = master(false);
    let g = put(&svc, "u", 1 << 20);
    assert_eq!(report(&svc, vec![copy("u", g, 1 << 20, 0)]), 1);
    let r = svc.handle_now(
        0,
        Request::UpsertStart {
            client_id: 1,
            client_host: String::new(),
            items: vec![("u".into(), 1 << 20)],
            config: ReplicateConfig::default(),
        },
    );
    let ResponseBody::PutStart(v) = r.body else {
        panic!("{r:?}")
    };
    let g2 = v[0].replicas[0].slices[0].generation;
    let r = svc.objects.upsert_end(
        PutEndItem {
            key: "u".into(),
            slice_crcs: vec![6],
            failed_replicas: vec![],
            generation: g2,
        },
        0,
    );
    assert_eq!(r, mc_schema::ErrorCode::Ok);
    // The old value's space is released later; its SSD copy is counted out once.
    svc.objects.release_zombies(u64::MAX / 2);
    assert_eq!(slices(&svc), 0);
    assert_eq!(kinds(&svc, "u"), [ReplicaKind::Memory]);
}

#[test]
fn offload_on_evict_frees_memory_only_once_the_copy_lands() {
    let svc = master(true);
    let g = put(&svc, "k", 1 << 20);
    assert!(
        !notices(&svc)
            .iter()
            .any(|n| matches!(n, Notice::Offload { .. })),
        "no copy before eviction picks the object"
    );
    svc.objects.evict(1 << 20, 1_000);
    assert!(
        notices(&svc)
            .iter()
            .any(|n| matches!(n, Notice::Offload { .. })),
        "eviction asks for the copy"
    );
    assert_eq!(
        svc.segments.usage().0,
        1 << 20,
        "memory kept until the copy lands"
    );
    assert_eq!(svc.objects.evict_offloads_in_flight(1_000), 1);
    assert_eq!(report(&svc, vec![copy("k", g, 1 << 20, 0)]), 1);
    assert_eq!(svc.segments.usage().0, 0);
    assert_eq!(kinds(&svc, "k"), [ReplicaKind::LocalDisk]);
    assert_eq!(svc.objects.evict_offloads_in_flight(1_000), 0);
}

#[test]
fn a_full_offload_queue_keeps_objects_unless_force_evict() {
    for force in [false, true] {
        let svc = master_with(Policy {
            lease_ms: 0,
            offload: true,
            offload_on_evict: true,
            offload_queue_limit: 1,
            offload_force_evict: force,
            ..Policy::default()
        });
        put(&svc, "a", 1 << 20);
        put(&svc, "b", 1 << 20);
        svc.objects.evict(2 << 20, 1_000);
        let asked = notices(&svc)
            .iter()
            .filter(|n| matches!(n, Notice::Offload { .. }))
            .count();
        assert_eq!(asked, 1, "one copy in flight at most");
        assert_eq!(svc.objects.evict_offloads_in_flight(1_000), 1);
        let present = ["a", "b"]
            .iter()
            .filter(|k| !kinds(&svc, k).is_empty())
            .count();
        assert_eq!(present, if force { 1 } else { 2 }, "force = {force}");
    }
}

#[test]
fn offload_notices_carry_the_disk_eviction_flag() {
    for disk_eviction in [false, true] {
        let svc = master_with(Policy {
            lease_ms: 0,
            offload: true,
            disk_eviction,
            ..Policy::default()
        });
        put(&svc, "k", 1 << 20);
        let n = notices(&svc);
        let flags: Vec<bool> = n
            .iter()
            .filter_map(|n| match n {
                Notice::Offload { evict_oldest, .. } => Some(*evict_oldest),
                _ => None,
            })
            .collect();
        assert_eq!(flags, [disk_eviction], "{n:?}");
    }
}

/// A node restarted on the same address whose inventory is still being adopted: its silent
/// predecessor is not dropped at `client_ttl` (that would remove objects whose SSD copies
/// the successor is about to report), but once no successor holds its names it is.
#[test]
fn a_silent_instance_with_a_successor_at_its_address_waits_for_the_adoption() {
    let clock = Arc::new(ManualClock::default());
    let svc = MasterService::new(
        ServiceConfig {
            policy: Policy {
                lease_ms: 0,
                ..Policy::default()
            },
            ..ServiceConfig::default()
        },
        clock.clone(),
    );
    let mount = |client_id: u64, segment_id: u64| {
        let r = svc.handle_now(
            0,
            Request::MountSegment {
                client_id,
                segment_id,
                name: "n:1".into(),
                host: "n".into(),
                endpoint: "n:1".into(),
                size: SEG,
                term_seen: 0,
                reports_inventory: false,
                disk: false,
            },
        );
        assert_eq!(r.status, 0, "{r:?}");
    };
    mount(NODE, MEM);
    let ttl = ServiceConfig::default().client_ttl_ms;
    clock.advance_ms(ttl / 2);
    // The successor mounts the same names; the predecessor then falls silent past the TTL
    // while the successor still heartbeats.
    mount(NODE + 1, MEM + 100);
    clock.advance_ms(ttl / 2 + 1);
    assert!(svc.reap_silent_clients().is_empty());
    assert_eq!(svc.client_count(), 2);
    // The adoption done, the predecessor goes at once.
    assert_eq!(svc.drop_previous_instances(NODE + 1), [NODE]);
    // Without a live successor a silent client is dropped as before.
    clock.advance_ms(ttl + 1);
    assert_eq!(svc.reap_silent_clients(), [NODE + 1]);
}
