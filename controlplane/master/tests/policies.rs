//! Master policies on a hand-driven clock (no sleeps): leases, zombie PutStarts, eviction
//! at the watermark and on a full PutStart, hard and soft pins.

mod common;

use std::sync::Arc;

use mc_master::clock::{Clock, ManualClock};
use mc_master::objects::Policy;
use mc_master::service::{MasterService, ServiceConfig};

use mc_schema::ErrorCode;
use mc_schema::msg::{PutEndItem, ReplicateConfig, Request, ResponseBody, SoftPinAction};

const SEG: u64 = 8 << 20;
const OBJ: u64 = 256 << 10;

fn master(policy: Policy) -> (std::sync::Arc<MasterService>, Arc<ManualClock>) {
    let cfg = ServiceConfig {
        policy,
        eviction_high_watermark_ratio: 0.9,
        eviction_ratio: 0.25,
        ..ServiceConfig::default()
    };
    common::master_with_one_segment(cfg, SEG)
}

fn policy() -> Policy {
    Policy {
        lease_ms: 1_000,
        default_soft_pin_ms: 60_000,
        max_soft_pin_ms: 120_000,
        allow_evict_soft_pinned: true,
        discard_ms: 10_000,
        release_ms: 30_000,
        offload: false,
        offload_on_evict: false,
        offload_queue_limit: 1024,
        offload_force_evict: false,
        promotion_on_hit: false,
        promotion_threshold: 2,
        promotion_queue_limit: 256,
        disk_eviction: false,
        credit_ttl_ms: 10_000,
        credit_max_client_bytes: 1 << 30,
    }
}

fn start(svc: &MasterService, key: &str, cfg: &ReplicateConfig) -> Result<u64, i32> {
    let r = svc.handle_now(
        0,
        Request::PutStart {
            client_id: 1,
            client_host: String::new(),
            items: vec![(key.into(), OBJ)],
            config: cfg.clone(),
        },
    );
    let ResponseBody::PutStart(v) = r.body else {
        panic!("{r:?}")
    };
    if v[0].status != 0 {
        return Err(v[0].status);
    }
    Ok(v[0].replicas[0].slices[0].generation)
}

fn end(svc: &MasterService, key: &str, generation: u64) -> i32 {
    statuses(svc.handle_now(
        0,
        Request::PutEnd {
            items: vec![PutEndItem {
                key: key.into(),
                slice_crcs: vec![0],
                failed_replicas: vec![],
                generation,
            }],
        },
    ))[0]
}

fn put(svc: &MasterService, key: &str, cfg: &ReplicateConfig) -> Result<(), i32> {
    let g = start(svc, key, cfg)?;
    assert_eq!(end(svc, key, g), 0);
    Ok(())
}

use common::{read_status as read, statuses, used};

fn remove(svc: &MasterService, key: &str, force: bool) -> i32 {
    statuses(svc.handle_now(
        0,
        Request::Remove {
            keys: vec![key.into()],
            force,
        },
    ))[0]
}

const NOT_FOUND: i32 = ErrorCode::ObjectNotFound as i32;

#[test]
fn a_lease_blocks_remove_and_then_expires() {
    let (svc, clock) = master(policy());
    put(&svc, "k", &ReplicateConfig::default()).unwrap();
    assert_eq!(read(&svc, "k"), 0);
    assert_eq!(remove(&svc, "k", false), ErrorCode::ObjectHasLease as i32);
    clock.advance_ms(999);
    assert_eq!(remove(&svc, "k", false), ErrorCode::ObjectHasLease as i32);
    clock.advance_ms(2);
    assert_eq!(remove(&svc, "k", false), 0);
    assert_eq!(read(&svc, "k"), NOT_FOUND);
}

