//! Byte offsets of the shared file and the frame header format (`docs/rings.md`).

use std::time::Duration;

/// Identifies a ring file: `MCRING` followed by two format bytes.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"MCRING\x00\x01");
/// Layout version; a mismatch is refused on open.
pub(crate) const VERSION: u64 = 1;
/// Bytes before the first data area: the header page.
pub(crate) const HEADER_BYTES: usize = 4096;

/// Smallest capacity per direction.
pub const MIN_CAPACITY_BYTES: usize = 4096;
/// Largest capacity per direction.
pub const MAX_CAPACITY_BYTES: usize = 1 << 30;
/// Default capacity per direction: 4 MiB.
pub const DEFAULT_CAPACITY_BYTES: usize = 4 << 20;
/// Default bound of a producer's local backlog: 64 MiB.
pub const DEFAULT_BACKLOG_BYTES: usize = 64 << 20;
/// Default largest message a consumer reassembles: 64 MiB (larger ones are discarded).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 << 20;
/// Default time without a heartbeat after which a peer is `Silent`.
pub const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(1);
/// Default interval of a [`crate::Heartbeat`] thread.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(50);

pub(crate) const OFF_MAGIC: usize = 0;
pub(crate) const OFF_VERSION: usize = 8;
pub(crate) const OFF_CAPACITY: usize = 16;

/// Side blocks, one cache line each: agent at 64, shard at 128.
pub(crate) const OFF_SIDE: [usize; 2] = [64, 128];
pub(crate) const SIDE_PID: usize = 0;
pub(crate) const SIDE_EPOCH: usize = 8;
pub(crate) const SIDE_BEAT: usize = 16;
pub(crate) const SIDE_STATE: usize = 24;
/// End of the side blocks (for `reset`).
pub(crate) const SIDE_BYTES: usize = 64;

/// `state` word values (0: never attached, or reset).
pub(crate) const STATE_ATTACHED: u64 = 1;
pub(crate) const STATE_CLOSED: u64 = 2;

/// Direction control blocks: agent → shard at 256, shard → agent at 512. Inside one, the
/// write index, the read index and the counters sit on separate cache lines.
pub(crate) const OFF_DIR: [usize; 2] = [256, 512];
pub(crate) const DIR_WRITE: usize = 0;
pub(crate) const DIR_READ: usize = 64;
pub(crate) const DIR_FULL_EVENTS: usize = 128;
/// Bytes of one direction block.
pub(crate) const DIR_BYTES: usize = 256;
const _: () = assert!(OFF_DIR[1] + DIR_BYTES <= HEADER_BYTES);
const _: () = assert!(OFF_SIDE[1] + SIDE_BYTES <= OFF_DIR[0]);

/// Frame header: `u32 payload length | u16 flags | u16 tag`, little endian in one u64.
pub(crate) const FRAME_HEADER_BYTES: usize = 8;
pub(crate) const FLAG_FIRST: u16 = 1;
pub(crate) const FLAG_LAST: u16 = 2;
pub(crate) const FLAG_WRAP: u16 = 4;
const FLAGS_KNOWN: u16 = FLAG_FIRST | FLAG_LAST | FLAG_WRAP;
/// Constant in every frame header: a header without it is corruption.
const FRAME_TAG: u16 = 0xA5C3;

/// Total file size for a capacity per direction.
pub(crate) fn file_bytes(capacity_bytes: usize) -> usize {
    HEADER_BYTES + 2 * capacity_bytes
}

/// Offset of a direction's data area.
pub(crate) fn data_offset(dir: usize, capacity_bytes: usize) -> usize {
    HEADER_BYTES + dir * capacity_bytes
}

/// `n` rounded up to a multiple of 8.
pub(crate) fn align8(n: usize) -> usize {
    (n + 7) & !7
}

/// Encodes a frame header.
pub(crate) fn frame_header(len: u32, flags: u16) -> [u8; FRAME_HEADER_BYTES] {
    let word = u64::from(len) | (u64::from(flags) << 32) | (u64::from(FRAME_TAG) << 48);
    word.to_le_bytes()
}

/// Decodes a frame header: `(payload length, flags)`, or `None` when it is not one.
pub(crate) fn parse_frame_header(bytes: [u8; FRAME_HEADER_BYTES]) -> Option<(usize, u16)> {
    let word = u64::from_le_bytes(bytes);
    let tag = (word >> 48) as u16;
    let flags = (word >> 32) as u16;
    if tag != FRAME_TAG || flags & !FLAGS_KNOWN != 0 {
        return None;
    }
    Some(((word & 0xFFFF_FFFF) as usize, flags))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_garbage_is_refused() {
        let h = frame_header(12345, FLAG_FIRST | FLAG_LAST);
        assert_eq!(parse_frame_header(h), Some((12345, FLAG_FIRST | FLAG_LAST)));
        assert_eq!(parse_frame_header([0; 8]), None);
        let mut bad = h;
        bad[4] |= 0x80;
        assert_eq!(parse_frame_header(bad), None);
    }
}
