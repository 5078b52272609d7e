//! Connection pools. A caller takes a connection, uses it on its own thread and gives it
//! back; a connection that failed is dropped instead. No runtime thread is involved.

use std::collections::HashMap;
use std::time::Duration;

use mc_dataplane::transfer::client::DataConn;
use mc_rpc::RpcClient;
use mc_schema::handshake::Role;
use parking_lot::Mutex;

use crate::Result;

/// Idle connections kept per endpoint.
const MAX_IDLE_PER_ENDPOINT: usize = 64;

/// Pooled connections to the master.
pub(crate) struct MasterPool {
    addr: String,
    cluster_id: String,
    connect_timeout: Duration,
    idle: Mutex<Vec<RpcClient>>,
}

impl MasterPool {
    pub(crate) fn new(addr: &str, cluster_id: &str, connect_timeout: Duration) -> MasterPool {
        MasterPool {
            addr: addr.to_string(),
            cluster_id: cluster_id.to_string(),
            connect_timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// A pooled connection (`true`) or a fresh one (`false`).
    pub(crate) fn take(&self) -> Result<(RpcClient, bool)> {
        if let Some(c) = self.idle.lock().pop() {
            return Ok((c, true));
        }
        Ok((self.connect()?, false))
    }

    pub(crate) fn connect(&self) -> Result<RpcClient> {
        Ok(RpcClient::connect(
            &self.addr,
            Role::Client,
            &self.cluster_id,
            self.connect_timeout,
        )?)
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

    pub(crate) fn give(&self, c: DataConn) {
        let mut idle = self.idle.lock();
        let v = idle.entry(c.endpoint().to_string()).or_default();
        if v.len() < MAX_IDLE_PER_ENDPOINT {
            v.push(c);
        }
    }
}
