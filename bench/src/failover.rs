//! The `failover` scenario (issue 12): a real coordinator (etcd or Redis), three masters
//! electing on it, three store nodes and two clients putting and reading back objects; the
//! leader is killed (`--signal kill` = SIGKILL, `term` = SIGTERM) `--kills` times. Per kill
//! it reports how long until the coordinator names a new leader that serves, and until each
//! client's first successful put and get; at the end, how many acknowledged objects are lost
//! and how many reads returned wrong bytes (never allowed).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mc_cluster::probe::http_get;
use mc_cluster::{ClusterSpec, Coordinator, CoordinatorKind, LocalCluster, NodeSpec};
use mooncake_rs::{ReplicateConfig, Store, StoreConfig};
use serde::Serialize;

use crate::payload::{check, stamp, template};

/// Longest wait for a leader, or for the clients to come back.
const PATIENCE: Duration = Duration::from_secs(120);

/// Value size of the load.
const VALUE_BYTES: usize = 8192;

/// What one kill cost.
#[derive(Debug, Serialize)]
pub struct KillRow {
    /// Always `failover`.
    pub op: &'static str,
    /// `etcd` or `redis`.
    pub coordinator: &'static str,
    /// `kill` or `term`.
    pub signal: &'static str,
    /// Which kill (1-based).
    pub kill: usize,
    /// Lease TTL of the masters, seconds.
    pub ttl_s: u64,
    /// Signal → another master leads (recovering or serving), milliseconds.
    pub new_leader_ms: u64,
    /// Signal → the slower client's first successful put, milliseconds.
    pub first_put_ms: u64,
    /// Signal → the slower client's first successful get, milliseconds.
    pub first_get_ms: u64,
}

/// The whole run.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Always `failover_total`.
    pub op: &'static str,
    /// Puts the clients saw acknowledged.
    pub acknowledged: u64,
    /// Acknowledged objects not found at the end (their holders all stayed alive).
    pub lost: u64,
    /// Reads that returned wrong bytes, during the load and at the end.
    pub wrong: u64,
    /// Nothing lost, nothing wrong.
    pub ok: bool,
}

/// What a load thread publishes: the last successful put and get (ms since the epoch).
#[derive(Default)]
struct Progress {
    put_ms: AtomicU64,
    get_ms: AtomicU64,
}

struct Load {
    stop: Arc<AtomicBool>,
    wrong: Arc<AtomicU64>,
    progress: Vec<Arc<Progress>>,
    threads: Vec<JoinHandle<Vec<u64>>>,
    epoch: Instant,
}

fn key(client: usize, n: u64) -> String {
    format!("failover/{client}/{n}")
}

