//! Copy and move tasks at the master, driven in-process: creation checks, the node's
//! fetch / start / end, the new replica committed (and a move's source dropped), space given
//! back on failure, retries and timeouts.

use std::sync::Arc;

use mc_master::clock::ManualClock;
use mc_master::service::{MasterService, ServiceConfig};
use mc_master::tasks::TaskLimits;
use mc_schema::ErrorCode;
use mc_schema::msg::{
    PutEndItem, ReplicateConfig, Request, Response, ResponseBody, TaskCopy, TaskInfo, TaskKind,
    TaskOutcome, TaskState,
};

const SEG: u64 = 8 << 20;
/// (client id, segment id, name) of three nodes of one segment each.
const NODES: [(u64, u64, &str); 3] = [(1, 10, "a:1"), (2, 20, "b:1"), (3, 30, "c:1")];

fn master(clock: Arc<ManualClock>) -> Arc<MasterService> {
    let svc = MasterService::new(
        ServiceConfig {
            task_limits: TaskLimits {
                processing_timeout_ms: 1_000,
                max_attempts: 2,
                ..TaskLimits::default()
            },
            ..ServiceConfig::default()
        },
        clock,
    );
    for (client_id, segment_id, name) in NODES {
        let r = call(
            &svc,
            Request::MountSegment {
                client_id,
                segment_id,
                name: name.into(),
                host: name.split(':').next().unwrap().into(),
                endpoint: name.into(),
                size: SEG,
                term_seen: 0,
                reports_inventory: false,
                disk: false,
            },
        );
        assert_eq!(r.status, 0, "{r:?}");
    }
    svc
}

fn call(svc: &MasterService, req: Request) -> Response {
    svc.handle_now(0, req)
}

/// Puts `key` (`len` bytes, one replica preferring `on`); returns its slice CRCs.
fn put(svc: &MasterService, key: &str, len: u64, on: &str) -> Vec<u32> {
    let config = ReplicateConfig {
        preferred_segments: vec![on.into()],
        ..ReplicateConfig::default()
    };
    let r = call(
        svc,
        Request::PutStart {
            client_id: 9,
            client_host: String::new(),
            items: vec![(key.into(), len)],
            config,
        },
    );
    let ResponseBody::PutStart(v) = r.body else {
        panic!("{r:?}")
    };
    let crcs: Vec<u32> = (0..v[0].replicas[0].slices.len() as u32).collect();
    let item = PutEndItem {
        key: key.into(),
        slice_crcs: crcs.clone(),
        failed_replicas: vec![],
        generation: v[0].replicas[0].slices[0].generation,
    };
    let r = call(svc, Request::PutEnd { items: vec![item] });
    assert_eq!(r.body, ResponseBody::Statuses(vec![0]));
    crcs
}

/// Segment ids of each replica of `key`.
fn replica_segments(svc: &MasterService, key: &str) -> Vec<u64> {
    let r = call(
        svc,
        Request::GetReplicaList {
            keys: vec![key.into()],
        },
    );
    let ResponseBody::ReplicaLists(v) = r.body else {
        panic!("{r:?}")
    };
    v[0].replicas
        .iter()
        .map(|r| r.slices[0].segment_id)
        .collect()
}

fn one_task(r: Response) -> TaskInfo {
    assert_eq!(r.status, 0, "{r:?}");
    let ResponseBody::Tasks(mut v) = r.body else {
        panic!("{r:?}")
    };
    assert_eq!(v.len(), 1);
    v.remove(0)
}

fn query(svc: &MasterService, id: u128) -> TaskInfo {
    one_task(call(svc, Request::QueryTask { id }))
}

fn start(svc: &MasterService, client_id: u64, id: u128) -> TaskCopy {
    let fetched = call(svc, Request::FetchTasks { client_id, max: 8 });
    assert!(
        matches!(&fetched.body, ResponseBody::Tasks(v) if v.iter().any(|t| t.id == id)),
        "{fetched:?}"
    );
    let r = call(svc, Request::TaskStart { client_id, id });
    let ResponseBody::TaskCopy(c) = r.body else {
        panic!("{r:?}")
    };
    *c
}

fn end(svc: &MasterService, client_id: u64, id: u128, outcome: TaskOutcome) {
    let r = call(
        svc,
        Request::TaskEnd {
            client_id,
            id,
            outcome,
        },
    );
    assert_eq!(r.status, 0, "{r:?}");
}

fn ok(crcs: Vec<u32>) -> TaskOutcome {
    TaskOutcome {
        ok: true,
        slice_crcs: crcs,
        ..TaskOutcome::default()
    }
}

