//! What the masters' `/health` says: roles, the leader, the view version.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::Value;

use super::launch::get_json;
use super::state::State;

/// Pause between two rounds of leader polling.
const POLL: Duration = Duration::from_millis(20);

/// The HA fields of one master's `/health`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterHealth {
    /// `leader` or `standby`.
    pub role: String,
    /// `standalone`, `starting`, `candidate`, `standby`, `recovering` or `serving`.
    pub ha_state: String,
    /// Whether it serves clients now.
    pub service_ready: bool,
    /// The leader's RPC address it knows of.
    pub leader_address: Option<String>,
    /// The view version (term) of that leader.
    pub view_version: Option<u64>,
}

impl MasterHealth {
    /// Reads the fields from a `/health` body.
    pub fn parse(body: &Value) -> MasterHealth {
        let text = |k: &str| body[k].as_str().unwrap_or_default().to_string();
        MasterHealth {
            role: text("role"),
            ha_state: text("ha_state"),
            service_ready: body["service_ready"].as_bool().unwrap_or(false),
            leader_address: body["leader_address"].as_str().map(String::from),
            view_version: body["view_version"].as_u64(),
        }
    }

    /// True for a leader that serves clients.
    pub fn serves(&self) -> bool {
        self.role == "leader" && self.service_ready
    }

    /// `role (ha_state, view N)`, for reports.
    pub fn describe(&self) -> String {
        let view = self
            .view_version
            .map_or_else(|| "no view".to_string(), |v| format!("view {v}"));
        format!("{} ({}, {view})", self.role, self.ha_state)
    }
}

/// Master `i`'s health, or why it could not be read.
pub fn master_health(state: &State, i: usize) -> Result<MasterHealth, String> {
    get_json(&state.masters[i].admin_addr(), "/health").map(|body| MasterHealth::parse(&body))
}

/// The index and health of the master that serves as leader now, if exactly one does.
pub fn serving_leader(state: &State) -> Option<(usize, MasterHealth)> {
    let mut leaders = (0..state.masters.len())
        .filter_map(|i| master_health(state, i).ok().map(|h| (i, h)))
        .filter(|(_, h)| h.serves());
    let first = leaders.next()?;
    leaders.next().is_none().then_some(first)
}

/// Polls until a master other than `except` serves as the only leader.
///
/// # Errors
/// When none does within `timeout`.
pub fn wait_for_leader(
    state: &State,
    except: Option<usize>,
    timeout: Duration,
) -> Result<(usize, MasterHealth)> {
    let started = Instant::now();
    loop {
        if let Some((i, h)) = serving_leader(state).filter(|(i, _)| Some(*i) != except) {
            return Ok((i, h));
        }
        if started.elapsed() >= timeout {
            bail!("no master serves as the only leader after {timeout:?}");
        }
        std::thread::sleep(POLL);
    }
}

/// Polls until the only leader has also finished recovering its term (`ha_state`
/// `serving`, or `standalone` without HA): a leader that re-won a term while the nodes joined serves already, but
/// keeps key lookups waiting for the nodes' reports until then.
///
/// # Errors
/// When no leader gets there within `timeout`.
pub fn wait_for_serving(state: &State, timeout: Duration) -> Result<(usize, MasterHealth)> {
    let started = Instant::now();
    loop {
        let done = |h: &MasterHealth| matches!(h.ha_state.as_str(), "serving" | "standalone");
        if let Some((i, h)) = serving_leader(state).filter(|(_, h)| done(h)) {
            return Ok((i, h));
        }
        if started.elapsed() >= timeout {
            bail!("no leader finished recovering its term after {timeout:?}");
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_ha_fields() {
        let h = MasterHealth::parse(&serde_json::json!({
            "role": "leader", "ha_state": "serving", "service_ready": true,
            "leader_address": "127.0.0.1:5", "view_version": 7
        }));
        assert!(h.serves());
        assert_eq!(h.describe(), "leader (serving, view 7)");
        let s = MasterHealth::parse(&serde_json::json!({
            "role": "standby", "ha_state": "candidate", "service_ready": false,
            "leader_address": null, "view_version": null
        }));
        assert!(!s.serves());
        assert_eq!(s.leader_address, None);
        assert_eq!(s.describe(), "standby (candidate, no view)");
    }
}
