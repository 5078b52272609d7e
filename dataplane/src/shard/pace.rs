//! Pacing large answers to the agent. A shard's link drops what passes its backlog bound
//! (an agent that died must not make the shard hoard messages), but an inventory of a
//! million entries is ~100 MB of messages, more than that bound, while the agent forwards
//! each part to the master before it reads the next. The parts of such an answer are sent
//! only while the backlog is low, so none is dropped: a dropped part is objects the master
//! never hears of.

use std::time::{Duration, Instant};

use mc_schema::agent::FromShard;

use crate::control::ShardLink;

/// Backlog above which the next part of a large answer waits for the agent.
pub(super) const PACE_BYTES: usize = 16 << 20;

/// Longest wait for the agent to take earlier parts: an agent that stopped reading (it
/// died; its successor asks again) gets the rest dropped as before.
const PACE_TIMEOUT: Duration = Duration::from_secs(60);

/// Sends `msg` once `link`'s backlog is at most `bound` bytes (or [`PACE_TIMEOUT`] passed).
pub(super) async fn send_paced<L: ShardLink>(link: &L, msg: FromShard, bound: usize) {
    let until = Instant::now() + PACE_TIMEOUT;
    while link.queued_bytes() > bound && Instant::now() < until {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    let _ = link.send(msg);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{AgentLink, RingAgentLink, RingLinkConfig, RingShardLink};
    use mc_schema::msg::InventoryEntry;

    fn part(i: usize, last: bool) -> FromShard {
        FromShard::Inventory {
            request: 1,
            entries: (0..64)
                .map(|j| InventoryEntry {
                    key: format!("k/{i}/{j}/{}", "x".repeat(100)),
                    ..InventoryEntry::default()
                })
                .collect(),
            last,
        }
    }

    #[test]
    fn a_paced_answer_larger_than_the_backlog_arrives_whole() {
        const PARTS: usize = 200;
        let ring = mc_ring::SharedRing::create("mc-test-pace", 16 << 10).unwrap();
        let other = mc_ring::SharedRing::open(ring.fd().try_clone_to_owned().unwrap()).unwrap();
        let config = RingLinkConfig {
            backlog_bytes: 64 << 10,
            ..RingLinkConfig::default()
        };
        let mut agent = RingAgentLink::with_config(&ring, config);
        let mut shard = RingShardLink::with_config(&other, config);
        agent.spawn_heartbeat(Duration::from_millis(10)).unwrap();
        shard.spawn_heartbeat(Duration::from_millis(10)).unwrap();
        // A slow agent: it takes a part, then pauses, as a master round trip would.
        let reader = std::thread::spawn(move || {
            let mut got = 0;
            while let Ok(Some(m)) = agent.recv_timeout(Duration::from_secs(10)) {
                assert_eq!(m, part(got, got + 1 == PARTS));
                got += 1;
                if got == PARTS {
                    break;
                }
                std::thread::sleep(Duration::from_micros(300));
            }
            got
        });
        let shard = glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                for i in 0..PARTS {
                    send_paced(&shard, part(i, i + 1 == PARTS), 16 << 10).await;
                }
                // Flush what is left while the reader takes it.
                while shard.queued_bytes() > 0 {
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
                shard
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(reader.join().unwrap(), PARTS);
        assert_eq!(shard.dropped(), 0);
    }
}
