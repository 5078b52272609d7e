//! `mc-topo`: what `mc-topology` finds on a machine (NUMA nodes with their cores and SMT
//! siblings, NICs with their NUMA node) and the core plan a store node would run on, as
//! text or as JSON (`--json`: keys `numa_nodes`, `nics`, `nic_selection`, `plan`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use mc_topology::{CorePlan, CoreSpec, NicChoice, NicConfig, Topology};
use serde_json::{Value, json};

/// `mc-topo` flags. NICs are chosen as a store node chooses them: `MC_MS_AUTO_DISC`,
/// `MC_MS_FILTERS` and `--device_name`.
#[derive(Debug, Parser)]
#[command(
    name = "mc-topo",
    version,
    about = "Print the NUMA nodes, cores, NICs and core plan a mooncake-rs store node sees"
)]
pub struct Cli {
    /// Where sysfs is; point it at a copy of another machine's tree to plan for that machine.
    #[arg(long = "sysfs_root", default_value = mc_topology::SYSFS_ROOT)]
    pub sysfs_root: PathBuf,
    /// The store node's `--cores`: `auto`, a shard count or a core list.
    #[arg(long = "cores", default_value = "auto")]
    pub cores: CoreSpec,
    /// The store node's `--device_name` (used when `MC_MS_AUTO_DISC=0`).
    #[arg(long = "device_name", alias = "rdma_devices", default_value = "")]
    pub device_name: String,
    /// Print JSON instead of text.
    #[arg(long = "json")]
    pub json: bool,
}

/// Discovers, plans and renders; the text `mc-topo` prints.
pub fn run(cli: &Cli) -> Result<String> {
    let topo = Topology::discover(&cli.sysfs_root)?;
    let nic_cfg = NicConfig::from_env(vec![cli.device_name.clone()])?;
    let choice = mc_topology::select_nics(&topo.nics, &nic_cfg)?;
    // On this machine the process's affinity mask applies; another machine's tree is
    // planned on all its cores.
    let available: Vec<usize> = if cli.sysfs_root == std::path::Path::new(mc_topology::SYSFS_ROOT) {
        mc_topology::online_cpus()
    } else {
        topo.cores.iter().map(|c| c.id).collect()
    };
    let plan = mc_topology::plan_for(&cli.cores, &available, &topo, &choice)
        .context("planning the shards")?;
    if cli.json {
        Ok(serde_json::to_string_pretty(&to_json(&topo, &choice, &plan))? + "\n")
    } else {
        Ok(to_text(&topo, &choice, &plan))
    }
}

/// The JSON document of `--json`.
pub fn to_json(topo: &Topology, choice: &NicChoice, plan: &CorePlan) -> Value {
    let nodes: Vec<Value> = topo
        .numa_nodes
        .iter()
        .map(|n| {
            let mut groups: Vec<Vec<usize>> = n
                .cores
                .iter()
                .filter_map(|&c| topo.core(c).map(|k| k.siblings.clone()))
                .collect();
            groups.dedup();
            json!({ "id": n.id, "cores": n.cores, "smt_siblings": groups })
        })
        .collect();
    let nics: Vec<Value> = topo
        .nics
        .iter()
        .map(|n| {
            json!({
                "name": n.name,
                "kind": n.kind.as_str(),
                "numa_node": n.numa_node,
                "physical": n.physical,
                "netdevs": n.netdevs,
                "chosen": choice.nics.iter().any(|c| c.name == n.name),
            })
        })
        .collect();
    let shards: Vec<Value> = plan
        .shards
        .iter()
        .map(|s| json!({ "index": s.index, "core": s.core, "numa_node": s.numa_node }))
        .collect();
    json!({
        "sysfs_root": topo.sysfs_root.display().to_string(),
        "numa_nodes": nodes,
        "nics": nics,
        "nic_selection": choice.how,
        "plan": { "shards": shards, "reason": plan.reason },
    })
}

/// The text form: one line per node, NIC and shard.
fn to_text(topo: &Topology, choice: &NicChoice, plan: &CorePlan) -> String {
    let mut out = format!("sysfs: {}\n", topo.sysfs_root.display());
    for n in &topo.numa_nodes {
        out += &format!("NUMA node {}: cores {}\n", n.id, list(&n.cores));
    }
    for n in &topo.nics {
        let node = n.numa_node.map_or("?".to_owned(), |v| v.to_string());
        let chosen = if choice.nics.iter().any(|c| c.name == n.name) {
            " (chosen)"
        } else {
            ""
        };
        let on = if n.netdevs.is_empty() {
            String::new()
        } else {
            format!(" [{}]", n.netdevs.join(","))
        };
        out += &format!(
            "NIC {} {}{on}: NUMA node {node}{}{chosen}\n",
            n.kind.as_str(),
            n.name,
            if n.physical { "" } else { ", virtual" }
        );
    }
    out += &format!("NICs chosen: {}\n", choice.how);
    for s in &plan.shards {
        let core = s
            .core
            .map_or("unpinned".to_owned(), |c| format!("core {c}"));
        let node = s.numa_node.map_or("any".to_owned(), |v| v.to_string());
        out += &format!("shard {}: {core}, memory on NUMA node {node}\n", s.index);
    }
    out += &format!("plan: {}\n", plan.reason);
    out
}

/// `[0, 1, 2]` → `0,1,2`.
fn list(cores: &[usize]) -> String {
    cores
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}
