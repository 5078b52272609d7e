//! `mooncake_master` flags, with Mooncake's names, defaults and spellings.
//!
//! Both `--rpc_port=1` and `--rpc-port 1` work (see `mc_schema::units::normalize_flags`);
//! boolean flags take `--flag`, `--flag=true` or `--flag=false`; duration flags take a bare
//! number in their documented unit or a suffixed value (`5000ms`, `5s`, `30m`, `1h`).

use std::time::Duration;

use clap::{ArgAction, CommandFactory, Parser};
use mc_schema::SchemaError;
use mc_schema::units::{DurationUnit, parse_duration};

use crate::MasterError;

fn millis(s: &str) -> Result<Duration, SchemaError> {
    parse_duration(s, DurationUnit::Millis)
}

fn seconds(s: &str) -> Result<Duration, SchemaError> {
    parse_duration(s, DurationUnit::Seconds)
}

fn ratio(s: &str) -> Result<f64, MasterError> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| MasterError::RatioNotANumber { input: s.into() })?;
    if !(0.0..=1.0).contains(&v) {
        return Err(MasterError::RatioOutOfRange { value: v });
    }
    Ok(v)
}

fn strategy(s: &str) -> Result<String, MasterError> {
    match s {
        "random" | "free_ratio_first" | "local_first" | "cxl" => Ok(s.to_string()),
        _ => Err(MasterError::UnknownStrategy { name: s.into() }),
    }
}

fn allocator(s: &str) -> Result<String, MasterError> {
    match s {
        "offset" => Ok(s.to_string()),
        "cachelib" => Err(MasterError::CachelibUnsupported),
        _ => Err(MasterError::UnknownAllocator { name: s.into() }),
    }
}

fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(4)
}

