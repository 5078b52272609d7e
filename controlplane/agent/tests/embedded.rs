//! A store node embedded in this process through `node::start` / `NodeHandle`, as the
//! Python binding uses it: ephemeral REST port, segments on the handle, and a stop (or a
//! drop) that leaves the cluster.

use std::time::{Duration, Instant};

use mc_agent::StoreConfig;
use mc_agent::node::{self, NodeError};
use mc_cluster::{ClusterSpec, LocalCluster, probe};
use mc_schema::agent::SegmentKind;

fn master() -> LocalCluster {
    LocalCluster::start(ClusterSpec::with_nodes(0)).expect("master starts")
}

fn config(c: &LocalCluster) -> StoreConfig {
    let args = vec![
        "mooncake_store".to_string(),
        format!("--master_server={}", c.master_addr()),
        "--local_hostname=127.0.0.1".into(),
        "--rest_host=127.0.0.1".into(),
        "--port=0".into(),
        "--cores=1".into(),
        "--global_segment_size=32MB".into(),
    ];
    StoreConfig::try_from_args(args).expect("flags parse")
}

fn master_segments(c: &LocalCluster) -> Vec<String> {
    let r = probe::http_get(
        &c.metrics_addr(),
        "/get_all_segments",
        Duration::from_secs(5),
    )
    .unwrap();
    r.body.lines().map(str::to_string).collect()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_started_node_mounts_serves_rest_and_leaves_on_stop() {
    let c = master();
    let node = node::start(config(&c)).expect("node starts");
    let addr = node.rest_addr();
    assert_ne!(addr.port(), 0, "the bound port is reported");
    let segs = node.segments();
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].kind, SegmentKind::Startup);
    assert_eq!(segs[0].name, segs[0].endpoint);
    assert_eq!(segs[0].size_bytes, 32 << 20);

    wait_until("the segment to mount", || node.mounted_segments() == 1);
    assert_eq!(master_segments(&c), vec![segs[0].name.clone()]);
    let h = probe::http_get(&addr.to_string(), "/health", Duration::from_secs(5)).unwrap();
    assert_eq!(h.status, 200);
    assert_eq!(probe::json_u64_field(&h.body, "mounted_segments"), Some(1));

    node.stop();
    assert!(master_segments(&c).is_empty(), "stop unmounts");
    assert!(
        probe::http_get(&addr.to_string(), "/health", Duration::from_secs(2)).is_err(),
        "the REST server is gone"
    );
}

#[test]
fn dropping_the_handle_stops_the_node_and_two_nodes_share_a_process() {
    let c = master();
    let a = node::start(config(&c)).expect("first node");
    let b = node::start(config(&c)).expect("second node");
    assert_ne!(a.rest_addr(), b.rest_addr());
    wait_until("both nodes to mount", || {
        a.mounted_segments() == 1 && b.mounted_segments() == 1
    });
    assert_eq!(master_segments(&c).len(), 2);
    drop(a);
    assert_eq!(master_segments(&c), vec![b.segments()[0].name.clone()]);
    drop(b);
    assert!(master_segments(&c).is_empty());
}

#[test]
fn start_refuses_bad_settings_and_a_later_start_works() {
    let c = master();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut cfg = config(&c);
    cfg.port = port;
    let err = node::start(cfg)
        .err()
        .expect("a taken REST port is refused");
    assert!(matches!(err, NodeError::Rest { .. }), "{err}");
    let mut cfg = config(&c);
    cfg.global_segment_size = 1 << 20;
    let err = node::start(cfg)
        .err()
        .expect("a too small segment is refused");
    assert!(matches!(err, NodeError::Config(_)), "{err}");
    // The failed starts released what they had bound: a node starts afterwards.
    let node = node::start(config(&c)).expect("node starts");
    wait_until("the segment to mount", || node.mounted_segments() == 1);
    node.stop();
}
