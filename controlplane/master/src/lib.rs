//! The mooncake-rs master (`mooncake_master`).
//!
//! It owns object metadata and space allocation and never touches payload bytes. Store
//! nodes mount segments (one per shard) and heartbeat; clients ask for space (PutStart),
//! write straight to the shards, then commit (PutEnd) with the CRC of every slice; readers
//! ask where an object lives (GetReplicaList) and read straight from a shard.
//!
//! - [`config`]: flags; [`ha`]: leader election and the gate in front of the current
//!   term's metadata; [`service`]: RPC handlers; [`objects`]: sharded metadata;
//!   [`segments`]: mounted segments and placement; [`alloc`]: per-segment allocator;
//!   [`recovery`]: re-adoption of what the nodes hold, [`snapshot`]: what they cannot
//!   tell, kept across restarts; [`clock`]: time under leases; [`http`]: the admin HTTP
//!   router and status pages,
//!   [`query`]: its inspection endpoints, [`http_state`]: what both read; [`metadata`]: the
//!   embedded HTTP metadata server; [`secret`]: the write secret and its rotation.

#![forbid(unsafe_code)]

pub mod alloc;
pub mod clock;
pub mod config;
pub mod dashboard;
mod error;
pub mod ha;
pub mod http;
pub mod http_state;
pub mod logging;
pub mod metadata;
pub mod metrics;
pub mod notices;
pub mod objects;
pub mod query;
pub mod recovery;
pub mod secret;
pub mod segments;
pub mod service;
pub mod snapshot;
pub mod tasks;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::{error, info, warn};

pub use config::MasterConfig;
pub use error::MasterError;
use ha::{HaConfig, Plane};
use service::ServiceConfig;

async fn bind(
    addr: String,
    what: &'static str,
    flag: &'static str,
) -> Result<TcpListener, MasterError> {
    TcpListener::bind(&addr)
        .await
        .map_err(|source| MasterError::Bind {
            addr,
            what,
            flag,
            source,
        })
}

/// Runs the master until SIGTERM or Ctrl-C.
pub fn run(cfg: MasterConfig) -> Result<(), MasterError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.threads())
        .enable_all()
        .build()
        .map_err(MasterError::Runtime)?;
    rt.block_on(serve(cfg, shutdown_signal()))
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            error!("cannot watch SIGTERM: {e}");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => info!("SIGINT: shutting down"),
    }
}

/// Serves the master RPC and admin HTTP until `shutdown` completes. In order: check the
/// flags (and, with HA, that the coordinator answers), bind the RPC and admin ports, start
/// the admin HTTP server, then the optional metadata server, then (without HA) restore the
/// latest snapshot, then (with HA) the election, then the background tasks, and serve RPC
/// on this task until `shutdown`; with HA the leader then resigns before the server drains.
pub async fn serve(
    cfg: MasterConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), MasterError> {
    if cfg.allocation_strategy == "cxl" && !cfg.enable_cxl {
        return Err(MasterError::CxlUnsupported);
    }
    let rpc_host = rpc_host(&cfg)?;
    let ha = HaConfig::from_config(&cfg, &rpc_host)?;
    let clock: Arc<dyn clock::Clock> = Arc::new(clock::SystemClock::default());
    let snapshots = snapshot::Snapshots::from_config(&cfg, clock.clone())?;
    let elector = match &ha {
        Some(h) => Some(ha::supervisor::connect(h, &cfg.cluster_id).await?),
        None => None,
    };
    let rpc_addr = format!("{rpc_host}:{}", cfg.rpc_port);
    let rpc = bind(rpc_addr.clone(), "master RPC", "rpc_port").await?;
    let http_addr = format!("{}:{}", cfg.metrics_host, cfg.metrics_port);
    let http = bind(http_addr.clone(), "admin HTTP", "metrics_port").await?;
    info!("Starting Mooncake Master Service (mooncake-rs)");
    info!("Port: {}  Max threads: {}", cfg.rpc_port, cfg.threads());
    info!("Master service listening on {rpc_addr}; admin HTTP on {http_addr}");

    let served_address = match &ha {
        None => rpc_addr.clone(),
        Some(h) => h.advertise.clone(),
    };
    let write_secret = match (&ha, cfg.cluster_secret_file.is_empty()) {
        (Some(h), true) => shared_write_secret(h, &cfg.cluster_id).await,
        _ => write_secret(&cfg.cluster_secret_file)?,
    };
    let service = service_config(&cfg, write_secret);
    let write_secrets = service.write_secrets.clone();
    let plane = Arc::new(match &ha {
        None => Plane::standalone(service, clock.clone(), rpc_addr),
        Some(h) => Plane::for_ha(service, clock.clone(), h.advertise.clone()),
    });
    if !cfg.cluster_secret_file.is_empty() {
        secret::watch::spawn(
            cfg.cluster_secret_file.clone(),
            write_secrets.clone(),
            plane.clone(),
            clock,
        );
    }
    let source = plane.clone();
    let snapshot_stats = snapshots
        .as_ref()
        .map_or_else(Default::default, |s| s.stats.clone());
    let state = http_state::HttpState {
        plane: plane.clone(),
        metrics: metrics::MasterMetrics::with_source(
            plane.rpc_metrics(),
            Arc::new(move || source.service()),
        )
        .with_snapshots(snapshot_stats.clone())
        .with_write_secrets(write_secrets.clone()),
        snapshots: snapshot_stats,
        rpc_address: served_address,
        cluster_id: cfg.cluster_id.clone(),
        roster: match &ha {
            Some(h) => ha::roster::start(h, &cfg.cluster_id, cfg.metrics_port).await,
            None => None,
        },
        write_secrets,
    };
    tokio::spawn(async move {
        if let Err(e) = axum::serve(http, http::router(state)).await {
            error!("admin HTTP server failed: {e}");
        }
    });
    if cfg.enable_http_metadata_server {
        spawn_metadata_server(&cfg).await?;
    }
    if let (None, Some(snaps)) = (&ha, &snapshots) {
        restore_standalone(snaps, &plane).await;
    }
    if let (Some(h), Some(elector)) = (&ha, elector) {
        ha::supervisor::start(plane.clone(), elector, h, snapshots.clone())?;
    }
    if let Some(snaps) = &snapshots {
        snaps.start_writer(plane.clone());
    }
    spawn_background_tasks(&cfg, &plane);

    let resign = plane.clone();
    let shutdown = async move {
        shutdown.await;
        resign.resign().await;
    };
    mc_rpc::serve(rpc, plane, rpc_server_config(&cfg), shutdown).await;
    info!("master stopped");
    Ok(())
}