/// Master configuration.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "mooncake_master",
    version,
    args_override_self = true,
    about = "mooncake-rs master: object metadata and space allocation for a distributed KV cache"
)]
pub struct MasterConfig {
    /// JSON or YAML file with the same keys as these flags; flags given on the command line
    /// override it.
    #[arg(long = "config_path")]
    pub config_path: Option<String>,
    /// RPC listen port.
    #[arg(long = "rpc_port", default_value_t = 50051)]
    pub rpc_port: u16,
    /// RPC bind address; with `--enable_ha` also the address the leader publishes, so it
    /// must be one other masters, nodes and clients reach (not `0.0.0.0`).
    #[arg(long = "rpc_address", default_value = "0.0.0.0")]
    pub rpc_address: String,
    /// Network interface (e.g. `eth0`) whose IPv4 address, looked up at start, replaces
    /// `--rpc_address`.
    #[arg(long = "rpc_interface", default_value = "")]
    pub rpc_interface: String,
    /// RPC worker threads [default: min(4, CPU cores)].
    #[arg(long = "rpc_thread_num")]
    pub rpc_thread_num: Option<usize>,
    /// Idle connection timeout in seconds; 0 disables.
    #[arg(long = "rpc_conn_timeout_seconds", default_value_t = 0)]
    pub rpc_conn_timeout_seconds: u64,
    /// Set TCP_NODELAY on RPC connections.
    #[arg(long = "rpc_enable_tcp_no_delay", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub rpc_enable_tcp_no_delay: bool,
    /// Admin HTTP bind host (`/health`, `/metrics`, inspection endpoints).
    #[arg(long = "metrics_host", default_value = "0.0.0.0")]
    pub metrics_host: String,
    /// Admin HTTP port.
    #[arg(long = "metrics_port", default_value_t = 9003)]
    pub metrics_port: u16,
    /// Serve the embedded HTTP metadata server (GET/PUT/DELETE /metadata?key=K).
    #[arg(long = "enable_http_metadata_server", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub enable_http_metadata_server: bool,
    /// Metadata server bind host.
    #[arg(long = "http_metadata_server_host", default_value = "0.0.0.0")]
    pub http_metadata_server_host: String,
    /// Metadata server port.
    #[arg(long = "http_metadata_server_port", default_value_t = 8080)]
    pub http_metadata_server_port: u16,
    /// Read lease granted by GetReplicaList / ExistKey (bare number = milliseconds).
    #[arg(long = "default_kv_lease_ttl", default_value = "5000", value_parser = millis)]
    pub default_kv_lease_ttl: Duration,
    /// A client (store node) silent this long is dropped (bare number = seconds).
    #[arg(long = "client_ttl", default_value = "10", value_parser = seconds)]
    pub client_ttl: Duration,
    /// After a start or a takeover, how long a lookup of an unknown key waits for store
    /// nodes to re-mount and report what they hold (bare number = milliseconds). Keep it
    /// above the nodes' `--heartbeat_interval`.
    #[arg(long = "recovery_grace", default_value = "3000", value_parser = millis)]
    pub recovery_grace: Duration,
    /// Soft pin lifetime when a put enables it without a TTL (bare number = milliseconds).
    #[arg(long = "default_kv_soft_pin_ttl", default_value = "1800000", value_parser = millis)]
    pub default_kv_soft_pin_ttl: Duration,
    /// Longest soft pin a put may ask for (bare number = milliseconds).
    #[arg(long = "max_kv_soft_pin_ttl", default_value = "1h", value_parser = millis)]
    pub max_kv_soft_pin_ttl: Duration,
    /// Whether eviction may take soft-pinned objects once nothing else is left.
    #[arg(long = "allow_evict_soft_pinned_objects", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub allow_evict_soft_pinned_objects: bool,
    /// Copy every object to the SSD of the node holding it after PutEnd, asynchronously
    /// (nodes started with `--enable_ssd_offload`); the copy is a disk replica that keeps
    /// the object readable once eviction drops it from memory.
    #[arg(long = "enable_offload", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub enable_offload: bool,
    /// Defer the SSD copy to when eviction picks an object; its memory is freed once the
    /// copy is durable, and a put that finds no room meanwhile waits for such copies
    /// (bounded, then NO_AVAILABLE_HANDLE). Implies `--enable_offload`.
    #[arg(long = "offload_on_evict", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub offload_on_evict: bool,
    /// Under `--offload_on_evict`, SSD copies eviction waits for at most; beyond, objects
    /// stay in memory (or, with `--offload_force_evict`, are evicted without a copy).
    #[arg(long = "offload_queue_limit", default_value_t = 1024)]
    pub offload_queue_limit: usize,
    /// When `--offload_queue_limit` copies are in flight, evict objects without a copy
    /// instead of keeping them in memory.
    #[arg(long = "offload_force_evict", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub offload_force_evict: bool,
    /// Copy an object that gets are served from SSD back into memory, on the shard that
    /// holds its SSD copy (values of one slice).
    #[arg(long = "promotion_on_hit", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub promotion_on_hit: bool,
    /// SSD hits (counted approximately, count-min) before an object is promoted; 1 promotes
    /// on the first hit.
    #[arg(long = "promotion_admission_threshold", default_value_t = 2)]
    pub promotion_admission_threshold: u32,
    /// Promotions in flight at most; more hits wait for a later get.
    #[arg(long = "promotion_queue_limit", default_value_t = 256)]
    pub promotion_queue_limit: usize,
    /// When a node's SSD quota is reached, have it delete its oldest SSD copies to make
    /// room for new ones (the master is told and forgets them) instead of stopping offload.
    /// Sent with each offload; a node's own `--enable_disk_eviction` does the same.
    #[arg(long = "enable_disk_eviction", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub enable_disk_eviction: bool,
    /// Finished copy/move tasks remembered for `query_task`; the oldest are forgotten.
    #[arg(long = "max_total_finished_tasks", default_value_t = 10_000)]
    pub max_total_finished_tasks: u32,
    /// Pending copy/move tasks at most; creating more fails with
    /// TASK_PENDING_LIMIT_EXCEEDED (-1401).
    #[arg(long = "max_total_pending_tasks", default_value_t = 10_000)]
    pub max_total_pending_tasks: u32,
    /// Copy/move tasks running on nodes at most; more wait pending.
    #[arg(long = "max_total_processing_tasks", default_value_t = 10_000)]
    pub max_total_processing_tasks: u32,
    /// A task no node fetched for this many seconds fails (0 = never).
    #[arg(long = "pending_task_timeout_sec", default_value_t = 300)]
    pub pending_task_timeout_sec: u64,
    /// A task a node has not finished after this many seconds goes back to pending, its
    /// space freed (0 = never).
    #[arg(long = "processing_task_timeout_sec", default_value_t = 300)]
    pub processing_task_timeout_sec: u64,
    /// Times a task is handed to its node before a failure is final.
    #[arg(long = "max_retry_attempts", default_value_t = 10)]
    pub max_retry_attempts: u32,
    /// Share of capacity freed when eviction runs (0..1).
    #[arg(long = "eviction_ratio", default_value = "0.05", value_parser = ratio)]
    pub eviction_ratio: f64,
    /// Usage share (0..1) at which eviction starts.
    #[arg(long = "eviction_high_watermark_ratio", default_value = "0.95", value_parser = ratio)]
    pub eviction_high_watermark_ratio: f64,
    /// After this long without PutEnd/PutRevoke, a new PutStart for the key preempts the old
    /// one (bare number = seconds).
    #[arg(long = "put_start_discard_timeout_sec", default_value = "30", value_parser = seconds)]
    pub put_start_discard_timeout_sec: Duration,
    /// After this long, an unfinished PutStart's space is released (bare number = seconds).
    #[arg(long = "put_start_release_timeout_sec", default_value = "300", value_parser = seconds)]
    pub put_start_release_timeout_sec: Duration,
    /// Put credit (this build's own): how long space a client reserved ahead of its puts
    /// is kept for it before it is freed unused (bare number = seconds; at most
    /// `--put_start_release_timeout_sec`; 0 = grant none, so every put takes PutStart,
    /// write, PutEnd). See `docs/why-fast-path.md`.
    #[arg(long = "put_credit_ttl_sec", default_value = "60", value_parser = seconds)]
    pub put_credit_ttl_sec: Duration,
    /// Most bytes of put credit one client holds (its replicas counted; `1GB`, bytes).
    #[arg(long = "put_credit_max_bytes", default_value = "1GB", value_parser = mc_schema::units::parse_size)]
    pub put_credit_max_bytes: u64,
    /// File holding the secret that signs write tokens (at least 16 bytes; surrounding
    /// whitespace is ignored). Empty: a new random secret per master process, handed to the
    /// nodes when they mount. Give every master of an HA group the same file. Re-read every
    /// 2 s and on SIGHUP: rewriting it rotates the secret without a restart (on every
    /// master of an HA group).
    #[arg(long = "cluster_secret_file", default_value = "")]
    pub cluster_secret_file: String,
    /// Placement strategy.
    #[arg(long = "allocation_strategy", default_value = "random", value_parser = strategy)]
    pub allocation_strategy: String,
    /// Take CXL segments into account (nodes started with `--enable_cxl`); needed by
    /// `--allocation_strategy=cxl`.
    #[arg(long = "enable_cxl", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub enable_cxl: bool,
    /// Per-segment allocator.
    #[arg(long = "memory_allocator", default_value = "offset", value_parser = allocator)]
    pub memory_allocator: String,
    /// Cluster id peers must present in their handshake; with HA also the coordinator key's
    /// namespace (`mooncake-store/<cluster_id>/master_view`).
    #[arg(long = "cluster_id", default_value = mc_schema::handshake::DEFAULT_CLUSTER_ID)]
    pub cluster_id: String,
    /// Run as one of several masters that elect a leader on a coordinator (etcd or Redis);
    /// standbys answer requests with the leader's address.
    #[arg(long = "enable_ha", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub enable_ha: bool,
    /// Coordinator the masters elect on: `etcd` or `redis` (Mooncake's `k8s` is not
    /// supported).
    #[arg(long = "ha_backend_type", default_value = "etcd")]
    pub ha_backend_type: String,
    /// Coordinator address: etcd endpoints `h1:2379;h2:2379`, or a Redis URL
    /// `redis://[:password@]host:port[/db]`.
    #[arg(long = "ha_backend_connstring", default_value = "")]
    pub ha_backend_connstring: String,
    /// etcd endpoints, `;` separated, each optionally `http://`; used for the etcd backend
    /// when `--ha_backend_connstring` is empty.
    #[arg(long = "etcd_endpoints", default_value = "")]
    pub etcd_endpoints: String,
    /// How long the coordinator keeps the leader's view after its last renew: a dead
    /// leader's successor takes over about this long after it died (bare number = seconds;
    /// at least 1 s). Mooncake fixes it at 5 s (`DEFAULT_MASTER_VIEW_LEASE_TTL_SEC`).
    #[arg(long = "master_view_lease_ttl_sec", default_value = "5", value_parser = seconds)]
    pub master_view_lease_ttl_sec: Duration,
    /// Write metadata snapshots periodically while this master leads (`docs/snapshots.md`);
    /// needs `--snapshot_object_store_type`.
    #[arg(long = "enable_snapshot", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub enable_snapshot: bool,
    /// Time between snapshots (bare number = seconds).
    #[arg(long = "snapshot_interval_seconds", default_value = "300", value_parser = seconds)]
    pub snapshot_interval_seconds: Duration,
    /// Longest one snapshot (walk, encode, write) may take before it is abandoned and
    /// counted as failed (bare number = seconds).
    #[arg(long = "snapshot_child_timeout_seconds", default_value = "3600", value_parser = seconds)]
    pub snapshot_child_timeout_seconds: Duration,
    /// Snapshots kept per store; older ones are deleted, never the one `latest` names.
    #[arg(long = "snapshot_retention_count", default_value_t = 10)]
    pub snapshot_retention_count: u32,
    /// Where snapshots are kept: `local` (the directory in MOONCAKE_SNAPSHOT_LOCAL_PATH) or
    /// `s3` (MOONCAKE_AWS_* variables); required with either snapshot flag.
    #[arg(long = "snapshot_object_store_type", default_value = "")]
    pub snapshot_object_store_type: String,
    /// Snapshot catalog: empty or `embedded` (the `latest` marker beside the snapshots);
    /// Mooncake's `redis` catalog is refused.
    #[arg(long = "snapshot_catalog_store_type", default_value = "")]
    pub snapshot_catalog_store_type: String,
    /// Connection string of Mooncake's `redis` catalog (accepted for compatibility; that
    /// catalog is refused).
    #[arg(long = "snapshot_catalog_store_connstring", default_value = "")]
    pub snapshot_catalog_store_connstring: String,
    /// Also keep a copy of every snapshot in this local directory (read at restore when
    /// the primary store has none).
    #[arg(long = "snapshot_backup_dir")]
    pub snapshot_backup_dir: Option<String>,
    /// At start, and when an HA leader begins a term, read the latest snapshot: pins and
    /// soft-pin deadlines come back with the objects the nodes report.
    #[arg(long = "enable_snapshot_restore", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub enable_snapshot_restore: bool,
    /// Most live allocations per segment.
    #[arg(long = "max_allocations_per_segment", default_value_t = 4_000_000)]
    pub max_allocations_per_segment: u32,
    /// Log a one-line metrics summary periodically.
    #[arg(long = "enable_metric_reporting", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub enable_metric_reporting: bool,
    /// Time between metric summary lines (bare number = seconds).
    #[arg(long = "metric_report_interval_sec", default_value = "10", value_parser = seconds)]
    pub metric_report_interval_sec: Duration,
    /// Write all log levels to one file per run in this directory
    /// (`mooncake_master.INFO.<date>-<time>.<pid>`), reachable through the stable
    /// `mooncake_master.INFO` symlink. Logs go to stderr when unset.
    #[arg(long = "log_dir")]
    pub log_dir: Option<String>,
    /// Log level filter (`error`, `warn`, `info`, `debug`, `trace`), or set RUST_LOG.
    #[arg(long = "log_level", default_value = "info")]
    pub log_level: String,
}

