//! Store nodes failing under a client's feet: killed, stopped, cut off from the master, or
//! their shard's write path failing (failpoints).

use std::sync::Arc;
use std::time::Instant;

use mc_cluster::{Direction, FaultProxy, Mode};

use super::{Ctx, PATIENCE};
use crate::harness::{Done, Run, client, health, node, put_many, replicas, start, wait_until};
use crate::ledger::verify;
use crate::load::Load;

/// Two nodes on distinct hosts, replicas on both; node 1 is SIGKILLed while a writer puts.
/// Target: every acknowledged put reads back (from node 0), puts go on.
pub fn kill_mid_put(ctx: &Ctx) -> anyhow::Result<Run> {
    let mut c = start(
        vec![
            node("127.0.0.1", "64MB", &[]),
            node("127.0.0.2", "64MB", &[]),
        ],
        &[],
    )?;
    let s = Arc::new(client(&c.master_addr())?);
    let load = Load::start(s.clone(), "kn", 0, 256 << 10, replicas(2));
    anyhow::ensure!(
        load.wait_acked(ctx.pick(20, 60), PATIENCE),
        "no load before the kill"
    );
    let killed = Instant::now();
    c.kill_node(1);
    let back = wait_until(PATIENCE, || load.first_ack_after(killed).is_some());
    let before = load.acked_count();
    load.wait_acked(before + ctx.pick(10, 40), PATIENCE);
    let acked = load.stop();
    let mut d = Done {
        tally: verify(&s, &acked, PATIENCE),
        ..Done::default()
    };
    crate::harness::check_no_evictions(&c.metrics_addr(), &mut d);
    match back.and_then(|_| acked.iter().map(|a| a.at).find(|&t| t > killed)) {
        Some(t) => d.recover = t - killed,
        None => d.problems.push("no put succeeded after the kill".into()),
    }
    Ok(Run::Done(d))
}

/// Two nodes, replicas on both; node 1 is SIGSTOPped. Reads and writes must go on (each
/// stalled transfer costs one timeout), and everything reads back after SIGCONT.
/// `recover_s`: from SIGSTOP until every object was read back once.
pub fn sigstop(ctx: &Ctx) -> anyhow::Result<Run> {
    let mut c = start(
        vec![
            node("127.0.0.1", "64MB", &[]),
            node("127.0.0.2", "64MB", &[]),
        ],
        &[],
    )?;
    let s = client(&c.master_addr())?;
    let n = ctx.pick(20, 100);
    let mut acked = put_many(&s, "st", 0, n, 64 << 10, &replicas(2));
    anyhow::ensure!(acked.len() as u64 == n, "puts failed before the fault");
    let stopped = Instant::now();
    c.signal_node(1, libc::SIGSTOP);
    let mut d = Done {
        tally: verify(&s, &acked, PATIENCE),
        ..Done::default()
    };
    d.recover = stopped.elapsed();
    acked.extend(put_many(
        &s,
        "st-during",
        1000,
        n / 2,
        64 << 10,
        &replicas(2),
    ));
    if (acked.len() as u64) < n + n / 2 {
        d.problems.push(format!(
            "{} puts failed while a node was stopped",
            n + n / 2 - acked.len() as u64
        ));
    }
    c.signal_node(1, libc::SIGCONT);
    c.wait_node_ready(1)
        .map_err(|e| anyhow::anyhow!("node did not come back: {e}"))?;
    d.tally.add(verify(&s, &acked, PATIENCE));
    Ok(Run::Done(d))
}

