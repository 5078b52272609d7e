//! The master's RPC handlers: validation, then metadata and segment operations.

mod credit;
mod tasks;
mod waits;

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use mc_schema::ErrorCode;
use mc_schema::limits::{MAX_BATCH_KEYS, MAX_OBJECT_BYTES, MAX_REPLICAS, key_is_valid};
use mc_schema::msg::{
    PutEndItem, PutStartResult, ReplicaDesc, ReplicateConfig, Request, Response, ResponseBody,
};
use parking_lot::Mutex;
use tracing::{info, warn};

use mc_rpc::Reply;

use crate::MasterError;
use crate::clock::Clock;
use crate::objects::{ObjectStore, Policy};
use crate::recovery::Recovery;
use crate::segments::{Segments, Strategy};

/// Tunables the handlers need.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Leases, pins and PutStart timeouts.
    pub policy: Policy,
    /// Silence after which a client is dropped.
    pub client_ttl_ms: u64,
    /// How long after its start a lookup of an unknown key waits for nodes to report.
    pub recovery_grace_ms: u64,
    /// Most live allocations per segment.
    pub max_allocations_per_segment: u32,
    /// Usage share at which eviction starts.
    pub eviction_high_watermark_ratio: f64,
    /// Share of capacity one eviction round frees.
    pub eviction_ratio: f64,
    /// Placement strategy.
    pub strategy: Strategy,
    /// Admin HTTP port (`--metrics_port`), told to tools in the Ping answer; 0 = unknown.
    pub admin_port: u16,
    /// The view version (leader term) this master serves, told to nodes in the Ping answer:
    /// 1 without HA, the won view's version with it.
    pub view_version: u64,
    /// Secrets of the write tokens (`mc_schema::token`): the one signed with, handed to
    /// nodes when they mount, and during a rotation the next one, handed to them in their
    /// heartbeat answers. Shared by the terms of one process ([`crate::secret`]).
    pub write_secrets: Arc<crate::secret::WriteSecrets>,
    /// Bounds and timeouts of copy and move tasks.
    pub task_limits: crate::tasks::TaskLimits,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            policy: Policy::default(),
            client_ttl_ms: 10_000,
            recovery_grace_ms: 0,
            max_allocations_per_segment: 4_000_000,
            eviction_high_watermark_ratio: 0.95,
            eviction_ratio: 0.05,
            strategy: Strategy::Random,
            admin_port: 0,
            view_version: 1,
            write_secrets: Arc::new(crate::secret::WriteSecrets::new(
                mc_schema::token::new_secret().into(),
                0,
            )),
            task_limits: Default::default(),
        }
    }
}

/// Master state and request handling.
pub struct MasterService {
    /// Itself, for answers that wait (they outlive the call that made them).
    me: Weak<MasterService>,
    cfg: ServiceConfig,
    clock: Arc<dyn Clock>,
    /// Mounted segments (shared with the object store, which allocates and frees in them).
    pub segments: Arc<Segments>,
    /// Object metadata.
    pub objects: ObjectStore,
    /// client id → last heartbeat (ms).
    clients: Mutex<HashMap<u64, u64>>,
    /// When abandoned PutStarts were last swept for.
    last_sweep_ms: std::sync::atomic::AtomicU64,
    /// Per-RPC counters and latencies (shared by the terms of one process, see
    /// [`MasterService::with_metrics`]).
    pub rpc_metrics: Arc<crate::metrics::RpcMetrics>,
    /// Re-adoption of what the nodes hold.
    pub recovery: Recovery,
    /// Copy and move tasks.
    pub tasks: crate::tasks::Tasks,
}

/// Longest a write token lives. Shards remember freed allocations for longer
/// (`mc_dataplane`'s revoked list), so a token always dies before its revocation is forgotten.
pub const MAX_TOKEN_TTL_MS: u64 = 10 * 60 * 1000;

/// Time between sweeps for abandoned PutStarts (a full scan of the metadata).
const SWEEP_INTERVAL_MS: u64 = 5_000;

