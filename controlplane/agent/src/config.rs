//! `mooncake_store` flags.

use std::time::Duration;

use clap::Parser;
use mc_hugepages::HugePolicy;
use mc_schema::SchemaError;
use mc_schema::units::{DurationUnit, parse_duration, parse_size};
use mc_topology::CoreSpec;

use crate::NodeError;

fn size(s: &str) -> Result<u64, SchemaError> {
    parse_size(s)
}

fn millis(s: &str) -> Result<Duration, SchemaError> {
    parse_duration(s, DurationUnit::Millis)
}

fn locator(s: &str) -> Result<String, mc_coord::CoordError> {
    mc_coord::MasterLocator::parse(s).map(|_| s.trim().to_string())
}

fn protocol(s: &str) -> Result<String, NodeError> {
    match s {
        "tcp" => Ok(s.into()),
        "rdma" => Err(NodeError::RdmaUnsupported),
        _ => Err(NodeError::UnknownProtocol { name: s.into() }),
    }
}

/// Store node configuration.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "mooncake_store",
    version,
    about = "mooncake-rs store node: contributes memory to the cluster and serves transfers"
)]
pub struct StoreConfig {
    /// Where the master is: its RPC address `host:port`, or the coordinator HA masters
    /// elect on, `etcd://h1:2379;h2:2379` or `redis://host:port` (the node follows the
    /// leader).
    #[arg(
        long = "master_server",
        alias = "master_server_address",
        default_value = "127.0.0.1:50051",
        value_parser = locator
    )]
    pub master_server: String,
    /// Host name or address this node binds its data ports on and advertises; also its
    /// failure domain.
    #[arg(long = "local_hostname", default_value = "localhost")]
    pub local_hostname: String,
    /// Memory this node contributes (split evenly across shards, each at least 16 MiB):
    /// bytes or a size such as 4GB or 512MB.
    #[arg(long = "global_segment_size", default_value = "4GB", value_parser = size)]
    pub global_segment_size: u64,
    /// Shards: `auto`, a count, or a core list such as `0,2,4-7`.
    #[arg(long = "cores", default_value = "auto")]
    pub cores: CoreSpec,
    /// Data port of the first shard (shard i listens on data_port + i); 0 = ephemeral.
    #[arg(long = "data_port", default_value_t = 0)]
    pub data_port: u16,
    /// REST and metrics port.
    #[arg(long = "port", default_value_t = 8080)]
    pub port: u16,
    /// REST bind address.
    #[arg(long = "rest_host", default_value = "0.0.0.0")]
    pub rest_host: String,
    /// Largest REST request body (a `PUT /api/put` value travels in it); larger bodies get
    /// 413.
    #[arg(long = "rest_body_limit", default_value = "100MB", value_parser = size)]
    pub rest_body_limit: u64,
    /// Cluster id (must match the masters'); when not given, `MC_STORE_CLUSTER_ID`, else
    /// `mooncake_cluster` (see [`StoreConfig::cluster_id`]).
    #[arg(long = "cluster_id")]
    pub cluster_id_flag: Option<String>,
    /// Metadata service (`P2PHANDSHAKE` or http://host:port/metadata). Transfers here need
    /// none; accepted for compatibility.
    #[arg(long = "metadata_server", default_value = "P2PHANDSHAKE")]
    pub metadata_server: String,
    /// Transport: `tcp` (RDMA needs a device and the `rdma` feature).
    #[arg(long = "protocol", default_value = "tcp", value_parser = protocol)]
    pub protocol: String,
    /// NICs this node uses, comma separated (netdevs or RDMA devices such as `mlx5_0`), when
    /// `MC_MS_AUTO_DISC=0`; with discovery on (the default) NICs come from sysfs, narrowed
    /// by `MC_MS_FILTERS`. Shards are placed on cores near them.
    #[arg(long = "device_name", alias = "rdma_devices", default_value = "")]
    pub device_name: String,
    /// Hugepages for segment memory: never, try, require. MC_STORE_USE_HUGEPAGE=1 means try.
    #[arg(long = "hugepages", default_value = "never")]
    pub hugepages: HugePolicy,
    /// Hugepage size when hugepages are used: 2MB or 1GB (Mooncake's
    /// `MC_STORE_HUGEPAGE_SIZE`).
    #[arg(
        long = "hugepage_size",
        env = "MC_STORE_HUGEPAGE_SIZE",
        default_value = "2MB",
        value_parser = mc_hugepages::parse_huge_page_size
    )]
    pub hugepage_size: usize,
    /// Memory reserved at start for segments mounted later (`/api/mount`), which then need
    /// no mapping or hugepages of their own; unset: no arena (Mooncake's
    /// `MC_MMAP_ARENA_POOL_SIZE`).
    #[arg(long = "mmap_arena_pool_size", env = "MC_MMAP_ARENA_POOL_SIZE", value_parser = size)]
    pub mmap_arena_pool_size: Option<u64>,
    /// No arena even when a pool size is set (Mooncake's `MC_DISABLE_MMAP_ARENA=1`).
    #[arg(long = "disable_mmap_arena", env = "MC_DISABLE_MMAP_ARENA")]
    pub disable_mmap_arena: bool,
    /// io_uring buffer memory per shard (counted against `ulimit -l`).
    #[arg(long = "io_memory", default_value = "2MB", value_parser = size)]
    pub io_memory: u64,
    /// Time between heartbeats to the master (bare number = milliseconds).
    #[arg(long = "heartbeat_interval", default_value = "1000", value_parser = millis)]
    pub heartbeat_interval: Duration,
    /// Deadline of one master call (bare number = milliseconds).
    #[arg(long = "rpc_timeout", default_value = "5000", value_parser = millis)]
    pub rpc_timeout: Duration,
    /// On SIGTERM, longest wait for in-flight transfers before unmounting (bare number =
    /// milliseconds).
    #[arg(long = "drain_timeout", default_value = "30s", value_parser = millis)]
    pub drain_timeout: Duration,
    /// Log level filter, or set RUST_LOG.
    #[arg(long = "log_level", default_value = "info")]
    pub log_level: String,
    /// Keep offloaded copies of objects on local SSD (the master decides what goes there:
    /// its `--enable_offload`).
    #[arg(long = "enable_ssd_offload", default_value_t = false)]
    pub enable_ssd_offload: bool,
    /// Directory of the SSD record files, on a file system that takes O_DIRECT (ext4,
    /// xfs; not tmpfs). Each shard uses `shard-<i>/` in it.
    #[arg(long = "ssd_offload_path", env = "MOONCAKE_OFFLOAD_FILE_STORAGE_PATH")]
    pub ssd_offload_path: Option<std::path::PathBuf>,
    /// Bytes the SSD tier may fill on this node (split over the shards); 0 = 90% of the
    /// file system's free space at start.
    #[arg(
        long = "ssd_quota_bytes",
        env = "MOONCAKE_OFFLOAD_TOTAL_SIZE_LIMIT_BYTES",
        default_value = "0",
        value_parser = size
    )]
    pub ssd_quota_bytes: u64,
    /// Size of one SSD record file.
    #[arg(long = "ssd_file_size", default_value = "1GB", value_parser = size)]
    pub ssd_file_size: u64,
    /// Offloads a shard queues at most; more are dropped (the object stays in memory).
    #[arg(long = "ssd_offload_queue_limit", default_value_t = 1024)]
    pub ssd_offload_queue_limit: usize,
    /// Run the shards and the agent in this one process instead of the supervisor with its
    /// `dataplane` and `agent` children (`docs/node-process.md`): a crash of either half
    /// then takes the whole node down.
    #[arg(long = "single_process", default_value_t = false)]
    pub single_process: bool,
    /// Record writes between two SSD index checkpoints of a shard at least (more once an
    /// eighth of its records is more); a warm restart scans only the log after the last
    /// one. 0 = never (a restart scans the whole log).
    #[arg(long = "ssd_checkpoint_every", default_value_t = mc_dataplane::ssd::DEFAULT_CHECKPOINT_EVERY)]
    pub ssd_checkpoint_every: u64,
    /// Mount CXL memory (a DAX device, or a file standing in for one) as a segment named
    /// `<endpoint>/cxl`, which the master's `--allocation_strategy=cxl` prefers.
    #[arg(long = "enable_cxl", default_value_t = false)]
    pub enable_cxl: bool,
    /// The DAX device (or stand-in file) of the CXL memory.
    #[arg(long = "cxl_path", default_value = "/dev/dax0.0")]
    pub cxl_path: String,
    /// Bytes of CXL memory to map; 0 = the whole device (its sysfs size) or file.
    #[arg(long = "cxl_size", env = "MC_CXL_DEV_SIZE", default_value = "0", value_parser = size)]
    pub cxl_size: u64,
    /// When the SSD quota is reached, delete the oldest SSD copies to make room (the master
    /// is told and forgets them) instead of stopping offload.
    #[arg(long = "enable_disk_eviction", default_value_t = false)]
    pub enable_disk_eviction: bool,
}

