//! The client's local hot cache against real processes: a value read often enough from a
//! node over TCP is kept in the client's memory and served after the shard (a probe, no
//! payload) or the master confirmed the object is unchanged; a replaced, removed or
//! restarted object is never served from the cache.

mod common;

use std::time::{Duration, Instant};

use common::{cluster, metric_sum, pattern, uncached_store};
use mc_transfer::{DataConn, TransferError};
use mooncake_rs::{ErrorCode, HotCacheConfig, MemcpyMode, ReplicateConfig, Store, StoreConfig};

/// A hot cache of `size` bytes in blocks of `block`, admitting after `threshold` reads.
fn hot(size: usize, block: usize, threshold: u8) -> HotCacheConfig {
    HotCacheConfig {
        size_bytes: size,
        block_bytes: block,
        admission_threshold: threshold,
        use_shm: false,
    }
}

/// A client with hot cache `h` that reads over TCP (as from another host).
fn reader(c: &mc_cluster::LocalCluster, h: HotCacheConfig) -> Store {
    Store::connect(StoreConfig {
        memcpy: MemcpyMode::Off,
        hot_cache: h,
        ..StoreConfig::new(c.master_addr())
    })
    .expect("client connects")
}

#[test]
fn a_value_read_often_enough_is_served_from_the_cache_without_its_payload() {
    let c = cluster(1, "64MB");
    let writer = uncached_store(&c);
    let r = reader(&c, hot(8 << 20, 64 << 10, 3));
    let v = pattern(300_000, 1);
    writer.put("k", &v, &ReplicateConfig::default()).unwrap();
    for i in 1..=3 {
        assert_eq!(r.get("k").unwrap(), v);
        let s = r.hot_cache_stats();
        assert_eq!(s.hits, 0, "read {i}: nothing served from the cache yet");
        assert_eq!(s.admitted, u64::from(i == 3), "read {i}: {s:?}");
    }
    let node = c.node_rest_addr(0);
    let (sent, probes) = (
        metric_sum(&node, "mc_shard_bytes_out_total"),
        metric_sum(&node, "mc_shard_probes_total"),
    );
    for _ in 0..5 {
        assert_eq!(r.get("k").unwrap(), v);
    }
    let mut buf = vec![0u8; 300_000];
    assert_eq!(r.get_into("k", &mut buf).unwrap(), 300_000);
    assert_eq!(buf, v);
    let s = r.hot_cache_stats();
    assert_eq!(s.hits, 6, "{s:?}");
    assert_eq!(
        metric_sum(&node, "mc_shard_bytes_out_total"),
        sent,
        "hits move no payload"
    );
    assert_eq!(metric_sum(&node, "mc_shard_probes_total"), probes + 6.0);
    assert_eq!(s.entries, 1);
    assert_eq!(
        s.used_bytes,
        5 * (64 << 10),
        "300 kB takes five 64 KiB blocks"
    );
    let text = r.metrics_text();
    assert!(
        text.contains("mc_client_hot_cache_hits_total 6"),
        "metrics export the hits"
    );
    // Batches use the cache per key.
    writer
        .put("k2", &v[..70_000], &ReplicateConfig::default())
        .unwrap();
    let got = r.get_batch(&["k", "k2", "absent"]);
    assert_eq!(got[0].as_ref().unwrap(), &v);
    assert_eq!(got[1].as_ref().unwrap(), &v[..70_000]);
    assert_eq!(
        got[2].as_ref().unwrap_err().code(),
        ErrorCode::ObjectNotFound
    );
    assert_eq!(r.hot_cache_stats().hits, 7);
    // The probes count as reads: the shard reports them and the master sees a lease.
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric_sum(&c.metrics_addr(), "master_report_hits_keys_total") < 1.0 {
        assert!(
            Instant::now() < deadline,
            "no hit report reached the master"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let e = writer.remove("k", false).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ObjectHasLease, "{e}");
}

#[test]
fn another_clients_upsert_and_remove_are_never_served_from_the_cache() {
    let c = cluster(1, "64MB");
    let writer = uncached_store(&c);
    let cfg = ReplicateConfig::default();
    // One reader validates through the location cache (probes), one through the master.
    let probing = reader(&c, hot(4 << 20, 64 << 10, 1));
    let asking = Store::connect(StoreConfig {
        memcpy: MemcpyMode::Off,
        location_cache_entries: 0,
        hot_cache: hot(4 << 20, 64 << 10, 1),
        ..StoreConfig::new(c.master_addr())
    })
    .unwrap();
    let v1 = pattern(200_000, 2);
    writer.put("k", &v1, &cfg).unwrap();
    for s in [&probing, &asking] {
        assert_eq!(s.get("k").unwrap(), v1);
        assert_eq!(s.get("k").unwrap(), v1);
        assert_eq!(s.hot_cache_stats().hits, 1, "cached after the first read");
    }
    // Same size, other bytes.
    let v2 = pattern(200_000, 3);
    writer.upsert("k", &v2, &cfg).unwrap();
    for s in [&probing, &asking] {
        assert_eq!(
            s.get("k").unwrap(),
            v2,
            "the new bytes, never the cached ones"
        );
        assert!(s.hot_cache_stats().stale >= 1, "{:?}", s.hot_cache_stats());
        assert_eq!(s.get("k").unwrap(), v2);
    }
    let hits: Vec<u64> = [&probing, &asking]
        .iter()
        .map(|s| s.hot_cache_stats().hits)
        .collect();
    assert_eq!(hits, vec![2, 2], "the new value is cached in its turn");
    writer.remove("k", true).unwrap();
    for s in [&probing, &asking] {
        let e = s.get("k").unwrap_err();
        assert_eq!(
            e.code(),
            ErrorCode::ObjectNotFound,
            "never removed bytes: {e}"
        );
        assert_eq!(s.hot_cache_stats().entries, 0);
    }
    let v3 = pattern(200_000, 4);
    writer.put("k", &v3, &cfg).unwrap();
    for s in [&probing, &asking] {
        assert_eq!(s.get("k").unwrap(), v3);
    }
    // The client's own writes drop its entry at once.
    assert_eq!(probing.get("k").unwrap(), v3);
    let before = probing.hot_cache_stats();
    let v4 = pattern(200_000, 5);
    probing.upsert("k", &v4, &cfg).unwrap();
    assert_eq!(
        probing.hot_cache_stats().invalidated,
        before.invalidated + 1
    );
    assert_eq!(probing.get("k").unwrap(), v4);
    probing.remove("k", true).unwrap();
    assert_eq!(
        probing.get("k").unwrap_err().code(),
        ErrorCode::ObjectNotFound
    );
}

#[test]
fn a_node_restarted_on_the_same_address_does_not_serve_cached_bytes() {
    let mut c = cluster(1, "64MB");
    let writer = uncached_store(&c);
    let r = reader(&c, hot(4 << 20, 64 << 10, 1));
    let cfg = ReplicateConfig::default();
    let v1 = pattern(150_000, 6);
    writer.put("k", &v1, &cfg).unwrap();
    assert_eq!(r.get("k").unwrap(), v1);
    assert_eq!(r.hot_cache_stats().entries, 1);
    c.kill_node(0);
    c.restart_node(0).unwrap();
    c.wait_node_ready(0).unwrap();
    // Whatever the restarted node kept, a new value of the same size replaces it.
    let v2 = pattern(150_000, 7);
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = writer
        .upsert("k", &v2, &cfg)
        .or_else(|_| writer.put("k", &v2, &cfg))
    {
        assert!(
            Instant::now() < deadline,
            "no upsert after the restart: {e}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(r.get("k").unwrap(), v2, "the new bytes after the restart");
    assert_eq!(r.get("k").unwrap(), v2);
}

#[test]
fn with_the_cache_off_gets_behave_as_before() {
    let c = cluster(1, "64MB");
    let writer = uncached_store(&c);
    let r = reader(&c, hot(0, 64 << 10, 0));
    let v = pattern(100_000, 8);
    writer.put("k", &v, &ReplicateConfig::default()).unwrap();
    for _ in 0..4 {
        assert_eq!(r.get("k").unwrap(), v);
    }
    assert_eq!(r.hot_cache_stats(), Default::default());
    assert_eq!(r.cache_stats().hits, 3, "the location cache works as ever");
}

#[test]
fn eviction_keeps_the_cache_within_its_size() {
    let c = cluster(1, "64MB");
    let writer = uncached_store(&c);
    let r = reader(&c, hot(1 << 20, 64 << 10, 1));
    let values: Vec<Vec<u8>> = (0..20).map(|i| pattern(100_000, 100 + i)).collect();
    for (i, v) in values.iter().enumerate() {
        writer
            .put(&format!("k{i}"), v, &ReplicateConfig::default())
            .unwrap();
        assert_eq!(r.get(&format!("k{i}")).unwrap(), *v);
        let s = r.hot_cache_stats();
        assert!(s.used_bytes <= s.capacity_bytes, "{s:?}");
        assert_eq!(s.capacity_bytes, 1 << 20);
    }
    let s = r.hot_cache_stats();
    assert_eq!(s.admitted, 20);
    assert_eq!(s.entries, 8, "eight 2-block values fill 16 blocks");
    assert_eq!(s.evicted, 12);
    // Newest first: the eight cached ones are hits, the others are read and cached again.
    for (i, v) in values.iter().enumerate().rev() {
        assert_eq!(r.get(&format!("k{i}")).unwrap(), *v);
    }
    let s = r.hot_cache_stats();
    assert_eq!((s.hits, s.admitted, s.entries), (8, 32, 8), "{s:?}");
    // A value above a quarter of the cache is never cached.
    let big = pattern(300_000, 9);
    writer
        .put("big", &big, &ReplicateConfig::default())
        .unwrap();
    assert_eq!(r.get("big").unwrap(), big);
    assert_eq!(r.get("big").unwrap(), big);
    let s = r.hot_cache_stats();
    assert_eq!(s.admitted, 32, "{s:?}");
    assert!(s.used_bytes <= s.capacity_bytes);
}

#[test]
fn memfd_backed_cache_and_values_of_several_slices() {
    let c = cluster(1, "96MB");
    let writer = uncached_store(&c);
    let r = reader(
        &c,
        HotCacheConfig {
            use_shm: true,
            ..hot(96 << 20, 1 << 20, 2)
        },
    );
    // Two slices (16 MiB + 4 MiB).
    let v = pattern(20 << 20, 10);
    writer.put("big", &v, &ReplicateConfig::default()).unwrap();
    for _ in 0..3 {
        assert_eq!(r.get("big").unwrap(), v);
    }
    let s = r.hot_cache_stats();
    assert_eq!(
        (s.admitted, s.hits, s.used_bytes),
        (1, 1, 20 << 20),
        "{s:?}"
    );
    let mut buf = vec![0u8; 20 << 20];
    assert_eq!(r.get_into("big", &mut buf).unwrap(), 20 << 20);
    assert!(buf == v);
}

#[test]
fn the_shard_answers_a_probe_with_a_status_and_no_payload() {
    let c = cluster(1, "64MB");
    let s = uncached_store(&c);
    let v = pattern(4096, 11);
    s.put("k", &v, &ReplicateConfig::default()).unwrap();
    let r = &s.replicas("k").unwrap()[0].slices[0];
    let crc = mc_schema::checksum::crc32c(&v);
    let mut conn =
        DataConn::connect(&r.endpoint, "mooncake_cluster", Duration::from_secs(5)).unwrap();
    conn.arm_deadline(Instant::now() + Duration::from_secs(10))
        .unwrap();
    let probe = |conn: &mut DataConn, generation: u64, len: u64, crc: u32| {
        let id = conn
            .send_probe(r.segment_id, r.offset, generation, len, crc)
            .unwrap();
        conn.recv_probe(id)
    };
    probe(&mut conn, r.generation, 4096, crc).expect("the slice is held");
    for (generation, len, crc) in [
        (r.generation + 1, 4096, crc),
        (r.generation, 4096, crc ^ 1),
        (r.generation, 4000, crc),
    ] {
        match probe(&mut conn, generation, len, crc) {
            Err(TransferError::Refused { code, .. }) => assert_eq!(code, ErrorCode::ReplicaIsGone),
            other => panic!("a probe naming another slice was held: {other:?}"),
        }
    }
    // The connection carries reads as before: no payload was left behind.
    let mut buf = vec![0u8; 4096];
    let id = conn
        .send_validated_read(r.segment_id, r.offset, r.generation, 4096, crc)
        .unwrap();
    assert_eq!(conn.recv_read(id, &mut buf).unwrap(), crc);
    assert_eq!(buf, v);
    let node = c.node_rest_addr(0);
    assert_eq!(metric_sum(&node, "mc_shard_probes_total"), 4.0);
}

#[test]
fn a_probe_of_an_ssd_copy_checks_the_disk_index_without_reading_the_record() {
    let dir = match mc_cluster::o_direct_dir(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")),
        "hot-ssd-probe",
    ) {
        Ok(dir) => dir,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    let c = mc_cluster::LocalCluster::start(mc_cluster::ClusterSpec {
        nodes: vec![mc_cluster::NodeSpec {
            segment_size: "32MB".into(),
            extra_args: vec![
                "--enable_ssd_offload".into(),
                format!("--ssd_offload_path={}", dir.display()),
                "--ssd_quota_bytes=256MB".into(),
                "--ssd_file_size=64MB".into(),
            ],
            ..mc_cluster::NodeSpec::default()
        }],
        master_args: vec!["--enable_offload".into()],
        ..mc_cluster::ClusterSpec::default()
    })
    .expect("cluster starts");
    let s = uncached_store(&c);
    let v = pattern(8192, 12);
    s.put("k", &v, &ReplicateConfig::default()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let disk = loop {
        let found = s
            .replicas("k")
            .unwrap()
            .into_iter()
            .find(|r| r.kind == mooncake_rs::ReplicaKind::LocalDisk);
        if let Some(r) = found {
            break r.slices[0].clone();
        }
        assert!(Instant::now() < deadline, "no SSD copy");
        std::thread::sleep(Duration::from_millis(20));
    };
    let crc = mc_schema::checksum::crc32c(&v);
    let mut conn =
        DataConn::connect(&disk.endpoint, "mooncake_cluster", Duration::from_secs(5)).unwrap();
    conn.arm_deadline(Instant::now() + Duration::from_secs(10))
        .unwrap();
    let node = c.node_rest_addr(0);
    let reads = metric_sum(&node, "mc_shard_ssd_reads_total");
    let probe = |conn: &mut DataConn, generation: u64, crc: u32| {
        let id = conn
            .send_probe(disk.segment_id, disk.offset, generation, disk.length, crc)
            .unwrap();
        conn.recv_probe(id)
    };
    probe(&mut conn, disk.generation, crc).expect("the SSD copy is held");
    for (generation, crc) in [(disk.generation + 1, crc), (disk.generation, crc ^ 1)] {
        match probe(&mut conn, generation, crc) {
            Err(TransferError::Refused { code, .. }) => assert_eq!(code, ErrorCode::ReplicaIsGone),
            other => panic!("a probe naming another SSD slice was held: {other:?}"),
        }
    }
    assert_eq!(
        metric_sum(&node, "mc_shard_ssd_reads_total"),
        reads,
        "no record was read"
    );
}

#[test]
fn reads_racing_upserts_get_one_whole_version_never_a_cached_old_one_after_the_upsert() {
    let c = cluster(1, "64MB");
    let writer = uncached_store(&c);
    let r = reader(&c, hot(4 << 20, 64 << 10, 1));
    let cfg = ReplicateConfig::default();
    let versions: Vec<Vec<u8>> = (0..20).map(|i| pattern(120_000, 200 + i)).collect();
    writer.put("k", &versions[0], &cfg).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let reads = s.spawn(|| {
            let mut n = 0;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                let got = r.get("k").unwrap();
                assert!(versions.contains(&got), "bytes of no version");
                n += 1;
            }
            n
        });
        for v in &versions[1..] {
            writer.upsert("k", v, &cfg).unwrap();
            // Once an upsert returned, no reader sees an older version.
            let got = r.get("k").unwrap();
            assert_eq!(&got, v, "an old version after the upsert returned");
        }
        done.store(true, std::sync::atomic::Ordering::Release);
        assert!(reads.join().unwrap() > 0);
    });
    let before = r.hot_cache_stats().hits;
    assert_eq!(r.get("k").unwrap(), versions[19]);
    assert_eq!(
        r.hot_cache_stats().hits,
        before + 1,
        "the last version is cached"
    );
}
