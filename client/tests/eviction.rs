//! Master policies end to end (issue 5): eviction under pressure through the public client,
//! leases and pins respected, zombie PutStarts preempted and their space returned.

mod common;

use std::time::{Duration, Instant};

use common::pattern;
use mc_cluster::{ClusterSpec, LocalCluster, NodeSpec, probe};
use mc_schema::handshake::{DEFAULT_CLUSTER_ID, Role};
use mc_schema::msg::{ReplicateConfig as Cfg, Request};
use mooncake_rs::{ErrorCode, ReplicateConfig, Store, StoreConfig};

fn cluster(master_args: &[&str]) -> LocalCluster {
    LocalCluster::start(ClusterSpec {
        nodes: vec![NodeSpec {
            segment_size: "32MB".into(),
            ..NodeSpec::default()
        }],
        master_args: master_args.iter().map(|s| s.to_string()).collect(),
        ..ClusterSpec::default()
    })
    .expect("cluster starts")
}

fn health_u64(c: &LocalCluster, field: &str) -> u64 {
    let h = probe::http_get(&c.metrics_addr(), "/health", Duration::from_secs(5)).unwrap();
    probe::json_u64_field(&h.body, field).unwrap_or_else(|| panic!("{field} missing: {}", h.body))
}

#[test]
fn writing_five_times_the_capacity_keeps_succeeding_and_spares_leased_and_pinned() {
    let c = cluster(&["--default_kv_lease_ttl=120s"]);
    let s = Store::connect(StoreConfig::new(c.master_addr())).unwrap();
    let mib = 1 << 20;
    let pinned = ReplicateConfig {
        with_hard_pin: true,
        ..ReplicateConfig::default()
    };
    s.put("pinned", &pattern(mib, 1), &pinned).unwrap();
    s.put("leased", &pattern(mib, 2), &ReplicateConfig::default())
        .unwrap();
    assert_eq!(s.get("leased").unwrap(), pattern(mib, 2)); // lease for 120 s
    for i in 0..160u64 {
        s.put(
            &format!("w{i}"),
            &pattern(mib, 100 + i),
            &ReplicateConfig::default(),
        )
        .unwrap_or_else(|e| panic!("put w{i} under pressure: {e}"));
    }
    assert_eq!(s.get("w0").unwrap_err().code(), ErrorCode::ObjectNotFound);
    assert_eq!(s.get("w159").unwrap(), pattern(mib, 259));
    assert_eq!(s.get("pinned").unwrap(), pattern(mib, 1));
    assert_eq!(s.get("leased").unwrap(), pattern(mib, 2));
    assert!(health_u64(&c, "evicted_keys_total") >= 120);
}

#[test]
fn a_killed_writers_put_start_is_preempted_and_its_space_comes_back() {
    let c = cluster(&[
        "--put_start_discard_timeout_sec=1",
        "--put_start_release_timeout_sec=2",
    ]);
    let s = Store::connect(StoreConfig::new(c.master_addr())).unwrap();
    // A writer that dies between PutStart and PutEnd: only the PutStart reaches the master.
    let mut rpc = mc_rpc::RpcClient::connect(
        &c.master_addr(),
        Role::Client,
        DEFAULT_CLUSTER_ID,
        Duration::from_secs(2),
    )
    .unwrap();
    let r = rpc
        .call(
            &Request::PutStart {
                client_id: 9,
                client_host: String::new(),
                items: vec![("zombie".into(), 4 << 20)],
                config: Cfg::default(),
            },
            Instant::now() + Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(r.status, 0);
    drop(rpc);
    assert!(health_u64(&c, "allocated_bytes") >= 4 << 20);
    let v = pattern(1000, 5);
    assert_eq!(
        s.put("zombie", &v, &ReplicateConfig::default())
            .unwrap_err()
            .code(),
        ErrorCode::ObjectAlreadyExists
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.put("zombie", &v, &ReplicateConfig::default()).is_err() {
        assert!(Instant::now() < deadline, "never preempted");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(s.get("zombie").unwrap(), v);
    // The abandoned 4 MiB is released after the release timeout.
    while health_u64(&c, "allocated_bytes") >= 4 << 20 {
        assert!(Instant::now() < deadline, "space never released");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(health_u64(&c, "preempted_put_starts_total"), 1);
}

#[test]
fn local_first_puts_land_on_the_writers_host() {
    let c = LocalCluster::start(ClusterSpec {
        nodes: (2..5)
            .map(|i| NodeSpec {
                host: format!("127.0.0.{i}"),
                segment_size: "32MB".into(),
                ..NodeSpec::default()
            })
            .collect(),
        master_args: vec!["--allocation_strategy=local_first".into()],
        ..ClusterSpec::default()
    })
    .expect("cluster starts");
    let s = Store::connect(StoreConfig {
        local_hostname: "127.0.0.3".into(),
        ..StoreConfig::new(c.master_addr())
    })
    .unwrap();
    for i in 0..10 {
        let k = format!("lf{i}");
        s.put(&k, b"local", &ReplicateConfig::default()).unwrap();
        let ep = &s.replicas(&k).unwrap()[0].slices[0].endpoint;
        assert!(ep.starts_with("127.0.0.3:"), "{k} landed on {ep}");
    }
}

/// A 1 MiB value whose every 4 KiB block starts with `version`.
fn versioned(version: u64) -> Vec<u8> {
    let mut v = pattern(1 << 20, 4242);
    for block in v.chunks_mut(4096) {
        block[..8].copy_from_slice(&version.to_le_bytes());
    }
    v
}

#[test]
fn upsert_under_concurrent_readers_never_yields_a_mixed_value() {
    let c = cluster(&[]);
    let s = std::sync::Arc::new(Store::connect(StoreConfig::new(c.master_addr())).unwrap());
    s.upsert("u", &versioned(0), &ReplicateConfig::default())
        .unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (s, done) = (s.clone(), done.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !done.load(std::sync::atomic::Ordering::Acquire) || seen.len() < 3 {
                    let v = s.get("u").expect("a readable value at every moment");
                    let version = u64::from_le_bytes(v[..8].try_into().unwrap());
                    assert_eq!(
                        v,
                        versioned(version),
                        "mixed or torn value (version {version})"
                    );
                    seen.push(version);
                }
                seen
            })
        })
        .collect();
    for version in 1..=25 {
        s.upsert("u", &versioned(version), &ReplicateConfig::default())
            .unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    for r in readers {
        let seen = r.join().unwrap();
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "versions went backwards: {seen:?}"
        );
    }
    assert_eq!(s.get("u").unwrap(), versioned(25));
    assert_eq!(s.get_size("u").unwrap(), 1 << 20);
}
