//! `bind_to_numa_node(node)`, as Mooncake's: runs the calling thread on the CPUs of a NUMA
//! node and prefers that node for its memory, falling back to others (non-strict). Like
//! upstream it only warns when NUMA is unavailable or the node is unknown.

use pyo3::prelude::*;

/// The CPUs of `node`, from sysfs (`/sys/devices/system/node/nodeN/cpulist`).
fn node_cpus(node: i32) -> Option<Vec<usize>> {
    let list =
        std::fs::read_to_string(format!("/sys/devices/system/node/node{node}/cpulist")).ok()?;
    let mut cpus = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
        cpus.extend(a..=b);
    }
    Some(cpus)
}

/// Pins the calling thread to `cpus`.
fn set_affinity(cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: an all-zero cpu_set_t is the empty set, a valid value of this plain C struct.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
        // SAFETY: `c` is below CPU_SETSIZE, so CPU_SET stays inside `set`.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: `set` is an initialised cpu_set_t of the size passed; pid 0 is this thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Prefers `node` for this thread's future allocations (MPOL_PREFERRED: others when full).
fn prefer_node(node: i32) -> std::io::Result<()> {
    const MPOL_PREFERRED: libc::c_long = 1;
    let bits = libc::c_ulong::BITS as i32;
    let mut mask = vec![0 as libc::c_ulong; (node / bits + 1) as usize];
    mask[(node / bits) as usize] |= 1 << (node % bits);
    let maxnode = (mask.len() as libc::c_ulong) * libc::c_ulong::from(bits.unsigned_abs()) + 1;
    // SAFETY: set_mempolicy reads `maxnode - 1` bits from `mask`, which holds that many
    // (mask.len() words); no memory is written.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_set_mempolicy,
            MPOL_PREFERRED,
            mask.as_ptr(),
            maxnode,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Binds the calling thread (CPUs and preferred memory) to NUMA node `node`.
#[pyfunction]
pub fn bind_to_numa_node(node: i32) {
    let Some(cpus) = (node >= 0)
        .then(|| node_cpus(node))
        .flatten()
        .filter(|c| !c.is_empty())
    else {
        tracing::warn!("bind_to_numa_node({node}): no such NUMA node with CPUs; binding skipped");
        return;
    };
    if let Err(e) = set_affinity(&cpus) {
        tracing::warn!("bind_to_numa_node({node}): sched_setaffinity failed: {e}");
    }
    if let Err(e) = prefer_node(node) {
        tracing::warn!("bind_to_numa_node({node}): set_mempolicy failed: {e}");
    }
}
