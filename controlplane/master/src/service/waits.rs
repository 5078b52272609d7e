//! The requests whose answer may wait: the nodes' `Sync` long poll, lookups that arrive
//! while nodes are still reporting what they hold, and removes, which are answered once the
//! holders have applied their free notices (`docs/why-recovery.md`).

use std::time::Duration;

use mc_rpc::Reply;
use mc_schema::ErrorCode;
use mc_schema::msg::{Request, Response, ResponseBody};
use tracing::warn;

use super::MasterService;
use crate::notices;
use crate::recovery::Done;

/// Longest hold of a `Sync` with nothing to deliver.
const SYNC_HOLD: Duration = Duration::from_millis(500);

/// Longest wait of a lookup or remove for nodes still reporting their inventories; after
/// it, a key still unknown is answered UNAVAILABLE_IN_CURRENT_STATUS (retryable) while
/// reports are missing.
const RECOVERY_WAIT: Duration = Duration::from_secs(3);

/// Longest wait of a remove for its holders to confirm their free notices. A holder that
/// does not confirm in time is down or partitioned (it is dropped at `client_ttl`). With
/// [`RECOVERY_WAIT`] it stays below the client's default 5 s deadline.
const REMOVE_CONFIRM: Duration = Duration::from_secs(1);

/// Longest wait of a PutStart that found no room for SSD copies eviction asked for
/// (`--offload_on_evict`); then NO_AVAILABLE_HANDLE. Below the client's 5 s deadline.
const OFFLOAD_WAIT: Duration = Duration::from_secs(3);

/// How often a waiting PutStart looks again even without news of a copy.
const OFFLOAD_RECHECK: Duration = Duration::from_millis(50);

/// Indexes of the items of a PutStart answer that found no room.
fn without_room(r: &Response) -> Vec<usize> {
    let nah = ErrorCode::NoAvailableHandle.code();
    match &r.body {
        ResponseBody::PutStart(v) => (0..v.len()).filter(|&i| v[i].status == nah).collect(),
        _ => Vec::new(),
    }
}

/// Whether answer `r` to a lookup has a key the master does not know.
fn has_missing(r: &Response) -> bool {
    let nf = ErrorCode::ObjectNotFound.code();
    match &r.body {
        ResponseBody::ReplicaLists(v) => v.iter().any(|x| x.status == nf),
        ResponseBody::Values(v) => v.iter().any(|&x| x == 0 || x == i64::from(nf)),
        _ => false,
    }
}

/// The keys of lookup (or remove) `req` that answer `r` has as unknown.
fn missing_keys<'a>(req: &'a Request, r: &Response) -> Vec<&'a str> {
    let nf = ErrorCode::ObjectNotFound.code();
    let keys = match req {
        Request::GetReplicaList { keys }
        | Request::ExistKey { keys }
        | Request::GetSize { keys }
        | Request::Remove { keys, .. } => keys,
        _ => return Vec::new(),
    };
    let missing: Vec<bool> = match &r.body {
        ResponseBody::ReplicaLists(v) => v.iter().map(|x| x.status == nf).collect(),
        ResponseBody::Values(v) => v.iter().map(|&x| x == 0 || x == i64::from(nf)).collect(),
        _ => Vec::new(),
    };
    keys.iter()
        .zip(missing)
        .filter(|(_, m)| *m)
        .map(|(k, _)| k.as_str())
        .collect()
}

/// Marks the keys still unknown in `r` as retryable: a node that may hold them has not
/// finished reporting.
fn unknown_is_retryable(r: &mut Response) {
    let nf = ErrorCode::ObjectNotFound.code();
    let later = ErrorCode::UnavailableInCurrentStatus.code();
    match &mut r.body {
        ResponseBody::ReplicaLists(v) => v
            .iter_mut()
            .filter(|x| x.status == nf)
            .for_each(|x| x.status = later),
        ResponseBody::Values(v) => v
            .iter_mut()
            .filter(|x| **x == 0 || **x == i64::from(nf))
            .for_each(|x| *x = i64::from(later)),
        _ => {}
    }
}

