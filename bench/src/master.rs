//! `--scenario master`: metadata-only RPC throughput. PutStart + PutEnd pairs (space is
//! allocated, no payload is sent) and then GetReplicaList, batched, straight over the master
//! RPC. Nothing is read from a shard, so these objects carry no real bytes; the scenario
//! removes them at the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use mc_rpc::RpcClient;
use mc_schema::handshake::{DEFAULT_CLUSTER_ID, Role};
use mc_schema::limits::slice_count;
use mc_schema::msg::{PutEndItem, ReplicateConfig, Request, ResponseBody};

use crate::report::CaseResult;
use crate::run::{PhaseResult, key};

/// Settings of the scenario.
pub struct MasterScenario {
    /// Master address.
    pub master: String,
    /// Keys to create.
    pub keys: u64,
    /// Value size used for allocation.
    pub size: u64,
    /// Keys per RPC.
    pub batch: usize,
    /// Client threads, each with its own connection.
    pub threads: usize,
    /// Replicas per object.
    pub replicas: u32,
    /// Key length.
    pub key_size: usize,
    /// Master pid, when it runs locally (for RSS per key).
    pub master_pid: Option<u32>,
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

/// Resident set size of a process, in bytes.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn phase(sc: &MasterScenario, put: bool) -> Result<PhaseResult> {
    let next = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let config = ReplicateConfig {
        replica_num: sc.replicas,
        ..ReplicateConfig::default()
    };
    let crcs = vec![0u32; slice_count(sc.size) as usize];
    let start = Instant::now();
    let results: Vec<Result<Histogram<u64>>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..sc.threads.max(1))
            .map(|_| {
                let (next, failed, config, crcs) = (&next, &failed, &config, &crcs);
                s.spawn(move || -> Result<Histogram<u64>> {
                    let mut rpc = RpcClient::connect(
                        &sc.master,
                        Role::Tool,
                        DEFAULT_CLUSTER_ID,
                        Duration::from_secs(2),
                    )?;
                    let mut h = new_hist();
                    loop {
                        let first = next.fetch_add(sc.batch as u64, Ordering::Relaxed);
                        if first >= sc.keys {
                            return Ok(h);
                        }
                        let keys: Vec<String> = (first..(first + sc.batch as u64).min(sc.keys))
                            .map(|i| key(sc.size, i, sc.key_size))
                            .collect();
                        let deadline = Instant::now() + Duration::from_secs(30);
                        let t0 = Instant::now();
                        let bad = if put {
                            let items = keys.iter().map(|k| (k.clone(), sc.size)).collect();
                            let r = rpc.call(
                                &Request::PutStart {
                                    client_id: 1,
                                    client_host: String::new(),
                                    items,
                                    config: config.clone(),
                                },
                                deadline,
                            )?;
                            let ResponseBody::PutStart(started) = r.body else {
                                bail!("PutStart: {}", r.message)
                            };
                            let ok: Vec<PutEndItem> = keys
                                .iter()
                                .zip(&started)
                                .filter(|(_, s)| s.status == 0)
                                .map(|(k, s)| PutEndItem {
                                    key: k.clone(),
                                    slice_crcs: crcs.clone(),
                                    failed_replicas: vec![],
                                    generation: s
                                        .replicas
                                        .first()
                                        .and_then(|r| r.slices.first())
                                        .map_or(0, |x| x.generation),
                                })
                                .collect();
                            let n_ok = ok.len();
                            let r = rpc.call(&Request::PutEnd { items: ok }, deadline)?;
                            let ResponseBody::Statuses(codes) = r.body else {
                                bail!("PutEnd: {}", r.message)
                            };
                            keys.len() - n_ok + codes.iter().filter(|c| **c != 0).count()
                        } else {
                            let r = rpc
                                .call(&Request::GetReplicaList { keys: keys.clone() }, deadline)?;
                            let ResponseBody::ReplicaLists(lists) = r.body else {
                                bail!("GetReplicaList: {}", r.message)
                            };
                            lists.iter().filter(|l| l.status != 0).count()
                        };
                        h.record(t0.elapsed().as_micros().max(1) as u64)?;
                        failed.fetch_add(bad as u64, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let mut hist = new_hist();
    for r in results {
        hist.add(r?)?;
    }
    Ok(PhaseResult {
        ops: sc.keys,
        failed: failed.load(Ordering::Relaxed),
        secs,
        hist,
    })
}

/// Runs the scenario: returns the put and get results and, when the master is local, its
/// RSS growth per key.
pub fn run(sc: &MasterScenario) -> Result<(Vec<CaseResult>, Option<f64>)> {
    let rss0 = sc.master_pid.and_then(rss_bytes);
    let put = phase(sc, true).context("metadata put phase")?;
    let rss1 = sc.master_pid.and_then(rss_bytes);
    let get = phase(sc, false).context("metadata get phase")?;
    let per_key = match (rss0, rss1) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / sc.keys as f64),
        _ => None,
    };
    let mut rpc = RpcClient::connect(
        &sc.master,
        Role::Tool,
        DEFAULT_CLUSTER_ID,
        Duration::from_secs(2),
    )?;
    rpc.call(
        &Request::RemoveAll { force: true },
        Instant::now() + Duration::from_secs(120),
    )?;
    let t = sc.threads.max(1);
    Ok((
        vec![
            CaseResult::from_reps("put_meta", sc.size, sc.batch, t, &[put], &[]),
            CaseResult::from_reps("get_meta", sc.size, sc.batch, t, &[get], &[]),
        ],
        per_key,
    ))
}
