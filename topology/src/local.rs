//! [`plan_for`]: the core plan with the machine's topology in view. Shards go on cores of
//! the NUMA nodes the chosen NICs sit on, one per physical core, and each shard learns the
//! node its segment memory is bound to.

use crate::discover::Topology;
use crate::error::Error;
use crate::nics::NicChoice;
use crate::plan::{AUTO_RESERVED_CORES, AUTO_SMALL_MACHINE_CORES, CorePlan, pinned, plan};
use crate::spec::{CoreSpec, MAX_SHARDS, format_core_list};

/// Plans the shards for `spec` on the `available` cores of `topo`, near the NICs of
/// `choice`. The rules of [`plan`] stay (small machines run one unpinned shard; the lowest
/// cores are kept for the agent, REST and the OS), with locality on top:
///
/// - `auto` (more than 4 cores): one shard per physical core of the NICs' NUMA nodes (one
///   hardware thread each, its SMT siblings left to the scheduler). The two cores kept
///   free are the lowest cores off those nodes when there are two, else the lowest cores.
/// - a count `n` (with a core to spare): pinned to the NICs' nodes first, first threads of
///   physical cores before their siblings, then the other nodes; the core kept free is the
///   lowest off the NICs' nodes when there is one.
/// - a core list: as listed; the reason names listed cores off the NICs' nodes.
///
/// Without NICs of known NUMA node every node counts as local. Every placement gets the
/// NUMA node of its core; unpinned shards get the NICs' node when there is one, or the
/// machine's only node, else none.
pub fn plan_for(
    spec: &CoreSpec,
    available: &[usize],
    topo: &Topology,
    choice: &NicChoice,
) -> Result<CorePlan, Error> {
    let mut cores = available.to_vec();
    cores.sort_unstable();
    cores.dedup();
    if cores.is_empty() {
        return Err(Error::NoCores);
    }
    let local_nodes = choice.numa_nodes();
    let place = Locality {
        topo,
        local_nodes: &local_nodes,
    };
    let mut out = match spec {
        CoreSpec::Auto if cores.len() > AUTO_SMALL_MACHINE_CORES => place.auto(&cores)?,
        CoreSpec::Count(n) if (1..=MAX_SHARDS).contains(n) && *n < cores.len() => {
            place.count(*n, &cores)
        }
        CoreSpec::List(list) => {
            let mut p = plan(spec, &cores)?;
            let off: Vec<usize> = list
                .iter()
                .copied()
                .filter(|&c| !place.is_local(c))
                .collect();
            if !off.is_empty() {
                p.reason.push_str(&format!(
                    "; cores {} are not on the NICs' NUMA node(s)",
                    format_core_list(&off)
                ));
            }
            p
        }
        _ => plan(spec, &cores)?,
    };
    let unpinned_node = match local_nodes.as_slice() {
        [one] => Some(*one),
        _ => topo.single_node(),
    };
    for shard in &mut out.shards {
        shard.numa_node = match shard.core {
            Some(core) => topo.node_of(core),
            None => unpinned_node,
        };
    }
    out.reason = format!("{}: {}", nic_phrase(choice, &local_nodes), out.reason);
    tracing::debug!(%spec, shards = out.shards.len(), reason = %out.reason, "core plan");
    Ok(out)
}

/// Which cores are near the chosen NICs.
struct Locality<'a> {
    topo: &'a Topology,
    /// NUMA nodes of the chosen NICs; empty: every node is local.
    local_nodes: &'a [usize],
}

