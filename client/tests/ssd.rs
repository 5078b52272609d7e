//! The SSD tier end to end (issue 14): a master with `--enable_offload` and a store node
//! with `--enable_ssd_offload` on a directory of the ext4 disk (tmpfs refuses O_DIRECT).
//! Objects gain a disk replica after PutEnd, stay readable byte-exact from SSD once
//! eviction drops their memory copy, a remove deletes the SSD copy, and a corrupted record
//! is never served.

mod common;

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::pattern;
use mc_cluster::{ClusterSpec, LocalCluster, NodeSpec, probe};
use mooncake_rs::{ErrorCode, ReplicaKind, ReplicateConfig, Store, StoreConfig};

const MIB: usize = 1 << 20;

/// A fresh directory for record files under the target dir (on the disk, not tmpfs), or
/// `None` (logged) when its file system refuses O_DIRECT.
fn ssd_dir(name: &str) -> Option<PathBuf> {
    match mc_cluster::o_direct_dir(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")),
        &format!("ssd-{name}"),
    ) {
        Ok(dir) => Some(dir),
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            None
        }
    }
}

fn cluster(dir: &std::path::Path) -> LocalCluster {
    cluster_with(dir, &["--enable_offload"])
}

fn cluster_with(dir: &std::path::Path, master_args: &[&str]) -> LocalCluster {
    cluster_quota(dir, master_args, "1GB")
}

fn cluster_quota(dir: &std::path::Path, master_args: &[&str], quota: &str) -> LocalCluster {
    cluster_full(dir, master_args, quota, &[])
}

fn cluster_full(
    dir: &std::path::Path,
    master_args: &[&str],
    quota: &str,
    node_args: &[&str],
) -> LocalCluster {
    LocalCluster::start(ClusterSpec {
        nodes: vec![NodeSpec {
            segment_size: "32MB".into(),
            extra_args: vec![
                "--enable_ssd_offload".into(),
                format!("--ssd_offload_path={}", dir.display()),
                format!("--ssd_quota_bytes={quota}"),
                "--ssd_file_size=64MB".into(),
            ]
            .into_iter()
            .chain(node_args.iter().map(|a| a.to_string()))
            .collect(),
            ..NodeSpec::default()
        }],
        master_args: master_args.iter().map(|a| a.to_string()).collect(),
        ..ClusterSpec::default()
    })
    .expect("cluster starts")
}

/// A client without a location cache: every get asks the master where the key is now.
fn store(c: &LocalCluster) -> Store {
    Store::connect(StoreConfig {
        location_cache_entries: 0,
        ..StoreConfig::new(c.master_addr())
    })
    .expect("client connects")
}

