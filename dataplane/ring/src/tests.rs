//! Ring tests: frames, fragments, wrap-around, back-pressure, crashes and liveness, over two
//! mappings of the same file (and, in one test, a second process).

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use crate::dir::Dir;
use crate::layout::{FLAG_FIRST, FLAG_LAST, OFF_MAGIC, OFF_VERSION};
use crate::{EndConfig, Heartbeat, Peer, RingError, SendError, SharedRing, Side};

const SMALL: usize = 4096;

/// A message whose bytes depend on its number and size.
fn message(n: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + n * 7 + len) as u8).collect()
}

/// A second mapping of the same file, as the other process would have.
fn second_mapping(r: &SharedRing) -> SharedRing {
    SharedRing::open(r.fd().try_clone_to_owned().unwrap()).unwrap()
}

/// Flushes `tx` and receives on `rx` until one message arrives.
fn pump(tx: &crate::RingEnd, rx: &crate::RingEnd) -> Vec<u8> {
    for _ in 0..1_000_000 {
        tx.flush();
        if let Some(m) = rx.try_recv() {
            return m;
        }
    }
    panic!("no message after a million rounds");
}

#[test]
fn messages_cross_in_order_both_ways() {
    let ring = SharedRing::create("t", SMALL).unwrap();
    let other = second_mapping(&ring);
    let agent = ring.attach(Side::Agent);
    let shard = other.attach(Side::Shard);
    assert_eq!(shard.try_recv(), None);
    for (n, len) in [0usize, 1, 7, 8, 9, 100, 1000].into_iter().enumerate() {
        agent.push(message(n, len)).unwrap();
    }
    assert_eq!(agent.flush(), 0);
    for (n, len) in [0usize, 1, 7, 8, 9, 100, 1000].into_iter().enumerate() {
        assert_eq!(shard.try_recv(), Some(message(n, len)));
    }
    assert_eq!(shard.try_recv(), None);
    shard.push(b"back".to_vec()).unwrap();
    assert_eq!(pump(&shard, &agent), b"back");
}

#[test]
fn messages_bigger_than_the_ring_stream_as_fragments() {
    let ring = SharedRing::create("t", SMALL).unwrap();
    let agent = ring.attach(Side::Agent);
    let shard = ring.attach(Side::Shard);
    let big = message(1, 10 * SMALL + 3);
    agent.push(big.clone()).unwrap();
    assert!(
        agent.flush() > 0,
        "a message ten times the ring cannot fit at once"
    );
    assert_eq!(pump(&agent, &shard), big);
    assert!(agent.full_events() > 0);
    assert_eq!(ring.full_events(), agent.full_events());
    assert_eq!(shard.peer_full_events(), agent.full_events());
}

#[test]
fn full_ring_applies_back_pressure_then_drains() {
    let ring = SharedRing::create("t", SMALL).unwrap();
    let cfg = EndConfig {
        backlog_bytes: 3 * SMALL,
        ..EndConfig::default()
    };
    let agent = ring.attach_with(Side::Agent, cfg);
    let shard = ring.attach(Side::Shard);
    let mut queued = 0;
    while agent.push(message(queued, 1000)).is_ok() {
        queued += 1;
    }
    let err = agent.push(message(queued, 1000)).unwrap_err();
    assert_eq!(err.bound_bytes, 3 * SMALL);
    let pending = agent.flush();
    assert!(pending > 0);
    assert_eq!(agent.full_events(), 1);
    assert_eq!(
        agent.flush(),
        pending,
        "nothing moves while the consumer sleeps"
    );
    assert_eq!(agent.full_events(), 2);
    for n in 0..queued {
        assert_eq!(pump(&agent, &shard), message(n, 1000));
    }
    assert_eq!(agent.pending_bytes(), 0);
    assert_eq!(shard.try_recv(), None);
}

