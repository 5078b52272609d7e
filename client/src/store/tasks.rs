//! Copy and move tasks (`docs/tasks.md`): creating and querying them, and running those
//! assigned to a node (what a store node's agent does with its tasks).
//!
//! Running one: `TaskStart` allocates a whole replica on each target; the runner reads the
//! value (a get: CRC-checked), writes every slice of every target pipelined per shard, and
//! reports the outcome with `TaskEnd`, which commits the targets written (and drops a
//! move's source) or gives the space back.

use mc_schema::msg::{Request, ResponseBody, TaskCopy, TaskInfo, TaskOutcome};
use mc_transfer::ObjectInfo;

use super::pipeline::WriteJob;
use super::{Store, check_key, invalid, unexpected};
use crate::{Error, Result};

/// Tasks one fetch asks for at most.
const FETCH_BATCH: u32 = 16;

fn one(r: ResponseBody, what: &str) -> Result<TaskInfo> {
    match r {
        ResponseBody::Tasks(mut v) if v.len() == 1 => Ok(v.remove(0)),
        _ => Err(unexpected(what)),
    }
}

impl Store {
    /// Creates a task copying `key` to a whole new replica on each segment of `targets`
    /// (segment names, `host:port`), run by the node holding a replica.
    pub fn create_copy_task(&self, key: &str, targets: &[String]) -> Result<TaskInfo> {
        check_key(key)?;
        if targets.is_empty() {
            return Err(invalid("a copy task needs at least one target segment"));
        }
        let req = Request::CreateCopyTask {
            key: key.to_string(),
            targets: targets.to_vec(),
        };
        one(self.call(&req)?.body, "CreateCopyTask")
    }

    /// Creates a task moving `key`'s replica on segment `source` to segment `target`.
    pub fn create_move_task(&self, key: &str, source: &str, target: &str) -> Result<TaskInfo> {
        check_key(key)?;
        let req = Request::CreateMoveTask {
            key: key.to_string(),
            source: source.to_string(),
            target: target.to_string(),
        };
        one(self.call(&req)?.body, "CreateMoveTask")
    }

    /// A task by id (TASK_NOT_FOUND once forgotten).
    pub fn query_task(&self, id: u128) -> Result<TaskInfo> {
        one(self.call(&Request::QueryTask { id })?.body, "QueryTask")
    }

    /// The most recently created `max` tasks, newest first.
    pub fn list_tasks(&self, max: u32) -> Result<Vec<TaskInfo>> {
        match self.call(&Request::ListTasks { max })?.body {
            ResponseBody::Tasks(v) => Ok(v),
            _ => Err(unexpected("ListTasks")),
        }
    }

    /// Drops this client's objects' replicas on segment `segment` (`""` = every replica;
    /// an object left with none is removed), for objects no read lease holds. One result
    /// per key: ILLEGAL_CLIENT for another client's object, OBJECT_HAS_LEASE while read,
    /// REPLICA_NOT_FOUND when none is on `segment`.
    pub fn batch_replica_clear(&self, keys: &[&str], segment: &str) -> Vec<Result<()>> {
        if let Err(e) = super::check_batch(keys.len()) {
            return keys.iter().map(|_| Err(e.clone())).collect();
        }
        // As a remove: leases of reads served from the location cache count, and no cached
        // location outlives the clear.
        self.report_own_hits(keys);
        for k in keys {
            self.cache.remove(k);
        }
        let req = Request::BatchReplicaClear {
            client_id: self.client_id,
            keys: keys.iter().map(|k| k.to_string()).collect(),
            segment_name: segment.to_string(),
        };
        match self.call(&req).map(|r| r.body) {
            Ok(ResponseBody::Statuses(v)) if v.len() == keys.len() => keys
                .iter()
                .zip(v)
                .map(|(k, c)| match c {
                    0 => Ok(()),
                    c => Err(Error::from_status(c, &format!("batch_replica_clear {k}"))),
                })
                .collect(),
            Ok(_) => keys
                .iter()
                .map(|_| Err(unexpected("BatchReplicaClear")))
                .collect(),
            Err(e) => keys.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    /// Fetches and runs the tasks the master assigned to node `client_id`; returns how
    /// many ran (each ends at the master, success or not).
    pub fn run_tasks(&self, client_id: u64) -> Result<usize> {
        let req = Request::FetchTasks {
            client_id,
            max: FETCH_BATCH,
        };
        let tasks = match self.call(&req)?.body {
            ResponseBody::Tasks(v) => v,
            _ => return Err(unexpected("FetchTasks")),
        };
        for t in &tasks {
            self.run_task(client_id, t);
        }
        Ok(tasks.len())
    }

    fn run_task(&self, client_id: u64, t: &TaskInfo) {
        let id = t.id;
        let copy = match self.call(&Request::TaskStart { client_id, id }) {
            Ok(r) => match r.body {
                ResponseBody::TaskCopy(c) => c,
                _ => return,
            },
            Err(e) => {
                // The master ended the task (it says why in the task) or is away (the
                // processing timeout takes the task back).
                tracing::warn!(task = %format!("{id:032x}"), key = %t.key, "task not started: {e}");
                return;
            }
        };
        if copy.targets.is_empty() {
            return; // Nothing to write: the master ended it already.
        }
        let outcome = match self.copy_value(&copy) {
            Ok(failed_targets) => TaskOutcome {
                ok: true,
                slice_crcs: copy.slice_crcs.clone(),
                failed_targets,
                ..TaskOutcome::default()
            },
            Err(e) => TaskOutcome {
                ok: false,
                error_code: e.code().code(),
                message: e.message().to_string(),
                ..TaskOutcome::default()
            },
        };
        let end = Request::TaskEnd {
            client_id,
            id,
            outcome,
        };
        if let Err(e) = self.call(&end) {
            tracing::warn!(task = %format!("{id:032x}"), key = %t.key, "task end lost: {e}");
        }
    }

    /// Reads the value and writes it to every target; the indexes of targets that failed.
    /// Fails when the value cannot be read, or does not match the master's size or CRCs.
    fn copy_value(&self, c: &TaskCopy) -> Result<Vec<u32>> {
        let value = self.get(&c.key)?;
        let crcs = super::write::slice_crcs(&value);
        if value.len() as u64 != c.size || crcs != c.slice_crcs {
            return Err(Error::new(
                crate::ErrorCode::InvalidRead,
                format!("{}: the value read is not the one the task copies", c.key),
            ));
        }
        let mut jobs = Vec::new();
        let mut owner = Vec::new();
        for (ti, r) in c.targets.iter().enumerate() {
            let object = ObjectInfo {
                object_size: c.size,
                put_generation: c.put_generation,
                slice_index: 0,
                slice_count: 0,
                replica_index: (c.replica_base as usize + ti) as u16,
                pins: c.pins,
            };
            let Some(replica) = WriteJob::for_replica(&c.key, &value, r, &crcs, object) else {
                return Err(invalid("the master's target does not fit the value"));
            };
            owner.extend(replica.iter().map(|_| ti as u32));
            jobs.extend(replica);
        }
        let mut failed: Vec<u32> = Vec::new();
        let mut first_error = None;
        for (ti, out) in owner.iter().zip(self.write_pipelined(&jobs)) {
            if let Err(e) = out {
                if !failed.contains(ti) {
                    failed.push(*ti);
                }
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) if failed.len() == c.targets.len() => Err(e),
            _ => Ok(failed),
        }
    }
}
