//! The client's location cache against real processes: cached gets go straight to the
//! shard, which validates them against its object index; every way a cached location can
//! go stale falls back to the master and returns the right bytes or a clean error.

mod common;

use std::time::{Duration, Instant};

use common::{cluster, metric_sum, pattern};
use mc_transfer::{DataConn, TransferError};
use mooncake_rs::{ErrorCode, MemcpyMode, ReplicateConfig, Store, StoreConfig};

/// A client with a location cache that reads over TCP (these tests watch the shards
/// validate; same-host reads are `same_host.rs`'s).
fn store(c: &mc_cluster::LocalCluster) -> Store {
    Store::connect(StoreConfig {
        memcpy: MemcpyMode::Off,
        ..StoreConfig::new(c.master_addr())
    })
    .expect("client connects")
}

/// A client whose location cache is off.
fn uncached(c: &mc_cluster::LocalCluster) -> Store {
    let mut cfg = StoreConfig::new(c.master_addr());
    cfg.location_cache_entries = 0;
    Store::connect(cfg).expect("client connects")
}

#[test]
fn cached_gets_skip_the_master_and_are_reported_as_reads() {
    let c = cluster(1, "64MB");
    let s = store(&c);
    let v = pattern(100_000, 1);
    s.put("k", &v, &ReplicateConfig::default()).unwrap();
    let lookups = || metric_sum(&c.metrics_addr(), "master_get_replica_list_requests_total");
    let before = lookups();
    for _ in 0..20 {
        assert_eq!(s.get("k").unwrap(), v);
    }
    assert_eq!(
        lookups(),
        before,
        "a put fills the cache: no lookup at the master"
    );
    assert_eq!(s.cache_stats().hits, 20);
    let rest = c.node_rest_addr(0);
    assert!(metric_sum(&rest, "mc_shard_validated_reads_total") >= 20.0);
    // The shard hands the hits to its agent, which reports them to the master.
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric_sum(&c.metrics_addr(), "master_report_hits_keys_total") < 1.0 {
        assert!(
            Instant::now() < deadline,
            "no hit report reached the master"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The report counted as a read: another client's remove without force meets the lease.
    let e = uncached(&c).remove("k", false).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ObjectHasLease, "{e}");
    // Batch gets use the cache per key: one key unknown to the cache is looked up alone.
    s.put("k2", &v[..5000], &ReplicateConfig::default())
        .unwrap();
    let other = uncached(&c);
    other
        .put("k3", &v[..7000], &ReplicateConfig::default())
        .unwrap();
    let before = lookups();
    let got = s.get_batch(&["k", "k2", "k3", "absent"]);
    assert_eq!(got[0].as_ref().unwrap(), &v);
    assert_eq!(got[1].as_ref().unwrap(), &v[..5000]);
    assert_eq!(got[2].as_ref().unwrap(), &v[..7000]);
    assert_eq!(
        got[3].as_ref().unwrap_err().code(),
        ErrorCode::ObjectNotFound
    );
    assert_eq!(lookups(), before + 1.0);
}

#[test]
fn another_clients_remove_and_upsert_are_seen_at_once() {
    let c = cluster(1, "64MB");
    let (writer, reader) = (uncached(&c), store(&c));
    let cfg = ReplicateConfig::default();
    let v1 = pattern(50_000, 2);
    writer.put("k", &v1, &cfg).unwrap();
    assert_eq!(
        reader.get("k").unwrap(),
        v1,
        "the reader caches the location"
    );
    writer.remove("k", true).unwrap();
    let e = reader.get("k").unwrap_err();
    assert_eq!(
        e.code(),
        ErrorCode::ObjectNotFound,
        "never the removed bytes: {e}"
    );
    // Same size again: the space (and likely the range) is reused by a new generation.
    let v2 = pattern(50_000, 3);
    writer.put("k", &v2, &cfg).unwrap();
    assert_eq!(reader.get("k").unwrap(), v2);
    let v3 = pattern(50_000, 4);
    writer.upsert("k", &v3, &cfg).unwrap();
    assert_eq!(
        reader.get("k").unwrap(),
        v3,
        "an upsert is seen right after it returns"
    );
    let mut buf = vec![0u8; 50_000];
    let v4 = pattern(50_000, 5);
    writer.upsert("k", &v4, &cfg).unwrap();
    assert_eq!(reader.get_into("k", &mut buf).unwrap(), 50_000);
    assert_eq!(buf, v4);
    // A value of another size replaced meanwhile: the reader gets memory of the new size.
    let v5 = pattern(80_000, 6);
    writer.upsert("k", &v5, &cfg).unwrap();
    assert_eq!(reader.get("k").unwrap(), v5);
    assert!(
        reader.cache_stats().stale >= 3,
        "{:?}",
        reader.cache_stats()
    );
    let gone = metric_sum(&c.node_rest_addr(0), "mc_shard_gone_reads_total");
    assert!(gone >= 3.0, "the shard refused the stale reads ({gone})");
}

#[test]
fn a_node_restarted_on_the_same_address_falls_back_to_another_replica() {
    let mut c = cluster(2, "64MB");
    let (writer, reader) = (uncached(&c), store(&c));
    let cfg = ReplicateConfig {
        replica_num: 2,
        ..ReplicateConfig::default()
    };
    let values: Vec<Vec<u8>> = (0..8)
        .map(|i| pattern(20_000 + i * 1000, 10 + i as u64))
        .collect();
    for (i, v) in values.iter().enumerate() {
        writer.put(&format!("k{i}"), v, &cfg).unwrap();
        assert_eq!(reader.get(&format!("k{i}")).unwrap(), *v);
    }
    c.kill_node(0);
    c.restart_node(0).unwrap();
    c.wait_node_ready(0).unwrap();
    for (i, v) in values.iter().enumerate() {
        match reader.get(&format!("k{i}")) {
            Ok(got) => assert_eq!(got, *v, "k{i}: wrong bytes after the restart"),
            Err(e) => panic!("k{i}: the other replica is alive, yet {e}"),
        }
    }
}

#[test]
fn the_shard_serves_a_validated_read_only_for_the_slice_it_holds() {
    let c = cluster(1, "64MB");
    let s = uncached(&c);
    let v = pattern(4096, 7);
    s.put("k", &v, &ReplicateConfig::default()).unwrap();
    let r = &s.replicas("k").unwrap()[0].slices[0];
    let crc = mc_schema::checksum::crc32c(&v);
    let mut conn =
        DataConn::connect(&r.endpoint, "mooncake_cluster", Duration::from_secs(5)).unwrap();
    conn.arm_deadline(Instant::now() + Duration::from_secs(10))
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let read = |conn: &mut DataConn, buf: &mut [u8], generation: u64, len: u64, crc: u32| {
        let id = conn
            .send_validated_read(r.segment_id, r.offset, generation, len, crc)
            .unwrap();
        conn.recv_read(id, &mut buf[..len as usize])
    };
    assert_eq!(
        read(&mut conn, &mut buf, r.generation, 4096, crc).unwrap(),
        crc
    );
    assert_eq!(buf, v);
    for (generation, len, crc) in [
        (r.generation + 1, 4096, crc),
        (r.generation, 4096, crc ^ 1),
        (r.generation, 4000, crc),
    ] {
        match read(&mut conn, &mut buf, generation, len, crc) {
            Err(TransferError::Refused { code, .. }) => assert_eq!(code, ErrorCode::ReplicaIsGone),
            other => panic!("a read naming another slice was served: {other:?}"),
        }
    }
    // A plain read (no cache) of the same range is still served.
    let id = conn.send_read(r.segment_id, r.offset, 0, 4096).unwrap();
    assert_eq!(conn.recv_read(id, &mut buf).unwrap(), crc);
}