impl MasterService {
    /// `Sync`: acknowledges what the node applied and hands it the next notices, holding the
    /// answer up to [`SYNC_HOLD`] when there are none. An ack of another master's notices
    /// (`acked_term` not ours) acknowledges nothing here.
    pub(super) fn sync(&self, client_id: u64, acked_seq: u64, acked_term: u64) -> Reply {
        if !self.touch_client(client_id, self.now_ms()) {
            return Response::error(
                ErrorCode::ClientNotFound.code(),
                "unknown node: mount first",
            )
            .into();
        }
        let term = self.segments.term();
        let acked_seq = if acked_term == term { acked_seq } else { 0 };
        let n = self.segments.notices.clone();
        if let Some((seq, notices)) = n.sync(client_id, acked_seq) {
            return notices_answer(term, seq, notices).into();
        }
        let wake = n.waker(client_id);
        Reply::Later(Box::pin(async move {
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if n.sync(client_id, acked_seq).is_none() {
                let _ = tokio::time::timeout(SYNC_HOLD, notified).await;
            }
            match n.sync(client_id, acked_seq) {
                Some((seq, notices)) => notices_answer(term, seq, notices),
                None => notices_answer(term, acked_seq, Vec::new()),
            }
        }))
    }

    /// A lookup (GetReplicaList, ExistKey, GetSize): answered now, unless it names a key the
    /// master does not know while nodes may still report it; then it is asked again after
    /// each adoption, until the keys are found, recovery settles or [`RECOVERY_WAIT`] ends.
    pub(super) fn lookup(&self, req: Request, now: u64) -> Reply {
        self.until_known(req, now, Self::lookup_now)
    }

    /// Whether answer `resp` to `req` names a key a node may still report: recovery has
    /// not settled, or a restored snapshot names the key and a segment that held it has
    /// not reported yet.
    fn may_appear(&self, req: &Request, resp: &Response, now: u64) -> bool {
        if !has_missing(resp) {
            return false;
        }
        !self.recovery.settled(now)
            || (self.recovery.hints_awaited(now)
                && missing_keys(req, resp)
                    .iter()
                    .any(|k| self.recovery.awaits_hint(k, now)))
    }

    /// Answers `req` with `answer`, again and again while it names unknown keys a node may
    /// still report (see [`lookup`](Self::lookup)). Keys still unknown when the wait ends
    /// are answered UNAVAILABLE_IN_CURRENT_STATUS if recovery is still going.
    fn until_known(
        &self,
        req: Request,
        now: u64,
        answer: fn(&MasterService, &Request, u64) -> Response,
    ) -> Reply {
        let resp = answer(self, &req, now);
        if !self.may_appear(&req, &resp, now) {
            return resp.into();
        }
        let me = self.arc();
        Reply::Later(Box::pin(async move {
            let deadline = tokio::time::Instant::now() + RECOVERY_WAIT;
            loop {
                // Listen before looking, so an adoption in between is not missed.
                let notified = me.recovery.progress().notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let now = me.now_ms();
                let mut resp = answer(&me, &req, now);
                if !me.may_appear(&req, &resp, now) {
                    return resp;
                }
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() {
                    unknown_is_retryable(&mut resp);
                    return resp;
                }
                // Wake on an adoption, at the end of the grace, or at the deadline.
                let grace = me.recovery.grace_left(now);
                let wait = if grace.is_zero() {
                    left
                } else {
                    grace.min(left)
                };
                let _ = tokio::time::timeout(wait, notified).await;
            }
        }))
    }

