//! Copy and move tasks, as Mooncake's `create_copy_task`, `create_move_task` and
//! `query_task` (`docs/tasks.md`), and `batch_replica_clear`, with its `TaskType`, `TaskStatus` and
//! `QueryTaskResponse`. Task ids and node ids are Mooncake's UUIDs: `(high, low)` tuples
//! (a node id, 64 bits here, is `(0, id)`).

use mooncake_rs::{TaskInfo, TaskKind, TaskState};
use pyo3::prelude::*;

use crate::store::MooncakeDistributedStore;

/// Mooncake's UUID: `(high, low)`.
type Uuid = (u64, u64);

fn uuid(id: u128) -> Uuid {
    ((id >> 64) as u64, id as u64)
}

/// What a task does.
#[pyclass(eq, eq_int, module = "mooncake_rs.store", from_py_object)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskType {
    /// Copy an object to new replicas on target segments.
    #[pyo3(name = "REPLICA_COPY")]
    ReplicaCopy = 0,
    /// Move an object's replica from one segment to another.
    #[pyo3(name = "REPLICA_MOVE")]
    ReplicaMove = 1,
}

/// Where a task stands.
#[pyclass(eq, eq_int, module = "mooncake_rs.store", from_py_object)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskStatus {
    /// Waiting for its node.
    #[pyo3(name = "PENDING")]
    Pending = 0,
    /// Its node is copying.
    #[pyo3(name = "PROCESSING")]
    Processing = 1,
    /// Ended without effect (see `message`).
    #[pyo3(name = "FAILED")]
    Failed = 2,
    /// Done.
    #[pyo3(name = "SUCCESS")]
    Success = 3,
}

crate::enum_name_value!(TaskType, ReplicaCopy => "REPLICA_COPY", ReplicaMove => "REPLICA_MOVE");
crate::enum_name_value!(TaskStatus, Pending => "PENDING", Processing => "PROCESSING",
    Failed => "FAILED", Success => "SUCCESS");

/// `query_task`'s answer.
#[pyclass(module = "mooncake_rs.store", frozen, get_all)]
#[derive(Clone, Debug)]
pub struct QueryTaskResponse {
    /// The task's id.
    pub id: Uuid,
    /// Copy or move.
    #[pyo3(name = "type")]
    pub task_type: TaskType,
    /// Where it stands.
    pub status: TaskStatus,
    /// Creation, Unix milliseconds.
    pub created_at_ms_epoch: i64,
    /// Last change, Unix milliseconds.
    pub last_updated_at_ms_epoch: i64,
    /// The node running it.
    pub assigned_client: Uuid,
    /// What happened.
    pub message: String,
}

impl From<TaskInfo> for QueryTaskResponse {
    fn from(t: TaskInfo) -> Self {
        QueryTaskResponse {
            id: uuid(t.id),
            task_type: match t.kind {
                TaskKind::ReplicaCopy => TaskType::ReplicaCopy,
                TaskKind::ReplicaMove => TaskType::ReplicaMove,
            },
            status: match t.state {
                TaskState::Pending => TaskStatus::Pending,
                TaskState::Processing => TaskStatus::Processing,
                TaskState::Failed => TaskStatus::Failed,
                TaskState::Success => TaskStatus::Success,
            },
            created_at_ms_epoch: t.created_ms,
            last_updated_at_ms_epoch: t.updated_ms,
            assigned_client: (0, t.assigned_client),
            message: t.message,
        }
    }
}

#[pymethods]
impl QueryTaskResponse {
    fn __repr__(&self) -> String {
        format!(
            "QueryTaskResponse(id={:?}, type={}, status={}, created_at={}, last_updated_at={}, assigned_client={:?}, message=\"{}\")",
            self.id,
            self.task_type as i32,
            self.status as i32,
            self.created_at_ms_epoch,
            self.last_updated_at_ms_epoch,
            self.assigned_client,
            self.message
        )
    }
}

#[pymethods]
impl MooncakeDistributedStore {
    /// Copies `key` to a new replica on each segment of `targets` (`host:port` names).
    /// `(task id, 0)`, or `((0, 0), negative code)`.
    #[pyo3(signature = (key, targets))]
    fn create_copy_task(&self, py: Python<'_>, key: &str, targets: Vec<String>) -> (Uuid, i32) {
        self.create_task(py, "create_copy_task", key, |s| {
            s.create_copy_task(key, &targets)
        })
    }

    /// Moves `key`'s replica on segment `source` to segment `target`.
    /// `(task id, 0)`, or `((0, 0), negative code)`.
    #[pyo3(signature = (key, source, target))]
    fn create_move_task(
        &self,
        py: Python<'_>,
        key: &str,
        source: &str,
        target: &str,
    ) -> (Uuid, i32) {
        self.create_task(py, "create_move_task", key, |s| {
            s.create_move_task(key, source, target)
        })
    }

    /// Drops the replicas of this client's objects `keys` on `segment_name` (every
    /// replica when empty) where no read lease runs; the keys cleared.
    #[pyo3(signature = (keys, segment_name=""))]
    fn batch_replica_clear(
        &self,
        py: Python<'_>,
        keys: Vec<String>,
        segment_name: &str,
    ) -> Vec<String> {
        let Ok(c) = self.client() else {
            return Vec::new();
        };
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let out = py.detach(|| c.store.batch_replica_clear(&refs, segment_name));
        keys.iter()
            .zip(out)
            .filter_map(|(k, r)| match r {
                Ok(()) => Some(k.clone()),
                Err(e) => {
                    tracing::info!("batch_replica_clear {k}: not cleared: {e}");
                    None
                }
            })
            .collect()
    }

    /// `(QueryTaskResponse, 0)`, or `(None, negative code)` (TASK_NOT_FOUND, -1400, for
    /// an unknown or forgotten id).
    #[pyo3(signature = (task_id))]
    fn query_task(&self, py: Python<'_>, task_id: Uuid) -> (Option<QueryTaskResponse>, i32) {
        let c = match self.client() {
            Ok(c) => c,
            Err(code) => return (None, code),
        };
        let id = (u128::from(task_id.0) << 64) | u128::from(task_id.1);
        match py.detach(|| c.store.query_task(id)) {
            Ok(t) => (Some(t.into()), 0),
            Err(e) => (
                None,
                self.fail(e.code().code(), format!("query_task {task_id:?}: {e}")),
            ),
        }
    }
}

impl MooncakeDistributedStore {
    fn create_task(
        &self,
        py: Python<'_>,
        op: &str,
        key: &str,
        f: impl FnOnce(&mooncake_rs::Store) -> mooncake_rs::Result<TaskInfo> + Send,
    ) -> (Uuid, i32) {
        let c = match self.client() {
            Ok(c) => c,
            Err(code) => return ((0, 0), code),
        };
        match py.detach(|| f(&c.store)) {
            Ok(t) => (uuid(t.id), 0),
            Err(e) => (
                (0, 0),
                self.fail(e.code().code(), format!("{op} {key}: {e}")),
            ),
        }
    }
}
