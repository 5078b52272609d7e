//! Replica management: copy and move tasks (`docs/tasks.md`), their types and the codec
//! of their requests (`CreateCopyTask`, `CreateMoveTask`, `QueryTask`, `FetchTasks`,
//! `TaskStart`, `TaskEnd`, `ListTasks`) and answers (`Tasks`, `TaskCopy`), and
//! `BatchReplicaClear`.

use flatbuffers::{UnionWIPOffset, WIPOffset};

use super::{
    Fbb, ReplicaDesc, Request, ResponseBody, dec_replicas, dec_strs, enc_replicas, enc_strs,
    missing, unknown_request,
};
use crate::SchemaError;
use crate::generated::mc::proto as fb;

/// What a task does (Mooncake's `TaskType`, same values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// Copy the object to whole new replicas on the target segments.
    ReplicaCopy = 0,
    /// Copy it to the target segment, then drop its replica on the source segment.
    ReplicaMove = 1,
}

/// Where a task stands (Mooncake's `TaskStatus`, same values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Waiting for its node to fetch it.
    Pending = 0,
    /// Fetched; the node is copying.
    Processing = 1,
    /// Ended without effect (`message` says why).
    Failed = 2,
    /// The new replicas are committed (and a move's source replica dropped).
    Success = 3,
}

impl TaskState {
    /// Failed or succeeded.
    pub fn is_finished(self) -> bool {
        matches!(self, TaskState::Failed | TaskState::Success)
    }

    /// Mooncake's spelling (`PENDING`, ...).
    pub fn name(self) -> &'static str {
        match self {
            TaskState::Pending => "PENDING",
            TaskState::Processing => "PROCESSING",
            TaskState::Failed => "FAILED",
            TaskState::Success => "SUCCESS",
        }
    }

    fn from_u8(v: u8) -> TaskState {
        match v {
            0 => TaskState::Pending,
            1 => TaskState::Processing,
            3 => TaskState::Success,
            _ => TaskState::Failed,
        }
    }
}

impl TaskKind {
    /// Mooncake's spelling (`REPLICA_COPY`, `REPLICA_MOVE`).
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::ReplicaCopy => "REPLICA_COPY",
            TaskKind::ReplicaMove => "REPLICA_MOVE",
        }
    }
}

/// One task, as the master reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    /// 128-bit id (Mooncake's UUID: high, low).
    pub id: u128,
    /// Copy or move.
    pub kind: TaskKind,
    /// Where it stands.
    pub state: TaskState,
    /// Creation, Unix milliseconds.
    pub created_ms: i64,
    /// Last state change, Unix milliseconds.
    pub updated_ms: i64,
    /// Node (client id) that runs it: the one holding the source replica.
    pub assigned_client: u64,
    /// Why it failed, or what it did.
    pub message: String,
    /// The object.
    pub key: String,
    /// Segment copied from.
    pub source: String,
    /// Segments copied to.
    pub targets: Vec<String>,
    /// Times it was handed to a node.
    pub attempts: u32,
}

/// What a node copies for a started task (answer to `TaskStart`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskCopy {
    /// The object.
    pub key: String,
    /// Value length in bytes.
    pub size: u64,
    /// Generation naming the object's put (recorded with each new slice).
    pub put_generation: u64,
    /// Pin bits the new slices carry (1 hard, 2 soft).
    pub pins: u8,
    /// Replica index of the first new replica.
    pub replica_base: u32,
    /// CRC32C of each slice of the value.
    pub slice_crcs: Vec<u32>,
    /// One new replica per target segment, with write tokens.
    pub targets: Vec<ReplicaDesc>,
    /// Segment whose replica the node reads (its own).
    pub source_segment: String,
}

/// A node's outcome of a started task.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskOutcome {
    /// Every target written (but `failed_targets`); false: nothing to commit.
    pub ok: bool,
    /// Mooncake error code of a failure (0 on success).
    pub error_code: i32,
    /// What went wrong.
    pub message: String,
    /// CRC32C of each slice written.
    pub slice_crcs: Vec<u32>,
    /// Indexes into `TaskCopy::targets` whose transfer failed.
    pub failed_targets: Vec<u32>,
}

fn hi(id: u128) -> u64 {
    (id >> 64) as u64
}

fn lo(id: u128) -> u64 {
    id as u64
}

fn join(hi: u64, lo: u64) -> u128 {
    (u128::from(hi) << 64) | u128::from(lo)
}

fn enc_ref(fbb: &mut Fbb<'_>, client_id: u64, id: u128) -> WIPOffset<UnionWIPOffset> {
    let args = fb::TaskRefArgs {
        client_id,
        id_hi: hi(id),
        id_lo: lo(id),
    };
    fb::TaskRef::create(fbb, &args).as_union_value()
}

