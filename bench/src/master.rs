//! `--scenario master`: metadata-only RPC throughput. PutStart + PutEnd pairs (space is
//! allocated, no payload is sent) and then GetReplicaList, batched, straight over the master
//! RPC. Nothing is read from a shard, so these objects carry no real bytes; the scenario
//! removes them at the end. `--prefill` first puts that many other keys (untimed), so the
//! phases run against a master already holding them. With `--expect-eviction` keys missing
//! in the get phase are counted as evicted (reported apart), not as failures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use mc_rpc::RpcClient;
use mc_schema::ErrorCode;
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
    /// Keys put before the measured phases (untimed).
    pub prefill: u64,
    /// Count keys missing in the get phase as evicted instead of failed.
    pub expect_eviction: bool,
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

/// A phase's result and, for a get phase, the keys found missing when eviction is expected.
struct Outcome {
    result: PhaseResult,
    evicted: u64,
}

/// Puts (or gets) keys `range`, batched, on `sc.threads` connections.
fn phase(sc: &MasterScenario, put: bool, range: std::ops::Range<u64>) -> Result<Outcome> {
    let next = AtomicU64::new(range.start);
    let failed = AtomicU64::new(0);
    let evicted = AtomicU64::new(0);
    let not_found = ErrorCode::ObjectNotFound.code();
    let config = ReplicateConfig {
        replica_num: sc.replicas,
        ..ReplicateConfig::default()
    };
    let crcs = vec![0u32; slice_count(sc.size) as usize];
    let start = Instant::now();
    let results: Vec<Result<Histogram<u64>>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..sc.threads.max(1))
            .map(|_| {
                let (next, failed, evicted, config, crcs) =
                    (&next, &failed, &evicted, &config, &crcs);
                let end = range.end;
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
                        if first >= end {
                            return Ok(h);
                        }
                        let keys: Vec<String> = (first..(first + sc.batch as u64).min(end))
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
                            let gone = if sc.expect_eviction {
                                lists.iter().filter(|l| l.status == not_found).count()
                            } else {
                                0
                            };
                            evicted.fetch_add(gone as u64, Ordering::Relaxed);
                            lists.iter().filter(|l| l.status != 0).count() - gone
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
    let evicted = evicted.load(Ordering::Relaxed);
    Ok(Outcome {
        result: PhaseResult {
            ops: range.end - range.start,
            failed: failed.load(Ordering::Relaxed),
            misses: evicted,
            secs,
            hist,
            cache: (0, 0),
        },
        evicted,
    })
}

/// What one run of the scenario measured.
pub struct Report {
    /// `put_meta` and `get_meta`.
    pub cases: Vec<CaseResult>,
    /// Master RSS growth from before the first put to the end of the put phase, when the
    /// master is local.
    pub rss_growth_bytes: Option<u64>,
    /// Keys the get phase found evicted (only counted with `expect_eviction`).
    pub evicted: u64,
}

/// Runs the scenario: prefill, then the timed put and get phases.
pub fn run(sc: &MasterScenario) -> Result<Report> {
    let rss0 = sc.master_pid.and_then(rss_bytes);
    if sc.prefill > 0 {
        let t = Instant::now();
        let pre = phase(sc, true, sc.keys..sc.keys + sc.prefill).context("prefill")?;
        if pre.result.failed > 0 {
            bail!(
                "prefill: {} of {} puts failed",
                pre.result.failed,
                sc.prefill
            );
        }
        eprintln!(
            "mc-bench: prefilled {} keys in {:.1} s",
            sc.prefill,
            t.elapsed().as_secs_f64()
        );
    }
    let put = phase(sc, true, 0..sc.keys).context("metadata put phase")?;
    let rss1 = sc.master_pid.and_then(rss_bytes);
    let get = phase(sc, false, 0..sc.keys).context("metadata get phase")?;
    let growth = rss0.zip(rss1).map(|(a, b)| b.saturating_sub(a));
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
    Ok(Report {
        cases: vec![
            CaseResult::from_reps("put_meta", sc.size, sc.batch, t, &[put.result], &[]),
            CaseResult::from_reps("get_meta", sc.size, sc.batch, t, &[get.result], &[]),
        ],
        rss_growth_bytes: growth,
        evicted: get.evicted,
    })
}
