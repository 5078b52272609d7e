//! Bad input and concurrency: garbage on the master and shard ports, a corrupted payload,
//! and many threads sharing one client.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{cluster, pattern, store};
use mc_schema::frame::FrameHeader;
use mc_schema::handshake::{Hello, Role};
use mc_transfer::{DataConn, TransferError};
use mooncake_rs::{ErrorCode, ReplicateConfig};

/// Sends `bytes` on a fresh connection and checks the peer closes it (EOF or reset)
/// within 10 s rather than hanging or crashing.
fn expect_closed(addr: &str, bytes: &[u8]) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut sink = Vec::new();
    let t = Instant::now();
    match s.read_to_end(&mut sink) {
        Ok(_) => {}
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "peer kept {addr} open after garbage ({:?})",
            t.elapsed()
        ),
    }
}

fn hello(cluster_id: &str) -> Vec<u8> {
    Hello::new(Role::Client, cluster_id)
        .unwrap()
        .encode()
        .to_vec()
}

fn garbage_inputs() -> Vec<Vec<u8>> {
    let good = hello("mooncake_cluster");
    let mut bad_frame = good.clone();
    bad_frame.extend_from_slice(
        &FrameHeader {
            payload_len: 8,
            request_id: 1,
        }
        .encode(),
    );
    bad_frame.extend_from_slice(b"notaflat");
    let mut oversized = good.clone();
    oversized.extend_from_slice(
        &FrameHeader {
            payload_len: u32::MAX,
            request_id: 1,
        }
        .encode(),
    );
    let mut truncated = good.clone();
    truncated.extend_from_slice(&[1, 2, 3]);
    let mut bad_transfer = good.clone();
    bad_transfer.extend_from_slice(&[0xEEu8; 64]);
    vec![
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        vec![0u8; 200],
        pattern(5000, 7),
        hello("another_cluster"),
        good[..30].to_vec(),
        bad_frame,
        oversized,
        truncated,
        bad_transfer,
    ]
}

#[test]
fn garbage_on_master_and_shard_ports_closes_only_that_connection() {
    let c = cluster(1, "64MB");
    let s = store(&c);
    let cfg = ReplicateConfig::default();
    s.put("before", b"still here", &cfg).unwrap();
    let shard = s.replicas("before").unwrap()[0].slices[0].endpoint.clone();
    for addr in [c.master_addr(), shard.clone()] {
        for g in garbage_inputs() {
            expect_closed(&addr, &g);
        }
    }
    // A wrong cluster id gets a typed refusal, not garbage.
    let e = DataConn::connect(&shard, "another_cluster", Duration::from_secs(2))
        .err()
        .unwrap();
    assert!(e.to_string().contains("cluster id mismatch"), "{e}");
    let e = mooncake_rs::Store::connect(mooncake_rs::StoreConfig {
        cluster_id: "another_cluster".into(),
        ..mooncake_rs::StoreConfig::new(c.master_addr())
    })
    .err()
    .unwrap();
    assert_eq!(e.code(), ErrorCode::RpcFail);
    assert!(e.message().contains("cluster id mismatch"), "{e}");
    // Everyone else is still served.
    assert_eq!(s.get("before").unwrap(), b"still here");
    s.put("after", b"works", &cfg).unwrap();
    assert_eq!(store(&c).get("after").unwrap(), b"works");
}

/// Writes `data` at `offset` of `slice`'s segment with `slice`'s write token (or none).
fn write_at(
    conn: &mut DataConn,
    slice: &mooncake_rs::SliceDesc,
    offset: u64,
    data: &[u8],
    crc: u32,
    token: bool,
) -> Result<(), TransferError> {
    conn.arm_deadline(Instant::now() + Duration::from_secs(10))?;
    let at = (slice.segment_id, offset, slice.generation);
    let token = if token { slice.token.as_ref() } else { None };
    let id = conn.send_object_write(at, data, crc, token, None)?;
    conn.recv_write_ack(id)
}

