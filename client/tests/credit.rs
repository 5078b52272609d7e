//! Put credit against real processes: after the first put of a size, puts are a write
//! and one commit (no PutStart, no PutEnd), read-your-writes holds from any client, and a
//! credit the master lost (a restart) or a refused key falls back cleanly.

mod common;

use std::time::{Duration, Instant};

use common::{cluster, pattern, store, uncached_store};
use mc_cluster::LocalCluster;
use mooncake_rs::{ErrorCode, ReplicateConfig, Store, StoreConfig};

/// One counter or gauge of the master's `/metrics` (0 when absent).
fn master_metric(c: &LocalCluster, name: &str) -> f64 {
    let r = mc_cluster::probe::http_get(&c.metrics_addr(), "/metrics", Duration::from_secs(5))
        .expect("master /metrics answers");
    r.body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split([' ', '{']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn puts_after_the_first_skip_put_start_and_are_read_by_other_clients() {
    let c = cluster(1, "64MB");
    let s = store(&c);
    let reader = uncached_store(&c);
    let cfg = ReplicateConfig::default();
    s.put("first", &pattern(4096, 0), &cfg).unwrap();
    let starts = master_metric(&c, "master_put_start_requests_total");
    let ends = master_metric(&c, "master_put_end_requests_total");
    for i in 1..=20u64 {
        let v = pattern(4096, i);
        s.put(&format!("k{i}"), &v, &cfg).unwrap();
        // Read-your-writes, through the master, from another client.
        assert_eq!(reader.get(&format!("k{i}")).unwrap(), v);
    }
    let items: Vec<(String, Vec<u8>)> = (0..16u64)
        .map(|i| {
            (
                format!("b{i}"),
                pattern(4096 + 512 * (i as usize % 3), 100 + i),
            )
        })
        .collect();
    let refs: Vec<(&str, &[u8])> = items
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    for r in s.put_batch(&refs, &cfg) {
        r.unwrap();
    }
    for (k, v) in &items {
        assert_eq!(&reader.get(k).unwrap(), v);
    }
    assert_eq!(
        master_metric(&c, "master_put_start_requests_total"),
        starts,
        "no PutStart once credit is held"
    );
    assert_eq!(master_metric(&c, "master_put_end_requests_total"), ends);
    let st = s.credit_stats();
    assert!(st.commits >= 20, "{st:?}");
    assert!(st.held_bytes > 0);
    assert!(master_metric(&c, "master_put_credit_commits_total") >= 20.0);
}

#[test]
fn an_existing_key_is_refused_through_credit_and_keeps_its_value() {
    let c = cluster(1, "64MB");
    let s = store(&c);
    let cfg = ReplicateConfig::default();
    let old = pattern(8192, 1);
    s.put("k", &old, &cfg).unwrap();
    s.put("warm", &pattern(8192, 2), &cfg).unwrap();
    let e = s.put("k", &pattern(8192, 3), &cfg).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ObjectAlreadyExists, "{e}");
    assert_eq!(uncached_store(&c).get("k").unwrap(), old);
    assert!(s.credit_stats().commits >= 1);
}

#[test]
fn credit_off_puts_the_long_way() {
    let c = cluster(1, "64MB");
    let s = Store::connect(StoreConfig {
        put_credit_bytes: 0,
        ..StoreConfig::new(c.master_addr())
    })
    .unwrap();
    for i in 0..5u64 {
        s.put(
            &format!("k{i}"),
            &pattern(4096, i),
            &ReplicateConfig::default(),
        )
        .unwrap();
    }
    assert_eq!(s.credit_stats().commits, 0);
    assert_eq!(master_metric(&c, "master_put_start_requests_total"), 5.0);
    assert_eq!(master_metric(&c, "master_put_credit_bytes"), 0.0);
}

#[test]
fn a_closing_client_hands_its_credit_back() {
    let c = cluster(1, "64MB");
    let s = store(&c);
    for i in 0..4u64 {
        s.put(
            &format!("k{i}"),
            &pattern(65536, i),
            &ReplicateConfig::default(),
        )
        .unwrap();
    }
    assert!(master_metric(&c, "master_put_credit_bytes") > 0.0);
    drop(s);
    assert_eq!(master_metric(&c, "master_put_credit_bytes"), 0.0);
}

#[test]
fn credit_of_a_master_that_restarted_falls_back_and_the_put_lands() {
    let mut c = cluster(1, "64MB");
    let s = Store::connect(StoreConfig {
        rpc_timeout: Duration::from_secs(10),
        ..StoreConfig::new(c.master_addr())
    })
    .unwrap();
    let cfg = ReplicateConfig::default();
    s.put("before", &pattern(4096, 1), &cfg).unwrap();
    s.put("before2", &pattern(4096, 2), &cfg).unwrap();
    assert!(
        s.credit_stats().held_bytes > 0,
        "credit held across the restart"
    );
    c.kill_master();
    c.restart_master().expect("master restarts");
    // Wait for the node to re-mount and report what it holds.
    let reader = uncached_store(&c);
    let deadline = Instant::now() + Duration::from_secs(60);
    while reader.get("before").is_err() {
        assert!(
            Instant::now() < deadline,
            "not recovered\n{}",
            c.logs_tail(30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The credit held is the dead master's: the shard refuses writes into it, or the new
    // master does not know it; either way the put is written again the long way.
    let v = pattern(4096, 3);
    s.put("after", &v, &cfg).unwrap();
    assert_eq!(reader.get("after").unwrap(), v);
    assert_eq!(reader.get("before").unwrap(), pattern(4096, 1));
    // And new credit is granted by the new master.
    for i in 0..3u64 {
        s.put(&format!("later{i}"), &pattern(4096, 10 + i), &cfg)
            .unwrap();
    }
    assert!(master_metric(&c, "master_put_credit_commits_total") >= 1.0);
}
