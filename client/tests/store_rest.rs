//! The store node's REST API (Mooncake's store REST service) against a live cluster:
//! mounting and unmounting memory and shared-memory segments, the inspection endpoints
//! through the real client, malformed requests, and re-mounting after a master restart.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{pattern, store};
use mc_cluster::{ClusterSpec, LocalCluster, NodeSpec, probe};
use mooncake_rs::{ErrorCode, ReplicateConfig};
use serde_json::{Value, json};

/// Status and raw body of one HTTP/1.0 request.
fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) and close before reading all of a large body.
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response: {:?}", String::from_utf8_lossy(&out)));
    let status_line = String::from_utf8_lossy(&out[..end]).into_owned();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {status_line}"));
    (status, out[end + 4..].to_vec())
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

/// A request with a JSON body; returns the status and the parsed answer.
fn call(c: &LocalCluster, method: &str, path: &str, body: Value) -> (u16, Value) {
    let (st, b) = http(
        &c.node_rest_addr(0),
        method,
        path,
        body.to_string().as_bytes(),
    );
    (st, json_of(&b))
}

fn master_get(c: &LocalCluster, path: &str) -> String {
    let r = probe::http_get(&c.metrics_addr(), path, Duration::from_secs(5)).unwrap();
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.body
}

fn master_segments(c: &LocalCluster) -> Vec<String> {
    master_get(c, "/get_all_segments")
        .lines()
        .map(str::to_string)
        .collect()
}

