//! Replication and failures (issue 3): replicas on distinct hosts, reads that survive dead
//! and stalled nodes, node liveness, graceful stops, and never a wrong byte.
//!
//! Nodes run on distinct loopback addresses (127.0.0.2, 127.0.0.3, ...), each its own host
//! and so its own failure domain.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::pattern;
use mc_cluster::{ClusterSpec, LocalCluster, NodeSpec};
use mooncake_rs::{ErrorCode, ReplicateConfig, Store, StoreConfig};

const CLIENT_TTL: &str = "--client_ttl=3";

fn hosts_cluster(n: usize, segment: &str) -> LocalCluster {
    let spec = ClusterSpec {
        nodes: (0..n)
            .map(|i| NodeSpec {
                host: format!("127.0.0.{}", i + 2),
                segment_size: segment.to_string(),
                extra_args: vec!["--heartbeat_interval=300ms".into()],
                ..NodeSpec::default()
            })
            .collect(),
        master_args: vec![CLIENT_TTL.into()],
        ..ClusterSpec::default()
    };
    LocalCluster::start(spec).unwrap_or_else(|e| panic!("cluster did not start: {e}"))
}

fn client(c: &LocalCluster) -> Store {
    Store::connect(StoreConfig {
        connect_timeout: Duration::from_secs(1),
        transfer_timeout: Duration::from_secs(2),
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

fn replica_hosts(s: &Store, key: &str) -> Vec<String> {
    s.replicas(key)
        .unwrap()
        .iter()
        .map(|r| {
            let hosts: HashSet<&str> = r
                .slices
                .iter()
                .map(|x| x.endpoint.rsplit_once(':').unwrap().0)
                .collect();
            assert_eq!(hosts.len(), 1, "a replica stays on one host: {r:?}");
            hosts.into_iter().next().unwrap().to_string()
        })
        .collect()
}

/// Polls `f` until it returns true, for at most `secs` seconds.
fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn replicas_land_on_distinct_hosts_and_survive_a_killed_node() {
    let mut c = hosts_cluster(3, "128MB");
    let s = client(&c);
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        s.put(k, &pattern(5000 + i, i as u64), &two()).unwrap();
        let hosts = replica_hosts(&s, k);
        assert_eq!(hosts.len(), 2);
        assert_ne!(hosts[0], hosts[1], "{k}: both replicas on {}", hosts[0]);
    }
    let big = pattern(40 << 20, 77);
    s.put("big", &big, &two()).unwrap();
    assert_eq!(replica_hosts(&s, "big").len(), 2);
    c.kill_node(0);
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            s.get(k).unwrap(),
            pattern(5000 + i, i as u64),
            "{k} after kill -9"
        );
    }
    assert_eq!(s.get("big").unwrap(), big, "big after kill -9 of 127.0.0.2");
}

#[test]
fn either_holder_of_a_large_object_may_die() {
    for victim in 0..2 {
        let mut c = hosts_cluster(2, "128MB");
        let s = client(&c);
        let big = pattern(40 << 20, 5);
        s.put("big", &big, &two()).unwrap();
        assert_eq!(replica_hosts(&s, "big").len(), 2);
        c.kill_node(victim);
        assert_eq!(s.get("big").unwrap(), big, "after killing node {victim}");
    }
}

#[test]
fn losing_every_holder_fails_cleanly_then_the_object_goes() {
    let mut c = hosts_cluster(2, "64MB");
    let s = client(&c);
    s.put("gone", &pattern(100_000, 1), &two()).unwrap();
    c.kill_node(0);
    c.kill_node(1);
    // The master still lists the replicas until client_ttl: TRANSFER_FAIL, never bytes.
    let e = s.get("gone").unwrap_err();
    assert_eq!(e.code(), ErrorCode::TransferFail, "{e}");
    let mut buf = vec![0u8; 100_000];
    assert!(s.get_into("gone", &mut buf).is_err());
    // Once the master drops the silent nodes, the object is gone.
    assert!(
        eventually(30, || s.get("gone").map_err(|e| e.code())
            == Err(ErrorCode::ObjectNotFound)),
        "object still listed after client_ttl\n{}",
        c.logs_tail(20)
    );
    // A restarted node re-mounts by itself, empty, and takes new objects.
    c.restart_node(0).expect("node restarts");
    assert!(eventually(30, || s
        .put("again", b"fresh", &ReplicateConfig::default())
        .is_ok()));
    assert_eq!(s.get("again").unwrap(), b"fresh");
    assert_eq!(s.get("gone").unwrap_err().code(), ErrorCode::ObjectNotFound);
}

