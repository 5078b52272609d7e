//! `mc-bench`: throughput and latency of mooncake-rs, with a same-run ceiling.
//!
//! With no `--master` it starts a master and one store node as child processes (killed at
//! exit). For each size and batch it interleaves, `--repeat` times: a ceiling measurement,
//! the put phase, a ceiling measurement, the get phase. It reports medians, the spread, and
//! the ratio of each case to its ceiling. Every value read back is checked byte for byte.
//! The working set is sized from the free space the master reports ([`room`]), so a small
//! cluster does not evict; keys a get does not find are reported as misses, not failures.
//! Errors end the run with one line on stderr and a non-zero exit status.

mod ceiling;
mod failover;
mod master;
mod memcpy;
mod payload;
mod procs;
mod report;
mod restart;
mod room;
mod run;
mod ssd;
mod zipf;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use mc_cluster::{ClusterSpec, LocalCluster, NodeSpec};
use mooncake_rs::{MemcpyMode, ReplicateConfig, Store, StoreConfig};

use report::{CaseResult, human};
use room::Room;
use run::{Op, Phase};

/// Working set per case when neither `--bytes` nor `--keys` is given (lowered to what the
/// cluster holds below its eviction watermark).
const DEFAULT_WORKING_SET_BYTES: u64 = 512 << 20;

/// Command-line flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "mc-bench",
    about = "Throughput/latency harness for mooncake-rs with same-run ceilings",
    after_help = "`mc-bench ceiling-server` runs the ceiling's server side, `mc-bench get-worker` one process of a get_4proc row (both started by mc-bench itself)."
)]
pub struct Args {
    /// An existing cluster's master (host:port); without it a local master and store node
    /// are started (TCP only).
    #[arg(long)]
    pub master: Option<String>,
    /// Value sizes, comma separated.
    #[arg(long, default_value = "4KB,64KB,1MB,16MB", value_delimiter = ',')]
    pub sizes: Vec<String>,
    /// Keys per call, comma separated (1 = single put/get).
    #[arg(long, default_value = "1,16", value_delimiter = ',')]
    pub batch: Vec<usize>,
    /// Client threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Working set per case: bytes put (then read); keys = bytes / size. Default 512MB,
    /// lowered to what the cluster holds below its eviction watermark; a value given here is
    /// used as is, and keys evicted because of it count as misses.
    #[arg(long)]
    pub bytes: Option<String>,
    /// Cap on each phase, in seconds (0 = none); keys done by then count.
    #[arg(long, default_value_t = 0.0)]
    pub duration: f64,
    /// Interleaved repetitions of ceiling and case per size and batch.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Replicas per object.
    #[arg(long, default_value_t = 1)]
    pub replicas: u32,
    /// Key length in bytes (keys are padded to it).
    #[arg(long, default_value_t = 24)]
    pub key_size: usize,
    /// Zipf exponent for skewed gets (e.g. 0.99); unset = every key once, in order.
    #[arg(long)]
    pub zipf: Option<f64>,
    /// Workload: `kv` (put then get of values through the client), `master`
    /// (metadata-only RPC throughput: PutStart+PutEnd pairs, then GetReplicaList) or
    /// `restart` (`--keys` values, default 1M, then the master killed with -9 and started
    /// again: time until every key is back) or `failover` (a coordinator, 3 HA masters, 3
    /// nodes and two clients; the leader killed `--kills` times) or `ssd` (the SSD tier:
    /// SSD-only reads vs fio, eager offload's cost on puts, a node's warm restart with
    /// `--keys` 4 KiB records, default 1M).
    #[arg(long, default_value = "kv")]
    pub scenario: String,
    /// Keys per case (0 = bytes / size), used as is like `--bytes`; the `master` scenario
    /// defaults to 100000.
    #[arg(long, default_value_t = 0)]
    pub keys: u64,
    /// `master` scenario: keys put before the measured phases (untimed), so they run
    /// against a master already holding that many.
    #[arg(long, default_value_t = 0)]
    pub prefill: u64,
    /// `master` scenario: keys the get phase finds missing were evicted (the segment is
    /// smaller than the keys need); count them apart instead of as failures.
    #[arg(long)]
    pub expect_eviction: bool,
    /// Store nodes started locally, each on its own loopback address (127.0.0.1, .2, ...)
    /// so replicas land on distinct hosts.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// `failover` scenario: the coordinator the masters elect on (`etcd` or `redis`).
    #[arg(long, default_value = "etcd")]
    pub coordinator: String,
    /// `failover` scenario: how the leader is stopped, `kill` (SIGKILL) or `term` (SIGTERM).
    #[arg(long, default_value = "kill")]
    pub signal: String,
    /// `failover` scenario: how many times the leader is stopped.
    #[arg(long, default_value_t = 3)]
    pub kills: usize,
    /// `failover` scenario: the masters' lease TTL in seconds.
    #[arg(long, default_value_t = 5)]
    pub ttl: u64,
    /// Skip the ceiling measurements.
    #[arg(long)]
    pub no_ceiling: bool,
    /// Segment size of the store node started locally.
    #[arg(long, default_value = "1GB")]
    pub segment_size: String,
    /// One JSON object per case on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Read same-host (`MC_STORE_MEMCPY=1`: the client copies from the node's memory); the
    /// get rows' ratio is then to a memcpy of the same size measured in the same run.
    /// Without it every client of the run reads over TCP (`MC_STORE_MEMCPY=0`).
    #[arg(long = "same-host", alias = "same_host")]
    pub same_host: bool,
    /// A flag for the store nodes started locally (repeatable), e.g.
    /// `--node-arg=--single_process` to measure the one-process node.
    #[arg(long = "node-arg", allow_hyphen_values = true)]
    pub node_args: Vec<String>,
    /// `ssd` scenario: fewer objects (20k warm-restart records unless `--keys` says
    /// otherwise); the rows say `quick: true`.
    #[arg(long)]
    pub quick: bool,
    /// `ssd` scenario: where the record directory is made (on a file system that takes
    /// O_DIRECT; default `target/` next to the binary).
    #[arg(long = "ssd_dir", alias = "ssd-dir")]
    pub ssd_dir: Option<std::path::PathBuf>,
    /// `ssd` scenario: the rows to run, comma separated (`ssd_get`, `put_offload`,
    /// `warm_restart`); default all.
    #[arg(long = "ssd_rows", alias = "ssd-rows", value_delimiter = ',')]
    pub ssd_rows: Vec<String>,
}

