//! mc-bench `--master` against clusters it did not start: the working set is sized from the
//! free space the master reports, evicted keys are misses (not failures), wrong bytes fail
//! the run, and expected conditions end it with one line instead of a backtrace.

use std::process::{Command, Output};

use mc_cluster::probe::{http_get, json_u64_field};
use mc_cluster::{ClusterSpec, LocalCluster, NodeSpec};
use mooncake_rs::{ReplicateConfig, Store, StoreConfig};
use serde_json::Value;

fn cluster(segment_size: &str) -> LocalCluster {
    LocalCluster::start(ClusterSpec {
        nodes: vec![NodeSpec {
            segment_size: segment_size.into(),
            ..NodeSpec::default()
        }],
        ..ClusterSpec::default()
    })
    .expect("cluster starts")
}

/// Runs mc-bench with a backtrace requested, so a panic or an anyhow backtrace would show.
fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mc-bench"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("mc-bench runs")
}

fn rows(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn describe(o: &Output) -> String {
    format!(
        "{}\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The error line mc-bench ends with; fails unless stderr ends in exactly one such line
/// and carries no backtrace.
fn error_line(o: &Output) -> String {
    assert!(!o.status.success(), "{}", describe(o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !err.contains("backtrace") && !err.contains("panicked"),
        "{err}"
    );
    let last = err.lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("mc-bench: "), "{err}");
    last
}

fn evicted_keys(c: &LocalCluster) -> u64 {
    let r = http_get(
        &c.metrics_addr(),
        "/health",
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    json_u64_field(&r.body, "evicted_keys_total").expect("health counts evictions")
}

#[test]
fn the_default_run_fits_a_512mb_node_and_checks_every_value() {
    let c = cluster("512MB");
    // The default sizes and batches; a short cap per phase keeps a debug build cheap, and
    // the 16 MiB batch-16 case still writes more than the watermark allows unless sized.
    let o = bench(&[
        "--master",
        &c.master_addr(),
        "--duration",
        "2",
        "--repeat",
        "1",
        "--no-ceiling",
        "--json",
    ]);
    assert!(o.status.success(), "{}", describe(&o));
    let rows = rows(&o);
    // Per size and batch: put, get (into reused buffers), get_owned, get_cold and
    // get_4proc.
    assert_eq!(rows.len(), 4 * 2 * 5, "{}", describe(&o));
    for case in rows.chunks(5) {
        let ops: Vec<&str> = case.iter().map(|r| r["op"].as_str().unwrap()).collect();
        assert_eq!(ops, ["put", "get", "get_owned", "get_cold", "get_4proc"]);
        for r in case {
            assert_eq!(r["ok"], true, "{r}");
            assert_eq!(r["failed"], 0, "{r}");
            assert_eq!(r["misses"], 0, "{r}");
        }
        let put = &case[0];
        for get in &case[1..4] {
            // What was read back was checked (no failure, no miss above). On a loaded
            // machine a get phase may reach its --duration before it has read every key.
            let (p, g) = (put["ops"].as_u64().unwrap(), get["ops"].as_u64().unwrap());
            assert!(g >= 1 && g <= p, "{put}\n{get}");
        }
        // The bench's own puts filled its location cache; the cold client starts empty.
        assert!(
            case[1]["cache_hit_rate"].as_f64().unwrap() > 0.0,
            "{}",
            case[1]
        );
        assert_eq!(case[3]["cache_hit_rate"], 0.0, "{}", case[3]);
        assert!(put.get("cache_hit_rate").is_none(), "{put}");
        // Four processes each read every key the put phase wrote, after a warm-up pass.
        let four = &case[4];
        assert_eq!(four["threads"], 4, "{four}");
        let (p, g) = (put["ops"].as_u64().unwrap(), four["ops"].as_u64().unwrap());
        assert!(g >= 1 && g <= 4 * p, "{put}\n{four}");
        assert!(four["p99_us"].as_u64().unwrap() >= four["p50_us"].as_u64().unwrap());
    }
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("lowered to fit"), "{err}");
    assert_eq!(evicted_keys(&c), 0, "sized to stay below the watermark");
}

#[test]
fn on_a_tiny_node_evicted_keys_are_misses_and_oversized_values_are_refused() {
    let c = cluster("32MB");
    let master = c.master_addr();
    // A working set given explicitly is used as is: twice the node, so the master evicts.
    let o = bench(&[
        "--master",
        &master,
        "--sizes",
        "1MB",
        "--batch",
        "4",
        "--bytes",
        "64MB",
        "--repeat",
        "1",
        "--no-ceiling",
        "--json",
    ]);
    assert!(o.status.success(), "{}", describe(&o));
    let rows = rows(&o);
    let get = rows.iter().find(|r| r["op"] == "get").expect("a get row");
    assert_eq!(get["ops"], 64, "{get}");
    assert!(get["misses"].as_u64().unwrap() > 0, "{get}");
    assert_eq!(get["ok"], true, "{get}");
    assert_eq!(get["failed"], 0, "{get}");
    assert!(evicted_keys(&c) > 0);
    assert!(String::from_utf8_lossy(&o.stderr).contains("count as misses"));

    // Not one 64 MiB value fits in 32 MB: refused up front, in one line.
    let o = bench(&["--master", &master, "--sizes", "64MB", "--no-ceiling"]);
    let line = error_line(&o);
    assert!(line.contains("no room for one 64MiB value"), "{line}");
    assert!(o.stdout.is_empty(), "nothing measured: {}", describe(&o));
}

#[test]
fn wrong_bytes_make_the_run_fail() {
    let c = cluster("64MB");
    let master = c.master_addr();
    // mc-bench's first 4 KiB key (`mcb-<size>-<index>`, padded with `~` to 24 bytes), put
    // beforehand with other bytes: the bench's put of it fails (the old value is kept) and
    // its get reads back bytes that are not what the bench wrote.
    let s = Store::connect(StoreConfig::new(&master)).unwrap();
    s.put(
        "mcb-4096-0~~~~~~~~~~~~~~",
        &[0u8; 4096],
        &ReplicateConfig::default(),
    )
    .unwrap();
    let o = bench(&[
        "--master",
        &master,
        "--sizes",
        "4KB",
        "--batch",
        "1",
        "--keys",
        "16",
        "--repeat",
        "1",
        "--no-ceiling",
        "--json",
    ]);
    let line = error_line(&o);
    assert!(line.contains("not ok"), "{line}");
    let rows = rows(&o);
    assert_eq!(rows.len(), 5, "{}", describe(&o));
    for r in &rows[..4] {
        assert_eq!(r["ok"], false, "{r}");
        assert_eq!(r["failed"], 1, "{r}");
        assert_eq!(r["misses"], 0, "{r}");
    }
    // Each of the four reader processes read the wrong value once.
    assert_eq!(rows[4]["ok"], false, "{}", rows[4]);
    assert_eq!(rows[4]["failed"], 4, "{}", rows[4]);
}

#[test]
fn an_unreachable_master_is_one_line() {
    // Port 1 needs root to listen on and no test does.
    let o = bench(&["--master", "127.0.0.1:1", "--no-ceiling"]);
    let line = error_line(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(line.contains("cannot connect to 127.0.0.1:1"), "{line}");
}