#[test]
fn a_stale_put_start_is_preempted_and_its_space_released_later() {
    let (svc, clock) = master(policy());
    let cfg = ReplicateConfig::default();
    let old = start(&svc, "z", &cfg).unwrap();
    assert_eq!(
        start(&svc, "z", &cfg),
        Err(ErrorCode::ObjectAlreadyExists as i32)
    );
    clock.advance_ms(10_000);
    let new = start(&svc, "z", &cfg).expect("preempts after the discard timeout");
    assert_ne!(old, new);
    // The old writer may still be sending: its space stays allocated for now.
    assert_eq!(used(&svc), 2 * OBJ);
    // Its late PutEnd cannot commit the new put.
    assert_eq!(end(&svc, "z", old), ErrorCode::InvalidWrite as i32);
    assert_eq!(end(&svc, "z", new), 0);
    svc.maintain();
    assert_eq!(used(&svc), 2 * OBJ);
    clock.advance_ms(20_000); // 30 s after the old PutStart
    svc.maintain();
    assert_eq!(used(&svc), OBJ);
    assert_eq!(
        svc.objects
            .stats
            .preempted_put_starts_total
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn an_abandoned_put_start_is_swept_after_the_release_timeout() {
    let (svc, clock) = master(policy());
    start(&svc, "lost", &ReplicateConfig::default()).unwrap();
    clock.advance_ms(29_999);
    svc.maintain();
    assert_eq!(used(&svc), OBJ);
    clock.advance_ms(6_000);
    svc.maintain();
    assert_eq!(used(&svc), 0);
    assert_eq!(read(&svc, "lost"), NOT_FOUND);
}

#[test]
fn the_watermark_evicts_least_recently_used_but_never_leased_or_hard_pinned() {
    let (svc, clock) = master(policy());
    let plain = ReplicateConfig::default();
    let pinned = ReplicateConfig {
        with_hard_pin: true,
        ..ReplicateConfig::default()
    };
    put(&svc, "pinned", &pinned).unwrap();
    for i in 0..29 {
        clock.advance_ms(10);
        put(&svc, &format!("o{i}"), &plain).unwrap();
    }
    // o0 and o1 are the oldest; o0 is read (fresh again), o1 is read and stays leased.
    clock.advance_ms(10);
    assert_eq!(read(&svc, "o0"), 0);
    clock.advance_ms(1_001);
    assert_eq!(read(&svc, "o1"), 0);
    assert!(used(&svc) as f64 >= SEG as f64 * 0.9);
    svc.maintain();
    assert!(
        used(&svc) as f64 <= SEG as f64 * (0.9375 - 0.25) + 1.0,
        "freed about 25%"
    );
    assert_eq!(read(&svc, "pinned"), 0, "hard pin survives");
    assert_eq!(read(&svc, "o1"), 0, "leased object survives");
    assert_eq!(
        read(&svc, "o2"),
        NOT_FOUND,
        "oldest unleased object goes first"
    );
    assert_eq!(read(&svc, "o28"), 0, "newest stays");
    let evicted = svc
        .objects
        .stats
        .evicted_keys_total
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(evicted >= 8, "{evicted}");
}

#[test]
fn a_put_that_does_not_fit_evicts_and_retries_unless_everything_is_pinned() {
    let (svc, clock) = master(Policy {
        lease_ms: 0,
        ..policy()
    });
    let plain = ReplicateConfig::default();
    for i in 0..32 {
        clock.advance_ms(1);
        put(&svc, &format!("f{i}"), &plain).unwrap();
    }
    assert_eq!(used(&svc), SEG);
    put(&svc, "new", &plain).expect("evicts to make room");
    assert_eq!(read(&svc, "f0"), NOT_FOUND);
    // Writing 5x the capacity keeps succeeding.
    for i in 0..160 {
        clock.advance_ms(1);
        put(&svc, &format!("w{i}"), &plain).unwrap();
    }
    assert_eq!(read(&svc, "w159"), 0);
    // With only hard-pinned objects, nothing can go: NO_AVAILABLE_HANDLE.
    let (svc, _) = master(policy());
    let pinned = ReplicateConfig {
        with_hard_pin: true,
        ..ReplicateConfig::default()
    };
    for i in 0..32 {
        put(&svc, &format!("p{i}"), &pinned).unwrap();
    }
    assert_eq!(
        put(&svc, "one-more", &plain),
        Err(ErrorCode::NoAvailableHandle as i32)
    );
}

#[test]
fn soft_pinned_objects_go_last_and_only_if_allowed() {
    let soft = ReplicateConfig {
        soft_pin_action: SoftPinAction::Enable,
        ..ReplicateConfig::default()
    };
    let plain = ReplicateConfig::default();
    for allow in [true, false] {
        let (svc, clock) = master(Policy {
            lease_ms: 0,
            allow_evict_soft_pinned: allow,
            ..policy()
        });
        put(&svc, "soft-old", &soft).unwrap();
        for i in 0..31 {
            clock.advance_ms(1);
            put(&svc, &format!("p{i}"), &plain).unwrap();
        }
        // Evict a little: the plain objects go first although the soft one is oldest.
        svc.objects.evict(OBJ, clock.now_ms());
        assert_eq!(read(&svc, "soft-old"), 0);
        assert_eq!(read(&svc, "p0"), NOT_FOUND);
        // Evict everything evictable: the soft pin goes only if allowed.
        svc.objects.evict(u64::MAX, clock.now_ms());
        assert_eq!(read(&svc, "soft-old") == 0, !allow, "allow={allow}");
        // The soft pin ends at its deadline.
        if !allow {
            clock.advance_ms(60_001);
            svc.objects.evict(u64::MAX, clock.now_ms());
            assert_eq!(read(&svc, "soft-old"), NOT_FOUND);
        }
    }
}

fn two_host_master(strategy: mc_master::segments::Strategy) -> std::sync::Arc<MasterService> {
    let svc = MasterService::new(
        ServiceConfig {
            policy: policy(),
            strategy,
            ..ServiceConfig::default()
        },
        Arc::new(ManualClock::default()),
    );
    for (id, host) in [(1u64, "ha"), (2, "hb")] {
        common::mount(&svc, id, id, host, SEG);
    }
    svc
}

fn host_of(svc: &MasterService, key: &str, client_host: &str) -> String {
    let r = svc.handle_now(
        0,
        Request::PutStart {
            client_id: 1,
            client_host: client_host.into(),
            items: vec![(key.into(), OBJ)],
            config: ReplicateConfig::default(),
        },
    );
    let ResponseBody::PutStart(v) = r.body else {
        panic!("{r:?}")
    };
    assert_eq!(v[0].status, 0, "{key}");
    v[0].replicas[0].slices[0]
        .endpoint
        .split(':')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn free_ratio_first_fills_the_emptier_host_and_local_first_the_writers() {
    use mc_master::segments::Strategy;
    let svc = two_host_master(Strategy::FreeRatioFirst);
    // Load host ha by preference, then let the strategy choose: hb is emptier every time
    // until both hold the same.
    for i in 0..8 {
        let r = svc.handle_now(
            0,
            Request::PutStart {
                client_id: 1,
                client_host: String::new(),
                items: vec![(format!("pre{i}"), OBJ)],
                config: ReplicateConfig {
                    preferred_segments: vec!["ha".into()],
                    ..ReplicateConfig::default()
                },
            },
        );
        assert_eq!(r.status, 0);
    }
    for i in 0..8 {
        assert_eq!(host_of(&svc, &format!("f{i}"), ""), "hb", "put {i}");
    }
    let svc = two_host_master(Strategy::LocalFirst);
    for i in 0..10 {
        assert_eq!(host_of(&svc, &format!("l{i}"), "hb"), "hb");
        assert_eq!(host_of(&svc, &format!("m{i}"), "ha"), "ha");
    }
}

fn upsert_start(svc: &MasterService, key: &str) -> Result<u64, i32> {
    let r = svc.handle_now(
        0,
        Request::UpsertStart {
            client_id: 1,
            client_host: String::new(),
            items: vec![(key.into(), OBJ)],
            config: ReplicateConfig::default(),
        },
    );
    let ResponseBody::PutStart(v) = r.body else {
        panic!("{r:?}")
    };
    if v[0].status != 0 {
        return Err(v[0].status);
    }
    Ok(v[0].replicas[0].slices[0].generation)
}

fn upsert_end(svc: &MasterService, key: &str, generation: u64) -> i32 {
    statuses(svc.handle_now(
        0,
        Request::UpsertEnd {
            items: vec![PutEndItem {
                key: key.into(),
                slice_crcs: vec![0],
                failed_replicas: vec![],
                generation,
            }],
        },
    ))[0]
}

fn current_generation(svc: &MasterService, key: &str) -> u64 {
    let r = svc.handle_now(
        0,
        Request::GetReplicaList {
            keys: vec![key.into()],
        },
    );
    let ResponseBody::ReplicaLists(v) = r.body else {
        panic!("{r:?}")
    };
    assert_eq!(v[0].status, 0);
    v[0].replicas[0].slices[0].generation
}

#[test]
fn upsert_swaps_at_end_and_frees_the_old_value_after_its_lease() {
    let (svc, clock) = master(policy());
    let g0 = start(&svc, "k", &ReplicateConfig::default()).unwrap();
    assert_eq!(end(&svc, "k", g0), 0);
    assert_eq!(current_generation(&svc, "k"), g0); // a reader holds a lease on the old value
    let g1 = upsert_start(&svc, "k").unwrap();
    assert_eq!(
        upsert_start(&svc, "k"),
        Err(ErrorCode::ObjectAlreadyExists as i32)
    );
    assert_eq!(used(&svc), 2 * OBJ);
    assert_eq!(
        current_generation(&svc, "k"),
        g0,
        "readers see the old value until UpsertEnd"
    );
    assert_eq!(upsert_end(&svc, "k", g1), 0);
    assert_eq!(current_generation(&svc, "k"), g1);
    svc.maintain();
    assert_eq!(used(&svc), 2 * OBJ, "old space kept while its lease runs");
    // Readers of the old value held leases up to 1 s; then its space goes (a read after the
    // swap leases the new value only).
    clock.advance_ms(1_001);
    svc.maintain();
    assert_eq!(used(&svc), OBJ);
    // A revoked upsert leaves the current value alone.
    let _g2 = upsert_start(&svc, "k").unwrap();
    let revoke = svc.handle_now(
        0,
        Request::UpsertRevoke {
            keys: vec!["k".into()],
        },
    );
    assert_eq!(statuses(revoke), vec![0]);
    assert_eq!(used(&svc), OBJ);
    assert_eq!(current_generation(&svc, "k"), g1);
    // Upsert of a new key is a put.
    let g = upsert_start(&svc, "new").unwrap();
    assert_eq!(upsert_end(&svc, "new", g), 0);
    assert_eq!(current_generation(&svc, "new"), g);
}