fn invalid(msg: impl Into<String>) -> Response {
    Response::error(ErrorCode::InvalidParams.code(), msg)
}

/// Failpoints `master::put_end::before_record` and `master::put_end::after_record`, on each
/// side of recording a PutEnd: `return` answers INTERNAL_ERROR (before: nothing committed;
/// after: committed, but the client hears otherwise), `sleep(ms)` delays the answer, `panic`
/// fails the request's task. Always `None` without the `failpoints` feature.
fn injected_commit_failure(_name: &str) -> Option<Response> {
    #[cfg(feature = "failpoints")]
    if fail::eval(_name, |_| ()).is_some() {
        return Some(Response::error(
            ErrorCode::InternalError.code(),
            format!("failpoint {_name}"),
        ));
    }
    None
}

fn check_batch(n: usize) -> Result<(), Response> {
    if n > MAX_BATCH_KEYS {
        return Err(invalid(format!(
            "batch of {n} keys exceeds the limit of {MAX_BATCH_KEYS}"
        )));
    }
    Ok(())
}

impl MasterService {
    /// A master with no segments, recovering from what nodes report for `client_ttl`.
    pub fn new(cfg: ServiceConfig, clock: Arc<dyn Clock>) -> Arc<MasterService> {
        Self::with_metrics(cfg, clock, Arc::default())
    }

    /// A master with no segments that records its RPCs in `rpc_metrics`: each HA term gets
    /// fresh metadata, while the process's RPC counters keep counting across terms.
    pub fn with_metrics(
        cfg: ServiceConfig,
        clock: Arc<dyn Clock>,
        rpc_metrics: Arc<crate::metrics::RpcMetrics>,
    ) -> Arc<MasterService> {
        let segments = Arc::new(Segments::new(cfg.max_allocations_per_segment, cfg.strategy));
        Arc::new_cyclic(|me| MasterService {
            me: me.clone(),
            objects: ObjectStore::new(cfg.policy.clone(), segments.clone()),
            segments,
            clients: Mutex::new(HashMap::new()),
            last_sweep_ms: std::sync::atomic::AtomicU64::new(0),
            rpc_metrics,
            recovery: Recovery::new(clock.now_ms(), cfg.client_ttl_ms, cfg.recovery_grace_ms),
            tasks: crate::tasks::Tasks::new(cfg.task_limits.clone(), clock.now_ms()),
            cfg,
            clock,
        })
    }

    /// This service as an `Arc`, for an answer that waits.
    fn arc(&self) -> Arc<MasterService> {
        self.me
            .upgrade()
            .expect("a service answering requests is alive")
    }

    /// The view version (leader term) this master serves.
    pub fn view_version(&self) -> u64 {
        self.cfg.view_version
    }

    /// The master's clock, in milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Number of live clients (agents that heartbeat).
    pub fn client_count(&self) -> usize {
        self.clients.lock().len()
    }

    /// Drops clients silent for longer than `client_ttl`: their segments unmount and their
    /// replicas leave the metadata. Returns the dropped client ids.
    ///
    /// A silent client whose segment names a live client has mounted again (the same node
    /// restarted on the same address) is left to [`drop_previous_instances`]
    /// (Self::drop_previous_instances), which drops it once the successor's inventory is
    /// adopted: dropping it first would remove the objects whose only other copies are the
    /// successor's SSD records, while a large inventory is still being adopted.
    pub fn reap_silent_clients(&self) -> Vec<u64> {
        let now = self.clock.now_ms();
        let segments = self.segments.list();
        let dead: Vec<u64> = {
            let mut clients = self.clients.lock();
            let silent = |seen: u64| now.saturating_sub(seen) > self.cfg.client_ttl_ms;
            let live_names: std::collections::HashSet<&str> = segments
                .iter()
                .filter(|s| clients.get(&s.client_id).is_some_and(|&seen| !silent(seen)))
                .map(|s| s.name.as_str())
                .collect();
            let succeeded = |id: u64| {
                segments
                    .iter()
                    .any(|s| s.client_id == id && live_names.contains(s.name.as_str()))
            };
            let dead: Vec<u64> = clients
                .iter()
                .filter(|(id, seen)| silent(**seen) && !succeeded(**id))
                .map(|(id, _)| *id)
                .collect();
            for id in &dead {
                clients.remove(id);
            }
            dead
        };
        for id in &dead {
            for seg in self.segments.of_client(*id) {
                self.unmount(*id, seg);
            }
            self.segments.notices.forget(*id);
            self.recovery.forget(*id);
            self.objects.drop_client_credit(*id);
            warn!(client_id = id, "client silent for over client_ttl: dropped");
        }
        dead
    }