#[test]
fn shard_refuses_a_payload_that_does_not_match_its_crc() {
    let c = cluster(1, "64MB");
    let s = store(&c);
    let cfg = ReplicateConfig::default();
    let good = pattern(8192, 1);
    s.put("victim", &good, &cfg).unwrap();
    let slice = s.replicas("victim").unwrap()[0].slices[0].clone();
    let mut conn =
        DataConn::connect(&slice.endpoint, "mooncake_cluster", Duration::from_secs(2)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let evil = pattern(8192, 2);
    let evil_crc = mc_schema::checksum::crc32c(&evil);
    // A committed object's range takes no write without the token of its allocation: not
    // one byte of it changes.
    let e = write_at(&mut conn, &slice, slice.offset, &evil, evil_crc, false).unwrap_err();
    assert_eq!(e.code(), ErrorCode::WriteTokenInvalid, "{e}");
    assert_eq!(s.get("victim").unwrap(), good);
    // The holder of an allocation's token whose payload does not match its CRC is refused.
    let fresh = common::put_start(&c, "fresh", 8192)[0].clone();
    let wrong_crc = mc_schema::checksum::crc32c(&good);
    let e = write_at(&mut conn, &fresh, fresh.offset, &evil, wrong_crc, true).unwrap_err();
    assert!(
        matches!(
            e,
            TransferError::Refused {
                code: ErrorCode::ChecksumMismatch,
                ..
            }
        ),
        "{e}"
    );
    // Out-of-segment ranges are refused outright, with or without a token.
    for token in [false, true] {
        let mut conn =
            DataConn::connect(&slice.endpoint, "mooncake_cluster", Duration::from_secs(2)).unwrap();
        let e = write_at(&mut conn, &fresh, u64::MAX - 4, b"12345678", 1, token).unwrap_err();
        let want = if token {
            ErrorCode::WriteOutOfRange
        } else {
            ErrorCode::WriteTokenInvalid
        };
        assert_eq!(e.code(), want, "{e}");
    }
    let mut buf = [0u8; 16];
    let mut conn =
        DataConn::connect(&slice.endpoint, "mooncake_cluster", Duration::from_secs(2)).unwrap();
    let e = conn
        .read_into(slice.segment_id + 1, 0, 0, &mut buf, deadline)
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidRead, "{e}");
}