impl MasterConfig {
    /// Parses the process arguments (both flag spellings, plus `--config_path`); prints the
    /// problem and exits on bad input.
    pub fn from_args() -> MasterConfig {
        MasterConfig::try_from_args(std::env::args()).unwrap_or_else(|e| e.exit())
    }

    /// Parses an argument list (first element is the program name). Keys of the file named
    /// by `--config_path` come first, so command-line flags override them.
    pub fn try_from_args<I: IntoIterator<Item = String>>(
        args: I,
    ) -> Result<MasterConfig, clap::Error> {
        let mut args = mc_schema::units::normalize_flags(args);
        if let Some(path) = config_path(&args) {
            let from_file = file_args(&path)?;
            args.splice(1..1, from_file);
        }
        MasterConfig::try_parse_from(args)
    }

    /// Worker threads to run.
    pub fn threads(&self) -> usize {
        self.rpc_thread_num.unwrap_or_else(default_threads).max(1)
    }
}

/// The value of `--config_path`, in either `--config_path=X` or `--config_path X` form.
fn config_path(args: &[String]) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix("--config_path=") {
            return Some(v.to_string());
        }
        if a == "--config_path" {
            return it.next().cloned();
        }
    }
    None
}

fn config_error(msg: String) -> clap::Error {
    MasterConfig::command().error(clap::error::ErrorKind::ValueValidation, msg)
}

