//! mc-bench end to end: it starts its own master and store node, runs small cases with the
//! ceiling, and prints one JSON object per case with every documented field.

use std::process::Command;

#[test]
fn json_output_has_every_field_and_values_check_out() {
    let out = Command::new(env!("CARGO_BIN_EXE_mc-bench"))
        .args([
            "--sizes",
            "4KB,64KB",
            "--batch",
            "1,4",
            "--bytes",
            "2MB",
            "--repeat",
            "2",
            "--segment-size",
            "64MB",
            "--json",
        ])
        .output()
        .expect("mc-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "mc-bench failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let cases: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(
        cases.len(),
        5 * 2 * 2,
        "put, get, get_owned, get_cold and get_4proc for 2 sizes x 2 batches:\n{stdout}"
    );
    for c in &cases {
        for f in [
            "op",
            "size",
            "batch",
            "threads",
            "ops_per_s",
            "gbps",
            "p50_us",
            "p99_us",
            "p999_us",
            "ceiling",
            "ratio",
            "spread",
            "ok",
            "failed",
            "misses",
        ] {
            assert!(c.get(f).is_some(), "field {f} missing in {c}");
        }
        assert_eq!(c["ok"], true, "{c}");
        assert_eq!(c["failed"], 0, "{c}");
        assert_eq!(c["misses"], 0, "{c}");
        assert!(c["ops_per_s"].as_f64().unwrap() > 0.0, "{c}");
        assert!(c["ceiling"].as_f64().unwrap() > 0.0, "{c}");
        assert!(c["ratio"].as_f64().unwrap() > 0.0, "{c}");
    }
}

#[test]
fn unknown_scenario_is_refused_with_a_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_mc-bench"))
        .args(["--scenario", "nope", "--master", "127.0.0.1:1"])
        .output()
        .expect("mc-bench runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown --scenario"));
}

#[test]
fn master_scenario_reports_metadata_rates_and_memory_per_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_mc-bench"))
        .args([
            "--scenario",
            "master",
            "--sizes",
            "64",
            "--batch",
            "16",
            "--keys",
            "2000",
            "--segment-size",
            "64MB",
            "--json",
        ])
        .output()
        .expect("mc-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ops: Vec<&str> = lines.iter().map(|c| c["op"].as_str().unwrap()).collect();
    // Every line is a case row; the master's memory per key is a field of get_meta's.
    assert_eq!(ops, ["put_meta", "get_meta"], "{stdout}");
    for c in &lines {
        assert_eq!(c["ok"], true, "{c}");
        assert_eq!(c["ops"], 2000, "{c}");
    }
    assert!(
        lines[1]["master_rss_bytes_per_key"].as_f64().is_some(),
        "{}",
        lines[1]
    );
}