/// The kinds of `key`'s replicas as the master's `/query_key` shows them (which, unlike
/// a get, grants no lease that would keep the object from eviction or removal).
fn kinds(c: &LocalCluster, key: &str) -> Vec<ReplicaKind> {
    let q = probe::http_get(
        &c.metrics_addr(),
        &format!("/query_key?key={key}"),
        Duration::from_secs(5),
    )
    .expect("query_key answers");
    let v: serde_json::Value = serde_json::from_str(&q.body).unwrap_or_default();
    v["replicas"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| match r["type"].as_str() {
                    Some("LOCAL_DISK") => ReplicaKind::LocalDisk,
                    _ => ReplicaKind::Memory,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `key` has a disk replica in the master's metadata.
fn wait_for_disk_replica(c: &LocalCluster, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kinds(c, key).contains(&ReplicaKind::LocalDisk) {
        assert!(
            Instant::now() < deadline,
            "{key} got no SSD copy: {:?}",
            kinds(c, key)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The sum of a node metric over its samples.
fn node_metric(c: &LocalCluster, name: &str) -> f64 {
    let r = probe::http_get(&c.node_rest_addr(0), "/metrics", Duration::from_secs(5))
        .expect("node metrics");
    r.body
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Puts `n` 1 MiB fillers: three times the node's 32 MB, so eviction drops older copies.
fn fill(s: &Store, n: u64) {
    for i in 0..n {
        s.put(
            &format!("fill-{i}"),
            &pattern(MIB, 1000 + i),
            &ReplicateConfig::default(),
        )
        .unwrap_or_else(|e| panic!("filler {i}: {e}"));
    }
}

#[test]
fn offloaded_objects_stay_readable_from_ssd_after_eviction() {
    let Some(dir) = ssd_dir("evict") else { return };
    let c = cluster(&dir);
    let s = store(&c);
    for i in 0..8u64 {
        s.put(
            &format!("k{i}"),
            &pattern(MIB, i),
            &ReplicateConfig::default(),
        )
        .unwrap();
    }
    for i in 0..8u64 {
        wait_for_disk_replica(&c, &format!("k{i}"));
    }
    // The SSD copy is a replica of its own kind everywhere the master shows replicas.
    assert_eq!(
        kinds(&c, "k0"),
        [ReplicaKind::Memory, ReplicaKind::LocalDisk]
    );
    let q = probe::http_get(
        &c.metrics_addr(),
        "/query_key?key=k0",
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(
        q.body.contains("LOCAL_DISK") && q.body.contains("MEMORY"),
        "{}",
        q.body
    );
    assert!(node_metric(&c, "mc_shard_ssd_offloads_total") >= 8.0);
    // A get prefers memory while there is a memory copy.
    assert_eq!(s.get("k0").unwrap(), pattern(MIB, 0));
    assert_eq!(node_metric(&c, "mc_shard_ssd_reads_total"), 0.0);
    assert_eq!(s.ssd_read_count(), 0);

    fill(&s, 96);
    let only_disk = (0..8u64)
        .filter(|i| kinds(&c, &format!("k{i}")) == [ReplicaKind::LocalDisk])
        .count();
    assert!(only_disk > 0, "eviction left every memory copy");
    for i in 0..8u64 {
        let got = s
            .get(&format!("k{i}"))
            .unwrap_or_else(|e| panic!("k{i}: {e}"));
        assert!(got == pattern(MIB, i), "k{i} read back different bytes");
    }
    assert!(node_metric(&c, "mc_shard_ssd_reads_total") >= only_disk as f64);
    assert_eq!(
        s.ssd_read_count(),
        only_disk as u64,
        "the client counts its SSD reads"
    );
    let m = probe::http_get(&c.metrics_addr(), "/metrics", Duration::from_secs(5)).unwrap();
    assert!(
        m.body.contains("master_offloaded_objects_total"),
        "{}",
        m.body
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_remove_deletes_the_ssd_copy_durably() {
    let Some(dir) = ssd_dir("remove") else { return };
    let c = cluster(&dir);
    let s = store(&c);
    s.put("gone", &pattern(2 * MIB, 7), &ReplicateConfig::default())
        .unwrap();
    wait_for_disk_replica(&c, "gone");
    assert_eq!(node_metric(&c, "mc_shard_ssd_objects"), 1.0);
    // The remove is answered once the node applied its free notices: the tombstone is
    // synced by then.
    s.remove("gone", false).unwrap();
    assert_eq!(node_metric(&c, "mc_shard_ssd_deletes_total"), 1.0);
    assert_eq!(node_metric(&c, "mc_shard_ssd_objects"), 0.0);
    assert_eq!(s.get("gone").unwrap_err().code(), ErrorCode::ObjectNotFound);
    // The tombstone is on disk: a record header (magic "MCSR") of kind 2 naming the key.
    let log = std::fs::read(dir.join("shard-0/000000.rec")).unwrap();
    let tombstone = log
        .chunks(4096)
        .any(|b| b.len() >= 72 + 4 && &b[0..4] == b"MCSR" && b[6] == 2 && &b[72..76] == b"gone");
    assert!(tombstone, "no tombstone in the record file");
    // A remove of many SSD objects deletes them as one group before it is answered.
    for i in 0..20u64 {
        s.put(
            &format!("many-{i}"),
            &pattern(64 << 10, i),
            &ReplicateConfig::default(),
        )
        .unwrap();
    }
    for i in 0..20u64 {
        wait_for_disk_replica(&c, &format!("many-{i}"));
    }
    assert_eq!(s.remove_all(true).unwrap(), 20);
    assert_eq!(node_metric(&c, "mc_shard_ssd_deletes_total"), 21.0);
    assert_eq!(node_metric(&c, "mc_shard_ssd_objects"), 0.0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_corrupted_record_is_detected_and_never_served() {
    let Some(dir) = ssd_dir("corrupt") else {
        return;
    };
    let c = cluster(&dir);
    let s = store(&c);
    s.put("victim", &pattern(MIB, 3), &ReplicateConfig::default())
        .unwrap();
    wait_for_disk_replica(&c, "victim");
    fill(&s, 96);
    assert_eq!(
        kinds(&c, "victim"),
        [ReplicaKind::LocalDisk],
        "memory copy evicted"
    );
    let rs = s.replicas("victim").unwrap();
    assert_eq!(s.get("victim").unwrap(), pattern(MIB, 3));
    // Flip one payload byte of the record (location = file << 40 | offset; the payload
    // follows a 4 KiB header block).
    let loc = rs[0].slices[0].offset;
    let file = dir.join(format!("shard-0/{:06}.rec", loc >> 40));
    let at = (loc & ((1 << 40) - 1)) + 4096 + 12_345;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .read(true)
        .open(&file)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x40], at).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let e = s.get("victim").unwrap_err();
    assert_eq!(e.code(), ErrorCode::ChecksumMismatch, "{e}");
    assert!(node_metric(&c, "mc_shard_ssd_crc_failures_total") >= 1.0);
    // The shard deleted the corrupt record and reported it: the master forgets that
    // replica, and the object, which had no other, is gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.get("victim").map_err(|e| e.code()) != Err(ErrorCode::ObjectNotFound) {
        assert!(Instant::now() < deadline, "corrupt replica still listed");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(node_metric(&c, "mc_shard_ssd_crc_failures_total"), 1.0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn offload_on_evict_keeps_five_times_the_memory_readable() {
    let Some(dir) = ssd_dir("on-evict") else {
        return;
    };
    let c = cluster_with(&dir, &["--offload_on_evict"]);
    let s = store(&c);
    // 160 MiB through a 32 MB segment: every put that finds no room waits for eviction's
    // SSD copies, and the copies free the memory.
    let n = 160u64;
    for i in 0..n {
        s.put(
            &format!("e{i}"),
            &pattern(MIB, i),
            &ReplicateConfig::default(),
        )
        .unwrap_or_else(|e| panic!("put e{i}: {e}"));
    }
    assert_eq!(kinds(&c, "e0"), [ReplicaKind::LocalDisk]);
    // Copies are made only for objects eviction picked: the newest have none.
    assert_eq!(kinds(&c, &format!("e{}", n - 1)), [ReplicaKind::Memory]);
    let offloads = node_metric(&c, "mc_shard_ssd_offloads_total");
    assert!(
        offloads >= 120.0 && offloads < n as f64,
        "{offloads} offloads for {n} puts"
    );
    for i in 0..n {
        let got = s
            .get(&format!("e{i}"))
            .unwrap_or_else(|e| panic!("e{i}: {e}"));
        assert!(got == pattern(MIB, i), "e{i} read back different bytes");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_ssd_quota_stops_offload_and_memory_puts_keep_working() {
    let Some(dir) = ssd_dir("quota") else { return };
    // Room for three 1 MiB records (each takes 1 MiB + a 4 KiB header block).
    let c = cluster_quota(&dir, &["--enable_offload"], "3500KB");
    let s = store(&c);
    for i in 0..6u64 {
        s.put(
            &format!("q{i}"),
            &pattern(MIB, i),
            &ReplicateConfig::default(),
        )
        .unwrap_or_else(|e| panic!("put q{i} past the SSD quota: {e}"));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while node_metric(&c, "mc_shard_ssd_offloads_total")
        + node_metric(&c, "mc_shard_ssd_offload_errors_total")
        < 6.0
    {
        assert!(Instant::now() < deadline, "offloads did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(node_metric(&c, "mc_shard_ssd_offloads_total"), 3.0);
    assert_eq!(node_metric(&c, "mc_shard_ssd_offload_errors_total"), 3.0);
    assert!(node_metric(&c, "mc_shard_ssd_bytes") <= 3_500_000.0);
    let on_disk = || {
        (0..6u64)
            .filter(|i| kinds(&c, &format!("q{i}")).contains(&ReplicaKind::LocalDisk))
            .count()
    };
    while on_disk() < 3 {
        assert!(
            Instant::now() < deadline,
            "copies not reported to the master"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(on_disk(), 3);
    for i in 0..6u64 {
        assert_eq!(s.get(&format!("q{i}")).unwrap(), pattern(MIB, i));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_restarted_node_serves_its_ssd_objects_again_and_skips_a_torn_tail() {
    let Some(dir) = ssd_dir("restart") else {
        return;
    };
    let mut c = cluster(&dir);
    let s = store(&c);
    for i in 0..4u64 {
        s.put(
            &format!("w{i}"),
            &pattern(MIB, 40 + i),
            &ReplicateConfig::default(),
        )
        .unwrap();
        wait_for_disk_replica(&c, &format!("w{i}"));
    }
    s.put("dead", &pattern(MIB, 9), &ReplicateConfig::default())
        .unwrap();
    wait_for_disk_replica(&c, "dead");
    s.remove("dead", false).unwrap();
    c.kill_node(0);
    c.wait_node_exit(0, Duration::from_secs(10));
    // A torn record at the tail: a header block whose checksum does not match.
    let log = dir.join("shard-0/000000.rec");
    let f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let mut torn = vec![0u8; 4096];
    torn[0..4].copy_from_slice(b"MCSR");
    torn[4] = 1;
    torn[6] = 1;
    std::io::Write::write_all(&mut &f, &torn).unwrap();
    drop(f);
    c.restart_node(0).expect("node restarts");
    c.wait_node_ready(0).expect("node ready");
    assert_eq!(node_metric(&c, "mc_shard_ssd_torn_records_total"), 1.0);
    assert_eq!(node_metric(&c, "mc_shard_ssd_objects"), 4.0);
    // The restarted node reports its SSD records and the master re-adopts them: every
    // object reads back byte-exact from the node's SSD; the removed one stays removed.
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..4u64 {
        let key = format!("w{i}");
        let got = loop {
            match s.get(&key) {
                Ok(v) => break v,
                Err(e) => {
                    assert!(Instant::now() < deadline, "{key} not back: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        assert!(
            got == pattern(MIB, 40 + i),
            "{key} read back different bytes"
        );
    }
    assert!(node_metric(&c, "mc_shard_ssd_reads_total") >= 4.0);
    assert_eq!(s.get("dead").unwrap_err().code(), ErrorCode::ObjectNotFound);
    // New records go after the valid ones, over the torn tail. (Until the master drops
    // the killed node at client_ttl, a put may be placed in its memory and fail.)
    while let Err(e) = s.put("after", &pattern(MIB, 77), &ReplicateConfig::default()) {
        assert!(Instant::now() < deadline, "no put after the restart: {e}");
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for_disk_replica(&c, "after");
    assert_eq!(s.get("after").unwrap(), pattern(MIB, 77));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_hot_object_on_ssd_is_promoted_back_into_memory() {
    let Some(dir) = ssd_dir("promote") else {
        return;
    };
    let c = cluster_with(
        &dir,
        &[
            "--enable_offload",
            "--promotion_on_hit",
            "--promotion_admission_threshold=2",
        ],
    );
    let s = store(&c);
    s.put("hot", &pattern(MIB, 5), &ReplicateConfig::default())
        .unwrap();
    wait_for_disk_replica(&c, "hot");
    fill(&s, 96);
    assert_eq!(kinds(&c, "hot"), [ReplicaKind::LocalDisk]);
    // Room for the promoted copy.
    for i in 90..96 {
        s.remove(&format!("fill-{i}"), true).unwrap();
    }
    // One hit is below the admission threshold: served from SSD, not promoted.
    assert_eq!(s.get("hot").unwrap(), pattern(MIB, 5));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(kinds(&c, "hot"), [ReplicaKind::LocalDisk]);
    // The second is not: the shard copies the record back into memory.
    assert_eq!(s.get("hot").unwrap(), pattern(MIB, 5));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kinds(&c, "hot").contains(&ReplicaKind::Memory) {
        assert!(
            Instant::now() < deadline,
            "not promoted: {:?}",
            kinds(&c, "hot")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        kinds(&c, "hot"),
        [ReplicaKind::Memory, ReplicaKind::LocalDisk]
    );
    assert_eq!(node_metric(&c, "mc_shard_ssd_promotions_total"), 1.0);
    // Reads go to memory again.
    let ssd_reads = node_metric(&c, "mc_shard_ssd_reads_total");
    assert_eq!(s.get("hot").unwrap(), pattern(MIB, 5));
    assert_eq!(node_metric(&c, "mc_shard_ssd_reads_total"), ssd_reads);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_hot_value_of_two_slices_is_promoted_slice_by_slice() {
    let Some(dir) = ssd_dir("promote-big") else {
        return;
    };
    let c = cluster_with(
        &dir,
        &[
            "--enable_offload",
            "--promotion_on_hit",
            "--promotion_admission_threshold=2",
        ],
    );
    let s = store(&c);
    // 20 MiB: a 16 MiB slice and a 4 MiB one.
    let value = pattern(20 * MIB, 9);
    s.put("big", &value, &ReplicateConfig::default()).unwrap();
    wait_for_disk_replica(&c, "big");
    fill(&s, 64);
    assert_eq!(kinds(&c, "big"), [ReplicaKind::LocalDisk]);
    // Room for both slices.
    for i in 0..64 {
        let _ = s.remove(&format!("fill-{i}"), true);
    }
    assert!(s.get("big").unwrap() == value, "first read from SSD");
    assert!(s.get("big").unwrap() == value, "second read from SSD");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kinds(&c, "big").contains(&ReplicaKind::Memory) {
        assert!(
            Instant::now() < deadline,
            "not promoted: {:?}",
            kinds(&c, "big")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        kinds(&c, "big"),
        [ReplicaKind::Memory, ReplicaKind::LocalDisk]
    );
    assert_eq!(node_metric(&c, "mc_shard_ssd_promotions_total"), 2.0);
    // Both slices read from memory now, byte-exact.
    let ssd_reads = node_metric(&c, "mc_shard_ssd_reads_total");
    assert!(s.get("big").unwrap() == value, "read from memory");
    assert_eq!(node_metric(&c, "mc_shard_ssd_reads_total"), ssd_reads);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn disk_eviction_makes_room_for_new_copies_and_the_master_forgets_old_ones() {
    disk_eviction(
        "disk-evict",
        &["--enable_offload"],
        &["--enable_disk_eviction"],
    );
}

/// Mooncake's spelling: the master's flag, sent to the nodes with each offload.
#[test]
fn the_masters_disk_eviction_flag_reaches_the_nodes() {
    disk_eviction(
        "disk-evict-master",
        &["--enable_offload", "--enable_disk_eviction"],
        &[],
    );
}

fn disk_eviction(name: &str, master_args: &[&str], node_args: &[&str]) {
    let Some(dir) = ssd_dir(name) else {
        return;
    };
    // Room for three 1 MiB records; the oldest make way for newer ones.
    let c = cluster_full(&dir, master_args, "3500KB", node_args);
    let s = store(&c);
    for i in 0..6u64 {
        s.put(
            &format!("v{i}"),
            &pattern(MIB, i),
            &ReplicateConfig::default(),
        )
        .unwrap();
        wait_for_disk_replica(&c, &format!("v{i}"));
    }
    assert_eq!(node_metric(&c, "mc_shard_ssd_offloads_total"), 6.0);
    assert_eq!(node_metric(&c, "mc_shard_ssd_evicted_total"), 3.0);
    assert_eq!(node_metric(&c, "mc_shard_ssd_objects"), 3.0);
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..3u64 {
        while kinds(&c, &format!("v{i}")) != [ReplicaKind::Memory] {
            assert!(
                Instant::now() < deadline,
                "v{i}: {:?}",
                kinds(&c, &format!("v{i}"))
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    for i in 3..6u64 {
        assert!(kinds(&c, &format!("v{i}")).contains(&ReplicaKind::LocalDisk));
    }
    for i in 0..6u64 {
        assert_eq!(s.get(&format!("v{i}")).unwrap(), pattern(MIB, i));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_full_disk_stops_offload_and_memory_puts_keep_working() {
    let fs = match mc_cluster::SmallExt4::new(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")),
        "ssd-full",
        24,
    ) {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    // A quota far above the file system: the disk fills before the quota does.
    let c = LocalCluster::start(ClusterSpec {
        nodes: vec![NodeSpec {
            segment_size: "64MB".into(),
            extra_args: vec![
                "--enable_ssd_offload".into(),
                format!("--ssd_offload_path={}", fs.mnt().display()),
                "--ssd_quota_bytes=1GB".into(),
                "--ssd_file_size=64MB".into(),
            ],
            ..NodeSpec::default()
        }],
        master_args: vec!["--enable_offload".into()],
        ..ClusterSpec::default()
    })
    .expect("cluster starts");
    let s = store(&c);
    let n = 40u64;
    for i in 0..n {
        s.put(
            &format!("f{i}"),
            &pattern(MIB, i),
            &ReplicateConfig::default(),
        )
        .unwrap_or_else(|e| panic!("put f{i} on a full disk: {e}"));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = || {
        node_metric(&c, "mc_shard_ssd_offloads_total")
            + node_metric(&c, "mc_shard_ssd_offload_errors_total")
    };
    while done() < n as f64 {
        assert!(
            Instant::now() < deadline,
            "offloads did not finish: {}",
            done()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (ok, failed) = (
        node_metric(&c, "mc_shard_ssd_offloads_total"),
        node_metric(&c, "mc_shard_ssd_offload_errors_total"),
    );
    assert!(failed > 0.0, "a 24 MB disk took {ok} MiB");
    assert!(ok >= 5.0, "only {ok} offloads before the disk filled");
    assert_eq!(node_metric(&c, "mc_shard_ssd_objects"), ok);
    for i in 0..n {
        assert_eq!(s.get(&format!("f{i}")).unwrap(), pattern(MIB, i));
    }
    // One clear line, not one per refused offload.
    let logs = c.logs_tail(10_000);
    assert_eq!(
        logs.matches("offload stops while the SSD is full").count(),
        1,
        "{logs}"
    );
    drop(c);
}

#[test]
fn a_node_restarted_on_the_same_address_replaces_its_old_instance_at_once() {
    let Some(dir) = ssd_dir("same-address") else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let data_port = format!("--data_port={port}");
    let mut c = cluster_full(&dir, &["--enable_offload"], "1GB", &[&data_port]);
    let s = store(&c);
    s.put("kept", &pattern(MIB, 8), &ReplicateConfig::default())
        .unwrap();
    wait_for_disk_replica(&c, "kept");
    c.kill_node(0);
    c.wait_node_exit(0, Duration::from_secs(10));
    c.restart_node(0)
        .expect("node restarts on the same data port");
    c.wait_node_ready(0).expect("node ready");
    // Well within client_ttl (10 s): the old instance's replicas are gone, the SSD copy
    // the new instance reported is the object's only replica.
    let deadline = Instant::now() + Duration::from_secs(5);
    while kinds(&c, "kept") != [ReplicaKind::LocalDisk] {
        assert!(
            Instant::now() < deadline,
            "old instance still listed: {:?}",
            kinds(&c, "kept")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // (The client backs off briefly from an endpoint whose pooled connection died with
    // the old instance.)
    let got = loop {
        match s.get("kept") {
            Ok(v) => break v,
            Err(e) => {
                assert!(Instant::now() < deadline, "kept not readable: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    assert!(got == pattern(MIB, 8));
    // No segment of the dead instance is left for placement.
    for i in 0..10u64 {
        s.put(
            &format!("new-{i}"),
            &pattern(MIB, 90 + i),
            &ReplicateConfig::default(),
        )
        .unwrap_or_else(|e| panic!("put new-{i} after the restart: {e}"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
