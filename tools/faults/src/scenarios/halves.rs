//! One half of a store node killed under a client's feet (`docs/node-process.md`): the
//! agent process (the shards keep serving) or the data-plane process (the supervisor
//! restarts it over the same memory).

use std::time::{Duration, Instant};

use mc_cluster::children::child_with_first_arg;
use mc_cluster::detached::ProcessId;

use super::{Ctx, PATIENCE};
use crate::harness::{Done, Run, client, node, put_many, replicas, start, wait_until};
use crate::ledger::{Tally, verify};

/// The pid of node 0's child `role`, other than `old`.
fn role_pid(c: &mc_cluster::LocalCluster, role: &str, old: Option<u32>) -> Option<u32> {
    let node = c.node_pid(0)?;
    child_with_first_arg(node, role).filter(|&p| Some(p) != old)
}

fn kill9(pid: u32) -> anyhow::Result<()> {
    let killed = ProcessId::of(pid).is_some_and(|p| p.signal(libc::SIGKILL));
    anyhow::ensure!(killed, "kill -9 {pid} failed");
    Ok(())
}

/// One node; its agent process is SIGKILLed while a reader reads every object over and
/// over. Target: no read fails or returns other bytes during the restart; the new agent
/// serves (puts land). `recover_s`: from the kill until the supervisor's new agent is up.
pub fn kill_agent(ctx: &Ctx) -> anyhow::Result<Run> {
    let c = start(vec![node("127.0.0.1", "64MB", &[])], &[])?;
    let s = client(&c.master_addr())?;
    let acked = put_many(&s, "ka", 0, ctx.pick(20, 100), 64 << 10, &replicas(1));
    let old = role_pid(&c, "agent", None).ok_or_else(|| anyhow::anyhow!("no agent child"))?;
    kill9(old)?;
    let killed = Instant::now();
    let mut d = Done::default();
    let mut back: Option<Duration> = None;
    let mut failed = 0u64;
    while back.is_none() || killed.elapsed() < Duration::from_secs(2) {
        for a in &acked {
            match s.get(&a.key) {
                Ok(v) if v == a.value() => {}
                Ok(_) => d.tally.wrong += 1,
                Err(_) => failed += 1,
            }
        }
        if back.is_none() && role_pid(&c, "agent", Some(old)).is_some() {
            back = Some(killed.elapsed());
        }
        anyhow::ensure!(
            killed.elapsed() < PATIENCE,
            "no new agent within {PATIENCE:?}"
        );
    }
    if failed > 0 {
        d.problems
            .push(format!("{failed} reads failed while the agent restarted"));
    }
    d.recover = back.unwrap_or_default();
    let served = wait_until(PATIENCE, || {
        s.put("ka-after", b"after", &replicas(1)).is_ok()
    });
    if served.is_none() {
        d.problems.push("the new agent never took puts".into());
    }
    d.tally.add(verify(&s, &acked, PATIENCE));
    Ok(Run::Done(d))
}

/// One node; its data-plane process is SIGKILLed. Target: every object readable again,
/// byte-exact (the new data plane maps the same memory), and new puts land. `recover_s`:
/// from the kill until every object was read back.
pub fn kill_data_plane(ctx: &Ctx) -> anyhow::Result<Run> {
    let c = start(vec![node("127.0.0.1", "64MB", &[])], &[])?;
    let s = client(&c.master_addr())?;
    let acked = put_many(&s, "kd", 0, ctx.pick(20, 100), 64 << 10, &replicas(1));
    let old =
        role_pid(&c, "dataplane", None).ok_or_else(|| anyhow::anyhow!("no data-plane child"))?;
    kill9(old)?;
    let killed = Instant::now();
    let mut tally = Tally::default();
    let mut pending: Vec<&crate::ledger::Acked> = acked.iter().collect();
    while !pending.is_empty() && killed.elapsed() < PATIENCE {
        pending.retain(|a| match s.get(&a.key) {
            Ok(v) => {
                if v != a.value() {
                    tally.wrong += 1;
                }
                false
            }
            Err(_) => true,
        });
        std::thread::sleep(Duration::from_millis(2));
    }
    tally.lost = pending.len() as u64;
    let mut d = Done {
        tally,
        recover: killed.elapsed(),
        ..Done::default()
    };
    if role_pid(&c, "dataplane", Some(old)).is_none() {
        d.problems.push("no new data-plane process".into());
    }
    if wait_until(PATIENCE, || {
        s.put("kd-after", b"after", &replicas(1)).is_ok()
    })
    .is_none()
    {
        d.problems.push("no put landed after the restart".into());
    }
    Ok(Run::Done(d))
}