    /// Drops the clients whose segments carry the names `client_id`'s segments carry: an
    /// earlier instance of the same node, restarted on the same address (names are
    /// `host:data_port`, and no two live shards can hold one port). Called once the new
    /// instance's inventory is adopted, so objects it still holds (its SSD copies) have
    /// their new replicas before the old ones leave. Returns the dropped client ids.
    pub fn drop_previous_instances(&self, client_id: u64) -> Vec<u64> {
        let mine: std::collections::HashSet<String> = self
            .segments
            .list()
            .into_iter()
            .filter(|s| s.client_id == client_id)
            .map(|s| s.name.clone())
            .collect();
        let mut old: Vec<u64> = self
            .segments
            .list()
            .into_iter()
            .filter(|s| s.client_id != client_id && mine.contains(&s.name))
            .map(|s| s.client_id)
            .collect();
        old.sort_unstable();
        old.dedup();
        let t0 = std::time::Instant::now();
        let mut slots = Vec::new();
        for id in &old {
            self.clients.lock().remove(id);
            for seg in self.segments.of_client(*id) {
                if let Some(s) = self.segments.unmount(*id, seg) {
                    slots.push(s.slot);
                }
            }
        }
        // One pass over the objects for all of the old segments.
        let (replicas, objects) = self.objects.drop_segments(&slots);
        if !old.is_empty() {
            info!(
                segments = slots.len(),
                replicas,
                objects,
                took_ms = t0.elapsed().as_millis() as u64,
                "segments of the previous instance unmounted; their replicas left the metadata"
            );
        }
        for id in &old {
            self.segments.notices.forget(*id);
            self.recovery.forget(*id);
            info!(
                client_id = id,
                successor = client_id,
                "node restarted at the same address: its previous instance is dropped at once"
            );
        }
        old
    }

    /// Periodic upkeep: releases abandoned PutStart space, drops a restored snapshot's
    /// hints once they have lapsed and, when usage has reached the high watermark, evicts
    /// about `eviction_ratio` of capacity. Returns bytes freed.
    pub fn maintain(&self) -> u64 {
        let now = self.clock.now_ms();
        self.recovery.expire_hints(now);
        self.objects.expire_promotions(now);
        self.expire_tasks(now);
        let mut freed = self.objects.release_zombies(now) + self.objects.expire_credit(now);
        let last = self
            .last_sweep_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        if now.saturating_sub(last) >= SWEEP_INTERVAL_MS {
            self.last_sweep_ms
                .store(now, std::sync::atomic::Ordering::Relaxed);
            freed += self.objects.sweep_abandoned(now);
        }
        let (used, capacity) = self.segments.usage();
        if capacity > 0 && used as f64 >= capacity as f64 * self.cfg.eviction_high_watermark_ratio {
            let target = (capacity as f64 * self.cfg.eviction_ratio).ceil() as u64;
            let (objects, bytes) = self.objects.evict(target, now);
            if objects > 0 {
                info!(
                    objects,
                    bytes, used, capacity, "high watermark reached: evicted"
                );
            }
            freed += bytes;
        }
        freed
    }

