//! Failpoints turned on in real processes (a build with `--features failpoints`, as
//! `scripts/faults.sh` makes): the shard between a write and its ack, the client between the
//! acks and the commit, the master on each side of recording a PutEnd, the agent's heartbeat
//! and inventory report. Each is driven through `return` (an error), `sleep` (a delay) and
//! `panic`, and each test checks the outcome: every acknowledged object reads back byte for
//! byte, a failed put is never readable with other bytes, errors carry their codes, and the
//! processes that did not fail keep serving.
//!
//! Children get their failpoints from `FAILPOINTS` at start (`fail::FailScenario::setup` in
//! their `main`); counts (`2*off->return->off`) say which call fails. The client's failpoint
//! lives in this process: every test holds a `FailScenario`, which also serializes them.

#![cfg(feature = "failpoints")]

mod common;

use std::time::{Duration, Instant};

use common::pattern;
use mc_cluster::{ClusterSpec, LocalCluster, NodeSpec};
use mooncake_rs::{ErrorCode, ReplicateConfig, Store, StoreConfig};

/// Longest wait for an expected event (a node dropped, a key back); never a measurement.
const EVENT_DEADLINE: Duration = Duration::from_secs(90);

fn node(host: &str, failpoints: &str, extra: &[&str]) -> NodeSpec {
    NodeSpec {
        segment_size: "64MB".into(),
        env: if failpoints.is_empty() {
            Vec::new()
        } else {
            vec![("FAILPOINTS".into(), failpoints.into())]
        },
        extra_args: extra.iter().map(|s| s.to_string()).collect(),
        ..NodeSpec::on_host(host)
    }
}

fn start(spec: ClusterSpec) -> LocalCluster {
    LocalCluster::start(spec).unwrap_or_else(|e| panic!("cluster did not start: {e}"))
}

fn store(c: &LocalCluster) -> Store {
    // Outcomes are checked against what the master knows: no location cache. These
    // failpoints sit on the PutStart / PutEnd path, so puts take it: no put credit.
    Store::connect(StoreConfig {
        location_cache_entries: 0,
        put_credit_bytes: 0,
        ..StoreConfig::new(c.master_addr())
    })
    .expect("client connects")
}

fn replicas(n: u32) -> ReplicateConfig {
    ReplicateConfig {
        replica_num: n,
        ..ReplicateConfig::default()
    }
}

fn on_host(host: &str, n: u32) -> ReplicateConfig {
    ReplicateConfig {
        preferred_segments: vec![host.into()],
        ..replicas(n)
    }
}

/// Checks a put's outcome: acknowledged ⇒ the same bytes come back; failed ⇒ whatever a get
/// answers, it is never other bytes.
fn check_outcome(s: &Store, key: &str, value: &[u8], put: &mooncake_rs::Result<()>) {
    match (put, s.get(key)) {
        (Ok(()), Ok(back)) => assert!(back == value, "{key}: wrong bytes after an ack"),
        (Ok(()), Err(e)) => panic!("{key}: acknowledged, then lost: {e}"),
        (Err(_), Ok(back)) => assert!(back == value, "{key}: wrong bytes after a failed put"),
        (Err(_), Err(_)) => {}
    }
}

