//! Bad input on every port: random bytes, broken frames and HTTP on the master's RPC and
//! admin ports and the node's data and REST ports; out-of-range transfers on a shard.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use mc_cluster::probe::http_get;
use mooncake_rs::ErrorCode;

use super::{Ctx, PATIENCE};
use crate::harness::{Done, Run, client, node, put_many, replicas, start};
use crate::ledger::{pattern, verify};

/// How long a peer may take to close a connection that sent garbage.
const CLOSE_PATIENCE: Duration = Duration::from_secs(10);

/// Inputs every port gets: random bytes of random lengths, then shapes that look almost
/// right (HTTP with bad queries and bodies, frames with absurd lengths).
fn inputs(seed: u64, random: usize) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = (0..random as u64)
        .map(|i| {
            let p = pattern(4096, seed + i);
            let len = 1 + (u16::from_le_bytes([p[0], p[1]]) as usize % 4095);
            p[..len].to_vec()
        })
        .collect();
    let shaped: [&[u8]; 12] = [
        b"GET /api/get?key=%ZZ%00 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /metadata?key= HTTP/1.1\r\n\r\n",
        b"POST /api/put?key=a HTTP/1.1\r\nContent-Length: 5\r\n\r\n{{{{{",
        b"PUT /api/mount HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"size\":-1}}",
        b"PUT /health HTTP/1.1\r\nContent-Length: 99999999999999\r\n\r\nabc",
        b"GET /query?key=\xff\xfe HTTP/1.1\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        &[0u8; 300],
        &[0xFFu8; 300],
        b"MCRS\x01\x00\x00\x00",
        b"\r\n\r\n\r\n",
    ];
    out.extend(shaped.iter().map(|s| s.to_vec()));
    let mut huge_header = b"GET /health HTTP/1.1\r\nX: ".to_vec();
    huge_header.extend(std::iter::repeat_n(b'a', 200_000));
    out.push(huge_header);
    out
}

