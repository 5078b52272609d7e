//! Metadata snapshots end to end (issue 12, item 6): a master killed with -9 and started
//! with `--enable_snapshot_restore` gets its objects back from the nodes with the pins and
//! soft-pin deadlines of its last snapshot; a corrupt latest falls back to the previous
//! snapshot; keys of a node that never comes back wait, then are not found after
//! `client_ttl`; the same through S3 (moto's server).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::pattern;
use mc_cluster::{ClusterSpec, LocalCluster, NodeSpec, probe};
use mc_schema::handshake::{DEFAULT_CLUSTER_ID, Role};
use mc_schema::msg::{Request, ResponseBody};
use mooncake_rs::{ErrorCode, ReplicateConfig, SoftPinAction, Store, StoreConfig};
use serde_json::Value;

const MIB: usize = 1 << 20;
/// The soft pin the tests put with; the master's default is 30 min, so a restored pin is
/// told apart from a fresh one.
const SOFT_PIN_MS: u64 = 600_000;

/// A fresh directory for one test's snapshots.
fn temp_dir(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("mc-snapshots-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// The snapshot flags every test uses (1 s interval, restore on), plus `extra`.
fn snapshot_args(store: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "--enable_snapshot",
        "--snapshot_interval_seconds=1",
        "--enable_snapshot_restore",
        "--default_kv_soft_pin_ttl=30m",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(format!("--snapshot_object_store_type={store}"));
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn cluster(
    hosts: &[&str],
    segment_size: &str,
    master_args: Vec<String>,
    env: &[(&str, String)],
) -> LocalCluster {
    LocalCluster::start(ClusterSpec {
        nodes: hosts
            .iter()
            .map(|h| NodeSpec {
                host: h.to_string(),
                segment_size: segment_size.into(),
                cores: "2".into(),
                extra_args: vec!["--heartbeat_interval=300ms".into()],
                ..NodeSpec::default()
            })
            .collect(),
        master_args,
        master_env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        ..ClusterSpec::default()
    })
    .unwrap_or_else(|e| panic!("cluster did not start: {e}"))
}

fn client(c: &LocalCluster) -> Store {
    Store::connect(StoreConfig {
        rpc_timeout: Duration::from_secs(10),
        // These tests check what the master knows: reads must not bypass it through the
        // location cache.
        location_cache_entries: 0,
        ..StoreConfig::new(c.master_addr())
    })
    .expect("client connects")
}

fn soft() -> ReplicateConfig {
    ReplicateConfig {
        soft_pin_action: SoftPinAction::Enable,
        soft_pin_ttl_ms: SOFT_PIN_MS,
        ..ReplicateConfig::default()
    }
}

fn hard() -> ReplicateConfig {
    ReplicateConfig {
        with_hard_pin: true,
        ..ReplicateConfig::default()
    }
}

fn json_get(addr: &str, path: &str) -> Value {
    let r = probe::http_get(addr, path, Duration::from_secs(5)).expect("admin HTTP answers");
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", r.body))
}

fn health(c: &LocalCluster) -> Value {
    json_get(&c.metrics_addr(), "/health")
}

/// Waits until `/health` satisfies `ok`, up to 60 s.
fn wait_health(c: &LocalCluster, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let h = health(c);
        if ok(&h) {
            return h;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within 60 s: {h}\n{}",
            c.logs_tail(30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for a snapshot holding at least `objects` objects and returns its id.
fn snapshot_with(c: &LocalCluster, objects: u64) -> String {
    let h = wait_health(c, "a snapshot of the objects", |h| {
        h["last_snapshot_objects"].as_u64() >= Some(objects)
    });
    h["last_snapshot_id"].as_str().unwrap().to_string()
}

/// Kills the master with SIGKILL, starts it again and waits until `probe` reads back.
fn kill_and_restart(c: &mut LocalCluster, s: &Store, probe: &str) {
    c.kill_master();
    c.restart_master().expect("master restarts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.get(probe).is_err() {
        assert!(
            Instant::now() < deadline,
            "{probe} not back within 60 s\n{}",
            c.logs_tail(30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (hard pin, soft pin milliseconds left) of `key`, from `/query_key`.
fn pins(c: &LocalCluster, key: &str) -> (bool, u64) {
    let q = json_get(&c.metrics_addr(), &format!("/query_key?key={key}"));
    (
        q["hard_pin"].as_bool().expect("hard_pin"),
        q["soft_pin_remaining_ms"]
            .as_u64()
            .expect("soft_pin_remaining_ms"),
    )
}

/// Asserts `key` got the soft pin it was put with back (not a fresh 30-minute default).
fn assert_restored_soft_pin(c: &LocalCluster, key: &str) {
    let (hard, left) = pins(c, key);
    assert!(!hard, "{key} is not hard-pinned");
    assert!(
        left > 0 && left <= SOFT_PIN_MS,
        "{key}: {left} ms of soft pin left, want the restored deadline (at most {SOFT_PIN_MS})"
    );
}

#[test]
fn a_restart_restores_pins_and_hard_pinned_objects_survive_eviction() {
    let dir = temp_dir("pins");
    let env = [("MOONCAKE_SNAPSHOT_LOCAL_PATH", dir.display().to_string())];
    let args = snapshot_args("local", &["--default_kv_lease_ttl=200ms"]);
    let mut c = cluster(&["127.0.0.1"], "32MB", args, &env);
    let s = client(&c);
    s.put("hard", &pattern(MIB, 1), &hard()).unwrap();
    s.put("soft", &pattern(MIB, 2), &soft()).unwrap();
    for i in 0..5u64 {
        s.put(
            &format!("plain/{i}"),
            &pattern(MIB, 10 + i),
            &ReplicateConfig::default(),
        )
        .unwrap();
    }
    let id = snapshot_with(&c, 7);

    kill_and_restart(&mut c, &s, "hard");
    let h = wait_health(&c, "the restore applied", |h| {
        h["snapshot_pins_applied_total"].as_u64() >= Some(7)
    });
    assert_eq!(h["restored_snapshot_id"].as_str(), Some(id.as_str()), "{h}");
    assert_eq!(s.get("soft").unwrap(), pattern(MIB, 2));
    assert!(pins(&c, "hard").0, "hard is hard-pinned");
    assert_restored_soft_pin(&c, "soft");
    assert_eq!(pins(&c, "plain/0"), (false, 0));
    for i in 0..5u64 {
        assert_eq!(s.get(&format!("plain/{i}")).unwrap(), pattern(MIB, 10 + i));
    }
    // Five times the capacity: eviction takes the plain objects, never the hard-pinned one.
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..160u64 {
        s.put(
            &format!("w{i}"),
            &pattern(MIB, 100 + i),
            &ReplicateConfig::default(),
        )
        .unwrap_or_else(|e| panic!("put w{i} under pressure: {e}"));
    }
    assert_eq!(
        s.get("plain/0").unwrap_err().code(),
        ErrorCode::ObjectNotFound
    );
    assert_eq!(s.get("hard").unwrap(), pattern(MIB, 1));
    assert!(health(&c)["evicted_keys_total"].as_u64() >= Some(100));
    drop(c);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The cluster's local snapshot directory under `base`.
fn snapshot_root(base: &Path) -> PathBuf {
    base.join("mooncake_master_snapshot")
        .join(DEFAULT_CLUSTER_ID)
}

/// Ids of the whole snapshots in `root`, oldest first.
fn ids_in(root: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 19 && !n.ends_with(".tmp"))
        .collect();
    ids.sort();
    ids
}

#[test]
fn a_corrupt_latest_falls_back_to_the_previous_snapshot_and_crash_leftovers_are_cleaned() {
    let dir = temp_dir("corrupt");
    let env = [("MOONCAKE_SNAPSHOT_LOCAL_PATH", dir.display().to_string())];
    let args = snapshot_args("local", &["--snapshot_retention_count=3"]);
    let mut c = cluster(&["127.0.0.1"], "64MB", args, &env);
    let s = client(&c);
    s.put("a", &pattern(4096, 1), &soft()).unwrap();
    let first = snapshot_with(&c, 1);
    wait_health(&c, "a second snapshot", |h| {
        h["last_snapshot_id"]
            .as_str()
            .is_some_and(|id| id > first.as_str())
    });
    c.kill_master();

    let root = snapshot_root(&dir);
    let latest = std::fs::read_to_string(root.join("latest")).unwrap();
    let latest = latest.trim().to_string();
    let ids = ids_in(&root);
    // What a restore tries after a bad latest: the newest other one.
    let previous = ids.iter().rev().find(|i| **i != latest).unwrap().clone();
    let data = root.join(&latest).join("snapshot.bin");
    let mut bytes = std::fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&data, bytes).unwrap();
    // What a crash in the middle of writing leaves behind.
    let leftover = root.join(format!("{}.tmp", ids[0]));
    std::fs::create_dir_all(&leftover).unwrap();
    std::fs::write(leftover.join("snapshot.bin"), b"torn").unwrap();

    kill_and_restart(&mut c, &s, "a");
    let h = health(&c);
    assert_eq!(
        h["restored_snapshot_id"].as_str(),
        Some(previous.as_str()),
        "{h}"
    );
    assert_eq!(
        h["snapshot_restore_fallbacks_total"].as_u64(),
        Some(1),
        "{h}"
    );
    assert_eq!(s.get("a").unwrap(), pattern(4096, 1));
    wait_health(&c, "the pin applied", |h| {
        h["snapshot_pins_applied_total"].as_u64() == Some(1)
    });
    assert_restored_soft_pin(&c, "a");
    // The restarted master writes again; retention keeps 3 and removes the leftover.
    wait_health(&c, "two new snapshots", |h| {
        h["snapshots_total"].as_u64() >= Some(2)
    });
    assert!(!leftover.exists(), "the crash leftover is cleaned");
    assert!(ids_in(&root).len() <= 3, "{:?}", ids_in(&root));
    drop(c);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A GetReplicaList for `key` straight to the master: its status.
fn raw_lookup(c: &LocalCluster, key: &str) -> i32 {
    let mut rpc = mc_rpc::RpcClient::connect(
        &c.master_addr(),
        Role::Client,
        DEFAULT_CLUSTER_ID,
        Duration::from_secs(2),
    )
    .unwrap();
    let req = Request::GetReplicaList {
        keys: vec![key.to_string()],
    };
    match rpc
        .call(&req, Instant::now() + Duration::from_secs(30))
        .unwrap()
        .body
    {
        ResponseBody::ReplicaLists(v) => v[0].status,
        other => panic!("unexpected answer {other:?}"),
    }
}

#[test]
fn keys_of_a_node_that_never_comes_back_wait_then_are_not_found_after_client_ttl() {
    let dir = temp_dir("lost-node");
    let env = [("MOONCAKE_SNAPSHOT_LOCAL_PATH", dir.display().to_string())];
    let ttl = Duration::from_secs(8);
    let args = snapshot_args("local", &["--client_ttl=8s", "--recovery_grace=500ms"]);
    let mut c = cluster(&["127.0.0.2", "127.0.0.3"], "64MB", args, &env);
    let s = client(&c);
    let on = |host: &str| ReplicateConfig {
        preferred_segments: vec![host.to_string()],
        ..ReplicateConfig::default()
    };
    for i in 0..5u64 {
        for (prefix, host) in [("keep", "127.0.0.2"), ("lost", "127.0.0.3")] {
            let key = format!("{prefix}/{i}");
            s.put(&key, &pattern(8192, i), &on(host)).unwrap();
            let ep = &s.replicas(&key).unwrap()[0].slices[0].endpoint;
            assert!(ep.starts_with(host), "{key} landed on {ep}");
        }
    }
    snapshot_with(&c, 10);
    c.kill_node(1);
    let t0 = Instant::now();
    kill_and_restart(&mut c, &s, "keep/0");

    // The snapshot says node 127.0.0.3 held it: the master waits for that node (no miss)
    // until client_ttl after its start, which is after t0.
    let status = raw_lookup(&c, "lost/0");
    let unavailable = ErrorCode::UnavailableInCurrentStatus.code();
    if t0.elapsed() < ttl {
        assert_eq!(status, unavailable, "answered before client_ttl passed");
    } else {
        assert!([unavailable, ErrorCode::ObjectNotFound.code()].contains(&status));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match s.get("lost/0") {
            Err(e) if e.code() == ErrorCode::ObjectNotFound => break,
            r => assert!(Instant::now() < deadline, "lost/0 still {r:?} after 60 s"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(t0.elapsed() >= ttl, "not found only after client_ttl");
    let h = wait_health(&c, "the unconfirmed hints dropped", |h| {
        h["snapshot_hints_dropped_total"].as_u64() >= Some(5)
    });
    assert_eq!(h["snapshot_hints_pending"].as_u64(), Some(0), "{h}");
    for i in 0..5u64 {
        assert_eq!(s.get(&format!("keep/{i}")).unwrap(), pattern(8192, i));
        assert_eq!(
            s.get(&format!("lost/{i}")).unwrap_err().code(),
            ErrorCode::ObjectNotFound
        );
    }
    drop(c);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// moto's S3 server on a run-time port, killed on drop.
struct Moto {
    child: Child,
    addr: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `moto_server` from the virtualenv `scripts/setup.sh` makes (or `MC_MOTO_SERVER`).
fn moto_binary() -> Option<PathBuf> {
    let p = std::env::var_os("MC_MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/py/bin/moto_server")
        });
    p.exists().then_some(p)
}

/// One HTTP/1.0 request to `addr`: (status, body).
fn http(addr: &str, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut conn = TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        conn,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut out = String::new();
    conn.read_to_string(&mut out)?;
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |b| b.1).to_string();
    Ok((status, body))
}

fn start_moto(bin: &Path) -> Moto {
    let port = mc_cluster::pick_free_port("127.0.0.1").unwrap();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let moto = Moto {
        child,
        addr: format!("127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while http(&moto.addr, "GET", "/").is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not answer within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    moto
}

#[test]
fn snapshots_go_to_s3_and_come_back_from_it() {
    let Some(bin) = moto_binary() else {
        eprintln!(
            "skipped: moto_server not installed (scripts/setup.sh installs it into target/py)"
        );
        return;
    };
    let moto = start_moto(&bin);
    assert_eq!(
        http(&moto.addr, "PUT", "/snaps").unwrap().0,
        200,
        "bucket created"
    );
    let backup = temp_dir("s3-backup");
    let env = [
        ("MOONCAKE_AWS_BUCKET_NAME", "snaps".to_string()),
        ("MOONCAKE_AWS_S3_ENDPOINT", format!("http://{}", moto.addr)),
        ("MOONCAKE_AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("MOONCAKE_AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("MOONCAKE_AWS_REGION", "us-east-1".to_string()),
    ];
    let backup_flag = format!("--snapshot_backup_dir={}", backup.display());
    let mut c = cluster(
        &["127.0.0.1"],
        "64MB",
        snapshot_args("s3", &[&backup_flag]),
        &env,
    );
    let s = client(&c);
    s.put("s3/soft", &pattern(100_000, 7), &soft()).unwrap();
    s.put("s3/hard", &pattern(5000, 8), &hard()).unwrap();
    let id = snapshot_with(&c, 2);
    let prefix = format!("mooncake_master_snapshot/{DEFAULT_CLUSTER_ID}");
    let (status, listing) = http(
        &moto.addr,
        "GET",
        &format!("/snaps?list-type=2&prefix={prefix}/"),
    )
    .unwrap();
    assert_eq!(status, 200, "{listing}");
    for key in [
        format!("{prefix}/{id}/manifest.json"),
        format!("{prefix}/{id}/snapshot.bin"),
        format!("{prefix}/latest"),
    ] {
        assert!(
            listing.contains(&key),
            "{key} missing from the bucket: {listing}"
        );
    }
    assert!(
        snapshot_root(&backup)
            .join(&id)
            .join("manifest.json")
            .exists(),
        "backup copy"
    );
    // Restore must come from the bucket: the backup is gone.
    std::fs::remove_dir_all(&backup).unwrap();

    kill_and_restart(&mut c, &s, "s3/hard");
    let h = wait_health(&c, "the restore applied", |h| {
        h["snapshot_pins_applied_total"].as_u64() >= Some(2)
    });
    let restored = h["restored_snapshot_id"].as_str().unwrap().to_string();
    assert!(
        restored >= id,
        "restored {restored}, snapshot {id} was written: {h}"
    );
    assert_eq!(s.get("s3/soft").unwrap(), pattern(100_000, 7));
    assert_restored_soft_pin(&c, "s3/soft");
    assert_eq!(pins(&c, "s3/hard"), (true, 0));
    drop(c);
    drop(moto);
    let _ = std::fs::remove_dir_all(&backup);
}
