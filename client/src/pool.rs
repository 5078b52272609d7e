//! Connection pools. A caller takes a connection, uses it on its own thread and gives it
//! back; a connection that failed is dropped instead. No runtime thread is involved. The
//! master pool also knows which master leads (`mc_coord::LeaderTracker`).

use std::collections::HashMap;
use std::time::Duration;

use mc_coord::{LeaderTracker, MasterLocator};
use mc_rpc::{RpcClient, RpcError};
use mc_schema::handshake::Role;
use mc_transfer::DataConn;
use parking_lot::Mutex;

use crate::Result;

/// Idle connections kept per endpoint.
const MAX_IDLE_PER_ENDPOINT: usize = 64;

/// Pooled connections to the master that leads, and where it is.
pub(crate) struct MasterPool {
    leader: LeaderTracker,
    cluster_id: String,
    connect_timeout: Duration,
    idle: Mutex<Vec<RpcClient>>,
}

impl MasterPool {
    /// Follows `locator` (a static `host:port` or a coordinator) for `cluster_id`.
    pub(crate) fn new(
        locator: &MasterLocator,
        cluster_id: &str,
        connect_timeout: Duration,
    ) -> std::result::Result<MasterPool, mc_coord::CoordError> {
        Ok(MasterPool {
            leader: LeaderTracker::start(locator, cluster_id)?,
            cluster_id: cluster_id.to_string(),
            connect_timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Which master calls go to.
    pub(crate) fn leader(&self) -> &LeaderTracker {
        &self.leader
    }

    /// A pooled connection to `addr` (`true`) or a fresh one (`false`). Idle connections to
    /// any other master (a former leader) are closed.
    pub(crate) fn take(&self, addr: &str) -> std::result::Result<(RpcClient, bool), RpcError> {
        let pooled = {
            let mut idle = self.idle.lock();
            idle.retain(|c| c.addr() == addr);
            idle.pop()
        };
        match pooled {
            Some(c) => Ok((c, true)),
            None => Ok((self.connect(addr)?, false)),
        }
    }

    /// A fresh connection to `addr`, handshake checked.
    pub(crate) fn connect(&self, addr: &str) -> std::result::Result<RpcClient, RpcError> {
        RpcClient::connect(addr, Role::Client, &self.cluster_id, self.connect_timeout)
    }

    pub(crate) fn give(&self, c: RpcClient) {
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE_PER_ENDPOINT {
            idle.push(c);
        }
    }
}

/// Pooled connections to shards, by endpoint.
pub(crate) struct DataPool {
    cluster_id: String,
    connect_timeout: Duration,
    idle: Mutex<HashMap<String, Vec<DataConn>>>,
}

impl DataPool {
    pub(crate) fn new(cluster_id: &str, connect_timeout: Duration) -> DataPool {
        DataPool {
            cluster_id: cluster_id.to_string(),
            connect_timeout,
            idle: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn take(&self, endpoint: &str) -> Result<DataConn> {
        if let Some(c) = self.idle.lock().get_mut(endpoint).and_then(Vec::pop) {
            return Ok(c);
        }
        Ok(DataConn::connect(
            endpoint,
            &self.cluster_id,
            self.connect_timeout,
        )?)
    }

    /// Drops the idle connections to an endpoint that just failed.
    pub(crate) fn purge(&self, endpoint: &str) {
        self.idle.lock().remove(endpoint);
    }

    pub(crate) fn give(&self, c: DataConn) {
        let mut idle = self.idle.lock();
        let v = idle.entry(c.endpoint().to_string()).or_default();
        if v.len() < MAX_IDLE_PER_ENDPOINT {
            v.push(c);
        }
    }
}

/// First back-off after an endpoint failed; doubles per consecutive failure.
const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// Longest back-off.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Endpoints that failed recently. Calls skip them until their back-off ends, then one call
/// tries again (success clears the record, failure doubles the back-off), so a dead or
/// stalled node costs one timeout, not one per call.
#[derive(Default)]
pub(crate) struct EndpointHealth {
    bad: parking_lot::RwLock<HashMap<String, (std::time::Instant, u32)>>,
}

impl EndpointHealth {
    pub(crate) fn backed_off(&self, endpoint: &str) -> bool {
        let bad = self.bad.read();
        !bad.is_empty()
            && bad
                .get(endpoint)
                .is_some_and(|(until, _)| std::time::Instant::now() < *until)
    }

    pub(crate) fn failed(&self, endpoint: &str) {
        let mut bad = self.bad.write();
        let e = bad
            .entry(endpoint.to_string())
            .or_insert((std::time::Instant::now(), 0));
        e.1 = e.1.saturating_add(1);
        let backoff = BACKOFF_BASE
            .saturating_mul(1 << (e.1 - 1).min(16))
            .min(BACKOFF_MAX);
        e.0 = std::time::Instant::now() + backoff;
        tracing::warn!(
            endpoint,
            failures = e.1,
            ?backoff,
            "shard endpoint failed; backing off"
        );
    }

    pub(crate) fn ok(&self, endpoint: &str) {
        if self.bad.read().contains_key(endpoint) {
            self.bad.write().remove(endpoint);
        }
    }
}
