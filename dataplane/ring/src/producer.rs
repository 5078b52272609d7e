//! The producing half of an end: a bounded local backlog, flushed into the ring as frames.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use crate::dir::Dir;
use crate::error::Backpressure;
use crate::layout::{FLAG_FIRST, FLAG_LAST, FLAG_WRAP, FRAME_HEADER_BYTES, align8};
use crate::map::Mapping;

/// Messages waiting for room in the ring.
pub(crate) struct Producer {
    backlog: VecDeque<Vec<u8>>,
    /// Bytes of the front message already written as fragments.
    sent: usize,
    /// Bytes queued and not yet written.
    queued_bytes: usize,
    bound_bytes: usize,
}

/// What the next step of a flush writes.
enum Step {
    /// The rest of the front message as one frame.
    Whole(usize),
    /// A fragment of the front message with this payload.
    Fragment(usize),
    /// A wrap marker: the consumer skips to the start of the data area.
    Wrap(usize),
    /// No room.
    Full,
}

impl Producer {
    pub(crate) fn new(bound_bytes: usize) -> Producer {
        Producer {
            backlog: VecDeque::new(),
            sent: 0,
            queued_bytes: 0,
            bound_bytes,
        }
    }

    /// Bytes queued and not yet written to the ring.
    pub(crate) fn pending_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// The backlog's bound.
    pub(crate) fn bound_bytes(&self) -> usize {
        self.bound_bytes
    }

    /// Whether a message of `len` bytes can be queued now.
    pub(crate) fn has_room(&self, len: usize) -> bool {
        self.queued_bytes + len <= self.bound_bytes
    }

    /// Queues a message, or refuses it when the backlog would pass its bound.
    pub(crate) fn push(&mut self, msg: Vec<u8>) -> Result<(), Backpressure> {
        if !self.has_room(msg.len()) {
            return Err(Backpressure {
                message_bytes: msg.len(),
                queued_bytes: self.queued_bytes,
                bound_bytes: self.bound_bytes,
            });
        }
        self.queued_bytes += msg.len();
        self.backlog.push_back(msg);
        Ok(())
    }

    /// Drops every queued message; returns the bytes dropped. A half-written front message
    /// is discarded by the consumer when the next message's FIRST fragment arrives.
    pub(crate) fn discard(&mut self) -> usize {
        let dropped = self.queued_bytes;
        self.backlog.clear();
        self.sent = 0;
        self.queued_bytes = 0;
        dropped
    }

    /// Writes as many frames as fit; returns the bytes still pending. Counts a full event
    /// when it stops on a full ring.
    pub(crate) fn flush(&mut self, m: &Mapping, dir: &Dir) -> usize {
        let mut w = dir.write_index(m).load(Ordering::Relaxed);
        let mut r = dir.read_index(m).load(Ordering::Acquire);
        let mut reloaded = false;
        while let Some(front) = self.backlog.front() {
            let rem = front.len() - self.sent;
            match plan(dir, w, r, rem) {
                Step::Whole(frame) => {
                    let flags = self.first_flag() | FLAG_LAST;
                    dir.write_frame(m, w, flags, &front[self.sent..]);
                    w += frame as u64;
                    self.queued_bytes -= rem;
                    self.sent = 0;
                    self.backlog.pop_front();
                }
                Step::Fragment(payload) => {
                    let flags = self.first_flag();
                    dir.write_frame(m, w, flags, &front[self.sent..self.sent + payload]);
                    w += (FRAME_HEADER_BYTES + payload) as u64;
                    self.sent += payload;
                    self.queued_bytes -= payload;
                }
                Step::Wrap(skip) => {
                    dir.write_frame(m, w, FLAG_WRAP, &[]);
                    w += skip as u64;
                }
                Step::Full if !reloaded => {
                    // The consumer may have freed room since we looked.
                    r = dir.read_index(m).load(Ordering::Acquire);
                    reloaded = true;
                    continue;
                }
                Step::Full => {
                    dir.full_events(m).fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
            reloaded = false;
            // Failpoint: the frame is written and not yet published (a `panic` here is a
            // process dying mid-publication; the reader must see nothing of it).
            #[cfg(feature = "failpoints")]
            fail::fail_point!("ring::publish");
            dir.publish(m, w);
        }
        self.queued_bytes
    }

    fn first_flag(&self) -> u16 {
        if self.sent == 0 { FLAG_FIRST } else { 0 }
    }
}

/// Chooses the next step for `rem` bytes of a message with the write index at `w` and the
/// read index at `r`. Small messages that do not fit before the end wrap instead of being
/// cut; large ones are cut at the end of the data area.
fn plan(dir: &Dir, w: u64, r: u64, rem: usize) -> Step {
    let cap = dir.capacity();
    let used = w.wrapping_sub(r);
    if used > cap as u64 {
        // Only a peer scribbling on the read index gets here: stall, never overwrite.
        return Step::Full;
    }
    let free = cap - used as usize;
    let contig = dir.contiguous(w);
    let room = free.min(contig);
    let want = FRAME_HEADER_BYTES + align8(rem);
    if want <= room {
        return Step::Whole(want);
    }
    if want > contig && want <= cap / 4 && free >= contig + want {
        return Step::Wrap(contig);
    }
    if room >= FRAME_HEADER_BYTES + 8 {
        return Step::Fragment(room - FRAME_HEADER_BYTES);
    }
    if contig < FRAME_HEADER_BYTES + 8 && free > contig {
        return Step::Wrap(contig);
    }
    Step::Full
}