#[test]
fn a_copy_task_adds_a_replica_on_each_target() {
    let svc = master(Arc::default());
    let crcs = put(&svc, "k", 4096, "a:1");
    assert_eq!(replica_segments(&svc, "k"), vec![10]);
    let targets = vec!["b:1".to_string(), "c:1".to_string()];
    let t = one_task(call(
        &svc,
        Request::CreateCopyTask {
            key: "k".into(),
            targets,
        },
    ));
    assert_eq!(
        (t.kind, t.state, t.assigned_client),
        (TaskKind::ReplicaCopy, TaskState::Pending, 1)
    );
    assert!(t.created_ms > 1_000_000_000_000, "Unix milliseconds");
    let c = start(&svc, 1, t.id);
    assert_eq!(query(&svc, t.id).state, TaskState::Processing);
    assert_eq!((c.size, c.replica_base, c.targets.len()), (4096, 1, 2));
    assert!(
        c.targets
            .iter()
            .all(|r| r.slices.iter().all(|s| s.token.is_some()))
    );
    assert_eq!(
        replica_segments(&svc, "k"),
        vec![10],
        "nothing visible before the end"
    );
    end(&svc, 1, t.id, ok(crcs));
    let done = query(&svc, t.id);
    assert_eq!(done.state, TaskState::Success, "{done:?}");
    let mut segs = replica_segments(&svc, "k");
    segs.sort();
    assert_eq!(segs, vec![10, 20, 30]);
}

#[test]
fn a_move_task_leaves_the_source_empty() {
    let svc = master(Arc::default());
    let crcs = put(&svc, "m", 3 << 20, "a:1");
    let t = one_task(call(
        &svc,
        Request::CreateMoveTask {
            key: "m".into(),
            source: "a:1".into(),
            target: "b:1".into(),
        },
    ));
    assert_eq!(t.kind, TaskKind::ReplicaMove);
    start(&svc, 1, t.id);
    end(&svc, 1, t.id, ok(crcs));
    assert_eq!(query(&svc, t.id).state, TaskState::Success);
    assert_eq!(replica_segments(&svc, "m"), vec![20]);
}

#[test]
fn bad_tasks_are_refused_with_mooncakes_codes() {
    let svc = master(Arc::default());
    put(&svc, "k", 4096, "a:1");
    let copy = |key: &str, targets: &[&str]| {
        call(
            &svc,
            Request::CreateCopyTask {
                key: key.into(),
                targets: targets.iter().map(|t| t.to_string()).collect(),
            },
        )
        .status
    };
    assert_eq!(copy("nope", &["b:1"]), ErrorCode::ObjectNotFound.code());
    assert_eq!(copy("k", &[]), ErrorCode::InvalidParams.code());
    assert_eq!(copy("k", &["z:9"]), ErrorCode::InvalidParams.code());
    assert_eq!(copy("k", &["b:1", "b:1"]), ErrorCode::InvalidParams.code());
    let mv = |source: &str, target: &str| {
        call(
            &svc,
            Request::CreateMoveTask {
                key: "k".into(),
                source: source.into(),
                target: target.into(),
            },
        )
        .status
    };
    assert_eq!(mv("a:1", "a:1"), ErrorCode::InvalidParams.code());
    assert_eq!(
        mv("b:1", "c:1"),
        ErrorCode::InvalidParams.code(),
        "b holds no replica"
    );
    let r = call(&svc, Request::QueryTask { id: 42 });
    assert_eq!(r.status, ErrorCode::TaskNotFound.code());
    // Only the assigned node may start or end a task.
    let t = one_task(call(
        &svc,
        Request::CreateCopyTask {
            key: "k".into(),
            targets: vec!["b:1".into()],
        },
    ));
    let r = call(
        &svc,
        Request::TaskStart {
            client_id: 2,
            id: t.id,
        },
    );
    assert_eq!(r.status, ErrorCode::IllegalClient.code());
}

