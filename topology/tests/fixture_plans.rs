//! Discovery and core plans against synthetic sysfs trees (`tests/fixtures/`): this machine
//! has one NUMA node, so two-socket behaviour is tested on a tree shaped like a real one.

use std::path::PathBuf;

use mc_topology::{
    CorePlan, CoreSpec, Error, NicChoice, NicConfig, NicKind, Topology, plan_for, select_nics,
};
use proptest::prelude::*;

fn fixture(name: &str) -> Topology {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    Topology::discover(&root).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

fn choose(topo: &Topology, auto: Option<&str>, filters: &str, devices: &[&str]) -> NicChoice {
    let cfg = NicConfig::from_values(
        auto,
        filters,
        devices.iter().map(|d| d.to_string()).collect(),
    )
    .unwrap();
    select_nics(&topo.nics, &cfg).unwrap()
}

fn all_cores(topo: &Topology) -> Vec<usize> {
    topo.cores.iter().map(|c| c.id).collect()
}

fn cores_of(plan: &CorePlan) -> Vec<Option<usize>> {
    plan.shards.iter().map(|s| s.core).collect()
}

fn nodes_of(plan: &CorePlan) -> Vec<Option<usize>> {
    plan.shards.iter().map(|s| s.numa_node).collect()
}

fn pinned(cores: &[usize]) -> Vec<Option<usize>> {
    cores.iter().map(|&c| Some(c)).collect()
}

#[test]
fn two_socket_tree_is_read_whole() {
    let t = fixture("two-socket");
    let nodes: Vec<(usize, Vec<usize>)> = t
        .numa_nodes
        .iter()
        .map(|n| (n.id, n.cores.clone()))
        .collect();
    assert_eq!(
        nodes,
        vec![
            (0, vec![0, 1, 2, 3, 8, 9, 10, 11]),
            (1, vec![4, 5, 6, 7, 12, 13, 14, 15])
        ]
    );
    assert_eq!(t.cores.len(), 16);
    let c13 = t.core(13).unwrap();
    assert_eq!((c13.numa_node, c13.package), (1, 1));
    assert_eq!(c13.siblings, vec![5, 13]);
    assert_eq!(t.core(2).unwrap().siblings, vec![2, 10]);
    assert_eq!(t.single_node(), None);

    let nics: Vec<(&str, NicKind, Option<usize>, bool)> = t
        .nics
        .iter()
        .map(|n| (n.name.as_str(), n.kind, n.numa_node, n.physical))
        .collect();
    assert_eq!(
        nics,
        vec![
            ("docker0", NicKind::Netdev, None, false),
            ("ens1f0", NicKind::Netdev, Some(0), true),
            ("ens1f1", NicKind::Netdev, Some(0), true),
            ("ens2f0", NicKind::Netdev, Some(1), true),
            ("ens2f1", NicKind::Netdev, Some(1), true),
            ("eth0", NicKind::Netdev, None, true),
            ("mlx5_0", NicKind::Rdma, Some(0), true),
            ("mlx5_1", NicKind::Rdma, Some(0), true),
            ("mlx5_2", NicKind::Rdma, Some(1), true),
            ("mlx5_3", NicKind::Rdma, Some(1), true),
        ]
    );
    let mlx5_2 = t.nics.iter().find(|n| n.name == "mlx5_2").unwrap();
    assert_eq!(mlx5_2.netdevs, vec!["ens2f0"]);
}

#[test]
fn nic_choice_follows_mooncake_env_rules() {
    let t = fixture("two-socket");
    let names = |c: &NicChoice| c.nics.iter().map(|n| n.name.clone()).collect::<Vec<_>>();

    let c = choose(&t, None, "", &[]);
    assert_eq!(names(&c), ["mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3"]);
    assert_eq!(c.numa_nodes(), vec![0, 1]);

    let c = choose(&t, Some("1"), "mlx5_3,mlx5_2", &[]);
    assert_eq!(names(&c), ["mlx5_3", "mlx5_2"]);
    assert_eq!(c.numa_nodes(), vec![1]);
    assert!(c.how.contains("MC_MS_FILTERS"), "{}", c.how);

    // Filters name netdevs too; a device given twice counts once.
    let c = choose(&t, Some("1"), "ens1f0,ens1f0", &[]);
    assert_eq!(names(&c), ["ens1f0"]);

    // MC_MS_AUTO_DISC=0: the configured list, filters ignored.
    let c = choose(&t, Some("0"), "mlx5_2", &["mlx5_0"]);
    assert_eq!(names(&c), ["mlx5_0"]);
    assert_eq!(c.numa_nodes(), vec![0]);
    let c = choose(&t, Some("0"), "", &[]);
    assert!(c.nics.is_empty());

    let cfg = NicConfig::from_values(Some("1"), "mlx5_9", vec![]).unwrap();
    let e = select_nics(&t.nics, &cfg).unwrap_err();
    assert!(
        matches!(&e, Error::NoSuchNic { name, .. } if name == "mlx5_9"),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("MC_MS_FILTERS") && msg.contains("mlx5_3"),
        "{msg}"
    );
    let cfg = NicConfig::from_values(Some("0"), "", vec!["ib7".into()]).unwrap();
    let msg = select_nics(&t.nics, &cfg).unwrap_err().to_string();
    assert!(
        msg.contains("--device_name") && msg.contains("ib7"),
        "{msg}"
    );

    // Without RDMA devices, the physical netdevs are chosen.
    let netdevs: Vec<_> = t
        .nics
        .iter()
        .filter(|n| n.kind == NicKind::Netdev)
        .cloned()
        .collect();
    let c = select_nics(&netdevs, &NicConfig::default()).unwrap();
    assert_eq!(names(&c), ["ens1f0", "ens1f1", "ens2f0", "ens2f1", "eth0"]);
}

#[test]
fn auto_puts_one_shard_per_physical_core_of_the_filtered_nics_node() {
    let t = fixture("two-socket");
    let c = choose(&t, Some("1"), "mlx5_2,mlx5_3", &[]);
    let p = plan_for(&CoreSpec::Auto, &all_cores(&t), &t, &c).unwrap();
    assert_eq!(cores_of(&p), pinned(&[4, 5, 6, 7]));
    assert_eq!(nodes_of(&p), vec![Some(1); 4]);
    assert!(p.reason.contains("NICs mlx5_2,mlx5_3"), "{}", p.reason);
    assert!(p.reason.contains("NUMA node(s) 1"), "{}", p.reason);
    assert!(p.reason.contains("cores 0-1 kept"), "{}", p.reason);
    assert!(p.reason.contains("4 SMT sibling(s)"), "{}", p.reason);

    // Node 0's NICs: the cores kept free move to node 1, the shards to node 0.
    let c = choose(&t, Some("1"), "mlx5_0", &[]);
    let p = plan_for(&CoreSpec::Auto, &all_cores(&t), &t, &c).unwrap();
    assert_eq!(cores_of(&p), pinned(&[0, 1, 2, 3]));
    assert_eq!(nodes_of(&p), vec![Some(0); 4]);
    assert!(p.reason.contains("cores 4-5 kept"), "{}", p.reason);
}

#[test]
fn auto_with_nics_on_both_nodes_uses_both() {
    let t = fixture("two-socket");
    let c = choose(&t, None, "", &[]);
    let p = plan_for(&CoreSpec::Auto, &all_cores(&t), &t, &c).unwrap();
    // Cores 0-1 kept; 8 and 9 share physical cores with them, not with a shard.
    assert_eq!(cores_of(&p), pinned(&[2, 3, 4, 5, 6, 7, 8, 9]));
    assert_eq!(
        nodes_of(&p),
        [0, 0, 1, 1, 1, 1, 0, 0].map(Some).to_vec(),
        "each shard's memory on its core's node"
    );
}

#[test]
fn counts_fill_the_nics_node_first_then_siblings_then_the_other_node() {
    let t = fixture("two-socket");
    let c = choose(&t, Some("1"), "mlx5_2", &[]);
    let cores = all_cores(&t);
    let p = plan_for(&CoreSpec::Count(3), &cores, &t, &c).unwrap();
    assert_eq!(cores_of(&p), pinned(&[4, 5, 6]));
    assert!(p.reason.contains("core 0 left"), "{}", p.reason);
    let p = plan_for(&CoreSpec::Count(6), &cores, &t, &c).unwrap();
    assert_eq!(cores_of(&p), pinned(&[4, 5, 6, 7, 12, 13]));
    let p = plan_for(&CoreSpec::Count(12), &cores, &t, &c).unwrap();
    assert_eq!(
        cores_of(&p),
        pinned(&[4, 5, 6, 7, 12, 13, 14, 15, 1, 2, 3, 8])
    );
    assert_eq!(p.shards[8].numa_node, Some(0));
    assert!(p.reason.contains("(8 near the NICs)"), "{}", p.reason);

    // No spare core: unpinned, memory still on the NICs' node.
    let p = plan_for(&CoreSpec::Count(16), &cores, &t, &c).unwrap();
    assert!(p.shards.iter().all(|s| s.core.is_none()));
    assert_eq!(nodes_of(&p), vec![Some(1); 16]);
}

#[test]
fn lists_are_kept_and_cores_off_the_nics_node_are_named() {
    let t = fixture("two-socket");
    let c = choose(&t, Some("1"), "mlx5_3", &[]);
    let p = plan_for(&CoreSpec::List(vec![0, 4, 9]), &all_cores(&t), &t, &c).unwrap();
    assert_eq!(cores_of(&p), pinned(&[0, 4, 9]));
    assert_eq!(nodes_of(&p), [0, 1, 0].map(Some).to_vec());
    assert!(
        p.reason
            .contains("cores 0,9 are not on the NICs' NUMA node(s)"),
        "{}",
        p.reason
    );
}

#[test]
fn without_nics_there_is_no_preference_and_no_node_for_unpinned_shards() {
    let t = fixture("two-socket");
    let c = choose(&t, Some("0"), "", &[]);
    let p = plan_for(&CoreSpec::Auto, &all_cores(&t), &t, &c).unwrap();
    assert_eq!(cores_of(&p), pinned(&[2, 3, 4, 5, 6, 7, 8, 9]));
    assert!(p.reason.starts_with("no NICs"), "{}", p.reason);
    let p = plan_for(&CoreSpec::Count(16), &all_cores(&t), &t, &c).unwrap();
    assert_eq!(
        nodes_of(&p),
        vec![None; 16],
        "two nodes, no NIC: no binding"
    );

    // The management NIC alone has no known node.
    let c = choose(&t, Some("0"), "", &["eth0"]);
    let p = plan_for(&CoreSpec::Count(2), &all_cores(&t), &t, &c).unwrap();
    assert!(p.reason.contains("on no known NUMA node"), "{}", p.reason);
}

#[test]
fn a_restricted_affinity_mask_is_honoured() {
    let t = fixture("two-socket");
    let c = choose(&t, Some("1"), "mlx5_2", &[]);
    // Only node 0 and two node-1 cores may be used (taskset).
    let p = plan_for(&CoreSpec::Auto, &[0, 1, 2, 3, 8, 9, 5, 13], &t, &c).unwrap();
    assert_eq!(cores_of(&p), pinned(&[5]), "13 is 5's sibling");
    assert!(p.reason.contains("cores 0-1 kept"), "{}", p.reason);
    // Nothing near the NICs once cores are kept: locality is dropped, said so.
    let p = plan_for(&CoreSpec::Auto, &[0, 1, 2, 3, 8], &t, &c).unwrap();
    assert_eq!(cores_of(&p), pinned(&[2, 3, 8]));
    assert!(p.reason.contains("ignore locality"), "{}", p.reason);
    // Still one shard per physical core: 10 is 2's sibling.
    let p = plan_for(&CoreSpec::Auto, &[0, 1, 2, 10, 3], &t, &c).unwrap();
    assert_eq!(cores_of(&p), pinned(&[2, 3]));
}

#[test]
fn one_node_virtio_machine_runs_one_unpinned_shard_bound_to_node_0() {
    let t = fixture("one-node-virtio");
    assert_eq!(t.numa_nodes.len(), 1, "no node directory: one node 0");
    assert_eq!(t.numa_nodes[0].cores, vec![0, 1, 2, 3]);
    assert_eq!(t.core(2).unwrap().siblings, vec![2]);
    assert_eq!(t.nics.len(), 1, "lo is left out");
    assert_eq!(
        t.nics[0].numa_node,
        Some(0),
        "a virtio NIC takes its PCI parent's node"
    );
    let c = choose(&t, None, "", &[]);
    let p = plan_for(&CoreSpec::Auto, &all_cores(&t), &t, &c).unwrap();
    assert_eq!(cores_of(&p), vec![None]);
    assert_eq!(nodes_of(&p), vec![Some(0)]);
    assert!(p.reason.contains("NICs eth0"), "{}", p.reason);
}

#[test]
fn a_root_without_cores_is_a_clear_error() {
    let empty = std::env::temp_dir().join(format!("mc-topo-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let e = Topology::discover(&empty).unwrap_err();
    std::fs::remove_dir_all(&empty).unwrap();
    assert!(matches!(e, Error::Sysfs { .. }), "{e}");
    assert!(e.to_string().contains("no online cores"), "{e}");
}

#[test]
fn this_machine_is_discovered() {
    let t = Topology::discover(std::path::Path::new(mc_topology::SYSFS_ROOT)).unwrap();
    let mut all: Vec<usize> = t.numa_nodes.iter().flat_map(|n| n.cores.clone()).collect();
    all.sort_unstable();
    for cpu in mc_topology::online_cpus() {
        assert!(all.contains(&cpu), "core {cpu} is on no node: {t:?}");
    }
    assert!(t.nics.iter().all(|n| n.name != "lo"));
}

fn any_spec() -> impl Strategy<Value = CoreSpec> {
    prop_oneof![
        Just(CoreSpec::Auto),
        (1usize..20).prop_map(CoreSpec::Count),
        proptest::collection::hash_set(0usize..16, 1..6)
            .prop_map(|s| CoreSpec::List(s.into_iter().collect())),
    ]
}

proptest! {
    #[test]
    fn fixture_plans_are_well_formed(
        spec in any_spec(),
        mask in proptest::collection::vec(0usize..16, 1..16),
        filter in proptest::sample::subsequence(vec!["mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3"], 0..4),
    ) {
        let t = fixture("two-socket");
        let c = choose(&t, None, &filter.join(","), &[]);
        if let Ok(p) = plan_for(&spec, &mask, &t, &c) {
            let pinned: Vec<usize> = p.shards.iter().filter_map(|s| s.core).collect();
            prop_assert!(pinned.is_empty() || pinned.len() == p.shards.len());
            let mut distinct = pinned.clone();
            distinct.sort_unstable();
            distinct.dedup();
            prop_assert_eq!(distinct.len(), pinned.len());
            prop_assert!(pinned.iter().all(|c| mask.contains(c)));
            for s in &p.shards {
                if let Some(core) = s.core {
                    prop_assert_eq!(s.numa_node, t.node_of(core));
                }
            }
            if matches!(spec, CoreSpec::Auto) && pinned.len() > 1 {
                // One shard per physical core.
                for &a in &pinned {
                    let sib = &t.core(a).unwrap().siblings;
                    prop_assert!(pinned.iter().filter(|b| sib.contains(b)).count() == 1);
                }
            }
        }
    }
}
