//! Ring links: every message kind crosses, a big inventory arrives whole, the agent sees a
//! dead shard, and a shard outlives its agent.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mc_ring::SharedRing;
use mc_schema::agent::{FromShard, SegmentInfo, SegmentKind, ToShard};
use mc_schema::msg::{DroppedSlice, InventoryEntry, Notice, OffloadedSlice, PromotedSlice};

use super::*;

const WAIT: Duration = Duration::from_secs(30);

fn second_mapping(ring: &SharedRing) -> SharedRing {
    SharedRing::open(ring.fd().try_clone_to_owned().unwrap()).unwrap()
}

/// Polls the shard end until a message arrives.
fn shard_recv(shard: &RingShardLink) -> ToShard {
    for _ in 0..3_000_000 {
        if let Some(m) = shard.try_recv().unwrap() {
            return m;
        }
        std::thread::yield_now();
    }
    panic!("the shard received nothing");
}

fn segment() -> SegmentInfo {
    SegmentInfo {
        shard: 1,
        segment_id: 99,
        name: "127.0.0.1:9000#1".into(),
        endpoint: "127.0.0.1:9000".into(),
        size_bytes: 1 << 30,
        kind: SegmentKind::Shm,
    }
}

fn to_shard_messages() -> Vec<ToShard> {
    vec![
        ToShard::Describe,
        ToShard::Drain,
        ToShard::Stop,
        ToShard::Mount {
            request: 1,
            size_bytes: 1 << 20,
        },
        ToShard::MountShm {
            request: 2,
            path: "/dev/shm/x".into(),
            offset_bytes: 4096,
            size_bytes: 8192,
        },
        ToShard::MountCxl {
            request: 3,
            path: "/dev/dax0.0".into(),
            size_bytes: 1 << 21,
        },
        ToShard::Unmount {
            request: 4,
            segment_id: 99,
        },
        ToShard::SetWriteSecret {
            secret: vec![7; 32],
        },
        ToShard::SetTerm { term: 5 },
        ToShard::Notices {
            seq: 10,
            term: 5,
            notices: vec![
                Notice::Commit {
                    segment_id: 1,
                    offset: 2,
                    generation: 3,
                },
                Notice::Promote {
                    segment_id: 1,
                    offset: 2,
                    generation: 3,
                    target_segment_id: 4,
                    target_offset: 5,
                    target_generation: 6,
                },
            ],
        },
        ToShard::Inventory { request: 6 },
    ]
}

fn from_shard_messages() -> Vec<FromShard> {
    vec![
        FromShard::Segment(segment()),
        FromShard::Mounted {
            request: 2,
            segment: segment(),
        },
        FromShard::MountFailed {
            request: 1,
            reason: "no memory".into(),
        },
        FromShard::Unmounted {
            request: 4,
            segment_id: 99,
            found: true,
        },
        FromShard::Drained { shard: 1 },
        FromShard::Stopped { shard: 1 },
        FromShard::Applied {
            shard: 1,
            term: 5,
            seq: 10,
        },
        FromShard::Hits {
            shard: 1,
            keys: vec!["a".into(), "b/c".into()],
        },
        FromShard::Offloaded {
            shard: 1,
            entries: vec![OffloadedSlice {
                key: "o".into(),
                length: 10,
                ..OffloadedSlice::default()
            }],
        },
        FromShard::Promoted {
            shard: 1,
            entries: vec![PromotedSlice {
                key: "p".into(),
                ..PromotedSlice::default()
            }],
        },
        FromShard::Dropped {
            shard: 1,
            entries: vec![DroppedSlice {
                key: "d".into(),
                ..DroppedSlice::default()
            }],
        },
        FromShard::Inventory {
            request: 6,
            entries: vec![InventoryEntry {
                key: "k".into(),
                committed: true,
                ..InventoryEntry::default()
            }],
            last: true,
        },
    ]
}

#[test]
fn every_message_kind_crosses_between_two_mappings() {
    let (agent, shard) = ring_pair_for_test(64 << 10).unwrap();
    for m in to_shard_messages() {
        agent.send(m.clone()).unwrap();
        assert_eq!(shard_recv(&shard), m);
    }
    for m in from_shard_messages() {
        shard.send(m.clone()).unwrap();
        assert_eq!(agent.recv_timeout(WAIT).unwrap(), Some(m));
    }
    assert_eq!(agent.recv_timeout(Duration::from_millis(1)).unwrap(), None);
    assert_eq!(shard.try_recv().unwrap(), None);
    assert_eq!(agent.peer_epoch(), 1);
    assert_eq!(shard.peer_epoch(), 1);
}

