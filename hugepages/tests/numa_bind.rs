//! `RegionOptions::numa_node`: regions bound with `mbind` report `MPOL_BIND` on their node
//! to the kernel, and a node that does not exist is refused with the fix. This machine has
//! one node, so binding to node 0 is what a one-node store node does at start.

use mc_hugepages::{Error, HugePolicy, Region, RegionOptions, policy_at};

const MIB: usize = 1 << 20;

fn opts(name: &str, numa_node: Option<usize>) -> RegionOptions {
    RegionOptions {
        name: name.into(),
        huge: HugePolicy::Never,
        numa_node,
        ..RegionOptions::default()
    }
}

#[test]
fn a_bound_region_is_mpol_bind_on_its_node_and_keeps_its_bytes() {
    let region = Region::new(8 * MIB, &opts("test-bind0", Some(0))).expect("bind to node 0");
    assert_eq!(region.numa_node(), Some(0));
    let (mode, nodes) = policy_at(region.as_ptr() as usize).unwrap();
    assert_eq!(mode, libc::MPOL_BIND, "the kernel reports the binding");
    assert_eq!(nodes, vec![0]);
    let last = region.len_bytes() - 1;
    // SAFETY: both offsets lie inside the live mapping; nothing else uses it.
    unsafe {
        region.as_ptr().write_volatile(0x5A);
        region.as_ptr().add(last).write_volatile(0xA5);
        assert_eq!(region.as_ptr().read_volatile(), 0x5A);
        assert_eq!(region.as_ptr().add(last).read_volatile(), 0xA5);
    }
    // The policy belongs to the memfd: the end of the range is bound too.
    let (mode, _) = policy_at(region.as_ptr() as usize + last).unwrap();
    assert_eq!(mode, libc::MPOL_BIND);
}

#[test]
fn an_unbound_region_keeps_the_default_policy() {
    let region = Region::new(MIB, &opts("test-nobind", None)).unwrap();
    assert_eq!(region.numa_node(), None);
    let (mode, nodes) = policy_at(region.as_ptr() as usize).unwrap();
    assert_eq!(mode, libc::MPOL_DEFAULT);
    assert!(nodes.is_empty(), "{nodes:?}");
}

#[test]
fn a_missing_node_is_refused_with_the_fix() {
    let missing = (0..1024)
        .rev()
        .find(|n| !std::path::Path::new(&format!("/sys/devices/system/node/node{n}")).exists())
        .expect("some node number is unused");
    for node in [missing, 5000] {
        let err = Region::new(MIB, &opts("test-bind-missing", Some(node))).unwrap_err();
        assert!(
            matches!(err, Error::Bind { node: n, .. } if n == node),
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&format!("NUMA node {node}")), "{msg}");
        assert!(msg.contains("test-bind-missing"), "{msg}");
    }
}
