//! Allocation generations and master terms.
//!
//! A generation names one allocation (a slice's range) everywhere: in the master's
//! allocator, in the descriptors clients get, in write frames and in the shards' object
//! index. Its high bits are the **term** of the master that made it, so generations stay
//! unique across master restarts and failovers, and a shard can refuse a write made for a
//! deposed master. `docs/node-index.md` explains the scheme.

/// Bits of a generation below the term: allocations per term.
pub const COUNTER_BITS: u32 = 44;

/// Largest term (terms are 20 bits).
pub const MAX_TERM: u64 = (1 << (64 - COUNTER_BITS)) - 1;

/// Largest counter within one term.
pub const MAX_COUNTER: u64 = (1 << COUNTER_BITS) - 1;

/// The generation `counter` of `term` (both are masked to their widths).
pub fn compose(term: u64, counter: u64) -> u64 {
    ((term & MAX_TERM) << COUNTER_BITS) | (counter & MAX_COUNTER)
}

/// The term that made `generation`.
pub fn term_of(generation: u64) -> u64 {
    generation >> COUNTER_BITS
}

/// The counter part of `generation`.
pub fn counter_of(generation: u64) -> u64 {
    generation & MAX_COUNTER
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_round_trip_and_order_by_term_first() {
        let g = compose(7, 12345);
        assert_eq!(term_of(g), 7);
        assert_eq!(counter_of(g), 12345);
        assert!(compose(8, 1) > compose(7, MAX_COUNTER));
        assert_eq!(term_of(compose(MAX_TERM, MAX_COUNTER)), MAX_TERM);
        assert_eq!(term_of(0), 0);
    }
}
