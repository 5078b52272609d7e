//! The links over a shared-memory ring pair (`mc-ring`): the agent and a shard in two
//! processes, each mapping the same memfd. Messages are the `mc_schema::agent::wire`
//! flatbuffers.
//!
//! The two ends fail differently on purpose. The agent's end reports [`LinkClosed`] when the
//! shard closed its end or its heartbeat stopped: the agent (or its supervisor) acts on a
//! dead data plane. The shard's end never does: when the agent dies, the supervisor starts
//! a new one that attaches to the same ring (a new epoch), and the shard keeps serving in
//! the meantime; what it sends while no agent reads waits in the ring and the backlog, and
//! beyond the backlog's bound is dropped and counted.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use mc_ring::{EndConfig, Heartbeat, Peer, RingEnd, SendError, SharedRing, Side};
use mc_schema::agent::wire;
use mc_schema::agent::{FromShard, ToShard};

use super::{AgentLink, LinkClosed, ShardLink};

/// Settings of a ring link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingLinkConfig {
    /// How long the agent's `send` waits for room in a full ring.
    pub send_timeout: Duration,
    /// How long the shard's heartbeat may stand still before the agent's end reports
    /// [`LinkClosed`].
    pub peer_timeout: Duration,
    /// Bound of each end's local backlog.
    pub backlog_bytes: usize,
    /// Largest message an end reassembles.
    pub max_message_bytes: usize,
}

impl Default for RingLinkConfig {
    fn default() -> Self {
        RingLinkConfig {
            send_timeout: Duration::from_secs(5),
            peer_timeout: mc_ring::DEFAULT_PEER_TIMEOUT,
            backlog_bytes: mc_ring::DEFAULT_BACKLOG_BYTES,
            max_message_bytes: mc_schema::limits::MAX_AGENT_MESSAGE_BYTES,
        }
    }
}

impl RingLinkConfig {
    fn end_config(&self) -> EndConfig {
        EndConfig {
            backlog_bytes: self.backlog_bytes,
            max_message_bytes: self.max_message_bytes,
            peer_timeout: self.peer_timeout,
        }
    }
}

/// A heartbeat thread for one end that stops beating once the end is gone.
fn heartbeat_for(end: &Arc<RingEnd>, interval: Duration) -> io::Result<Heartbeat> {
    let weak: Weak<RingEnd> = Arc::downgrade(end);
    Heartbeat::spawn_fn(
        move || {
            if let Some(e) = weak.upgrade() {
                e.beat();
            }
        },
        interval,
    )
}

/// Agent end of a ring link to one shard (`Send`).
pub struct RingAgentLink {
    end: Arc<RingEnd>,
    config: RingLinkConfig,
    heartbeat: Option<Heartbeat>,
}

impl RingAgentLink {
    /// Attaches to `ring` as the agent, with default settings.
    pub fn new(ring: &SharedRing) -> RingAgentLink {
        RingAgentLink::with_config(ring, RingLinkConfig::default())
    }

    /// Attaches to `ring` as the agent.
    pub fn with_config(ring: &SharedRing, config: RingLinkConfig) -> RingAgentLink {
        RingAgentLink {
            end: Arc::new(ring.attach_with(Side::Agent, config.end_config())),
            config,
            heartbeat: None,
        }
    }

    /// Starts a thread that beats this end every `interval` (or use one
    /// [`Heartbeat`] over [`end`](Self::end) of every link).
    pub fn spawn_heartbeat(&mut self, interval: Duration) -> io::Result<()> {
        self.heartbeat = Some(heartbeat_for(&self.end, interval)?);
        Ok(())
    }

    /// The ring end (for a shared [`Heartbeat`], counters, liveness).
    pub fn end(&self) -> &Arc<RingEnd> {
        &self.end
    }

    /// The shard side's epoch: it grows each time a shard attaches.
    pub fn peer_epoch(&self) -> u64 {
        self.end.peer_epoch()
    }

    fn shard_gone(&self) -> bool {
        self.end.peer(self.config.peer_timeout) != Peer::Alive
    }
}

impl AgentLink for RingAgentLink {
    fn send(&self, msg: ToShard) -> Result<(), LinkClosed> {
        let bytes = wire::encode_to_shard(&msg);
        match self.end.send_blocking(bytes, self.config.send_timeout) {
            Ok(()) => Ok(()),
            Err(e) => {
                // Nothing half-sent stays queued: the shard drops a partial message when
                // the next one starts.
                self.end.discard_backlog();
                if let SendError::Timeout | SendError::TooLarge { .. } = e {
                    tracing::warn!("agent to shard ring: {e}");
                }
                Err(LinkClosed)
            }
        }
    }