#[test]
fn eight_threads_share_one_client() {
    let c = cluster(1, "256MB");
    let s = Arc::new(store(&c));
    let cfg = ReplicateConfig::default();
    for k in 0..8u64 {
        s.put(
            &format!("shared-{k}"),
            &pattern(3000 + k as usize, 1000 + k),
            &cfg,
        )
        .unwrap();
    }
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let s = s.clone();
            let cfg = cfg.clone();
            std::thread::spawn(move || {
                for i in 0..40u64 {
                    let len = 1 + ((t * 7919 + i * 104_729) % 200_000) as usize;
                    let key = format!("t{t}-{i}");
                    let v = pattern(len, t * 1000 + i);
                    s.put(&key, &v, &cfg).unwrap();
                    assert_eq!(s.get(&key).unwrap(), v);
                    let k = (t + i) % 8;
                    assert_eq!(
                        s.get(&format!("shared-{k}")).unwrap(),
                        pattern(3000 + k as usize, 1000 + k)
                    );
                    // Everybody races to create the same key: exactly one wins per round.
                    let _ = s.put(&format!("race-{i}"), &pattern(64, i), &cfg);
                    if i % 5 == 0 {
                        s.remove(&key, true).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for i in 0..40u64 {
        assert_eq!(s.get(&format!("race-{i}")).unwrap(), pattern(64, i));
    }
}

#[test]
fn many_requests_in_flight_on_one_master_connection() {
    use mc_schema::msg::{Request, ResponseBody};
    let c = cluster(1, "64MB");
    let s = store(&c);
    s.put("p", b"pipelined", &ReplicateConfig::default())
        .unwrap();
    let mut rpc = mc_rpc::RpcClient::connect(
        &c.master_addr(),
        Role::Tool,
        "mooncake_cluster",
        Duration::from_secs(2),
    )
    .unwrap();
    let reqs: Vec<Request> = (0..200)
        .map(|i| Request::GetSize {
            keys: vec![if i % 2 == 0 {
                "p".into()
            } else {
                format!("missing-{i}")
            }],
        })
        .collect();
    let answers = rpc
        .call_many(&reqs, Instant::now() + Duration::from_secs(20))
        .unwrap();
    assert_eq!(answers.len(), 200);
    for (i, a) in answers.iter().enumerate() {
        let want = if i % 2 == 0 {
            9
        } else {
            ErrorCode::ObjectNotFound.code() as i64
        };
        assert_eq!(a.body, ResponseBody::Values(vec![want]), "answer {i}");
    }
}

#[test]
fn a_stalled_master_gives_rpc_timeout_within_the_deadline() {
    let mut c = cluster(1, "64MB");
    let s = mooncake_rs::Store::connect(mooncake_rs::StoreConfig {
        rpc_timeout: Duration::from_secs(2),
        ..mooncake_rs::StoreConfig::new(c.master_addr())
    })
    .unwrap();
    s.put("k", b"v", &ReplicateConfig::default()).unwrap();
    c.signal_master(libc::SIGSTOP);
    common::wait_stopped(c.master_pid().expect("master runs"));
    // A key not in the client's location cache needs the master.
    let e = s.get("not-cached").unwrap_err();
    c.signal_master(libc::SIGCONT);
    assert_eq!(e.code(), ErrorCode::RpcTimeout, "{e}");
    assert_eq!(e.code().code(), -901);
    // Once the master runs again, calls succeed (the timed-out connection was dropped).
    assert_eq!(s.get("k").unwrap(), b"v");
}

/// A raw data connection that has sent a header and part of a payload (or a READ it does
/// not drain), so the shard holds a range for it.
fn raw_conn(endpoint: &str) -> TcpStream {
    let mut s = mc_transfer::net::connect_tcp(endpoint, Duration::from_secs(2)).unwrap();
    mc_transfer::net::handshake(
        &mut s,
        Role::Client,
        "mooncake_cluster",
        Duration::from_secs(2),
    )
    .unwrap();
    s
}

/// A header for `len` bytes at `slice`, followed (on writes) by the slice's write token.
fn header(op: mc_transfer::Op, slice: &mooncake_rs::SliceDesc, len: u64, crc: u32) -> Vec<u8> {
    let mut h = mc_transfer::TransferHeader::request(op, slice.segment_id, slice.offset, len);
    h.generation = slice.generation;
    h.crc32c = crc;
    h.request_id = 1;
    let token = slice.token.filter(|_| op == mc_transfer::Op::Write);
    if token.is_some() {
        h.flags |= mc_transfer::header::FLAG_TOKEN;
    }
    let mut out = h.encode().to_vec();
    if let Some(t) = token {
        out.extend_from_slice(&mc_transfer::header::encode_token(&t));
    }
    out
}

/// Waits until `f` holds, for up to 30 s (the shard needs a moment to see the first bytes).
fn eventually(mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "condition never held"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn transfers_overlapping_a_write_in_flight_are_refused_as_busy() {
    let c = cluster(1, "64MB");
    let s = store(&c);
    s.put("neighbour", b"still readable", &ReplicateConfig::default())
        .unwrap();
    let v = pattern(64 * 1024, 3);
    let slice = common::put_start(&c, "held", v.len() as u64)[0].clone();
    // A writer that stops half-way through its payload holds the range.
    let mut writer = raw_conn(&slice.endpoint);
    writer
        .write_all(&header(
            mc_transfer::Op::Write,
            &slice,
            v.len() as u64,
            mc_schema::checksum::crc32c(&v),
        ))
        .unwrap();
    writer.write_all(&v[..v.len() / 2]).unwrap();
    let deadline = || Instant::now() + Duration::from_secs(10);
    let mut other =
        DataConn::connect(&slice.endpoint, "mooncake_cluster", Duration::from_secs(2)).unwrap();
    let mut buf = vec![0u8; 100];
    eventually(|| {
        let r = other.read_into(slice.segment_id, slice.offset + 10, 0, &mut buf, deadline());
        matches!(
            r,
            Err(TransferError::Refused {
                code: ErrorCode::ObjectReplicaBusy,
                ..
            })
        )
    });
    // An overlapping write (the same allocation's token, from another connection) is
    // refused too, its payload skipped: the connection goes on.
    let e = write_at(
        &mut other,
        &slice,
        slice.offset + 100,
        b"xy",
        mc_schema::checksum::crc32c(b"xy"),
        true,
    )
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ObjectReplicaBusy, "{e}");
    // Other ranges are not affected, on the same connection.
    let n = s.replicas("neighbour").unwrap()[0].slices[0].clone();
    let mut got = vec![0u8; n.length as usize];
    other
        .read_into(n.segment_id, n.offset, n.generation, &mut got, deadline())
        .unwrap();
    assert_eq!(got, b"still readable");
    // Once the writer finishes, its range is free again and holds the whole payload.
    writer.write_all(&v[v.len() / 2..]).unwrap();
    let mut ack = [0u8; 64];
    writer.read_exact(&mut ack).unwrap();
    let ack = mc_transfer::TransferHeader::decode(&ack).unwrap();
    assert_eq!(ack.status, 0);
    let mut back = vec![0u8; v.len()];
    other
        .read_into(
            slice.segment_id,
            slice.offset,
            slice.generation,
            &mut back,
            deadline(),
        )
        .unwrap();
    assert!(back == v, "the finished write's bytes");
}

/// Shrinks a socket's receive buffer (which also ends its autotuning), so a large answer
/// cannot fit in the kernel's buffers and the sender stays mid-transfer.
fn small_receive_buffer(s: &TcpStream) {
    let value: libc::c_int = 4096;
    // SAFETY: the fd is an open socket owned by `s`; the kernel reads the c_int during the
    // call only.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(s),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt: {}", std::io::Error::last_os_error());
}

#[test]
fn a_write_overlapping_a_slow_read_is_refused_and_changes_no_byte() {
    let c = cluster(1, "128MB");
    // Larger than both sockets' buffers, so the shard cannot finish sending it. Written by
    // hand, so this test holds the allocation's write token.
    let v = pattern(16 << 20, 4);
    let slice = common::put_start(&c, "big", v.len() as u64)[0].clone();
    let mut other =
        DataConn::connect(&slice.endpoint, "mooncake_cluster", Duration::from_secs(2)).unwrap();
    let crc = mc_schema::checksum::crc32c(&v);
    write_at(&mut other, &slice, slice.offset, &v, crc, true).unwrap();
    let mut reader = raw_conn(&slice.endpoint);
    small_receive_buffer(&reader);
    reader
        .write_all(&header(mc_transfer::Op::Read, &slice, slice.length, 0))
        .unwrap();
    // The answer's header arrives before its payload, once the shard holds the range.
    reader
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut hdr = [0u8; 64];
    reader.read_exact(&mut hdr).unwrap();
    assert_eq!(mc_transfer::TransferHeader::decode(&hdr).unwrap().status, 0);
    let junk = pattern(4096, 5);
    let crc = mc_schema::checksum::crc32c(&junk);
    let e = write_at(&mut other, &slice, slice.offset + 8192, &junk, crc, true).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ObjectReplicaBusy, "{e}");
    // The reader goes away mid-answer: its claim ends with the connection, and the refused
    // write changed no byte.
    drop(reader);
    let mut back = vec![0u8; v.len()];
    other
        .read_into(
            slice.segment_id,
            slice.offset,
            slice.generation,
            &mut back,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    assert!(back == v, "the refused write changed no byte");
}
