//! [`Topology::discover`]: NUMA nodes, their cores and SMT siblings, and the NICs, read from
//! sysfs under a configurable root.
//!
//! Sources (relative to the root, `/sys` on a real machine):
//! - `devices/system/cpu/online`: the online cores;
//! - `devices/system/cpu/cpu<N>/topology/thread_siblings_list` and `physical_package_id`:
//!   the hardware threads sharing core N's physical core, and its socket;
//! - `devices/system/node/node<N>/cpulist`: the cores of NUMA node N (a kernel without NUMA
//!   has no such directory: then every core is on node 0);
//! - `class/net/*` and `class/infiniband/*`: the NICs ([`crate::nics`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::nics::{Nic, discover_nics};
use crate::sysfs::{at, list_dir, numbered, read_cpu_list, read_int};

/// One NUMA node and the online cores on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumaNode {
    /// The node's number (`node<N>` in sysfs).
    pub id: usize,
    /// Its online cores, ascending (empty for a memory-only node).
    pub cores: Vec<usize>,
}

/// One online core (hardware thread).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Core {
    /// The core number the kernel and `sched_setaffinity` use.
    pub id: usize,
    /// The NUMA node it is on.
    pub numa_node: usize,
    /// Its socket (`physical_package_id`; 0 when the kernel does not say).
    pub package: usize,
    /// The online hardware threads of its physical core, itself included, ascending.
    pub siblings: Vec<usize>,
}

/// What a machine has: NUMA nodes, cores and NICs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// The sysfs root it was read from.
    pub sysfs_root: PathBuf,
    /// NUMA nodes by number.
    pub numa_nodes: Vec<NumaNode>,
    /// Online cores by number.
    pub cores: Vec<Core>,
    /// Network devices and RDMA devices, netdevs first, each by name.
    pub nics: Vec<Nic>,
}

impl Topology {
    /// Reads the topology under `sysfs_root` ([`SYSFS_ROOT`](crate::SYSFS_ROOT) on a real
    /// machine).
    ///
    /// # Errors
    /// [`Error::Sysfs`] when a file exists but cannot be read or parsed, or when the root
    /// lists no online cores.
    pub fn discover(sysfs_root: &Path) -> Result<Topology, Error> {
        let online_path = at(sysfs_root, "devices/system/cpu/online");
        let online = read_cpu_list(&online_path)?.unwrap_or_default();
        if online.is_empty() {
            return Err(Error::Sysfs {
                path: online_path.display().to_string(),
                reason: "no online cores listed (is this a sysfs tree?)".into(),
            });
        }
        let numa_nodes = discover_nodes(sysfs_root, &online)?;
        let node_of: BTreeMap<usize, usize> = numa_nodes
            .iter()
            .flat_map(|n| n.cores.iter().map(move |&c| (c, n.id)))
            .collect();
        let mut cores = Vec::with_capacity(online.len());
        for &id in &online {
            let dir = at(sysfs_root, &format!("devices/system/cpu/cpu{id}/topology"));
            let mut siblings =
                read_cpu_list(&dir.join("thread_siblings_list"))?.unwrap_or_else(|| vec![id]);
            siblings.retain(|c| online.binary_search(c).is_ok());
            if !siblings.contains(&id) {
                siblings.push(id);
                siblings.sort_unstable();
            }
            let package = read_int(&dir.join("physical_package_id"))?
                .and_then(|p| usize::try_from(p).ok())
                .unwrap_or(0);
            cores.push(Core {
                id,
                numa_node: node_of.get(&id).copied().unwrap_or(0),
                package,
                siblings,
            });
        }
        let nics = discover_nics(sysfs_root)?;
        Ok(Topology {
            sysfs_root: sysfs_root.to_path_buf(),
            numa_nodes,
            cores,
            nics,
        })
    }

    /// The NUMA node of `core`, if it is an online core.
    pub fn node_of(&self, core: usize) -> Option<usize> {
        self.core(core).map(|c| c.numa_node)
    }

    /// The online core `id`.
    pub fn core(&self, id: usize) -> Option<&Core> {
        self.cores
            .binary_search_by_key(&id, |c| c.id)
            .ok()
            .map(|i| &self.cores[i])
    }

    /// The one NUMA node every core is on, when the machine has a single node with cores.
    pub fn single_node(&self) -> Option<usize> {
        let mut with_cores = self.numa_nodes.iter().filter(|n| !n.cores.is_empty());
        match (with_cores.next(), with_cores.next()) {
            (Some(n), None) => Some(n.id),
            _ => None,
        }
    }
}

/// The NUMA nodes under `root`, each with its online cores; one node 0 holding every online
/// core when the kernel lists no nodes. Online cores no node claims go to node 0.
fn discover_nodes(root: &Path, online: &[usize]) -> Result<Vec<NumaNode>, Error> {
    let dir = at(root, "devices/system/node");
    let mut nodes = Vec::new();
    for name in list_dir(&dir)? {
        let Some(id) = numbered(&name, "node") else {
            continue;
        };
        let mut cores = read_cpu_list(&dir.join(&name).join("cpulist"))?.unwrap_or_default();
        cores.retain(|c| online.binary_search(c).is_ok());
        nodes.push(NumaNode { id, cores });
    }
    nodes.sort_by_key(|n| n.id);
    if nodes.is_empty() {
        return Ok(vec![NumaNode {
            id: 0,
            cores: online.to_vec(),
        }]);
    }
    let claimed: Vec<usize> = nodes.iter().flat_map(|n| n.cores.clone()).collect();
    let orphans: Vec<usize> = online
        .iter()
        .copied()
        .filter(|c| !claimed.contains(c))
        .collect();
    if !orphans.is_empty() {
        tracing::warn!(
            ?orphans,
            "online cores on no NUMA node; counting them on node 0"
        );
        match nodes.iter_mut().find(|n| n.id == 0) {
            Some(n) => {
                n.cores.extend(orphans);
                n.cores.sort_unstable();
            }
            None => nodes.insert(
                0,
                NumaNode {
                    id: 0,
                    cores: orphans,
                },
            ),
        }
    }
    Ok(nodes)
}
