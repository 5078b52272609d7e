//! mcctl against a live master and store node.

use std::process::{Command, Output};

use mc_cluster::{ClusterSpec, LocalCluster, NodeSpec};
use mooncake_rs::{ReplicateConfig, Store, StoreConfig};

fn mcctl(c: &LocalCluster, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcctl"))
        .args(["--master", &c.master_addr(), "--admin", &c.metrics_addr()])
        .args(args)
        .output()
        .expect("mcctl runs")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "mcctl failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn every_command_against_a_live_cluster() {
    let c = LocalCluster::start(ClusterSpec {
        nodes: vec![NodeSpec {
            segment_size: "64MB".into(),
            ..NodeSpec::default()
        }],
        ..ClusterSpec::default()
    })
    .expect("cluster starts");
    // No location cache: each get asks the master, which grants the lease checked below
    // at once (a cached read's lease arrives with the node's next hit report).
    let s = Store::connect(StoreConfig {
        location_cache_entries: 0,
        ..StoreConfig::new(c.master_addr())
    })
    .unwrap();
    s.put("alpha", &[7u8; 5000], &ReplicateConfig::default())
        .unwrap();
    s.put("beta/1 x", b"v", &ReplicateConfig::default())
        .unwrap();

    let out = ok(&mcctl(&c, &["health"]));
    assert!(out.contains("role") && out.contains("leader"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&mcctl(&c, &["status", "--json"]))).unwrap();
    assert_eq!(v["keys"], 2);
    let out = ok(&mcctl(&c, &["segments"]));
    assert!(out.contains("64.0 MiB"), "{out}");
    assert_eq!(ok(&mcctl(&c, &["keys", "--regex", "^al"])), "alpha\n");
    let keys: Vec<String> = serde_json::from_str(&ok(&mcctl(&c, &["keys", "--json"]))).unwrap();
    assert_eq!(keys.len(), 2);
    let out = ok(&mcctl(&c, &["query", "beta/1 x"]));
    assert!(out.contains("1 bytes"), "{out}");
    let out = ok(&mcctl(&c, &["query", "alpha"]));
    assert!(
        out.contains("5000 bytes") && out.contains("replica 0"),
        "{out}"
    );

    // A leased key needs --force; then it is gone.
    s.get("alpha").unwrap();
    let o = mcctl(&c, &["remove", "alpha"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("OBJECT_HAS_LEASE"));
    ok(&mcctl(&c, &["remove", "alpha", "--force"]));
    assert_eq!(ok(&mcctl(&c, &["keys"])), "beta/1 x\n");
    let o = mcctl(&c, &["query", "alpha"]);
    assert!(!o.status.success());

    // An unreachable admin port is a clear error, not a hang.
    let o = Command::new(env!("CARGO_BIN_EXE_mcctl"))
        .args(["--admin", "127.0.0.1:1", "health"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot reach"));
}

fn mcctl_bare(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcctl"))
        .args(args)
        .output()
        .expect("mcctl runs")
}

#[test]
fn the_admin_port_is_learned_from_the_master_and_admin_overrides_it() {
    let c = LocalCluster::start(ClusterSpec {
        nodes: vec![NodeSpec {
            segment_size: "32MB".into(),
            ..NodeSpec::default()
        }],
        ..ClusterSpec::default()
    })
    .expect("cluster starts");
    let metrics = c.metrics_addr();
    assert!(
        !metrics.ends_with(":9003"),
        "the cluster must run its admin HTTP off the default port: {metrics}"
    );
    let s = Store::connect(StoreConfig::new(c.master_addr())).unwrap();
    s.put("k", b"v", &ReplicateConfig::default()).unwrap();

    // --master alone: mcctl asks the master where its admin HTTP is.
    let master = c.master_addr();
    let v: serde_json::Value =
        serde_json::from_str(&ok(&mcctl_bare(&["--master", &master, "status", "--json"]))).unwrap();
    assert_eq!(v["keys"], 1, "{v}");
    assert_eq!(v["capacity_bytes"], 32 << 20, "{v}");
    let out = ok(&mcctl_bare(&["--master", &master, "status"]));
    assert!(out.contains("keys        1"), "{out}");

    // --admin wins over what the master reports.
    let o = mcctl_bare(&["--master", &master, "--admin", "127.0.0.1:1", "status"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot reach") && err.contains("127.0.0.1:1 (--admin)"),
        "{err}"
    );
}

#[test]
fn an_unreachable_master_falls_back_to_the_default_port_and_says_so() {
    // ::1, because masters bind 0.0.0.0 (IPv4) by default, so no master on this machine
    // answers at [::1]:9003 and the fallback fails the same way every time.
    let o = mcctl_bare(&["--master", "[::1]:1", "health"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    for part in [
        "cannot reach the master's admin HTTP at [::1]:9003",
        "asking the master at [::1]:1 for its admin port failed",
        "default port 9003",
        "--admin",
    ] {
        assert!(err.contains(part), "missing {part:?} in: {err}");
    }
}

#[test]
fn health_of_ha_masters_shows_role_state_leader_and_view_version() {
    let coord = mc_cluster::Coordinator::start(mc_cluster::CoordinatorKind::Etcd).expect("etcd");
    let c = LocalCluster::start(ClusterSpec {
        masters: 2,
        master_args: coord.master_args(),
        nodes: Vec::new(),
        ..ClusterSpec::default()
    })
    .expect("cluster starts");
    let health = |i: usize| {
        let o = Command::new(env!("CARGO_BIN_EXE_mcctl"))
            .args(["--master", &c.master_addr_of(i), "health", "--json"])
            .output()
            .expect("mcctl runs");
        serde_json::from_str::<serde_json::Value>(&ok(&o)).unwrap()
    };
    // The first master started leads once the election settles; the other follows it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (lead, standby) = loop {
        let (a, b) = (health(0), health(1));
        if a["ha_state"] == "serving" && b["leader_address"] == a["leader_address"] {
            break (a, b);
        }
        if b["ha_state"] == "serving" && a["leader_address"] == b["leader_address"] {
            break (b, a);
        }
        assert!(std::time::Instant::now() < deadline, "no leader: {a} {b}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(lead["role"], "leader");
    assert_eq!(
        (standby["role"].as_str(), standby["ha_state"].as_str()),
        (Some("standby"), Some("standby"))
    );
    assert_eq!(standby["view_version"], lead["view_version"]);
    assert!(
        lead["view_version"].as_u64().is_some_and(|v| v > 0),
        "{lead}"
    );
    // The table names the same fields.
    let standby_index = if health(0)["role"] == "standby" { 0 } else { 1 };
    let o = Command::new(env!("CARGO_BIN_EXE_mcctl"))
        .args(["--master", &c.master_addr_of(standby_index), "health"])
        .output()
        .unwrap();
    let table = ok(&o);
    for f in [
        "role",
        "ha_state",
        "leader_address",
        "view_version",
        "\"standby\"",
    ] {
        assert!(table.contains(f), "{f} missing from\n{table}");
    }
}

#[test]
fn copy_move_and_tasks_show_what_the_nodes_did() {
    let c = LocalCluster::start(ClusterSpec {
        nodes: (0..2)
            .map(|_| NodeSpec {
                segment_size: "64MB".into(),
                ..NodeSpec::default()
            })
            .collect(),
        ..ClusterSpec::default()
    })
    .expect("cluster starts");
    let s = Store::connect(StoreConfig::new(c.master_addr())).unwrap();
    let segs: Vec<serde_json::Value> = {
        let v: serde_json::Value =
            serde_json::from_str(&ok(&mcctl(&c, &["segments", "--json"]))).unwrap();
        v["segments"].as_array().unwrap().clone()
    };
    let names: Vec<&str> = segs.iter().map(|s| s["name"].as_str().unwrap()).collect();
    let cfg = ReplicateConfig {
        preferred_segments: vec![names[0].to_string()],
        ..ReplicateConfig::default()
    };
    s.put("copied", &[3u8; 4096], &cfg).unwrap();
    let made: serde_json::Value =
        serde_json::from_str(&ok(&mcctl(&c, &["copy", "copied", names[1], "--json"]))).unwrap();
    let id = made[0]["id"].as_str().unwrap().to_string();
    assert_eq!(made[0]["type"], "REPLICA_COPY");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let v: serde_json::Value =
            serde_json::from_str(&ok(&mcctl(&c, &["task", &id, "--json"]))).unwrap();
        if v[0]["status"] == "SUCCESS" {
            break;
        }
        assert_ne!(v[0]["status"], "FAILED", "{v}");
        assert!(std::time::Instant::now() < deadline, "{v}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(s.replicas("copied").unwrap().len(), 2);
    let out = ok(&mcctl(&c, &["tasks"]));
    assert!(out.contains(&id) && out.contains("SUCCESS"), "{out}");
    // A refused task says why and fails.
    let o = mcctl(&c, &["move", "copied", names[0], names[0]]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("INVALID_PARAMS"),
        "{o:?}"
    );
    let o = mcctl(&c, &["task", "not-hex"]);
    assert!(!o.status.success());
}
