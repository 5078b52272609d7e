//! `mc-cluster`: a local HA cluster to start, check, break and look at.
//!
//! `up` starts a coordinator (Debian's etcd or redis-server), the masters electing on it, the
//! store nodes on 127.0.0.2, 127.0.0.3, ... (distinct failure domains) and optionally
//! Prometheus, each in its own session so they outlive the command, each on ports picked
//! free at start. Everything about them (command lines, pids with start times, ports) goes
//! to `DIR/state.json` ([`state`]), their output to `DIR/logs/<name>.log`. The other
//! subcommands read that file: [`check`] probes everything and does put/get round trips,
//! [`drill`] kills the leader and times the failover, [`down`] stops it all. Processes are
//! spawned through the `mc-cluster` crate's `detached` module, which holds the only `unsafe`
//! (the `setsid` before exec); this crate forbids it.

pub mod check;
pub mod cli;
pub mod down;
pub mod drill;
pub mod health;
pub mod launch;
pub mod report;
pub mod state;
pub mod up;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use cli::{Cli, Command};
use state::{State, default_dir, log_path};

/// Runs one `mc-cluster` command line.
///
/// # Errors
/// Whatever the subcommand reports; `main` prints it on one line.
pub fn run(cli: Cli) -> Result<()> {
    let dir = match cli.dir {
        Some(dir) => dir,
        None => default_dir()?,
    };
    match cli.command {
        Command::Up(args) => up::up(&dir, &args.options()),
        Command::Check => check::check(&dir),
        Command::KillLeader => drill::kill_leader(&dir).map(drop),
        Command::Status => {
            let state = State::load_existing(&dir)?;
            report::print(&dir, &state);
            Ok(())
        }
        Command::Logs { name, tail } => logs(dir, &name, tail),
        Command::Down {
            force,
            clean,
            timeout,
        } => down::down(
            &dir,
            down::DownOptions {
                force,
                clean,
                timeout: Duration::from_secs(timeout),
            },
        ),
    }
}

/// Prints the log of the process called `name` (its last `tail` lines when given).
fn logs(dir: PathBuf, name: &str, tail: Option<usize>) -> Result<()> {
    let state = State::load_existing(&dir)?;
    let names: Vec<&str> = state.procs().iter().map(|p| p.name.as_str()).collect();
    if !names.contains(&name) {
        anyhow::bail!(
            "no process called {name:?}; the processes are {}",
            names.join(", ")
        );
    }
    let path = log_path(&dir, name);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    let from = tail.map_or(0, |n| lines.len().saturating_sub(n));
    for line in &lines[from..] {
        println!("{line}");
    }
    Ok(())
}
