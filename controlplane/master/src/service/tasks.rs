//! Handlers of copy and move tasks (`docs/tasks.md`): creating and querying them (users,
//! tools), and the node side (fetch, start, end).

use mc_schema::ErrorCode;
use mc_schema::limits::{MAX_REPLICAS, key_is_valid};
use mc_schema::msg::{Response, ResponseBody, TaskCopy, TaskKind, TaskOutcome, TaskState};
use tracing::{info, warn};

use super::{MasterService, invalid};
use crate::tasks::NewTask;

/// Most tasks one fetch or listing hands out.
const MAX_TASKS_PER_ANSWER: usize = 1_000;

fn refused(code: ErrorCode, msg: impl Into<String>) -> Response {
    Response::error(code.code(), msg)
}

impl MasterService {
    /// Checks that `name` is a segment new replicas can go to.
    fn check_target(&self, key: &str, name: &str) -> Result<(), Response> {
        match self.segments.by_name(name) {
            None => Err(invalid(format!(
                "key {key}: target segment {name} is not mounted"
            ))),
            Some(s) if s.disk => Err(invalid(format!(
                "key {key}: target segment {name} is an SSD store; copies go to memory segments"
            ))),
            Some(s) if !s.is_allocatable() => Err(refused(
                ErrorCode::UnavailableInCurrentStatus,
                format!("key {key}: target segment {name} takes no new allocations (draining)"),
            )),
            Some(_) => Ok(()),
        }
    }

    fn submit(&self, t: NewTask, now: u64) -> Response {
        let (kind, key) = (t.kind, t.key.clone());
        match self.tasks.submit(t, now) {
            Ok(info) => {
                info!(task = %format!("{:032x}", info.id), %key, kind = kind.name(), source = %info.source, targets = ?info.targets, "task created");
                Response::ok(ResponseBody::Tasks(vec![info]))
            }
            Err(c) => refused(c, format!("key {key}: too many pending tasks")),
        }
    }

