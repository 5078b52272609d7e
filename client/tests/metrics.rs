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
    scrape_at(&c.metrics_addr())
}

fn scrape_at(addr: &str) -> Scrape {
    let r = probe::http_get(addr, "/metrics", Duration::from_secs(5)).unwrap();
    assert_eq!(r.status, 200);
    Scrape::parse(r.body.lines().map(|l| Ok(l.to_string()))).expect("valid Prometheus text")
}

/// Plain samples by name (keyed by name + reason label when they have one; histograms by
/// name + op label).
fn values(s: &Scrape) -> HashMap<String, f64> {
    let mut m = HashMap::new();
    for x in &s.samples {
        match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => {
                let name = match x.labels.get("reason") {
                    Some(r) => format!("{}{{reason={r}}}", x.metric),
                    None => x.metric.clone(),
                };
                m.insert(name, *v);
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
    // Without put credit, so every put is one PutStart and one PutEnd as in Mooncake
    // (credit's own counters are checked in tests/credit.rs).
    let s = mooncake_rs::Store::connect(mooncake_rs::StoreConfig {
        put_credit_bytes: 0,
        ..mooncake_rs::StoreConfig::new(c.master_addr())
    })
    .unwrap();
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
    // The get of m0 is served through the location cache the put filled: only the
    // missing key is looked up.
    assert_eq!(moved("master_get_replica_list_requests_total"), 1.0);
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

/// Every `prefix*` name a dashboard expression uses.
fn dashboard_metric_names(prefix: &str) -> Vec<String> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana-dashboard.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut names = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(i) = rest.find(prefix) {
                let tail = &rest[i..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                let name = &tail[..end];
                // Regex selectors like master_.+_failures_total are checked by their parts below.
                if !tail[end..].starts_with(".+") {
                    names.push(name.trim_end_matches("_bucket").to_string());
                }
                rest = &tail[end..];
            }
        }
    }
    names
}

#[test]
fn every_dashboard_panel_queries_a_metric_the_master_exports() {
    let c = cluster(1, "64MB");
    let s = store(&c);
    s.put("k", b"v", &ReplicateConfig::default()).unwrap();
    let live: std::collections::HashSet<String> =
        scrape(&c).samples.into_iter().map(|x| x.metric).collect();
    let used = dashboard_metric_names("master_");
    assert!(used.len() >= 12, "{used:?}");
    for name in &used {
        assert!(
            live.contains(name),
            "dashboard uses {name}, which /metrics does not export"
        );
    }
    let node_live: std::collections::HashSet<String> = scrape_at(&c.node_rest_addr(0))
        .samples
        .into_iter()
        .map(|x| x.metric)
        .collect();
    let used = dashboard_metric_names("mc_");
    assert!(used.len() >= 4, "{used:?}");
    for name in &used {
        assert!(
            node_live.contains(name),
            "dashboard uses {name}, which the node's /metrics does not export"
        );
    }
    assert!(live.iter().any(|n| n.ends_with("_failures_total")));
    assert!(live.iter().any(|n| n.ends_with("_requests_total")));
}

#[test]
fn store_node_metrics_count_bytes_ops_and_crc_failures_per_shard() {
    let c = cluster(1, "64MB");
    // Over TCP: the shard counts the transfers it serves (same-host reads copy without it).
    let s = mooncake_rs::Store::connect(mooncake_rs::StoreConfig {
        memcpy: mooncake_rs::MemcpyMode::Off,
        ..mooncake_rs::StoreConfig::new(c.master_addr())
    })
    .unwrap();
    let before = values(&scrape_at(&c.node_rest_addr(0)));
    s.put("n1", &pattern(100_000, 1), &ReplicateConfig::default())
        .unwrap();
    s.get("n1").unwrap();
    s.get("n1").unwrap();
    // A payload that does not match its CRC is refused and counted; so is a write without
    // a token the master signed.
    let slice = common::put_start(&c, "n2", 4)[0].clone();
    let mut conn =
        mc_transfer::DataConn::connect(&slice.endpoint, "mooncake_cluster", Duration::from_secs(2))
            .unwrap();
    conn.arm_deadline(std::time::Instant::now() + Duration::from_secs(10))
        .unwrap();
    let at = (slice.segment_id, slice.offset, slice.generation);
    let id = conn
        .send_object_write(at, b"evil", 1, slice.token.as_ref(), None)
        .unwrap();
    let e = conn.recv_write_ack(id).unwrap_err();
    assert_eq!(e.code(), mc_schema::ErrorCode::ChecksumMismatch, "{e}");
    let id = conn.send_object_write(at, b"evil", 1, None, None).unwrap();
    let e = conn.recv_write_ack(id).unwrap_err();
    assert_eq!(e.code(), mc_schema::ErrorCode::WriteTokenInvalid, "{e}");
    // A shard counts a transfer just after sending its answer, so the last one may show up
    // a moment after the client has it.
    let scrape_deadline = std::time::Instant::now() + Duration::from_secs(30);
    let after = loop {
        let after = values(&scrape_at(&c.node_rest_addr(0)));
        let writes = after["mc_shard_write_ops_total"]
            - before
                .get("mc_shard_write_ops_total")
                .copied()
                .unwrap_or(0.0);
        if writes >= 3.0 || std::time::Instant::now() >= scrape_deadline {
            break after;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let moved = |name: &str| after[name] - before.get(name).copied().unwrap_or(0.0);
    assert_eq!(after["mc_node_shards"], 1.0);
    assert_eq!(after["mc_node_mounted_segments"], 1.0);
    assert_eq!(after["mc_shard_segment_capacity_bytes"], (64 << 20) as f64);
    assert_eq!(moved("mc_shard_bytes_in_total"), 100_000.0);
    assert_eq!(moved("mc_shard_bytes_out_total"), 200_000.0);
    assert_eq!(moved("mc_shard_write_ops_total"), 3.0);
    assert_eq!(moved("mc_shard_read_ops_total"), 2.0);
    assert_eq!(moved("mc_shard_crc_failures_total"), 1.0);
    assert_eq!(moved("mc_shard_refused_writes_total{reason=forged}"), 1.0);
    assert_eq!(after["mc_shard_refused_writes_total{reason=expired}"], 0.0);
    assert_eq!(moved("mc_shard_write_errors_total"), 2.0);
    assert_eq!(
        after["mc_shard_transfer_latency_seconds{op=write}"],
        after["mc_shard_write_ops_total"]
    );
    assert_eq!(
        after["mc_shard_transfer_latency_seconds{op=read}"],
        after["mc_shard_read_ops_total"]
    );
}