#[test]
fn fewer_hosts_than_replicas_still_places_on_distinct_segments() {
    let c = LocalCluster::start(ClusterSpec {
        nodes: vec![NodeSpec {
            host: "127.0.0.2".into(),
            segment_size: "128MB".into(),
            cores: "2".into(),
            ..NodeSpec::default()
        }],
        ..ClusterSpec::default()
    })
    .expect("cluster starts");
    // Without put credit: a credit placed for the next put would count as well.
    let s = Store::connect(StoreConfig {
        put_credit_bytes: 0,
        ..StoreConfig::new(c.master_addr())
    })
    .unwrap();
    let three = ReplicateConfig {
        replica_num: 3,
        ..ReplicateConfig::default()
    };
    // One host with two shards: best effort gives two replicas on distinct segments.
    s.put("k", &pattern(1000, 1), &three).unwrap();
    let reps = s.replicas("k").unwrap();
    assert_eq!(reps.len(), 2, "{reps:?}");
    assert_ne!(reps[0].slices[0].segment_id, reps[1].slices[0].segment_id);
    assert_eq!(s.get("k").unwrap(), pattern(1000, 1));
    // The master counts replicas that had to share a host.
    let health =
        mc_cluster::probe::http_get(&c.metrics_addr(), "/health", Duration::from_secs(5)).unwrap();
    let shared = mc_cluster::probe::json_u64_field(&health.body, "shared_host_replicas_total");
    assert_eq!(shared, Some(1), "{}", health.body);
}

#[test]
fn a_stalled_node_makes_gets_fall_over_to_the_other_replica() {
    let mut c = hosts_cluster(2, "64MB");
    let s = client(&c);
    let keys: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        s.put(k, &pattern(20_000, i as u64), &two()).unwrap();
    }
    c.signal_node(0, libc::SIGSTOP);
    common::wait_stopped(c.node_pid(0).expect("node runs"));
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            s.get(k).unwrap(),
            pattern(20_000, i as u64),
            "{k} with a stalled holder"
        );
    }
    c.signal_node(0, libc::SIGCONT);
}

#[test]
fn a_put_whose_transfer_fails_on_one_replica_commits_the_other() {
    let mut c = hosts_cluster(2, "64MB");
    let s = client(&c);
    s.put("warm", b"x", &two()).unwrap();
    // Kill a node without the master noticing yet (client_ttl is 3 s): PutStart still
    // places a replica there, its transfer fails, and only the good replica is committed.
    c.kill_node(0);
    let v = pattern(50_000, 9);
    s.put("half", &v, &two()).unwrap();
    let hosts = replica_hosts(&s, "half");
    assert_eq!(hosts, vec!["127.0.0.3".to_string()]);
    assert_eq!(s.get("half").unwrap(), v);
    // With every holder dead the put fails and leaves nothing readable.
    c.kill_node(1);
    let e = s.put("none", &v, &two()).unwrap_err();
    assert!(
        matches!(
            e.code(),
            ErrorCode::TransferFail | ErrorCode::NoAvailableHandle
        ),
        "{e}"
    );
    assert_eq!(s.get("none").unwrap_err().code(), ErrorCode::ObjectNotFound);
}

#[test]
fn sigterm_on_a_node_drains_it_and_loses_no_acknowledged_object() {
    let mut c = hosts_cluster(3, "256MB");
    let s = Arc::new(client(&c));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Acquire) || i < 50 {
                let k = format!("w{i}");
                if s.put(&k, &pattern(30_000, i), &two()).is_ok() {
                    acked.push(i);
                }
                i += 1;
            }
            acked
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    c.signal_node(0, libc::SIGTERM);
    let status = c
        .wait_node_exit(0, Duration::from_secs(60))
        .expect("node exits after SIGTERM");
    assert!(
        status.success(),
        "SIGTERM exit status {status:?}\n{}",
        c.logs_tail(30)
    );
    stop.store(true, Ordering::Release);
    let acked = writer.join().unwrap();
    assert!(!acked.is_empty());
    for i in &acked {
        assert_eq!(
            s.get(&format!("w{i}")).unwrap(),
            pattern(30_000, *i),
            "acked w{i}"
        );
    }
    // New puts go to the remaining nodes only.
    for i in 0..10 {
        let k = format!("after{i}");
        s.put(&k, &pattern(1000, i), &two()).unwrap();
        assert!(!replica_hosts(&s, &k).contains(&"127.0.0.2".to_string()));
    }
}

