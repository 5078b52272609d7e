//! Following the master view without an async runtime: what clients and store nodes link.
//!
//! [`ViewFollower::start`] runs one background thread per follower that keeps the current
//! [`MasterView`] in memory and wakes waiters as soon as it changes: on etcd through a watch on
//! the JSON gateway (plus a periodic re-read in case a watch stalls silently), on Redis through
//! the change channel the leader publishes on (plus a periodic `HMGET`, which also covers a
//! Mooncake leader that does not publish). Coordinator outages are retried with capped
//! back-off, across all etcd endpoints in turn. The thread polls its stop flag at least every
//! [`FollowerConfig::poll_slice`], so [`ViewFollower::stop`] (and drop) returns promptly.

mod etcd;
pub(crate) mod http;
mod redis;
pub mod tracker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{CoordError, MasterLocator, MasterView};

/// Timing of a [`ViewFollower`].
#[derive(Clone, Debug)]
pub struct FollowerConfig {
    /// Longest a blocking read waits before the thread re-checks its stop flag (100 ms).
    pub poll_slice: Duration,
    /// Interval of the fallback re-read of the view when no change notice came (1 s).
    pub resync_interval: Duration,
    /// Connect timeout, also the bound on one request's answer (1 s).
    pub connect_timeout: Duration,
    /// Longest back-off between retries while the coordinator is unreachable (2 s).
    pub max_backoff: Duration,
}