/// Puts and reads back objects until stopped; returns the acknowledged puts' numbers.
fn load_thread(
    s: Store,
    c: usize,
    stop: &AtomicBool,
    wrong: &AtomicU64,
    p: &Progress,
    epoch: Instant,
) -> Vec<u64> {
    let t = template(VALUE_BYTES);
    let cfg = ReplicateConfig::default();
    let mut acked = Vec::new();
    let mut n = 0u64;
    let now_ms = || epoch.elapsed().as_millis() as u64;
    while !stop.load(Ordering::Acquire) {
        n += 1;
        let mut v = t.clone();
        stamp(&mut v, n);
        if s.put(&key(c, n), &v, &cfg).is_err() {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        acked.push(n);
        p.put_ms.store(now_ms(), Ordering::Release);
        match s.get(&key(c, n)) {
            Ok(got) if check(&got, &t, n) => p.get_ms.store(now_ms(), Ordering::Release),
            Ok(_) => {
                wrong.fetch_add(1, Ordering::AcqRel);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    acked
}

fn client(locator: &str) -> Result<Store> {
    Ok(Store::connect(StoreConfig {
        connect_timeout: Duration::from_secs(1),
        rpc_timeout: Duration::from_secs(3),
        transfer_timeout: Duration::from_secs(2),
        ..StoreConfig::new(locator)
    })?)
}

impl Load {
    fn start(locator: &str, clients: usize) -> Result<Load> {
        let (stop, wrong) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let epoch = Instant::now();
        let progress: Vec<Arc<Progress>> = (0..clients).map(|_| Arc::default()).collect();
        let mut threads = Vec::new();
        for (c, p) in progress.iter().enumerate() {
            let s = client(locator)?;
            let (stop, wrong, p) = (stop.clone(), wrong.clone(), p.clone());
            threads.push(std::thread::spawn(move || {
                load_thread(s, c, &stop, &wrong, &p, epoch)
            }));
        }
        Ok(Load {
            stop,
            wrong,
            progress,
            threads,
            epoch,
        })
    }

    /// Whether every client put (`get` = false) or got successfully after `since_ms`.
    fn all_since(&self, since_ms: u64, get: bool) -> bool {
        self.progress.iter().all(|p| {
            let at = if get { &p.get_ms } else { &p.put_ms };
            at.load(Ordering::Acquire) > since_ms
        })
    }

    fn stop(self) -> (Vec<Vec<u64>>, u64) {
        self.stop.store(true, Ordering::Release);
        let acked = self
            .threads
            .into_iter()
            .map(|t| t.join().unwrap_or_default())
            .collect();
        (acked, self.wrong.load(Ordering::Acquire))
    }
}

/// The one master whose `/health` says it leads (serving, or recovering: it answers).
fn leading(c: &LocalCluster) -> Option<usize> {
    let v: Vec<usize> = (0..c.master_count())
        .filter(|&i| {
            http_get(&c.metrics_addr_of(i), "/health", Duration::from_secs(1))
                .is_ok_and(|r| r.body.contains("\"role\":\"leader\""))
        })
        .collect();
    (v.len() == 1).then(|| v[0])
}

/// Times since the signal at `t`: a new leader (other than `old`), every client's first put
/// and first get after it. Polls until all three are seen.
fn watch_failover(
    c: &LocalCluster,
    load: &Load,
    old: usize,
    t: Instant,
) -> Result<(usize, [u64; 3])> {
    let since = t.duration_since(load.epoch).as_millis() as u64;
    let (mut leader, mut times) = (None, [None; 3]);
    let mut polls = 0u64;
    loop {
        let ms = t.elapsed().as_millis() as u64;
        // /health is an HTTP round trip per master: every 10th poll.
        let new = (leader.is_none() && polls.is_multiple_of(10))
            .then(|| leading(c).filter(|&i| i != old))
            .flatten();
        if let Some(i) = new {
            leader = Some(i);
            times[0] = Some(ms);
        }
        if times[1].is_none() && load.all_since(since, false) {
            times[1] = Some(ms);
        }
        if times[2].is_none() && load.all_since(since, true) {
            times[2] = Some(ms);
        }
        if let (Some(l), [Some(a), Some(b), Some(d)]) = (leader, times) {
            return Ok((l, [a, b, d]));
        }
        if t.elapsed() > PATIENCE {
            bail!("no failover within {PATIENCE:?}:\n{}", c.logs_tail(20));
        }
        polls += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn wait_leading(c: &LocalCluster) -> Result<usize> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(i) = leading(c) {
            return Ok(i);
        }
        if Instant::now() > deadline {
            bail!("no master leads after {PATIENCE:?}:\n{}", c.logs_tail(20));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until both clients have done a round trip.
fn watch_warmup(load: &Load) -> Result<()> {
    let deadline = Instant::now() + PATIENCE;
    while !load.all_since(0, true) {
        if Instant::now() > deadline {
            bail!("the load never got going within {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Starts the coordinator and the cluster: 3 masters with lease `ttl_s`, `nodes` nodes.
fn start(kind: CoordinatorKind, ttl_s: u64, nodes: usize) -> Result<(LocalCluster, Coordinator)> {
    let coord =
        Coordinator::start(kind).context("starting the coordinator (run scripts/setup.sh)")?;
    let mut master_args = coord.master_args();
    master_args.push(format!("--master_view_lease_ttl_sec={ttl_s}"));
    let spec = ClusterSpec {
        masters: 3,
        master_args,
        master_server: Some(coord.locator()),
        nodes: (0..nodes)
            .map(|i| NodeSpec {
                host: format!("127.0.0.{}", i + 2),
                segment_size: "256MB".into(),
                extra_args: vec!["--heartbeat_interval=300ms".into()],
                ..NodeSpec::default()
            })
            .collect(),
        ready_timeout: Duration::from_secs(120),
        ..ClusterSpec::default()
    };
    let cluster = LocalCluster::start(spec).context("starting the HA cluster")?;
    Ok((cluster, coord))
}

/// Runs the scenario; prints a row per kill and a summary. Fails when an acknowledged
/// object was lost or a read returned wrong bytes.
pub fn run(
    kind: CoordinatorKind,
    signal: &'static str,
    kills: usize,
    ttl_s: u64,
    json: bool,
) -> Result<()> {
    let (mut c, coord) = start(kind, ttl_s, 3)?;
    let mut leader = wait_leading(&c)?;
    let load = Load::start(&coord.locator(), 2)?;
    watch_warmup(&load)?;
    let sig = if signal == "term" {
        libc::SIGTERM
    } else {
        libc::SIGKILL
    };
    for k in 1..=kills {
        let t = Instant::now();
        c.signal_master_of(leader, sig);
        let (next, [new_leader_ms, first_put_ms, first_get_ms]) =
            watch_failover(&c, &load, leader, t)?;
        let row = KillRow {
            op: "failover",
            coordinator: kind.backend(),
            signal,
            kill: k,
            ttl_s,
            new_leader_ms,
            first_put_ms,
            first_get_ms,
        };
        print_row(&row, json)?;
        // The killed master comes back as a standby, so every kill has two to take over.
        let _ = c.wait_master_exit_of(leader, Duration::from_secs(30));
        c.restart_master_of(leader)
            .context("restarting a killed master")?;
        leader = next;
    }
    let (acked, mut wrong) = load.stop();
    let s = client(&coord.locator())?;
    let t = template(VALUE_BYTES);
    let mut lost = 0;
    for (cl, ns) in acked.iter().enumerate() {
        for &n in ns {
            match s.get(&key(cl, n)) {
                Ok(v) if check(&v, &t, n) => {}
                Ok(_) => wrong += 1,
                Err(_) => lost += 1,
            }
        }
    }
    let summary = Summary {
        op: "failover_total",
        acknowledged: acked.iter().map(|v| v.len() as u64).sum(),
        lost,
        wrong,
        ok: lost == 0 && wrong == 0,
    };
    if json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "failover: {} acknowledged puts, {} lost, {} wrong",
            summary.acknowledged, summary.lost, summary.wrong
        );
    }
    if !summary.ok {
        bail!("{lost} acknowledged object(s) lost, {wrong} wrong read(s)");
    }
    Ok(())
}

fn print_row(r: &KillRow, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
    } else {
        println!(
            "failover {} ({}, SIG{} , TTL {} s): new leader after {} ms, first put after {} ms, first get after {} ms",
            r.kill,
            r.coordinator,
            r.signal.to_uppercase(),
            r.ttl_s,
            r.new_leader_ms,
            r.first_put_ms,
            r.first_get_ms
        );
    }
    Ok(())
}
