//! `mc-cluster down`: SIGTERM every process (nodes first, so they drain while their master
//! is still there; the coordinator last, so leaders can resign), wait, and with `--force`
//! SIGKILL whatever is left. `--clean` then removes the directory.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::state::{Proc, STATE_FILE, State};

/// How `down` stops the cluster.
#[derive(Debug, Clone, Copy)]
pub struct DownOptions {
    /// SIGKILL what is still running after the timeout.
    pub force: bool,
    /// Remove the directory once everything is stopped.
    pub clean: bool,
    /// How long each group of processes gets to exit after SIGTERM.
    pub timeout: Duration,
}

/// How long a SIGKILLed process may take to disappear.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// The processes in stop order, in groups that stop together.
fn stop_groups(state: &State) -> Vec<Vec<&Proc>> {
    vec![
        state.nodes.iter().map(|n| &n.proc).collect(),
        state.masters.iter().map(|m| &m.proc).collect(),
        state.prometheus.iter().map(|p| &p.proc).collect(),
        state.coordinator.iter().map(|c| &c.proc).collect(),
    ]
}

/// Stops the cluster in `dir`; see the [module docs](self).
///
/// # Errors
/// When there is no cluster in `dir`, or (without `--force`) a process outlived the timeout.
pub fn down(dir: &Path, opts: DownOptions) -> Result<()> {
    let Some(state) = State::load(dir)? else {
        if opts.clean && !dir.exists() {
            println!("mc-cluster: nothing in {}", dir.display());
            return Ok(());
        }
        return State::load_existing(dir).map(drop);
    };
    let mut left = Vec::new();
    for group in stop_groups(&state) {
        left.extend(stop_group(&group, opts));
    }
    if !left.is_empty() {
        bail!(
            "still running {:?} after SIGTERM: {}; `mc-cluster down --force` SIGKILLs them",
            opts.timeout,
            left.join(", ")
        );
    }
    println!("mc-cluster: every process stopped");
    if opts.clean {
        // Only a directory holding our state file is removed, never an arbitrary --dir.
        if dir.join(STATE_FILE).is_file() {
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot remove {}", dir.display()))?;
            println!("mc-cluster: removed {}", dir.display());
        }
    }
    Ok(())
}

/// SIGTERMs `group`, waits, SIGKILLs with `force`; returns what still runs, as `name (pid)`.
fn stop_group(group: &[&Proc], opts: DownOptions) -> Vec<String> {
    let alive: Vec<&Proc> = group.iter().copied().filter(|p| p.is_alive()).collect();
    for p in &alive {
        p.id().signal(libc::SIGTERM);
    }
    let deadline = Instant::now() + opts.timeout;
    let mut left = Vec::new();
    for p in alive {
        if p.id()
            .wait_gone(deadline.saturating_duration_since(Instant::now()))
        {
            println!("  {} (pid {}) stopped", p.name, p.pid);
        } else if opts.force && kill(p) {
            println!(
                "  {} (pid {}) killed with SIGKILL after {:?}",
                p.name, p.pid, opts.timeout
            );
        } else {
            left.push(format!("{} (pid {})", p.name, p.pid));
        }
    }
    left
}

/// SIGKILLs `p` and waits until it is gone.
fn kill(p: &Proc) -> bool {
    p.id().signal(libc::SIGKILL);
    p.id().wait_gone(KILL_WAIT)
}

/// SIGKILLs every process of `state` still running (after a failed `up`).
pub fn kill_all(state: &State) {
    for p in state.procs() {
        kill(p);
    }
}
