//! The etcd elector: a lease, a create-if-absent transaction, keep-alives, lease revocation.
//!
//! As in Mooncake: grant a lease of the TTL, then in one transaction put the view key with the
//! lease attached only if its `create_revision` is 0 (absent). The view version is the
//! revision of that transaction, which is the key's `create_revision`. Renewing is a
//! keep-alive on the lease followed by a read checking that the key still carries this lease
//! (a key deleted by hand would otherwise leave a live lease looking like leadership).
//! Resigning revokes the lease, which deletes the key at once; a stale term's revoke can only
//! delete keys attached to its own lease, never a newer owner's.

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn,
    TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::Mutex;

use super::{Acquire, ElectionConfig, Elector, Term};
use crate::{CoordError, Endpoint, MasterView, keys};

/// A keep-alive stream kept open between renews of one lease.
struct KeepAlive {
    lease: i64,
    keeper: LeaseKeeper,
    stream: LeaseKeepAliveStream,
}

/// Elects on etcd with the `etcd-client` crate.
pub struct EtcdElector {
    client: Client,
    key: String,
    config: ElectionConfig,
    keep_alive: Mutex<Option<KeepAlive>>,
}

fn etcd_err(op: &'static str) -> impl FnOnce(etcd_client::Error) -> CoordError {
    move |source| CoordError::Etcd { op, source }
}

impl EtcdElector {
    /// Builds the elector for `cluster_id` on these endpoints. The client connects lazily, so
    /// this succeeds while etcd is down; calls fail until it is back.
    pub async fn connect(
        endpoints: &[Endpoint],
        cluster_id: &str,
        config: ElectionConfig,
    ) -> Result<Self, CoordError> {
        config.validate()?;
        let urls: Vec<String> = endpoints.iter().map(Endpoint::http_url).collect();
        // HTTP/2 pings notice a dead or frozen member within a few seconds even on an idle
        // connection; per-call bounds are applied by the caller.
        let options = ConnectOptions::new()
            .with_connect_timeout(config.op_timeout)
            .with_keep_alive(Duration::from_secs(1), config.op_timeout)
            .with_keep_alive_while_idle(true);
        let client = Client::connect(urls, Some(options))
            .await
            .map_err(etcd_err("connect"))?;
        Ok(Self {
            client,
            key: keys::etcd_view_key(cluster_id),
            config,
            keep_alive: Mutex::new(None),
        })
    }

    /// The key this elector campaigns on.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The lease TTL in etcd's whole seconds, rounded up.
    fn ttl_secs(&self) -> i64 {
        let ttl = self.config.ttl;
        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        i64::try_from(secs).unwrap_or(i64::MAX)
    }

    fn lease_id(&self, term: &Term) -> Result<i64, CoordError> {
        term.token.parse().map_err(|_| CoordError::BadView {
            key: self.key.clone(),
            reason: format!("owner token `{}` is not an etcd lease id", term.token),
        })
    }

    fn to_view(&self, kv: &etcd_client::KeyValue) -> Result<MasterView, CoordError> {
        let leader = kv.value_str().map_err(|_| CoordError::BadView {
            key: self.key.clone(),
            reason: "the leader address is not UTF-8".into(),
        })?;
        Ok(MasterView {
            leader: leader.to_string(),
            version: u64::try_from(kv.create_revision()).unwrap_or(0),
        })
    }

    /// Revokes a lease nobody uses any more; a failure only leaves it to expire.
    async fn drop_lease(&self, lease: i64) {
        if let Err(e) = self.client.clone().lease_revoke(lease).await {
            tracing::debug!(lease, error = %e, "could not revoke an unused lease; it will expire");
        }
    }

    /// One keep-alive round trip on the kept stream (opened if needed): the granted TTL.
    async fn keep_alive_once(&self, lease: i64) -> Result<i64, CoordError> {
        // Taken out of the slot for the call: if the caller drops this future mid-way, the
        // half-used stream is dropped with it instead of answering a later renew.
        let kept = self.keep_alive.lock().await.take();
        let mut ka = match kept {
            Some(ka) if ka.lease == lease => ka,
            _ => match self.client.clone().lease_keep_alive(lease).await {
                Ok((keeper, stream)) => KeepAlive {
                    lease,
                    keeper,
                    stream,
                },
                // Opening the stream renews once; etcd-client reports an expired or revoked
                // lease (TTL 0 in that first answer) as this error.
                Err(etcd_client::Error::LeaseKeepAliveError(msg)) if msg == "lease not found" => {
                    return Ok(0);
                }
                Err(source) => {
                    return Err(CoordError::Etcd {
                        op: "lease keep-alive",
                        source,
                    });
                }
            },
        };
        ka.keeper
            .keep_alive()
            .await
            .map_err(etcd_err("lease keep-alive"))?;
        let resp = ka
            .stream
            .message()
            .await
            .map_err(etcd_err("lease keep-alive"))?
            .ok_or(CoordError::Etcd {
                op: "lease keep-alive",
                source: etcd_client::Error::LeaseKeepAliveError("stream closed".into()),
            })?;
        let ttl = resp.ttl();
        if ttl > 0 {
            *self.keep_alive.lock().await = Some(ka);
        }
        Ok(ttl)
    }
}

