//! What scenarios share: starting clusters, clients with short deadlines, the master's
//! health, and a run's result.

use std::time::{Duration, Instant};

use mc_cluster::probe::http_get;
use mc_cluster::{ClusterSpec, LocalCluster, NodeSpec};
use mooncake_rs::{Store, StoreConfig};

use crate::ledger::Tally;

/// The outcome of one run that happened.
#[derive(Debug, Default)]
pub struct Done {
    /// Lost and wrong objects.
    pub tally: Tally,
    /// Time to recover (0 where the scenario has no outage).
    pub recover: Duration,
    /// Targets other than lost/wrong that were missed (a hung port, a wrong error code).
    pub problems: Vec<String>,
}

/// One run: done, or skipped (e.g. a tool it needs is missing).
#[derive(Debug)]
pub enum Run {
    /// The run happened.
    Done(Done),
    /// The run could not happen, and why.
    Skipped(String),
}

/// A store node on `host` with a `size` segment and one shard (so its memory is one
/// memfd, `mc-seg-0`), plus `extra` flags.
pub fn node(host: &str, size: &str, extra: &[&str]) -> NodeSpec {
    NodeSpec {
        segment_size: size.into(),
        cores: "1".into(),
        extra_args: extra.iter().map(|s| s.to_string()).collect(),
        ..NodeSpec::on_host(host)
    }
}

/// Starts a cluster with these nodes and master flags.
pub fn start(nodes: Vec<NodeSpec>, master_args: &[&str]) -> anyhow::Result<LocalCluster> {
    let spec = ClusterSpec {
        nodes,
        master_args: master_args.iter().map(|s| s.to_string()).collect(),
        ..ClusterSpec::default()
    };
    LocalCluster::start(spec).map_err(|e| anyhow::anyhow!("cluster did not start: {e}"))
}

/// A client of `master` with short deadlines, so a dead or stalled peer costs little.
pub fn client(master: &str) -> anyhow::Result<Store> {
    Ok(Store::connect(StoreConfig {
        connect_timeout: Duration::from_secs(1),
        rpc_timeout: Duration::from_secs(3),
        transfer_timeout: Duration::from_secs(1),
        // Survival is judged by what the cluster (the master) still serves, not by
        // locations a client remembers.
        location_cache_entries: 0,
        ..StoreConfig::new(master)
    })?)
}

/// The master's `/health` as JSON, `Null` when it does not answer.
pub fn health(metrics_addr: &str) -> serde_json::Value {
    http_get(metrics_addr, "/health", Duration::from_secs(2))
        .ok()
        .and_then(|r| serde_json::from_str(&r.body).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// Polls `f` every 50 ms until it holds or `patience` passes; returns when it held.
pub fn wait_until(patience: Duration, mut f: impl FnMut() -> bool) -> Option<Instant> {
    let deadline = Instant::now() + patience;
    loop {
        if f() {
            return Some(Instant::now());
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Puts `n` values of `len` bytes as `prefix-<i>` (seed `seed_base + i`); the acked ones.
pub fn put_many(
    s: &Store,
    prefix: &str,
    seed_base: u64,
    n: u64,
    len: usize,
    cfg: &mooncake_rs::ReplicateConfig,
) -> Vec<crate::ledger::Acked> {
    (0..n)
        .filter_map(|i| {
            let (key, seed) = (format!("{prefix}-{i}"), seed_base + i);
            s.put(&key, &crate::ledger::pattern(len, seed), cfg)
                .ok()
                .map(|()| crate::ledger::Acked {
                    key,
                    seed,
                    len,
                    at: Instant::now(),
                })
        })
        .collect()
}

/// `replica_num` = `n`, defaults otherwise.
pub fn replicas(n: u32) -> mooncake_rs::ReplicateConfig {
    mooncake_rs::ReplicateConfig {
        replica_num: n,
        ..Default::default()
    }
}

/// Notes a problem when the master evicted anything: a scenario that counts lost objects
/// must keep its working set below the watermark, or evictions would pass for losses.
pub fn check_no_evictions(metrics_addr: &str, d: &mut Done) {
    let evicted = health(metrics_addr)["evicted_keys_total"].as_u64();
    if evicted != Some(0) {
        d.problems.push(format!(
            "the master evicted {evicted:?} keys: the working set is too big for this scenario"
        ));
    }
}
