//! A shard started from what an earlier shard kept (`mc_dataplane::keep`) serves the same
//! segments, bytes, index and port.

use std::sync::Mutex;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use mc_dataplane::control::{AgentLink, ChannelAgentLink, channel_pair};
use mc_dataplane::keep::{Keeper, KeeperHandle, Kept, KeptIndex, KeptSegment, ShardMemory};
use mc_dataplane::{ShardConfig, start_shard_from};
use mc_hugepages::RegionOptions;
use mc_schema::agent::{FromShard, SegmentInfo, SegmentKind, ToShard};
use mc_transfer::DataConn;
use mc_transfer::header::ObjectInfo;

/// Hands every kept item to the test.
struct ToTest(Mutex<mpsc::Sender<Kept>>);

impl Keeper for ToTest {
    fn keep(&self, what: Kept) {
        let _ = self.0.lock().unwrap().send(what);
    }
}

fn cfg(keeper: KeeperHandle) -> ShardConfig {
    ShardConfig {
        index: 0,
        core: None,
        host: "127.0.0.1".into(),
        data_port: 0,
        segment_bytes: 16 << 20,
        region: RegionOptions::default(),
        arena: None,
        cluster_id: "mooncake_cluster".into(),
        io_memory_bytes: 512 << 10,
        control_poll_interval: Duration::from_millis(1),
        ssd: None,
        keeper: Some(keeper),
        metrics: None,
    }
}

fn wait_for(link: &ChannelAgentLink, want: impl Fn(&FromShard) -> bool) -> FromShard {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(m) = link.recv_timeout(Duration::from_millis(50)).unwrap()
            && want(&m)
        {
            return m;
        }
        assert!(Instant::now() < until, "no answer from the shard");
    }
}

fn describe(link: &ChannelAgentLink) -> Vec<SegmentInfo> {
    link.send(ToShard::Describe).unwrap();
    let mut out = Vec::new();
    loop {
        match wait_for(link, |m| {
            matches!(m, FromShard::Segment(_) | FromShard::Described { .. })
        }) {
            FromShard::Segment(s) => out.push(s),
            _ => return out,
        }
    }
}

fn inventory_keys(link: &ChannelAgentLink) -> Vec<(String, u64, u64)> {
    link.send(ToShard::Inventory { request: 7 }).unwrap();
    let mut keys = Vec::new();
    loop {
        if let FromShard::Inventory { entries, last, .. } =
            wait_for(link, |m| matches!(m, FromShard::Inventory { .. }))
        {
            keys.extend(entries.into_iter().map(|e| (e.key, e.segment_id, e.offset)));
            if last {
                keys.sort();
                return keys;
            }
        }
    }
}

fn put(seg: &SegmentInfo, key: &str, offset: u64, value: &[u8]) {
    let mut c =
        DataConn::connect(&seg.endpoint, "mooncake_cluster", Duration::from_secs(5)).unwrap();
    let info = ObjectInfo {
        object_size: value.len() as u64,
        put_generation: 5,
        slice_index: 0,
        slice_count: 1,
        replica_index: 0,
        pins: 0,
    };
    let crc = mc_schema::checksum::crc32c(value);
    let id = c
        .send_object_write(
            (seg.segment_id, offset, 5),
            value,
            crc,
            None,
            Some((&info, key)),
        )
        .unwrap();
    c.recv_write_ack(id).unwrap();
}

fn get(seg: &SegmentInfo, offset: u64, len: usize) -> Vec<u8> {
    let mut c =
        DataConn::connect(&seg.endpoint, "mooncake_cluster", Duration::from_secs(5)).unwrap();
    let mut back = vec![0u8; len];
    c.read_into(
        seg.segment_id,
        offset,
        0,
        &mut back,
        Instant::now() + Duration::from_secs(10),
    )
    .unwrap();
    back
}

/// Groups what was kept into the memory a new shard takes over (as the supervisor does).
fn memory_of(kept: mpsc::Receiver<Kept>) -> ShardMemory {
    let mut index: Option<KeptIndex> = None;
    let mut segments: Vec<KeptSegment> = Vec::new();
    for k in kept.try_iter() {
        match k {
            Kept::Index { files, .. } => index = Some(files),
            Kept::Segment(s) => {
                segments.retain(|o| o.info.segment_id != s.info.segment_id);
                segments.push(s);
            }
            Kept::Gone { segment_id, .. } => segments.retain(|o| o.info.segment_id != segment_id),
        }
    }
    ShardMemory {
        index: index.expect("index kept"),
        segments,
    }
}

fn stop(link: &ChannelAgentLink, handle: mc_dataplane::ShardHandle) {
    link.send(ToShard::Stop).unwrap();
    wait_for(link, |m| matches!(m, FromShard::Stopped { .. }));
    handle.join();
}

#[test]
fn a_shard_started_from_kept_memory_serves_the_same_objects_on_the_same_port() {
    let (tx, rx) = mpsc::channel();
    let keeper = KeeperHandle(Arc::new(ToTest(Mutex::new(tx))));
    let (agent, shard) = channel_pair();
    let first = start_shard_from(cfg(keeper.clone()), shard, None).unwrap();
    let seg = first.segment.clone();
    // A runtime segment, then one more that is unmounted again (kept, then gone).
    agent
        .send(ToShard::Mount {
            request: 1,
            size_bytes: 4 << 20,
        })
        .unwrap();
    let FromShard::Mounted { segment: extra, .. } =
        wait_for(&agent, |m| matches!(m, FromShard::Mounted { .. }))
    else {
        unreachable!()
    };
    agent
        .send(ToShard::Mount {
            request: 2,
            size_bytes: 4 << 20,
        })
        .unwrap();
    let FromShard::Mounted { segment: gone, .. } =
        wait_for(&agent, |m| matches!(m, FromShard::Mounted { .. }))
    else {
        unreachable!()
    };
    agent
        .send(ToShard::Unmount {
            request: 3,
            segment_id: gone.segment_id,
        })
        .unwrap();
    wait_for(&agent, |m| matches!(m, FromShard::Unmounted { .. }));

    let a: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let b = b"in the runtime segment".to_vec();
    put(&seg, "key-a", 4096, &a);
    put(&extra, "key-b", 0, &b);
    let before_segments = describe(&agent);
    let before_keys = inventory_keys(&agent);
    assert_eq!(before_keys.len(), 2);
    stop(&agent, first);

    let (agent, shard) = channel_pair();
    let second = start_shard_from(cfg(keeper), shard, Some(memory_of(rx))).unwrap();
    assert_eq!(
        second.segment, seg,
        "same id, name, endpoint (port) and size"
    );
    let mut after_segments = describe(&agent);
    let mut before = before_segments.clone();
    after_segments.sort_by_key(|s| s.segment_id);
    before.sort_by_key(|s| s.segment_id);
    assert_eq!(after_segments, before);
    assert!(
        !after_segments
            .iter()
            .any(|s| s.segment_id == gone.segment_id)
    );
    assert!(
        after_segments
            .iter()
            .any(|s| s.kind == SegmentKind::Allocated)
    );
    assert_eq!(inventory_keys(&agent), before_keys, "the index came back");
    assert_eq!(get(&seg, 4096, a.len()), a);
    assert_eq!(get(&extra, 0, b.len()), b);
    stop(&agent, second);
}
