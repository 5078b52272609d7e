//! The store node as a supervisor with a `dataplane` and an `agent` child
//! (`docs/node-process.md`): each half survives a kill -9 of the other, and the node still
//! stops in order.

mod common;

use std::time::{Duration, Instant};

use common::pattern;
use mc_cluster::LocalCluster;
use mooncake_rs::{ReplicateConfig, Store};

use mc_cluster::children::{child_with_first_arg as child_pid, children};

/// Waits for a `role` child of `node` other than `old`.
fn wait_new_child(c: &LocalCluster, node: u32, role: &str, old: u32) -> (u32, Duration) {
    let start = Instant::now();
    loop {
        if let Some(p) = child_pid(node, role).filter(|&p| p != old) {
            return (p, start.elapsed());
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no new {role} process within 60 s\n{}",
            c.logs_tail(40)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits (up to 60 s) until `f` holds.
fn eventually(c: &LocalCluster, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "condition never held\n{}",
            c.logs_tail(40)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill9(pid: u32) {
    let p = mc_cluster::detached::ProcessId::of(pid).expect("the process runs");
    assert!(p.signal(9), "kill -9 {pid}");
}

fn put_all(s: &Store, n: usize) -> Vec<(String, Vec<u8>)> {
    let objs: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| (format!("obj-{i}"), pattern(1000 + i * 3111, i as u64)))
        .collect();
    for (k, v) in &objs {
        s.put(k, v, &ReplicateConfig::default()).unwrap();
    }
    objs
}

#[test]
fn the_node_is_a_supervisor_with_a_dataplane_and_an_agent_child() {
    let c = common::cluster(1, "64MB");
    let node = c.node_pid(0).unwrap();
    let kids = children(node);
    assert_eq!(kids.len(), 2, "children of the node: {kids:?}");
    let dp = kids
        .iter()
        .find(|(_, c)| c.split(' ').nth(1) == Some("dataplane"));
    let agent = kids
        .iter()
        .find(|(_, c)| c.split(' ').nth(1) == Some("agent"));
    let (Some((_, dp)), Some((_, agent))) = (dp, agent) else {
        panic!("no dataplane and agent children: {kids:?}");
    };
    assert!(!dp.contains("agent"), "{dp}");
    assert!(!agent.contains("dataplane"), "{agent}");
}

#[test]
fn reads_never_fail_while_the_agent_is_killed_and_restarted() {
    let c = common::cluster(1, "64MB");
    let s = common::store(&c);
    let objs = put_all(&s, 20);
    let node = c.node_pid(0).unwrap();
    let agent = child_pid(node, "agent").expect("an agent child");
    kill9(agent);
    let start = Instant::now();
    let mut reads = 0u64;
    let mut failed = 0u64;
    let mut wrong = 0u64;
    let mut new_agent = None;
    let mut agent_back = None;
    let mut rest_back = None;
    // Read for the whole restart and a little after.
    while rest_back.is_none() || start.elapsed() < Duration::from_secs(2) {
        for (k, v) in &objs {
            match s.get(k) {
                Ok(got) if &got == v => {}
                Ok(_) => wrong += 1,
                Err(_) => failed += 1,
            }
            reads += 1;
        }
        if new_agent.is_none() {
            new_agent = child_pid(node, "agent").filter(|&p| p != agent);
            agent_back = new_agent.map(|_| start.elapsed());
        }
        let answers = || {
            mc_cluster::probe::http_get(&c.node_rest_addr(0), "/health", Duration::from_secs(2))
                .is_ok_and(|r| r.status == 200)
        };
        if new_agent.is_some() && rest_back.is_none() && answers() {
            rest_back = Some(start.elapsed());
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no new agent\n{}",
            c.logs_tail(40)
        );
    }
    eprintln!(
        "kill -9 agent: {reads} reads during the restart, {failed} failed, {wrong} wrong; new agent process after {agent_back:?}, its REST answers after {rest_back:?}"
    );
    assert_eq!((failed, wrong), (0, 0));
    // The new agent holds the node at the master: new puts land, old objects stay.
    eventually(&c, || {
        s.put("after-agent", b"x", &ReplicateConfig::default())
            .is_ok()
    });
    for (k, v) in &objs {
        assert_eq!(&s.get(k).unwrap(), v);
    }
    // The node says what happened, and still shows its shards' families.
    let metrics =
        mc_cluster::probe::http_get(&c.node_rest_addr(0), "/metrics", Duration::from_secs(5))
            .expect("the new agent serves /metrics");
    assert!(
        metrics.body.contains("\nmc_node_agent_restarts 1\n"),
        "{}",
        metrics.body
    );
    assert!(
        metrics.body.contains("mc_shard_read_ops_total{"),
        "{}",
        metrics.body
    );
    // Removes go through the new agent's notices to the shards.
    s.remove("obj-0", true).unwrap();
    assert!(s.get("obj-0").is_err(), "a removed key still reads");
}

#[test]
fn objects_come_back_byte_exact_after_the_data_plane_is_killed() {
    let c = common::cluster(1, "64MB");
    let s = common::uncached_store(&c);
    let objs = put_all(&s, 30);
    let node = c.node_pid(0).unwrap();
    let dp = child_pid(node, "dataplane").expect("a data-plane child");
    kill9(dp);
    let killed = Instant::now();
    let (_, dp_back) = wait_new_child(&c, node, "dataplane", dp);
    // Every object readable again, byte-exact.
    let mut pending: Vec<&(String, Vec<u8>)> = objs.iter().collect();
    let mut wrong = 0;
    while !pending.is_empty() {
        pending.retain(|(k, v)| match s.get(k) {
            Ok(got) => {
                if &got != v {
                    wrong += 1;
                }
                false
            }
            Err(_) => true,
        });
        assert!(
            killed.elapsed() < Duration::from_secs(120),
            "{} object(s) not readable 120 s after the data plane died\n{}",
            pending.len(),
            c.logs_tail(60)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!(
        "kill -9 data plane: new data plane after {dp_back:?}, all {} objects readable after {:?}",
        objs.len(),
        killed.elapsed()
    );
    assert_eq!(wrong, 0, "wrong bytes after the restart");
    eventually(&c, || {
        s.put("after-dp", b"y", &ReplicateConfig::default()).is_ok()
    });
    assert_eq!(s.get("after-dp").unwrap(), b"y");
}

#[test]
fn sigterm_stops_both_children_and_the_supervisor_exits_0() {
    let mut c = common::cluster(1, "64MB");
    let node = c.node_pid(0).unwrap();
    let kids: Vec<u32> = children(node).into_iter().map(|(p, _)| p).collect();
    assert_eq!(kids.len(), 2);
    c.signal_node(0, 15);
    let status = c
        .wait_node_exit(0, Duration::from_secs(120))
        .expect("the node exits after SIGTERM");
    assert!(
        status.success(),
        "exit status {status}\n{}",
        c.logs_tail(40)
    );
    for k in kids {
        assert!(
            !std::path::Path::new(&format!("/proc/{k}")).exists()
                || std::fs::read_to_string(format!("/proc/{k}/stat"))
                    .is_ok_and(|s| s.contains(") Z ")),
            "child {k} outlived the supervisor"
        );
    }
}