#[test]
fn wrap_markers_keep_small_messages_whole() {
    let ring = SharedRing::create("t", SMALL).unwrap();
    let agent = ring.attach(Side::Agent);
    let shard = ring.attach(Side::Shard);
    // 13 * 320-byte frames end 64 bytes before the end; the next 320 must wrap.
    for n in 0..40 {
        agent.push(message(n, 312)).unwrap();
        assert_eq!(agent.flush(), 0);
        assert_eq!(shard.try_recv(), Some(message(n, 312)));
    }
    assert_eq!(shard.discarded_messages() + shard.corrupt_frames(), 0);
}

#[test]
fn torn_write_is_invisible() {
    let ring = SharedRing::create("t", SMALL).unwrap();
    let shard = ring.attach(Side::Shard);
    {
        let agent = ring.attach(Side::Agent);
        agent.push(b"one".to_vec()).unwrap();
        agent.flush();
        assert_eq!(shard.try_recv(), Some(b"one".to_vec()));
        // A crash after writing a frame but before publishing it.
        let dir = Dir::new(0, SMALL);
        let w = dir
            .write_index(&ring.map)
            .load(std::sync::atomic::Ordering::Relaxed);
        dir.write_frame(&ring.map, w, FLAG_FIRST | FLAG_LAST, b"half-written");
        assert_eq!(shard.try_recv(), None);
        std::mem::forget(agent);
    }
    let agent = ring.attach(Side::Agent);
    agent.push(b"two".to_vec()).unwrap();
    agent.flush();
    assert_eq!(shard.try_recv(), Some(b"two".to_vec()));
    assert_eq!(shard.try_recv(), None);
}

#[test]
fn producer_restart_mid_message_discards_the_partial() {
    let ring = SharedRing::create("t", SMALL).unwrap();
    let other = second_mapping(&ring);
    let shard = other.attach(Side::Shard);
    let agent = ring.attach(Side::Agent);
    let first_epoch = shard.peer_epoch();
    agent.push(message(0, 5 * SMALL)).unwrap();
    agent.flush();
    assert_eq!(shard.try_recv(), None, "only fragments have arrived");
    agent.flush();
    assert_eq!(shard.try_recv(), None);
    std::mem::forget(agent); // killed: no close, no more fragments
    let agent = ring.attach(Side::Agent);
    assert_eq!(shard.peer_epoch(), first_epoch + 1);
    agent.push(message(1, 2 * SMALL)).unwrap();
    assert_eq!(pump(&agent, &shard), message(1, 2 * SMALL));
    assert_eq!(shard.discarded_messages(), 1);
}

#[test]
fn consumer_restart_mid_message_skips_orphans() {
    let ring = SharedRing::create("t", SMALL).unwrap();
    let agent = ring.attach(Side::Agent);
    let shard = ring.attach(Side::Shard);
    agent.push(message(0, 3 * SMALL)).unwrap();
    agent.push(message(1, 100)).unwrap();
    agent.flush();
    assert_eq!(shard.try_recv(), None);
    std::mem::forget(shard);
    let shard = ring.attach(Side::Shard);
    assert_eq!(pump(&agent, &shard), message(1, 100));
    assert!(shard.orphan_fragments() > 0);
}

#[test]
fn corrupt_frames_are_skipped_not_trusted() {
    let ring = SharedRing::create("t", SMALL).unwrap();
    let agent = ring.attach(Side::Agent);
    let shard = ring.attach(Side::Shard);
    let dir = Dir::new(0, SMALL);
    ring.map.write(dir.at(0), &[0xFF; 64]);
    dir.publish(&ring.map, 64);
    assert_eq!(shard.try_recv(), None);
    assert_eq!(shard.corrupt_frames(), 1);
    // The producer continues after what it believes it wrote.
    agent.push(b"ok".to_vec()).unwrap();
    agent.flush();
    assert_eq!(shard.try_recv(), Some(b"ok".to_vec()));
}

