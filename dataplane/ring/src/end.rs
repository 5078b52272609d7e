//! One side's end of the pair: producer of one ring, consumer of the other, and the
//! liveness words of both sides.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::consumer::Consumer;
use crate::dir::Dir;
use crate::error::{Backpressure, SendError};
use crate::layout::{
    DEFAULT_BACKLOG_BYTES, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_PEER_TIMEOUT, OFF_SIDE, SIDE_BEAT,
    SIDE_EPOCH, SIDE_PID, SIDE_STATE, STATE_ATTACHED, STATE_CLOSED,
};
use crate::map::{self, Mapping};
use crate::shared::Side;

/// Settings of one end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndConfig {
    /// Bound of the local backlog of messages waiting for room in the ring.
    pub backlog_bytes: usize,
    /// Largest message the consumer reassembles; larger ones are discarded and counted.
    pub max_message_bytes: usize,
    /// How long the peer's heartbeat may stand still before `send_blocking` gives up.
    pub peer_timeout: Duration,
}

impl Default for EndConfig {
    fn default() -> Self {
        EndConfig {
            backlog_bytes: DEFAULT_BACKLOG_BYTES,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            peer_timeout: DEFAULT_PEER_TIMEOUT,
        }
    }
}

/// What an end knows of its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// Its heartbeat moved within the timeout.
    Alive,
    /// It closed its end (orderly exit) and has not attached again.
    Closed,
    /// Its heartbeat has not moved for the timeout (dead, hung, or never attached).
    Silent,
}

/// The last peer heartbeat seen, and when (local monotonic time).
struct PeerWatch {
    seen: Option<(u64, u64)>,
    at: Instant,
}