fn main() -> ExitCode {
    let outcome = match std::env::args().nth(1).as_deref() {
        Some("ceiling-server") => ceiling::serve(),
        Some("get-worker") => procs::worker(&std::env::args().nth(2).unwrap_or_default()),
        _ => run(&Args::parse()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever RUST_BACKTRACE says: these are conditions users meet (an
            // unreachable master, a cluster too small), not bugs.
            eprintln!("mc-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<()> {
    if !["kv", "master", "restart", "failover", "ssd"].contains(&args.scenario.as_str()) {
        bail!(
            "unknown --scenario `{}`; available: kv, master, restart, failover, ssd",
            args.scenario
        );
    }
    if args.scenario == "ssd" {
        if args.master.is_some() {
            bail!("--scenario ssd starts its own clusters: leave out --master");
        }
        let restart_records = match (args.keys, args.quick) {
            (0, true) => 20_000,
            (0, false) => 1_000_000,
            (k, _) => k,
        };
        return ssd::run(
            &ssd::SsdPlan {
                quick: args.quick,
                restart_records,
                repeat: args.repeat,
                dir: args.ssd_dir.clone(),
                rows: args.ssd_rows.clone(),
            },
            args.json,
        );
    }
    if args.scenario == "failover" {
        let kind = match args.coordinator.as_str() {
            "etcd" => mc_cluster::CoordinatorKind::Etcd,
            "redis" => mc_cluster::CoordinatorKind::Redis,
            other => bail!("unknown --coordinator `{other}`; available: etcd, redis"),
        };
        let signal = match args.signal.as_str() {
            "kill" => "kill",
            "term" => "term",
            other => bail!("unknown --signal `{other}`; available: kill, term"),
        };
        return failover::run(kind, signal, args.kills, args.ttl, args.json);
    }
    let sizes = args
        .sizes
        .iter()
        .map(|s| size_arg(s))
        .collect::<Result<Vec<u64>>>()?;
    // `local` is kept until the end of the run: dropping it stops the local processes.
    let (master, local) = match &args.master {
        Some(m) => (m.clone(), None),
        None => {
            let c = start_local(args)?;
            (c.master_addr(), Some(c))
        }
    };
    if args.scenario == "master" {
        let master_pid = local.as_ref().and_then(LocalCluster::master_pid);
        return run_master_scenario(args, &master, &sizes, master_pid);
    }
    if args.scenario == "restart" {
        let Some(mut c) = local else {
            bail!(
                "--scenario restart kills and restarts the master: it runs on a local cluster only (leave out --master)"
            );
        };
        let keys = if args.keys == 0 { 1_000_000 } else { args.keys };
        let r = restart::run(
            &mut c,
            keys,
            sizes.first().copied().unwrap_or(4096),
            args.replicas,
        )?;
        if args.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!(
                "restart: {} keys of {} B x{}: serving after {} ms, all back after {} ms (master adoption {} ms); {} missing, {} wrong",
                r.keys,
                r.size,
                r.replicas,
                r.serving_ms,
                r.all_back_ms,
                r.adoption_ms,
                r.missing,
                r.wrong
            );
        }
        if !r.ok {
            bail!(
                "{} committed key(s) not back, {} read back wrong",
                r.missing,
                r.wrong
            );
        }
        return Ok(());
    }
    run_kv(args, &master, &sizes)
}

/// Starts the local master and `--nodes` store nodes.
fn start_local(args: &Args) -> Result<LocalCluster> {
    let nodes = args.nodes.max(1);
    eprintln!(
        "mc-bench: starting a local master and {nodes} store node(s) ({} each)",
        args.segment_size
    );
    LocalCluster::start(ClusterSpec {
        nodes: (0..nodes)
            .map(|i| NodeSpec {
                host: format!("127.0.0.{}", i + 1),
                segment_size: args.segment_size.clone(),
                // Hugepage-backed segments when the pool has room (fewer TLB misses in the
                // kernel's copies); plain pages otherwise, with a warning in the log.
                extra_args: std::iter::once("--hugepages=try".to_string())
                    .chain(args.node_args.iter().cloned())
                    .collect(),
                ..NodeSpec::default()
            })
            .collect(),
        ready_timeout: Duration::from_secs(120),
        ..ClusterSpec::default()
    })
    .context("starting the local cluster (build the binaries with `cargo build --release --bins`)")
}

/// The `kv` scenario: every size and batch against the cluster at `master`.
fn run_kv(args: &Args, master: &str, sizes: &[u64]) -> Result<()> {
    let room = Room::ask(master)?;
    let plan = plan_keys(args, sizes, &room)?;
    let store = Store::connect(client_config(args, master))
        .with_context(|| format!("connecting to {master}"))?;
    let ceiling = if args.no_ceiling {
        None
    } else {
        Some(ceiling::CeilingServer::start()?)
    };
    if !args.json {
        report::print_header();
    }
    let (mut failed, mut bad_cases) = (0, 0);
    for (&size, &keys) in sizes.iter().zip(&plan) {
        for &batch in &args.batch {
            let batch = batch.max(1);
            for case in run_case(&store, master, ceiling.as_ref(), args, size, batch, keys)? {
                failed += case.failed;
                bad_cases += usize::from(!case.ok);
                report::print(&case, args.json);
            }
        }
    }
    if bad_cases > 0 {
        bail!(
            "{bad_cases} case(s) not ok: {failed} key(s) failed or read back wrong bytes, or a \
             repetition did no work"
        );
    }
    Ok(())
}

/// The bench's client settings: same-host reads only with `--same-host`, so the default
/// run measures the TCP path whatever `MC_STORE_MEMCPY` says.
fn client_config(args: &Args, master: &str) -> StoreConfig {
    StoreConfig {
        memcpy: memcpy_mode(args),
        ..StoreConfig::new(master)
    }
}

/// `MemcpyMode::On` with `--same-host`, `Off` without.
fn memcpy_mode(args: &Args) -> MemcpyMode {
    if args.same_host {
        MemcpyMode::On
    } else {
        MemcpyMode::Off
    }
}

/// Keys per case for each size: `--keys`, or `--bytes` / size, or the default working set
/// lowered to what fits below the eviction watermark. Fails when not even one value of a
/// size fits and the user did not ask for a working set.
fn plan_keys(args: &Args, sizes: &[u64], room: &Room) -> Result<Vec<u64>> {
    let bytes = args.bytes.as_deref().map(size_arg).transpose()?;
    let mut lowered = false;
    let mut plan = Vec::with_capacity(sizes.len());
    for &size in sizes {
        let size = size.max(1);
        let fit = room.keys_that_fit(size, args.replicas);
        let asked = match (args.keys, bytes) {
            (k, _) if k > 0 => Some(k),
            (_, Some(b)) => Some((b / size).max(1)),
            (_, None) => None,
        };
        let keys = match asked {
            Some(k) => {
                if k > fit {
                    eprintln!(
                        "mc-bench: {k} keys of {} exceed the {fit} that fit: {}; evicted keys \
                         count as misses",
                        human(size),
                        room.describe()
                    );
                }
                k
            }
            None if fit == 0 => bail!(
                "the cluster has no room for one {} value: {}; use smaller --sizes or a \
                 larger cluster (or --bytes to run into eviction anyway)",
                human(size),
                room.describe()
            ),
            None => {
                let default = (DEFAULT_WORKING_SET_BYTES / size).max(1);
                lowered |= fit < default;
                default.min(fit)
            }
        };
        plan.push(keys);
    }
    if lowered {
        eprintln!(
            "mc-bench: working set per case lowered to fit: {}",
            room.describe()
        );
    }
    Ok(plan)
}

fn run_master_scenario(
    args: &Args,
    master: &str,
    sizes: &[u64],
    master_pid: Option<u32>,
) -> Result<()> {
    if !args.json {
        report::print_header();
    }
    let mut all_ok = true;
    for &size in sizes {
        for &batch in &args.batch {
            let sc = master::MasterScenario {
                master: master.to_string(),
                keys: if args.keys > 0 { args.keys } else { 100_000 },
                prefill: args.prefill,
                expect_eviction: args.expect_eviction,
                size,
                batch: batch.max(1),
                threads: args.threads.max(1),
                replicas: args.replicas,
                key_size: args.key_size,
                master_pid,
            };
            let mut r = master::run(&sc)?;
            let keys = sc.keys + sc.prefill;
            // Keys still held at the end of the put phase, when known: every key put, less
            // those the get phase found evicted (prefilled keys are not read back).
            let held = (sc.expect_eviction && sc.prefill == 0).then(|| keys - r.evicted);
            let per_key = r.rss_growth_bytes.map(|g| g as f64 / keys as f64);
            let per_held = r
                .rss_growth_bytes
                .zip(held)
                .map(|(g, h)| g as f64 / h.max(1) as f64);
            // The scenario's own figures are fields of its get_meta row.
            if let Some(get) = r.cases.iter_mut().find(|c| c.op == "get_meta") {
                let e = &mut get.extra;
                if let Some(b) = per_key {
                    e.insert("master_rss_bytes_per_key".into(), b.into());
                    e.insert("master_rss_keys".into(), keys.into());
                }
                if let (Some(h), Some(b)) = (held, per_held) {
                    e.insert("keys_held".into(), h.into());
                    e.insert("master_rss_bytes_per_key_held".into(), b.into());
                }
                if sc.expect_eviction {
                    e.insert("evicted".into(), r.evicted.into());
                }
            }
            for c in &r.cases {
                all_ok &= c.ok;
                report::print(c, args.json);
            }
            if !args.json {
                if let Some(b) = per_key {
                    print!("master RSS growth: {b:.0} bytes per key over {keys} keys");
                    match (held, per_held) {
                        (Some(h), Some(b)) => println!(" ({b:.0} bytes per key held, {h} held)"),
                        _ => println!(),
                    }
                }
                if sc.expect_eviction {
                    println!(
                        "get phase: {} of {} keys evicted (expected)",
                        r.evicted, sc.keys
                    );
                }
            }
        }
    }
    if !all_ok {
        bail!("some metadata operations failed");
    }
    Ok(())
}

/// Fewest round trips a ceiling measurement makes (unless its time cap ends it).
const MIN_CEILING_OPS: u64 = 2000;

fn run_case(
    store: &Store,
    master: &str,
    ceiling: Option<&ceiling::CeilingServer>,
    args: &Args,
    size: u64,
    batch: usize,
    keys: u64,
) -> Result<Vec<CaseResult>> {
    let template = payload::template(size as usize);
    let config = ReplicateConfig {
        replica_num: args.replicas,
        ..ReplicateConfig::default()
    };
    let max_time = (args.duration > 0.0).then(|| Duration::from_secs_f64(args.duration));
    let ceiling_time = max_time
        .unwrap_or(Duration::from_secs(3))
        .min(Duration::from_secs(3));
    let (mut puts, mut gets, mut cputs, mut cgets) = (vec![], vec![], vec![], vec![]);
    let (mut owned, mut cold, mut procs4) = (vec![], vec![], vec![]);
    // `--same-host`: the get rows' baseline, and the share of slices read same-host.
    let mut baseline = args.same_host.then(|| memcpy::Baseline::new(size, keys));
    let (mut copies, mut same_host_reads, mut gets_done) = (vec![], 0u64, 0u64);
    for _ in 0..args.repeat.max(1) {
        let phase = |op, keys| Phase {
            op,
            size,
            batch,
            threads: args.threads.max(1),
            keys,
            max_time,
            zipf: args.zipf,
            key_size: args.key_size,
            template: &template,
            config: &config,
        };
        if let Some(c) = ceiling {
            cputs.push(c.measure(
                true,
                size as usize,
                batch,
                keys.max(MIN_CEILING_OPS),
                ceiling_time,
            )?);
        }
        let put = run::run(store, &phase(Op::Put, keys));
        if let Some(c) = ceiling {
            cgets.push(c.measure(
                false,
                size as usize,
                batch,
                keys.max(MIN_CEILING_OPS),
                ceiling_time,
            )?);
        }
        if let Some(b) = baseline.as_mut() {
            copies.push(b.measure(keys.max(MIN_CEILING_OPS), ceiling_time));
        }
        // Reads cover the keys the put phase wrote (all of them unless --duration cut it).
        let before = store.same_host_stats().reads;
        let get = run::run(store, &phase(Op::Get, put.ops));
        same_host_reads += store.same_host_stats().reads - before;
        gets_done += get.ops * size.div_ceil(mooncake_rs::MAX_SLICE_BYTES).max(1);
        owned.push(run::run(store, &phase(Op::GetOwned, put.ops)));
        // A second client, new for each repetition: none of the keys is in its cache.
        let fresh = Store::connect(client_config(args, master))
            .with_context(|| format!("connecting a cold-cache client to {master}"))?;
        cold.push(run::run(&fresh, &phase(Op::GetCold, put.ops)));
        drop(fresh);
        procs4.push(procs::run_all(&procs::Job {
            master: master.to_string(),
            size,
            batch,
            keys: put.ops,
            key_size: args.key_size,
            max_ms: max_time.map_or(0, |t| t.as_millis() as u64),
            same_host: args.same_host,
        })?);
        store
            .remove_all(true)
            .context("clearing the store between repetitions")?;
        puts.push(put);
        gets.push(get);
    }
    let threads = args.threads.max(1);
    // Get rows are measured against the memcpy baseline with `--same-host`.
    let base = if args.same_host { &copies } else { &cgets };
    let mut rows = vec![
        CaseResult::from_reps("put", size, batch, threads, &puts, &cputs),
        CaseResult::from_reps("get", size, batch, threads, &gets, base),
        CaseResult::from_reps("get_owned", size, batch, threads, &owned, base),
        CaseResult::from_reps("get_cold", size, batch, threads, &cold, base),
        CaseResult::from_reps("get_4proc", size, batch, procs::PROCESSES, &procs4, base),
    ];
    if args.same_host {
        let tcp = (!cgets.is_empty()).then(|| report::median(&cgets));
        for row in rows.iter_mut().filter(|r| r.op != "put") {
            row.extra.insert("baseline".into(), "memcpy".into());
            if let Some(t) = tcp {
                row.extra.insert("tcp_ceiling".into(), t.into());
            }
        }
        let share = same_host_reads as f64 / gets_done.max(1) as f64;
        rows[1].extra.insert("same_host_share".into(), share.into());
    }
    Ok(rows)
}

/// Parses a size such as `4KB` or `1048576`.
fn size_arg(s: &str) -> Result<u64> {
    mooncake_rs::parse_size(s).map_err(|e| anyhow::anyhow!(e))
}