    /// The Ping answer: whether the caller is a known client, what tools need to find
    /// the admin port and to size a workload below the eviction watermark, and for a node
    /// the write secret its shards must hold (`write_secret`, empty for anyone else).
    fn ping_ack(&self, client_known: bool, write_secret: Vec<u8>) -> ResponseBody {
        let (allocated_bytes, capacity_bytes) = self.segments.usage();
        ResponseBody::PingAck {
            client_known,
            view_version: self.cfg.view_version,
            admin_port: self.cfg.admin_port,
            capacity_bytes,
            allocated_bytes,
            eviction_high_watermark_bytes: (capacity_bytes as f64
                * self.cfg.eviction_high_watermark_ratio)
                as u64,
            write_secret,
        }
    }

    fn unmount(&self, client_id: u64, segment_id: u64) -> ErrorCode {
        match self.segments.unmount(client_id, segment_id) {
            Some(seg) => {
                let (replicas, objects) = self.objects.drop_segment(seg.slot);
                info!(
                    segment = %seg.name,
                    replicas, objects, "segment unmounted; its replicas left the metadata"
                );
                ErrorCode::Ok
            }
            None => ErrorCode::SegmentNotFound,
        }
    }

    /// Gives every slice of new allocations its write token: valid while the allocation can
    /// be (until an unfinished put's space is released), at most [`MAX_TOKEN_TTL_MS`].
    fn sign(&self, replicas: &mut [ReplicaDesc]) {
        let ttl = self.cfg.policy.release_ms.min(MAX_TOKEN_TTL_MS);
        let expires = mc_schema::token::unix_ms_now() + ttl;
        self.cfg.write_secrets.with_key(|key| {
            for s in replicas.iter_mut().flat_map(|r| r.slices.iter_mut()) {
                s.token = Some(key.sign(s.segment_id, s.generation, (s.offset, s.length), expires));
            }
        });
    }

    /// `writer`: the client's id and host.
    fn put_start(
        &self,
        upsert: bool,
        writer: (u64, &str),
        items: &[(String, u64)],
        cfg: &ReplicateConfig,
    ) -> Response {
        if let Err(r) = check_batch(items.len()) {
            return r;
        }
        if cfg.replica_num == 0 || cfg.replica_num > MAX_REPLICAS {
            return invalid(format!(
                "replica_num {} is outside 1..={MAX_REPLICAS}",
                cfg.replica_num
            ));
        }
        let now = self.clock.now_ms();
        let results = items
            .iter()
            .map(|(key, len)| {
                if !key_is_valid(key) || *len == 0 || *len > MAX_OBJECT_BYTES {
                    return PutStartResult {
                        status: ErrorCode::InvalidParams.code(),
                        replicas: Vec::new(),
                    };
                }
                let start = || {
                    if upsert {
                        self.objects.upsert_start(key, *len, cfg, writer, now)
                    } else {
                        self.objects.put_start(key, *len, cfg, writer, now)
                    }
                };
                let mut placed = start();
                if placed == Err(ErrorCode::NoAvailableHandle) {
                    // Make room (twice the need, as freed ranges may be scattered), retry once.
                    // Retry even when this call freed nothing: the background round or
                    // another PutStart may have just evicted what it would have taken.
                    let need = len.saturating_mul(cfg.replica_num as u64).saturating_mul(2);
                    self.objects.evict(need, now);
                    placed = start();
                }
                match placed {
                    Ok(mut replicas) => {
                        self.sign(&mut replicas);
                        PutStartResult {
                            status: 0,
                            replicas,
                        }
                    }
                    Err(c) => PutStartResult {
                        status: c.code(),
                        replicas: Vec::new(),
                    },
                }
            })
            .collect();
        Response::ok(ResponseBody::PutStart(results))
    }

    fn per_key(&self, keys: &[String], f: impl Fn(&str) -> ErrorCode) -> Response {
        if let Err(r) = check_batch(keys.len()) {
            return r;
        }
        let codes = keys
            .iter()
            .map(|k| {
                if key_is_valid(k) {
                    f(k).code()
                } else {
                    ErrorCode::InvalidParams.code()
                }
            })
            .collect();
        Response::ok(ResponseBody::Statuses(codes))
    }

