//! The consuming half of an end: reads frames, reassembles fragments, delivers only
//! complete messages.

use std::sync::atomic::Ordering;

use crate::dir::Dir;
use crate::layout::{
    FLAG_FIRST, FLAG_LAST, FLAG_WRAP, FRAME_HEADER_BYTES, align8, parse_frame_header,
};
use crate::map::Mapping;

/// Reassembly state and counters of what was thrown away.
pub(crate) struct Consumer {
    partial: Vec<u8>,
    /// A FIRST fragment was seen and its message is being assembled.
    in_message: bool,
    max_message_bytes: usize,
    /// Partial messages dropped: the producer restarted (a FIRST arrived mid-message), or
    /// the message passed `max_message_bytes`.
    pub(crate) discarded_messages: u64,
    /// Fragments without a FIRST before them (we, the consumer, restarted mid-message).
    pub(crate) orphan_fragments: u64,
    /// Frame headers that made no sense; everything published was skipped.
    pub(crate) corrupt_frames: u64,
}

/// One frame as read from the ring.
enum Frame {
    Wrap(usize),
    Data {
        len: usize,
        flags: u16,
        bytes: usize,
    },
}

impl Consumer {
    pub(crate) fn new(max_message_bytes: usize) -> Consumer {
        Consumer {
            partial: Vec::new(),
            in_message: false,
            max_message_bytes,
            discarded_messages: 0,
            orphan_fragments: 0,
            corrupt_frames: 0,
        }
    }

    /// The next complete message, if the ring holds all of it.
    pub(crate) fn try_recv(&mut self, m: &Mapping, dir: &Dir) -> Option<Vec<u8>> {
        let read = dir.read_index(m);
        let mut r = read.load(Ordering::Relaxed);
        let w = dir.write_index(m).load(Ordering::Acquire);
        while r != w {
            let Some(frame) = next_frame(m, dir, r, w) else {
                // Corruption (only a misbehaving peer writes such headers): skip it all.
                self.corrupt_frames += 1;
                self.drop_partial();
                read.store(w, Ordering::Release);
                return None;
            };
            let done = match frame {
                Frame::Wrap(skip) => {
                    r += skip as u64;
                    false
                }
                Frame::Data { len, flags, bytes } => {
                    let done = self.take(m, dir.at(r) + FRAME_HEADER_BYTES, len, flags);
                    r += bytes as u64;
                    done
                }
            };
            // Hand the space back at once: a message bigger than the ring needs it.
            read.store(r, Ordering::Release);
            if done {
                self.in_message = false;
                return Some(std::mem::take(&mut self.partial));
            }
        }
        None
    }

    /// Adds one data frame's payload; true when it completed a message.
    fn take(&mut self, m: &Mapping, at: usize, len: usize, flags: u16) -> bool {
        if flags & FLAG_FIRST != 0 {
            if self.in_message {
                self.discarded_messages += 1;
            }
            self.partial.clear();
            self.in_message = true;
        } else if !self.in_message {
            self.orphan_fragments += 1;
            return false;
        }
        if self.partial.len() + len > self.max_message_bytes {
            self.discarded_messages += 1;
            self.drop_partial();
            return false;
        }
        let start = self.partial.len();
        self.partial.resize(start + len, 0);
        m.read(at, &mut self.partial[start..]);
        flags & FLAG_LAST != 0
    }

    fn drop_partial(&mut self) {
        self.partial = Vec::new();
        self.in_message = false;
    }
}

/// Reads and checks the frame at `r` (with `w` published); `None` when it is corrupt.
fn next_frame(m: &Mapping, dir: &Dir, r: u64, w: u64) -> Option<Frame> {
    let avail = w.wrapping_sub(r);
    if avail > dir.capacity() as u64 || !avail.is_multiple_of(8) || !r.is_multiple_of(8) {
        return None;
    }
    let avail = avail as usize;
    let contig = dir.contiguous(r);
    let mut hdr = [0u8; FRAME_HEADER_BYTES];
    m.read(dir.at(r), &mut hdr);
    let (len, flags) = parse_frame_header(hdr)?;
    if flags & FLAG_WRAP != 0 {
        return (len == 0 && contig <= avail).then_some(Frame::Wrap(contig));
    }
    let bytes = FRAME_HEADER_BYTES.checked_add(align8(len))?;
    (bytes <= avail.min(contig)).then_some(Frame::Data { len, flags, bytes })
}