#[test]
fn failures_free_the_space_and_retry_until_attempts_run_out() {
    let clock = Arc::new(ManualClock::default());
    let svc = master(clock.clone());
    let crcs = put(&svc, "k", 4096, "a:1");
    let used_before = svc.segments.usage().0;
    let t = one_task(call(
        &svc,
        Request::CreateCopyTask {
            key: "k".into(),
            targets: vec!["b:1".into()],
        },
    ));
    start(&svc, 1, t.id);
    assert!(
        svc.segments.usage().0 > used_before,
        "the target's space is taken"
    );
    let failed = TaskOutcome {
        ok: false,
        error_code: ErrorCode::TransferFail.code(),
        message: "peer went away".into(),
        ..TaskOutcome::default()
    };
    end(&svc, 1, t.id, failed);
    assert_eq!(svc.segments.usage().0, used_before, "space given back");
    assert_eq!(query(&svc, t.id).state, TaskState::Pending, "retried");
    // Second attempt: the node goes quiet; the processing timeout takes it back, and with
    // no attempts left the task fails.
    start(&svc, 1, t.id);
    clock.advance_ms(1_500);
    call(&svc, Request::Ping { client_id: 1 });
    svc.maintain();
    let info = query(&svc, t.id);
    assert_eq!(info.state, TaskState::Failed, "{info:?}");
    assert_eq!(svc.segments.usage().0, used_before);
    // A late end from the node changes nothing.
    let r = call(
        &svc,
        Request::TaskEnd {
            client_id: 1,
            id: t.id,
            outcome: ok(crcs),
        },
    );
    assert_ne!(r.status, 0);
    assert_eq!(replica_segments(&svc, "k"), vec![10]);
}

#[test]
fn a_copy_of_a_changed_object_is_not_committed() {
    let svc = master(Arc::default());
    let crcs = put(&svc, "k", 4096, "a:1");
    let t = one_task(call(
        &svc,
        Request::CreateCopyTask {
            key: "k".into(),
            targets: vec!["b:1".into()],
        },
    ));
    start(&svc, 1, t.id);
    let r = call(
        &svc,
        Request::Remove {
            keys: vec!["k".into()],
            force: true,
        },
    );
    assert_eq!(r.body, ResponseBody::Statuses(vec![0]));
    put(&svc, "k", 4096, "c:1");
    end(&svc, 1, t.id, ok(crcs));
    let info = query(&svc, t.id);
    assert_eq!(info.state, TaskState::Failed);
    assert!(info.message.contains("INVALID_WRITE"), "{info:?}");
    assert_eq!(replica_segments(&svc, "k"), vec![30]);
}

#[test]
fn batch_replica_clear_takes_only_the_callers_unleased_replicas() {
    let clock = Arc::new(ManualClock::default());
    let svc = master(clock.clone());
    // Writer 9 (see `put`): two replicas of "two", one of "one".
    let r = call(
        &svc,
        Request::PutStart {
            client_id: 9,
            client_host: String::new(),
            items: vec![("two".into(), 4096)],
            config: ReplicateConfig {
                replica_num: 2,
                preferred_segments: vec!["a:1".into(), "b:1".into()],
                ..ReplicateConfig::default()
            },
        },
    );
    let ResponseBody::PutStart(v) = r.body else {
        panic!("{r:?}")
    };
    let item = PutEndItem {
        key: "two".into(),
        slice_crcs: vec![1],
        failed_replicas: vec![],
        generation: v[0].replicas[0].slices[0].generation,
    };
    call(&svc, Request::PutEnd { items: vec![item] });
    put(&svc, "one", 4096, "c:1");
    let clear = |client_id: u64, keys: &[&str], segment: &str| {
        let r = call(
            &svc,
            Request::BatchReplicaClear {
                client_id,
                keys: keys.iter().map(|k| k.to_string()).collect(),
                segment_name: segment.into(),
            },
        );
        match r.body {
            ResponseBody::Statuses(v) => v,
            _ => vec![r.status],
        }
    };
    assert_eq!(
        clear(8, &["two", "one"], ""),
        vec![ErrorCode::IllegalClient.code(); 2],
        "another client's objects stay"
    );
    replica_segments(&svc, "two"); // a read: the lease runs for 5 s
    assert_eq!(
        clear(9, &["two"], "a:1"),
        vec![ErrorCode::ObjectHasLease.code()]
    );
    clock.advance_ms(10_000);
    assert_eq!(
        clear(9, &["two", "nope"], "a:1"),
        vec![0, ErrorCode::ObjectNotFound.code()]
    );
    assert_eq!(
        replica_segments(&svc, "two"),
        vec![20],
        "only a:1's replica went"
    );
    clock.advance_ms(10_000);
    assert_eq!(
        clear(9, &["one"], "a:1"),
        vec![ErrorCode::ReplicaNotFound.code()]
    );
    assert_eq!(
        clear(9, &["one"], "z:9"),
        vec![ErrorCode::SegmentNotFound.code()]
    );
    let before = svc.segments.usage().0;
    assert_eq!(clear(9, &["one"], ""), vec![0]);
    assert!(svc.segments.usage().0 < before, "its space is freed");
    let r = call(
        &svc,
        Request::GetReplicaList {
            keys: vec!["one".into()],
        },
    );
    let ResponseBody::ReplicaLists(v) = r.body else {
        panic!("{r:?}")
    };
    assert_eq!(v[0].status, ErrorCode::ObjectNotFound.code());
}
