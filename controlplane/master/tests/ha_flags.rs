//! HA flags that cannot work stop `mooncake_master` at start with one clear line.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A port nothing listens on (bound, then released).
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the master with `args` (on free ports) and returns its exit code, its stderr and
/// how long it ran.
fn run(args: &[String]) -> (Option<i32>, String, Duration) {
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_mooncake_master"))
        .args([
            format!("--rpc_port={}", dead_port()),
            format!("--metrics_port={}", dead_port()),
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the master binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), stderr, t0.elapsed())
}

/// Asserts a failed start whose whole output is one line containing every word of `want`.
fn refused(args: &[String], want: &[&str]) {
    let (code, stderr, took) = run(args);
    assert_eq!(code, Some(1), "{args:?} should fail; stderr:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: expected one line, got:\n{stderr}"
    );
    for w in want {
        assert!(
            lines[0].contains(w),
            "{args:?}: `{w}` missing from: {}",
            lines[0]
        );
    }
    assert!(took < Duration::from_secs(60), "{args:?} took {took:?}");
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_wildcard_rpc_address_is_refused_with_ha() {
    let etcd = format!("--etcd_endpoints=127.0.0.1:{}", dead_port());
    refused(
        &strings(&["--enable_ha", "--rpc_address=0.0.0.0", &etcd]),
        &["--rpc_address", "0.0.0.0", "--rpc_interface"],
    );
}

#[test]
fn the_k8s_backend_is_refused_naming_the_supported_ones() {
    refused(
        &strings(&[
            "--enable-ha=true",
            "--ha-backend-type=k8s",
            "--rpc_address=127.0.0.1",
        ]),
        &["k8s", "supported HA backends: etcd, redis"],
    );
}

#[test]
fn ha_without_a_coordinator_address_is_refused() {
    refused(
        &strings(&["--enable_ha", "--rpc_address=127.0.0.1"]),
        &["--etcd_endpoints="],
    );
}

#[test]
fn an_unreachable_coordinator_is_reported_after_a_bounded_wait() {
    let etcd = format!("--etcd_endpoints=127.0.0.1:{}", dead_port());
    refused(
        &strings(&["--enable_ha", "--rpc_address=127.0.0.1", &etcd]),
        &[
            "cannot reach the HA coordinator etcd://127.0.0.1:",
            "--etcd_endpoints",
        ],
    );
    let redis = format!("--ha_backend_connstring=redis://127.0.0.1:{}", dead_port());
    refused(
        &strings(&[
            "--enable_ha",
            "--ha_backend_type=redis",
            "--rpc_address=127.0.0.1",
            &redis,
        ]),
        &["cannot reach the HA coordinator redis://127.0.0.1:"],
    );
}

#[test]
fn an_unknown_rpc_interface_lists_the_known_ones() {
    refused(
        &strings(&["--rpc_interface=no-such-nic0"]),
        &["no-such-nic0", "lo"],
    );
}
