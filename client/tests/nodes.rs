//! Store-node behaviour seen through the client: several shards per node, and the agent
//! re-mounting after a master restart.

mod common;

use std::time::{Duration, Instant};

use common::pattern;
use mc_cluster::{ClusterSpec, LocalCluster, NodeSpec};
use mooncake_rs::{ErrorCode, ReplicateConfig};

#[test]
fn a_two_shard_node_stripes_large_values_across_its_shards() {
    let c = LocalCluster::start(ClusterSpec {
        nodes: vec![NodeSpec {
            segment_size: "128MB".into(),
            cores: "2".into(),
            ..NodeSpec::default()
        }],
        ..ClusterSpec::default()
    })
    .expect("cluster starts");
    let s = common::uncached_store(&c);
    let v = pattern(40 << 20, 40);
    s.put("striped", &v, &ReplicateConfig::default()).unwrap();
    let rep = &s.replicas("striped").unwrap()[0];
    assert_eq!(rep.slices.len(), 3);
    let mut segs: Vec<u64> = rep.slices.iter().map(|x| x.segment_id).collect();
    segs.sort();
    segs.dedup();
    assert_eq!(
        segs.len(),
        2,
        "slices should use both shards' segments: {rep:?}"
    );
    let mut eps: Vec<&str> = rep.slices.iter().map(|x| x.endpoint.as_str()).collect();
    eps.sort();
    eps.dedup();
    assert_eq!(eps.len(), 2, "each shard has its own data port");
    assert_eq!(s.get("striped").unwrap(), v);
    // Each shard holds half of the node's memory: 64 MiB each, so 2 × 40 MiB fit, striped.
    s.put(
        "striped-2",
        &pattern(40 << 20, 41),
        &ReplicateConfig::default(),
    )
    .unwrap();
    assert_eq!(s.get("striped-2").unwrap(), pattern(40 << 20, 41));
}

#[test]
fn nodes_remount_after_a_master_restart_and_their_objects_come_back() {
    let mut c = common::cluster(1, "64MB");
    let s = common::uncached_store(&c);
    s.put("before-restart", b"x", &ReplicateConfig::default())
        .unwrap();
    c.kill_master();
    c.restart_master().expect("master restarts");
    // The new master knows nothing; the node's agent notices at its next heartbeat and
    // mounts its segment again, after which puts succeed.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    while Instant::now() < deadline {
        match s.put("after-restart", b"fresh", &ReplicateConfig::default()) {
            Ok(()) => break,
            Err(e) => {
                assert!(
                    matches!(e.code(), ErrorCode::NoAvailableHandle | ErrorCode::RpcFail),
                    "unexpected error while the node re-mounts: {e}"
                );
                last = Some(e);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    assert_eq!(
        s.get("after-restart").unwrap(),
        b"fresh",
        "no re-mount within 60 s (last error: {last:?})\n{}",
        c.logs_tail(20)
    );
    // The restarted master re-adopted what the node holds.
    assert_eq!(s.get("before-restart").unwrap(), b"x");
}