/// Restores the latest snapshot into a standalone master's metadata before it serves RPC
/// (with `--enable_snapshot_restore`), so the first node reports already find its hints.
async fn restore_standalone(snaps: &snapshot::Snapshots, plane: &Plane) {
    if !snaps.restores() {
        return;
    }
    if let (Some(prepared), Some(svc)) = (snaps.prepare().await, plane.service()) {
        prepared.apply(&svc);
    }
}

/// The host the RPC server binds (and, with HA, publishes): the IPv4 address of
/// `--rpc_interface` when given, else `--rpc_address`.
fn rpc_host(cfg: &MasterConfig) -> Result<String, MasterError> {
    let name = cfg.rpc_interface.trim();
    if name.is_empty() {
        return Ok(cfg.rpc_address.clone());
    }
    let ip = mc_topology::interface_ipv4(name).map_err(|source| MasterError::RpcInterface {
        name: name.to_string(),
        source,
    })?;
    info!("--rpc_interface={name}: RPC address {ip}");
    Ok(ip.to_string())
}

/// The secret write tokens are signed with at start: `--cluster_secret_file`'s contents
/// (re-read while running, [`secret::watch`]), or a new random one.
fn write_secret(path: &str) -> Result<Arc<[u8]>, MasterError> {
    if path.is_empty() {
        info!("write tokens signed with a new random secret (no --cluster_secret_file)");
        return Ok(mc_schema::token::new_secret().into());
    }
    let secret = secret::watch::read_secret_file(path).map_err(|p| MasterError::SecretFile {
        path: path.to_string(),
        reason: format!("{}; {}", p.reason, p.fix),
    })?;
    info!(
        "write tokens signed with the secret of {path} (fingerprint {}); rewrite the file to rotate it",
        mc_schema::token::fingerprint(&secret)
    );
    Ok(secret)
}

/// How long an HA master waits for the coordinator to agree on the write secret.
const SECRET_TIMEOUT: Duration = Duration::from_secs(5);

/// With HA and no `--cluster_secret_file`: the secret stored on the coordinator, so every
/// master signs write tokens alike (`mc_coord::elect::secret`); the first master stores its
/// own. A coordinator that does not answer in time leaves this master its own random
/// secret (logged): nodes take a leader's secret when they mount with it, so a failover
/// still works, only tokens of the old leader's puts still in flight then fail.
async fn shared_write_secret(ha: &HaConfig, cluster_id: &str) -> Arc<[u8]> {
    let candidate = mc_schema::token::new_secret();
    match mc_coord::elect::secret::shared_secret(
        &ha.locator,
        cluster_id,
        &candidate,
        SECRET_TIMEOUT,
    )
    .await
    {
        Ok(s) if s.len() >= mc_schema::token::MIN_SECRET_BYTES => {
            info!("write tokens signed with the cluster's secret kept on the coordinator");
            s.into()
        }
        Ok(s) => {
            warn!(
                "the write secret on the coordinator holds {} bytes, too few; signing with a random secret of this master",
                s.len()
            );
            candidate.into()
        }
        Err(e) => {
            warn!(
                "cannot agree on the write secret with the coordinator ({e}); signing with a random secret of this master"
            );
            candidate.into()
        }
    }
}