/// One side's end: send with [`push`](Self::push)/[`flush`](Self::flush) or
/// [`send_blocking`](Self::send_blocking), receive with [`try_recv`](Self::try_recv).
/// `Send + Sync`; dropping it closes the end.
pub struct RingEnd {
    map: Arc<Mapping>,
    side: Side,
    tx: Dir,
    rx: Dir,
    config: EndConfig,
    producer: Mutex<crate::producer::Producer>,
    consumer: Mutex<Consumer>,
    watch: Mutex<PeerWatch>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one leaves consistent state (counters, queues): keep going.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RingEnd {
    pub(crate) fn new(map: Arc<Mapping>, capacity: usize, side: Side, config: EndConfig) -> Self {
        let end = RingEnd {
            tx: Dir::new(side.index(), capacity),
            rx: Dir::new(side.peer().index(), capacity),
            map,
            side,
            config,
            producer: Mutex::new(crate::producer::Producer::new(config.backlog_bytes)),
            consumer: Mutex::new(Consumer::new(config.max_message_bytes)),
            watch: Mutex::new(PeerWatch {
                seen: None,
                at: Instant::now(),
            }),
        };
        end.own(SIDE_PID).store(map::pid(), Ordering::Relaxed);
        end.own(SIDE_EPOCH).fetch_add(1, Ordering::Relaxed);
        end.own(SIDE_BEAT).fetch_add(1, Ordering::Relaxed);
        end.own(SIDE_STATE).store(STATE_ATTACHED, Ordering::Release);
        end
    }

    fn own(&self, word: usize) -> &AtomicU64 {
        self.map.word(OFF_SIDE[self.side.index()] + word)
    }

    fn peer_word(&self, word: usize) -> &AtomicU64 {
        self.map.word(OFF_SIDE[self.side.peer().index()] + word)
    }

    /// This end's side.
    pub fn side(&self) -> Side {
        self.side
    }

    /// This end's settings.
    pub fn config(&self) -> EndConfig {
        self.config
    }

    /// Queues a message in the local backlog (nothing is written to the ring until a flush).
    pub fn push(&self, msg: Vec<u8>) -> Result<(), Backpressure> {
        lock(&self.producer).push(msg)
    }

    /// Writes as many queued fragments as fit; returns the bytes still pending. Each flush
    /// that stops on a full ring counts one full event.
    pub fn flush(&self) -> usize {
        lock(&self.producer).flush(&self.map, &self.tx)
    }

    /// Bytes queued and not yet written to the ring.
    pub fn pending_bytes(&self) -> usize {
        lock(&self.producer).pending_bytes()
    }

    /// Drops every queued message (for example after a failed `send_blocking`); returns the
    /// bytes dropped.
    pub fn discard_backlog(&self) -> usize {
        lock(&self.producer).discard()
    }

    /// Queues `msg` and flushes until the backlog is empty, sleeping briefly while the ring
    /// is full. Fails at once when the peer is closed, after `timeout`, or as soon as the
    /// peer is closed or silent for the configured peer timeout while the ring is full.
    pub fn send_blocking(&self, msg: Vec<u8>, timeout: Duration) -> Result<(), SendError> {
        if self.peer_closed() {
            return Err(SendError::PeerClosed);
        }
        let deadline = Instant::now() + timeout;
        let mut nap = Duration::from_micros(20);
        let bound_bytes = lock(&self.producer).bound_bytes();
        if msg.len() > bound_bytes {
            return Err(SendError::TooLarge {
                message_bytes: msg.len(),
                bound_bytes,
            });
        }
        let mut msg = Some(msg);
        loop {
            let pending = {
                let mut p = lock(&self.producer);
                if let Some(m) = msg.take_if(|m| p.has_room(m.len())) {
                    p.push(m).expect("room was checked under the same lock");
                }
                p.flush(&self.map, &self.tx)
            };
            if pending == 0 && msg.is_none() {
                return Ok(());
            }
            match self.peer(self.config.peer_timeout) {
                Peer::Alive => {}
                Peer::Closed => return Err(SendError::PeerClosed),
                Peer::Silent => return Err(SendError::PeerSilent),
            }
            if Instant::now() >= deadline {
                return Err(SendError::Timeout);
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(1));
        }
    }

    /// The next complete message from the peer, if one has fully arrived.
    pub fn try_recv(&self) -> Option<Vec<u8>> {
        lock(&self.consumer).try_recv(&self.map, &self.rx)
    }

    /// Partial messages the consumer dropped: the peer restarted mid-message, or a message
    /// passed `max_message_bytes`.
    pub fn discarded_messages(&self) -> u64 {
        lock(&self.consumer).discarded_messages
    }

    /// Fragments skipped because their message started before this end attached.
    pub fn orphan_fragments(&self) -> u64 {
        lock(&self.consumer).orphan_fragments
    }

    /// Corrupt frame headers seen (each skipped everything published at the time).
    pub fn corrupt_frames(&self) -> u64 {
        lock(&self.consumer).corrupt_frames
    }

    /// Times this end's producer stopped on a full ring.
    pub fn full_events(&self) -> u64 {
        self.tx.full_events(&self.map).load(Ordering::Relaxed)
    }

    /// Times the peer's producer stopped on a full ring.
    pub fn peer_full_events(&self) -> u64 {
        self.rx.full_events(&self.map).load(Ordering::Relaxed)
    }

    /// Bumps this side's heartbeat.
    pub fn beat(&self) {
        self.own(SIDE_BEAT).fetch_add(1, Ordering::Release);
    }

    /// Marks this side closed (orderly exit), after one last flush.
    pub fn close(&self) {
        self.flush();
        self.own(SIDE_STATE).store(STATE_CLOSED, Ordering::Release);
    }

    /// The peer's epoch: it grows each time the peer attaches (0 = never attached).
    pub fn peer_epoch(&self) -> u64 {
        self.peer_word(SIDE_EPOCH).load(Ordering::Acquire)
    }

    /// The pid the peer recorded when it attached (0 = never attached).
    pub fn peer_pid(&self) -> u64 {
        self.peer_word(SIDE_PID).load(Ordering::Relaxed)
    }

    fn peer_closed(&self) -> bool {
        self.peer_word(SIDE_STATE).load(Ordering::Acquire) == STATE_CLOSED
    }

    /// Whether the peer is alive, closed, or silent: its heartbeat (or epoch) has not moved
    /// for `timeout` of this process's monotonic time.
    pub fn peer(&self, timeout: Duration) -> Peer {
        if self.peer_closed() {
            return Peer::Closed;
        }
        let now = (
            self.peer_epoch(),
            self.peer_word(SIDE_BEAT).load(Ordering::Acquire),
        );
        let mut watch = lock(&self.watch);
        if watch.seen != Some(now) {
            watch.seen = Some(now);
            watch.at = Instant::now();
            return Peer::Alive;
        }
        if watch.at.elapsed() >= timeout {
            Peer::Silent
        } else {
            Peer::Alive
        }
    }
}

impl Drop for RingEnd {
    fn drop(&mut self) {
        self.close();
    }
}
