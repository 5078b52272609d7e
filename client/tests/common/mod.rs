//! Shared set-up of the client integration tests: a real master and store nodes started as
//! child processes on run-time ports, killed when the returned cluster drops.

#![allow(dead_code)]

use mc_cluster::{ClusterSpec, LocalCluster, NodeSpec};
use mooncake_rs::{Store, StoreConfig};

/// Starts a master and `nodes` store nodes with `segment_size` each.
pub fn cluster(nodes: usize, segment_size: &str) -> LocalCluster {
    let spec = ClusterSpec {
        nodes: (0..nodes)
            .map(|_| NodeSpec {
                segment_size: segment_size.to_string(),
                ..NodeSpec::default()
            })
            .collect(),
        ..ClusterSpec::default()
    };
    LocalCluster::start(spec).unwrap_or_else(|e| panic!("cluster did not start: {e}"))
}

/// A client of `c`.
pub fn store(c: &LocalCluster) -> Store {
    Store::connect(StoreConfig::new(c.master_addr())).expect("client connects")
}

/// A client of `c` without a location cache: every get asks the master, for tests that
/// check what the master knows.
pub fn uncached_store(c: &LocalCluster) -> Store {
    Store::connect(StoreConfig {
        location_cache_entries: 0,
        ..StoreConfig::new(c.master_addr())
    })
    .expect("client connects")
}

/// Starts a put at the master by hand (as client 99): returns its first replica's slices,
/// each with its write token.
pub fn put_start(c: &LocalCluster, key: &str, len: u64) -> Vec<mc_schema::msg::SliceDesc> {
    use mc_schema::msg::{Request, ResponseBody};
    use std::time::{Duration, Instant};
    let mut rpc = mc_rpc::RpcClient::connect(
        &c.master_addr(),
        mc_schema::handshake::Role::Client,
        "mooncake_cluster",
        Duration::from_secs(2),
    )
    .unwrap();
    let req = Request::PutStart {
        client_id: 99,
        client_host: String::new(),
        items: vec![(key.to_string(), len)],
        config: mc_schema::msg::ReplicateConfig::default(),
    };
    match rpc
        .call(&req, Instant::now() + Duration::from_secs(10))
        .unwrap()
        .body
    {
        ResponseBody::PutStart(v) => v[0].replicas[0].slices.clone(),
        other => panic!("unexpected answer {other:?}"),
    }
}

/// Deterministic, position-dependent bytes (so misplaced slices are caught).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Waits until every thread of `pid` and of its children (a node's `dataplane` and `agent`
/// processes) is stopped (after SIGSTOP, which `kill` only queues).
pub fn wait_stopped(pid: u32) {
    let mut pids = vec![pid];
    pids.extend(
        mc_cluster::children::children(pid)
            .into_iter()
            .map(|(p, _)| p),
    );
    for p in pids {
        wait_threads_stopped(p);
    }
}

fn wait_threads_stopped(pid: u32) {
    let all_stopped = || {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return false;
        };
        tasks.flatten().all(|t| {
            std::fs::read_to_string(t.path().join("stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(") ")
                        .map(|(_, rest)| rest.starts_with(['T', 't']))
                })
                .unwrap_or(false)
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !all_stopped() {
        assert!(
            std::time::Instant::now() < deadline,
            "process {pid} did not stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Sum of every sample of `family` in the Prometheus text at `addr`/metrics.
pub fn metric_sum(addr: &str, family: &str) -> f64 {
    let body = mc_cluster::probe::http_get(addr, "/metrics", std::time::Duration::from_secs(5))
        .expect("metrics answer")
        .body;
    body.lines()
        .filter(|l| l.starts_with(family) && l[family.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
