//! Same-host reads against real processes (`MC_STORE_MEMCPY`, `docs/why-fast-path.md`): a
//! client on the node's host copies cached objects out of the node's memory, validated
//! through its index records; every way a cached location goes stale falls back to TCP and
//! the master, and a node that restarts is mapped again.

mod common;

use std::time::{Duration, Instant};

use common::{cluster, metric_sum, pattern};
use mc_cluster::LocalCluster;
use mc_cluster::children::child_with_first_arg as child_pid;
use mooncake_rs::{ErrorCode, MemcpyMode, ReplicateConfig, Store, StoreConfig};

/// A client of `c` with same-host reads set to `mode`.
fn client(c: &LocalCluster, mode: MemcpyMode) -> Store {
    Store::connect(StoreConfig {
        memcpy: mode,
        ..StoreConfig::new(c.master_addr())
    })
    .expect("client connects")
}

/// A writer that neither caches nor reads same-host.
fn writer(c: &LocalCluster) -> Store {
    Store::connect(StoreConfig {
        memcpy: MemcpyMode::Off,
        location_cache_entries: 0,
        ..StoreConfig::new(c.master_addr())
    })
    .expect("client connects")
}

#[test]
fn cached_gets_on_the_nodes_host_copy_from_its_memory_and_count_as_reads() {
    let c = cluster(1, "64MB");
    let s = client(&c, MemcpyMode::Auto);
    let cfg = ReplicateConfig::default();
    let small = pattern(100_000, 1);
    // Two slices (16 MiB + 4 MiB).
    let large = pattern(20 << 20, 2);
    s.put("small", &small, &cfg).unwrap();
    s.put("large", &large, &cfg).unwrap();
    for _ in 0..10 {
        assert_eq!(s.get("small").unwrap(), small);
    }
    assert_eq!(s.get("large").unwrap(), large);
    let mut buf = vec![0u8; 20 << 20];
    assert_eq!(s.get_into("large", &mut buf).unwrap(), 20 << 20);
    assert_eq!(buf, large);
    let st = s.same_host_stats();
    assert_eq!(st.reads, 10 + 2 + 2, "{st:?}");
    assert_eq!((st.fallbacks, st.nodes), (0, 1), "{st:?}");
    assert!(
        s.metrics_text()
            .contains(&format!("mc_client_same_host_reads_total {}", st.reads)),
        "the client's metrics count them"
    );
    let rest = c.node_rest_addr(0);
    assert_eq!(
        metric_sum(&rest, "mc_shard_validated_reads_total"),
        0.0,
        "no read went over TCP"
    );
    // The client reports the keys it read this way; the master treats them as reads.
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric_sum(&c.metrics_addr(), "master_report_hits_keys_total") < 1.0 {
        assert!(
            Instant::now() < deadline,
            "no hit report reached the master"
        );
        assert_eq!(s.get("small").unwrap(), small);
        std::thread::sleep(Duration::from_millis(100));
    }
    let e = writer(&c).remove("small", false).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ObjectHasLease, "{e}");
}

#[test]
fn memcpy_off_never_maps_a_node() {
    let c = cluster(1, "64MB");
    let s = client(&c, MemcpyMode::Off);
    let v = pattern(70_000, 3);
    s.put("k", &v, &ReplicateConfig::default()).unwrap();
    for _ in 0..5 {
        assert_eq!(s.get("k").unwrap(), v);
    }
    assert_eq!(s.same_host_stats(), Default::default());
    assert!(metric_sum(&c.node_rest_addr(0), "mc_shard_validated_reads_total") >= 5.0);
}

#[test]
fn removed_and_replaced_keys_fall_back_to_the_new_bytes_or_not_found() {
    let c = cluster(1, "64MB");
    let (w, r) = (writer(&c), client(&c, MemcpyMode::On));
    let cfg = ReplicateConfig::default();
    let v1 = pattern(50_000, 4);
    w.put("k", &v1, &cfg).unwrap();
    assert_eq!(r.get("k").unwrap(), v1, "cached by the master's answer");
    assert_eq!(r.get("k").unwrap(), v1, "read same-host");
    let reads = r.same_host_stats().reads;
    assert!(reads >= 1, "{:?}", r.same_host_stats());
    w.remove("k", true).unwrap();
    let e = r.get("k").unwrap_err();
    assert_eq!(
        e.code(),
        ErrorCode::ObjectNotFound,
        "never the removed bytes: {e}"
    );
    // Same size: the range is likely reused by a new generation.
    let v2 = pattern(50_000, 5);
    w.put("k", &v2, &cfg).unwrap();
    assert_eq!(r.get("k").unwrap(), v2);
    let v3 = pattern(50_000, 6);
    w.upsert("k", &v3, &cfg).unwrap();
    assert_eq!(
        r.get("k").unwrap(),
        v3,
        "an upsert is seen right after it returns"
    );
    let v4 = pattern(90_000, 7);
    w.upsert("k", &v4, &cfg).unwrap();
    assert_eq!(r.get("k").unwrap(), v4, "a new size too");
    // The client finds a new record by rescanning the node's records file, at most so
    // often: read until a read is served same-host again (or give up after 20 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        assert_eq!(r.get("k").unwrap(), v4);
        if r.same_host_stats().reads > reads || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let st = r.same_host_stats();
    assert!(st.fallbacks >= 2, "the stale copies were refused: {st:?}");
    assert!(
        st.reads > reads,
        "the new location is read same-host: {st:?}"
    );
}

#[test]
fn a_data_plane_restarted_on_the_same_address_is_mapped_again() {
    let c = cluster(1, "64MB");
    let s = client(&c, MemcpyMode::On);
    let v = pattern(200_000, 8);
    s.put("k", &v, &ReplicateConfig::default()).unwrap();
    assert_eq!(s.get("k").unwrap(), v);
    assert_eq!(s.same_host_stats().reads, 1);
    let node = c.node_pid(0).unwrap();
    let dp = child_pid(node, "dataplane").expect("a data-plane child");
    let p = mc_cluster::detached::ProcessId::of(dp).expect("the data plane runs");
    assert!(p.signal(9), "kill -9 {dp}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child_pid(node, "dataplane").is_none_or(|p| p == dp) {
        assert!(
            Instant::now() < deadline,
            "no new data plane\n{}",
            c.logs_tail(40)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Reads fall back while the data plane restarts, and come back with the same bytes,
    // copied again from the node's memory.
    let reads = s.same_host_stats().reads;
    loop {
        match s.get("k") {
            Ok(got) => {
                assert_eq!(got, v, "wrong bytes after the restart");
                let st = s.same_host_stats();
                if st.reads > reads && st.nodes == 1 {
                    break;
                }
            }
            Err(e) => assert!(Instant::now() < deadline, "never readable again: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "never read same-host again: {:?}\n{}",
            s.same_host_stats(),
            c.logs_tail(40)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        s.same_host_stats().fallbacks >= 1,
        "{:?}",
        s.same_host_stats()
    );
}