impl StoreConfig {
    /// The cluster id this node presents: `--cluster_id` when given, else
    /// `MC_STORE_CLUSTER_ID`, else `mooncake_cluster` (Mooncake's rule for clients).
    pub fn cluster_id(&self) -> String {
        self.cluster_id_flag
            .clone()
            .filter(|id| !id.is_empty())
            .unwrap_or_else(mc_coord::cluster_id_from_env)
    }

    /// The CXL memory to mount, if enabled: `--cxl_path` and the bytes to map (`--cxl_size`,
    /// or the whole file or DAX device when 0).
    pub fn cxl(&self) -> Result<Option<(String, u64)>, NodeError> {
        if !self.enable_cxl {
            return Ok(None);
        }
        let path = self.cxl_path.clone();
        let bad =
            |why: String| NodeError::Config(format!("--enable_cxl with --cxl_path={path}: {why}"));
        let meta = std::fs::metadata(&path).map_err(|e| bad(e.to_string()))?;
        if self.cxl_size > 0 {
            return Ok(Some((path, self.cxl_size)));
        }
        let size = if meta.is_file() {
            meta.len()
        } else {
            // Device DAX: /sys/bus/dax/devices/<name>/size.
            let name = std::path::Path::new(&path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            std::fs::read_to_string(format!("/sys/bus/dax/devices/{name}/size"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| {
                    bad("cannot tell its size; give --cxl_size (or MC_CXL_DEV_SIZE)".into())
                })?
        };
        if size == 0 {
            return Err(bad("it is empty; give --cxl_size or a larger file".into()));
        }
        Ok(Some((path, size)))
    }

    /// The SSD tier of each of `shards` shards, if enabled: the directory must be given,
    /// and the quota (0 = 90% of the free space) is split evenly.
    pub fn ssd(&self, shards: usize) -> Result<Option<mc_dataplane::ssd::SsdConfig>, NodeError> {
        if !self.enable_ssd_offload {
            return Ok(None);
        }
        let Some(dir) = self.ssd_offload_path.clone() else {
            return Err(NodeError::Config(
                "--enable_ssd_offload needs --ssd_offload_path (or MOONCAKE_OFFLOAD_FILE_STORAGE_PATH)".into(),
            ));
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| NodeError::Config(format!("--ssd_offload_path={}: {e}", dir.display())))?;
        let total = match self.ssd_quota_bytes {
            0 => mc_dataplane::ssd::default_quota_bytes(&dir).map_err(|e| {
                NodeError::Config(format!(
                    "--ssd_offload_path={}: cannot read its free space: {e}",
                    dir.display()
                ))
            })?,
            q => q,
        };
        Ok(Some(mc_dataplane::ssd::SsdConfig {
            dir,
            quota_bytes: total / shards.max(1) as u64,
            file_bytes: self.ssd_file_size,
            queue_limit: self.ssd_offload_queue_limit,
            evict_oldest: self.enable_disk_eviction,
            checkpoint_every: self.ssd_checkpoint_every,
        }))
    }

    /// Parses an argument list (first element is the program name), both flag spellings.
    pub fn try_from_args<I: IntoIterator<Item = String>>(
        args: I,
    ) -> Result<StoreConfig, clap::Error> {
        let mut cfg = StoreConfig::try_parse_from(mc_schema::units::normalize_flags(args))?;
        if cfg.hugepages == HugePolicy::Never
            && std::env::var("MC_STORE_USE_HUGEPAGE").as_deref() == Ok("1")
        {
            cfg.hugepages = HugePolicy::Try;
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<StoreConfig, clap::Error> {
        let mut v = vec!["mooncake_store".to_string()];
        v.extend(args.iter().map(|s| s.to_string()));
        StoreConfig::try_from_args(v)
    }

    #[test]
    fn defaults_and_spellings() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.global_segment_size, 4 << 30);
        assert_eq!(c.port, 8080);
        assert_eq!(c.cores, CoreSpec::Auto);
        let c = parse(&[
            "--master-server-address=10.0.0.1:1",
            "--global_segment_size",
            "512MB",
            "--cores=2",
        ])
        .unwrap();
        assert_eq!(c.master_server, "10.0.0.1:1");
        assert_eq!(c.global_segment_size, 512 << 20);
        assert_eq!(c.cores, CoreSpec::Count(2));
        let c = parse(&[
            "--master_server=etcd://h1:2379;h2:2379",
            "--cluster-id=blue",
        ])
        .unwrap();
        assert_eq!(c.master_server, "etcd://h1:2379;h2:2379");
        assert_eq!(c.cluster_id(), "blue");
        assert!(parse(&["--master_server=redis://h:6379/1"]).is_ok());
        assert_eq!(c.hugepage_size, 2 << 20);
        assert_eq!(c.mmap_arena_pool_size, None);
        let c = parse(&[
            "--hugepage-size=1GB",
            "--mmap_arena_pool_size=8gb",
            "--disable_mmap_arena",
        ])
        .unwrap();
        assert_eq!(c.hugepage_size, 1 << 30);
        assert_eq!(c.mmap_arena_pool_size, Some(8 << 30));
        assert!(c.disable_mmap_arena);
        let e = parse(&["--hugepage_size=4MB"]).unwrap_err().to_string();
        assert!(e.contains("2MB and 1GB"), "{e}");
        let c = parse(&["--rdma-devices=mlx5_0,mlx5_1"]).unwrap();
        assert_eq!(c.device_name, "mlx5_0,mlx5_1");
        let e = parse(&["--master_server=k8s://x"]).unwrap_err().to_string();
        assert!(e.contains("etcd, redis"), "{e}");
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse(&["--global_segment_size=lots"]).is_err());
        assert!(
            parse(&["--protocol=rdma"])
                .unwrap_err()
                .to_string()
                .contains("no RDMA")
        );
        assert!(parse(&["--cores=0,,1"]).is_err());
    }
}