#[test]
fn oversized_messages_are_discarded() {
    let ring = SharedRing::create("t", SMALL).unwrap();
    let agent = ring.attach(Side::Agent);
    let cfg = EndConfig {
        max_message_bytes: 2 * SMALL,
        ..EndConfig::default()
    };
    let shard = ring.attach_with(Side::Shard, cfg);
    agent.push(message(0, 3 * SMALL)).unwrap();
    agent.push(message(1, SMALL)).unwrap();
    assert_eq!(pump(&agent, &shard), message(1, SMALL));
    assert_eq!(shard.discarded_messages(), 1);
}

#[test]
fn peer_silence_closure_and_restart_are_seen() {
    let ring = SharedRing::create("t", SMALL).unwrap();
    let agent = ring.attach(Side::Agent);
    let shard = Arc::new(ring.attach(Side::Shard));
    let t = Duration::from_millis(30);
    assert_eq!(agent.peer(t), Peer::Alive);
    std::thread::sleep(2 * t);
    assert_eq!(agent.peer(t), Peer::Silent, "no beat for twice the timeout");
    shard.beat();
    assert_eq!(agent.peer(t), Peer::Alive);
    {
        let _hb = Heartbeat::spawn(vec![shard.clone()], Duration::from_millis(1)).unwrap();
        let before = agent.peer(t);
        let seen = ring
            .map
            .word(crate::layout::OFF_SIDE[1] + crate::layout::SIDE_BEAT);
        let b0 = seen.load(std::sync::atomic::Ordering::Relaxed);
        while seen.load(std::sync::atomic::Ordering::Relaxed) == b0 {
            std::thread::yield_now();
        }
        assert_eq!(before, Peer::Alive);
        assert_eq!(agent.peer(t), Peer::Alive, "the beat moved");
    }
    let epoch = agent.peer_epoch();
    shard.close();
    assert_eq!(agent.peer(t), Peer::Closed);
    assert_eq!(
        agent.send_blocking(b"x".to_vec(), Duration::from_secs(5)),
        Err(SendError::PeerClosed)
    );
    agent.discard_backlog();
    drop(shard);
    let shard = ring.attach(Side::Shard);
    assert_eq!(agent.peer_epoch(), epoch + 1);
    assert_eq!(agent.peer_pid(), u64::from(std::process::id()));
    assert_eq!(agent.peer(t), Peer::Alive);
    drop(shard);
    assert_eq!(agent.peer(t), Peer::Closed, "dropping an end closes it");
}

#[test]
fn send_blocking_reports_a_silent_peer_and_too_large() {
    let ring = SharedRing::create("t", SMALL).unwrap();
    let cfg = EndConfig {
        peer_timeout: Duration::from_millis(20),
        backlog_bytes: 8 * SMALL,
        ..EndConfig::default()
    };
    let agent = ring.attach_with(Side::Agent, cfg);
    let _shard = ring.attach(Side::Shard);
    assert_eq!(
        agent.send_blocking(message(0, 4 * SMALL), Duration::from_secs(30)),
        Err(SendError::PeerSilent)
    );
    assert_eq!(
        agent.send_blocking(message(0, 9 * SMALL), Duration::from_secs(30)),
        Err(SendError::TooLarge {
            message_bytes: 9 * SMALL,
            bound_bytes: 8 * SMALL
        })
    );
}