/// Turns a JSON or YAML file of `key: value` pairs into `--key=value` arguments.
fn file_args(path: &str) -> Result<Vec<String>, clap::Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| config_error(format!("cannot read --config_path={path}: {e}")))?;
    config_text_args(path, &text).map_err(config_error)
}

/// The keys a config file may set: the long flag names, `config_path` excepted. Built once
/// (building clap's command for every file would cost more than parsing the file).
fn known_keys() -> &'static [String] {
    static KEYS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        MasterConfig::command()
            .get_arguments()
            .filter_map(|a| a.get_long())
            .filter(|k| *k != "config_path")
            .map(str::to_string)
            .collect()
    })
}

/// The decoder of `--config_path` files: the text of one (JSON or YAML) as `--key=value`
/// arguments, for clap to parse next. Unknown keys and values that are not single scalars
/// are refused, naming the key; `path` only names the file in those messages. Public for
/// the fuzz target, which feeds it texts without writing files.
///
/// # Errors
/// The message saying what is wrong with the text.
pub fn config_text_args(path: &str, text: &str) -> Result<Vec<String>, String> {
    // YAML is a superset of JSON: one parser reads both.
    let doc: serde_yaml::Value = serde_yaml::from_str(text)
        .map_err(|e| format!("--config_path={path} is not valid JSON or YAML: {e}"))?;
    let map = match doc {
        serde_yaml::Value::Mapping(m) => m,
        serde_yaml::Value::Null => return Ok(Vec::new()),
        _ => {
            return Err(format!(
                "--config_path={path}: expected a map of keys to values"
            ));
        }
    };
    let mut out = Vec::new();
    for (k, v) in map {
        let key = match k {
            serde_yaml::Value::String(s) => s.replace('-', "_"),
            other => {
                return Err(format!(
                    "--config_path={path}: key {other:?} is not a string"
                ));
            }
        };
        if !known_keys().contains(&key) {
            return Err(format!(
                "--config_path={path}: unknown key `{key}`; the keys are the flag names of `mooncake_master --help`"
            ));
        }
        let value = match v {
            serde_yaml::Value::String(s) => s,
            serde_yaml::Value::Bool(b) => b.to_string(),
            serde_yaml::Value::Number(n) => n.to_string(),
            _ => {
                return Err(format!(
                    "--config_path={path}: key `{key}` needs a single value (a string, number or boolean)"
                ));
            }
        };
        out.push(format!("--{key}={value}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<MasterConfig, clap::Error> {
        let mut v = vec!["mooncake_master".to_string()];
        v.extend(args.iter().map(|s| s.to_string()));
        MasterConfig::try_from_args(v)
    }

    #[test]
    fn defaults_match_mooncake() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.rpc_port, 50051);
        assert_eq!(c.metrics_port, 9003);
        assert_eq!(c.default_kv_lease_ttl, Duration::from_millis(5000));
        assert_eq!(c.client_ttl, Duration::from_secs(10));
        assert_eq!(c.allocation_strategy, "random");
        assert!(c.rpc_enable_tcp_no_delay);
        assert_eq!(c.eviction_ratio, 0.05);
        assert_eq!(c.eviction_high_watermark_ratio, 0.95);
        assert_eq!(c.put_start_discard_timeout_sec, Duration::from_secs(30));
        assert_eq!(c.put_start_release_timeout_sec, Duration::from_secs(300));
        assert_eq!(c.put_credit_ttl_sec, Duration::from_secs(60));
        assert_eq!(c.put_credit_max_bytes, 1 << 30);
        assert_eq!(c.default_kv_soft_pin_ttl, Duration::from_secs(1800));
        assert!(c.allow_evict_soft_pinned_objects);
        assert!(!c.enable_ha);
        assert_eq!(c.ha_backend_type, "etcd");
        assert_eq!(c.master_view_lease_ttl_sec, Duration::from_secs(5));
        assert!(c.rpc_interface.is_empty() && c.etcd_endpoints.is_empty());
    }

    #[test]
    fn ha_flags_in_both_spellings() {
        let c = parse(&[
            "--enable-ha",
            "--etcd-endpoints=10.0.0.1:2379;10.0.0.2:2379",
            "--master_view_lease_ttl_sec=2",
            "--rpc-interface=eth0",
        ])
        .unwrap();
        assert!(c.enable_ha);
        assert_eq!(c.etcd_endpoints, "10.0.0.1:2379;10.0.0.2:2379");
        assert_eq!(c.master_view_lease_ttl_sec, Duration::from_secs(2));
        assert_eq!(c.rpc_interface, "eth0");
        let c = parse(&[
            "--enable_ha=true",
            "--ha_backend_type=redis",
            "--ha-backend-connstring=redis://127.0.0.1:6379",
            "--master-view-lease-ttl-sec=1500ms",
        ])
        .unwrap();
        assert_eq!(
            (c.ha_backend_type.as_str(), c.ha_backend_connstring.as_str()),
            ("redis", "redis://127.0.0.1:6379")
        );
        assert_eq!(c.master_view_lease_ttl_sec, Duration::from_millis(1500));
        assert!(!parse(&["--enable_ha=false"]).unwrap().enable_ha);
    }

    #[test]
    fn both_spellings_and_units() {
        let c = parse(&[
            "--rpc-port=1234",
            "--rpc_address",
            "127.0.0.1",
            "--default-kv-lease-ttl=2s",
            "--client_ttl=500ms",
            "--rpc_enable_tcp_no_delay=false",
        ])
        .unwrap();
        assert_eq!(c.rpc_port, 1234);
        assert_eq!(c.rpc_address, "127.0.0.1");
        assert_eq!(c.default_kv_lease_ttl, Duration::from_secs(2));
        assert_eq!(c.client_ttl, Duration::from_millis(500));
        assert!(!c.rpc_enable_tcp_no_delay);
    }

    fn write(name: &str, text: &str) -> String {
        let p = std::env::temp_dir().join(format!("mc-master-{}-{name}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    }

    #[test]
    fn config_files_in_json_and_yaml_with_flags_overriding() {
        let yaml = write(
            "a.yaml",
            "rpc_port: 6000\neviction-ratio: 0.2\nclient_ttl: 3s\n",
        );
        let c = parse(&[&format!("--config_path={yaml}")]).unwrap();
        assert_eq!(c.rpc_port, 6000);
        assert_eq!(c.eviction_ratio, 0.2);
        assert_eq!(c.client_ttl, Duration::from_secs(3));
        let c = parse(&["--config_path", &yaml, "--rpc_port=7000"]).unwrap();
        assert_eq!(c.rpc_port, 7000, "flags override the file");
        let json = write(
            "b.json",
            r#"{"rpc_port": 6100, "allow_evict_soft_pinned_objects": false}"#,
        );
        let c = parse(&[&format!("--config-path={json}")]).unwrap();
        assert_eq!(c.rpc_port, 6100);
        assert!(!c.allow_evict_soft_pinned_objects);
    }

    #[test]
    fn bad_config_files_name_the_key() {
        let unknown = write("c.yaml", "rpc_port: 1\nno_such_key: 2\n");
        let e = parse(&[&format!("--config_path={unknown}")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown key `no_such_key`"), "{e}");
        let bad = write("d.yaml", "eviction_ratio: 2.5\n");
        let e = parse(&[&format!("--config_path={bad}")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("eviction_ratio") && e.contains("outside 0..1"),
            "{e}"
        );
        let nested = write("e.yaml", "rpc_port: [1, 2]\n");
        let e = parse(&[&format!("--config_path={nested}")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("single value"), "{e}");
        let e = parse(&["--config_path=/nonexistent/x.yaml"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read"), "{e}");
        let garbage = write("f.yaml", ": : :\n\t- [");
        assert!(parse(&[&format!("--config_path={garbage}")]).is_err());
    }

    #[test]
    fn bad_values_are_refused_with_a_message() {
        let e = parse(&["--allocation_strategy=best"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown allocation_strategy"), "{e}");
        assert!(parse(&["--memory_allocator=cachelib"]).is_err());
        assert!(parse(&["--client_ttl=5x"]).is_err());
        assert!(parse(&["--rpc_port=70000"]).is_err());
        assert!(parse(&["--no_such_flag=1"]).is_err());
        let e = parse(&["--eviction_ratio=1.5"]).unwrap_err().to_string();
        assert!(
            e.contains("outside 0..1") && e.contains("eviction_ratio"),
            "{e}"
        );
        assert!(parse(&["--eviction_high_watermark_ratio=abc"]).is_err());
        assert!(parse(&["--put_start_discard_timeout_sec=-3"]).is_err());
    }
}
