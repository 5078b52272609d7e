//! Leader election on a coordinator (feature `elect`, tokio).
//!
//! Two layers. [`Elector`] is the seam: the few coordinator operations an election needs
//! (create the view key if absent, extend it if still ours, delete it if still ours, read it,
//! wait for it to change), implemented by [`EtcdElector`] and [`RedisElector`]; tests wrap it
//! to fail or delay calls. [`Election`] is the one driver over any elector: it campaigns,
//! renews, keeps the fail-closed deadline and publishes the [`Role`].

mod driver;
mod etcd;
mod redis;
pub mod roster;
pub mod secret;

use std::future::Future;
use std::time::Duration;

pub use driver::{Election, Loss, LossReason, Role};
pub use etcd::EtcdElector;
pub use redis::RedisElector;
pub use roster::{Member, Roster};

use crate::{CoordError, MasterLocator, MasterView};

/// Mooncake's `DEFAULT_MASTER_VIEW_LEASE_TTL_SEC`.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(5);

/// Lease and retry timing of an election.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElectionConfig {
    /// How long the coordinator keeps the view key after the leader's last renew (5 s).
    /// etcd leases have whole seconds: a fraction is rounded up there, which only lengthens
    /// how long the key outlives a dead leader, never how long the leader believes in it.
    pub ttl: Duration,
    /// Bound on one coordinator call other than a renew (1 s); a renew is bounded by the
    /// leadership deadline instead.
    pub op_timeout: Duration,
    /// Longest wait between attempts while the coordinator is unreachable (1 s).
    pub max_backoff: Duration,
}

impl Default for ElectionConfig {
    fn default() -> Self {
        Self::with_ttl(DEFAULT_LEASE_TTL)
    }
}

impl ElectionConfig {
    /// The default timing around a lease of `ttl`.
    pub fn with_ttl(ttl: Duration) -> Self {
        Self {
            ttl,
            op_timeout: Duration::from_secs(1),
            max_backoff: Duration::from_secs(1),
        }
    }

    /// A renew starts this long after the previous one started: TTL / 3.
    pub fn renew_interval(&self) -> Duration {
        self.ttl / 3
    }

    /// What the leader subtracts from the lease to get its own deadline: max(TTL / 5, 500 ms).
    /// It absorbs clock-rate differences between this host and the coordinator and the time
    /// a write admitted just before the deadline takes to finish.
    pub fn safety_margin(&self) -> Duration {
        (self.ttl / 5).max(Duration::from_millis(500))
    }

    /// Checks that the timing can keep the fencing guarantee.
    pub fn validate(&self) -> Result<(), CoordError> {
        let reason = if self.ttl < Duration::from_secs(1) {
            "ttl must be at least 1 s (etcd leases have whole seconds, the margin is 500 ms)"
        } else if self.op_timeout.is_zero() {
            "op_timeout must be positive"
        } else if self.max_backoff.is_zero() {
            "max_backoff must be positive"
        } else {
            return Ok(());
        };
        Err(CoordError::Config {
            reason: format!("{reason}; got {self:?}"),
        })
    }
}

/// One won term: the view written and the proof of ownership the coordinator checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    /// The view this term published.
    pub view: MasterView,
    /// The owner token: the etcd lease id in decimal (as Mooncake) or a Redis UUID.
    pub token: String,
    /// How long the coordinator keeps the key after a renew, as granted (at most the
    /// configured TTL is used for the deadline).
    pub ttl: Duration,
}

/// What one attempt to create the view key found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acquire {
    /// The key was absent and is now ours.
    Won(Term),
    /// Someone holds the key; their view, if it could be read in the same step.
    Held(Option<MasterView>),
}