#[test]
fn a_big_inventory_arrives_whole() {
    let (agent, shard) = ring_pair_for_test(64 << 10).unwrap();
    let entries: Vec<InventoryEntry> = (0..mc_schema::agent::INVENTORY_CHUNK)
        .map(|i| InventoryEntry {
            key: format!("layer/{i}/{}", "x".repeat(1000)),
            segment_id: 7,
            offset: i as u64 * 4096,
            length: 4096,
            ..InventoryEntry::default()
        })
        .collect();
    let msg = FromShard::Inventory {
        request: 3,
        entries,
        last: true,
    };
    assert!(mc_schema::agent::wire::encode_from_shard(&msg).len() > 64 * (64 << 10));
    shard.send(msg.clone()).unwrap();
    assert!(
        shard.end().pending_bytes() > 0,
        "most of it waits in the backlog"
    );
    // The shard's control task keeps polling, which flushes the backlog.
    let done = Arc::new(AtomicBool::new(false));
    let poller = {
        let done = done.clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                assert_eq!(shard.try_recv().unwrap(), None);
                std::thread::yield_now();
            }
            shard
        })
    };
    assert_eq!(agent.recv_timeout(WAIT).unwrap(), Some(msg));
    done.store(true, Ordering::Relaxed);
    let shard = poller.join().unwrap();
    assert!(shard.end().full_events() > 0);
    assert_eq!(shard.dropped(), 0);
}

#[test]
fn the_agent_sees_a_closed_shard() {
    let (agent, shard) = ring_pair_for_test(64 << 10).unwrap();
    shard.send(FromShard::Stopped { shard: 0 }).unwrap();
    drop(shard);
    assert_eq!(
        agent.recv_timeout(WAIT).unwrap(),
        Some(FromShard::Stopped { shard: 0 }),
        "what the shard sent before closing still arrives"
    );
    assert_eq!(agent.recv_timeout(WAIT), Err(LinkClosed));
    assert_eq!(agent.send(ToShard::Describe), Err(LinkClosed));
}

#[test]
fn the_agent_sees_a_silent_shard() {
    let ring = SharedRing::create("t", 4096).unwrap();
    let config = RingLinkConfig {
        peer_timeout: Duration::from_millis(50),
        ..RingLinkConfig::default()
    };
    let agent = RingAgentLink::with_config(&ring, config);
    let _shard = RingShardLink::new(&second_mapping(&ring)); // attached, never beats
    assert_eq!(agent.recv_timeout(WAIT), Err(LinkClosed));
    // A full ring and a silent shard: send gives up too.
    let big = ToShard::SetWriteSecret {
        secret: vec![0; 64 << 10],
    };
    assert_eq!(agent.send(big), Err(LinkClosed));
}

#[test]
fn a_shard_outlives_its_agent_and_serves_the_next_one() {
    let ring = SharedRing::create("t", 4096).unwrap();
    let mut shard = RingShardLink::new(&ring);
    shard.spawn_heartbeat(Duration::from_millis(10)).unwrap();
    let first = RingAgentLink::new(&second_mapping(&ring));
    first.send(ToShard::Describe).unwrap();
    assert_eq!(shard_recv(&shard), ToShard::Describe);
    let epoch = shard.peer_epoch();
    std::mem::forget(first); // killed: no close, no more beats

    assert_eq!(shard.try_recv(), Ok(None));
    shard.send(FromShard::Drained { shard: 0 }).unwrap();
    assert_eq!(shard.try_recv(), Ok(None));

    let second = RingAgentLink::new(&second_mapping(&ring));
    assert_eq!(shard.peer_epoch(), epoch + 1);
    second.send(ToShard::Stop).unwrap();
    assert_eq!(shard_recv(&shard), ToShard::Stop);
    assert_eq!(
        second.recv_timeout(WAIT).unwrap(),
        Some(FromShard::Drained { shard: 0 }),
        "what the shard sent while no agent ran waits in the ring"
    );
    drop(second); // an orderly exit
    assert_eq!(shard.try_recv(), Ok(None));
    assert_eq!(shard.send(FromShard::Stopped { shard: 0 }), Ok(()));
}

#[test]
fn a_shard_without_an_agent_drops_beyond_its_backlog() {
    let ring = SharedRing::create("t", 4096).unwrap();
    let config = RingLinkConfig {
        backlog_bytes: 8192,
        ..RingLinkConfig::default()
    };
    let shard = RingShardLink::with_config(&ring, config);
    for _ in 0..100 {
        let keys = vec!["k".repeat(200); 4];
        assert_eq!(shard.send(FromShard::Hits { shard: 0, keys }), Ok(()));
    }
    assert!(shard.dropped() > 0);
    assert!(shard.end().full_events() > 0);
}

#[test]
fn undecodable_messages_are_skipped() {
    let (agent, shard) = ring_pair_for_test(4096).unwrap();
    shard.end().push(vec![0xFF; 40]).unwrap();
    shard.send(FromShard::Drained { shard: 2 }).unwrap();
    assert_eq!(
        agent.recv_timeout(WAIT).unwrap(),
        Some(FromShard::Drained { shard: 2 })
    );
    agent.end().push(b"garbage".to_vec()).unwrap();
    agent.send(ToShard::Drain).unwrap();
    assert_eq!(shard_recv(&shard), ToShard::Drain);
}

#[test]
fn links_are_send_and_static() {
    fn check<T: Send + 'static>() {}
    check::<RingAgentLink>();
    check::<RingShardLink>();
}