impl Default for FollowerConfig {
    fn default() -> Self {
        Self {
            poll_slice: Duration::from_millis(100),
            resync_interval: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// Follows the master view of one cluster; see the [module docs](self).
pub struct ViewFollower {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl ViewFollower {
    /// Starts following `locator` for `cluster_id` with the default timing. A static
    /// `host:port` locator yields a fixed view (version 0) and starts no thread. Never waits
    /// for the coordinator: an unreachable one is retried in the background.
    pub fn start(locator: &MasterLocator, cluster_id: &str) -> Result<Self, CoordError> {
        Self::start_with(locator, cluster_id, FollowerConfig::default())
    }

    /// [`ViewFollower::start`] with explicit timing.
    pub fn start_with(
        locator: &MasterLocator,
        cluster_id: &str,
        config: FollowerConfig,
    ) -> Result<Self, CoordError> {
        let shared = Arc::new(Shared::default());
        let spawn = |name: &str, body: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(body)
                .map_err(|source| CoordError::Spawn { source })
        };
        let thread = match locator {
            MasterLocator::Static(ep) => {
                shared.publish(Some(MasterView {
                    leader: ep.to_string(),
                    version: 0,
                }));
                None
            }
            MasterLocator::Etcd(endpoints) => {
                let follow = etcd::EtcdFollow::new(endpoints.clone(), cluster_id, config);
                let sh = shared.clone();
                Some(spawn("mc-view-etcd", Box::new(move || follow.run(&sh)))?)
            }
            MasterLocator::Redis(target) => {
                let target = target.clone().with_env(|name| std::env::var(name).ok())?;
                let follow = redis::RedisFollow::new(target, cluster_id, config);
                let sh = shared.clone();
                Some(spawn("mc-view-redis", Box::new(move || follow.run(&sh)))?)
            }
        };
        Ok(Self { shared, thread })
    }

    /// The view known now; `None` while no leader is published (or none was read yet).
    pub fn current(&self) -> Option<MasterView> {
        self.shared.lock().view.clone()
    }

    /// Waits until a view whose version differs from `after_version` is published, and
    /// returns it; `None` on timeout or once stopped. Pass 0 to wait for any leader.
    /// "Differs" rather than "is greater": versions only grow while the coordinator keeps its
    /// data, and a coordinator that lost it must not hide the new leader forever.
    pub fn wait_for_change(&self, after_version: u64, timeout: Duration) -> Option<MasterView> {
        let deadline = Instant::now() + timeout;
        let mut inner = self.shared.lock();
        loop {
            if let Some(view) = inner.view.as_ref().filter(|v| v.version != after_version) {
                return Some(view.clone());
            }
            let now = Instant::now();
            if self.shared.stopped() || now >= deadline {
                return None;
            }
            inner = self
                .shared
                .changed
                .wait_timeout(inner, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    /// Stops the background thread and waits for it (at most about one `poll_slice`, or one
    /// connect timeout if it is connecting). Waiters return `None`. Idempotent.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        // Taking the lock orders the flag before any waiter's check-then-wait, so none misses
        // the wake-up below.
        drop(self.shared.lock());
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("master view follower thread panicked");
        }
    }
}

impl Drop for ViewFollower {
    fn drop(&mut self) {
        self.stop();
    }
}

/// State shared by a follower's handle and its thread.
#[derive(Default)]
struct Shared {
    inner: Mutex<Inner>,
    changed: Condvar,
    stop: AtomicBool,
}

#[derive(Default)]
struct Inner {
    view: Option<MasterView>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The lock guards plain data that is always left consistent, so a panic elsewhere
        // while holding it does not invalidate it.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Installs `view` and wakes waiters if it differs from the current one.
    fn publish(&self, view: Option<MasterView>) {
        let mut inner = self.lock();
        if inner.view == view {
            return;
        }
        match &view {
            Some(v) => {
                tracing::info!(leader = %v.leader, version = v.version, "master view changed")
            }
            None => tracing::info!("master view cleared: no leader is published"),
        }
        inner.view = view;
        drop(inner);
        self.changed.notify_all();
    }

    /// Sleeps up to `d`, waking early on stop; false once stopped.
    fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut inner = self.lock();
        while !self.stopped() {
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            inner = self
                .changed
                .wait_timeout(inner, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        false
    }
}

/// Consecutive failures against a coordinator: the back-off to wait and when to log, so an
/// outage gives a few clear lines rather than one per retry.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    count: u32,
}

impl Failures {
    /// Records a failure; logs the 1st, 2nd, 4th, 8th, ... one.
    pub(crate) fn failed(&mut self, what: &str, err: &CoordError) {
        self.count = self.count.saturating_add(1);
        if self.count.is_power_of_two() {
            tracing::warn!(failures = self.count, error = %err, "{what}: coordinator unreachable, retrying");
        }
    }

    /// Records a success; logs the recovery if there were failures.
    pub(crate) fn recovered(&mut self, what: &str) {
        if self.count > 0 {
            tracing::info!(failures = self.count, "{what}: coordinator reachable again");
        }
        self.count = 0;
    }

    /// 100 ms doubled per consecutive failure, capped at `max`.
    pub(crate) fn backoff(&self, max: Duration) -> Duration {
        let shift = self.count.saturating_sub(1).min(16);
        Duration::from_millis(100u64 << shift).min(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Endpoint;

    #[test]
    fn static_locator_is_a_fixed_view() {
        let loc = MasterLocator::Static(Endpoint {
            host: "10.1.2.3".into(),
            port: 50051,
        });
        let mut f = ViewFollower::start(&loc, "c").unwrap();
        let want = MasterView {
            leader: "10.1.2.3:50051".into(),
            version: 0,
        };
        assert_eq!(f.current(), Some(want.clone()));
        assert_eq!(f.wait_for_change(7, Duration::from_secs(5)), Some(want));
        assert_eq!(f.wait_for_change(0, Duration::from_millis(20)), None);
        f.stop();
        assert_eq!(
            f.wait_for_change(0, Duration::from_secs(30)),
            None,
            "stopped waits return"
        );
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let mut f = Failures::default();
        let err = CoordError::Stopped;
        let mut seen = Vec::new();
        for _ in 0..6 {
            f.failed("t", &err);
            seen.push(f.backoff(Duration::from_secs(1)).as_millis());
        }
        assert_eq!(seen, [100, 200, 400, 800, 1000, 1000]);
        f.recovered("t");
        f.failed("t", &err);
        assert_eq!(
            f.backoff(Duration::from_secs(1)),
            Duration::from_millis(100)
        );
    }
}
