//! `mc-cluster check`: one line per check, `[pass]` or `[FAIL]`, then a summary; the
//! command fails when any check did.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use mc_cluster::probe::{PROBE_TIMEOUT, http_get, http_request};
use mc_cluster::{CoordinatorKind, answers};
use mc_coord::{MasterLocator, ViewFollower};
use mooncake_rs::{ReplicateConfig, Store, StoreConfig};

use super::health::master_health;
use super::launch::{get_json, node_ready};
use super::state::{Ha, State};

/// How long the coordinator's view may take to be read.
const VIEW_TIMEOUT: Duration = Duration::from_secs(10);
/// How long Prometheus may take to scrape every target once more (its interval is 2 s).
const TARGETS_TIMEOUT: Duration = Duration::from_secs(20);
/// Size of the value the client round trip writes.
const VALUE_BYTES: usize = 64 * 1024;

/// The outcome of one check: a short name, and what was seen or why it failed.
struct Outcome {
    name: String,
    result: Result<String, String>,
}

/// Runs every check against the cluster in `dir` and prints them.
///
/// # Errors
/// When there is no cluster in `dir`, or when any check failed.
pub fn check(dir: &Path) -> Result<()> {
    let state = State::load_existing(dir)?;
    let mut outcomes = Vec::new();
    let mut record = |name: String, result: Result<String, String>| {
        let mark = if result.is_ok() { "[pass]" } else { "[FAIL]" };
        let detail = match &result {
            Ok(d) | Err(d) => d,
        };
        println!("{mark} {name}: {detail}");
        outcomes.push(Outcome { name, result });
    };
    for p in state.procs() {
        let alive = p.is_alive();
        record(
            format!("process {}", p.name),
            if alive {
                Ok(format!("pid {} alive", p.pid))
            } else {
                Err(format!("pid {} is not running", p.pid))
            },
        );
    }
    if let Some(c) = &state.coordinator {
        let kind = match state.ha {
            Ha::Redis => CoordinatorKind::Redis,
            _ => CoordinatorKind::Etcd,
        };
        record(
            format!("{} answers", c.proc.name),
            answers(kind, c.ports[0]).map(|()| format!("on 127.0.0.1:{}", c.ports[0])),
        );
    }
    for (i, m) in state.masters.iter().enumerate() {
        record(
            format!("{} /health", m.proc.name),
            master_health(&state, i).map(|h| h.describe()),
        );
    }
    for n in &state.nodes {
        record(
            format!("{} /health", n.proc.name),
            node_ready(&n.rest_addr()).map(|()| "every segment mounted".to_string()),
        );
    }
    record("one leader".into(), one_leader(&state));
    if state.coordinator.is_some() {
        record(
            format!("masters known to {}", state.ha.name()),
            roster_matches(&state),
        );
    }
    record("client put/get".into(), client_round_trip(&state));
    for n in &state.nodes {
        record(
            format!("REST put/get via {}", n.proc.name),
            rest_round_trip(&n.rest_addr()),
        );
    }
    if let Some(p) = &state.prometheus {
        let want = state.masters.len() + state.nodes.len();
        record(
            "prometheus targets".into(),
            prometheus_targets(&p.addr(), want),
        );
    }
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.result.is_err())
        .map(|o| o.name.as_str())
        .collect();
    println!(
        "check: {} passed, {} failed",
        outcomes.len() - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        bail!("{} check(s) failed: {}", failed.len(), failed.join(", "));
    }
    Ok(())
}

/// Exactly one master serves as leader, the others name it, and (with HA) it is the one the
/// coordinator's view names, at the same view version.
fn one_leader(state: &State) -> Result<String, String> {
    let healths: Vec<_> = (0..state.masters.len())
        .map(|i| master_health(state, i))
        .collect::<Result<_, _>>()?;
    let leaders: Vec<usize> = (0..healths.len())
        .filter(|&i| healths[i].serves())
        .collect();
    let [leader] = leaders[..] else {
        return Err(format!("{} masters serve as leader", leaders.len()));
    };
    let addr = state.masters[leader].rpc_addr();
    let version = healths[leader].view_version;
    for (i, h) in healths.iter().enumerate() {
        if h.leader_address.as_deref() != Some(addr.as_str()) {
            return Err(format!(
                "{} names leader {:?}, not {addr}",
                state.masters[i].proc.name, h.leader_address
            ));
        }
    }
    let name = &state.masters[leader].proc.name;
    if state.coordinator.is_none() {
        return Ok(format!("{name} ({addr}) serves alone"));
    }
    let view = coordinator_view(state)?;
    if view.leader != addr || Some(view.version) != version {
        return Err(format!(
            "{} says the leader is {} at view {}, but {name} ({addr}) serves at view {version:?}",
            state.ha.name(),
            view.leader,
            view.version
        ));
    }
    Ok(format!(
        "{name} ({addr}), as {} says (view version {})",
        state.ha.name(),
        view.version
    ))
}

