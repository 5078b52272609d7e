//! The task table of copy and move tasks (`docs/tasks.md`).
//!
//! A task is created *pending* for the node holding its source replica, becomes
//! *processing* when that node fetches it, and ends *success* or *failed*. A node's failure
//! (and a processing timeout) sends it back to pending until `--max_retry_attempts`
//! fetches were spent; a pending timeout, or its node leaving, fails it. Bounds
//! (`--max_total_*_tasks`): creating past the pending bound fails with
//! TASK_PENDING_LIMIT_EXCEEDED, a fetch hands out nothing past the processing bound, and the
//! oldest finished tasks are forgotten past the finished bound.
//!
//! Times are the master's monotonic clock inside; answers carry Unix milliseconds.

use std::collections::{HashMap, HashSet, VecDeque};

use mc_schema::ErrorCode;
use mc_schema::msg::{TaskInfo, TaskKind, TaskState};
use parking_lot::Mutex;

use crate::objects::CopySpace;

/// Bounds and timeouts of the task table (the `--max_total_*_tasks`, `--*_task_timeout_sec`
/// and `--max_retry_attempts` flags).
#[derive(Debug, Clone)]
pub struct TaskLimits {
    /// Finished tasks remembered for queries.
    pub max_finished: usize,
    /// Pending tasks at most.
    pub max_pending: usize,
    /// Processing tasks at most.
    pub max_processing: usize,
    /// A task pending this long fails (0 = never).
    pub pending_timeout_ms: u64,
    /// A task processing this long is taken back (0 = never).
    pub processing_timeout_ms: u64,
    /// Fetches a task may take before a failure is final.
    pub max_attempts: u32,
}

impl Default for TaskLimits {
    fn default() -> Self {
        TaskLimits {
            max_finished: 10_000,
            max_pending: 10_000,
            max_processing: 10_000,
            pending_timeout_ms: 300_000,
            processing_timeout_ms: 300_000,
            max_attempts: 10,
        }
    }
}

/// What a new task does.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// Copy or move.
    pub kind: TaskKind,
    /// The object.
    pub key: String,
    /// Segment read from.
    pub source: String,
    /// Segments written to.
    pub targets: Vec<String>,
    /// The node that runs it.
    pub client_id: u64,
}

struct Entry {
    /// Times in it are monotonic until reported.
    info: TaskInfo,
    /// Space allocated by the node's TaskStart, until its TaskEnd.
    space: Option<CopySpace>,
}

#[derive(Default)]
struct Inner {
    all: HashMap<u128, Entry>,
    /// Pending task ids per node, oldest first.
    pending: HashMap<u64, VecDeque<u128>>,
    pending_count: usize,
    processing: HashSet<u128>,
    /// Finished task ids, oldest first.
    finished: VecDeque<u128>,
}

/// Counts by state, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskCounts {
    /// Waiting for a fetch.
    pub pending: usize,
    /// Fetched, not ended.
    pub processing: usize,
    /// Remembered finished tasks.
    pub finished: usize,
}

/// All tasks of this master.
pub struct Tasks {
    limits: TaskLimits,
    /// Unix milliseconds minus monotonic milliseconds.
    epoch_offset_ms: i64,
    inner: Mutex<Inner>,
}