#[test]
fn sigterm_on_the_master_exits_zero_and_clients_get_errors_not_hangs() {
    let mut c = hosts_cluster(1, "64MB");
    let s = client(&c);
    s.put("k", b"v", &ReplicateConfig::default()).unwrap();
    c.signal_master(libc::SIGTERM);
    let status = c
        .wait_master_exit(Duration::from_secs(30))
        .expect("master exits");
    assert!(status.success(), "{status:?}\n{}", c.logs_tail(20));
    // A key whose location the client knows is still read straight from its node...
    assert_eq!(s.get("k").unwrap(), b"v");
    // ...anything that needs the master fails with an error, not a hang.
    let e = s.get("never-seen").unwrap_err();
    assert!(
        matches!(e.code(), ErrorCode::RpcFail | ErrorCode::RpcTimeout),
        "{e}"
    );
}

#[test]
fn preferred_segments_and_bare_hosts_are_tried_first() {
    let c = hosts_cluster(3, "64MB");
    let s = client(&c);
    for i in 0..10 {
        let k = format!("p{i}");
        let cfg = ReplicateConfig {
            preferred_segments: vec!["127.0.0.4".into()],
            ..ReplicateConfig::default()
        };
        s.put(&k, b"v", &cfg).unwrap();
        assert_eq!(replica_hosts(&s, &k), vec!["127.0.0.4".to_string()]);
    }
    // An exact segment name (host:port) works too, and a second replica goes elsewhere.
    s.put("probe", b"v", &ReplicateConfig::default()).unwrap();
    let seg = s.replicas("probe").unwrap()[0].slices[0].endpoint.clone();
    let cfg = ReplicateConfig {
        replica_num: 2,
        preferred_segments: vec![seg.clone()],
        ..ReplicateConfig::default()
    };
    s.put("exact", b"v", &cfg).unwrap();
    let reps = s.replicas("exact").unwrap();
    assert_eq!(reps[0].slices[0].endpoint, seg);
    assert_ne!(replica_hosts(&s, "exact")[0], replica_hosts(&s, "exact")[1]);
}

#[test]
fn batches_survive_a_killed_node_key_by_key() {
    let mut c = hosts_cluster(3, "128MB");
    let s = client(&c);
    let values: Vec<(String, Vec<u8>)> = (0..24)
        .map(|i| (format!("b{i}"), pattern(1000 + i * 5000, i as u64)))
        .collect();
    let items: Vec<(&str, &[u8])> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    assert!(s.put_batch(&items, &two()).iter().all(|r| r.is_ok()));
    c.kill_node(1);
    let keys: Vec<&str> = values.iter().map(|(k, _)| k.as_str()).collect();
    for (got, (k, v)) in s.get_batch(&keys).into_iter().zip(&values) {
        assert_eq!(&got.unwrap_or_else(|e| panic!("{k}: {e}")), v, "{k}");
    }
    // A batch put with a dead holder still commits every key on its live replicas.
    let more: Vec<(String, Vec<u8>)> = (0..12)
        .map(|i| (format!("m{i}"), pattern(3000, 100 + i)))
        .collect();
    let items: Vec<(&str, &[u8])> = more
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    for (r, (k, _)) in s.put_batch(&items, &two()).into_iter().zip(&more) {
        r.unwrap_or_else(|e| panic!("{k}: {e}"));
        assert!(
            !replica_hosts(&s, k).contains(&"127.0.0.3".to_string()),
            "{k} kept a dead replica"
        );
    }
    let keys: Vec<&str> = more.iter().map(|(k, _)| k.as_str()).collect();
    for (got, (k, v)) in s.get_batch(&keys).into_iter().zip(&more) {
        assert_eq!(&got.unwrap(), v, "{k}");
    }
}