#[test]
fn threads_over_two_mappings_exchange_everything() {
    let ring = SharedRing::create("t", SMALL).unwrap();
    let other = second_mapping(&ring);
    let agent = Arc::new(ring.attach(Side::Agent));
    let shard = Arc::new(other.attach(Side::Shard));
    let _hb = Heartbeat::spawn(vec![agent.clone(), shard.clone()], Duration::from_millis(5));
    let sizes: Vec<usize> = (0..300).map(|i| (i * 977) % (3 * SMALL)).collect();
    let echo = {
        let shard = shard.clone();
        let sizes = sizes.clone();
        std::thread::spawn(move || {
            for (n, &len) in sizes.iter().enumerate() {
                let m = loop {
                    if let Some(m) = shard.try_recv() {
                        break m;
                    }
                    shard.flush();
                    std::thread::yield_now();
                };
                assert_eq!(m, message(n, len), "message {n}");
                while shard.push(m.clone()).is_err() {
                    shard.flush();
                    std::thread::yield_now();
                }
                shard.flush();
            }
            while shard.flush() > 0 {
                std::thread::yield_now();
            }
        })
    };
    let mut back = 0;
    for (n, &len) in sizes.iter().enumerate() {
        agent
            .send_blocking(message(n, len), Duration::from_secs(60))
            .unwrap();
        while let Some(m) = agent.try_recv() {
            assert_eq!(m, message(back, sizes[back]));
            back += 1;
        }
    }
    while back < sizes.len() {
        if let Some(m) = agent.try_recv() {
            assert_eq!(m, message(back, sizes[back]));
            back += 1;
        } else {
            std::thread::yield_now();
        }
    }
    echo.join().unwrap();
}

#[test]
fn bad_capacities_are_refused_with_clear_errors() {
    for cap in [0, 100, 5000, 2 << 30] {
        let e = SharedRing::create("t", cap).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{cap}: {e}");
    }
    let e = SharedRing::create("t", 5000).unwrap_err();
    assert!(e.to_string().contains("power of two"), "{e}");
    assert!(SharedRing::create("t", crate::DEFAULT_CAPACITY_BYTES).is_ok());
}

fn pwrite_u64(fd: &OwnedFd, off: usize, v: u64) {
    let b = v.to_le_bytes();
    // SAFETY: `b` is valid for 8 bytes; the fd is open.
    let n = unsafe { libc::pwrite(fd.as_raw_fd(), b.as_ptr().cast(), 8, off as libc::off_t) };
    assert_eq!(n, 8);
}

fn plain_memfd(len: usize, seal: bool) -> OwnedFd {
    let fd = crate::map::memfd_create("plain").unwrap();
    crate::map::ftruncate(fd.as_fd(), len).unwrap();
    if seal {
        crate::map::seal_size(fd.as_fd()).unwrap();
    }
    fd
}

#[test]
fn bad_files_are_errors() {
    let ring = SharedRing::create("t", SMALL).unwrap();
    let fd = ring.fd().try_clone_to_owned().unwrap();
    pwrite_u64(&fd, OFF_MAGIC, 0x1234);
    assert!(matches!(
        SharedRing::open(fd),
        Err(RingError::BadMagic { found: 0x1234 })
    ));

    let ring = SharedRing::create("t", SMALL).unwrap();
    let fd = ring.fd().try_clone_to_owned().unwrap();
    pwrite_u64(&fd, OFF_VERSION, 99);
    assert!(matches!(
        SharedRing::open(fd),
        Err(RingError::VersionMismatch { theirs: 99, .. })
    ));

    // A valid header of a bigger ring in a file of the wrong size.
    let fd = plain_memfd(crate::layout::file_bytes(SMALL) + 4096, true);
    pwrite_u64(&fd, OFF_MAGIC, crate::layout::MAGIC);
    pwrite_u64(&fd, OFF_VERSION, crate::layout::VERSION);
    pwrite_u64(&fd, crate::layout::OFF_CAPACITY, SMALL as u64);
    assert!(matches!(
        SharedRing::open(fd),
        Err(RingError::SizeMismatch { .. })
    ));
    let fd = plain_memfd(100, true);
    assert!(matches!(
        SharedRing::open(fd),
        Err(RingError::SizeMismatch { actual: 100, .. })
    ));
    let fd = plain_memfd(crate::layout::file_bytes(SMALL), true);
    assert!(matches!(
        SharedRing::open(fd),
        Err(RingError::BadMagic { found: 0 })
    ));
    // Unsealed memfds, pipes and regular files could shrink under the mapping: refused.
    let fd = plain_memfd(crate::layout::file_bytes(SMALL), false);
    assert!(matches!(SharedRing::open(fd), Err(RingError::NotSealed)));
    let mut p = [0; 2];
    // SAFETY: `p` has room for two fds.
    assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
    // SAFETY: both fds were just made by pipe() and are owned by nothing else.
    let (r, _w) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
    assert!(matches!(SharedRing::open(r), Err(RingError::NotSealed)));
    let f = std::fs::File::open("/proc/self/exe").unwrap();
    assert!(matches!(
        SharedRing::open(f.into()),
        Err(RingError::NotSealed)
    ));
}

