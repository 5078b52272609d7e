//! Write tokens against real processes: a shard lets a write touch its memory only with a
//! token the master signed for that allocation, inside its range, before its deadline and
//! while the allocation lives. Every refusal is typed, counted and changes no byte.

mod common;

use std::time::{Duration, Instant};

use common::{cluster, pattern, put_start, store};
use mc_cluster::{ClusterSpec, LocalCluster, NodeSpec};
use mc_schema::msg::{Request, SliceDesc};
use mc_schema::token::{WriteKey, WriteToken};
use mc_transfer::DataConn;
use mooncake_rs::{ErrorCode, ReplicateConfig};

fn conn(s: &SliceDesc) -> DataConn {
    let c = DataConn::connect(&s.endpoint, "mooncake_cluster", Duration::from_secs(2)).unwrap();
    c.arm_deadline(Instant::now() + Duration::from_secs(10))
        .unwrap();
    c
}

/// Writes `data` at `offset` of `s`'s segment under `s`'s generation with `token`; the
/// shard's answer.
fn write(s: &SliceDesc, offset: u64, data: &[u8], token: Option<&WriteToken>) -> ErrorCode {
    let mut c = conn(s);
    let crc = mc_schema::checksum::crc32c(data);
    let id = c
        .send_object_write((s.segment_id, offset, s.generation), data, crc, token, None)
        .unwrap();
    match c.recv_write_ack(id) {
        Ok(()) => ErrorCode::Ok,
        Err(e) => e.code(),
    }
}