/// Node 1 reaches the master through a [`FaultProxy`] that drops everything the node sends
/// (a one-way partition: the node's writes succeed, nothing arrives). The master drops the
/// node after `--client_ttl`; clients read node 0's replicas meanwhile; after the heal the
/// node re-mounts, reports its index, and its replicas are adopted again.
/// `recover_s`: from the heal until every object has two replicas again.
pub fn one_way_partition(ctx: &Ctx) -> anyhow::Result<Run> {
    let mut c = start(vec![node("127.0.0.1", "64MB", &[])], &["--client_ttl=2"])?;
    let proxy = FaultProxy::start(&c.master_addr())?;
    let mut cut = node("127.0.0.2", "64MB", &["--heartbeat_interval=200ms"]);
    cut.master_server = Some(proxy.addr());
    c.add_node(cut)?;
    let s = client(&c.master_addr())?;
    let n = ctx.pick(20, 100);
    let acked = put_many(&s, "pt", 0, n, 64 << 10, &replicas(2));
    anyhow::ensure!(acked.len() as u64 == n, "puts failed before the fault");
    proxy.set_mode(Direction::ToTarget, Mode::Drop);
    let metrics = c.metrics_addr();
    let segments = |h: &serde_json::Value| h["segments"].as_u64();
    let mut d = Done::default();
    if wait_until(PATIENCE, || segments(&health(&metrics)) == Some(1)).is_none() {
        d.problems
            .push("the master never dropped the partitioned node".into());
    }
    d.tally.add(verify(&s, &acked, PATIENCE));
    let healed = Instant::now();
    proxy.heal();
    let whole = wait_until(PATIENCE, || {
        acked
            .iter()
            .all(|a| s.replicas(&a.key).is_ok_and(|r| r.len() == 2))
    });
    match whole {
        Some(t) => d.recover = t - healed,
        None => d
            .problems
            .push("replicas of the partitioned node never came back".into()),
    }
    d.tally.add(verify(&s, &acked, PATIENCE));
    Ok(Run::Done(d))
}

/// Failpoint `shard::write::before_ack` on node 1 under puts with two replicas: writes
/// refused, delayed, then the shard thread panics.
/// Target: every acknowledged put reads back, puts keep succeeding on node 0.
pub fn shard_failpoints(ctx: &Ctx) -> anyhow::Result<Run> {
    if !ctx.failpoints {
        return Ok(Run::Skipped("built without --features failpoints".into()));
    }
    let mut bad = node("127.0.0.2", "64MB", &[]);
    bad.env = vec![(
        "FAILPOINTS".into(),
        "shard::write::before_ack=5*off->5*return->2*sleep(300)->5*off->panic".into(),
    )];
    let c = start(vec![node("127.0.0.1", "64MB", &[]), bad], &[])?;
    let s = client(&c.master_addr())?;
    let cfg = mooncake_rs::ReplicateConfig {
        preferred_segments: vec!["127.0.0.2".into()],
        ..replicas(2)
    };
    let panicked = || {
        std::fs::read_to_string(c.log_dir().join("node-1.log"))
            .is_ok_and(|l| l.contains("panicked"))
    };
    // Sequential, paced puts, bounded (at most 8 MiB per node), so eviction never passes
    // for loss, and the client's back-off from the failing node has time to end.
    let (len, max_puts) = (8usize << 10, 1000u64);
    let mut acked = Vec::new();
    let mut d = Done::default();
    let mut after_panic = None;
    for i in 0..max_puts {
        if after_panic.is_none() && panicked() {
            after_panic = Some(acked.len());
        }
        if after_panic.is_some_and(|n| acked.len() >= n + 20) {
            break;
        }
        acked.extend(put_many(&s, &format!("fp{i}"), i * 10, 1, len, &cfg));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // The node does not keep heartbeating with a dead shard: it stops (fail-stop).
    let log = std::fs::read_to_string(c.log_dir().join("node-1.log")).unwrap_or_default();
    if after_panic.is_some() && !log.contains("ended unasked") {
        d.problems
            .push("the node with a dead shard did not stop".into());
    }
    match after_panic {
        None => d.problems.push("the shard failpoint never panicked".into()),
        Some(n) if acked.len() < n + 20 => d
            .problems
            .push("puts stopped after the shard panicked".into()),
        Some(_) => {}
    }
    crate::harness::check_no_evictions(&c.metrics_addr(), &mut d);
    d.tally = verify(&s, &acked, PATIENCE);
    Ok(Run::Done(d))
}
