//! `mc-cluster` end to end, as the README runs it: up with etcd and Prometheus, check,
//! kill-leader, check, down --clean; no process may be left behind.

mod common;

use common::{ClusterDir, procs_in, top_procs_in};

/// Small segments: three nodes prefault them.
const SEGMENT: &str = "64MB";

/// The `N.NN s` figure after `marker` in the drill's report.
fn seconds_after(report: &str, marker: &str) -> f64 {
    let line = report
        .lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no line with {marker:?} in:\n{report}"));
    let before_s = line.split(" s after the kill").next().unwrap();
    before_s
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
fn up_check_kill_leader_check_down_leaves_nothing_behind() {
    let c = ClusterDir::new("e2e");
    let up = c.ok(&["up", "--ha", "etcd", "--prometheus", "--segment", SEGMENT]);
    assert!(up.contains("cluster up in"), "{up}");
    assert!(!up.contains("localhost"), "{up}");
    for (what, count) in [("master-", 3), ("node-", 3)] {
        assert_eq!(up.matches(&format!("  {what}")).count(), count, "{up}");
    }
    for part in [
        "/dashboard",
        "rpc 127.0.0.1:",
        "rest http://127.0.0.2:",
        "rest http://127.0.0.4:",
        "/targets",
        "etcd://127.0.0.1:",
        "s.setup(\"127.0.0.1\"",
    ] {
        assert!(up.contains(part), "{part} missing from:\n{up}");
    }
    assert_eq!(up.matches("leader (serving").count(), 1, "{up}");

    let again = c.ok(&["up", "--ha", "etcd", "--prometheus"]);
    assert!(again.contains("already runs"), "{again}");

    let check = c.ok(&["check"]);
    assert!(!check.contains("[FAIL]"), "{check}");
    assert!(check.contains("[pass] one leader"), "{check}");
    assert!(
        check.contains("[pass] prometheus targets: 6 of 6 targets up"),
        "{check}"
    );
    assert!(
        check.lines().last().unwrap().starts_with("check: "),
        "{check}"
    );

    let drill = c.ok(&["kill-leader"]);
    println!("{drill}");
    let to_leader = seconds_after(&drill, "new leader");
    let to_io = seconds_after(&drill, "first put + get");
    assert!(to_io >= to_leader, "{drill}");
    assert!(drill.contains("restarted on its old ports"), "{drill}");

    let check = c.ok(&["check"]);
    assert!(!check.contains("[FAIL]"), "{check}");
    let status = c.ok(&["status"]);
    assert_eq!(status.matches("standby (standby").count(), 2, "{status}");
    assert!(c.ok(&["logs", "master-0", "--tail", "5"]).lines().count() <= 5);

    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(c.dir.join("state.json")).unwrap()).unwrap();
    let pids = top_procs_in(&c.dir);
    assert_eq!(
        pids.len(),
        8,
        "etcd, 3 masters, 3 nodes, prometheus: {pids:?}"
    );
    assert!(
        state["masters"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| pids.contains(&(m["proc"]["pid"].as_u64().unwrap() as u32)))
    );

    // Stopped, the cluster fails its checks.
    c.ok(&["down"]);
    assert!(procs_in(&c.dir).is_empty());
    let failed = c.run(&["check"]);
    assert!(!failed.status.success());
    let text = String::from_utf8_lossy(&failed.stdout);
    assert!(text.contains("[FAIL] process master-0"), "{text}");

    // The same directory starts again (fresh coordinator data, logs appended).
    let up = c.ok(&[
        "up",
        "--ha",
        "etcd",
        "--masters",
        "2",
        "--nodes",
        "1",
        "--segment",
        SEGMENT,
    ]);
    assert!(up.contains("cluster up in"), "{up}");
    let check = c.ok(&["check"]);
    assert!(
        !check.contains("[FAIL]") && !check.contains("prometheus"),
        "{check}"
    );

    let down = c.ok(&["down", "--clean"]);
    assert!(down.contains("removed"), "{down}");
    assert!(!c.dir.exists());
    assert!(
        procs_in(&c.dir).is_empty(),
        "left behind: {:?}",
        procs_in(&c.dir)
    );
}

#[test]
fn missing_coordinator_names_the_debian_package() {
    let c = ClusterDir::new("nopkg");
    for (ha, package) in [("etcd", "etcd-server"), ("redis", "redis-server")] {
        let out = c.run_with_path(&["up", "--ha", ha], Some("/nonexistent"));
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("`{package}`")), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    let out = c.run_with_path(
        &["up", "--ha", "none", "--prometheus"],
        Some("/nonexistent"),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("`prometheus`"));
    let out = c.run(&["up", "--ha", "none", "--masters", "3"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("exactly one master"));
    assert!(procs_in(&c.dir).is_empty());
}