#[test]
fn reset_zeroes_indices_and_sides() {
    let ring = SharedRing::create("t", SMALL).unwrap();
    {
        let agent = ring.attach(Side::Agent);
        agent.push(message(0, 3 * SMALL)).unwrap();
        agent.flush();
    }
    ring.reset();
    let agent = ring.attach(Side::Agent);
    let shard = ring.attach(Side::Shard);
    assert_eq!(agent.peer_epoch(), 1);
    assert_eq!(shard.peer_epoch(), 1);
    assert_eq!(ring.full_events(), 0);
    assert_eq!(shard.try_recv(), None);
    agent.push(b"fresh".to_vec()).unwrap();
    agent.flush();
    assert_eq!(shard.try_recv(), Some(b"fresh".to_vec()));
}

/// The env var naming the ring fd in the child of `a_child_process_maps_the_same_fd`.
const CHILD_FD_ENV: &str = "MC_RING_TEST_CHILD_FD";

/// Runs only as the child of `a_child_process_maps_the_same_fd` (re-executed test binary):
/// echoes three messages back as a shard would, then closes.
#[test]
fn child_echo() {
    let Ok(fd) = std::env::var(CHILD_FD_ENV) else {
        return;
    };
    // SAFETY: the parent handed us this fd number, open and not close-on-exec, for us alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd.parse().unwrap()) };
    let ring = SharedRing::open(fd).unwrap();
    let shard = Arc::new(ring.attach(Side::Shard));
    let _hb = Heartbeat::spawn(vec![shard.clone()], Duration::from_millis(5)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut echoed = 0;
    while echoed < 3 && Instant::now() < deadline {
        if let Some(mut m) = shard.try_recv() {
            m.reverse();
            shard.send_blocking(m, Duration::from_secs(30)).unwrap();
            echoed += 1;
        } else {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    assert_eq!(echoed, 3);
    shard.close();
}

#[test]
fn a_child_process_maps_the_same_fd() {
    let ring = SharedRing::create("t", SMALL).unwrap();
    let agent = Arc::new(ring.attach(Side::Agent));
    let _hb = Heartbeat::spawn(vec![agent.clone()], Duration::from_millis(5)).unwrap();
    // SAFETY: dup() of an open fd; the copy has no close-on-exec flag, so the child gets it.
    let raw = unsafe { libc::dup(ring.fd().as_raw_fd()) };
    assert!(raw >= 0);
    // SAFETY: `raw` was just made by dup() and is owned by nothing else.
    let inherited = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "tests::child_echo", "--test-threads=1"])
        .env(CHILD_FD_ENV, raw.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    drop(inherited);
    let msgs = [message(0, 10), message(1, 5 * SMALL), message(2, 0)];
    for m in &msgs {
        agent
            .send_blocking(m.clone(), Duration::from_secs(60))
            .unwrap();
    }
    let mut got = VecDeque::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < 3 && Instant::now() < deadline {
        match agent.try_recv() {
            Some(m) => got.push_back(m),
            None => std::thread::sleep(Duration::from_micros(200)),
        }
    }
    assert!(child.wait().unwrap().success());
    for m in &msgs {
        let mut r = m.clone();
        r.reverse();
        assert_eq!(got.pop_front(), Some(r));
    }
    assert_ne!(agent.peer_pid(), u64::from(std::process::id()));
    assert_eq!(agent.peer(Duration::from_secs(60)), Peer::Closed);
}

/// One step of the single-threaded model test.
#[derive(Debug, Clone)]
enum Op {
    Push(usize),
    Flush,
    Recv,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop_oneof![0usize..64, 0usize..2000, 0usize..20_000].prop_map(Op::Push),
        2 => Just(Op::Flush),
        3 => Just(Op::Recv),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_interleaving_delivers_everything_in_order(ops in proptest::collection::vec(op(), 1..80)) {
        let ring = SharedRing::create("p", SMALL).unwrap();
        let other = second_mapping(&ring);
        let agent = ring.attach(Side::Agent);
        let shard = other.attach(Side::Shard);
        let mut sent = VecDeque::new();
        let mut n = 0;
        for op in ops {
            match op {
                Op::Push(len) => {
                    agent.push(message(n, len)).unwrap();
                    sent.push_back(message(n, len));
                    n += 1;
                }
                Op::Flush => {
                    agent.flush();
                }
                Op::Recv => {
                    if let Some(m) = shard.try_recv() {
                        prop_assert_eq!(Some(m), sent.pop_front());
                    }
                }
            }
        }
        while let Some(want) = sent.pop_front() {
            prop_assert_eq!(pump(&agent, &shard), want);
        }
        prop_assert_eq!(shard.try_recv(), None);
        prop_assert_eq!(shard.discarded_messages() + shard.orphan_fragments() + shard.corrupt_frames(), 0);
    }

    #[test]
    fn garbage_in_the_ring_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..SMALL), w in 0u64..(2 * SMALL as u64)) {
        let ring = SharedRing::create("p", SMALL).unwrap();
        let shard = ring.attach(Side::Shard);
        let dir = Dir::new(0, SMALL);
        ring.map.write(dir.at(0), &bytes);
        dir.publish(&ring.map, w);
        for _ in 0..4 {
            let _ = shard.try_recv();
        }
    }
}