/// The coordinator operations an election is made of; the seam tests cut.
///
/// Every operation that changes the key is conditional: create only if absent, extend and
/// delete only while the key still carries this term's owner token. So a stale term can never
/// extend or delete a newer owner's key.
pub trait Elector: Send + Sync + 'static {
    /// The timing this elector was built with.
    fn config(&self) -> &ElectionConfig;

    /// Creates the view key with `leader` as the address if it is absent. `min_version` is the
    /// highest view version the caller has seen; a coordinator that numbers views itself
    /// (Redis) never hands out a version at or below it, so versions keep growing across a
    /// coordinator that lost its data.
    fn try_acquire(
        &self,
        leader: &str,
        min_version: u64,
    ) -> impl Future<Output = Result<Acquire, CoordError>> + Send;

    /// Extends the term's lease. `Some(ttl)`: extended, the key lives `ttl` from a moment no
    /// earlier than this call's start. `None`: the key is gone or belongs to another term.
    fn renew(
        &self,
        term: &Term,
    ) -> impl Future<Output = Result<Option<Duration>, CoordError>> + Send;

    /// Deletes the key if it still belongs to `term`; true if it did.
    fn release(&self, term: &Term) -> impl Future<Output = Result<bool, CoordError>> + Send;

    /// Reads the current view.
    fn read_view(&self) -> impl Future<Output = Result<Option<MasterView>, CoordError>> + Send;

    /// Returns the view once its version differs from `known`'s (a deletion counts), or the
    /// unchanged view after `timeout`.
    fn wait_for_change(
        &self,
        known: Option<&MasterView>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Option<MasterView>, CoordError>> + Send;
}

/// Either production elector, chosen by the locator.
pub enum AnyElector {
    /// On etcd (boxed, as is Redis: both clients are large and differ in size).
    Etcd(Box<EtcdElector>),
    /// On Redis.
    Redis(Box<RedisElector>),
}

impl AnyElector {
    /// Builds the elector `locator` names for `cluster_id`. Does not wait for the coordinator
    /// to answer; an unreachable one fails the first calls, which the election retries.
    pub async fn connect(
        locator: &MasterLocator,
        cluster_id: &str,
        config: ElectionConfig,
    ) -> Result<Self, CoordError> {
        match locator {
            MasterLocator::Etcd(endpoints) => Ok(Self::Etcd(Box::new(
                EtcdElector::connect(endpoints, cluster_id, config).await?,
            ))),
            MasterLocator::Redis(target) => {
                let target = target.clone().with_env(|name| std::env::var(name).ok())?;
                Ok(Self::Redis(Box::new(RedisElector::new(
                    &target, cluster_id, config,
                )?)))
            }
            MasterLocator::Static(_) => Err(CoordError::NotACoordinator {
                locator: locator.to_string(),
            }),
        }
    }
}

impl Elector for AnyElector {
    fn config(&self) -> &ElectionConfig {
        match self {
            Self::Etcd(e) => e.config(),
            Self::Redis(e) => e.config(),
        }
    }

    async fn try_acquire(&self, leader: &str, min_version: u64) -> Result<Acquire, CoordError> {
        match self {
            Self::Etcd(e) => e.try_acquire(leader, min_version).await,
            Self::Redis(e) => e.try_acquire(leader, min_version).await,
        }
    }

    async fn renew(&self, term: &Term) -> Result<Option<Duration>, CoordError> {
        match self {
            Self::Etcd(e) => e.renew(term).await,
            Self::Redis(e) => e.renew(term).await,
        }
    }

    async fn release(&self, term: &Term) -> Result<bool, CoordError> {
        match self {
            Self::Etcd(e) => e.release(term).await,
            Self::Redis(e) => e.release(term).await,
        }
    }

    async fn read_view(&self) -> Result<Option<MasterView>, CoordError> {
        match self {
            Self::Etcd(e) => e.read_view().await,
            Self::Redis(e) => e.read_view().await,
        }
    }

    async fn wait_for_change(
        &self,
        known: Option<&MasterView>,
        timeout: Duration,
    ) -> Result<Option<MasterView>, CoordError> {
        match self {
            Self::Etcd(e) => e.wait_for_change(known, timeout).await,
            Self::Redis(e) => e.wait_for_change(known, timeout).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_timing() {
        let c = ElectionConfig::default();
        assert_eq!(c.ttl, Duration::from_secs(5));
        assert_eq!(c.renew_interval(), Duration::from_nanos(1_666_666_666));
        assert_eq!(c.safety_margin(), Duration::from_secs(1));
        assert_eq!(
            ElectionConfig::with_ttl(Duration::from_secs(1)).safety_margin(),
            Duration::from_millis(500)
        );
        c.validate().unwrap();
    }

    #[test]
    fn renew_always_precedes_the_deadline() {
        for ms in (1000..=60_000).step_by(250) {
            let c = ElectionConfig::with_ttl(Duration::from_millis(ms));
            c.validate().unwrap();
            assert!(c.renew_interval() < c.ttl - c.safety_margin(), "{c:?}");
        }
        let short = ElectionConfig::with_ttl(Duration::from_millis(999)).validate();
        assert!(matches!(short, Err(CoordError::Config { .. })), "{short:?}");
    }
}
