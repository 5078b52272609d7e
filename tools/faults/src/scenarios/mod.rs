//! The scenarios, one function per row of the table, and the runner that repeats each one
//! and folds its runs into a [`Row`].

mod client;
mod garbage;
mod halves;
mod master;
mod memory;
mod node;
mod ssd;

use std::time::Duration;

use crate::harness::Run;
use crate::row::Row;

/// How a scenario is run.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Fewer values and one run each (CI).
    pub quick: bool,
    /// The binaries (and this one) were built with failpoints.
    pub failpoints: bool,
}

impl Ctx {
    /// `quick` or `full` of anything sized.
    pub fn pick<T>(&self, quick: T, full: T) -> T {
        if self.quick { quick } else { full }
    }
}

/// One scenario: a name and either a run function or why it cannot run yet.
pub struct Scenario {
    /// The row's name.
    pub name: &'static str,
    /// One run, or why it cannot run while the feature it needs has not landed.
    pub run: Result<fn(&Ctx) -> anyhow::Result<Run>, &'static str>,
}

/// Every scenario, in table order.
pub fn all() -> Vec<Scenario> {
    let s = |name, run| Scenario { name, run: Ok(run) };
    vec![
        s("kill9_node_mid_put_2_replicas", node::kill_mid_put),
        s("kill9_client_mid_put", client::kill_mid_put),
        s("sigstop_node", node::sigstop),
        s("one_way_partition_node", node::one_way_partition),
        s("memory_5x_oversubscribed", memory::oversubscribed),
        s("bitflip_segment_memory", memory::bitflip),
        s("garbage_on_every_port", garbage::every_port),
        s("out_of_range_transfers", garbage::out_of_range),
        s("shard_write_failpoints", node::shard_failpoints),
        s("kill9_leader_under_load", master::kill_leader),
        s("master_restart_no_ha", master::restart),
        s("bitflip_ssd_records", ssd::bitflip_records),
        s("disk_full_under_offload", ssd::disk_full_under_offload),
        s("forged_expired_transfers", garbage::forged_expired),
        s("kill9_node_agent", halves::kill_agent),
        s("kill9_data_plane", halves::kill_data_plane),
    ]
}

/// Runs `sc` `runs` times (stopping at the first failed run) and folds the runs.
pub fn run_scenario(sc: &Scenario, ctx: &Ctx, runs: u32) -> Row {
    let f = match sc.run {
        Ok(f) => f,
        Err(why) => return Row::skipped(sc.name, why),
    };
    let mut row = Row {
        scenario: sc.name.into(),
        runs: 0,
        lost: 0,
        wrong: 0,
        recover_s: 0.0,
        pass: true,
        skipped: None,
        why: Vec::new(),
    };
    for _ in 0..runs {
        row.runs += 1;
        // A panic in a scenario is its failure, not the suite's end (what it started is
        // killed while unwinding).
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(ctx)))
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the scenario panicked")));
        match outcome {
            Ok(Run::Skipped(why)) => return Row::skipped(sc.name, &why),
            Ok(Run::Done(r)) => {
                row.lost += r.tally.lost;
                row.wrong += r.tally.wrong;
                row.recover_s = row.recover_s.max(r.recover.as_secs_f64());
                let ok = r.tally.lost == 0 && r.tally.wrong == 0 && r.problems.is_empty();
                row.why.extend(r.problems);
                if !ok {
                    row.pass = false;
                    break;
                }
            }
            Err(e) => {
                row.pass = false;
                row.why.push(format!("{e:#}"));
                break;
            }
        }
    }
    row
}

/// Longest wait for an expected event (a put after a fault, a node back); never a target.
pub const PATIENCE: Duration = Duration::from_secs(60);