/// The handlers' tunables, from the flags.
fn service_config(cfg: &MasterConfig, write_secret: Arc<[u8]>) -> ServiceConfig {
    let ms = |d: Duration| d.as_millis() as u64;
    let credit_ttl_ms = ms(cfg.put_credit_ttl_sec).min(ms(cfg.put_start_release_timeout_sec));
    ServiceConfig {
        policy: objects::Policy {
            lease_ms: ms(cfg.default_kv_lease_ttl),
            default_soft_pin_ms: ms(cfg.default_kv_soft_pin_ttl),
            max_soft_pin_ms: ms(cfg.max_kv_soft_pin_ttl),
            allow_evict_soft_pinned: cfg.allow_evict_soft_pinned_objects,
            discard_ms: ms(cfg.put_start_discard_timeout_sec),
            release_ms: ms(cfg.put_start_release_timeout_sec),
            offload: cfg.enable_offload || cfg.offload_on_evict,
            offload_on_evict: cfg.offload_on_evict,
            offload_queue_limit: cfg.offload_queue_limit.max(1),
            offload_force_evict: cfg.offload_force_evict,
            promotion_on_hit: cfg.promotion_on_hit,
            promotion_threshold: cfg.promotion_admission_threshold.max(1),
            promotion_queue_limit: cfg.promotion_queue_limit,
            disk_eviction: cfg.enable_disk_eviction,
            // Credit is space of a put not finished yet: never kept longer than that.
            credit_ttl_ms,
            credit_max_client_bytes: cfg.put_credit_max_bytes,
        },
        client_ttl_ms: ms(cfg.client_ttl),
        recovery_grace_ms: ms(cfg.recovery_grace),
        max_allocations_per_segment: cfg.max_allocations_per_segment,
        eviction_high_watermark_ratio: cfg.eviction_high_watermark_ratio,
        eviction_ratio: cfg.eviction_ratio,
        strategy: segments::Strategy::from_name(&cfg.allocation_strategy).unwrap_or_default(),
        admin_port: cfg.metrics_port,
        view_version: 1,
        // A secret stays accepted (as the shards' previous one) at least as long as a
        // client may hold put credit signed with it.
        write_secrets: Arc::new(secret::WriteSecrets::new(write_secret, credit_ttl_ms)),
        task_limits: tasks::TaskLimits {
            max_finished: cfg.max_total_finished_tasks as usize,
            max_pending: cfg.max_total_pending_tasks as usize,
            max_processing: cfg.max_total_processing_tasks.max(1) as usize,
            pending_timeout_ms: cfg.pending_task_timeout_sec.saturating_mul(1000),
            processing_timeout_ms: cfg.processing_task_timeout_sec.saturating_mul(1000),
            max_attempts: cfg.max_retry_attempts.max(1),
        },
    }
}

/// The RPC server's identity and connection settings, from the flags.
fn rpc_server_config(cfg: &MasterConfig) -> mc_rpc::ServerConfig {
    mc_rpc::ServerConfig {
        cluster_id: cfg.cluster_id.clone(),
        idle_timeout: (cfg.rpc_conn_timeout_seconds > 0)
            .then(|| Duration::from_secs(cfg.rpc_conn_timeout_seconds)),
        tcp_nodelay: cfg.rpc_enable_tcp_no_delay,
        ..Default::default()
    }
}

/// Binds and starts the embedded HTTP metadata server (`--enable_http_metadata_server`).
async fn spawn_metadata_server(cfg: &MasterConfig) -> Result<(), MasterError> {
    let addr = format!(
        "{}:{}",
        cfg.http_metadata_server_host, cfg.http_metadata_server_port
    );
    let listener = bind(
        addr.clone(),
        "HTTP metadata server",
        "http_metadata_server_port",
    )
    .await?;
    info!("HTTP metadata server on {addr}");
    let router = metadata::router(Default::default());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            error!("HTTP metadata server failed: {e}");
        }
    });
    Ok(())
}

/// Starts the periodic tasks over the current term's metadata (none while standing by):
/// the metric summary line (`--enable_metric_reporting`), the reaper of silent clients (a
/// quarter of `--client_ttl`, 100 ms to 1 s) and the upkeep round (eviction and PutStart
/// cleanup) every 100 ms.
fn spawn_background_tasks(cfg: &MasterConfig, plane: &Arc<Plane>) {
    if cfg.enable_metric_reporting {
        let reporter = plane.clone();
        let period = cfg.metric_report_interval_sec.max(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Some(svc) = reporter.service() {
                    info!("metrics: {}", http::summary_line(&svc).trim_end());
                }
            }
        });
    }

    let reaper = plane.clone();
    let period = Duration::from_millis((cfg.client_ttl.as_millis() as u64 / 4).clamp(100, 1000));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            if let Some(svc) = reaper.service() {
                svc.reap_silent_clients();
            }
        }
    });

    // Eviction and PutStart cleanup run off the RPC workers, one shard lock at a time.
    let upkeep = plane.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            let Some(svc) = upkeep.service() else {
                continue;
            };
            if tokio::task::spawn_blocking(move || svc.maintain())
                .await
                .is_err()
            {
                error!("eviction task panicked");
            }
        }
    });
}