impl Elector for EtcdElector {
    fn config(&self) -> &ElectionConfig {
        &self.config
    }

    /// etcd numbers views itself with revisions, which only grow, so `min_version` is not
    /// needed here.
    async fn try_acquire(&self, leader: &str, _min_version: u64) -> Result<Acquire, CoordError> {
        let mut client = self.client.clone();
        let lease = client
            .lease_grant(self.ttl_secs(), None)
            .await
            .map_err(etcd_err("lease grant"))?;
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then([TxnOp::put(
                self.key.clone(),
                leader,
                Some(PutOptions::new().with_lease(lease.id())),
            )])
            .or_else([TxnOp::get(self.key.clone(), None)]);
        let resp = match client.txn(txn).await {
            Ok(resp) => resp,
            Err(e) => {
                self.drop_lease(lease.id()).await;
                return Err(CoordError::Etcd {
                    op: "txn",
                    source: e,
                });
            }
        };
        if resp.succeeded() {
            let version = resp.header().map_or(0, |h| h.revision());
            return Ok(Acquire::Won(Term {
                view: MasterView {
                    leader: leader.to_string(),
                    version: u64::try_from(version).unwrap_or(0),
                },
                token: lease.id().to_string(),
                ttl: Duration::from_secs(u64::try_from(lease.ttl()).unwrap_or(0)),
            }));
        }
        self.drop_lease(lease.id()).await;
        let mut held = None;
        for op in resp.op_responses() {
            if let TxnOpResponse::Get(get) = op
                && let Some(kv) = get.kvs().first()
            {
                held = Some(self.to_view(kv)?);
            }
        }
        Ok(Acquire::Held(held))
    }

    async fn renew(&self, term: &Term) -> Result<Option<Duration>, CoordError> {
        let lease = self.lease_id(term)?;
        let ttl = self.keep_alive_once(lease).await?;
        if ttl <= 0 {
            return Ok(None);
        }
        let get = self
            .client
            .clone()
            .get(self.key.clone(), None)
            .await
            .map_err(etcd_err("get"))?;
        match get.kvs().first() {
            Some(kv) if kv.lease() == lease => {
                Ok(Some(Duration::from_secs(u64::try_from(ttl).unwrap_or(0))))
            }
            _ => Ok(None),
        }
    }

    async fn release(&self, term: &Term) -> Result<bool, CoordError> {
        let lease = self.lease_id(term)?;
        {
            let mut slot = self.keep_alive.lock().await;
            if slot.as_ref().is_some_and(|ka| ka.lease == lease) {
                *slot = None;
            }
        }
        match self.client.clone().lease_revoke(lease).await {
            Ok(_) => Ok(true),
            Err(etcd_client::Error::GRpcStatus(status))
                if status.code() == tonic_code_not_found() =>
            {
                Ok(false)
            }
            Err(source) => Err(CoordError::Etcd {
                op: "lease revoke",
                source,
            }),
        }
    }

    async fn read_view(&self) -> Result<Option<MasterView>, CoordError> {
        let get = self
            .client
            .clone()
            .get(self.key.clone(), None)
            .await
            .map_err(etcd_err("get"))?;
        get.kvs().first().map(|kv| self.to_view(kv)).transpose()
    }

    async fn wait_for_change(
        &self,
        known: Option<&MasterView>,
        timeout: Duration,
    ) -> Result<Option<MasterView>, CoordError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut client = self.client.clone();
        let get = client
            .get(self.key.clone(), None)
            .await
            .map_err(etcd_err("get"))?;
        let view = get.kvs().first().map(|kv| self.to_view(kv)).transpose()?;
        if view.as_ref().map(|v| v.version) != known.map(|v| v.version) {
            return Ok(view);
        }
        // Watching from the read's revision + 1 misses no change made after the read.
        let revision = get.header().map_or(0, |h| h.revision());
        let options = WatchOptions::new().with_start_revision(revision + 1);
        let mut stream = client
            .watch(self.key.clone(), Some(options))
            .await
            .map_err(etcd_err("watch"))?;
        loop {
            let Ok(msg) = tokio::time::timeout_at(deadline, stream.message()).await else {
                return Ok(view);
            };
            match msg.map_err(etcd_err("watch"))? {
                Some(resp) if resp.canceled() || !resp.events().is_empty() => break,
                Some(_) => {}
                None => {
                    return Err(CoordError::Etcd {
                        op: "watch",
                        source: etcd_client::Error::WatchError("stream closed".into()),
                    });
                }
            }
        }
        self.read_view().await
    }
}

/// gRPC's NOT_FOUND, which etcd answers for a revoke of an unknown (expired) lease.
fn tonic_code_not_found() -> tonic::Code {
    tonic::Code::NotFound
}
