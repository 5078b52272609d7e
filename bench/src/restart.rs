//! The `restart` scenario: how fast a master killed with SIGKILL and started again serves
//! every object the nodes hold (issue 12's target: 1M objects re-adopted within 3 s).
//!
//! It puts `--keys` values of the first `--sizes` size into the local cluster (untimed),
//! kills the master with -9, starts it again, and measures
//! - `serving_ms`: from the restart until the first get of a stored key succeeds;
//! - `all_back_ms`: until `batch_exists` finds every key;
//! - `adoption_ms`: the master's own time to adopt the nodes' reports (its `/health`);
//!
//! then reads a sample of keys back byte for byte. One JSON row (`--json`) or a line.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mc_cluster::LocalCluster;
use mooncake_rs::{ReplicateConfig, Store, StoreConfig};
use serde::Serialize;

use crate::payload::{check, stamp, template};

/// Keys per put / exists call.
const BATCH: usize = 4096;

/// Keys read back byte for byte after the restart.
const SAMPLE: u64 = 2000;

/// Longest wait for every key to be back.
const ALL_BACK_TIMEOUT: Duration = Duration::from_secs(300);

/// The result row.
#[derive(Debug, Serialize)]
pub struct RestartResult {
    /// Always `restart`.
    pub op: &'static str,
    /// Value size in bytes.
    pub size: u64,
    /// Keys stored before the kill.
    pub keys: u64,
    /// Replicas per object.
    pub replicas: u32,
    /// Store nodes.
    pub nodes: usize,
    /// Restart → first successful get, milliseconds.
    pub serving_ms: u64,
    /// Restart → every key found again, milliseconds.
    pub all_back_ms: u64,
    /// The master's adoption time (sum over the nodes' reports), milliseconds.
    pub adoption_ms: u64,
    /// Objects the master re-adopted.
    pub adopted_objects: u64,
    /// Keys not found once the wait ended (committed objects lost).
    pub missing: u64,
    /// Sampled keys that read back wrong bytes.
    pub wrong: u64,
    /// No key missing, no wrong byte.
    pub ok: bool,
}

/// Key `i` holds `template` stamped with `i`.
fn value(t: &[u8], i: u64) -> Vec<u8> {
    let mut v = t.to_vec();
    stamp(&mut v, i);
    v
}

/// Puts `keys` values shaped like `t` under `restart/<i>`.
fn fill(store: &Store, keys: u64, t: &[u8], cfg: &ReplicateConfig) -> Result<()> {
    let names: Vec<String> = (0..keys).map(|i| format!("restart/{i:012}")).collect();
    for chunk in (0..keys).collect::<Vec<u64>>().chunks(BATCH) {
        let values: Vec<Vec<u8>> = chunk.iter().map(|&i| value(t, i)).collect();
        let items: Vec<(&str, &[u8])> = chunk
            .iter()
            .zip(&values)
            .map(|(&i, v)| (names[i as usize].as_str(), v.as_slice()))
            .collect();
        for (r, (k, _)) in store.put_batch(&items, cfg).into_iter().zip(&items) {
            r.with_context(|| format!("put {k}"))?;
        }
    }
    Ok(())
}

/// Keys of `0..keys` not found, in batches.
fn missing(store: &Store, keys: u64) -> u64 {
    let names: Vec<String> = (0..keys).map(|i| format!("restart/{i:012}")).collect();
    names
        .chunks(BATCH)
        .map(|c| {
            let refs: Vec<&str> = c.iter().map(String::as_str).collect();
            store
                .batch_exists(&refs)
                .into_iter()
                .filter(|r| !matches!(r, Ok(true)))
                .count() as u64
        })
        .sum()
}

/// A number field of the master's `/health` (0 when absent).
fn health_field(c: &LocalCluster, field: &str) -> u64 {
    mc_cluster::probe::http_get(&c.metrics_addr(), "/health", Duration::from_secs(5))
        .ok()
        .and_then(|r| mc_cluster::probe::json_u64_field(&r.body, field))
        .unwrap_or(0)
}

/// Runs the scenario on the local cluster `c`.
pub fn run(c: &mut LocalCluster, keys: u64, size: u64, replicas: u32) -> Result<RestartResult> {
    if keys == 0 {
        bail!("--scenario restart needs --keys > 0");
    }
    let cfg = ReplicateConfig {
        replica_num: replicas,
        ..ReplicateConfig::default()
    };
    let store = Store::connect(StoreConfig {
        rpc_timeout: Duration::from_secs(30),
        ..StoreConfig::new(c.master_addr())
    })?;
    let tpl = template(size as usize);
    let t = Instant::now();
    fill(&store, keys, &tpl, &cfg)?;
    eprintln!(
        "mc-bench: {keys} keys stored in {:.1} s; killing the master",
        t.elapsed().as_secs_f64()
    );
    c.kill_master();
    let t0 = Instant::now();
    c.restart_master().context("restarting the master")?;
    let probe = format!("restart/{:012}", keys - 1);
    while store.get(&probe).is_err() {
        if t0.elapsed() > ALL_BACK_TIMEOUT {
            bail!("no get succeeded within {ALL_BACK_TIMEOUT:?} of the restart");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let serving_ms = t0.elapsed().as_millis() as u64;
    let mut left = missing(&store, keys);
    while left > 0 && t0.elapsed() < ALL_BACK_TIMEOUT {
        std::thread::sleep(Duration::from_millis(20));
        left = missing(&store, keys);
    }
    let all_back_ms = t0.elapsed().as_millis() as u64;
    let step = (keys / SAMPLE).max(1);
    let wrong = (0..keys)
        .step_by(step as usize)
        .filter(|&i| {
            !store
                .get(&format!("restart/{i:012}"))
                .is_ok_and(|v| check(&v, &tpl, i))
        })
        .count() as u64;
    Ok(RestartResult {
        op: "restart",
        size,
        keys,
        replicas,
        nodes: c.node_count(),
        serving_ms,
        all_back_ms,
        adoption_ms: health_field(c, "recovery_adoption_ms_total"),
        adopted_objects: health_field(c, "recovery_adopted_objects_total"),
        missing: left,
        wrong,
        ok: left == 0 && wrong == 0,
    })
}
