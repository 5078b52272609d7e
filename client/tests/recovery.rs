//! Recovery from what the nodes hold (issue 12): a master killed with -9 and started again
//! re-adopts every committed object from the nodes' object indexes, byte-exact; removes are
//! not undone; a put the master never committed is adopted when complete and dropped when
//! not; a writer of the dead master's term can no longer write.
//!
//! Nodes run on distinct loopback addresses, each its own failure domain, with two shards
//! each so large values are striped.

mod common;

use std::time::{Duration, Instant};

use common::{pattern, put_start};
use mc_cluster::{ClusterSpec, LocalCluster, NodeSpec};
use mc_transfer::{DataConn, ObjectInfo};
use mooncake_rs::{ErrorCode, ReplicateConfig, Store, StoreConfig};

fn cluster(nodes: usize) -> LocalCluster {
    let spec = ClusterSpec {
        nodes: (0..nodes)
            .map(|i| NodeSpec {
                host: format!("127.0.0.{}", i + 2),
                segment_size: "256MB".into(),
                cores: "2".into(),
                extra_args: vec!["--heartbeat_interval=300ms".into()],
                ..NodeSpec::default()
            })
            .collect(),
        ..ClusterSpec::default()
    };
    LocalCluster::start(spec).unwrap_or_else(|e| panic!("cluster did not start: {e}"))
}

fn client(c: &LocalCluster) -> Store {
    Store::connect(StoreConfig {
        rpc_timeout: Duration::from_secs(10),
        // These tests check what the master knows: reads must not bypass it through the
        // location cache.
        location_cache_entries: 0,
        ..StoreConfig::new(c.master_addr())
    })
    .expect("client connects")
}

fn two() -> ReplicateConfig {
    ReplicateConfig {
        replica_num: 2,
        ..ReplicateConfig::default()
    }
}