/// The env var naming the ring fd in the child of
/// `a_process_dying_mid_publication_exposes_nothing`.
#[cfg(feature = "failpoints")]
const PANIC_FD_ENV: &str = "MC_RING_TEST_PANIC_FD";

/// Runs only as that test's child: writes a frame and dies before publishing it.
#[cfg(feature = "failpoints")]
#[test]
fn child_dies_mid_publication() {
    let Ok(fd) = std::env::var(PANIC_FD_ENV) else {
        return;
    };
    // SAFETY: the parent handed us this fd number, open and not close-on-exec, for us alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd.parse().unwrap()) };
    let ring = SharedRing::open(fd).unwrap();
    let shard = ring.attach(Side::Shard);
    fail::cfg("ring::publish", "panic").unwrap();
    shard.push(b"never published".to_vec()).unwrap();
    shard.flush();
    unreachable!("the failpoint panics before the frame is published");
}

#[cfg(feature = "failpoints")]
#[test]
fn a_process_dying_mid_publication_exposes_nothing() {
    let ring = SharedRing::create("t", SMALL).unwrap();
    let agent = ring.attach(Side::Agent);
    // SAFETY: dup() of an open fd; the copy has no close-on-exec flag, so the child gets it.
    let raw = unsafe { libc::dup(ring.fd().as_raw_fd()) };
    assert!(raw >= 0);
    // SAFETY: `raw` was just made by dup() and is owned by nothing else.
    let inherited = unsafe { OwnedFd::from_raw_fd(raw) };
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "tests::child_dies_mid_publication",
            "--test-threads=1",
        ])
        .env(PANIC_FD_ENV, raw.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    drop(inherited);
    assert!(
        !status.success(),
        "the child must have died at the failpoint"
    );
    assert_eq!(
        agent.try_recv(),
        None,
        "a frame written but not published is invisible"
    );
    // A shard started after it publishes from where the dead one had published.
    let shard = ring.attach(Side::Shard);
    shard.push(b"fresh".to_vec()).unwrap();
    shard.flush();
    assert_eq!(agent.try_recv(), Some(b"fresh".to_vec()));
    assert_eq!(agent.try_recv(), None);
}