    /// Runs `run` once no node that mounted is still reporting (or after
    /// [`RECOVERY_WAIT`]): a put or upsert of a key such a node holds then finds it (and is
    /// refused or replaces it as usual) instead of racing its adoption. Puts do not wait for
    /// the grace: a node that re-mounts later cannot replace what a client wrote here (an
    /// adoption never replaces an object this master did not adopt itself).
    /// A PutStart under `--offload_on_evict`: items that find no room while eviction
    /// waits for SSD copies are tried again as copies land, up to [`OFFLOAD_WAIT`].
    pub(super) fn put_start_waiting(
        &self,
        (client_id, host): (u64, String),
        items: Vec<(String, u64)>,
        cfg: mc_schema::msg::ReplicateConfig,
    ) -> Reply {
        let mut resp = self.put_start(false, (client_id, &host), &items, &cfg);
        let must_wait = |m: &MasterService, r: &Response| {
            !without_room(r).is_empty() && m.objects.evict_offloads_in_flight(m.now_ms()) > 0
        };
        if !must_wait(self, &resp) {
            return resp.into();
        }
        let me = self.arc();
        Reply::Later(Box::pin(async move {
            let deadline = tokio::time::Instant::now() + OFFLOAD_WAIT;
            loop {
                let notified = me.objects.offload_progress.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() {
                    return resp;
                }
                let _ = tokio::time::timeout(left.min(OFFLOAD_RECHECK), notified).await;
                let failed = without_room(&resp);
                let retry: Vec<(String, u64)> = failed.iter().map(|&i| items[i].clone()).collect();
                let again = me.put_start(false, (client_id, &host), &retry, &cfg);
                if let (ResponseBody::PutStart(all), ResponseBody::PutStart(new)) =
                    (&mut resp.body, again.body)
                {
                    for (i, r) in failed.into_iter().zip(new) {
                        all[i] = r;
                    }
                }
                if !must_wait(&me, &resp) {
                    return resp;
                }
            }
        }))
    }

    pub(super) fn when_settled(
        &self,
        now: u64,
        run: impl FnOnce(&MasterService, u64) -> Response + Send + 'static,
    ) -> Reply {
        if !self.recovery.reporting() {
            return run(self, now).into();
        }
        let me = self.arc();
        Reply::Later(Box::pin(async move {
            let deadline = tokio::time::Instant::now() + RECOVERY_WAIT;
            loop {
                let notified = me.recovery.progress().notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let now = me.now_ms();
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if me.recovery.settled(now) || left.is_zero() {
                    return run(&me, now);
                }
                let grace = me.recovery.grace_left(now);
                let wait = if grace.is_zero() {
                    left
                } else {
                    grace.min(left)
                };
                let _ = tokio::time::timeout(wait, notified).await;
            }
        }))
    }

    fn lookup_now(&self, req: &Request, now: u64) -> Response {
        match req {
            Request::GetReplicaList { keys } => self.get_replica_lists(keys, now),
            Request::ExistKey { keys } => self.per_key_value(keys, |k| self.objects.exist(k, now)),
            Request::GetSize { keys } => self.per_key_value(keys, |k| self.objects.size(k)),
            _ => Response::error(ErrorCode::InternalError.code(), "not a lookup"),
        }
    }

    /// A remove (by key, by pattern, or all). Removed keys and patterns are remembered
    /// while recovery could still bring them back from a late report. A key the master
    /// does not know while nodes may still report it is asked again like a lookup. The
    /// answer comes once the holders applied the free notices (or [`REMOVE_CONFIRM`]
    /// passed).
    pub(super) fn removal(&self, req: Request, now: u64) -> Reply {
        let hinted = self.recovery.hints_awaited(now);
        if !matches!(req, Request::Remove { .. }) || (self.recovery.settled(now) && !hinted) {
            return self.remove_and_confirm(req, now);
        }
        match self.until_known(req.clone(), now, Self::probe_removal) {
            Reply::Now(_) => self.remove_and_confirm(req, now),
            Reply::Later(f) => {
                let me = self.arc();
                Reply::Later(Box::pin(async move {
                    let _ = f.await;
                    match me.remove_and_confirm(req, me.now_ms()) {
                        Reply::Now(r) => r,
                        Reply::Later(f) => f.await,
                    }
                }))
            }
        }
    }

    /// Whether the keys of a remove are known, in a lookup's form (ObjectNotFound for the
    /// unknown ones), without removing anything.
    fn probe_removal(&self, req: &Request, _now: u64) -> Response {
        let Request::Remove { keys, .. } = req else {
            return Response::ok(ResponseBody::Statuses(Vec::new()));
        };
        self.per_key_value(keys, |k| self.objects.size(k))
    }

    fn remove_and_confirm(&self, req: Request, now: u64) -> Reply {
        self.confirmed(|| self.remove_now(&req, now))
    }

