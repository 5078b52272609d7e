//! `mc-bench`: throughput and latency of mooncake-rs puts and gets.
//!
//! With no `--master` it starts a master and one store node as child processes (killed at
//! exit) and runs put then get for each size, checking every value read back byte for byte.

mod payload;
mod report;
mod run;

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use mc_cluster::{ClusterSpec, LocalCluster, NodeSpec};
use mooncake_rs::{Store, StoreConfig};

/// Command-line flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "mc-bench",
    about = "Throughput/latency harness for mooncake-rs"
)]
pub struct Args {
    /// An existing cluster's master (host:port); without it a local master and store node
    /// are started.
    #[arg(long)]
    pub master: Option<String>,
    /// Value sizes, comma separated (e.g. 4KB,1MB,16MB).
    #[arg(long, default_value = "4KB,1MB,16MB", value_delimiter = ',')]
    pub sizes: Vec<String>,
    /// Bytes written (and then read) per case; the op count is bytes / size, clamped to
    /// [--min-ops, --max-ops].
    #[arg(long, default_value = "256MB")]
    pub bytes: String,
    /// Fewest operations per case.
    #[arg(long, default_value_t = 64)]
    pub min_ops: u64,
    /// Most operations per case.
    #[arg(long, default_value_t = 20_000)]
    pub max_ops: u64,
    /// Client threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Keys per batch call (1 = single put/get).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Replicas per object.
    #[arg(long, default_value_t = 1)]
    pub replicas: u32,
    /// Segment size of the store node started locally.
    #[arg(long, default_value = "1GB")]
    pub segment_size: String,
    /// One JSON object per case on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let bytes = mc_bytes(&args.bytes)?;
    let sizes = args
        .sizes
        .iter()
        .map(|s| mc_bytes(s))
        .collect::<Result<Vec<u64>>>()?;
    let mut local = None;
    let master = match &args.master {
        Some(m) => m.clone(),
        None => {
            eprintln!(
                "mc-bench: starting a local master and store node ({})",
                args.segment_size
            );
            let c = LocalCluster::start(ClusterSpec {
                nodes: vec![NodeSpec {
                    segment_size: args.segment_size.clone(),
                    ..NodeSpec::default()
                }],
                ready_timeout: Duration::from_secs(120),
                ..ClusterSpec::default()
            })
            .context("starting the local cluster (build the binaries with `cargo build --release --bins`)")?;
            let addr = c.master_addr();
            local = Some(c);
            addr
        }
    };
    let store = Store::connect(StoreConfig::new(&master))
        .with_context(|| format!("connecting to {master}"))?;
    let mut all_ok = true;
    if !args.json {
        report::print_header();
    }
    for size in sizes {
        let ops = (bytes / size.max(1)).clamp(args.min_ops, args.max_ops);
        for case in run::run_case(&store, &args, size, ops)? {
            all_ok &= case.ok;
            report::print(&case, args.json);
        }
        store
            .remove_all(true)
            .context("clearing the store between cases")?;
    }
    drop(local);
    if !all_ok {
        anyhow::bail!("some operations failed or read back wrong bytes");
    }
    Ok(())
}

/// Parses a size such as `4KB` or `1048576`.
fn mc_bytes(s: &str) -> Result<u64> {
    mooncake_rs::parse_size(s).map_err(|e| anyhow::anyhow!(e))
}
