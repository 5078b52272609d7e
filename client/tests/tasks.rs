//! Copy and move tasks against real processes: a master and three store nodes. The node
//! holding the source runs the task (its agent's task runner), the new replicas hold the
//! bytes (they serve the get once the source node is gone), a move leaves the source empty,
//! and bad tasks are refused with Mooncake's codes.

mod common;

use std::time::{Duration, Instant};

use common::pattern;
use mc_cluster::{LocalCluster, probe};
use mooncake_rs::{ErrorCode, ReplicateConfig, Store, TaskInfo, TaskState};

fn segments(c: &LocalCluster) -> Vec<String> {
    let r = probe::http_get(
        &c.metrics_addr(),
        "/get_all_segments",
        Duration::from_secs(5),
    )
    .expect("master answers");
    let mut v: Vec<String> = r.body.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// Endpoints of the first slice of each replica of `key`, sorted.
fn replica_endpoints(s: &Store, key: &str) -> Vec<String> {
    let mut v: Vec<String> = s
        .replicas(key)
        .unwrap()
        .iter()
        .map(|r| r.slices[0].endpoint.clone())
        .collect();
    v.sort();
    v
}

/// Waits (bounded) until task `t` has finished; its last state.
fn finished(c: &LocalCluster, s: &Store, t: &TaskInfo) -> TaskInfo {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = s.query_task(t.id).expect("task known");
        if now.state == TaskState::Success || now.state == TaskState::Failed {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "task {now:?} did not finish; logs:\n{}",
            c.logs_tail(40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn put_on(s: &Store, key: &str, value: &[u8], segment: &str) {
    let cfg = ReplicateConfig {
        preferred_segments: vec![segment.to_string()],
        ..ReplicateConfig::default()
    };
    s.put(key, value, &cfg).unwrap();
    assert_eq!(replica_endpoints(s, key), vec![segment.to_string()]);
}

#[test]
fn copy_and_move_tasks_run_on_the_nodes_and_their_replicas_serve_reads() {
    let c = common::cluster(3, "64MB");
    let s = common::uncached_store(&c);
    let segs = segments(&c);
    assert_eq!(segs.len(), 3, "{segs:?}");

    // A move of a three-slice value: the source is left empty, and the get reads only
    // what the task wrote.
    let m = pattern(40 << 20, 2);
    put_on(&s, "moved", &m, &segs[1]);
    let t = s.create_move_task("moved", &segs[1], &segs[2]).unwrap();
    let done = finished(&c, &s, &t);
    assert_eq!(done.state, TaskState::Success, "{done:?}");
    assert_eq!(replica_endpoints(&s, "moved"), vec![segs[2].clone()]);
    assert_eq!(s.get("moved").unwrap(), m);

    // A copy of a one-slice value to another node, then its source moved to the third:
    // both replicas left were written by tasks.
    let v = pattern(1 << 20, 1);
    put_on(&s, "copied", &v, &segs[0]);
    let t = s.create_copy_task("copied", &[segs[1].clone()]).unwrap();
    assert_eq!(t.source, segs[0]);
    let done = finished(&c, &s, &t);
    assert_eq!(done.state, TaskState::Success, "{done:?}");
    assert_eq!(replica_endpoints(&s, "copied"), segs[..2].to_vec());
    let t = s.create_move_task("copied", &segs[0], &segs[2]).unwrap();
    assert_eq!(finished(&c, &s, &t).state, TaskState::Success);
    assert_eq!(replica_endpoints(&s, "copied"), segs[1..].to_vec());
    assert_eq!(s.get("copied").unwrap(), v);
    assert!(
        s.list_tasks(10).unwrap().iter().any(|x| x.id == t.id),
        "listed"
    );

    // A move to a segment that already holds a replica fails and changes nothing.
    let t = s.create_move_task("copied", &segs[1], &segs[2]).unwrap();
    let done = finished(&c, &s, &t);
    assert_eq!(done.state, TaskState::Failed, "{done:?}");
    assert_eq!(replica_endpoints(&s, "copied"), segs[1..].to_vec());
}

#[test]
fn bad_tasks_are_refused() {
    let c = common::cluster(2, "64MB");
    let s = common::uncached_store(&c);
    let segs = segments(&c);
    put_on(&s, "k", b"value", &segs[0]);
    let code = |r: mooncake_rs::Result<TaskInfo>| r.unwrap_err().code();
    assert_eq!(
        code(s.create_copy_task("missing", &[segs[1].clone()])),
        ErrorCode::ObjectNotFound
    );
    assert_eq!(
        code(s.create_copy_task("k", &["nowhere:1".into()])),
        ErrorCode::InvalidParams
    );
    assert_eq!(code(s.create_copy_task("k", &[])), ErrorCode::InvalidParams);
    assert_eq!(
        code(s.create_move_task("k", &segs[0], &segs[0])),
        ErrorCode::InvalidParams
    );
    assert_eq!(
        code(s.create_move_task("k", &segs[1], &segs[0])),
        ErrorCode::InvalidParams,
        "the source holds no replica"
    );
    assert_eq!(
        s.query_task(12345).unwrap_err().code(),
        ErrorCode::TaskNotFound
    );
    // Copying to where a replica already is succeeds without writing anything.
    let t = s.create_copy_task("k", &[segs[0].clone()]).unwrap();
    let done = finished(&c, &s, &t);
    assert_eq!(done.state, TaskState::Success, "{done:?}");
    assert_eq!(replica_endpoints(&s, "k"), vec![segs[0].clone()]);
}