    /// Runs `f`; its answer comes once the nodes applied the free notices it emitted (or
    /// [`REMOVE_CONFIRM`] passed), so no client reads the freed objects through a cached
    /// location afterwards.
    pub(super) fn confirmed(&self, f: impl FnOnce() -> Response) -> Reply {
        let (resp, seqs) = notices::collect(f);
        if seqs.is_empty() {
            return resp.into();
        }
        let n = self.segments.notices.clone();
        Reply::Later(Box::pin(async move {
            let left = n.wait_acked(&seqs, REMOVE_CONFIRM).await;
            if left > 0 {
                warn!(
                    nodes = left,
                    "answered before every holder confirmed forgetting the freed objects"
                );
                n.unconfirmed_removes_total
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            resp
        }))
    }

    fn remove_now(&self, req: &Request, now: u64) -> Response {
        match req {
            Request::Remove { keys, force } => self.per_key(keys, |k| {
                self.recovery.tombstone(k, now);
                self.objects.remove(k, *force, now)
            }),
            Request::RemoveByRegex { regex, force } => {
                self.recovery.tombstone_pattern(regex, now);
                self.remove_by_regex(regex, *force, now)
            }
            Request::RemoveAll { force } => {
                self.recovery.tombstone_pattern(".*", now);
                let n = self.objects.remove_matching(|_| true, *force, now);
                Response::ok(ResponseBody::Count(n))
            }
            _ => Response::error(ErrorCode::InternalError.code(), "not a remove"),
        }
    }

    /// `ReportInventory`: part of a node's report, kept until `InventoryDone`.
    pub(super) fn report_inventory(
        &self,
        client_id: u64,
        entries: Vec<mc_schema::msg::InventoryEntry>,
        now: u64,
    ) -> Response {
        // A node busy reporting is alive: it sends no heartbeat meanwhile.
        self.touch_client(client_id, now);
        let n = entries.len() as u64;
        match self.recovery.report(client_id, entries) {
            Ok(()) => Response::ok(ResponseBody::Count(n)),
            Err(c) => Response::error(c.code(), "no inventory expected from this node"),
        }
    }

    /// `InventoryDone`: adopts the node's report (off the RPC runtime: it can take seconds)
    /// and opens its segments to placement. A report adopted already is not adopted again.
    pub(super) fn inventory_done(&self, client_id: u64, now: u64) -> Reply {
        self.touch_client(client_id, now);
        let (mounted_ms, entries) = match self.recovery.take(client_id) {
            Done::Adopt {
                mounted_ms,
                entries,
            } => (mounted_ms, entries),
            Done::Already => return Response::ok(ResponseBody::Count(0)).into(),
            Done::Unknown => {
                return Response::error(
                    ErrorCode::ClientNotFound.code(),
                    "no inventory expected from this node",
                )
                .into();
            }
        };
        let me = self.arc();
        Reply::Later(Box::pin(async move {
            let job = me.clone();
            let adopt = move || {
                let n = entries.len();
                let r = crate::recovery::assemble::adopt_inventory(
                    &job.segments,
                    &job.objects,
                    &job.recovery,
                    client_id,
                    (mounted_ms, entries),
                    now,
                );
                (n, r)
            };
            let (n, r) = match tokio::task::spawn_blocking(adopt).await {
                Ok(v) => v,
                Err(e) => {
                    me.recovery.adopted(client_id);
                    return Response::error(
                        ErrorCode::InternalError.code(),
                        format!("adoption failed: {e}"),
                    );
                }
            };
            me.recovery.count(&r);
            me.recovery.adopted(client_id);
            me.recovery
                .segments_reported(&me.segments.of_client(client_id));
            me.touch_client(client_id, me.now_ms());
            tracing::info!(
                client_id,
                entries = n,
                adopted_objects = r.adopted_objects,
                added_replicas = r.added_replicas,
                rejected_entries = r.rejected_entries,
                took_ms = r.took_ms,
                phases_ms = ?r.phases_ms,
                "node inventory adopted"
            );
            // Its objects are adopted: an earlier instance of the same node (a restart on
            // the same address) can go now, without waiting for client_ttl.
            let job = me.clone();
            // Off the RPC runtime too: it looks at every object.
            let _ =
                tokio::task::spawn_blocking(move || job.drop_previous_instances(client_id)).await;
            Response::ok(ResponseBody::Count(r.adopted_objects + r.added_replicas))
        }))
    }
}

fn notices_answer(term: u64, seq: u64, notices: Vec<mc_schema::msg::Notice>) -> Response {
    Response::ok(ResponseBody::Notices { term, seq, notices })
}