    fn per_key_value(&self, keys: &[String], f: impl Fn(&str) -> i64) -> Response {
        if let Err(r) = check_batch(keys.len()) {
            return r;
        }
        let values = keys
            .iter()
            .map(|k| {
                if key_is_valid(k) {
                    f(k)
                } else {
                    ErrorCode::InvalidParams.code() as i64
                }
            })
            .collect();
        Response::ok(ResponseBody::Values(values))
    }
}

impl mc_rpc::Service for MasterService {
    fn handle(&self, _term: u64, req: Request) -> Reply {
        let (op, keys) = crate::metrics::classify(&req);
        let t0 = std::time::Instant::now();
        match self.dispatch(req) {
            Reply::Now(resp) => {
                self.rpc_metrics
                    .record(op, keys, crate::metrics::failed(&resp), t0.elapsed());
                Reply::Now(resp)
            }
            Reply::Later(f) => {
                let me = self.arc();
                Reply::Later(Box::pin(async move {
                    let resp = f.await;
                    me.rpc_metrics
                        .record(op, keys, crate::metrics::failed(&resp), t0.elapsed());
                    resp
                }))
            }
        }
    }
}

impl MasterService {
    /// Answers a request that never waits, for in-process callers (tests, tools).
    ///
    /// # Panics
    /// When the answer would be deferred.
    pub fn handle_now(&self, term: u64, req: Request) -> Response {
        mc_rpc::Service::handle(self, term, req).now()
    }
}