fn enc_end(
    fbb: &mut Fbb<'_>,
    client_id: u64,
    id: u128,
    o: &TaskOutcome,
) -> WIPOffset<UnionWIPOffset> {
    let message = fbb.create_string(&o.message);
    let slice_crcs = fbb.create_vector(&o.slice_crcs);
    let failed_targets = fbb.create_vector(&o.failed_targets);
    let args = fb::TaskEndArgs {
        client_id,
        id_hi: hi(id),
        id_lo: lo(id),
        ok: o.ok,
        error_code: o.error_code,
        message: Some(message),
        slice_crcs: Some(slice_crcs),
        failed_targets: Some(failed_targets),
    };
    fb::TaskEnd::create(fbb, &args).as_union_value()
}

/// The body table of a task request; `None` for any other request.
pub(super) fn enc_request(
    fbb: &mut Fbb<'_>,
    req: &Request,
) -> Option<(fb::RequestBody, WIPOffset<UnionWIPOffset>)> {
    use fb::RequestBody as B;
    Some(match req {
        Request::CreateCopyTask { key, targets } => {
            let key = fbb.create_string(key);
            let targets = enc_strs(fbb, targets);
            let args = fb::CreateCopyTaskArgs {
                key: Some(key),
                targets: Some(targets),
            };
            (
                B::CreateCopyTask,
                fb::CreateCopyTask::create(fbb, &args).as_union_value(),
            )
        }
        Request::CreateMoveTask {
            key,
            source,
            target,
        } => {
            let [key, source, target] = [key, source, target].map(|s| fbb.create_string(s));
            let args = fb::CreateMoveTaskArgs {
                key: Some(key),
                source: Some(source),
                target: Some(target),
            };
            (
                B::CreateMoveTask,
                fb::CreateMoveTask::create(fbb, &args).as_union_value(),
            )
        }
        Request::QueryTask { id } => (B::QueryTask, enc_ref(fbb, 0, *id)),
        Request::FetchTasks { client_id, max } => {
            let args = fb::FetchTasksArgs {
                client_id: *client_id,
                max: *max,
            };
            (
                B::FetchTasks,
                fb::FetchTasks::create(fbb, &args).as_union_value(),
            )
        }
        Request::TaskStart { client_id, id } => (B::TaskStart, enc_ref(fbb, *client_id, *id)),
        Request::TaskEnd {
            client_id,
            id,
            outcome,
        } => (B::TaskEnd, enc_end(fbb, *client_id, *id, outcome)),
        Request::ListTasks { max } => (
            B::ListTasks,
            fb::ListTasks::create(fbb, &fb::ListTasksArgs { max: *max }).as_union_value(),
        ),
        Request::BatchReplicaClear {
            client_id,
            keys,
            segment_name,
        } => {
            let keys = enc_strs(fbb, keys);
            let segment_name = fbb.create_string(segment_name);
            let args = fb::BatchReplicaClearArgs {
                client_id: *client_id,
                keys: Some(keys),
                segment_name: Some(segment_name),
            };
            (
                B::BatchReplicaClear,
                fb::BatchReplicaClear::create(fbb, &args).as_union_value(),
            )
        }
        _ => return None,
    })
}

/// Decodes a task request (the tag is one of [`enc_request`]'s).
pub(super) fn dec_request(r: &fb::Request<'_>) -> Result<Request, SchemaError> {
    use fb::RequestBody as B;
    let task_ref = |t: Option<fb::TaskRef<'_>>, what| {
        t.map(|t| (t.client_id(), join(t.id_hi(), t.id_lo())))
            .ok_or_else(|| missing(what))
    };
    Ok(match r.body_type() {
        B::CreateCopyTask => {
            let m = r
                .body_as_create_copy_task()
                .ok_or_else(|| missing("create_copy_task"))?;
            Request::CreateCopyTask {
                key: m.key().unwrap_or_default().to_string(),
                targets: dec_strs(m.targets()),
            }
        }
        B::CreateMoveTask => {
            let m = r
                .body_as_create_move_task()
                .ok_or_else(|| missing("create_move_task"))?;
            Request::CreateMoveTask {
                key: m.key().unwrap_or_default().to_string(),
                source: m.source().unwrap_or_default().to_string(),
                target: m.target().unwrap_or_default().to_string(),
            }
        }
        B::QueryTask => Request::QueryTask {
            id: task_ref(r.body_as_query_task(), "query_task")?.1,
        },
        B::FetchTasks => {
            let m = r
                .body_as_fetch_tasks()
                .ok_or_else(|| missing("fetch_tasks"))?;
            Request::FetchTasks {
                client_id: m.client_id(),
                max: m.max(),
            }
        }
        B::TaskStart => {
            let (client_id, id) = task_ref(r.body_as_task_start(), "task_start")?;
            Request::TaskStart { client_id, id }
        }
        B::TaskEnd => dec_end(r.body_as_task_end().ok_or_else(|| missing("task_end"))?),
        B::ListTasks => Request::ListTasks {
            max: r
                .body_as_list_tasks()
                .ok_or_else(|| missing("list_tasks"))?
                .max(),
        },
        B::BatchReplicaClear => {
            let m = r
                .body_as_batch_replica_clear()
                .ok_or_else(|| missing("batch_replica_clear"))?;
            Request::BatchReplicaClear {
                client_id: m.client_id(),
                keys: dec_strs(m.keys()),
                segment_name: m.segment_name().unwrap_or_default().to_string(),
            }
        }
        other => return Err(unknown_request(other)),
    })
}

