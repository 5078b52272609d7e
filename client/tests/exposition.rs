//! The Prometheus text of a live master, a live store node and a client: `promtool check
//! metrics` accepts it, and its families (name, type, label names) are exactly those
//! written down below. The master and node lists were taken from a live scrape before the
//! metrics moved to the `prometheus` crate; the dashboards and Mooncake users rely on them.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{cluster, pattern, store};
use mc_cluster::probe;
use mooncake_rs::ReplicateConfig;

/// Family name → (type, sorted label names without `le`).
type Families = BTreeMap<String, (&'static str, Vec<String>)>;

/// Lint findings promtool reports for Mooncake's own names, kept for compatibility.
const ALLOWED_LINTS: [&str; 4] = [
    "master_evicted_key_count counter metrics should have \"_total\" suffix",
    "master_evicted_key_count non-histogram and non-summary metrics should not have \"_count\" suffix",
    "master_evicted_size_bytes counter metrics should have \"_total\" suffix",
    "master_key_count non-histogram and non-summary metrics should not have \"_count\" suffix",
];

/// The master's RPCs in metric-name form: those scraped before, and the node-index RPCs.
const MASTER_OPS: [&str; 32] = [
    "mount_segment",
    "unmount_segment",
    "ping",
    "put_start",
    "put_end",
    "put_revoke",
    "get_replica_list",
    "exist_key",
    "get_size",
    "remove",
    "remove_by_regex",
    "remove_all",
    "drain_segments",
    "upsert_start",
    "upsert_end",
    "upsert_revoke",
    "sync",
    "report_inventory",
    "inventory_done",
    "report_hits",
    "report_offloaded",
    "report_promoted",
    "report_dropped",
    "create_copy_task",
    "create_move_task",
    "query_task",
    "fetch_tasks",
    "task_start",
    "task_end",
    "list_tasks",
    "batch_replica_clear",
    "put_credit",
];

fn families(list: &[(&str, &'static str, &[&str])]) -> Families {
    list.iter()
        .map(|(name, kind, labels)| {
            let labels = labels.iter().map(|l| l.to_string()).collect();
            (name.to_string(), (*kind, labels))
        })
        .collect()
}

fn master_families() -> Families {
    let mut f = families(&[
        ("master_key_count", "gauge", &[]),
        ("master_allocated_bytes", "gauge", &[]),
        ("master_total_capacity_bytes", "gauge", &[]),
        ("master_active_clients", "gauge", &[]),
        ("master_mounted_segments", "gauge", &[]),
        ("master_successful_evictions_total", "counter", &[]),
        ("master_evicted_key_count", "counter", &[]),
        ("master_evicted_size_bytes", "counter", &[]),
        ("master_preempted_put_starts_total", "counter", &[]),
        ("master_released_put_start_bytes_total", "counter", &[]),
        ("master_shared_host_replicas_total", "counter", &[]),
        ("master_rpc_latency_seconds", "histogram", &["op"]),
        // The snapshot writer's (docs/snapshots.md).
        ("master_snapshots_total", "counter", &[]),
        ("master_snapshot_failures_total", "counter", &[]),
        ("master_last_snapshot_timestamp_seconds", "gauge", &[]),
        ("master_last_snapshot_duration_seconds", "gauge", &[]),
        ("master_last_snapshot_size_bytes", "gauge", &[]),
        ("master_last_snapshot_objects", "gauge", &[]),
        // The SSD tier's (docs/why-ssd-format.md).
        ("master_ssd_capacity_bytes", "gauge", &[]),
        ("master_ssd_replica_slices", "gauge", &[]),
        ("master_offloaded_objects_total", "counter", &[]),
        ("master_offload_rejected_total", "counter", &[]),
        ("master_evict_offloads_total", "counter", &[]),
        ("master_promoted_objects_total", "counter", &[]),
        // Copy and move tasks (docs/tasks.md).
        ("master_tasks_pending", "gauge", &[]),
        ("master_tasks_processing", "gauge", &[]),
        ("master_tasks_finished", "gauge", &[]),
        // Put credit (docs/why-fast-path.md).
        ("master_put_credit_bytes", "gauge", &[]),
        ("master_put_credit_commits_total", "counter", &[]),
        // Rotating the write secret (docs/why-fast-path.md).
        ("master_write_secret_rotations_total", "counter", &[]),
        ("master_write_secret_reload_errors_total", "counter", &[]),
        ("master_write_secret_rotation_pending", "gauge", &[]),
    ]);
    for op in MASTER_OPS {
        for what in ["requests", "failures", "keys"] {
            f.insert(format!("master_{op}_{what}_total"), ("counter", vec![]));
        }
    }
    f
}

fn node_families() -> Families {
    let shard: &[&str] = &["endpoint", "shard"];
    families(&[
        ("mc_node_shards", "gauge", &[]),
        ("mc_node_segments", "gauge", &[]),
        ("mc_node_mounted_segments", "gauge", &[]),
        ("mc_node_master_connected", "gauge", &[]),
        ("mc_node_ring_full_events", "gauge", &[]),
        ("mc_node_agent_restarts", "gauge", &[]),
        ("mc_node_dataplane_restarts", "gauge", &[]),
        ("mc_node_arena_pool_bytes", "gauge", &[]),
        ("mc_node_arena_used_bytes", "gauge", &[]),
        (
            "mc_shard_refused_writes_total",
            "counter",
            &["endpoint", "reason", "shard"],
        ),
        ("mc_shard_segment_capacity_bytes", "gauge", shard),
        ("mc_shard_connections_total", "counter", shard),
        ("mc_shard_write_ops_total", "counter", shard),
        ("mc_shard_bytes_in_total", "counter", shard),
        ("mc_shard_write_errors_total", "counter", shard),
        ("mc_shard_read_ops_total", "counter", shard),
        ("mc_shard_bytes_out_total", "counter", shard),
        ("mc_shard_read_errors_total", "counter", shard),
        ("mc_shard_crc_failures_total", "counter", shard),
        ("mc_shard_range_busy_total", "counter", shard),
        ("mc_shard_stale_term_writes_total", "counter", shard),
        ("mc_shard_index_errors_total", "counter", shard),
        ("mc_shard_validated_reads_total", "counter", shard),
        ("mc_shard_gone_reads_total", "counter", shard),
        ("mc_shard_probes_total", "counter", shard),
        ("mc_shard_index_entries", "gauge", shard),
        ("mc_shard_index_bytes", "gauge", shard),
        ("mc_shard_ssd_bytes", "gauge", shard),
        ("mc_shard_ssd_objects", "gauge", shard),
        ("mc_shard_ssd_quota_bytes", "gauge", shard),
        ("mc_shard_ssd_offload_queue_depth", "gauge", shard),
        ("mc_shard_ssd_offloads_total", "counter", shard),
        ("mc_shard_ssd_offload_bytes_total", "counter", shard),
        ("mc_shard_ssd_offload_errors_total", "counter", shard),
        ("mc_shard_ssd_offload_dropped_total", "counter", shard),
        ("mc_shard_ssd_reads_total", "counter", shard),
        ("mc_shard_ssd_read_bytes_total", "counter", shard),
        ("mc_shard_ssd_crc_failures_total", "counter", shard),
        ("mc_shard_ssd_deletes_total", "counter", shard),
        ("mc_shard_ssd_torn_records_total", "counter", shard),
        ("mc_shard_ssd_promotions_total", "counter", shard),
        ("mc_shard_ssd_evicted_total", "counter", shard),
        ("mc_shard_ssd_checkpoints_total", "counter", shard),
        ("mc_shard_ssd_checkpoints_refused_total", "counter", shard),
        ("mc_shard_ssd_write_buffers_reused_total", "counter", shard),
        ("mc_shard_ssd_shared_syncs_total", "counter", shard),
        ("mc_shard_ssd_checkpoint_records", "gauge", shard),
        ("mc_shard_ssd_scanned_records", "gauge", shard),
        (
            "mc_shard_transfer_latency_seconds",
            "histogram",
            &["endpoint", "op", "shard"],
        ),
    ])
}

fn client_families() -> Families {
    families(&[
        ("mc_client_calls_total", "counter", &["op"]),
        ("mc_client_keys_total", "counter", &["op"]),
        ("mc_client_bytes_total", "counter", &["op"]),
        ("mc_client_failed_keys_total", "counter", &["op"]),
        ("mc_client_call_latency_seconds", "histogram", &["op"]),
        ("mc_client_same_host_reads_total", "counter", &[]),
        ("mc_client_same_host_fallbacks_total", "counter", &[]),
        ("mc_client_hot_cache_hits_total", "counter", &[]),
        ("mc_client_hot_cache_misses_total", "counter", &[]),
        ("mc_client_hot_cache_admitted_total", "counter", &[]),
        ("mc_client_hot_cache_evicted_total", "counter", &[]),
        ("mc_client_hot_cache_stale_total", "counter", &[]),
        ("mc_client_hot_cache_corrupt_total", "counter", &[]),
        ("mc_client_hot_cache_invalidated_total", "counter", &[]),
        ("mc_client_hot_cache_used_bytes", "gauge", &[]),
        ("mc_client_hot_cache_capacity_bytes", "gauge", &[]),
    ])
}

/// Label names of a sample's `{...}` part (values are quoted; `\"` escapes a quote).
fn label_names(labels: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = labels;
    while let Some((name, tail)) = rest.split_once("=\"") {
        names.push(name.trim_start_matches(',').to_string());
        let mut escaped = false;
        let end = tail
            .char_indices()
            .find(|&(_, ch)| {
                let close = ch == '"' && !escaped;
                escaped = ch == '\\' && !escaped;
                close
            })
            .map(|(i, _)| i)
            .expect("a closed label value");
        rest = &tail[end + 1..];
    }
    names
}

/// The families `text` exports (from its `# TYPE` lines), each checked to have samples that
/// all carry one label set.
fn exported(text: &str) -> Families {
    let mut kinds = BTreeMap::new();
    for l in text.lines() {
        if let Some(t) = l.strip_prefix("# TYPE ") {
            let (name, kind) = t.split_once(' ').expect("# TYPE name kind");
            let kind = ["counter", "gauge", "histogram"]
                .into_iter()
                .find(|k| *k == kind)
                .unwrap_or_else(|| panic!("unexpected type in {l}"));
            assert!(
                kinds.insert(name.to_string(), kind).is_none(),
                "{name} twice"
            );
        }
    }
    let mut found = Families::new();
    for l in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, _value) = l.rsplit_once(' ').expect("a sample and its value");
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, label_names(rest.trim_end_matches('}'))),
            None => (series, Vec::new()),
        };
        let family = ["", "_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .find(|f| match kinds.get(*f) {
                Some(&"histogram") => *f != name,
                Some(_) => *f == name,
                None => false,
            })
            .unwrap_or_else(|| panic!("{l}: no # TYPE for its family"));
        let mut labels: Vec<String> = labels.into_iter().filter(|n| n != "le").collect();
        labels.sort();
        let entry = found
            .entry(family.to_string())
            .or_insert_with(|| (kinds[family], labels.clone()));
        assert_eq!(entry.1, labels, "{family}: samples with different labels");
    }
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        kinds.keys().collect::<Vec<_>>(),
        "a family without samples"
    );
    found
}

