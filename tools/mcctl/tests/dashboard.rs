//! `/dashboard` in a real browser: headless Chromium loads the leader's and a standby's page
//! from a live HA cluster, and the numbers it shows must equal `/health`, `/metrics` and
//! `/get_segments_detail`. Screenshots go to `target/dashboard/` for people to look at.
//!
//! Skipped, with the reason, only where Chromium is not installed; under `.ci/run`
//! (`MC_CI_CLEAN_ENV` set, and `scripts/setup.sh` installs Chromium) a missing browser fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mc_cluster::probe::http_get;
use mc_cluster::{ClusterSpec, Coordinator, CoordinatorKind, LocalCluster, NodeSpec};
use mooncake_rs::{ReplicateConfig, Store, StoreConfig};
use serde_json::Value;

/// Longest wait for the page to show live data, or for a leader.
const WAIT: Duration = Duration::from_secs(120);

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Some(p) = std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
        {
            return Some(p);
        }
    }
    None
}

/// `target/` of this build (the test runs from `target/<profile>/deps`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// Runs headless Chromium on `url` with a private profile in `profile`.
fn browser(chrome: &Path, profile: &Path, extra: &[String], url: &str) -> String {
    // `timeout` bounds a browser that hangs; the page itself is polled, never timed.
    let out = Command::new("timeout")
        .arg("120")
        .arg(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=6000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The opening tag and text of the element with `id` in a DOM dump.
fn element<'a>(dom: &'a str, id: &str) -> (&'a str, &'a str) {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let start = dom[..at].rfind('<').unwrap();
    let end = at + dom[at..].find('>').unwrap();
    let text_end = end + 1 + dom[end + 1..].find('<').unwrap();
    (&dom[start..=end], &dom[end + 1..text_end])
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let at = tag.find(&key)? + key.len();
    Some(&tag[at..at + tag[at..].find('"')?])
}

/// The raw value (`data-value`) of element `id`.
fn value<'a>(dom: &'a str, id: &str) -> &'a str {
    attr(element(dom, id).0, "data-value").unwrap_or_else(|| panic!("#{id} has no data-value"))
}

fn text<'a>(dom: &'a str, id: &str) -> &'a str {
    element(dom, id).1
}

/// Loads `url` until the page has refreshed from live data at least twice.
fn live_dom(chrome: &Path, profile: &Path, url: &str) -> String {
    let started = Instant::now();
    loop {
        let dom = browser(chrome, profile, &["--dump-dom".to_string()], url);
        let body = dom.find("<body").map(|at| &dom[at..]).unwrap_or("");
        let refreshes: u64 = attr(body, "data-refreshes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if attr(body, "data-state") == Some("live") && refreshes >= 2 {
            return dom;
        }
        assert!(
            started.elapsed() < WAIT,
            "the page never showed live data:\n{dom}"
        );
    }
}

