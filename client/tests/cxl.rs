//! CXL memory, with a file standing in for the DAX device (this machine has none; the node
//! maps the file exactly as it maps `/dev/daxX.Y`, shared and read-write): the node mounts
//! it as `<endpoint>/cxl`, the master shows its medium, and `--allocation_strategy=cxl`
//! puts new objects there until it is full, then in DRAM.

mod common;

use std::time::Duration;

use common::pattern;
use mc_cluster::{ClusterSpec, LocalCluster, NodeSpec, probe};
use mooncake_rs::{ReplicateConfig, Store, StoreConfig};

/// A 32 MiB stand-in file under the target dir.
fn stand_in(name: &str) -> std::path::PathBuf {
    let p = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cxl-{name}-{}", std::process::id()));
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(32 << 20).unwrap();
    p
}

fn cluster(file: &std::path::Path, master_args: &[&str]) -> LocalCluster {
    LocalCluster::start(ClusterSpec {
        nodes: vec![NodeSpec {
            segment_size: "64MB".into(),
            extra_args: vec![
                "--enable_cxl".into(),
                format!("--cxl_path={}", file.display()),
            ],
            ..NodeSpec::default()
        }],
        master_args: master_args.iter().map(|a| a.to_string()).collect(),
        ..ClusterSpec::default()
    })
    .unwrap_or_else(|e| panic!("cluster did not start: {e}"))
}

/// The master's `/get_segments_detail`: (name, medium, used bytes) per segment.
fn segments(c: &LocalCluster) -> Vec<(String, String, u64)> {
    let r = probe::http_get(
        &c.metrics_addr(),
        "/get_segments_detail",
        Duration::from_secs(5),
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    v.as_array()
        .or_else(|| v["segments"].as_array())
        .expect("a list of segments")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["medium"].as_str().unwrap().to_string(),
                s["used_bytes"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_cxl_strategy_fills_cxl_first_then_falls_back_to_dram() {
    let file = stand_in("strategy");
    let c = cluster(&file, &["--enable_cxl", "--allocation_strategy=cxl"]);
    let segs = segments(&c);
    let cxl: Vec<_> = segs.iter().filter(|s| s.1 == "cxl").collect();
    assert_eq!(cxl.len(), 1, "{segs:?}");
    assert!(cxl[0].0.ends_with("/cxl"), "{segs:?}");
    let q = probe::http_get(
        &c.metrics_addr(),
        &format!("/query_segment?segment={}", cxl[0].0),
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(q.body.contains("Medium: cxl"), "{}", q.body);
    assert!(
        q.body.contains(&format!("Capacity(bytes): {}", 32 << 20)),
        "{}",
        q.body
    );

    let s = Store::connect(StoreConfig::new(c.master_addr())).unwrap();
    let cfg = ReplicateConfig::default();
    // 24 MiB fit in the 32 MiB of CXL: all of it lands there.
    for i in 0..24 {
        s.put(&format!("k{i}"), &pattern(1 << 20, i), &cfg).unwrap();
    }
    // Credit this client holds for its next put counts as used: hand it back first.
    s.release_credit();
    let used = |medium: &str| -> u64 {
        segments(&c)
            .iter()
            .filter(|x| x.1 == medium)
            .map(|x| x.2)
            .sum()
    };
    assert_eq!(used("cxl"), 24 << 20);
    assert_eq!(used("dram"), 0);
    // Past the CXL segment's room, new objects go to DRAM.
    for i in 24..48 {
        s.put(&format!("k{i}"), &pattern(1 << 20, i), &cfg).unwrap();
    }
    assert!(used("cxl") <= 32 << 20);
    assert!(used("dram") >= 16 << 20, "{:?}", segments(&c));
    for i in 0..48 {
        assert_eq!(
            s.get(&format!("k{i}")).unwrap(),
            pattern(1 << 20, i),
            "k{i}"
        );
    }
    // The bytes of the first objects are in the stand-in file itself.
    let on_file = std::fs::read(&file).unwrap();
    let k0 = pattern(1 << 20, 0);
    assert!(
        on_file.windows(64).any(|w| w == &k0[..64]),
        "k0 is in the CXL file"
    );
    drop(c);
    let _ = std::fs::remove_file(&file);
}

#[test]
fn the_cxl_strategy_needs_enable_cxl_and_a_missing_device_stops_the_node() {
    let bin = mc_cluster::find_binary(mc_cluster::MASTER_BINARY, None).unwrap();
    let out = std::process::Command::new(bin)
        .args([
            "--allocation_strategy=cxl",
            "--rpc_port=0",
            "--metrics_port=0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--enable_cxl"), "{err}");

    let bin = mc_cluster::find_binary(mc_cluster::STORE_BINARY, None).unwrap();
    let out = std::process::Command::new(bin)
        .args([
            "--enable_cxl",
            "--cxl_path=/nonexistent/dax9.9",
            "--master_server_address=127.0.0.1:1",
            "--port=0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--cxl_path=/nonexistent/dax9.9"), "{err}");
}