    fn recv_timeout(&self, timeout: Duration) -> Result<Option<FromShard>, LinkClosed> {
        let start = Instant::now();
        let mut nap = Duration::from_micros(50);
        loop {
            if let Some(m) = self.recv_decoded() {
                return Ok(Some(m));
            }
            if self.shard_gone() {
                // What the shard published before it closed is still delivered.
                return self.recv_decoded().map(Some).ok_or(LinkClosed);
            }
            if start.elapsed() >= timeout {
                return Ok(None);
            }
            std::thread::sleep(nap.min(timeout.saturating_sub(start.elapsed())));
            nap = (nap * 2).min(Duration::from_millis(2));
        }
    }
}

impl RingAgentLink {
    /// The next message that decodes; undecodable ones are logged and skipped.
    fn recv_decoded(&self) -> Option<FromShard> {
        while let Some(bytes) = self.end.try_recv() {
            match wire::decode_from_shard(&bytes) {
                Ok(m) => return Some(m),
                Err(e) => tracing::warn!(
                    "shard to agent ring: skipped an undecodable message of {} bytes: {e}",
                    bytes.len()
                ),
            }
        }
        None
    }
}

/// Shard end of a ring link (`Send + 'static`). Never reports [`LinkClosed`].
pub struct RingShardLink {
    end: Arc<RingEnd>,
    dropped: AtomicU64,
    /// When the last drop warning was logged, and the drop count then.
    last_warning: Mutex<Option<(Instant, u64)>>,
    heartbeat: Option<Heartbeat>,
}

/// At most one warning about dropped messages per this interval.
const DROP_WARNING_INTERVAL: Duration = Duration::from_secs(1);

impl RingShardLink {
    /// Attaches to `ring` as the shard, with default settings.
    pub fn new(ring: &SharedRing) -> RingShardLink {
        RingShardLink::with_config(ring, RingLinkConfig::default())
    }

    /// Attaches to `ring` as the shard.
    pub fn with_config(ring: &SharedRing, config: RingLinkConfig) -> RingShardLink {
        RingShardLink {
            end: Arc::new(ring.attach_with(Side::Shard, config.end_config())),
            dropped: AtomicU64::new(0),
            last_warning: Mutex::new(None),
            heartbeat: None,
        }
    }

    /// Starts a thread that beats this end every `interval`, so that a busy executor never
    /// looks dead (or use one [`Heartbeat`] over [`end`](Self::end) of every shard).
    pub fn spawn_heartbeat(&mut self, interval: Duration) -> io::Result<()> {
        self.heartbeat = Some(heartbeat_for(&self.end, interval)?);
        Ok(())
    }

    /// The ring end (for a shared [`Heartbeat`], counters, liveness).
    pub fn end(&self) -> &Arc<RingEnd> {
        &self.end
    }

    /// The agent side's epoch: it grows each time an agent attaches (a restarted agent
    /// resyncs; see `docs/rings.md`).
    pub fn peer_epoch(&self) -> u64 {
        self.end.peer_epoch()
    }

    /// Messages dropped because the backlog was at its bound (no agent reading).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn note_drop(&self, e: mc_ring::Backpressure) {
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self
            .last_warning
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_none_or(|(at, _)| at.elapsed() >= DROP_WARNING_INTERVAL) {
            let since = dropped - last.map_or(0, |(_, n)| n);
            tracing::warn!("shard to agent ring: dropped {since} messages ({dropped} in all): {e}");
            *last = Some((Instant::now(), dropped));
        }
    }
}

impl ShardLink for RingShardLink {
    fn try_recv(&self) -> Result<Option<ToShard>, LinkClosed> {
        self.end.flush();
        while let Some(bytes) = self.end.try_recv() {
            match wire::decode_to_shard(&bytes) {
                Ok(m) => return Ok(Some(m)),
                Err(e) => tracing::warn!(
                    "agent to shard ring: skipped an undecodable message of {} bytes: {e}",
                    bytes.len()
                ),
            }
        }
        Ok(None)
    }

    fn send(&self, msg: FromShard) -> Result<(), LinkClosed> {
        if let Err(e) = self.end.push(wire::encode_from_shard(&msg)) {
            self.note_drop(e);
        }
        self.end.flush();
        Ok(())
    }

    fn queued_bytes(&self) -> usize {
        self.end.flush()
    }
}

/// A connected pair over a new ring of `capacity_bytes` per direction, each end on its own
/// mapping of the memfd (as two processes would have), both beating every 10 ms. For tests.
pub fn ring_pair_for_test(capacity_bytes: usize) -> io::Result<(RingAgentLink, RingShardLink)> {
    let ring = SharedRing::create("mc-test-ring", capacity_bytes)?;
    let other = SharedRing::open(ring.fd().try_clone_to_owned()?)?;
    let mut agent = RingAgentLink::new(&ring);
    let mut shard = RingShardLink::new(&other);
    agent.spawn_heartbeat(Duration::from_millis(10))?;
    shard.spawn_heartbeat(Duration::from_millis(10))?;
    Ok((agent, shard))
}

#[cfg(test)]
mod tests;