/// Sends `bytes` and half-closes; true if the peer then closes (or answers and closes)
/// within [`CLOSE_PATIENCE`], false if it keeps the connection hanging.
fn closes_after(addr: &str, bytes: &[u8]) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(CLOSE_PATIENCE));
    let _ = s.write_all(bytes);
    let _ = s.shutdown(Shutdown::Write);
    let mut sink = Vec::new();
    match s.read_to_end(&mut sink) {
        Ok(_) => true,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

/// Garbage on the master's RPC and admin ports and the node's data and REST ports. Target:
/// every connection is closed (or answered) rather than left hanging, both processes keep
/// serving, every stored object reads back.
pub fn every_port(ctx: &Ctx) -> anyhow::Result<Run> {
    let c = start(vec![node("127.0.0.1", "64MB", &[])], &[])?;
    let s = client(&c.master_addr())?;
    let acked = put_many(&s, "gb", 0, 20, 10_000, &replicas(1));
    anyhow::ensure!(acked.len() == 20, "puts failed");
    let data = s.replicas("gb-0")?[0].slices[0].endpoint.clone();
    let ports = [
        ("master rpc", c.master_addr()),
        ("master admin", c.metrics_addr()),
        ("node data", data),
        ("node rest", c.node_rest_addr(0)),
    ];
    let mut d = Done::default();
    let inputs = inputs(7, ctx.pick(20, 200));
    for (what, addr) in &ports {
        let hung = inputs.iter().filter(|g| !closes_after(addr, g)).count();
        if hung > 0 {
            d.problems
                .push(format!("{what} {addr}: {hung} connections left hanging"));
        }
    }
    for (what, addr) in [("master", c.metrics_addr()), ("node", c.node_rest_addr(0))] {
        if !http_get(&addr, "/health", Duration::from_secs(5)).is_ok_and(|r| r.status == 200) {
            d.problems.push(format!(
                "{what} /health does not answer 200 after the garbage"
            ));
        }
    }
    d.tally = verify(&s, &acked, PATIENCE);
    let more = put_many(&s, "gb-after", 100, 5, 10_000, &replicas(1));
    if more.len() != 5 {
        d.problems.push("puts fail after the garbage".into());
    }
    Ok(Run::Done(d))
}

/// Transfers outside every allocation's bounds straight to a shard: past the segment's end,
/// wrapping around, unknown segments. Target: each is refused (a write without a token with
/// `WRITE_TOKEN_INVALID` or `INVALID_WRITE`, a read with `INVALID_READ`) and the objects
/// around them are unchanged.
pub fn out_of_range(ctx: &Ctx) -> anyhow::Result<Run> {
    let c = start(vec![node("127.0.0.1", "64MB", &[])], &[])?;
    let s = client(&c.master_addr())?;
    let acked = put_many(&s, "oor", 0, 10, 10_000, &replicas(1));
    anyhow::ensure!(acked.len() == 10, "puts failed");
    let slice = s.replicas("oor-0")?[0].slices[0].clone();
    let seg_bytes = 64u64 << 20;
    let cases: Vec<(u64, u64, u64)> = vec![
        (slice.segment_id, seg_bytes - 8, 64),
        (slice.segment_id, seg_bytes, 1),
        (slice.segment_id, u64::MAX - 4, 8),
        (slice.segment_id ^ 0x5555, 0, 64),
        (0, 0, 64),
    ];
    let rounds = ctx.pick(1, 20);
    let mut d = Done::default();
    for _ in 0..rounds {
        for &(seg, off, len) in &cases {
            let data = vec![0xA5u8; len.min(1 << 16) as usize];
            let crc = mc_schema::checksum::crc32c(&data);
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut conn = mc_transfer::DataConn::connect(
                &slice.endpoint,
                "mooncake_cluster",
                Duration::from_secs(2),
            )?;
            match conn.write(seg, off, 0, &data, crc, deadline) {
                Err(e)
                    if matches!(
                        e.code(),
                        ErrorCode::InvalidWrite | ErrorCode::WriteTokenInvalid
                    ) => {}
                r => d.problems.push(format!("write {seg:#x}+{off}: {r:?}")),
            }
            let mut conn = mc_transfer::DataConn::connect(
                &slice.endpoint,
                "mooncake_cluster",
                Duration::from_secs(2),
            )?;
            let mut buf = vec![0u8; len.min(1 << 16) as usize];
            match conn.read_into(seg, off, 0, &mut buf, deadline) {
                Err(e) if e.code() == ErrorCode::InvalidRead => {}
                r => d.problems.push(format!("read {seg:#x}+{off}: {r:?}")),
            }
        }
    }
    d.tally = verify(&s, &acked, PATIENCE);
    Ok(Run::Done(d))
}

/// One write straight to a shard with `token`; the code it was answered with.
fn raw_write(
    s: &mooncake_rs::SliceDesc,
    offset: u64,
    data: &[u8],
    token: Option<&mc_schema::token::WriteToken>,
) -> anyhow::Result<ErrorCode> {
    let mut conn =
        mc_transfer::DataConn::connect(&s.endpoint, "mooncake_cluster", Duration::from_secs(2))?;
    conn.arm_deadline(Instant::now() + Duration::from_secs(5))?;
    let crc = mc_schema::checksum::crc32c(data);
    let id =
        conn.send_object_write((s.segment_id, offset, s.generation), data, crc, token, None)?;
    Ok(match conn.recv_write_ack(id) {
        Ok(()) => ErrorCode::Ok,
        Err(e) => e.code(),
    })
}

/// Writes a wrong or buggy client could send straight to a shard: no token, a forged one,
/// another allocation's, one past its range, one past its deadline, one replayed after its
/// put was revoked. Target: each is refused with its typed code and the stored objects
/// are unchanged.
pub fn forged_expired(ctx: &Ctx) -> anyhow::Result<Run> {
    // Tokens live as long as an unfinished put's space: 2 s here, so expiry is quick.
    let c = start(
        vec![node("127.0.0.1", "64MB", &[])],
        &["--put_start_release_timeout_sec=2"],
    )?;
    let s = client(&c.master_addr())?;
    let acked = put_many(&s, "tok", 0, 20, 8192, &replicas(1));
    anyhow::ensure!(acked.len() == 20, "puts failed");
    let victim = s.replicas("tok-0")?[0].slices[0].clone();
    let mut d = Done::default();
    let mut expect = |what: &str, got: ErrorCode, want: ErrorCode| {
        if got != want {
            d.problems
                .push(format!("{what}: answered {got}, want {want}"));
        }
    };
    for round in 0..ctx.pick(1, 10) {
        let key = format!("tok-fresh-{round}");
        let r = s
            .put_reserve_batch(&[(key.as_str(), 4096)], &replicas(1))
            .pop()
            .expect("one result")?;
        let fresh = r.replicas()[0].slices[0].clone();
        let token = fresh
            .token
            .ok_or_else(|| anyhow::anyhow!("no write token"))?;
        let junk = pattern(8192, 77 + round as u64);
        let none = raw_write(&victim, victim.offset, &junk, None)?;
        expect("no token", none, ErrorCode::WriteTokenInvalid);
        let mut forged = token;
        forged.mac[round as usize % forged.mac.len()] ^= 1;
        let got = raw_write(&fresh, fresh.offset, &junk[..4096], Some(&forged))?;
        expect("forged MAC", got, ErrorCode::WriteTokenInvalid);
        let got = raw_write(&victim, victim.offset, &junk, Some(&token))?;
        expect(
            "another allocation's token",
            got,
            ErrorCode::WriteTokenInvalid,
        );
        let got = raw_write(&fresh, fresh.offset + 8, &junk[..4096], Some(&token))?;
        expect("past the range", got, ErrorCode::WriteOutOfRange);
        s.put_revoke_batch(&[key.as_str()]);
        let t = Instant::now();
        loop {
            match raw_write(&fresh, fresh.offset, &junk[..4096], Some(&token))? {
                ErrorCode::Ok if t.elapsed() < PATIENCE => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                got => {
                    expect("replayed after revoke", got, ErrorCode::AllocationRevoked);
                    break;
                }
            }
        }
    }
    let r = s
        .put_reserve_batch(&[("tok-late", 4096)], &replicas(1))
        .pop()
        .expect("one result")?;
    let late = r.replicas()[0].slices[0].clone();
    let token = late
        .token
        .ok_or_else(|| anyhow::anyhow!("no write token"))?;
    while mc_schema::token::unix_ms_now() <= token.expires_unix_ms + 50 {
        std::thread::sleep(Duration::from_millis(100));
    }
    let got = raw_write(&late, late.offset, &[1; 4096], Some(&token))?;
    expect("past its deadline", got, ErrorCode::WriteTokenExpired);
    d.tally = verify(&s, &acked, PATIENCE);
    Ok(Run::Done(d))
}