/// The coordinator's roster, as the leader's `/api/v1/stats` lists it, names every master
/// with its admin port (waiting a little: a master restarted a moment ago re-announces).
fn roster_matches(state: &State) -> Result<String, String> {
    let mut want: Vec<String> = state
        .masters
        .iter()
        .map(|m| format!("{} (admin {})", m.rpc_addr(), m.admin_port))
        .collect();
    want.sort();
    let started = Instant::now();
    loop {
        let stats = get_json(&state.masters[0].admin_addr(), "/api/v1/stats")?;
        let mut got: Vec<String> = stats["masters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                format!(
                    "{} (admin {})",
                    m["rpc_address"].as_str().unwrap_or("?"),
                    m["admin_port"]
                )
            })
            .collect();
        got.sort();
        if got == want {
            return Ok(format!("{} masters listed: {}", got.len(), got.join(", ")));
        }
        if started.elapsed() >= VIEW_TIMEOUT {
            return Err(format!("listed {got:?}, expected {want:?}"));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The view the coordinator publishes now.
fn coordinator_view(state: &State) -> Result<mc_coord::MasterView, String> {
    let locator = MasterLocator::parse(&state.locator()).map_err(|e| e.to_string())?;
    let follower = ViewFollower::start(&locator, &state.cluster_id).map_err(|e| e.to_string())?;
    follower
        .wait_for_change(0, VIEW_TIMEOUT)
        .ok_or_else(|| format!("{} publishes no leader", state.ha.name()))
}

/// A key no earlier check used.
pub fn fresh_key(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("mc-cluster-check/{prefix}/{}-{nanos}", std::process::id())
}

/// Puts a value through the public client (following the leader like any application),
/// reads it back and removes it.
pub fn client_round_trip(state: &State) -> Result<String, String> {
    let mut config = StoreConfig::new(state.locator());
    config.cluster_id = state.cluster_id.clone();
    let store = Store::connect(config).map_err(|e| format!("connect: {e}"))?;
    put_get(&store, &fresh_key("client"))
}

/// One put, get and remove through `store`, checking the bytes.
pub fn put_get(store: &Store, key: &str) -> Result<String, String> {
    let value: Vec<u8> = (0..VALUE_BYTES).map(|i| (i * 31 % 251) as u8).collect();
    let started = Instant::now();
    store
        .put(key, &value, &ReplicateConfig::default())
        .map_err(|e| format!("put: {e}"))?;
    let back = store.get(key).map_err(|e| format!("get: {e}"))?;
    if back != value {
        return Err(format!(
            "get returned {} bytes that differ from the {} put",
            back.len(),
            value.len()
        ));
    }
    let took = started.elapsed();
    store
        .remove(key, true)
        .map_err(|e| format!("remove: {e}"))?;
    Ok(format!(
        "{VALUE_BYTES} bytes put and read back byte-exact in {took:.1?}"
    ))
}

/// Puts a value through a node's REST API, reads it back and removes it.
fn rest_round_trip(rest: &str) -> Result<String, String> {
    let key = fresh_key("rest").replace('/', "_");
    let value = format!("hello from mc-cluster check {key}");
    let body = serde_json::json!({"key": key, "value": value}).to_string();
    let put = http_request(rest, "PUT", "/api/put", Some(&body), PROBE_TIMEOUT)
        .map_err(|e| format!("PUT /api/put: {e}"))?;
    if put.status != 200 {
        return Err(format!("PUT /api/put: HTTP {} {}", put.status, put.body));
    }
    let got = http_get(rest, &format!("/api/get/{key}"), PROBE_TIMEOUT)
        .map_err(|e| format!("GET /api/get: {e}"))?;
    if got.status != 200 || got.body != value {
        return Err(format!(
            "GET /api/get/{key}: HTTP {} {:?}",
            got.status, got.body
        ));
    }
    let path = format!("/api/remove/{key}?force=true");
    let removed = http_request(rest, "DELETE", &path, None, PROBE_TIMEOUT)
        .map_err(|e| format!("DELETE /api/remove: {e}"))?;
    if removed.status != 200 {
        return Err(format!("DELETE /api/remove: HTTP {}", removed.status));
    }
    Ok(format!("{} bytes through http://{rest}/api", value.len()))
}

/// Every target Prometheus scrapes is up (waiting for a scrape of those not scraped since
/// they started), and there are `want` of them.
fn prometheus_targets(addr: &str, want: usize) -> Result<String, String> {
    let started = Instant::now();
    loop {
        let body = get_json(addr, "/api/v1/targets?state=active")?;
        let targets = body["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let not_up: Vec<String> = targets
            .iter()
            .filter(|t| t["health"] != "up")
            .map(|t| {
                format!(
                    "{} {} ({})",
                    t["labels"]["job"].as_str().unwrap_or("?"),
                    t["scrapeUrl"].as_str().unwrap_or("?"),
                    t["health"].as_str().unwrap_or("?")
                )
            })
            .collect();
        if not_up.is_empty() && targets.len() == want {
            return Ok(format!("{want} of {want} targets up"));
        }
        if started.elapsed() >= TARGETS_TIMEOUT {
            return Err(format!(
                "{} targets, {} not up: {}",
                targets.len(),
                not_up.len(),
                not_up.join(", ")
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