impl MasterService {
    /// Routes one request to its handler. The arms are grouped as node membership
    /// (mount, unmount, heartbeat, drain), writes (PutStart / UpsertStart, their commits and
    /// revokes), reads and removal; every handler sees the same `now`.
    fn dispatch(&self, req: Request) -> Reply {
        let now = self.clock.now_ms();
        let resp = match req {
            Request::MountSegment {
                client_id,
                segment_id,
                name,
                host,
                endpoint,
                size,
                term_seen,
                reports_inventory,
                disk,
            } => {
                // A mount is a sign of life, even when it is refused.
                self.clients.lock().insert(client_id, now);
                let names = [name.as_str(), host.as_str(), endpoint.as_str()];
                self.mount_segment(
                    client_id,
                    segment_id,
                    names,
                    size,
                    (term_seen, reports_inventory, disk),
                )
            }
            Request::UnmountSegment {
                client_id,
                segment_id,
            } => Response::error(self.unmount(client_id, segment_id).code(), ""),
            Request::Ping { client_id } => self.ping(client_id, now),
            Request::DrainSegments {
                client_id,
                segment_ids,
            } => self.drain_segments(client_id, &segment_ids),

            Request::PutStart {
                items,
                config,
                client_host,
                client_id,
            } => {
                if self.cfg.policy.offload_on_evict && !self.recovery.reporting() {
                    return self.put_start_waiting((client_id, client_host), items, config);
                }
                return self.when_settled(now, move |m, _| {
                    m.put_start(false, (client_id, &client_host), &items, &config)
                });
            }
            Request::UpsertStart {
                items,
                config,
                client_host,
                client_id,
            } => {
                return self.when_settled(now, move |m, _| {
                    m.put_start(true, (client_id, &client_host), &items, &config)
                });
            }
            Request::PutEnd { items } => {
                if let Some(r) = injected_commit_failure("master::put_end::before_record") {
                    return Reply::Now(r);
                }
                let r = self.commit(items, |i| self.objects.put_end(i, now));
                if let Some(r) = injected_commit_failure("master::put_end::after_record") {
                    return Reply::Now(r);
                }
                r
            }
            Request::UpsertEnd { items } => {
                // Answered once the old value's holders forgot it (see `confirmed`).
                return self.confirmed(|| self.commit(items, |i| self.objects.upsert_end(i, now)));
            }
            Request::PutRevoke { keys } => self.per_key(&keys, |k| self.objects.put_revoke(k)),
            Request::UpsertRevoke { keys } => {
                self.per_key(&keys, |k| self.objects.upsert_revoke(k))
            }

            req @ (Request::GetReplicaList { .. }
            | Request::ExistKey { .. }
            | Request::GetSize { .. }) => return self.lookup(req, now),
            req @ (Request::Remove { .. }
            | Request::RemoveByRegex { .. }
            | Request::RemoveAll { .. }) => return self.removal(req, now),

            Request::Sync {
                client_id,
                acked_seq,
                acked_term,
            } => return self.sync(client_id, acked_seq, acked_term),
            Request::ReportInventory { client_id, entries } => {
                self.report_inventory(client_id, entries, now)
            }
            Request::InventoryDone { client_id } => return self.inventory_done(client_id, now),
            // Reads served from clients' location caches count as reads: LRU and lease.
            Request::ReportHits { client_id, keys } => {
                self.touch_client(client_id, now);
                let n: i64 = keys.iter().map(|k| self.objects.exist(k, now)).sum();
                Response::ok(ResponseBody::Count(n as u64))
            }
            // SSD records a node dropped on its own: those replicas are gone.
            Request::ReportDropped { client_id, entries } => {
                self.touch_client(client_id, now);
                let n = self.objects.dropped(client_id, &entries);
                Response::ok(ResponseBody::Count(n))
            }
            // Slices a node filled from its SSD become memory replicas again.
            Request::ReportPromoted { client_id, entries } => {
                self.touch_client(client_id, now);
                let n = self.objects.promoted(client_id, &entries);
                Response::ok(ResponseBody::Count(n))
            }
            // Copies a node made durable on SSD become disk replicas.
            Request::ReportOffloaded { client_id, entries } => {
                self.touch_client(client_id, now);
                let n = self.objects.offloaded(client_id, &entries);
                Response::ok(ResponseBody::Count(n))
            }

            // Copy and move tasks (`tasks.rs`).
            Request::CreateCopyTask { key, targets } => self.create_copy_task(&key, &targets, now),
            Request::CreateMoveTask {
                key,
                source,
                target,
            } => self.create_move_task(&key, &source, &target, now),
            Request::QueryTask { id } => self.query_task(id),
            Request::ListTasks { max } => self.list_tasks(max),
            Request::FetchTasks { client_id, max } => self.fetch_tasks(client_id, max, now),
            Request::TaskStart { client_id, id } => self.task_start(client_id, id, now),
            Request::TaskEnd {
                client_id,
                id,
                outcome,
            } => self.task_end(client_id, id, outcome, now),
            Request::BatchReplicaClear {
                client_id,
                keys,
                segment_name,
            } => self.batch_replica_clear(client_id, &keys, &segment_name, now),
            req @ Request::PutCredit { .. } => {
                return self.when_settled(now, move |m, now| m.put_credit(req, now));
            }
        };
        Reply::Now(resp)
    }

    /// `MountSegment`: a node offers one segment (again after a master restart: the same
    /// id and size from the same client is accepted).
    fn mount_segment(
        &self,
        client_id: u64,
        segment_id: u64,
        names: [&str; 3],
        size: u64,
        (term_seen, reports_inventory, disk): (u64, bool, bool),
    ) -> Response {
        if term_seen >= mc_schema::generation::MAX_TERM {
            return invalid(format!("term_seen {term_seen} is not a term"));
        }
        match self.segments.mount(
            client_id,
            segment_id,
            names,
            size,
            (reports_inventory, disk),
        ) {
            Ok(_) => {
                let term = self.segments.observe_term(term_seen);
                if reports_inventory {
                    self.recovery.expect(client_id, self.now_ms());
                    // Its agent syncs: removes wait for it from now on.
                    self.segments.notices.expect_sync(client_id);
                } else {
                    // Mounted empty: whatever a snapshot says it held is gone.
                    self.recovery.segments_reported(&[segment_id]);
                }
                info!(segment = %names[0], size_bytes = size, term, "segment mounted");
                // Read after the segment is in the table: a rotation switching meanwhile
                // either waits for this node or is already the secret read here. A node
                // mounting starts its part of a rotation over (it may have restarted).
                self.cfg.write_secrets.forget_node(client_id);
                Response::ok(ResponseBody::MountAck {
                    term,
                    write_secret: self.cfg.write_secrets.current().to_vec(),
                })
            }
            Err(e @ MasterError::SegmentTaken { .. }) => {
                Response::error(ErrorCode::SegmentAlreadyExists.code(), e.to_string())
            }
            Err(e) => invalid(e.to_string()),
        }
    }

