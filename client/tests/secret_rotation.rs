//! Rotating `--cluster_secret_file` without a restart, against a real master and store node:
//! the master hands the new secret to the node in its heartbeat answers, switches signing
//! once the node holds it, and puts and gets keep working throughout; a file that cannot be
//! a secret keeps the current one and is counted.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{pattern, put_start};
use mc_cluster::{ClusterSpec, LocalCluster, NodeSpec};
use mc_schema::token::{WriteKey, fingerprint};
use mooncake_rs::{ReplicateConfig, Store, StoreConfig};

const A: &[u8] = b"the first secret, 32 bytes long.";
const B: &[u8] = b"the second secret, 32 bytes long";
const C: &[u8] = b"the third secret, 32 bytes long.";

/// Far beyond what a rotation takes (two heartbeats and a couple of polls): a deadline
/// against hanging, never a timing assertion.
const DEADLINE: Duration = Duration::from_secs(90);

/// Replaces `file`'s contents at once (write aside, rename), as operators are told to.
fn rewrite(file: &Path, contents: &[u8]) {
    let tmp = file.with_extension("new");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

/// The master's `/health`.
fn health(c: &LocalCluster) -> serde_json::Value {
    let r =
        mc_cluster::probe::http_get(&c.metrics_addr(), "/health", Duration::from_secs(5)).unwrap();
    serde_json::from_str(&r.body).unwrap()
}

fn fingerprint_of(c: &LocalCluster) -> String {
    health(c)["write_secret_fingerprint"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// An unlabelled sample of the master's `/metrics`.
fn metric(c: &LocalCluster, name: &str) -> f64 {
    let r =
        mc_cluster::probe::http_get(&c.metrics_addr(), "/metrics", Duration::from_secs(5)).unwrap();
    r.body
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

/// Waits until `done` holds, polling; panics with the master's log after [`DEADLINE`].
fn wait_for(c: &LocalCluster, what: &str, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        if t.elapsed() > DEADLINE {
            panic!("{what} did not happen; logs:\n{}", c.logs_tail(60));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Puts and reads back fresh keys until stopped; counts successes and keeps the failures.
struct Writer {
    stop: Arc<AtomicBool>,
    puts: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<Vec<String>>,
}

impl Writer {
    fn start(master: String) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let puts = Arc::new(AtomicU64::new(0));
        let (s, p) = (stop.clone(), puts.clone());
        let thread = std::thread::spawn(move || {
            let store = Store::connect(StoreConfig::new(master)).expect("client connects");
            let mut failures = Vec::new();
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) && failures.len() < 10 {
                let key = format!("rot-{i}");
                let value = pattern(4096 + (i as usize % 7) * 1000, i);
                match store.put(&key, &value, &ReplicateConfig::default()) {
                    Ok(()) => match store.get(&key) {
                        Ok(v) if v == value => {
                            p.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => failures.push(format!("{key}: read back other bytes")),
                        Err(e) => failures.push(format!("get {key}: {e}")),
                    },
                    Err(e) => failures.push(format!("put {key}: {e}")),
                }
                // Keep the 64 MB segment from filling: the old keys go.
                if i >= 64 {
                    let _ = store.remove(&format!("rot-{}", i - 64), true);
                }
                i += 1;
            }
            failures
        });
        Writer { stop, puts, thread }
    }

    /// Waits until `n` more puts succeeded than when called (the writer is moving).
    fn wait_puts(&self, c: &LocalCluster, n: u64) {
        let from = self.puts.load(Ordering::Relaxed);
        wait_for(c, "puts", || {
            self.puts.load(Ordering::Relaxed) >= from + n || self.thread.is_finished()
        });
    }

    fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self.thread.join().expect("the writer does not panic");
        (self.puts.load(Ordering::Relaxed), failures)
    }
}

/// A PutStart's token verifies with `secret`'s key: the master signs with it.
fn signs_with(c: &LocalCluster, key: &str, secret: &[u8]) -> bool {
    let s = put_start(c, key, 4096)[0].clone();
    let t = s.token.expect("PutStart answers carry write tokens");
    WriteKey::new(secret).verify(s.segment_id, s.generation, &t)
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mc-rotation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn rewriting_the_secret_file_rotates_the_secret_with_no_failed_put() {
    let dir = scratch();
    let file = dir.join("secret");
    std::fs::write(&file, [A, b"\n"].concat()).unwrap();
    let c = LocalCluster::start(ClusterSpec {
        nodes: vec![NodeSpec {
            segment_size: "64MB".into(),
            ..NodeSpec::default()
        }],
        master_args: vec![
            format!("--cluster_secret_file={}", file.display()),
            // Put credit lives 2 s: the next rotation may start 2 s after a switch.
            "--put_credit_ttl_sec=2".into(),
        ],
        ..ClusterSpec::default()
    })
    .unwrap_or_else(|e| panic!("cluster did not start: {e}"));
    assert_eq!(fingerprint_of(&c), fingerprint(A));
    assert_eq!(metric(&c, "master_write_secret_rotations_total"), 0.0);
    assert!(signs_with(&c, "probe-a", A));

    let writer = Writer::start(c.master_addr());
    writer.wait_puts(&c, 20);

    // First rotation.
    rewrite(&file, [B, b"\n"].concat().as_slice());
    wait_for(&c, "the switch to the second secret", || {
        fingerprint_of(&c) == fingerprint(B)
    });
    assert!(health(&c)["write_secret_pending_fingerprint"].is_null());
    assert_eq!(metric(&c, "master_write_secret_rotations_total"), 1.0);
    assert!(signs_with(&c, "probe-b", B));
    writer.wait_puts(&c, 20);

    // A file that cannot be a secret keeps the current one, and is counted.
    let errors = metric(&c, "master_write_secret_reload_errors_total");
    rewrite(&file, b"too short\n");
    wait_for(&c, "the reload error to be counted", || {
        metric(&c, "master_write_secret_reload_errors_total") > errors
    });
    assert_eq!(fingerprint_of(&c), fingerprint(B));
    assert!(signs_with(&c, "probe-short", B));
    // SIGHUP re-reads the file (and counts the problem again); the master lives on.
    let errors = metric(&c, "master_write_secret_reload_errors_total");
    let mut c = c;
    c.signal_master(libc::SIGHUP);
    wait_for(&c, "the SIGHUP reload to be counted", || {
        metric(&c, "master_write_secret_reload_errors_total") > errors
    });
    assert_eq!(fingerprint_of(&c), fingerprint(B));
    writer.wait_puts(&c, 20);

    // Second rotation: the shard keeps the current and the previous secret.
    rewrite(&file, C);
    wait_for(&c, "the switch to the third secret", || {
        fingerprint_of(&c) == fingerprint(C)
    });
    assert_eq!(metric(&c, "master_write_secret_rotations_total"), 2.0);
    assert_eq!(metric(&c, "master_write_secret_rotation_pending"), 0.0);
    assert!(signs_with(&c, "probe-c", C));
    writer.wait_puts(&c, 20);

    let (puts, failures) = writer.finish();
    assert!(
        failures.is_empty(),
        "{} of the puts during the rotations failed: {failures:?}\nlogs:\n{}",
        failures.len(),
        c.logs_tail(60)
    );
    assert!(puts >= 80, "{puts}");
    let s = common::store(&c);
    s.put("after", b"still works", &ReplicateConfig::default())
        .unwrap();
    assert_eq!(s.get("after").unwrap(), b"still works");
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}