impl Locality<'_> {
    fn is_local(&self, core: usize) -> bool {
        self.local_nodes.is_empty()
            || self
                .topo
                .node_of(core)
                .is_some_and(|n| self.local_nodes.contains(&n))
    }

    /// The position of `core` among its SMT siblings: 0 for a physical core's first thread.
    fn thread_rank(&self, core: usize) -> usize {
        self.topo
            .core(core)
            .and_then(|c| c.siblings.iter().position(|&s| s == core))
            .unwrap_or(0)
    }

    /// The siblings of `core`, itself included.
    fn siblings(&self, core: usize) -> Vec<usize> {
        self.topo
            .core(core)
            .map_or_else(|| vec![core], |c| c.siblings.clone())
    }

    /// `auto` on more than [`AUTO_SMALL_MACHINE_CORES`] sorted, distinct cores.
    fn auto(&self, cores: &[usize]) -> Result<CorePlan, Error> {
        let (mut kept, mut shard_cores, mut smt_skipped) = self.auto_cores(cores);
        let mut note = String::new();
        if shard_cores.is_empty() {
            note = format!(
                "; no core near the NICs is left once cores {} are kept, so the shards ignore locality",
                format_core_list(&kept)
            );
            let anywhere = Locality {
                topo: self.topo,
                local_nodes: &[],
            };
            (kept, shard_cores, smt_skipped) = anywhere.auto_cores(cores);
        }
        if shard_cores.is_empty() {
            return plan(&CoreSpec::Auto, cores);
        }
        let capped = shard_cores.len() > MAX_SHARDS;
        shard_cores.truncate(MAX_SHARDS);
        let mut reason = format!(
            "{} cores available: one shard pinned to each of cores {} (one per physical core); cores {} kept for the agent, REST and the OS",
            cores.len(),
            format_core_list(&shard_cores),
            format_core_list(&kept)
        );
        if smt_skipped > 0 {
            reason.push_str(&format!(
                "; {smt_skipped} SMT sibling(s) left to the scheduler"
            ));
        }
        if capped {
            reason.push_str(&format!("; capped at {MAX_SHARDS} shards"));
        }
        reason.push_str(&note);
        Ok(CorePlan {
            shards: pinned(&shard_cores),
            reason,
        })
    }

    /// For `auto`: the cores kept free (the lowest two off the NICs' nodes when there are
    /// two, else the lowest two), the shard cores (local, one hardware thread per physical
    /// core) and how many SMT siblings were passed over.
    fn auto_cores(&self, cores: &[usize]) -> (Vec<usize>, Vec<usize>, usize) {
        let remote: Vec<usize> = cores
            .iter()
            .copied()
            .filter(|&c| !self.is_local(c))
            .collect();
        let kept: Vec<usize> = if remote.len() >= AUTO_RESERVED_CORES {
            remote[..AUTO_RESERVED_CORES].to_vec()
        } else {
            cores[..AUTO_RESERVED_CORES].to_vec()
        };
        let mut shard_cores: Vec<usize> = Vec::new();
        let mut smt_skipped = 0;
        for &c in cores {
            if !self.is_local(c) || kept.contains(&c) {
                continue;
            }
            if self.siblings(c).iter().any(|s| shard_cores.contains(s)) {
                smt_skipped += 1;
                continue;
            }
            shard_cores.push(c);
        }
        (kept, shard_cores, smt_skipped)
    }

    /// `n` shards, pinned, on sorted, distinct cores of which at least `n + 1` exist.
    fn count(&self, n: usize, cores: &[usize]) -> CorePlan {
        let kept = cores
            .iter()
            .copied()
            .find(|&c| !self.is_local(c))
            .unwrap_or(cores[0]);
        let mut ranked: Vec<usize> = cores.iter().copied().filter(|&c| c != kept).collect();
        ranked.sort_by_key(|&c| (!self.is_local(c), self.thread_rank(c), c));
        ranked.truncate(n);
        let local = ranked.iter().filter(|&&c| self.is_local(c)).count();
        CorePlan {
            reason: format!(
                "{n} shards pinned to cores {} ({local} near the NICs); core {kept} left for the agent, REST and the OS",
                format_core_list(&ranked)
            ),
            shards: pinned(&ranked),
        }
    }
}

/// `NICs mlx5_0,mlx5_1 (discovered RDMA devices) on NUMA node(s) 1`, for the reason.
fn nic_phrase(choice: &NicChoice, local_nodes: &[usize]) -> String {
    let names: Vec<&str> = choice.nics.iter().map(|n| n.name.as_str()).collect();
    if names.is_empty() {
        return format!("no NICs ({}), so no NUMA preference", choice.how);
    }
    if local_nodes.is_empty() {
        return format!(
            "NICs {} ({}) on no known NUMA node, so no NUMA preference",
            names.join(","),
            choice.how
        );
    }
    format!(
        "NICs {} ({}) on NUMA node(s) {}",
        names.join(","),
        choice.how,
        format_core_list(local_nodes)
    )
}
