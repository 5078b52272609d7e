//! Documented limits on keys, values, batches and frames. Requests beyond them get
//! INVALID_PARAMS (-600); frames beyond them close the connection.

/// Longest key in bytes (UTF-8). Empty keys are refused too.
pub const MAX_KEY_LEN: usize = 4096;
/// Largest slice a replica is cut into; larger values are striped over several slices.
pub const MAX_SLICE_BYTES: u64 = 16 << 20;
/// Largest object (value) in bytes: 1 TiB.
pub const MAX_OBJECT_BYTES: u64 = 1 << 40;
/// Most keys in one batch request.
pub const MAX_BATCH_KEYS: usize = 16_384;
/// Most replicas per object.
pub const MAX_REPLICAS: u32 = 16;
/// Largest master RPC frame payload.
pub const MAX_RPC_FRAME_BYTES: u32 = 128 << 20;

/// Largest agent ↔ shard message (`agent::wire`): an inventory part of
/// `agent::INVENTORY_CHUNK` entries with keys of `MAX_KEY_LEN` bytes fits with room to spare.
pub const MAX_AGENT_MESSAGE_BYTES: usize = 64 << 20;
/// Longest text field (path, segment name, endpoint, failure reason) of an agent ↔ shard
/// message.
pub const MAX_AGENT_TEXT_BYTES: usize = 64 << 10;

/// Checks a key against the limits.
pub fn key_is_valid(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_LEN
}

/// Number of slices a value of `len` bytes is cut into (0 for an empty value).
pub fn slice_count(len: u64) -> u64 {
    len.div_ceil(MAX_SLICE_BYTES)
}

/// Length of slice `i` of a value of `len` bytes.
pub fn slice_len(len: u64, i: u64) -> u64 {
    let start = i * MAX_SLICE_BYTES;
    (len - start).min(MAX_SLICE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slicing_covers_the_value() {
        for len in [1, 4096, MAX_SLICE_BYTES, MAX_SLICE_BYTES + 1, 40 << 20] {
            let n = slice_count(len);
            let total: u64 = (0..n).map(|i| slice_len(len, i)).sum();
            assert_eq!(total, len);
            assert!((0..n).all(|i| slice_len(len, i) <= MAX_SLICE_BYTES));
        }
        assert_eq!(slice_count(40 << 20), 3);
        assert!(!key_is_valid(""));
        assert!(!key_is_valid(&"k".repeat(MAX_KEY_LEN + 1)));
        assert!(key_is_valid(&"k".repeat(MAX_KEY_LEN)));
    }
}
