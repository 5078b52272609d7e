//! Links between the agent and a shard, behind two small traits.
//!
//! Two implementations carry the same `mc_schema::agent` messages: in-process channels
//! (here; the embedded node) and shared-memory rings between the agent and data-plane
//! processes ([`ring`], `docs/rings.md`). Neither changes shard or agent logic.

pub mod ring;

pub use ring::{RingAgentLink, RingLinkConfig, RingShardLink, ring_pair_for_test};

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::Duration;

use mc_schema::agent::{FromShard, ToShard};

/// The peer went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("control link closed: the peer stopped")]
pub struct LinkClosed;

/// Agent side of the link to one shard.
pub trait AgentLink: Send {
    /// Sends a message to the shard.
    fn send(&self, msg: ToShard) -> Result<(), LinkClosed>;
    /// Waits up to `timeout` for a message; `Ok(None)` on timeout.
    fn recv_timeout(&self, timeout: Duration) -> Result<Option<FromShard>, LinkClosed>;
}

/// Shard side of the link to the agent. Polled from a low-priority task: control traffic
/// is not latency-critical.
pub trait ShardLink {
    /// Next message, if any.
    fn try_recv(&self) -> Result<Option<ToShard>, LinkClosed>;
    /// Sends a message to the agent.
    fn send(&self, msg: FromShard) -> Result<(), LinkClosed>;
    /// Bytes sent and not yet taken by the agent's side of the link (0 for links without a
    /// bound): a sender of much data waits while this is high instead of overrunning it.
    fn queued_bytes(&self) -> usize {
        0
    }
}

/// Agent end of an in-process link.
pub struct ChannelAgentLink {
    tx: Sender<ToShard>,
    rx: Receiver<FromShard>,
}

/// Shard end of an in-process link.
pub struct ChannelShardLink {
    tx: Sender<FromShard>,
    rx: Receiver<ToShard>,
}

/// A connected pair of in-process links.
pub fn channel_pair() -> (ChannelAgentLink, ChannelShardLink) {
    let (to_shard, shard_rx) = mpsc::channel();
    let (to_agent, agent_rx) = mpsc::channel();
    (
        ChannelAgentLink {
            tx: to_shard,
            rx: agent_rx,
        },
        ChannelShardLink {
            tx: to_agent,
            rx: shard_rx,
        },
    )
}

impl AgentLink for ChannelAgentLink {
    fn send(&self, msg: ToShard) -> Result<(), LinkClosed> {
        self.tx.send(msg).map_err(|_| LinkClosed)
    }

    fn recv_timeout(&self, timeout: Duration) -> Result<Option<FromShard>, LinkClosed> {
        match self.rx.recv_timeout(timeout) {
            Ok(m) => Ok(Some(m)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(LinkClosed),
        }
    }
}

impl ShardLink for ChannelShardLink {
    fn try_recv(&self) -> Result<Option<ToShard>, LinkClosed> {
        match self.rx.try_recv() {
            Ok(m) => Ok(Some(m)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(LinkClosed),
        }
    }

    fn send(&self, msg: FromShard) -> Result<(), LinkClosed> {
        self.tx.send(msg).map_err(|_| LinkClosed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cross_and_closure_is_seen() {
        let (a, s) = channel_pair();
        a.send(ToShard::Describe).unwrap();
        assert_eq!(s.try_recv().unwrap(), Some(ToShard::Describe));
        assert_eq!(s.try_recv().unwrap(), None);
        s.send(FromShard::Stopped { shard: 0 }).unwrap();
        assert_eq!(
            a.recv_timeout(Duration::from_millis(10)).unwrap(),
            Some(FromShard::Stopped { shard: 0 })
        );
        drop(s);
        assert_eq!(a.recv_timeout(Duration::from_millis(10)), Err(LinkClosed));
    }
}