/// The bytes of `s` as the shard holds them.
fn read(s: &SliceDesc) -> Vec<u8> {
    let mut buf = vec![0u8; s.length as usize];
    conn(s)
        .read_into(
            s.segment_id,
            s.offset,
            s.generation,
            &mut buf,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    buf
}

/// `mc_shard_refused_writes_total{reason}` of node 0.
fn refused(c: &LocalCluster, reason: &str) -> f64 {
    let r = mc_cluster::probe::http_get(&c.node_rest_addr(0), "/metrics", Duration::from_secs(5))
        .unwrap();
    r.body
        .lines()
        .filter(|l| {
            l.starts_with("mc_shard_refused_writes_total")
                && l.contains(&format!("reason=\"{reason}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn forged_out_of_range_and_revoked_writes_are_refused_typed_counted_and_change_nothing() {
    let c = cluster(1, "64MB");
    let s = store(&c);
    let good = pattern(8192, 1);
    s.put("victim", &good, &ReplicateConfig::default()).unwrap();
    let victim = s.replicas("victim").unwrap()[0].slices[0].clone();
    assert!(victim.token.is_none(), "replica lists carry no write token");

    // A fresh allocation and its real token.
    let fresh = put_start(&c, "fresh", 4096)[0].clone();
    let token = fresh.token.expect("PutStart answers carry write tokens");
    assert_eq!(
        (token.range_offset, token.range_length),
        (fresh.offset, 4096)
    );

    // No token, a flipped MAC, a token of another allocation: forged.
    let evil = pattern(8192, 2);
    assert_eq!(
        write(&victim, victim.offset, &evil, None),
        ErrorCode::WriteTokenInvalid
    );
    let mut flipped = token;
    flipped.mac[3] ^= 0x10;
    assert_eq!(
        write(&fresh, fresh.offset, &evil[..4096], Some(&flipped)),
        ErrorCode::WriteTokenInvalid
    );
    assert_eq!(
        write(&victim, victim.offset, &evil, Some(&token)),
        ErrorCode::WriteTokenInvalid,
        "another allocation's token"
    );
    // The real token, past the end of its range: out of range.
    assert_eq!(
        write(&fresh, fresh.offset + 1, &evil[..4096], Some(&token)),
        ErrorCode::WriteOutOfRange
    );
    assert_eq!(
        write(&fresh, fresh.offset, &evil[..4097], Some(&token)),
        ErrorCode::WriteOutOfRange
    );
    assert_eq!(
        s.get("victim").unwrap(),
        good,
        "no refused write changed a byte"
    );
    assert_eq!(refused(&c, "forged"), 3.0);
    assert_eq!(refused(&c, "out_of_range"), 2.0);

    // The real token inside its range is accepted.
    let data = pattern(4096, 3);
    assert_eq!(
        write(&fresh, fresh.offset, &data, Some(&token)),
        ErrorCode::Ok
    );
    assert_eq!(read(&fresh), data);

    // Revoked: once the node heard the allocation is gone, the token no longer writes.
    let mut rpc = mc_rpc::RpcClient::connect(
        &c.master_addr(),
        mc_schema::handshake::Role::Client,
        "mooncake_cluster",
        Duration::from_secs(2),
    )
    .unwrap();
    let revoke = Request::PutRevoke {
        keys: vec!["fresh".into()],
    };
    rpc.call(&revoke, Instant::now() + Duration::from_secs(10))
        .unwrap();
    let replay = pattern(4096, 4);
    let t = Instant::now();
    loop {
        match write(&fresh, fresh.offset, &replay, Some(&token)) {
            ErrorCode::AllocationRevoked => break,
            // The free notice is on its way to the node.
            ErrorCode::Ok if t.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            other => panic!("replay after revoke answered {other}"),
        }
    }
    assert_eq!(refused(&c, "revoked"), 1.0);
}

/// A master whose tokens live `release` seconds and whose secret is `secret_file`'s.
fn cluster_with(master_args: &[&str]) -> LocalCluster {
    LocalCluster::start(ClusterSpec {
        nodes: vec![NodeSpec {
            segment_size: "64MB".into(),
            ..NodeSpec::default()
        }],
        master_args: master_args.iter().map(|a| a.to_string()).collect(),
        ..ClusterSpec::default()
    })
    .unwrap_or_else(|e| panic!("cluster did not start: {e}"))
}

#[test]
fn tokens_expire_and_an_operators_secret_file_signs_them() {
    let dir = std::env::temp_dir().join(format!("mc-tokens-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret");
    let secret = b"an operator's secret, 32 bytes..";
    std::fs::write(&file, [secret.as_slice(), b"\n"].concat()).unwrap();
    let c = cluster_with(&[
        &format!("--cluster_secret_file={}", file.display()),
        "--put_start_release_timeout_sec=2",
    ]);
    let s = store(&c);
    s.put(
        "ok",
        b"works with the file's secret",
        &ReplicateConfig::default(),
    )
    .unwrap();
    assert_eq!(s.get("ok").unwrap(), b"works with the file's secret");

    // The tokens are the file's secret's: one signed here with it verifies at the shard.
    let fresh = put_start(&c, "fresh", 4096)[0].clone();
    let mine = WriteKey::new(secret).sign(
        fresh.segment_id,
        fresh.generation,
        (fresh.offset, 4096),
        fresh.token.unwrap().expires_unix_ms,
    );
    assert_eq!(mine, fresh.token.unwrap());
    let other = WriteKey::new(b"some other secret, 32 bytes.....").sign(
        fresh.segment_id,
        fresh.generation,
        (fresh.offset, 4096),
        mine.expires_unix_ms,
    );
    assert_eq!(
        write(&fresh, fresh.offset, &[7; 4096], Some(&other)),
        ErrorCode::WriteTokenInvalid
    );
    // Past its deadline (the release timeout, 2 s) the token is refused as expired.
    while mc_schema::token::unix_ms_now() < mine.expires_unix_ms + 50 {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        write(&fresh, fresh.offset, &[7; 4096], Some(&mine)),
        ErrorCode::WriteTokenExpired
    );
    assert_eq!(refused(&c, "expired"), 1.0);
    drop(c);

    // A secret too short to be one stops the master with a message naming the flag.
    std::fs::write(&file, b"short").unwrap();
    let bin = mc_cluster::find_binary(mc_cluster::MASTER_BINARY, None).unwrap();
    let out = std::process::Command::new(bin)
        .args([
            &format!("--cluster_secret_file={}", file.display()),
            "--rpc_port=0",
            "--metrics_port=0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--cluster_secret_file") && err.contains("at least 16"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
