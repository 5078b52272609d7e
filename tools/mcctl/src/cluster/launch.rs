//! Starting one detached process and waiting until it answers, and the command lines of
//! masters, nodes and Prometheus.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use mc_cluster::NodeHealth;
use mc_cluster::detached::{DetachedCommand, spawn_detached};
use mc_cluster::probe::{PROBE_TIMEOUT, http_get};
use serde_json::Value;

use super::state::{Ha, LOOPBACK, Proc, State, log_path};

/// Longest wait for one process to answer after it is spawned.
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// Pause between two readiness probes.
const POLL: Duration = Duration::from_millis(100);
/// Log lines quoted when a process fails to start.
const LOG_LINES: usize = 20;

/// Spawns `binary args` detached, in `dir`, logging to `DIR/logs/<name>.log`.
///
/// # Errors
/// When the log cannot be opened or the binary cannot run.
pub fn spawn(dir: &Path, name: &str, binary: &Path, args: Vec<String>) -> Result<(Child, Proc)> {
    let log = log_path(dir, name);
    let (child, id) = spawn_detached(&DetachedCommand {
        what: name,
        binary,
        args: &args,
        env: &[],
        cwd: dir,
        log: &log,
    })?;
    let proc = Proc {
        name: name.to_string(),
        binary: binary.to_path_buf(),
        args,
        pid: id.pid,
        start_ticks: id.start_ticks,
    };
    Ok((child, proc))
}

/// Polls `probe` until it returns `Ok`, the process exits, or [`READY_TIMEOUT`] passes.
///
/// # Errors
/// On an early exit or a timeout, naming the process and quoting its log's last lines.
pub fn wait_ready(
    dir: &Path,
    child: &mut Child,
    name: &str,
    mut probe: impl FnMut() -> Result<(), String>,
) -> Result<()> {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "{name} exited with {status} while starting; last lines of {}:\n{}",
                log_path(dir, name).display(),
                log_tail(dir, name, LOG_LINES)
            );
        }
        match probe() {
            Ok(()) => return Ok(()),
            Err(last) if started.elapsed() >= READY_TIMEOUT => bail!(
                "{name} did not become ready within {READY_TIMEOUT:?} (last probe: {last}); \
                 last lines of {}:\n{}",
                log_path(dir, name).display(),
                log_tail(dir, name, LOG_LINES)
            ),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// The last `lines` lines of a process's log.
pub fn log_tail(dir: &Path, name: &str, lines: usize) -> String {
    let text = std::fs::read_to_string(log_path(dir, name)).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `GET addr path` as JSON, or why not.
///
/// # Errors
/// A one-line reason: no answer, a status other than 200, or a body that is not JSON.
pub fn get_json(addr: &str, path: &str) -> Result<Value, String> {
    let r = http_get(addr, path, PROBE_TIMEOUT).map_err(|e| format!("GET {addr}{path}: {e}"))?;
    if r.status != 200 {
        return Err(format!("GET {addr}{path}: HTTP {}", r.status));
    }
    serde_json::from_str(&r.body).map_err(|e| format!("GET {addr}{path}: not JSON ({e})"))
}

/// A master's probe: `/health` answers.
pub fn master_answers(admin_addr: &str) -> Result<(), String> {
    get_json(admin_addr, "/health").map(drop)
}

/// A node's probe: `/health` reports every segment mounted.
pub fn node_ready(rest_addr: &str) -> Result<(), String> {
    let r = http_get(rest_addr, "/health", PROBE_TIMEOUT).map_err(|e| e.to_string())?;
    match NodeHealth::parse(&r.body) {
        Some(h) if r.status == 200 && h.is_ready() => Ok(()),
        Some(h) => Err(format!(
            "{} of {} segments mounted",
            h.mounted_segments, h.segments
        )),
        None => Err(format!("HTTP {}: {}", r.status, r.body)),
    }
}

/// Prometheus's probe: `/-/ready` answers 200.
pub fn prometheus_ready(addr: &str) -> Result<(), String> {
    let r = http_get(addr, "/-/ready", PROBE_TIMEOUT).map_err(|e| e.to_string())?;
    if r.status == 200 {
        Ok(())
    } else {
        Err(format!("HTTP {}", r.status))
    }
}

/// A master's command line.
pub fn master_args(state: &State, rpc_port: u16, admin_port: u16) -> Vec<String> {
    let mut args = vec![
        format!("--rpc_port={rpc_port}"),
        format!("--rpc_address={LOOPBACK}"),
        format!("--metrics_host={LOOPBACK}"),
        format!("--metrics_port={admin_port}"),
        format!("--cluster_id={}", state.cluster_id),
    ];
    if let Some(c) = &state.coordinator {
        args.push("--enable_ha=true".into());
        args.push(format!("--ha_backend_type={}", state.ha.name()));
        args.push(match state.ha {
            Ha::Redis => format!("--ha_backend_connstring=redis://{LOOPBACK}:{}", c.ports[0]),
            _ => format!("--etcd_endpoints={LOOPBACK}:{}", c.ports[0]),
        });
    }
    args
}

/// A store node's command line: it binds and advertises `host`, its failure domain.
pub fn node_args(state: &State, host: &str, rest_port: u16) -> Vec<String> {
    vec![
        format!("--master_server={}", state.locator()),
        format!("--local_hostname={host}"),
        format!("--rest_host={host}"),
        format!("--port={rest_port}"),
        format!("--global_segment_size={}", state.segment),
        "--data_port=0".into(),
        format!("--cluster_id={}", state.cluster_id),
    ]
}

/// Writes `DIR/prometheus.yml`, scraping every master (job `mooncake-master`) and node
/// (job `mooncake-store`) every 2 s, and returns Prometheus's command line.
///
/// # Errors
/// When the file cannot be written.
pub fn prometheus_args(dir: &Path, state: &State, port: u16) -> Result<Vec<String>> {
    let list = |addrs: Vec<String>| {
        addrs
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let masters = list(state.masters.iter().map(|m| m.admin_addr()).collect());
    let nodes = list(state.nodes.iter().map(|n| n.rest_addr()).collect());
    let id = &state.cluster_id;
    let config = format!(
        "# Written by mc-cluster up.\nglobal:\n  scrape_interval: 2s\n  evaluation_interval: 2s\n\
         scrape_configs:\n  - job_name: mooncake-master\n    static_configs:\n      \
         - targets: [{masters}]\n        labels:\n          cluster: \"{id}\"\n  \
         - job_name: mooncake-store\n    static_configs:\n      - targets: [{nodes}]\n        \
         labels:\n          cluster: \"{id}\"\n"
    );
    let path: PathBuf = dir.join("prometheus.yml");
    std::fs::write(&path, config)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(vec![
        format!("--config.file={}", path.display()),
        format!("--storage.tsdb.path={}", dir.join("prometheus").display()),
        format!("--web.listen-address={LOOPBACK}:{port}"),
    ])
}
