//! An HA cluster for the scenarios: a real coordinator, two masters electing on it, store
//! nodes and clients following its locator. Everything is killed when it drops.

use std::time::{Duration, Instant};

use mc_cluster::probe::http_get;
use mc_cluster::{ClusterSpec, Coordinator, CoordinatorKind, LocalCluster, NodeSpec};
use mooncake_rs::{Store, StoreConfig};
use serde_json::Value;

/// Generous bound on events that take about a TTL on an idle machine.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The cluster and its coordinator; fields drop in this order (processes first).
pub struct Ha {
    pub cluster: LocalCluster,
    pub coord: Coordinator,
}

/// Two HA masters with a view lease of `ttl_s` seconds and `nodes` store nodes, on `kind`.
pub fn ha_cluster(kind: CoordinatorKind, ttl_s: u64, nodes: usize) -> Ha {
    ha_cluster_with(kind, ttl_s, nodes, &[])
}

/// [`ha_cluster`] with `extra` flags for both masters.
pub fn ha_cluster_with(kind: CoordinatorKind, ttl_s: u64, nodes: usize, extra: &[String]) -> Ha {
    let coord = Coordinator::start(kind).unwrap_or_else(|e| panic!("coordinator: {e}"));
    let mut master_args = coord.master_args();
    master_args.push(format!("--master_view_lease_ttl_sec={ttl_s}"));
    master_args.extend(extra.iter().cloned());
    let spec = ClusterSpec {
        masters: 2,
        master_args,
        master_server: Some(coord.locator()),
        nodes: (0..nodes)
            .map(|i| NodeSpec {
                host: format!("127.0.0.{}", i + 2),
                segment_size: "64MB".into(),
                extra_args: vec![
                    "--heartbeat_interval=300ms".into(),
                    "--rpc_timeout=3000".into(),
                ],
                ..NodeSpec::default()
            })
            .collect(),
        ..ClusterSpec::default()
    };
    let cluster = LocalCluster::start(spec).unwrap_or_else(|e| panic!("cluster: {e}"));
    Ha { cluster, coord }
}

impl Ha {
    /// A client following the coordinator, with short deadlines.
    pub fn client(&self) -> Store {
        self.client_at(&self.coord.locator())
    }

    /// A client of `master_addr` (a locator or one master's address).
    pub fn client_at(&self, master_addr: &str) -> Store {
        Store::connect(StoreConfig {
            connect_timeout: Duration::from_secs(2),
            rpc_timeout: Duration::from_secs(3),
            transfer_timeout: Duration::from_secs(2),
            // What survives a failover is what the new leader knows: no location cache.
            location_cache_entries: 0,
            ..StoreConfig::new(master_addr)
        })
        .unwrap_or_else(|e| panic!("client of {master_addr}: {e}\n{}", self.logs()))
    }

    /// Master `i`'s `/health`, or `Null` when it does not answer.
    pub fn health(&self, i: usize) -> Value {
        http_get(
            &self.cluster.metrics_addr_of(i),
            "/health",
            Duration::from_secs(2),
        )
        .ok()
        .and_then(|r| serde_json::from_str(&r.body).ok())
        .unwrap_or(Value::Null)
    }

    /// The master that serves now, if exactly one does.
    pub fn serving(&self) -> Option<usize> {
        let serving: Vec<usize> = (0..self.cluster.master_count())
            .filter(|&i| self.health(i)["ha_state"] == "serving")
            .collect();
        (serving.len() == 1).then(|| serving[0])
    }

    /// Waits for a serving master other than `not`, failing the test after [`PATIENCE`].
    pub fn wait_serving(&self, not: Option<usize>) -> usize {
        let found = eventually(PATIENCE, || self.serving().filter(|&i| Some(i) != not));
        found.unwrap_or_else(|| panic!("no master took over\n{}", self.logs()))
    }

    /// Every child's log tail, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "{}\n==> coordinator <==\n{}",
            self.cluster.logs_tail(30),
            self.coord.log_tail(10)
        )
    }
}

/// Polls `f` every 50 ms until it yields, for at most `within`.
pub fn eventually<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Puts `value` under `key` and reads it back, retrying (the new leader needs the nodes to
/// re-mount first) for at most [`PATIENCE`]; returns when the first round trip succeeded.
pub fn round_trip_eventually(s: &Store, key: &str, value: &[u8]) -> Instant {
    let cfg = mooncake_rs::ReplicateConfig::default();
    let mut last = None;
    let mut attempt = 0;
    let ok = eventually(PATIENCE, || {
        attempt += 1;
        let k = format!("{key}-{attempt}");
        let r = s.put(&k, value, &cfg).and_then(|()| s.get(&k));
        match r {
            Ok(v) => {
                assert_eq!(v, value, "{k}: wrong bytes");
                Some(Instant::now())
            }
            Err(e) => {
                last = Some(e);
                None
            }
        }
    });
    ok.unwrap_or_else(|| panic!("{key}: no round trip within {PATIENCE:?}: {last:?}"))
}

/// Instantiates a scenario for both coordinators.
macro_rules! on_both {
    ($scenario:ident) => {
        mod $scenario {
            #[test]
            fn etcd() {
                super::$scenario(mc_cluster::CoordinatorKind::Etcd)
            }
            #[test]
            fn redis() {
                super::$scenario(mc_cluster::CoordinatorKind::Redis)
            }
        }
    };
}
pub(crate) use on_both;
