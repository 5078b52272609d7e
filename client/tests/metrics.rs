//! The master's /metrics (Prometheus text format, parsed with a real parser) and
//! /metrics/summary against a live cluster: names, values, and counters that move.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{cluster, pattern, store};
use mc_cluster::probe;
use mooncake_rs::ReplicateConfig;
use prometheus_parse::{Scrape, Value};

fn scrape(c: &mc_cluster::LocalCluster) -> Scrape {
    let r = probe::http_get(&c.metrics_addr(), "/metrics", Duration::from_secs(5)).unwrap();
    assert_eq!(r.status, 200);
    Scrape::parse(r.body.lines().map(|l| Ok(l.to_string()))).expect("valid Prometheus text")
}

/// Plain samples by name (histograms keyed by name + op label).
fn values(s: &Scrape) -> HashMap<String, f64> {
    let mut m = HashMap::new();
    for x in &s.samples {
        match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => {
                m.insert(x.metric.clone(), *v);
            }
            Value::Histogram(h) => {
                let count = h.last().map_or(0.0, |b| b.count);
                m.insert(
                    format!("{}{{op={}}}", x.metric, x.labels.get("op").unwrap_or("")),
                    count,
                );
            }
            _ => {}
        }
    }
    m
}

#[test]
fn metrics_use_mooncake_names_and_move_with_operations() {
    let c = cluster(1, "64MB");
    let s = store(&c);
    let before = values(&scrape(&c));
    for name in [
        "master_key_count",
        "master_allocated_bytes",
        "master_total_capacity_bytes",
        "master_active_clients",
        "master_put_start_requests_total",
        "master_put_start_failures_total",
        "master_get_replica_list_requests_total",
        "master_mount_segment_requests_total",
        "master_ping_requests_total",
        "master_successful_evictions_total",
        "master_evicted_key_count",
        "master_evicted_size_bytes",
    ] {
        assert!(before.contains_key(name), "{name} missing from /metrics");
    }
    assert_eq!(before["master_total_capacity_bytes"], (64 << 20) as f64);
    assert_eq!(before["master_active_clients"], 1.0);
    assert_eq!(before["master_mount_segment_requests_total"], 1.0);

    let cfg = ReplicateConfig::default();
    for i in 0..5 {
        s.put(&format!("m{i}"), &pattern(10_000, i), &cfg).unwrap();
    }
    s.get("m0").unwrap();
    assert!(s.get("missing").is_err());
    let _ = s.put("m1", b"dup", &cfg);
    let after = values(&scrape(&c));
    let moved = |name: &str| after[name] - before[name];
    assert_eq!(moved("master_put_start_requests_total"), 6.0);
    assert_eq!(
        moved("master_put_start_failures_total"),
        1.0,
        "the duplicate put"
    );
    assert_eq!(moved("master_put_end_requests_total"), 5.0);
    assert_eq!(moved("master_get_replica_list_requests_total"), 2.0);
    assert_eq!(
        moved("master_get_replica_list_failures_total"),
        1.0,
        "the missing key"
    );
    assert_eq!(after["master_key_count"], 5.0);
    assert!(after["master_allocated_bytes"] >= 50_000.0);
    assert_eq!(
        after["master_rpc_latency_seconds{op=put_start}"],
        after["master_put_start_requests_total"]
    );

    let summary = probe::http_get(
        &c.metrics_addr(),
        "/metrics/summary",
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(summary.status, 200);
    assert!(summary.body.contains("keys 5,"), "{}", summary.body);
    assert!(summary.body.contains("clients 1,"), "{}", summary.body);
    assert_eq!(summary.body.lines().count(), 1, "{}", summary.body);
}
