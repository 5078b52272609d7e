//! Snapshot settings that cannot work stop `mooncake_master` at start with one line naming
//! what to set.

use std::process::{Command, Stdio};

/// A port nothing listens on (bound, then released).
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the master with `args` and `env` (snapshot and AWS variables of this process
/// removed) and returns its exit code and stderr.
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mooncake_master"));
    cmd.args([
        format!("--rpc_port={}", dead_port()),
        format!("--metrics_port={}", dead_port()),
    ])
    .args(args)
    .stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("MOONCAKE_") || k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("the master binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn refused(args: &[&str], env: &[(&str, &str)], want: &[&str]) {
    let (code, stderr) = run(args, env);
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
}

#[test]
fn missing_snapshot_settings_are_one_line_naming_them() {
    refused(
        &["--enable_snapshot"],
        &[],
        &["--snapshot_object_store_type=local"],
    );
    refused(
        &[
            "--enable-snapshot-restore",
            "--snapshot-object-store-type=local",
        ],
        &[],
        &["MOONCAKE_SNAPSHOT_LOCAL_PATH"],
    );
    refused(
        &["--enable_snapshot=true", "--snapshot_object_store_type=s3"],
        &[("MOONCAKE_AWS_S3_ENDPOINT", "http://127.0.0.1:1")],
        &["MOONCAKE_AWS_BUCKET_NAME"],
    );
    refused(
        &["--enable_snapshot", "--snapshot_object_store_type=oss"],
        &[],
        &["`oss`", "local, s3"],
    );
}