fn dec_end(m: fb::TaskEnd<'_>) -> Request {
    Request::TaskEnd {
        client_id: m.client_id(),
        id: join(m.id_hi(), m.id_lo()),
        outcome: TaskOutcome {
            ok: m.ok(),
            error_code: m.error_code(),
            message: m.message().unwrap_or_default().to_string(),
            slice_crcs: m
                .slice_crcs()
                .map(|v| v.iter().collect())
                .unwrap_or_default(),
            failed_targets: m
                .failed_targets()
                .map(|v| v.iter().collect())
                .unwrap_or_default(),
        },
    }
}

fn enc_task<'b>(fbb: &mut Fbb<'b>, t: &TaskInfo) -> WIPOffset<fb::TaskFb<'b>> {
    let [message, key, source] = [&t.message, &t.key, &t.source].map(|s| fbb.create_string(s));
    let targets = enc_strs(fbb, &t.targets);
    let args = fb::TaskFbArgs {
        id_hi: hi(t.id),
        id_lo: lo(t.id),
        kind: t.kind as u8,
        state: t.state as u8,
        created_ms: t.created_ms,
        updated_ms: t.updated_ms,
        assigned_client: t.assigned_client,
        message: Some(message),
        key: Some(key),
        source: Some(source),
        targets: Some(targets),
        attempts: t.attempts,
    };
    fb::TaskFb::create(fbb, &args)
}

/// The body table of a task answer; `None` for any other body.
pub(super) fn enc_response(
    fbb: &mut Fbb<'_>,
    body: &ResponseBody,
) -> Option<(fb::ResponseBody, WIPOffset<UnionWIPOffset>)> {
    Some(match body {
        ResponseBody::Tasks(tasks) => {
            let v: Vec<_> = tasks.iter().map(|t| enc_task(fbb, t)).collect();
            let tasks = fbb.create_vector(&v);
            let t = fb::Tasks::create(fbb, &fb::TasksArgs { tasks: Some(tasks) });
            (fb::ResponseBody::Tasks, t.as_union_value())
        }
        ResponseBody::TaskCopy(c) => {
            let [key, source_segment] = [&c.key, &c.source_segment].map(|s| fbb.create_string(s));
            let slice_crcs = fbb.create_vector(&c.slice_crcs);
            let targets = enc_replicas(fbb, &c.targets);
            let args = fb::TaskCopyFbArgs {
                key: Some(key),
                size_bytes: c.size,
                put_generation: c.put_generation,
                pins: c.pins,
                replica_base: c.replica_base,
                slice_crcs: Some(slice_crcs),
                targets: Some(targets),
                source_segment: Some(source_segment),
            };
            let t = fb::TaskCopyFb::create(fbb, &args);
            (fb::ResponseBody::TaskCopy, t.as_union_value())
        }
        _ => return None,
    })
}

fn dec_task(t: fb::TaskFb<'_>) -> TaskInfo {
    TaskInfo {
        id: join(t.id_hi(), t.id_lo()),
        kind: if t.kind() == 1 {
            TaskKind::ReplicaMove
        } else {
            TaskKind::ReplicaCopy
        },
        state: TaskState::from_u8(t.state()),
        created_ms: t.created_ms(),
        updated_ms: t.updated_ms(),
        assigned_client: t.assigned_client(),
        message: t.message().unwrap_or_default().to_string(),
        key: t.key().unwrap_or_default().to_string(),
        source: t.source().unwrap_or_default().to_string(),
        targets: dec_strs(t.targets()),
        attempts: t.attempts(),
    }
}

/// Decodes a task answer (`None`: not one).
pub(super) fn dec_response(r: &fb::Response<'_>) -> Option<ResponseBody> {
    match r.body_type() {
        fb::ResponseBody::Tasks => {
            let t = r.body_as_tasks()?;
            Some(ResponseBody::Tasks(
                t.tasks()
                    .map(|v| v.iter().map(dec_task).collect())
                    .unwrap_or_default(),
            ))
        }
        fb::ResponseBody::TaskCopy => {
            let c = r.body_as_task_copy()?;
            Some(ResponseBody::TaskCopy(Box::new(TaskCopy {
                key: c.key().unwrap_or_default().to_string(),
                size: c.size_bytes(),
                put_generation: c.put_generation(),
                pins: c.pins(),
                replica_base: c.replica_base(),
                slice_crcs: c
                    .slice_crcs()
                    .map(|v| v.iter().collect())
                    .unwrap_or_default(),
                targets: dec_replicas(c.targets()),
                source_segment: c.source_segment().unwrap_or_default().to_string(),
            })))
        }
        _ => None,
    }
}
