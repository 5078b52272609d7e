//! A shard keeps serving and answering its control link after far more control polls than
//! a short test would see: glommio counts waker references in an i16, and a shard that
//! leaked one per poll died after 32767 polls (about 11 minutes in production).

use std::time::{Duration, Instant};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mc_dataplane::control::{AgentLink, ChannelShardLink, LinkClosed, ShardLink, channel_pair};
use mc_dataplane::{ShardConfig, start_shard};
use mc_hugepages::RegionOptions;
use mc_schema::agent::{FromShard, ToShard};
use mc_transfer::DataConn;

/// Polls that must pass before the shard is checked; beyond the i16 limit.
const POLLS: u32 = 40_000;

/// The shard's end of the link, counting the shard's polls.
struct Counting {
    inner: ChannelShardLink,
    polls: Arc<AtomicU64>,
}

impl ShardLink for Counting {
    fn try_recv(&self) -> Result<Option<ToShard>, LinkClosed> {
        self.polls.fetch_add(1, Ordering::Relaxed);
        self.inner.try_recv()
    }

    fn send(&self, msg: FromShard) -> Result<(), LinkClosed> {
        self.inner.send(msg)
    }
}

#[test]
fn a_shard_survives_tens_of_thousands_of_control_polls() {
    let (agent, inner) = channel_pair();
    let polls = Arc::new(AtomicU64::new(0));
    let shard = Counting {
        inner,
        polls: polls.clone(),
    };
    let interval = Duration::from_micros(1);
    let cfg = ShardConfig {
        index: 0,
        core: None,
        host: "127.0.0.1".into(),
        data_port: 0,
        segment_bytes: 16 << 20,
        region: RegionOptions::default(),
        arena: None,
        cluster_id: "mooncake_cluster".into(),
        io_memory_bytes: 512 << 10,
        control_poll_interval: interval,
        ssd: None,
        keeper: None,
        metrics: None,
    };
    let handle = start_shard(cfg, shard).expect("shard starts");
    let seg = handle.segment.clone();
    let start = Instant::now();
    while polls.load(Ordering::Relaxed) < u64::from(POLLS) {
        assert!(
            !handle.is_finished(),
            "shard thread ended after {} polls",
            polls.load(Ordering::Relaxed)
        );
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "only {} polls in 300 s",
            polls.load(Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!handle.is_finished(), "shard thread ended while polling");
    // The data port still answers...
    let mut c = DataConn::connect(&seg.endpoint, "mooncake_cluster", Duration::from_secs(5))
        .expect("data port answers");
    let deadline = Instant::now() + Duration::from_secs(10);
    let v = b"still serving";
    c.write(
        seg.segment_id,
        0,
        0,
        v,
        mc_schema::checksum::crc32c(v),
        deadline,
    )
    .expect("write");
    let mut back = [0u8; 13];
    let crc = c
        .read_into(seg.segment_id, 0, 0, &mut back, deadline)
        .expect("read");
    assert_eq!(&back, v);
    assert_eq!(crc, mc_schema::checksum::crc32c(v));
    // ...and so does the control link: Stop is acknowledged.
    agent.send(ToShard::Stop).expect("link open");
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        match agent.recv_timeout(Duration::from_millis(100)) {
            Ok(Some(FromShard::Stopped { .. })) => break,
            Ok(_) => assert!(Instant::now() < until, "shard never answered Stop"),
            Err(_) => panic!("the shard's link closed without Stopped: the shard died"),
        }
    }
    handle.join();
}