/// Kills the master with SIGKILL, starts it again and waits until `probe` reads back (the
/// nodes re-mount and report within a few heartbeats).
fn kill_and_restart(c: &mut LocalCluster, s: &Store, probe: &str) {
    c.kill_master();
    c.restart_master().expect("master restarts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.get(probe).is_err() {
        assert!(
            Instant::now() < deadline,
            "{probe} not back within 60 s\n{}",
            c.logs_tail(30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sum of one gauge over a node's shards, from its `/metrics`.
fn node_gauge(c: &LocalCluster, node: usize, name: &str) -> f64 {
    let body =
        mc_cluster::probe::http_get(&c.node_rest_addr(node), "/metrics", Duration::from_secs(5))
            .expect("node /metrics answers")
            .body;
    body.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_restarted_master_gets_every_committed_object_back_byte_exact() {
    let mut c = cluster(3);
    let s = client(&c);
    let mut want: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..300u64 {
        let key = format!("obj/{i}");
        let v = pattern(1 + (i as usize * 337) % 100_000, i);
        s.put(&key, &v, &two()).unwrap();
        want.push((key, v));
    }
    // Striped over the shards of each node: 3 slices per replica.
    for i in 0..3u64 {
        let key = format!("big/{i}");
        let v = pattern(40 << 20, 1000 + i);
        s.put(&key, &v, &two()).unwrap();
        want.push((key, v));
    }
    let pinned = ReplicateConfig {
        with_hard_pin: true,
        ..ReplicateConfig::default()
    };
    s.put("pinned", b"keep me", &pinned).unwrap();
    want.push(("pinned".into(), b"keep me".to_vec()));
    // A replaced value comes back as the new one; removed keys stay removed.
    s.upsert("obj/7", b"the new value", &two()).unwrap();
    want[7].1 = b"the new value".to_vec();
    let removed: Vec<String> = (100..120).map(|i| format!("obj/{i}")).collect();
    for k in &removed {
        s.remove(k, true).unwrap();
    }
    want.retain(|(k, _)| !removed.contains(k));

    kill_and_restart(&mut c, &s, "obj/0");
    for (k, v) in &want {
        assert_eq!(&s.get(k).unwrap_or_else(|e| panic!("{k}: {e}")), v, "{k}");
    }
    for k in &removed {
        assert_eq!(
            s.get(k).unwrap_err().code(),
            ErrorCode::ObjectNotFound,
            "{k}"
        );
    }
    // Both replicas of a replicated object are known again.
    assert_eq!(s.replicas("obj/1").unwrap().len(), 2);
    assert_eq!(s.replicas("big/1").unwrap().len(), 2);
    // The restarted master serves as before.
    s.put("after", b"fresh", &two()).unwrap();
    assert_eq!(s.get("after").unwrap(), b"fresh");
    s.remove("obj/1", true).unwrap();
    // And a second restart still has everything (the first one's adoption was recorded in
    // the nodes' indexes through its commit notices).
    kill_and_restart(&mut c, &s, "after");
    assert_eq!(s.get("obj/2").unwrap(), want[2].1);
    assert_eq!(
        s.get("obj/1").unwrap_err().code(),
        ErrorCode::ObjectNotFound
    );
}

/// Writes slice `i` of `value` under `key` as the client would, object info included.
fn write_slice(
    slices: &[mc_schema::msg::SliceDesc],
    i: usize,
    key: &str,
    value: &[u8],
) -> Result<(), mc_transfer::TransferError> {
    let s = &slices[i];
    let at = i * (16 << 20);
    let data = &value[at..at + s.length as usize];
    let info = ObjectInfo {
        object_size: value.len() as u64,
        put_generation: slices[0].generation,
        slice_index: i as u32,
        slice_count: slices.len() as u32,
        replica_index: 0,
        pins: 0,
    };
    let mut conn = DataConn::connect(&s.endpoint, "mooncake_cluster", Duration::from_secs(2))?;
    conn.arm_deadline(Instant::now() + Duration::from_secs(10))?;
    let crc = mc_schema::checksum::crc32c(data);
    let id = conn.send_object_write(
        (s.segment_id, s.offset, s.generation),
        data,
        crc,
        s.token.as_ref(),
        Some((&info, key)),
    )?;
    conn.recv_write_ack(id)
}

/// Index entries over every shard of every node.
fn index_entries(c: &LocalCluster) -> f64 {
    (0..c.node_count())
        .map(|n| node_gauge(c, n, "mc_shard_index_entries"))
        .sum()
}

#[test]
fn puts_the_dead_master_never_committed_are_adopted_when_complete_and_dropped_when_not() {
    let mut c = cluster(1);
    let s = client(&c);
    s.put("committed", b"ordinary", &ReplicateConfig::default())
        .unwrap();
    // Every slice written, PutEnd never sent: the bytes are all there and checked.
    let whole = pattern(20 << 20, 1);
    let slices = put_start(&c, "written", whole.len() as u64);
    assert_eq!(slices.len(), 2);
    for i in 0..2 {
        write_slice(&slices, i, "written", &whole).unwrap();
    }
    // Only the first of two slices written: nothing readable can come of it.
    let half = pattern(20 << 20, 2);
    let partial = put_start(&c, "partial", half.len() as u64);
    write_slice(&partial, 0, "partial", &half).unwrap();
    assert_eq!(index_entries(&c), 4.0);

    kill_and_restart(&mut c, &s, "committed");
    assert_eq!(s.get("written").unwrap(), whole);
    assert_eq!(
        s.get("partial").unwrap_err().code(),
        ErrorCode::ObjectNotFound
    );
    // The node was told to forget the incomplete slice, and its space is reusable.
    let deadline = Instant::now() + Duration::from_secs(30);
    while index_entries(&c) != 3.0 {
        assert!(
            Instant::now() < deadline,
            "the partial slice stays indexed ({} entries)\n{}",
            index_entries(&c),
            c.logs_tail(40)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    s.put("partial", &half, &ReplicateConfig::default())
        .unwrap();
    assert_eq!(s.get("partial").unwrap(), half);
}

#[test]
fn a_writer_of_the_dead_masters_term_can_no_longer_write() {
    let mut c = cluster(1);
    let s = client(&c);
    let stale = put_start(&c, "stale", 4096);
    kill_and_restart_empty(&mut c, &s);
    // The new master gave the same bytes to someone else.
    let fresh = pattern(4096, 9);
    s.put("fresh", &fresh, &ReplicateConfig::default()).unwrap();
    // The old writer's allocation is of the old term: refused, and no byte changes.
    let e = write_slice(&stale, 0, "stale", &pattern(4096, 10)).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidVersion, "{e}");
    assert_eq!(s.get("fresh").unwrap(), fresh);
    assert_eq!(
        s.get("stale").unwrap_err().code(),
        ErrorCode::ObjectNotFound
    );
}

/// [`kill_and_restart`] for a cluster with nothing to read back: waits until a put works.
fn kill_and_restart_empty(c: &mut LocalCluster, s: &Store) {
    c.kill_master();
    c.restart_master().expect("master restarts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.put("probe", b"p", &ReplicateConfig::default()).is_err() {
        assert!(
            Instant::now() < deadline,
            "no put within 60 s\n{}",
            c.logs_tail(30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
