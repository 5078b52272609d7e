//! `mc-bench`: throughput and latency of mooncake-rs, with a same-run ceiling.
//!
//! With no `--master` it starts a master and one store node as child processes (killed at
//! exit). For each size and batch it interleaves, `--repeat` times: a ceiling measurement,
//! the put phase, a ceiling measurement, the get phase. It reports medians, the spread, and
//! the ratio of each case to its ceiling. Every value read back is checked byte for byte.

mod ceiling;
mod master;
mod payload;
mod report;
mod run;
mod zipf;

use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use mc_cluster::{ClusterSpec, LocalCluster, NodeSpec};
use mooncake_rs::{ReplicateConfig, Store, StoreConfig};

use report::CaseResult;
use run::{Op, Phase};

/// Command-line flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "mc-bench",
    about = "Throughput/latency harness for mooncake-rs with same-run ceilings",
    after_help = "`mc-bench ceiling-server` runs the ceiling's server side (started by mc-bench itself)."
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
    /// Working set per case: bytes put (then read); keys = bytes / size.
    #[arg(long, default_value = "512MB")]
    pub bytes: String,
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
    /// Workload: `kv` (put then get of values through the client) or `master`
    /// (metadata-only RPC throughput: PutStart+PutEnd pairs, then GetReplicaList).
    #[arg(long, default_value = "kv")]
    pub scenario: String,
    /// Keys per case (0 = bytes / size); the `master` scenario defaults to 100000.
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
    /// Skip the ceiling measurements.
    #[arg(long)]
    pub no_ceiling: bool,
    /// Segment size of the store node started locally.
    #[arg(long, default_value = "1GB")]
    pub segment_size: String,
    /// One JSON object per case on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn main() -> Result<()> {
    if std::env::args().nth(1).as_deref() == Some("ceiling-server") {
        return ceiling::serve();
    }
    let args = Args::parse();
    if args.scenario != "kv" && args.scenario != "master" {
        bail!(
            "unknown --scenario `{}`; available: kv, master",
            args.scenario
        );
    }
    let bytes = size_arg(&args.bytes)?;
    let sizes = args
        .sizes
        .iter()
        .map(|s| size_arg(s))
        .collect::<Result<Vec<u64>>>()?;
    let mut local = None;
    let mut cap = u64::MAX;
    let master = match &args.master {
        Some(m) => m.clone(),
        None => {
            let nodes = args.nodes.max(1);
            eprintln!(
                "mc-bench: starting a local master and {nodes} store node(s) ({} each)",
                args.segment_size
            );
            cap = size_arg(&args.segment_size)? / 10 * 9;
            let c = LocalCluster::start(ClusterSpec {
                nodes: (0..nodes)
                    .map(|i| NodeSpec {
                        host: format!("127.0.0.{}", i + 1),
                        segment_size: args.segment_size.clone(),
                        // Hugepage-backed segments when the pool has room (fewer TLB misses
                        // in the kernel's copies); plain pages otherwise, with a warning in
                        // the log.
                        extra_args: vec!["--hugepages=try".into()],
                        ..NodeSpec::default()
                    })
                    .collect(),
                ready_timeout: Duration::from_secs(120),
                ..ClusterSpec::default()
            })
            .context("starting the local cluster (build the binaries with `cargo build --release --bins`)")?;
            let addr = c.master_addr();
            local = Some(c);
            addr
        }
    };
    if args.scenario == "master" {
        let master_pid = local.as_ref().and_then(LocalCluster::master_pid);
        return run_master_scenario(&args, &master, &sizes, master_pid);
    }
    let store = Store::connect(StoreConfig::new(&master))
        .with_context(|| format!("connecting to {master}"))?;
    let ceiling = if args.no_ceiling {
        None
    } else {
        Some(ceiling::CeilingServer::start()?)
    };
    if !args.json {
        report::print_header();
    }
    let mut all_ok = true;
    for &size in &sizes {
        for &batch in &args.batch {
            for case in run_case(
                &store,
                ceiling.as_ref(),
                &args,
                size,
                batch.max(1),
                bytes.min(cap),
            )? {
                all_ok &= case.ok;
                report::print(&case, args.json);
            }
        }
    }
    drop(local);
    if !all_ok {
        bail!("some operations failed or read back wrong bytes");
    }
    Ok(())
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
            let r = master::run(&sc)?;
            for c in &r.cases {
                all_ok &= c.ok;
                report::print(c, args.json);
            }
            let keys = sc.keys + sc.prefill;
            // Keys still held at the end of the put phase, when known: every key put, less
            // those the get phase found evicted (prefilled keys are not read back).
            let held = (sc.expect_eviction && sc.prefill == 0).then(|| keys - r.evicted);
            if let Some(growth) = r.rss_growth_bytes {
                let per_key = growth as f64 / keys as f64;
                let per_held = held.map(|h| growth as f64 / h.max(1) as f64);
                if args.json {
                    println!(
                        "{}",
                        serde_json::json!({"op": "master_rss", "keys": keys, "bytes_per_key": per_key,
                            "keys_held": held, "bytes_per_key_held": per_held})
                    );
                } else {
                    print!("master RSS growth: {per_key:.0} bytes per key over {keys} keys");
                    match (held, per_held) {
                        (Some(h), Some(b)) => println!(" ({b:.0} bytes per key held, {h} held)"),
                        _ => println!(),
                    }
                }
            }
            if sc.expect_eviction {
                if args.json {
                    println!(
                        "{}",
                        serde_json::json!({"op": "get_meta_evicted", "keys": sc.keys, "evicted": r.evicted})
                    );
                } else {
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
    ceiling: Option<&ceiling::CeilingServer>,
    args: &Args,
    size: u64,
    batch: usize,
    working_set: u64,
) -> Result<Vec<CaseResult>> {
    let keys = if args.keys > 0 {
        args.keys
    } else {
        (working_set / size.max(1)).max(batch as u64)
    };
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
        // Reads cover the keys the put phase wrote (all of them unless --duration cut it).
        let get = run::run(store, &phase(Op::Get, put.ops));
        store
            .remove_all(true)
            .context("clearing the store between repetitions")?;
        puts.push(put);
        gets.push(get);
    }
    let threads = args.threads.max(1);
    Ok(vec![
        CaseResult::from_reps("put", size, batch, threads, &puts, &cputs),
        CaseResult::from_reps("get", size, batch, threads, &gets, &cgets),
    ])
}

/// Parses a size such as `4KB` or `1048576`.
fn size_arg(s: &str) -> Result<u64> {
    mooncake_rs::parse_size(s).map_err(|e| anyhow::anyhow!(e))
}