/// Waits until `f` holds, up to [`EVENT_DEADLINE`].
fn wait_for(what: &str, c: &LocalCluster, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + EVENT_DEADLINE;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "never happened: {what}\n{}",
            c.logs_tail(30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn node_log(c: &LocalCluster, i: usize) -> String {
    std::fs::read_to_string(c.log_dir().join(format!("node-{i}.log"))).unwrap_or_default()
}

#[test]
fn shard_write_failpoints_fail_that_replica_only() {
    let _fp = fail::FailScenario::setup();
    // Node 1's shard: 2 writes pass, 2 are refused, 2 are delayed, then its thread panics.
    let fp = "shard::write::before_ack=2*off->2*return->2*sleep(200)->panic";
    let c = start(ClusterSpec {
        nodes: vec![node("127.0.0.1", "", &[]), node("127.0.0.2", fp, &[])],
        ..ClusterSpec::default()
    });
    let s = store(&c);
    let mut acked = Vec::new();
    for i in 0..10u64 {
        let (key, value) = (format!("shard-{i}"), pattern(20_000 + i as usize, i));
        let r = s.put(&key, &value, &on_host("127.0.0.2", 2));
        check_outcome(&s, &key, &value, &r);
        // Two replicas on distinct nodes: the healthy one always takes its write.
        r.unwrap_or_else(|e| panic!("{key}: {e}"));
        let n = s.replicas(&key).unwrap().len();
        match i {
            0 | 1 | 4 | 5 => assert_eq!(n, 2, "{key}: write {i} on node 1 should land"),
            2 | 3 => assert_eq!(n, 1, "{key}: refused write should leave one replica"),
            _ => {}
        }
        acked.push((key, value));
    }
    // A put that must go to the failing node only fails cleanly and leaves nothing.
    let r = s.put("only-there", b"value", &on_host("127.0.0.2", 1));
    if let Err(e) = &r {
        assert!(
            matches!(e.code(), ErrorCode::TransferFail | ErrorCode::RpcTimeout),
            "{e}"
        );
    }
    check_outcome(&s, "only-there", b"value", &r);
    for (key, value) in &acked {
        assert!(&s.get(key).unwrap() == value, "{key}");
    }
    assert!(node_log(&c, 1).contains("panicked"), "{}", c.logs_tail(20));
}

#[test]
fn client_commit_failpoint_leaves_nothing_readable() {
    let scenario = fail::FailScenario::setup();
    let c = start(ClusterSpec {
        nodes: vec![node("127.0.0.1", "", &[])],
        ..ClusterSpec::default()
    });
    let s = store(&c);
    let cfg = replicas(1);
    s.put("before", b"committed", &cfg).unwrap();
    // Error between the acks and the commit: the put fails, nothing becomes readable.
    fail::cfg("client::write::before_commit", "return").unwrap();
    let e = s.put("dropped", &pattern(9000, 1), &cfg).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InternalError, "{e}");
    // Never committed: pending until the master's release timeout, never readable.
    assert_eq!(
        s.get("dropped").unwrap_err().code(),
        ErrorCode::ReplicaIsNotReady
    );
    // A delay there only delays the put.
    fail::cfg("client::write::before_commit", "sleep(300)").unwrap();
    let slow = pattern(9000, 2);
    s.put("slow", &slow, &cfg).unwrap();
    assert_eq!(s.get("slow").unwrap(), slow);
    // A panic there unwinds the caller; the store and the master stay usable.
    fail::cfg("client::write::before_commit", "panic").unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        s.put("panicked", b"never committed", &cfg)
    }));
    assert!(r.is_err(), "the failpoint did not panic");
    fail::remove("client::write::before_commit");
    assert_eq!(
        s.get("panicked").unwrap_err().code(),
        ErrorCode::ReplicaIsNotReady
    );
    s.put("after", b"still works", &cfg).unwrap();
    assert_eq!(s.get("after").unwrap(), b"still works");
    assert_eq!(s.get("before").unwrap(), b"committed");
    scenario.teardown();
}

/// Puts `n` keys through a master whose PutEnd failpoint `name` runs `actions`, checking
/// each outcome; returns the results.
fn puts_through_master_failpoint(name: &str, actions: &str, n: u64) -> Vec<Result<(), ErrorCode>> {
    let _fp = fail::FailScenario::setup();
    let c = start(ClusterSpec {
        nodes: vec![node("127.0.0.1", "", &[])],
        master_env: vec![("FAILPOINTS".into(), format!("{name}={actions}"))],
        ..ClusterSpec::default()
    });
    let s = store(&c);
    let mut out = Vec::new();
    let mut acked = Vec::new();
    for i in 0..n {
        let (key, value) = (format!("m-{i}"), pattern(5000, i));
        let r = s.put(&key, &value, &replicas(1));
        check_outcome(&s, &key, &value, &r);
        if r.is_ok() {
            acked.push((key, value));
        }
        out.push(r.map_err(|e| e.code()));
    }
    // The master lived through every action, panics included, and lost no ack.
    assert!(c.master_pid().is_some(), "{}", c.logs_tail(20));
    s.put("last", b"served", &replicas(1)).unwrap();
    for (key, value) in &acked {
        assert!(&s.get(key).unwrap() == value, "{key}");
    }
    out
}

#[test]
fn master_failpoint_before_the_commit_is_recorded() {
    let r = puts_through_master_failpoint(
        "master::put_end::before_record",
        "1*off->1*return->1*sleep(200)->1*panic->off",
        5,
    );
    assert_eq!(r[0], Ok(()));
    assert_eq!(r[1], Err(ErrorCode::InternalError));
    assert_eq!(r[2], Ok(()), "a delay only delays");
    assert_eq!(r[4], Ok(()));
}

#[test]
fn master_failpoint_after_the_commit_is_recorded() {
    let r = puts_through_master_failpoint(
        "master::put_end::after_record",
        "1*off->1*return->1*panic->off",
        4,
    );
    assert_eq!(r[0], Ok(()));
    assert_eq!(r[1], Err(ErrorCode::InternalError));
    assert_eq!(r[3], Ok(()));
}

#[test]
fn master_after_record_error_still_commits() {
    let _fp = fail::FailScenario::setup();
    let c = start(ClusterSpec {
        nodes: vec![node("127.0.0.1", "", &[])],
        master_env: vec![(
            "FAILPOINTS".into(),
            "master::put_end::after_record=return".into(),
        )],
        ..ClusterSpec::default()
    });
    let s = store(&c);
    let value = pattern(7000, 3);
    let e = s.put("k", &value, &replicas(1)).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InternalError, "{e}");
    // The commit was recorded before the answer was lost: a retry finds the object.
    assert_eq!(s.get("k").unwrap(), value);
}

