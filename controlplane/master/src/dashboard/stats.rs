//! `GET /api/v1/stats`: what the dashboard shows beyond `/health`, as JSON: this master's
//! address, the masters the coordinator lists, where the leader's dashboard is, and per-RPC
//! totals with a p99 latency taken from the same histogram `/metrics` exports.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use mc_rpc::RpcClient;
use mc_schema::handshake::Role;
use mc_schema::msg::{Request, ResponseBody};
use prometheus::proto::{MetricFamily, MetricType};
use serde_json::{Map, Value, json};

use crate::http_state::HttpState;
use crate::metrics::RpcOp;

/// Longest a standby waits for the leader's Ping answer (which names its admin port).
const LEADER_PING_TIMEOUT: Duration = Duration::from_secs(1);
/// The latency family of [`crate::metrics::RpcMetrics`].
const LATENCY_FAMILY: &str = "master_rpc_latency_seconds";

/// `GET /api/v1/stats`.
pub async fn stats(State(s): State<HttpState>) -> Json<Value> {
    let status = s.plane.status();
    let leader = status.leader.clone();
    let leader_admin = match &leader {
        Some(view) if view.leader != s.rpc_address => {
            let (addr, id) = (view.leader.clone(), s.cluster_id.clone());
            tokio::task::spawn_blocking(move || leader_admin_url(&addr, &id))
                .await
                .ok()
                .flatten()
        }
        Some(_) => None,
        None => None,
    };
    let masters = match &s.roster {
        Some(roster) => roster.members().await.ok().map(|members| {
            let leader = leader.as_ref().map(|v| v.leader.as_str());
            members_json(&members, leader)
        }),
        None => None,
    };
    let families = s.metrics.families();
    Json(json!({
        "masters": masters,
        "rpc_address": s.rpc_address,
        "cluster_id": s.cluster_id,
        "role": status.state.role(),
        "ha_state": status.state.name(),
        "leader_address": leader.as_ref().map(|v| v.leader.as_str()),
        "view_version": leader.as_ref().map(|v| v.version),
        "leader_dashboard_url": leader_admin,
        "ops": ops_json(&families),
    }))
}

/// The masters the coordinator's roster lists, each with its dashboard and whether it is
/// the leader.
fn members_json(members: &[mc_coord::elect::Member], leader: Option<&str>) -> Value {
    let list = members.iter().map(|m| {
        let host = host_of(&m.rpc_address);
        json!({
            "rpc_address": m.rpc_address,
            "admin_port": m.admin_port,
            "dashboard_url": format!("http://{host}:{}/dashboard", m.admin_port),
            "leader": Some(m.rpc_address.as_str()) == leader,
        })
    });
    Value::Array(list.collect())
}

/// The host part of `host:port`.
fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(h, _)| h)
}

/// The leader's dashboard URL, from the admin port its Ping answer reports; `None` when it
/// does not answer in time.
fn leader_admin_url(leader_rpc: &str, cluster_id: &str) -> Option<String> {
    let mut rpc =
        RpcClient::connect(leader_rpc, Role::Tool, cluster_id, LEADER_PING_TIMEOUT).ok()?;
    let answer = rpc
        .call(
            &Request::Ping { client_id: 0 },
            Instant::now() + LEADER_PING_TIMEOUT,
        )
        .ok()?;
    let ResponseBody::PingAck { admin_port, .. } = answer.body else {
        return None;
    };
    let host = host_of(leader_rpc);
    (admin_port != 0).then(|| format!("http://{host}:{admin_port}/dashboard"))
}

/// The RPCs a put is made of, summed in the `puts` entry of [`ops_json`]: PutStart for the
/// long way, PutCredit for puts into put credit (`docs/why-fast-path.md`).
const PUT_OPS: [RpcOp; 2] = [RpcOp::PutStart, RpcOp::PutCredit];