impl Tasks {
    /// An empty table; `now_ms` is the master clock's now.
    pub fn new(limits: TaskLimits, now_ms: u64) -> Tasks {
        let unix = mc_schema::token::unix_ms_now() as i64;
        Tasks {
            limits,
            epoch_offset_ms: unix - now_ms as i64,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn report(&self, info: &TaskInfo) -> TaskInfo {
        TaskInfo {
            created_ms: info.created_ms + self.epoch_offset_ms,
            updated_ms: info.updated_ms + self.epoch_offset_ms,
            ..info.clone()
        }
    }

    /// Adds a pending task; its id, or TASK_PENDING_LIMIT_EXCEEDED.
    pub fn submit(&self, t: NewTask, now_ms: u64) -> Result<TaskInfo, ErrorCode> {
        let mut inner = self.inner.lock();
        if inner.pending_count >= self.limits.max_pending {
            return Err(ErrorCode::TaskPendingLimitExceeded);
        }
        let mut id: u128 = rand::random();
        while id == 0 || inner.all.contains_key(&id) {
            id = rand::random();
        }
        let info = TaskInfo {
            id,
            kind: t.kind,
            state: TaskState::Pending,
            created_ms: now_ms as i64,
            updated_ms: now_ms as i64,
            assigned_client: t.client_id,
            message: String::new(),
            key: t.key,
            source: t.source,
            targets: t.targets,
            attempts: 0,
        };
        let out = self.report(&info);
        inner.all.insert(id, Entry { info, space: None });
        inner.pending.entry(t.client_id).or_default().push_back(id);
        inner.pending_count += 1;
        Ok(out)
    }

    /// A task by id.
    pub fn get(&self, id: u128) -> Option<TaskInfo> {
        self.inner.lock().all.get(&id).map(|e| self.report(&e.info))
    }

    /// The most recently created `max` tasks, newest first.
    pub fn list(&self, max: usize) -> Vec<TaskInfo> {
        let inner = self.inner.lock();
        let mut v: Vec<&TaskInfo> = inner.all.values().map(|e| &e.info).collect();
        v.sort_by_key(|i| std::cmp::Reverse(i.created_ms));
        v.into_iter().take(max).map(|i| self.report(i)).collect()
    }

    /// Counts by state.
    pub fn counts(&self) -> TaskCounts {
        let inner = self.inner.lock();
        TaskCounts {
            pending: inner.pending_count,
            processing: inner.processing.len(),
            finished: inner.finished.len(),
        }
    }

    /// Up to `max` of `client_id`'s pending tasks, now processing (within the processing
    /// bound), oldest first.
    pub fn fetch(&self, client_id: u64, max: usize, now_ms: u64) -> Vec<TaskInfo> {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let mut out = Vec::new();
        while out.len() < max && inner.processing.len() < self.limits.max_processing {
            let Some(id) = inner
                .pending
                .get_mut(&client_id)
                .and_then(VecDeque::pop_front)
            else {
                break;
            };
            let Some(e) = inner.all.get_mut(&id) else {
                continue;
            };
            inner.pending_count -= 1;
            e.info.state = TaskState::Processing;
            e.info.updated_ms = now_ms as i64;
            e.info.attempts += 1;
            inner.processing.insert(id);
            out.push(self.report(&e.info));
        }
        out
    }

    /// The processing task `id` of `client_id`, not started yet: TASK_NOT_FOUND,
    /// ILLEGAL_CLIENT (another node's), UNAVAILABLE_IN_CURRENT_STATUS (not processing, or
    /// started already).
    pub fn begin(&self, client_id: u64, id: u128) -> Result<TaskInfo, ErrorCode> {
        let inner = self.inner.lock();
        let e = inner.all.get(&id).ok_or(ErrorCode::TaskNotFound)?;
        if e.info.assigned_client != client_id {
            return Err(ErrorCode::IllegalClient);
        }
        if e.info.state != TaskState::Processing || e.space.is_some() {
            return Err(ErrorCode::UnavailableInCurrentStatus);
        }
        Ok(e.info.clone())
    }

    /// Records the space a started task holds; gives it back when the task is no longer
    /// processing (it timed out meanwhile).
    pub fn hold(&self, id: u128, space: CopySpace) -> Result<(), CopySpace> {
        let mut inner = self.inner.lock();
        match inner.all.get_mut(&id) {
            Some(e) if e.info.state == TaskState::Processing && e.space.is_none() => {
                e.space = Some(space);
                Ok(())
            }
            _ => Err(space),
        }
    }

    /// Takes the space of `client_id`'s started task `id` for its end (errors as
    /// [`begin`](Self::begin); a task not started is UNAVAILABLE_IN_CURRENT_STATUS).
    pub fn take(&self, client_id: u64, id: u128) -> Result<(TaskInfo, CopySpace), ErrorCode> {
        let mut inner = self.inner.lock();
        let e = inner.all.get_mut(&id).ok_or(ErrorCode::TaskNotFound)?;
        if e.info.assigned_client != client_id {
            return Err(ErrorCode::IllegalClient);
        }
        match e.space.take() {
            Some(s) if e.info.state == TaskState::Processing => Ok((e.info.clone(), s)),
            other => {
                e.space = other;
                Err(ErrorCode::UnavailableInCurrentStatus)
            }
        }
    }

    /// Ends a processing task (its space already taken).
    pub fn finish(&self, id: u128, state: TaskState, message: String, now_ms: u64) {
        let mut inner = self.inner.lock();
        Self::end(&mut inner, id, state, message, now_ms);
        self.prune(&mut inner);
    }

    /// A processing task's node failed it: back to pending while attempts remain, else
    /// failed for good. Returns the state it is in now.
    pub fn retry_or_fail(&self, id: u128, message: String, now_ms: u64) -> TaskState {
        let mut inner = self.inner.lock();
        let state = self.requeue(&mut inner, id, message, now_ms);
        self.prune(&mut inner);
        state
    }

    fn requeue(&self, inner: &mut Inner, id: u128, message: String, now_ms: u64) -> TaskState {
        let Some(e) = inner.all.get_mut(&id) else {
            return TaskState::Failed;
        };
        if e.info.attempts >= self.limits.max_attempts {
            let message = format!("{message} (after {} attempts)", e.info.attempts);
            Self::end(inner, id, TaskState::Failed, message, now_ms);
            return TaskState::Failed;
        }
        e.info.state = TaskState::Pending;
        e.info.message = message;
        e.info.updated_ms = now_ms as i64;
        let client = e.info.assigned_client;
        inner.processing.remove(&id);
        inner.pending.entry(client).or_default().push_back(id);
        inner.pending_count += 1;
        TaskState::Pending
    }

    fn end(inner: &mut Inner, id: u128, state: TaskState, message: String, now_ms: u64) {
        let Some(e) = inner.all.get_mut(&id) else {
            return;
        };
        if e.info.state.is_finished() {
            return;
        }
        if e.info.state == TaskState::Pending {
            inner.pending_count -= 1;
            let client = e.info.assigned_client;
            if let Some(q) = inner.pending.get_mut(&client) {
                q.retain(|t| *t != id);
            }
        }
        inner.processing.remove(&id);
        e.info.state = state;
        e.info.message = message;
        e.info.updated_ms = now_ms as i64;
        inner.finished.push_back(id);
    }

    fn prune(&self, inner: &mut Inner) {
        while inner.finished.len() > self.limits.max_finished {
            if let Some(id) = inner.finished.pop_front() {
                inner.all.remove(&id);
            }
        }
        inner.pending.retain(|_, q| !q.is_empty());
    }

    /// Upkeep: fails tasks pending too long and those of nodes `alive` does not know, takes
    /// back tasks processing too long. Returns the space those held, to be freed.
    pub fn expire(&self, now_ms: u64, alive: impl Fn(u64) -> bool) -> Vec<CopySpace> {
        let mut inner = self.inner.lock();
        let late = |since: i64, limit: u64| {
            limit > 0 && now_ms.saturating_sub(since.max(0) as u64) > limit
        };
        let mut fail = Vec::new();
        let mut requeue = Vec::new();
        for (id, e) in &inner.all {
            let i = &e.info;
            if i.state.is_finished() {
                continue;
            }
            if !alive(i.assigned_client) {
                fail.push((
                    *id,
                    "the node holding the source left the cluster".to_string(),
                ));
            } else if i.state == TaskState::Pending
                && late(i.created_ms, self.limits.pending_timeout_ms)
            {
                fail.push((*id, "pending timeout".to_string()));
            } else if i.state == TaskState::Processing
                && late(i.updated_ms, self.limits.processing_timeout_ms)
            {
                requeue.push(*id);
            }
        }
        let mut spaces = Vec::new();
        for (id, message) in fail {
            spaces.extend(inner.all.get_mut(&id).and_then(|e| e.space.take()));
            Self::end(&mut inner, id, TaskState::Failed, message, now_ms);
        }
        for id in requeue {
            spaces.extend(inner.all.get_mut(&id).and_then(|e| e.space.take()));
            self.requeue(&mut inner, id, "processing timeout".into(), now_ms);
        }
        self.prune(&mut inner);
        spaces
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(client_id: u64) -> NewTask {
        NewTask {
            kind: TaskKind::ReplicaCopy,
            key: "k".into(),
            source: "h:1".into(),
            targets: vec!["h:2".into()],
            client_id,
        }
    }

    fn limits() -> TaskLimits {
        TaskLimits {
            max_finished: 2,
            max_pending: 3,
            max_processing: 2,
            pending_timeout_ms: 1_000,
            processing_timeout_ms: 500,
            max_attempts: 2,
        }
    }

    #[test]
    fn a_task_goes_pending_processing_success() {
        let t = Tasks::new(limits(), 0);
        let id = t.submit(task(7), 0).unwrap().id;
        assert_eq!(t.get(id).unwrap().state, TaskState::Pending);
        assert!(
            t.fetch(8, 10, 1).is_empty(),
            "another node's task is not handed out"
        );
        let got = t.fetch(7, 10, 1);
        assert_eq!((got.len(), got[0].attempts), (1, 1));
        assert_eq!(t.begin(8, id), Err(ErrorCode::IllegalClient));
        assert!(t.begin(7, id).is_ok());
        t.finish(id, TaskState::Success, "done".into(), 2);
        let info = t.get(id).unwrap();
        assert_eq!(
            (info.state, info.message.as_str()),
            (TaskState::Success, "done")
        );
        assert!(
            info.created_ms > 1_000_000_000_000,
            "reported in Unix milliseconds"
        );
    }

    #[test]
    fn bounds_hold() {
        let t = Tasks::new(limits(), 0);
        for _ in 0..3 {
            t.submit(task(1), 0).unwrap();
        }
        assert_eq!(
            t.submit(task(1), 0).unwrap_err(),
            ErrorCode::TaskPendingLimitExceeded
        );
        assert_eq!(t.fetch(1, 10, 0).len(), 2, "processing bound");
        let done: Vec<u128> = t.list(10).iter().map(|i| i.id).collect();
        for id in &done {
            t.finish(*id, TaskState::Failed, "x".into(), 1);
        }
        assert_eq!(t.counts().finished, 2, "finished bound");
        assert_eq!(t.list(10).len(), 2);
    }

    #[test]
    fn failures_retry_until_attempts_run_out() {
        let t = Tasks::new(limits(), 0);
        let id = t.submit(task(1), 0).unwrap().id;
        t.fetch(1, 1, 0);
        assert_eq!(t.retry_or_fail(id, "peer".into(), 1), TaskState::Pending);
        t.fetch(1, 1, 2);
        assert_eq!(t.retry_or_fail(id, "peer".into(), 3), TaskState::Failed);
        assert!(t.get(id).unwrap().message.contains("after 2 attempts"));
    }

    #[test]
    fn timeouts_and_departed_nodes_end_tasks() {
        let t = Tasks::new(limits(), 0);
        let stale = t.submit(task(1), 0).unwrap().id;
        let busy = t.submit(task(2), 0).unwrap().id;
        let orphan = t.submit(task(3), 0).unwrap().id;
        t.fetch(2, 1, 0);
        let space = CopySpace {
            size: 1,
            put_generation: 1,
            locs: Vec::new(),
        };
        assert!(t.hold(busy, space).is_ok());
        let freed = t.expire(600, |c| c != 3);
        assert_eq!(freed.len(), 1, "the timed-out task's space comes back");
        assert_eq!(t.get(busy).unwrap().state, TaskState::Pending);
        assert_eq!(t.get(orphan).unwrap().state, TaskState::Failed);
        t.expire(1_001, |_| true);
        assert_eq!(t.get(stale).unwrap().state, TaskState::Failed);
        assert_eq!(t.get(stale).unwrap().message, "pending timeout");
    }
}
