//! Master RPC framing: `u32 length | u64 request id | payload`, little-endian.
//!
//! `length` counts the payload bytes only. A frame whose length exceeds the receiver's
//! limit is refused before any byte of it is buffered, so a peer cannot make us allocate
//! on its say-so.

use crate::SchemaError;

/// Bytes before the payload.
pub const FRAME_HEADER_BYTES: usize = 12;

/// Parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length in bytes.
    pub payload_len: u32,
    /// Request id, echoed in the answer so requests can be pipelined.
    pub request_id: u64,
}

impl FrameHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; FRAME_HEADER_BYTES] {
        let mut b = [0u8; FRAME_HEADER_BYTES];
        b[..4].copy_from_slice(&self.payload_len.to_le_bytes());
        b[4..].copy_from_slice(&self.request_id.to_le_bytes());
        b
    }

    /// Decodes a header, refusing payloads above `max_payload_bytes`.
    pub fn decode(b: &[u8], max_payload_bytes: u32) -> Result<FrameHeader, SchemaError> {
        if b.len() < FRAME_HEADER_BYTES {
            return Err(SchemaError::Truncated {
                needed: FRAME_HEADER_BYTES,
                got: b.len(),
            });
        }
        let payload_len = u32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
        let request_id = u64::from_le_bytes(b[4..12].try_into().expect("8 bytes"));
        if payload_len > max_payload_bytes {
            return Err(SchemaError::FrameTooLarge {
                len: payload_len as u64,
                max: max_payload_bytes as u64,
            });
        }
        Ok(FrameHeader {
            payload_len,
            request_id,
        })
    }
}

/// Splits the first complete frame off `buf`: `Ok(Some((header, frame_len)))` when a whole
/// frame is present (`frame_len` = header + payload), `Ok(None)` when more bytes are needed.
pub fn split_frame(
    buf: &[u8],
    max_payload_bytes: u32,
) -> Result<Option<(FrameHeader, usize)>, SchemaError> {
    if buf.len() < FRAME_HEADER_BYTES {
        return Ok(None);
    }
    let h = FrameHeader::decode(buf, max_payload_bytes)?;
    let total = FRAME_HEADER_BYTES + h.payload_len as usize;
    Ok((buf.len() >= total).then_some((h, total)))
}

/// Appends one frame to `out`.
pub fn write_frame(out: &mut Vec<u8>, request_id: u64, payload: &[u8]) {
    let h = FrameHeader {
        payload_len: payload.len() as u32,
        request_id,
    };
    out.extend_from_slice(&h.encode());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_limits() {
        let mut out = Vec::new();
        write_frame(&mut out, 7, b"hello");
        let (h, n) = split_frame(&out, 1024).unwrap().unwrap();
        assert_eq!(h.request_id, 7);
        assert_eq!(&out[FRAME_HEADER_BYTES..n], b"hello");
        assert!(split_frame(&out[..n - 1], 1024).unwrap().is_none());
        assert!(matches!(
            split_frame(&out, 4),
            Err(SchemaError::FrameTooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn split_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = split_frame(&bytes, 32);
        }
    }
}
