//! Every PromQL query of `docs/grafana-dashboard.json`, run against the Prometheus of a live
//! `mc-cluster up --prometheus` (Redis HA, so that path runs too): none may fail, none may
//! come back without a series.

mod common;

use std::time::{Duration, Instant};

use common::ClusterDir;
use mc_cluster::probe::http_get;
use serde_json::Value;

/// Longest wait for every query to have data (rates need two scrapes, 2 s apart).
const DATA_TIMEOUT: Duration = Duration::from_secs(90);

/// One query of a panel.
#[derive(Debug)]
struct PanelQuery {
    title: String,
    expr: String,
    /// The labels its legend names (`{{instance}}`): every series must carry them.
    legend_labels: Vec<String>,
}

/// Every target of every panel, rows' nested panels included.
fn panel_queries(dashboard: &Value) -> Vec<PanelQuery> {
    fn walk(panels: &Value, out: &mut Vec<PanelQuery>) {
        for p in panels.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?").to_string();
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    let legend = t["legendFormat"].as_str().unwrap_or("");
                    let legend_labels = legend
                        .split("{{")
                        .skip(1)
                        .filter_map(|part| part.split("}}").next())
                        .map(|label| label.trim().to_string())
                        .collect();
                    out.push(PanelQuery {
                        title: title.clone(),
                        expr: expr.to_string(),
                        legend_labels,
                    });
                }
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// Grafana's built-in interval variables, as Grafana would fill them for this scrape rate.
fn expand(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "2s")
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs one instant query: `Ok(its series)` or the error Prometheus gave.
fn query(prometheus: &str, expr: &str) -> Result<Vec<Value>, String> {
    let path = format!("/api/v1/query?query={}", url_encode(&expand(expr)));
    let r = http_get(prometheus, &path, Duration::from_secs(10)).map_err(|e| e.to_string())?;
    let body: Value = serde_json::from_str(&r.body).map_err(|e| format!("{e}: {}", r.body))?;
    if r.status != 200 || body["status"] != "success" {
        return Err(format!(
            "HTTP {}: {} {}",
            r.status, body["errorType"], body["error"]
        ));
    }
    Ok(body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

#[test]
fn every_grafana_panel_query_returns_series() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/grafana-dashboard.json"
    );
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let queries = panel_queries(&dashboard);
    assert!(queries.len() >= 10, "{queries:?}");

    let c = ClusterDir::new("grafana");
    c.ok(&[
        "up",
        "--ha",
        "redis",
        "--masters",
        "2",
        "--nodes",
        "2",
        "--segment",
        "64MB",
        "--prometheus",
    ]);
    // put/get traffic and every target scraped at least once.
    let check = c.ok(&["check"]);
    assert!(!check.contains("[FAIL]"), "{check}");
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(c.dir.join("state.json")).unwrap()).unwrap();
    let prometheus = format!("127.0.0.1:{}", state["prometheus"]["port"]);

    let started = Instant::now();
    loop {
        let mut empty = Vec::new();
        for q in &queries {
            let (title, expr) = (&q.title, &q.expr);
            match query(&prometheus, expr) {
                Ok(series) if series.is_empty() => empty.push(format!("{title}: {expr}")),
                Ok(series) => {
                    for label in &q.legend_labels {
                        assert!(
                            series.iter().all(|s| s["metric"].get(label).is_some()),
                            "panel {title:?}: the legend names {{{{{label}}}}}, which {expr:?} \
                             does not return: {series:?}"
                        );
                    }
                }
                Err(e) => panic!("panel {title:?}: query {expr:?} failed: {e}"),
            }
        }
        if empty.is_empty() {
            println!("{} queries, every one with series", queries.len());
            break;
        }
        assert!(
            started.elapsed() < DATA_TIMEOUT,
            "queries without series after {DATA_TIMEOUT:?}:\n{}",
            empty.join("\n")
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    c.ok(&["down", "--clean"]);
    assert!(common::procs_in(&c.dir).is_empty());
}