#[test]
fn silent_heartbeats_drop_the_node_and_it_comes_back() {
    let _fp = fail::FailScenario::setup();
    // Node 1 loses 25 heartbeats (5 s at 200 ms) after its first 5, and 60 notice long
    // polls (6 s at 100 ms) after its first 2: both signs of life stop for longer than
    // client_ttl. Heartbeats alone would not do: the long poll keeps a node alive too.
    let fp = "agent::heartbeat=5*off->25*return->off;agent::sync=2*off->60*return->off";
    let c = start(ClusterSpec {
        nodes: vec![
            node("127.0.0.1", "", &["--heartbeat_interval=200ms"]),
            node("127.0.0.2", fp, &["--heartbeat_interval=200ms"]),
        ],
        master_args: vec!["--client_ttl=2".into()],
        ..ClusterSpec::default()
    });
    let s = store(&c);
    let mut acked = Vec::new();
    for i in 0..5u64 {
        let (key, value) = (format!("hb-{i}"), pattern(3000, i));
        if s.put(&key, &value, &replicas(2)).is_ok() {
            acked.push((key, value));
        }
    }
    assert!(!acked.is_empty(), "no put succeeded\n{}", c.logs_tail(20));
    wait_for("node 1 dropped and re-mounting", &c, || {
        node_log(&c, 1).contains("re-mounting")
    });
    for (key, value) in &acked {
        assert!(&s.get(key).unwrap() == value, "{key} while node 1 was out");
    }
    // Back: its replicas are taken back, so every object has two again.
    wait_for("node 1's replicas adopted again", &c, || {
        acked
            .iter()
            .all(|(k, _)| s.replicas(k).is_ok_and(|r| r.len() == 2))
    });
    for (key, value) in &acked {
        assert!(&s.get(key).unwrap() == value, "{key}");
    }
}

#[test]
fn failed_inventory_report_is_sent_again() {
    let _fp = fail::FailScenario::setup();
    // The first report (at start) passes, the one after the master restart fails.
    let fp = "agent::inventory=1*off->1*return->off";
    let mut c = start(ClusterSpec {
        nodes: vec![node("127.0.0.1", fp, &["--heartbeat_interval=200ms"])],
        ..ClusterSpec::default()
    });
    let s = store(&c);
    let values: Vec<(String, Vec<u8>)> = (0..8u64)
        .map(|i| (format!("inv-{i}"), pattern(4000 + i as usize, i)))
        .collect();
    for (k, v) in &values {
        s.put(k, v, &replicas(1)).unwrap();
    }
    c.kill_master();
    c.restart_master().unwrap();
    wait_for("every object adopted after a failed report", &c, || {
        values.iter().all(|(k, v)| s.get(k).is_ok_and(|b| &b == v))
    });
    assert!(
        node_log(&c, 0).contains("failpoint agent::inventory"),
        "the failpoint never fired\n{}",
        c.logs_tail(20)
    );
}

/// `shard::ssd::write` fails every offload write as a failing disk would: puts and gets go on
/// from memory, no disk replica appears, the errors are counted and logged.
#[test]
fn ssd_write_failpoint_keeps_objects_in_memory() {
    let dir =
        match mc_cluster::o_direct_dir(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")), "fp-ssd")
        {
            Ok(d) => d,
            Err(why) => {
                eprintln!("SKIPPED: {why}");
                return;
            }
        };
    let path = format!("--ssd_offload_path={}", dir.display());
    let c = start(ClusterSpec {
        nodes: vec![node(
            "127.0.0.1",
            "shard::ssd::write=return",
            &[
                "--enable_ssd_offload",
                &path,
                "--ssd_quota_bytes=256MB",
                "--ssd_file_size=64MB",
            ],
        )],
        master_args: vec!["--enable_offload".into()],
        ..ClusterSpec::default()
    });
    let s = store(&c);
    let values: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 256 << 10]).collect();
    for (i, v) in values.iter().enumerate() {
        s.put(&format!("fp-ssd-{i}"), v, &replicas(1)).unwrap();
    }
    let metrics = || {
        mc_cluster::probe::http_get(&c.node_rest_addr(0), "/metrics", Duration::from_secs(5))
            .map(|r| r.body)
            .unwrap_or_default()
    };
    wait_for("offload errors counted", &c, || {
        metrics().lines().any(|l| {
            l.starts_with("mc_shard_ssd_offload_errors_total")
                && l.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok()) >= Some(8.0)
        })
    });
    assert!(node_log(&c, 0).contains("offload failed, the slice stays in memory only"));
    for (i, v) in values.iter().enumerate() {
        let key = format!("fp-ssd-{i}");
        assert_eq!(&s.get(&key).unwrap(), v);
        let kinds: Vec<_> = s.replicas(&key).unwrap().iter().map(|r| r.kind).collect();
        assert!(
            kinds.iter().all(|k| *k == mooncake_rs::ReplicaKind::Memory),
            "{key}: {kinds:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