/// `{op: {requests_total, failures_total, keys_total, latency_count, latency_p99_seconds}}`
/// for every RPC op, plus `puts`: the same over [`PUT_OPS`] together.
pub fn ops_json(families: &[MetricFamily]) -> Value {
    let counter = |name: String| -> u64 {
        families
            .iter()
            .find(|f| f.name() == name && f.get_field_type() == MetricType::COUNTER)
            .and_then(|f| f.get_metric().first())
            .map_or(0, |m| m.get_counter().get_value() as u64)
    };
    let entry = |names: &[&str]| {
        let sum = |what: &str| -> u64 {
            names
                .iter()
                .map(|n| counter(format!("master_{n}_{what}_total")))
                .sum()
        };
        let (count, buckets) = latency(families, names);
        json!({
            "requests_total": sum("requests"),
            "failures_total": sum("failures"),
            "keys_total": sum("keys"),
            "latency_count": count,
            "latency_p99_seconds": quantile_bound(0.99, &buckets, count),
        })
    };
    let mut ops = Map::new();
    for op in RpcOp::ALL {
        ops.insert(op.name().to_string(), entry(&[op.name()]));
    }
    ops.insert("puts".into(), entry(&PUT_OPS.map(RpcOp::name)));
    Value::Object(ops)
}

/// Sample count and cumulative buckets of the latency histograms of `ops`, added up.
fn latency(families: &[MetricFamily], ops: &[&str]) -> (u64, Vec<(f64, u64)>) {
    let mut count = 0;
    let mut buckets: Vec<(f64, u64)> = Vec::new();
    let Some(family) = families.iter().find(|f| f.name() == LATENCY_FAMILY) else {
        return (0, buckets);
    };
    let of_ops = family
        .get_metric()
        .iter()
        .filter(|m| m.get_label().iter().any(|l| ops.contains(&l.value())));
    for m in of_ops {
        let h = m.get_histogram();
        count += h.get_sample_count();
        for (i, b) in h.get_bucket().iter().enumerate() {
            match buckets.get_mut(i) {
                Some(x) => x.1 += b.cumulative_count(),
                None => buckets.push((b.upper_bound(), b.cumulative_count())),
            }
        }
    }
    (count, buckets)
}

/// The upper bound of the bucket holding quantile `q`, as Prometheus's `histogram_quantile`
/// would place it before interpolating: the first finite bucket whose cumulative count
/// reaches `q * total`, or the highest finite bound when the quantile lies above every one.
/// `None` without samples.
pub fn quantile_bound(q: f64, buckets: &[(f64, u64)], total: u64) -> Option<f64> {
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let finite = buckets.iter().filter(|(bound, _)| bound.is_finite());
    let mut highest = None;
    for &(bound, cumulative) in finite {
        if cumulative as f64 >= rank {
            return Some(bound);
        }
        highest = Some(bound);
    }
    highest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_bound_picks_the_bucket_holding_the_rank() {
        let b = [(0.001, 50), (0.01, 99), (0.1, 100), (f64::INFINITY, 100)];
        assert_eq!(quantile_bound(0.99, &b, 100), Some(0.01));
        assert_eq!(quantile_bound(0.5, &b, 100), Some(0.001));
        assert_eq!(quantile_bound(1.0, &b, 100), Some(0.1));
        assert_eq!(quantile_bound(0.99, &b, 0), None);
        let above = [(0.001, 0), (f64::INFINITY, 10)];
        assert_eq!(quantile_bound(0.99, &above, 10), Some(0.001));
    }

    #[test]
    fn ops_read_the_rpc_families() {
        let rpc = crate::metrics::RpcMetrics::default();
        rpc.record(RpcOp::PutStart, 3, false, Duration::from_micros(70));
        rpc.record(RpcOp::PutStart, 1, true, Duration::from_millis(3));
        let registry = prometheus::Registry::new();
        rpc.register(&registry).unwrap();
        let ops = ops_json(&registry.gather());
        let put = &ops["put_start"];
        assert_eq!(put["requests_total"], 2);
        assert_eq!(put["failures_total"], 1);
        assert_eq!(put["keys_total"], 4);
        assert_eq!(put["latency_count"], 2);
        assert_eq!(put["latency_p99_seconds"], 0.005);
        assert_eq!(ops["get_replica_list"]["latency_p99_seconds"], Value::Null);
        rpc.record(RpcOp::PutCredit, 16, false, Duration::from_micros(70));
        let ops = ops_json(&registry.gather());
        assert_eq!(ops["puts"]["requests_total"], 3);
        assert_eq!(ops["puts"]["keys_total"], 20);
        assert_eq!(ops["puts"]["latency_count"], 3);
        assert_eq!(ops["put_start"]["requests_total"], 2);
    }
}