/// The master's view of one segment (`/get_segments_detail`), by name.
fn master_segment(c: &LocalCluster, name: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(&master_get(c, "/get_segments_detail")).unwrap();
    v["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
}

fn node_health(c: &LocalCluster) -> Value {
    let r = probe::http_get(&c.node_rest_addr(0), "/health", Duration::from_secs(5)).unwrap();
    serde_json::from_str(&r.body).unwrap()
}

/// The u64 inside a segment id of the REST API (`00000000-0000-0000-xxxx-xxxxxxxxxxxx`).
fn id_value(id: &str) -> u64 {
    u64::from_str_radix(&id[19..].replace('-', ""), 16).unwrap()
}

/// Mounts `size` bytes through `/api/mount`; returns (segment id, segment name).
fn mount(c: &LocalCluster, size: u64) -> (String, String) {
    let (st, v) = call(
        c,
        "POST",
        "/api/mount",
        json!({"size": size, "protocol": "tcp", "location": ""}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "success");
    assert_eq!(v["allocated_size"], size, "{v}");
    let ids = v["segment_ids"].as_array().unwrap();
    assert_eq!(ids.len(), 1);
    (
        ids[0].as_str().unwrap().to_string(),
        v["segment_names"][0].as_str().unwrap().to_string(),
    )
}

fn prefer(name: &str) -> ReplicateConfig {
    ReplicateConfig {
        preferred_segments: vec![name.to_string()],
        ..ReplicateConfig::default()
    }
}

/// Polls `f` until it holds, for up to a minute.
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn mounted_memory_is_listed_by_the_master_and_takes_puts() {
    let c = common::cluster(1, "32MB");
    let s = store(&c);
    let (id, name) = mount(&c, 32 << 20);
    assert!(id.starts_with("00000000-0000-0000-"), "{id}");
    assert!(master_segments(&c).contains(&name), "{name}");
    let seg = master_segment(&c, &name).expect("segment in the detail list");
    assert_eq!(seg["segment_id"].as_u64(), Some(id_value(&id)));
    assert_eq!(seg["capacity_bytes"], 32 << 20);
    assert_eq!(node_health(&c)["segments"], 2);

    // More than the machine has is refused before any memory is touched.
    let (st, v) = call(&c, "POST", "/api/mount", json!({"size": 1u64 << 50}));
    assert_eq!(st, 507, "{v}");
    assert_eq!(v["code"], ErrorCode::NoAvailableHandle.code());
    assert_eq!(node_health(&c)["segments"], 2);

    // Preferring the new segment puts the value there, and it reads back.
    let v = pattern(3 << 20, 1);
    s.put("in-new-segment", &v, &prefer(&name)).unwrap();
    let rep = &s.replicas("in-new-segment").unwrap()[0];
    assert!(rep.slices.iter().all(|x| x.segment_id == id_value(&id)));
    assert_eq!(s.get("in-new-segment").unwrap(), v);

    // The node now holds more than the 32 MiB of its start-up segment.
    for i in 0..4 {
        s.put(
            &format!("fill-{i}"),
            &pattern(12 << 20, i),
            &ReplicateConfig::default(),
        )
        .unwrap();
    }
    for i in 0..4 {
        assert_eq!(s.get(&format!("fill-{i}")).unwrap(), pattern(12 << 20, i));
    }
}

#[test]
fn unmount_with_a_grace_period_keeps_reads_and_refuses_new_placements() {
    let c = common::cluster(1, "32MB");
    let s = store(&c);
    let (id, name) = mount(&c, 16 << 20);
    let values: Vec<Vec<u8>> = (0..4).map(|i| pattern(1 << 20, 10 + i)).collect();
    for (i, v) in values.iter().enumerate() {
        s.put(&format!("graced-{i}"), v, &prefer(&name)).unwrap();
        assert_eq!(
            s.replicas(&format!("graced-{i}")).unwrap()[0].slices[0].segment_id,
            id_value(&id)
        );
    }

    let (st, v) = call(
        &c,
        "POST",
        "/api/unmount",
        json!({"segment_ids": [id], "grace_period_seconds": 10}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v, json!({"status": "success"}));

    // During the grace period the segment is drained: listed, readable, takes nothing new.
    let seg = master_segment(&c, &name);
    if let Some(seg) = seg {
        assert_eq!(seg["allocatable"], false, "{seg}");
        s.put("after-drain", b"elsewhere", &prefer(&name)).unwrap();
        let rep = &s.replicas("after-drain").unwrap()[0];
        assert_ne!(
            rep.slices[0].segment_id,
            id_value(&id),
            "placed on a draining segment"
        );
    }
    // Read until the segment leaves the master: every read before that returns the bytes.
    let mut good_rounds = 0;
    loop {
        let listed_before = master_segments(&c).contains(&name);
        let reads: Vec<_> = (0..4).map(|i| s.get(&format!("graced-{i}"))).collect();
        let listed_after = master_segments(&c).contains(&name);
        if reads.iter().all(Result::is_ok) {
            for (r, v) in reads.iter().zip(&values) {
                assert_eq!(r.as_ref().unwrap(), v);
            }
            if listed_after {
                good_rounds += 1;
            }
        } else {
            assert!(
                !listed_before || !listed_after,
                "a read failed while the segment was still mounted: {reads:?}"
            );
        }
        if !listed_after {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(good_rounds > 0, "no read happened during the grace period");

    // After the grace period the objects on it left the metadata, and the node let go.
    for i in 0..4 {
        assert_eq!(
            s.get(&format!("graced-{i}")).unwrap_err().code(),
            ErrorCode::ObjectNotFound
        );
    }
    wait_until("the node to release the segment", || {
        node_health(&c)["segments"] == 1
    });
    // Unmounting it again names a segment the node no longer has.
    let (st, v) = call(&c, "POST", "/api/unmount", json!({"segment_ids": id}));
    assert_eq!(st, 404, "{v}");
    assert_eq!(v["code"], ErrorCode::SegmentNotFound.code());
}

/// A fresh file under /dev/shm, removed on drop.
struct ShmFile {
    name: String,
    path: std::path::PathBuf,
}

impl ShmFile {
    fn new(tag: &str, len: u64) -> Option<ShmFile> {
        let dir = std::path::Path::new("/dev/shm");
        if !dir.is_dir() {
            eprintln!("skipping: this machine has no /dev/shm");
            return None;
        }
        let name = format!("mc-test-{tag}-{}-{}", std::process::id(), rand_suffix());
        let path = dir.join(&name);
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(len).unwrap();
        Some(ShmFile { name, path })
    }
}

impl Drop for ShmFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

#[test]
fn shared_memory_mounts_serve_the_file_and_bad_names_are_refused() {
    let Some(shm) = ShmFile::new("shm", 8 << 20) else {
        return;
    };
    let c = common::cluster(1, "32MB");
    let s = store(&c);
    let offset = 1 << 20;
    let (st, v) = call(
        &c,
        "POST",
        "/api/mount_shm",
        json!({"name": format!("/{}", shm.name), "size": 4 << 20, "offset": offset, "protocol": "tcp", "location": ""}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "success");
    let id = v["segment_ids"][0].as_str().unwrap().to_string();
    let name = v["segment_names"][0].as_str().unwrap().to_string();
    assert!(master_segments(&c).contains(&name));

    // A value put there is in the file, at the mount offset plus the replica's offset.
    let value = pattern(100_000, 5);
    s.put("in-shm", &value, &prefer(&name)).unwrap();
    let slice = s.replicas("in-shm").unwrap()[0].slices[0].clone();
    assert_eq!(slice.segment_id, id_value(&id));
    let file = std::fs::read(&shm.path).unwrap();
    let at = (offset + slice.offset) as usize;
    assert_eq!(&file[at..at + value.len()], &value[..]);
    assert_eq!(s.get("in-shm").unwrap(), value);

    // The wrong unmount endpoint, an unknown id and a malformed id are refused.
    let (st, v) = call(&c, "POST", "/api/unmount", json!({"segment_ids": [id]}));
    assert_eq!(st, 400, "{v}");
    let (st, _) = call(
        &c,
        "POST",
        "/api/unmount_shm",
        json!({"segment_ids": ["00000000-0000-0000-0000-000000000001"]}),
    );
    assert_eq!(st, 404);
    let (st, _) = call(
        &c,
        "POST",
        "/api/unmount_shm",
        json!({"segment_ids": ["not-an-id"]}),
    );
    assert_eq!(st, 400);
    assert!(
        master_segments(&c).contains(&name),
        "refusals changed nothing"
    );

    // With no grace period the answer comes once the segment is gone.
    let (st, v) = call(&c, "POST", "/api/unmount_shm", json!({"segment_ids": id}));
    assert_eq!(st, 200, "{v}");
    assert!(!master_segments(&c).contains(&name));
    assert_eq!(node_health(&c)["segments"], 1);
    assert_eq!(
        s.get("in-shm").unwrap_err().code(),
        ErrorCode::ObjectNotFound
    );
    // The file and its bytes belong to its creator and stay.
    assert_eq!(
        &std::fs::read(&shm.path).unwrap()[at..at + value.len()],
        &value[..]
    );

    for bad in [
        json!({"name": "a/b", "size": 4096}),
        json!({"name": "../etc/passwd", "size": 4096}),
        json!({"name": "..", "size": 4096}),
        json!({"name": "/", "size": 4096}),
        json!({"name": "", "size": 4096}),
        json!({"name": format!("{}/../x", shm.name), "size": 4096}),
        json!({"size": 4096}),
        json!({"name": shm.name, "size": 4096, "offset": 100}),
        json!({"name": shm.name, "size": 16 << 20}),
        json!({"name": shm.name, "size": 4096, "offset": -4096}),
        json!({"name": format!("{}-missing", shm.name), "size": 4096}),
        json!({"name": shm.name}),
        json!({"name": 7, "size": 4096}),
        json!({"name": shm.name, "size": 4096, "protocol": "rdma"}),
    ] {
        let (st, v) = call(&c, "POST", "/api/mount_shm", bad.clone());
        assert_eq!(st, 400, "{bad} → {v}");
        assert_eq!(v["code"], ErrorCode::InvalidParams.code(), "{bad} → {v}");
    }
    assert_eq!(
        master_segments(&c).len(),
        1,
        "no refused mount reached the master"
    );
    assert_eq!(node_health(&c)["segments"], 1);
}

#[test]
fn data_endpoints_go_through_the_client_byte_exact() {
    let c = common::cluster(1, "64MB");
    let s = store(&c);
    let addr = c.node_rest_addr(0);
    let text = "grüße, 月 🌙\n\"quoted\"";
    let (st, v) = call(
        &c,
        "PUT",
        "/api/put",
        json!({"key": "rest-key", "value": text}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v, json!({"status": "success"}));

    let (st, body) = http(&addr, "GET", "/api/get/rest-key", b"");
    assert_eq!(st, 200);
    assert_eq!(body, text.as_bytes());
    assert_eq!(
        s.get("rest-key").unwrap(),
        text.as_bytes(),
        "client reads the REST put"
    );

    let (st, v) = call(&c, "GET", "/api/exist/rest-key", json!(null));
    assert_eq!((st, v), (200, json!({"exists": true})));
    let (st, v) = call(&c, "GET", "/api/exist/missing", json!(null));
    assert_eq!((st, v), (200, json!({"exists": false})));
    let (st, body) = http(&addr, "GET", "/api/get/missing", b"");
    assert_eq!(st, 404);
    assert_eq!(json_of(&body)["code"], ErrorCode::ObjectNotFound.code());

    // A value put by the client (not UTF-8) comes back from REST unchanged; keys with
    // characters that need escaping in a path work percent-encoded.
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    s.put("bin/ary key", &binary, &ReplicateConfig::default())
        .unwrap();
    let (st, body) = http(&addr, "GET", "/api/get/bin%2Fary%20key", b"");
    assert_eq!(st, 200);
    assert_eq!(body, binary);

    let (st, v) = call(&c, "DELETE", "/api/remove/rest-key?force=true", json!(null));
    assert_eq!((st, v), (200, json!({"status": "success"})));
    assert_eq!(
        s.get("rest-key").unwrap_err().code(),
        ErrorCode::ObjectNotFound
    );
    let (st, v) = call(&c, "DELETE", "/api/remove/rest-key", json!(null));
    assert_eq!(st, 404, "{v}");
    let (st, v) = call(&c, "DELETE", "/api/remove/x?force=maybe", json!(null));
    assert_eq!(st, 400, "{v}");

    s.put("another", b"x", &ReplicateConfig::default()).unwrap();
    let (st, v) = call(&c, "DELETE", "/api/remove_all?force=true", json!(null));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["removed"], 2);
    assert_eq!(v["status"], "success removed 2 keys");
    assert!(!s.exists("another").unwrap());
    assert!(!s.exists("bin/ary key").unwrap());
}

#[test]
fn malformed_requests_get_json_4xx_and_change_nothing() {
    let c = LocalCluster::start(ClusterSpec {
        nodes: vec![NodeSpec {
            segment_size: "32MB".into(),
            extra_args: vec!["--rest_body_limit=1MB".into()],
            ..NodeSpec::default()
        }],
        ..ClusterSpec::default()
    })
    .expect("cluster starts");
    let s = store(&c);
    let addr = c.node_rest_addr(0);
    let keep = pattern(50_000, 9);
    s.put("keep", &keep, &ReplicateConfig::default()).unwrap();

    let junk: Vec<u8> = (0..2000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let big = format!(
        "{{\"key\":\"big\",\"value\":\"{}\"}}",
        "a".repeat((1 << 20) + 10)
    );
    let cases: Vec<(&str, &str, Vec<u8>)> =
        vec![
        ("PUT", "/api/put", b"".to_vec()),
        ("PUT", "/api/put", b"{not json".to_vec()),
        ("PUT", "/api/put", junk.clone()),
        ("PUT", "/api/put", b"[1,2,3]".to_vec()),
        ("PUT", "/api/put", b"{}".to_vec()),
        ("PUT", "/api/put", br#"{"key":"keep"}"#.to_vec()),
        ("PUT", "/api/put", br#"{"value":"v"}"#.to_vec()),
        ("PUT", "/api/put", br#"{"key":5,"value":"v"}"#.to_vec()),
        ("PUT", "/api/put", br#"{"key":"k","value":[1]}"#.to_vec()),
        ("PUT", "/api/put", br#"{"key":"","value":"v"}"#.to_vec()),
        ("PUT", "/api/put", big.into_bytes()),
        ("POST", "/api/mount", junk.clone()),
        ("POST", "/api/mount", br#"{"size":-1}"#.to_vec()),
        ("POST", "/api/mount", br#"{"size":0}"#.to_vec()),
        ("POST", "/api/mount", br#"{"size":1.5}"#.to_vec()),
        ("POST", "/api/mount", br#"{"size":"1GB"}"#.to_vec()),
        ("POST", "/api/mount", br#"{"size":null}"#.to_vec()),
        ("POST", "/api/mount", br#"{"size":16777216,"protocol":7}"#.to_vec()),
        ("POST", "/api/mount", br#"{"size":16777216,"location":[]}"#.to_vec()),
        ("POST", "/api/unmount", b"{}".to_vec()),
        ("POST", "/api/unmount", br#"{"segment_ids":[]}"#.to_vec()),
        ("POST", "/api/unmount", br#"{"segment_ids":[1]}"#.to_vec()),
        (
            "POST",
            "/api/unmount",
            br#"{"segment_ids":"00000000-0000-0000-0000-000000000001","grace_period_seconds":-1}"#
                .to_vec(),
        ),
        (
            "POST",
            "/api/unmount",
            br#"{"segment_ids":"00000000-0000-0000-0000-000000000001","grace_period_seconds":"x"}"#
                .to_vec(),
        ),
        ("POST", "/api/unmount_shm", junk.clone()),
        ("POST", "/api/mount_shm", br#"{"name":{"a":1},"size":4096}"#.to_vec()),
        ("GET", "/api/mount", Vec::new()),
        ("POST", "/api/no_such_endpoint", Vec::new()),
    ];
    for (method, path, body) in &cases {
        let (st, answer) = http(&addr, method, path, body);
        let shown = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        assert!(
            (400..500).contains(&st),
            "{method} {path} {shown:?} → {st} {}",
            String::from_utf8_lossy(&answer)
        );
        let v = json_of(&answer);
        assert!(v["error"].is_string() && v["message"].is_string(), "{v}");
        if *path == "/api/put" && body.len() > 1 << 20 {
            assert_eq!(st, 413, "{v}");
        }
    }
    // Not HTTP at all.
    let mut raw = TcpStream::connect(&addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    raw.write_all(&junk).unwrap();
    let mut out = Vec::new();
    let _ = raw.read_to_end(&mut out);

    // Nothing changed: same key, same bytes, same segments, node healthy.
    assert_eq!(s.get("keep").unwrap(), keep);
    assert_eq!(master_get(&c, "/get_all_keys"), "keep\n");
    assert_eq!(master_segments(&c).len(), 1);
    let h = node_health(&c);
    assert_eq!(
        (h["segments"].clone(), h["mounted_segments"].clone()),
        (json!(1), json!(1))
    );
}

#[test]
fn a_restarted_master_gets_runtime_segments_back_and_draining_stays_draining() {
    let shm = ShmFile::new("remount", 4 << 20);
    let mut c = common::cluster(1, "32MB");
    let (_, allocated) = mount(&c, 16 << 20);
    let (draining_id, draining) = mount(&c, 16 << 20);
    let mut expected = vec![allocated.clone(), draining.clone()];
    if let Some(shm) = &shm {
        let (st, v) = call(
            &c,
            "POST",
            "/api/mount_shm",
            json!({"name": shm.name, "size": 4 << 20}),
        );
        assert_eq!(st, 200, "{v}");
        expected.push(v["segment_names"][0].as_str().unwrap().to_string());
    }
    // A long grace period: the segment stays draining for the rest of the test.
    let (st, v) = call(
        &c,
        "POST",
        "/api/unmount",
        json!({"segment_ids": [draining_id], "grace_period_seconds": 3600}),
    );
    assert_eq!(st, 200, "{v}");

    c.kill_master();
    c.restart_master().expect("master restarts");
    // The node notices the restart at its next heartbeat and mounts everything again.
    wait_until("the node to re-mount its segments", || {
        master_segments(&c).len() == expected.len() + 1
    });
    let listed = master_segments(&c);
    for name in &expected {
        assert!(listed.contains(name), "{name} missing from {listed:?}");
    }
    c.wait_node_ready(0)
        .expect("node reports every segment mounted");
    wait_until("the draining segment to be drained again", || {
        master_segment(&c, &draining).is_some_and(|s| s["allocatable"] == false)
    });
    assert_eq!(master_segment(&c, &allocated).unwrap()["allocatable"], true);

    // The re-mounted runtime segment takes puts.
    let s = store(&c);
    s.put("after", &pattern(4096, 3), &prefer(&allocated))
        .unwrap();
    assert_eq!(s.get("after").unwrap(), pattern(4096, 3));
}
