//! The one error type of this crate: why the master cannot start, why a flag value is
//! refused, and why a segment cannot be mounted. Messages name the cause and what to do.

/// Everything the master refuses or fails at, short of an RPC answer.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    /// A listener could not bind.
    #[error(
        "cannot listen on {addr} for {what}: {source} (is another master running? pick another port with --{flag})"
    )]
    Bind {
        /// Address.
        addr: String,
        /// Which server.
        what: &'static str,
        /// Flag to change.
        flag: &'static str,
        /// Cause.
        source: std::io::Error,
    },
    /// The runtime could not start.
    #[error(
        "cannot start the async runtime: {0} (the process may be out of threads or memory; check `ulimit -u` or lower --rpc_thread_num)"
    )]
    Runtime(#[source] std::io::Error),

    /// A ratio flag (`--eviction_ratio`, ...) that is not a number.
    #[error("`{input}` is not a number; write a ratio between 0 and 1 (e.g. 0.95)")]
    RatioNotANumber {
        /// The text as given.
        input: String,
    },
    /// A ratio flag outside 0..1.
    #[error("{value} is outside 0..1; write a ratio between 0 and 1 (e.g. 0.95)")]
    RatioOutOfRange {
        /// The value as parsed.
        value: f64,
    },
    /// `--allocation_strategy=cxl`: a Mooncake strategy this build cannot serve.
    #[error(
        "allocation_strategy `cxl` needs CXL memory support, which this build does not have; use random, free_ratio_first or local_first"
    )]
    CxlUnsupported,
    /// An `--allocation_strategy` that Mooncake does not have either.
    #[error(
        "unknown allocation_strategy `{name}`; accepted: random, free_ratio_first, local_first, cxl"
    )]
    UnknownStrategy {
        /// The name as given.
        name: String,
    },
    /// `--memory_allocator=cachelib`: a Mooncake allocator this build does not have.
    #[error(
        "memory_allocator `cachelib` is not supported by mooncake-rs; use `offset` (an O(1) bin-based allocator)"
    )]
    CachelibUnsupported,
    /// A `--memory_allocator` that Mooncake does not have either.
    #[error("unknown memory_allocator `{name}`; accepted: offset")]
    UnknownAllocator {
        /// The name as given.
        name: String,
    },

    /// A segment id is already mounted by another client (or with another size).
    #[error("segment {segment_id:#x} is mounted by another client")]
    SegmentTaken {
        /// The id asked for.
        segment_id: u64,
    },
    /// A mount request without an id, size, name or endpoint.
    #[error("segment id, size, name and endpoint must be set")]
    SegmentIncomplete,
    /// Every one of the 2^32 segment slots has been used since the master started; slots are
    /// never reused, so only a restart frees them.
    #[error(
        "too many segments mounted over time (2^32 since the master started); restart the master"
    )]
    SegmentSlotsExhausted,
}
