//! The mmap arena end to end: a store node started with `--mmap_arena_pool_size`
//! (`MC_MMAP_ARENA_POOL_SIZE`) serves runtime mounts from it, shows it in `/metrics`, maps
//! a mount of its own when the arena is full, and gets the memory back on unmount.

use std::time::{Duration, Instant};

use mc_agent::StoreConfig;
use mc_agent::node;
use mc_cluster::{ClusterSpec, LocalCluster, probe};
use mc_schema::agent::SegmentKind;

const MIB: u64 = 1 << 20;

fn config(c: &LocalCluster, extra: &[&str]) -> StoreConfig {
    let mut args = vec![
        "mooncake_store".to_string(),
        format!("--master_server={}", c.master_addr()),
        "--local_hostname=127.0.0.1".into(),
        "--rest_host=127.0.0.1".into(),
        "--port=0".into(),
        "--cores=1".into(),
        "--global_segment_size=16MB".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    StoreConfig::try_from_args(args).expect("flags parse")
}

/// The value of an unlabelled gauge in the node's `/metrics`.
fn gauge(node: &node::NodeHandle, name: &str) -> u64 {
    let r = probe::http_get(
        &node.rest_addr().to_string(),
        "/metrics",
        Duration::from_secs(5),
    )
    .unwrap();
    let line = r
        .body
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} missing from\n{}", r.body));
    line[name.len() + 1..].trim().parse::<f64>().unwrap() as u64
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn runtime_mounts_draw_from_the_arena_and_give_it_back() {
    let c = LocalCluster::start(ClusterSpec::with_nodes(0)).expect("master starts");
    let node = node::start(config(&c, &["--mmap_arena_pool_size=64MB"])).expect("node starts");
    wait_until("the first segment to mount", || {
        node.mounted_segments() == 1
    });
    assert_eq!(gauge(&node, "mc_node_arena_pool_bytes"), 64 * MIB);
    assert_eq!(
        gauge(&node, "mc_node_arena_used_bytes"),
        0,
        "start-up segments map their own"
    );

    let a = node.mount(40 * MIB).expect("mount from the arena");
    assert_eq!(a.size_bytes, 40 * MIB);
    assert_eq!(gauge(&node, "mc_node_arena_used_bytes"), 40 * MIB);
    // 24 MiB are left: a 32 MiB mount maps memory of its own and still mounts.
    let b = node.mount(32 * MIB).expect("mount beside the arena");
    assert_eq!(b.size_bytes, 32 * MIB);
    assert_eq!(gauge(&node, "mc_node_arena_used_bytes"), 40 * MIB);
    wait_until("all three segments to mount", || {
        node.mounted_segments() == 3
    });

    node.unmount(vec![a.segment_id], SegmentKind::Allocated, Duration::ZERO)
        .expect("unmount");
    wait_until("the arena to get its memory back", || {
        gauge(&node, "mc_node_arena_used_bytes") == 0
    });
    let again = node.mount(64 * MIB).expect("the whole arena again");
    assert_eq!(again.size_bytes, 64 * MIB);
    assert_eq!(gauge(&node, "mc_node_arena_used_bytes"), 64 * MIB);
    node.stop();
}

#[test]
fn a_disabled_or_impossible_arena_is_said_so() {
    let c = LocalCluster::start(ClusterSpec::with_nodes(0)).expect("master starts");
    let node = node::start(config(
        &c,
        &["--mmap_arena_pool_size=64MB", "--disable_mmap_arena"],
    ))
    .expect("node starts");
    assert_eq!(gauge(&node, "mc_node_arena_pool_bytes"), 0);
    node.mount(16 * MIB).expect("mounts map their own memory");
    assert_eq!(gauge(&node, "mc_node_arena_used_bytes"), 0);
    node.stop();

    let err = node::start(config(&c, &["--mmap_arena_pool_size=1000000GB"]))
        .err()
        .expect("an arena beyond the machine's memory is refused");
    let msg = err.to_string();
    assert!(
        msg.contains("MC_MMAP_ARENA_POOL_SIZE") && msg.contains("available"),
        "{msg}"
    );
}

#[test]
fn a_hugepage_arena_beyond_the_pool_fails_when_required_and_falls_back_when_tried() {
    let pool = "/sys/kernel/mm/hugepages/hugepages-2048kB";
    let read = |f: &str| -> Option<u64> {
        std::fs::read_to_string(format!("{pool}/{f}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let (Some(free), Some(resv)) = (read("free_hugepages"), read("resv_hugepages")) else {
        eprintln!("skipped: this kernel has no 2 MiB hugetlb pool");
        return;
    };
    if read("nr_overcommit_hugepages").unwrap_or(0) > 0 {
        eprintln!("skipped: hugepage overcommit is on, so no pool is sure to be short");
        return;
    }
    // One 2 MiB page more than the pool has free.
    let size = format!("--mmap_arena_pool_size={}", (free - resv + 1) * 2 * MIB);
    let c = LocalCluster::start(ClusterSpec::with_nodes(0)).expect("master starts");
    let err = node::start(config(&c, &["--hugepages=require", &size]))
        .err()
        .expect("a short hugetlb pool is an error when required");
    let msg = err.to_string();
    assert!(
        msg.contains("MC_MMAP_ARENA_POOL_SIZE") && msg.contains("nr_hugepages"),
        "{msg}"
    );
    let node = node::start(config(&c, &["--hugepages=try", &size])).expect("try falls back");
    assert_eq!(
        gauge(&node, "mc_node_arena_pool_bytes"),
        (free - resv + 1) * 2 * MIB
    );
    node.mount(2 * MIB)
        .expect("a mount from the plain-page arena");
    assert_eq!(gauge(&node, "mc_node_arena_used_bytes"), 2 * MIB);
    node.stop();
}

#[test]
fn the_shards_segment_and_the_arena_are_bound_to_the_shards_numa_node() {
    let nodes: Vec<String> = std::fs::read_dir("/sys/devices/system/node")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| {
                    n.strip_prefix("node")
                        .is_some_and(|r| r.parse::<u32>().is_ok())
                })
                .collect()
        })
        .unwrap_or_default();
    let [only] = nodes.as_slice() else {
        eprintln!(
            "skipped: {} NUMA nodes; the plan's node is checked on fixtures",
            nodes.len()
        );
        return;
    };
    let bind = format!("bind:{}", &only["node".len()..]);
    let c = LocalCluster::start(ClusterSpec::with_nodes(0)).expect("master starts");
    let node = node::start(config(&c, &["--mmap_arena_pool_size=8MB"])).expect("node starts");
    // The kernel's view of this process's mappings: policy, then the memfd's name.
    let maps = std::fs::read_to_string("/proc/self/numa_maps").unwrap();
    for name in ["memfd:mc-seg-0", "memfd:mc-arena"] {
        let lines: Vec<&str> = maps.lines().filter(|l| l.contains(name)).collect();
        assert!(!lines.is_empty(), "no {name} mapping in\n{maps}");
        for l in lines {
            assert!(l.contains(&bind), "{name} is not {bind}: {l}");
        }
    }
    node.stop();
}
