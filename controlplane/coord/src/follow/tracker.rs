//! Which master a client or a store node calls: the leader of the followed view, or the one a
//! standby just named.
//!
//! A call goes to [`LeaderTracker::target`]. When it fails in a way that means "not here"
//! (a standby's not-leader answer, a refused or reset connection), the caller asks
//! [`LeaderTracker::redirect`] where to send it once more: to the leader the standby named,
//! at once; to a master that says it leads but is not ready yet, after a short pause; or to
//! the next leader the coordinator publishes, waiting for it until the call's deadline. A
//! named leader is remembered until the view moves on, so later calls skip the standby.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::{CoordError, FollowerConfig, MasterLocator, MasterView, ViewFollower};

/// Pause before calling again a master that answered "not serving" naming itself: a leader
/// that has just won and is still recovering.
pub const RECOVERING_PAUSE: Duration = Duration::from_millis(200);

/// Where a call goes: a master's RPC address and the view version that address came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The master's RPC address, `host:port`.
    pub address: String,
    /// The version of the view this target was chosen under (a named leader keeps the
    /// version of the view it overrides).
    pub version: u64,
}

/// The leader calls go to; see the [module docs](self). `Send + Sync`.
pub struct LeaderTracker {
    follower: ViewFollower,
    locator: MasterLocator,
    /// A leader named by a master that is not serving, and the view version it overrides.
    named: Mutex<Option<Target>>,
}

impl LeaderTracker {
    /// Follows `locator` for `cluster_id` (default timing); never waits for the coordinator.
    pub fn start(locator: &MasterLocator, cluster_id: &str) -> Result<Self, CoordError> {
        Self::start_with(locator, cluster_id, FollowerConfig::default())
    }

    /// [`LeaderTracker::start`] with explicit follower timing.
    pub fn start_with(
        locator: &MasterLocator,
        cluster_id: &str,
        config: FollowerConfig,
    ) -> Result<Self, CoordError> {
        Ok(Self {
            follower: ViewFollower::start_with(locator, cluster_id, config)?,
            locator: locator.clone(),
            named: Mutex::new(None),
        })
    }

    /// The locator followed.
    pub fn locator(&self) -> &MasterLocator {
        &self.locator
    }

    /// The view the coordinator publishes now (`None` while no leader is published).
    pub fn view(&self) -> Option<MasterView> {
        self.follower.current()
    }

    /// Waits up to `timeout` for a leader to be published and returns where calls go.
    pub fn wait_for_leader(&self, timeout: Duration) -> Option<Target> {
        if self.follower.current().is_none() {
            self.follower.wait_for_change(0, timeout)?;
        }
        self.target()
    }

    /// Where the next call goes: the leader a standby named, while the view it overrides is
    /// still current, else the view's leader. `None` while no leader is known.
    pub fn target(&self) -> Option<Target> {
        let view = self.follower.current();
        let mut named = self.named();
        match (named.as_ref(), view) {
            (Some(n), Some(v)) if n.version == v.version => Some(n.clone()),
            (Some(n), None) => Some(n.clone()),
            (_, view) => {
                *named = None;
                view.map(|v| Target {
                    address: v.leader,
                    version: v.version,
                })
            }
        }
    }

    /// Where to send once more a call to `failed` that was not served there: `hint` is the
    /// leader a not-leader answer named (`None` or `""` for none, or for a connection
    /// failure). Waits for the coordinator to publish another leader until `deadline` when
    /// nothing better is known. `None`: nowhere to go before the deadline (a static master
    /// that did not answer, or no new leader in time).
    pub fn redirect(
        &self,
        failed: &Target,
        hint: Option<&str>,
        deadline: Instant,
    ) -> Option<Target> {
        let hint = hint.filter(|h| !h.is_empty());
        if let Some(h) = hint {
            if h != failed.address {
                let to = Target {
                    address: h.to_string(),
                    version: failed.version,
                };
                *self.named() = Some(to.clone());
                return Some(to);
            }
            // It names itself: it leads but is not ready yet (recovering).
            let left = deadline.saturating_duration_since(Instant::now());
            std::thread::sleep(RECOVERING_PAUSE.min(left));
            return (Instant::now() < deadline).then(|| failed.clone());
        }
        {
            let mut named = self.named();
            if named.as_ref().is_some_and(|n| n.address == failed.address) {
                *named = None;
            }
        }
        if let Some(now) = self.target().filter(|t| t != failed) {
            return Some(now);
        }
        if !self.locator.is_coordinated() {
            return None;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let view = self.follower.wait_for_change(failed.version, left)?;
        Some(Target {
            address: view.leader,
            version: view.version,
        })
    }

    fn named(&self) -> MutexGuard<'_, Option<Target>> {
        // Plain data, always consistent: a panic elsewhere does not invalidate it.
        self.named.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(addr: &str) -> LeaderTracker {
        LeaderTracker::start(&MasterLocator::parse(addr).unwrap(), "c").unwrap()
    }

    fn at(address: &str, version: u64) -> Target {
        Target {
            address: address.into(),
            version,
        }
    }

    #[test]
    fn a_static_master_is_the_target_and_a_named_leader_overrides_it() {
        let t = fixed("10.0.0.1:50051");
        let home = at("10.0.0.1:50051", 0);
        assert_eq!(
            t.wait_for_leader(Duration::from_secs(1)),
            Some(home.clone())
        );
        let soon = Instant::now() + Duration::from_secs(5);
        // A standby named another leader: go there now and from then on.
        let named = t.redirect(&home, Some("10.0.0.2:50051"), soon);
        assert_eq!(named, Some(at("10.0.0.2:50051", 0)));
        assert_eq!(t.target(), named);
        // The named leader fails without naming another: back to the static address.
        assert_eq!(
            t.redirect(&at("10.0.0.2:50051", 0), None, soon),
            Some(home.clone())
        );
        assert_eq!(t.target(), Some(home.clone()));
        // The static master fails too: nowhere else to go, and no waiting for it.
        let t0 = Instant::now();
        assert_eq!(t.redirect(&home, Some(""), soon), None);
        assert!(t0.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_master_naming_itself_is_retried_after_a_pause() {
        let t = fixed("10.0.0.1:50051");
        let home = at("10.0.0.1:50051", 0);
        let t0 = Instant::now();
        let again = t.redirect(&home, Some("10.0.0.1:50051"), t0 + Duration::from_secs(5));
        assert_eq!(again, Some(home.clone()));
        assert!(t0.elapsed() >= RECOVERING_PAUSE);
        let past = Instant::now();
        assert_eq!(t.redirect(&home, Some("10.0.0.1:50051"), past), None);
    }
}