    /// `CreateCopyTask`: a copy of `key` on each of `targets`, run by the node holding one
    /// of its replicas (a memory replica when there is one).
    pub(super) fn create_copy_task(&self, key: &str, targets: &[String], now: u64) -> Response {
        if !key_is_valid(key) {
            return invalid("invalid key");
        }
        if targets.is_empty() || targets.len() > MAX_REPLICAS as usize {
            return invalid(format!(
                "key {key}: name 1..={MAX_REPLICAS} target segments, got {}",
                targets.len()
            ));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(d) = targets.iter().find(|t| !seen.insert(t.as_str())) {
            return invalid(format!("key {key}: target segment {d} is named twice"));
        }
        if let Err(r) = targets.iter().try_for_each(|t| self.check_target(key, t)) {
            return r;
        }
        let replicas = match self.objects.replica_slots(key) {
            Ok(r) => r,
            Err(c) => return refused(c, format!("key {key}")),
        };
        let mut sources: Vec<&(bool, Vec<u32>)> = replicas.iter().filter(|r| !r.0).collect();
        if sources.is_empty() {
            sources = replicas.iter().collect();
        }
        let pick = sources[rand::random_range(0..sources.len())];
        let Some(seg) = pick.1.first().and_then(|&s| self.segments.by_slot(s)) else {
            return refused(
                ErrorCode::InternalError,
                format!("key {key}: no source replica"),
            );
        };
        let t = NewTask {
            kind: TaskKind::ReplicaCopy,
            key: key.to_string(),
            source: seg.name.clone(),
            targets: targets.to_vec(),
            client_id: seg.client_id,
        };
        self.submit(t, now)
    }

    /// `CreateMoveTask`: `key`'s replica on `source` goes to `target`, run by the node
    /// holding `source`.
    pub(super) fn create_move_task(
        &self,
        key: &str,
        source: &str,
        target: &str,
        now: u64,
    ) -> Response {
        if !key_is_valid(key) {
            return invalid("invalid key");
        }
        if source == target {
            return invalid(format!(
                "key {key}: source and target are the same segment ({source})"
            ));
        }
        if let Err(r) = self.check_target(key, target) {
            return r;
        }
        let replicas = match self.objects.replica_slots(key) {
            Ok(r) => r,
            Err(c) => return refused(c, format!("key {key}")),
        };
        let seg = self.segments.by_name(source);
        let held = seg.as_ref().is_some_and(|s| {
            replicas
                .iter()
                .any(|(disk, r)| !disk && r.contains(&s.slot))
        });
        let Some(seg) = seg.filter(|_| held) else {
            return invalid(format!(
                "key {key}: source segment {source} holds no memory replica of it"
            ));
        };
        let t = NewTask {
            kind: TaskKind::ReplicaMove,
            key: key.to_string(),
            source: source.to_string(),
            targets: vec![target.to_string()],
            client_id: seg.client_id,
        };
        self.submit(t, now)
    }

    /// `QueryTask`.
    pub(super) fn query_task(&self, id: u128) -> Response {
        match self.tasks.get(id) {
            Some(t) => Response::ok(ResponseBody::Tasks(vec![t])),
            None => refused(ErrorCode::TaskNotFound, format!("task {id:032x}")),
        }
    }

    /// `ListTasks`.
    pub(super) fn list_tasks(&self, max: u32) -> Response {
        let max = (max as usize).clamp(1, MAX_TASKS_PER_ANSWER);
        Response::ok(ResponseBody::Tasks(self.tasks.list(max)))
    }

    /// `FetchTasks`: a node's pending tasks, now processing. Not a sign of life: the node's
    /// task thread polls on its own, and only the agent's heartbeat and notice poll may keep
    /// a node alive.
    pub(super) fn fetch_tasks(&self, client_id: u64, max: u32, now: u64) -> Response {
        let max = (max as usize).clamp(1, MAX_TASKS_PER_ANSWER);
        Response::ok(ResponseBody::Tasks(self.tasks.fetch(client_id, max, now)))
    }

    /// `TaskStart`: allocates the target replicas of a fetched task and signs them.
    pub(super) fn task_start(&self, client_id: u64, id: u128, now: u64) -> Response {
        let info = match self.tasks.begin(client_id, id) {
            Ok(i) => i,
            Err(c) => return refused(c, format!("task {id:032x}")),
        };
        let source = (info.kind == TaskKind::ReplicaMove).then_some(info.source.as_str());
        let plan = match self
            .objects
            .copy_start(&info.key, &info.targets, source, now)
        {
            Ok(p) => p,
            Err(c) => {
                let msg = format!("cannot start: {}", c.name());
                self.tasks.finish(id, TaskState::Failed, msg.clone(), now);
                return refused(c, format!("task {id:032x} (key {}): {msg}", info.key));
            }
        };
        if plan.targets.is_empty() {
            let (state, msg) = match info.kind {
                TaskKind::ReplicaCopy => (
                    TaskState::Success,
                    "every target already holds a replica".to_string(),
                ),
                TaskKind::ReplicaMove => (
                    TaskState::Failed,
                    format!("{} already holds a replica", info.targets[0]),
                ),
            };
            self.tasks.finish(id, state, msg, now);
            return Response::ok(ResponseBody::TaskCopy(Box::new(TaskCopy {
                key: info.key,
                ..Default::default()
            })));
        }
        let mut targets = plan.targets;
        self.sign(&mut targets);
        let answer = TaskCopy {
            key: info.key,
            size: plan.space.size,
            put_generation: plan.space.put_generation,
            pins: plan.pins,
            replica_base: plan.replica_base,
            slice_crcs: plan.crcs,
            targets,
            source_segment: info.source,
        };
        if let Err(space) = self.tasks.hold(id, plan.space) {
            self.objects.copy_abandon(&space);
            return refused(
                ErrorCode::UnavailableInCurrentStatus,
                format!("task {id:032x} ended while it started"),
            );
        }
        Response::ok(ResponseBody::TaskCopy(Box::new(answer)))
    }

    /// `TaskEnd`: commits the copies a node wrote, or gives their space back.
    pub(super) fn task_end(&self, client_id: u64, id: u128, o: TaskOutcome, now: u64) -> Response {
        let (info, space) = match self.tasks.take(client_id, id) {
            Ok(t) => t,
            Err(c) => return refused(c, format!("task {id:032x}")),
        };
        let tag = format!("{:032x}", id);
        if !o.ok {
            self.objects.copy_abandon(&space);
            let msg = format!("{} ({})", o.message, ErrorCode::from_code(o.error_code));
            let state = self.tasks.retry_or_fail(id, msg.clone(), now);
            warn!(task = %tag, key = %info.key, state = state.name(), "task failed on its node: {msg}");
            return Response::ok(ResponseBody::Unit);
        }
        let source = (info.kind == TaskKind::ReplicaMove).then_some(info.source.as_str());
        let done = (o.slice_crcs.as_slice(), o.failed_targets.as_slice());
        let c = self.objects.copy_end(&info.key, space, done, source, now);
        match c {
            ErrorCode::Ok => {
                let msg = match info.kind {
                    TaskKind::ReplicaCopy if !o.failed_targets.is_empty() => format!(
                        "copied to {} of {} targets ({} transfers failed)",
                        info.targets.len() - o.failed_targets.len(),
                        info.targets.len(),
                        o.failed_targets.len()
                    ),
                    TaskKind::ReplicaCopy => format!("copied to {}", info.targets.join(", ")),
                    TaskKind::ReplicaMove => {
                        format!("moved from {} to {}", info.source, info.targets[0])
                    }
                };
                info!(task = %tag, key = %info.key, "task done: {msg}");
                self.tasks.finish(id, TaskState::Success, msg, now);
            }
            ErrorCode::TransferFail => {
                self.tasks
                    .retry_or_fail(id, "every target transfer failed".into(), now);
            }
            c => {
                let msg = format!("not committed: {}", c.name());
                warn!(task = %tag, key = %info.key, "task failed: {msg}");
                self.tasks.finish(id, TaskState::Failed, msg, now);
            }
        }
        Response::ok(ResponseBody::Unit)
    }

    /// `BatchReplicaClear`: one status per key (0 = cleared). An unknown segment name fails
    /// the whole request.
    pub(super) fn batch_replica_clear(
        &self,
        client_id: u64,
        keys: &[String],
        segment_name: &str,
        now: u64,
    ) -> Response {
        let segment = if segment_name.is_empty() {
            None
        } else {
            match self.segments.by_name(segment_name) {
                Some(s) => Some(s.slot),
                None => {
                    return refused(
                        ErrorCode::SegmentNotFound,
                        format!("segment {segment_name} is not mounted"),
                    );
                }
            }
        };
        self.per_key(keys, |k| {
            self.objects.replica_clear(k, client_id, segment, now)
        })
    }

    /// Task upkeep: timeouts, tasks of departed nodes; frees the space they held.
    pub(super) fn expire_tasks(&self, now: u64) {
        let alive: std::collections::HashSet<u64> = self.clients.lock().keys().copied().collect();
        for space in self.tasks.expire(now, |c| alive.contains(&c)) {
            self.objects.copy_abandon(&space);
        }
    }
}
