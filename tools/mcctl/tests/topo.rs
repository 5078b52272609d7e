//! The real `mc-topo` binary: on this machine, and on the two-socket sysfs fixture of
//! `mc-topology`, with Mooncake's NIC environment variables.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../topology/tests/fixtures")
        .join(name)
}

fn mc_topo(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mc-topo"));
    cmd.args(args)
        .env_remove("MC_MS_AUTO_DISC")
        .env_remove("MC_MS_FILTERS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("mc-topo runs")
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "mc-topo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

fn numbers(v: &Value) -> Vec<u64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_u64().expect("a number"))
        .collect()
}

/// The online cores of this machine, from the kernel's own list.
fn online_here() -> Vec<u64> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let mut out = Vec::new();
    for item in text.trim().split(',') {
        match item.split_once('-') {
            Some((a, b)) => out.extend(a.parse::<u64>().unwrap()..=b.parse::<u64>().unwrap()),
            None => out.push(item.parse().unwrap()),
        }
    }
    out
}

#[test]
fn json_on_this_machine_lists_every_core_on_a_node_and_a_plan_on_them() {
    let doc = json_of(&mc_topo(&["--json"], &[]));
    let nodes = doc["numa_nodes"].as_array().expect("numa_nodes");
    assert!(!nodes.is_empty());
    let mut cores: Vec<u64> = nodes.iter().flat_map(|n| numbers(&n["cores"])).collect();
    cores.sort_unstable();
    assert_eq!(cores, online_here(), "each online core on exactly one node");
    let nics = doc["nics"].as_array().expect("nics");
    assert!(nics.iter().all(|n| n["name"] != "lo"));
    for n in nics {
        assert!(n["kind"] == "netdev" || n["kind"] == "rdma", "{n}");
    }
    let shards = doc["plan"]["shards"].as_array().expect("plan.shards");
    assert!(!shards.is_empty());
    assert!(!doc["plan"]["reason"].as_str().unwrap().is_empty());
    for s in shards {
        if let Some(core) = s["core"].as_u64() {
            assert!(cores.contains(&core), "{s}");
        }
    }
    if let [only] = nodes.as_slice() {
        // One node: every shard's memory is bound to it (the mbind that is a no-op here).
        for s in shards {
            assert_eq!(s["numa_node"], only["id"], "{s}");
        }
    }
}

#[test]
fn the_two_socket_fixture_plans_on_the_filtered_nics_node() {
    let root = fixture("two-socket");
    let root = root.to_str().unwrap();
    let doc = json_of(&mc_topo(
        &["--json", "--sysfs-root", root],
        &[("MC_MS_FILTERS", "mlx5_2,mlx5_3")],
    ));
    let nodes = doc["numa_nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(
        numbers(&nodes[1]["cores"]),
        vec![4, 5, 6, 7, 12, 13, 14, 15]
    );
    assert_eq!(numbers(&nodes[1]["smt_siblings"][0]), vec![4, 12]);
    let chosen: Vec<&str> = doc["nics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["chosen"] == true)
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(chosen, ["mlx5_2", "mlx5_3"]);
    let shards = doc["plan"]["shards"].as_array().unwrap();
    let cores: Vec<u64> = shards.iter().map(|s| s["core"].as_u64().unwrap()).collect();
    assert_eq!(cores, vec![4, 5, 6, 7]);
    assert!(shards.iter().all(|s| s["numa_node"] == 1));

    // MC_MS_AUTO_DISC=0 takes --device_name instead, and a count fills node 0 first.
    let doc = json_of(&mc_topo(
        &[
            "--json",
            "--sysfs_root",
            root,
            "--cores=2",
            "--device_name=mlx5_0",
        ],
        &[("MC_MS_AUTO_DISC", "0"), ("MC_MS_FILTERS", "mlx5_3")],
    ));
    let shards = doc["plan"]["shards"].as_array().unwrap();
    let cores: Vec<u64> = shards.iter().map(|s| s["core"].as_u64().unwrap()).collect();
    assert_eq!(cores, vec![0, 1]);
    assert!(
        doc["nic_selection"]
            .as_str()
            .unwrap()
            .contains("--device_name")
    );
}

#[test]
fn text_output_and_errors_name_what_they_found() {
    let root = fixture("two-socket");
    let out = mc_topo(&["--sysfs_root", root.to_str().unwrap()], &[]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("NUMA node 1: cores 4,5,6,7,12,13,14,15"),
        "{text}"
    );
    assert!(
        text.contains("NIC rdma mlx5_2 [ens2f0]: NUMA node 1 (chosen)"),
        "{text}"
    );
    assert!(
        text.contains("NIC netdev docker0: NUMA node ?, virtual"),
        "{text}"
    );
    assert!(
        text.contains("shard 0: core 2, memory on NUMA node 0"),
        "{text}"
    );

    let out = mc_topo(
        &["--sysfs_root", root.to_str().unwrap()],
        &[("MC_MS_FILTERS", "mlx5_7")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("mlx5_7") && err.contains("MC_MS_FILTERS"),
        "{err}"
    );
}