    /// Refreshes a known client's last sign of life; false for a client this master does not
    /// know.
    pub(super) fn touch_client(&self, client_id: u64, now: u64) -> bool {
        match self.clients.lock().get_mut(&client_id) {
            Some(seen) => {
                *seen = now;
                true
            }
            None => false,
        }
    }

    /// `Ping`: a node's heartbeat. The answer tells a node the master has forgotten (it
    /// restarted, or dropped the node after `client_ttl`) to mount again, and hands a node
    /// with mounted segments the write secret (the next one during a rotation, which this
    /// heartbeat may complete). Plain clients and tools never get a secret.
    fn ping(&self, client_id: u64, now: u64) -> Response {
        let known = self.touch_client(client_id, now);
        let secrets = &self.cfg.write_secrets;
        let secret = if known && self.segments.has_client(client_id) {
            secrets.for_node(client_id)
        } else {
            Vec::new()
        };
        if secrets.rotating() {
            self.advance_write_secret(now);
        }
        Response::ok(self.ping_ack(known, secret))
    }

    /// Moves a write-secret rotation on: switches signing to the pending secret once every
    /// node with mounted segments holds it, or `client_ttl` after it was staged
    /// ([`crate::secret`]). True when it switched.
    pub fn advance_write_secret(&self, now: u64) -> bool {
        self.cfg
            .write_secrets
            .try_switch(now, self.cfg.client_ttl_ms, || self.segments.clients())
    }

    /// `DrainSegments`: a node is leaving; its segments take no new allocations.
    fn drain_segments(&self, client_id: u64, segment_ids: &[u64]) -> Response {
        let n = self.segments.drain(client_id, segment_ids);
        info!(
            client_id,
            segments = n,
            "node draining: its segments take no new allocations"
        );
        Response::ok(ResponseBody::Count(n as u64))
    }

    /// `PutEnd` / `UpsertEnd`: commits a batch, one status per item.
    fn commit(&self, items: Vec<PutEndItem>, end: impl Fn(PutEndItem) -> ErrorCode) -> Response {
        if let Err(r) = check_batch(items.len()) {
            return r;
        }
        let codes = items.into_iter().map(|item| end(item).code()).collect();
        Response::ok(ResponseBody::Statuses(codes))
    }

    /// `GetReplicaList`: where each key's complete replicas are; grants read leases.
    fn get_replica_lists(&self, keys: &[String], now: u64) -> Response {
        if let Err(r) = check_batch(keys.len()) {
            return r;
        }
        let results = keys
            .iter()
            .map(|k| self.objects.get_replica_list(k, now))
            .collect();
        Response::ok(ResponseBody::ReplicaLists(results))
    }

    /// `RemoveByRegex`: removes every key matching `regex`; a bad pattern is refused.
    fn remove_by_regex(&self, regex: &str, force: bool, now: u64) -> Response {
        match regex::Regex::new(regex) {
            Ok(re) => {
                let n = self.objects.remove_matching(|k| re.is_match(k), force, now);
                Response::ok(ResponseBody::Count(n))
            }
            Err(e) => invalid(format!("bad regex: {e}")),
        }
    }
}
