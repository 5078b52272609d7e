//! `mc-cluster kill-leader`: the failover drill. SIGKILL the serving leader, as a crash
//! would; time until another master serves and until a client that was connected before
//! the crash completes a put + get; then start the old master again, on its old ports, and
//! wait until it is a standby that names the new leader.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mooncake_rs::{Store, StoreConfig};

use super::check::{fresh_key, put_get};
use super::health::{MasterHealth, master_health, serving_leader};
use super::launch::{READY_TIMEOUT, master_answers, node_ready, spawn, wait_ready};
use super::state::State;

/// Longest the drill waits for a new leader, or for the first put + get after the crash.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause between two put + get attempts.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// What the drill measured.
#[derive(Debug, Clone)]
pub struct DrillReport {
    /// From the SIGKILL until another master reported serving.
    pub to_new_leader: Duration,
    /// From the SIGKILL until the first successful put + get.
    pub to_first_put_get: Duration,
    /// Name of the killed master.
    pub killed: String,
    /// Name of the new leader.
    pub new_leader: String,
}

/// Runs the drill on the cluster in `dir` and prints what it measured.
///
/// # Errors
/// Without HA, without a serving leader, or when a step does not complete in time.
pub fn kill_leader(dir: &Path) -> Result<DrillReport> {
    let mut state = State::load_existing(dir)?;
    if state.coordinator.is_none() || state.masters.len() < 2 {
        bail!(
            "kill-leader needs two or more HA masters (this cluster: ha {}, {} master(s)); \
             start one with `mc-cluster up --ha etcd`",
            state.ha.name(),
            state.masters.len()
        );
    }
    let Some((old, before)) = serving_leader(&state) else {
        bail!("no master serves as the only leader now; see `mc-cluster check`");
    };
    // A client connected before the crash, as an application would be.
    let mut config = StoreConfig::new(state.locator());
    config.cluster_id = state.cluster_id.clone();
    let store = Store::connect(config).context("client connect before the drill")?;
    put_get(&store, &fresh_key("drill-warm-up")).map_err(anyhow::Error::msg)?;

    let victim = state.masters[old].clone();
    println!(
        "kill-leader: SIGKILL {} (pid {}, rpc {}, {})",
        victim.proc.name,
        victim.proc.pid,
        victim.rpc_addr(),
        before.describe()
    );
    let killed_at = Instant::now();
    victim.proc.id().signal(libc::SIGKILL);
    if !victim.proc.id().wait_gone(READY_TIMEOUT) {
        bail!("{} did not die after SIGKILL", victim.proc.name);
    }
    let (new, after, elected) = wait_for_new_leader(&state, old, killed_at)?;
    let to_new_leader = killed_at.elapsed();
    let new_leader = state.masters[new].proc.name.clone();
    println!(
        "  {new_leader} won the election {:.2} s after the kill (then recovering: the nodes \
         re-mount and report what they hold)",
        elected.as_secs_f64()
    );
    println!(
        "  new leader: {new_leader} (rpc {}, {}) serving {:.2} s after the kill",
        state.masters[new].rpc_addr(),
        after.describe(),
        to_new_leader.as_secs_f64()
    );
    let to_first_put_get = first_put_get(&store, killed_at)?;
    println!(
        "  first put + get by a client connected before the kill: {:.2} s after the kill",
        to_first_put_get.as_secs_f64()
    );
    restart_as_standby(dir, &mut state, old)?;
    for n in &state.nodes {
        let rest = n.rest_addr();
        wait_until(READY_TIMEOUT, || node_ready(&rest))
            .with_context(|| format!("{} did not re-mount at the new leader", n.proc.name))?;
    }
    Ok(DrillReport {
        to_new_leader,
        to_first_put_get,
        killed: victim.proc.name,
        new_leader,
    })
}

/// Polls until a master other than `old` serves as the only leader; returns it, its health
/// and when (after `since`) a master other than `old` first reported itself leader.
fn wait_for_new_leader(
    state: &State,
    old: usize,
    since: Instant,
) -> Result<(usize, MasterHealth, Duration)> {
    let mut elected = None;
    loop {
        for i in (0..state.masters.len()).filter(|&i| i != old) {
            if elected.is_none() && master_health(state, i).is_ok_and(|h| h.role == "leader") {
                elected = Some(since.elapsed());
            }
        }
        if let Some((i, h)) = serving_leader(state).filter(|(i, _)| *i != old) {
            return Ok((i, h, elected.unwrap_or_else(|| since.elapsed())));
        }
        if since.elapsed() >= FAILOVER_TIMEOUT {
            bail!("no other master serves as the only leader {FAILOVER_TIMEOUT:?} after the kill");
        }
        std::thread::sleep(RETRY_PAUSE);
    }
}

/// Retries put + get until one succeeds; returns the time since `since`.
fn first_put_get(store: &Store, since: Instant) -> Result<Duration> {
    let mut attempt = 0u64;
    loop {
        attempt += 1;
        let key = fresh_key(&format!("drill-after-kill-{attempt}"));
        match put_get(store, &key) {
            Ok(_) => return Ok(since.elapsed()),
            Err(e) if since.elapsed() >= FAILOVER_TIMEOUT => {
                bail!("no put + get succeeded within {FAILOVER_TIMEOUT:?}; last error: {e}")
            }
            Err(_) => std::thread::sleep(RETRY_PAUSE),
        }
    }
}

/// Starts master `i` again with its old command line (so its old ports) and waits until it
/// is a standby naming the leader.
fn restart_as_standby(dir: &Path, state: &mut State, i: usize) -> Result<()> {
    let old = state.masters[i].clone();
    let started = Instant::now();
    let (mut child, proc) = spawn(dir, &old.proc.name, &old.proc.binary, old.proc.args.clone())?;
    state.masters[i].proc = proc;
    state.save(dir)?;
    let admin = old.admin_addr();
    wait_ready(dir, &mut child, &old.proc.name, || master_answers(&admin))?;
    let standby = wait_until(READY_TIMEOUT, || {
        let h = master_health(state, i)?;
        if h.role == "standby" && h.ha_state == "standby" && h.leader_address.is_some() {
            Ok(h)
        } else {
            Err(h.describe())
        }
    })
    .with_context(|| format!("{} did not come back as a standby", old.proc.name))?;
    println!(
        "  {} restarted on its old ports (rpc {}, admin {}), pid {}: {} after {:.2} s",
        old.proc.name,
        old.rpc_addr(),
        old.admin_addr(),
        state.masters[i].proc.pid,
        standby.describe(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Polls `probe` until it succeeds or `timeout` passes.
fn wait_until<T>(timeout: Duration, mut probe: impl FnMut() -> Result<T, String>) -> Result<T> {
    let started = Instant::now();
    loop {
        match probe() {
            Ok(v) => return Ok(v),
            Err(last) if started.elapsed() >= timeout => {
                bail!("still not so after {timeout:?} (last: {last})")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
