//! Following the view on Redis with the blocking `redis` API.
//!
//! Two connections: one subscribed to the change channel, one for `HMGET` of the view hash.
//! The view is read after the subscription is in place, so a change published in between is
//! seen either by the read or as a message. Messages are only hints: each one triggers a
//! re-read, which is the truth. A periodic re-read covers leaders that do not publish
//! (Mooncake's) and a key that expired silently.

use std::time::{Duration, Instant};

use super::{FollowerConfig, Shared};
use crate::keys::{self, RedisKeys};
use crate::{CoordError, MasterView, RedisTarget};

/// One follower's Redis server and keys.
pub(super) struct RedisFollow {
    target: RedisTarget,
    keys: RedisKeys,
    config: FollowerConfig,
}

fn redis_err(op: &'static str) -> impl FnOnce(redis::RedisError) -> CoordError {
    move |source| CoordError::Redis { op, source }
}

/// Reads the view hash with `HMGET`.
pub(crate) fn read_view(
    conn: &mut redis::Connection,
    keys: &RedisKeys,
) -> Result<Option<MasterView>, CoordError> {
    let (leader, version, owner): (Option<String>, Option<String>, Option<String>) =
        redis::cmd("HMGET")
            .arg(&keys.view)
            .arg(keys::FIELD_LEADER_ADDRESS)
            .arg(keys::FIELD_VIEW_VERSION)
            .arg(keys::FIELD_OWNER_TOKEN)
            .query(conn)
            .map_err(redis_err("HMGET master view"))?;
    keys::parse_redis_view(&keys.view, leader, version, owner)
}

impl RedisFollow {
    pub(super) fn new(target: RedisTarget, cluster_id: &str, config: FollowerConfig) -> Self {
        Self {
            target,
            keys: RedisKeys::new(cluster_id),
            config,
        }
    }

    /// The thread body: follow until stopped, reconnecting with back-off.
    pub(super) fn run(&self, shared: &Shared) {
        let what = format!("master view follower ({})", self.target);
        let mut failures = super::Failures::default();
        while !shared.stopped() {
            match self.follow_once(shared, &what, &mut failures) {
                Ok(()) => return,
                Err(err) => {
                    failures.failed(&what, &err);
                    if !shared.sleep(failures.backoff(self.config.max_backoff)) {
                        return;
                    }
                }
            }
        }
    }

    fn connect(&self, client: &redis::Client) -> Result<redis::Connection, CoordError> {
        let conn = client
            .get_connection_with_timeout(self.config.connect_timeout)
            .map_err(redis_err("connect"))?;
        conn.set_read_timeout(Some(self.config.connect_timeout))
            .map_err(redis_err("set read timeout"))?;
        conn.set_write_timeout(Some(self.config.connect_timeout))
            .map_err(redis_err("set write timeout"))?;
        Ok(conn)
    }

    /// One connection's life: subscribe, read, then wait for messages until stop or failure.
    fn follow_once(
        &self,
        shared: &Shared,
        what: &str,
        failures: &mut super::Failures,
    ) -> Result<(), CoordError> {
        let client =
            redis::Client::open(self.target.connection_info()).map_err(redis_err("open"))?;
        let mut reader = self.connect(&client)?;
        let mut subscriber = self.connect(&client)?;
        let mut pubsub = subscriber.as_pubsub();
        pubsub
            .subscribe(&self.keys.channel)
            .map_err(redis_err("SUBSCRIBE"))?;
        pubsub
            .set_read_timeout(Some(self.config.poll_slice.max(Duration::from_millis(1))))
            .map_err(redis_err("set read timeout"))?;
        shared.publish(read_view(&mut reader, &self.keys)?);
        failures.recovered(what);
        let mut last_read = Instant::now();
        loop {
            if shared.stopped() {
                return Ok(());
            }
            let notified = match pubsub.get_message() {
                Ok(_) => true,
                Err(e) if e.is_timeout() => false,
                Err(source) => {
                    return Err(CoordError::Redis {
                        op: "pubsub read",
                        source,
                    });
                }
            };
            if notified || last_read.elapsed() >= self.config.resync_interval {
                shared.publish(read_view(&mut reader, &self.keys)?);
                last_read = Instant::now();
            }
        }
    }
}