fn get_json(addr: &str, path: &str) -> Value {
    let r = http_get(addr, path, Duration::from_secs(5)).unwrap();
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

/// The value of a sample line `name{labels} value` in a Prometheus text exposition.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

/// p99 of `op` from `/metrics`: the first bucket bound holding 99 % of the samples.
fn p99_from_metrics(metrics: &str, ops: &[&str]) -> Option<f64> {
    let total: f64 = ops
        .iter()
        .map(|op| {
            sample(
                metrics,
                &format!("master_rpc_latency_seconds_count{{op=\"{op}\"}}"),
            )
        })
        .sum();
    if total == 0.0 {
        return None;
    }
    let prefix = "master_rpc_latency_seconds_bucket{";
    let mut best = None;
    // Cumulative counts by bound, added up over `ops` (their lines share the bounds).
    let mut by_le: Vec<(String, f64)> = Vec::new();
    for line in metrics.lines().filter(|l| l.starts_with(prefix)) {
        if !ops.iter().any(|op| line.contains(&format!("op=\"{op}\""))) {
            continue;
        }
        let le = line
            .split("le=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        match by_le.iter_mut().find(|x| x.0 == le) {
            Some(x) => x.1 += count,
            None => by_le.push((le.to_string(), count)),
        }
    }
    for (le, count) in by_le {
        if le == "+Inf" {
            continue;
        }
        let le: f64 = le.parse().unwrap();
        best = Some(le);
        if count >= 0.99 * total {
            return Some(le);
        }
    }
    best
}

fn leader_index(cluster: &LocalCluster) -> usize {
    let started = Instant::now();
    loop {
        for i in 0..cluster.master_count() {
            let h = get_json(&cluster.metrics_addr_of(i), "/health");
            if h["role"] == "leader" && h["service_ready"] == true {
                return i;
            }
        }
        assert!(started.elapsed() < WAIT, "no leader");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_leader_page(dom: &str, admin: &str) {
    let h = get_json(admin, "/health");
    for (id, field) in [
        ("keys", "keys"),
        ("segment-count", "segments"),
        ("clients", "clients"),
        ("allocated-bytes", "allocated_bytes"),
        ("capacity-bytes", "capacity_bytes"),
        ("evictions", "successful_evictions_total"),
        ("evicted-keys", "evicted_keys_total"),
        ("evicted-bytes", "evicted_bytes_total"),
        ("view-version", "view_version"),
    ] {
        assert_eq!(
            value(dom, id),
            h[field].to_string(),
            "#{id} vs /health {field}"
        );
    }
    for id in [
        "keys",
        "segment-count",
        "clients",
        "evictions",
        "evicted-keys",
        "view-version",
    ] {
        assert_eq!(text(dom, id), value(dom, id), "#{id} shows its number");
    }
    assert_eq!(value(dom, "role"), "leader");
    assert_eq!(value(dom, "ha-state"), h["ha_state"].as_str().unwrap());
    assert_eq!(value(dom, "leader"), h["leader_address"].as_str().unwrap());
    assert!(attr(element(dom, "standby-banner").0, "hidden").is_some());

    let metrics = http_get(admin, "/metrics", Duration::from_secs(5))
        .unwrap()
        .body;
    let rows: [(&str, &[&str]); 2] = [
        ("put", &["put_start", "put_credit"]),
        ("get", &["get_replica_list"]),
    ];
    for (id, ops) in rows {
        let sum = |what: &str| -> f64 {
            ops.iter()
                .map(|op| sample(&metrics, &format!("master_{op}_{what}_total")))
                .sum()
        };
        let (total, failures) = (sum("requests"), sum("failures"));
        assert_eq!(
            value(dom, &format!("{id}-total")).parse::<f64>().unwrap(),
            total
        );
        assert!(total > 0.0, "the test made {ops:?} requests");
        assert_eq!(
            value(dom, &format!("{id}-failures"))
                .parse::<f64>()
                .unwrap(),
            failures
        );
        let p99 = p99_from_metrics(&metrics, ops).expect("samples");
        assert_eq!(
            value(dom, &format!("{id}-p99")).parse::<f64>().unwrap(),
            p99,
            "{id} p99"
        );
    }

    let segs = get_json(admin, "/get_segments_detail");
    let segs = segs["segments"].as_array().unwrap();
    assert_eq!(dom.matches("class=\"segment\"").count(), segs.len());
    for s in segs {
        let name = s["name"].as_str().unwrap();
        let at = dom
            .find(&format!("data-name=\"{name}\""))
            .expect("segment row");
        let tag = &dom[dom[..at].rfind('<').unwrap()..at + dom[at..].find('>').unwrap()];
        assert_eq!(
            attr(tag, "data-used"),
            Some(s["used_bytes"].to_string().as_str())
        );
        assert_eq!(
            attr(tag, "data-capacity"),
            Some(s["capacity_bytes"].to_string().as_str())
        );
    }
}

#[test]
fn dashboard_shows_what_health_and_metrics_say() {
    let Some(chrome) = chromium() else {
        assert!(
            std::env::var_os("MC_CI_CLEAN_ENV").is_none(),
            "chromium is missing under CI: scripts/setup.sh installs it"
        );
        eprintln!("skipped: chromium is not installed (scripts/setup.sh installs it)");
        return;
    };
    let coordinator = Coordinator::start(CoordinatorKind::Etcd).unwrap();
    let node = |host: &str| NodeSpec {
        segment_size: "64MB".into(),
        ..NodeSpec::on_host(host)
    };
    let cluster = LocalCluster::start(ClusterSpec {
        masters: 2,
        master_args: coordinator.master_args(),
        master_server: Some(coordinator.locator()),
        nodes: vec![node("127.0.0.2"), node("127.0.0.3")],
        ..ClusterSpec::default()
    })
    .unwrap();
    let leader = leader_index(&cluster);
    let standby = 1 - leader;

    let store = Store::connect(StoreConfig::new(coordinator.locator())).unwrap();
    for i in 0..20 {
        let value = vec![i as u8; 4096 * (i + 1)];
        store
            .put(&format!("dash/{i}"), &value, &ReplicateConfig::default())
            .unwrap();
        assert_eq!(store.get(&format!("dash/{i}")).unwrap(), value);
    }
    assert!(store.get("dash/missing").is_err());

    let profile = std::env::temp_dir().join(format!("mc-dashboard-chrome-{}", std::process::id()));
    let shots = target_dir().join("dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let leader_admin = cluster.metrics_addr_of(leader);
    let url = format!("http://{leader_admin}/dashboard");
    let dom = live_dom(&chrome, &profile, &url);
    assert_leader_page(&dom, &leader_admin);

    // Both masters, as etcd's roster lists them, each linking to its own dashboard.
    for i in 0..cluster.master_count() {
        let rpc = cluster.master_addr_of(i);
        let at = dom
            .find(&format!("data-rpc=\"{rpc}\""))
            .expect("master listed");
        let tag = &dom[dom[..at].rfind('<').unwrap()..at + dom[at..].find('>').unwrap()];
        assert_eq!(
            attr(tag, "data-leader"),
            Some(if i == leader { "true" } else { "false" })
        );
        let link = format!("href=\"http://{}/dashboard\"", cluster.metrics_addr_of(i));
        assert!(
            dom[at..].split("</li>").next().unwrap().contains(&link),
            "{link}"
        );
    }

    let standby_url = format!("http://{}/dashboard", cluster.metrics_addr_of(standby));
    let dom = live_dom(&chrome, &profile, &standby_url);
    assert_eq!(value(&dom, "role"), "standby");
    assert!(attr(element(&dom, "standby-banner").0, "hidden").is_none());
    assert!(text(&dom, "standby-leader").contains(&cluster.master_addr_of(leader)));
    assert_eq!(
        attr(element(&dom, "leader-link").0, "href"),
        Some(url.as_str())
    );
    assert!(dom.contains("Segments are listed by the leader"));

    for (name, size, page) in [
        ("leader-laptop", "1280,1100", &url),
        ("leader-phone", "390,1600", &url),
        ("standby-laptop", "1280,700", &standby_url),
    ] {
        let file = shots.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&file);
        browser(
            &chrome,
            &profile,
            &[
                format!("--screenshot={}", file.display()),
                format!("--window-size={size}"),
            ],
            page,
        );
        assert!(
            std::fs::metadata(&file)
                .map(|m| m.len() > 0)
                .unwrap_or(false),
            "{file:?}"
        );
        println!("screenshot: {}", file.display());
    }
    let _ = std::fs::remove_dir_all(&profile);
}
