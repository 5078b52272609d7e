//! The master's inspection endpoints against a live cluster holding data: formats, 404 and
//! 400 answers with JSON errors, no leases granted, and junk that changes nothing.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{cluster, pattern, store};
use mc_cluster::probe;
use mooncake_rs::{ErrorCode, ReplicateConfig};
use serde_json::Value;

fn get(c: &mc_cluster::LocalCluster, path: &str) -> (u16, String) {
    let r = probe::http_get(&c.metrics_addr(), path, Duration::from_secs(5)).unwrap();
    (r.status, r.body)
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Sends raw bytes to the admin port and returns what came back (status line first).
fn raw(c: &mc_cluster::LocalCluster, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(c.metrics_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn query_endpoints_answer_in_mooncake_formats_without_leases() {
    let c = cluster(1, "64MB");
    let s = store(&c);
    let cfg = ReplicateConfig::default();
    s.put("alpha", &pattern(5000, 1), &cfg).unwrap();
    s.put("beta", &pattern(20 << 20, 2), &cfg).unwrap();
    let seg = s.replicas("beta").unwrap()[0].slices[0].endpoint.clone();
    s.remove("beta", true).unwrap();
    s.put("beta", &pattern(20 << 20, 2), &cfg).unwrap();

    let (st, body) = get(&c, "/query_key?key=alpha");
    assert_eq!(st, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["size"], 5000);
    assert_eq!(v["transport_endpoint_"], seg.as_str());
    assert_eq!(v["buffer_descriptors"][0]["size"], 5000);
    let (_, body) = get(&c, "/query_key?key=beta");
    assert_eq!(
        json(&body)["buffer_descriptors"].as_array().unwrap().len(),
        2,
        "20 MiB = 2 slices"
    );
    // Queries grant no lease: a plain remove still works.
    s.remove("alpha", false).unwrap();
    s.put("alpha", &pattern(5000, 1), &cfg).unwrap();

    let (st, body) = get(&c, "/query_key?key=nope");
    assert_eq!(st, 404);
    assert_eq!(json(&body)["code"], ErrorCode::ObjectNotFound.code());
    let (st, body) = get(&c, "/query_key");
    assert_eq!(st, 400);
    assert_eq!(json(&body)["code"], ErrorCode::InvalidParams.code());

    let (st, body) = get(&c, "/batch_query_keys?keys=alpha,nope");
    assert_eq!(st, 200);
    let v = json(&body);
    assert_eq!(v["success"], true);
    assert_eq!(v["data"]["alpha"]["ok"], true);
    assert_eq!(
        v["data"]["alpha"]["values"][0]["transport_endpoint_"],
        seg.as_str()
    );
    assert_eq!(v["data"]["nope"]["ok"], false);

    let (_, body) = get(&c, "/get_all_keys");
    let mut keys: Vec<&str> = body.lines().collect();
    keys.sort();
    assert_eq!(keys, ["alpha", "beta"]);
    assert_eq!(get(&c, "/get_all_keys?limit=1").1.lines().count(), 1);
    assert_eq!(get(&c, "/get_all_keys?regex=^al").1, "alpha\n");
    assert_eq!(get(&c, "/get_all_keys?regex=(").0, 400);
    assert_eq!(get(&c, "/get_all_keys?limit=lots").0, 400);

    assert_eq!(get(&c, "/get_all_segments").1, format!("{seg}\n"));
    let (st, body) = get(&c, &format!("/query_segment?segment={seg}"));
    assert_eq!(st, 200);
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[0], seg);
    assert!(lines[1].starts_with("Used(bytes): "), "{body}");
    assert_eq!(lines[2], format!("Capacity(bytes): {}", 64 << 20));
    assert_eq!(get(&c, "/query_segment?segment=x:1").0, 404);
    let v = json(&get(&c, "/get_segments_detail").1);
    assert_eq!(v["segments"][0]["capacity_bytes"], 64 << 20);

    // Junk and bad parameters change nothing.
    let junk = raw(&c, &pattern(3000, 9));
    assert!(junk.is_empty() || junk.starts_with("HTTP/1.1 4"), "{junk}");
    let bad = raw(&c, b"POST /api/v1/remove_all?force=maybe HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    assert_eq!(s.get("alpha").unwrap(), pattern(5000, 1));

    let ok = raw(&c, b"POST /api/v1/remove_all?force=true HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("\"removed\":2"), "{ok}");
    assert_eq!(
        s.get("alpha").unwrap_err().code(),
        ErrorCode::ObjectNotFound
    );
}

/// One HTTP/1.1 request with an optional body to `addr`; returns (status, body).
fn request(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let status = String::from_utf8_lossy(&out[..12.min(out.len())])
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let at = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(out.len(), |i| i + 4);
    (status, out[at..].to_vec())
}

#[test]
fn embedded_metadata_server_round_trips_encoded_keys() {
    let port = mc_cluster::pick_free_port("127.0.0.1").unwrap();
    let _cluster = mc_cluster::LocalCluster::start(mc_cluster::ClusterSpec {
        master_args: vec![
            "--enable_http_metadata_server=true".into(),
            "--http_metadata_server_host=127.0.0.1".into(),
            format!("--http_metadata_server_port={port}"),
        ],
        ..mc_cluster::ClusterSpec::default()
    })
    .expect("cluster starts");
    let addr = format!("127.0.0.1:{port}");
    let key = "mooncake%2Fram%2F127.0.0.1%3A1234%20x";
    let value = br#"{"name":"127.0.0.1:1234","buffers":[1,2,3]}"#;
    assert_eq!(request(&addr, "GET", "/health", b"").0, 200);
    assert_eq!(
        request(&addr, "GET", &format!("/metadata?key={key}"), b"").0,
        404
    );
    assert_eq!(
        request(&addr, "PUT", &format!("/metadata?key={key}"), value).0,
        200
    );
    let (st, body) = request(&addr, "GET", &format!("/metadata?key={key}"), b"");
    assert_eq!((st, body.as_slice()), (200, &value[..]));
    // The same key spelled without encoding of the slashes is the same key once decoded.
    let (st, body) = request(
        &addr,
        "GET",
        "/metadata?key=mooncake/ram/127.0.0.1:1234%20x",
        b"",
    );
    assert_eq!((st, body.as_slice()), (200, &value[..]));
    assert_eq!(request(&addr, "GET", "/metadata", b"").0, 400);
    assert_eq!(
        request(&addr, "PUT", "/metadata?key=big", &vec![b'x'; 5 << 20]).0,
        413
    );
    assert_eq!(
        request(&addr, "DELETE", &format!("/metadata?key={key}"), b"").0,
        200
    );
    assert_eq!(
        request(&addr, "DELETE", &format!("/metadata?key={key}"), b"").0,
        404
    );
    assert_eq!(
        request(&addr, "GET", &format!("/metadata?key={key}"), b"").0,
        404
    );
    // Bound to the host asked for, not to every address.
    assert!(TcpStream::connect(format!("127.0.0.2:{port}")).is_err());
}

#[test]
fn log_dir_gets_one_file_per_run_behind_a_stable_symlink_with_metric_reports() {
    let dir = std::env::temp_dir().join(format!("mc-logdir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _cluster = mc_cluster::LocalCluster::start(mc_cluster::ClusterSpec {
        master_args: vec![
            format!("--log_dir={}", dir.display()),
            "--enable_metric_reporting=true".into(),
            "--metric_report_interval_sec=1".into(),
        ],
        ..mc_cluster::ClusterSpec::default()
    })
    .expect("cluster starts");
    let link = dir.join("mooncake_master.INFO");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&link).unwrap_or_default();
        if text.contains("Master service listening") && text.contains("metrics: capacity") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "log so far:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let target = std::fs::read_link(&link).unwrap();
    assert!(
        target
            .to_string_lossy()
            .starts_with("mooncake_master.INFO."),
        "{target:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