/// Runs `promtool check metrics` on `text`; only [`ALLOWED_LINTS`] may be reported.
fn promtool_accepts(what: &str, text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (scripts/setup.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let findings: Vec<&str> = report.lines().filter(|l| !l.trim().is_empty()).collect();
    let unexpected: Vec<&&str> = findings
        .iter()
        .filter(|l| !ALLOWED_LINTS.contains(&l.trim()))
        .collect();
    // promtool exits 3 for lint findings only and 1 for text it cannot parse.
    let code = out.status.code();
    assert!(
        unexpected.is_empty() && (code == Some(0) || (code == Some(3) && !findings.is_empty())),
        "promtool rejects the {what}'s metrics (exit {code:?}):\n{report}\n{text}"
    );
}

fn http_text(addr: &str) -> String {
    let r = probe::http_get(addr, "/metrics", Duration::from_secs(5)).unwrap();
    assert_eq!(r.status, 200);
    r.body
}

#[test]
fn master_node_and_client_metrics_pass_promtool_with_the_names_of_before() {
    let c = cluster(1, "64MB");
    let s = store(&c);
    let cfg = ReplicateConfig::default();
    for i in 0..3 {
        s.put(&format!("x{i}"), &pattern(5_000, i), &cfg).unwrap();
    }
    s.get("x0").unwrap();
    assert!(s.get("missing").is_err());

    let master = http_text(&c.metrics_addr());
    promtool_accepts("master", &master);
    assert_eq!(exported(&master), master_families());

    // Only names and types are compared here; client/tests/metrics.rs checks the values.
    let node = http_text(&c.node_rest_addr(0));
    promtool_accepts("store node", &node);
    assert_eq!(exported(&node), node_families());

    let client = s.metrics_text();
    promtool_accepts("client", &client);
    assert_eq!(exported(&client), client_families());
    assert!(
        client.contains("\nmc_client_calls_total{op=\"put\"} 3\n"),
        "{client}"
    );
    assert!(
        client.contains("\nmc_client_failed_keys_total{op=\"get\"} 1\n"),
        "{client}"
    );
}
