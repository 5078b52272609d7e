//! The master failing under load: the HA leader SIGKILLed (a standby takes over and
//! re-adopts from the nodes), and a lone master SIGKILLed and restarted.

use std::sync::Arc;
use std::time::Instant;

use mc_cluster::{ClusterSpec, Coordinator, CoordinatorKind, LocalCluster, NodeSpec};

use super::{Ctx, PATIENCE};
use crate::harness::{Done, Run, client, health, node, replicas, start, wait_until};
use crate::ledger::verify;
use crate::load::Load;

/// Two HA masters on a real etcd, two nodes and a client following it; a writer puts with
/// two replicas while the leader is SIGKILLed. Target: every acknowledged put reads back,
/// and puts resume. `recover_s`: from the kill to the first acknowledged put after it.
pub fn kill_leader(ctx: &Ctx) -> anyhow::Result<Run> {
    let coord = match Coordinator::start(CoordinatorKind::Etcd) {
        Ok(c) => c,
        Err(mc_cluster::Error::ToolNotFound { .. }) => {
            return Ok(Run::Skipped(
                "etcd is not installed (scripts/setup.sh)".into(),
            ));
        }
        Err(e) => anyhow::bail!("etcd: {e}"),
    };
    let mut master_args = coord.master_args();
    master_args.push("--master_view_lease_ttl_sec=2".into());
    let nodes: Vec<NodeSpec> = ["127.0.0.2", "127.0.0.3"]
        .iter()
        .map(|h| {
            node(
                h,
                "64MB",
                &["--heartbeat_interval=300ms", "--rpc_timeout=3000"],
            )
        })
        .collect();
    let mut c = LocalCluster::start(ClusterSpec {
        masters: 2,
        master_args,
        master_server: Some(coord.locator()),
        nodes,
        ..ClusterSpec::default()
    })?;
    let s = Arc::new(client(&coord.locator())?);
    let serving = |c: &LocalCluster| {
        (0..c.master_count()).find(|&i| health(&c.metrics_addr_of(i))["ha_state"] == "serving")
    };
    let mut leader = None;
    wait_until(PATIENCE, || {
        leader = serving(&c);
        leader.is_some()
    });
    let leader = leader.ok_or_else(|| anyhow::anyhow!("no leader serves"))?;
    let load = Load::start(
        s.clone(),
        "lk",
        0,
        ctx.pick(64 << 10, 256 << 10),
        replicas(2),
    );
    anyhow::ensure!(
        load.wait_acked(ctx.pick(20, 100), PATIENCE),
        "no load before the kill"
    );
    let killed = Instant::now();
    c.kill_master_of(leader);
    let mut d = Done::default();
    match wait_until(PATIENCE, || load.first_ack_after(killed).is_some()) {
        Some(_) => {}
        None => d
            .problems
            .push("no put succeeded after the leader died".into()),
    }
    let n = load.acked_count();
    load.wait_acked(n + ctx.pick(10, 50), PATIENCE);
    let acked = load.stop();
    if let Some(t) = acked.iter().map(|a| a.at).find(|&t| t > killed) {
        d.recover = t - killed;
    }
    d.tally = verify(&s, &acked, PATIENCE);
    drop(c);
    drop(coord);
    Ok(Run::Done(d))
}

/// One master, two nodes, a writer with two replicas; the master is SIGKILLed and started
/// again on the same ports. Target: every acknowledged put reads back (re-adopted from the
/// nodes' indexes), puts resume. `recover_s`: from the kill until every object put before
/// it reads back.
pub fn restart(ctx: &Ctx) -> anyhow::Result<Run> {
    let mut c = start(
        vec![
            node("127.0.0.1", "64MB", &["--heartbeat_interval=300ms"]),
            node("127.0.0.2", "64MB", &["--heartbeat_interval=300ms"]),
        ],
        &[],
    )?;
    let s = Arc::new(client(&c.master_addr())?);
    let load = Load::start(
        s.clone(),
        "mr",
        0,
        ctx.pick(64 << 10, 256 << 10),
        replicas(2),
    );
    anyhow::ensure!(
        load.wait_acked(ctx.pick(20, 100), PATIENCE),
        "no load before the kill"
    );
    let killed = Instant::now();
    c.kill_master();
    c.restart_master()
        .map_err(|e| anyhow::anyhow!("master did not restart: {e}"))?;
    let n = load.acked_count();
    let mut d = Done::default();
    if !load.wait_acked(n + ctx.pick(10, 50), PATIENCE) {
        d.problems
            .push("puts did not resume after the restart".into());
    }
    let acked = load.stop();
    let before: Vec<_> = acked.iter().filter(|a| a.at < killed).cloned().collect();
    d.tally = verify(&s, &before, PATIENCE);
    d.recover = killed.elapsed();
    crate::harness::check_no_evictions(&c.metrics_addr(), &mut d);
    let after: Vec<_> = acked.iter().filter(|a| a.at >= killed).cloned().collect();
    d.tally.add(verify(&s, &after, PATIENCE));
    Ok(Run::Done(d))
}
