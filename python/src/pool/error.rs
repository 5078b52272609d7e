//! Why a buffer-pool call was refused. Raised as `RuntimeError` (as Mooncake's pool does),
//! each message keeping the word Mooncake's own carries (`alignment`, `capacity`,
//! `exhausted`, `timed out`, `closed`, `exported views`, `active leases`) so callers that
//! match on it keep working.

/// A refused buffer-pool call. One variant of [`crate::error::BindingError`].
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The store was never set up, or was closed.
    #[error("MooncakeDistributedStore is not initialized: call setup() before making a BufferPool")]
    NotSetUp,

    /// A dummy client (`setup_dummy`) has no local buffer to lend from.
    #[error(
        "BufferPool needs a store made with setup(); a dummy client (setup_dummy) has no local buffer"
    )]
    Dummy,

    /// `setup(local_buffer_size=0)`.
    #[error("BufferPool requires a store configured with a local buffer (local_buffer_size > 0)")]
    NoLocalBuffer,

    /// The local buffer could not be mapped.
    #[error("the store's local buffer of {size_bytes} bytes could not be mapped: {source}")]
    LocalBuffer {
        /// `local_buffer_size`.
        size_bytes: usize,
        /// Why not.
        source: mc_hugepages::Error,
    },

    /// `min_size_class` or `alignment` is zero.
    #[error("min_size_class and alignment must be positive")]
    NotPositive,

    /// `alignment` is not a power of two, or is below a pointer's size.
    #[error("alignment must be a power of two and at least {min} (sizeof(void*)), got {got}")]
    Alignment {
        /// The alignment given.
        got: usize,
        /// The smallest allowed.
        min: usize,
    },

    /// A negative `timeout` (or `default_timeout`).
    #[error("timeout must be non-negative, got {0}")]
    NegativeTimeout(f64),

    /// A lease larger than the whole pool.
    #[error("requested buffer size {size_bytes} exceeds pool capacity of {max_bytes} bytes")]
    TooLarge {
        /// The size asked for.
        size_bytes: usize,
        /// `max_bytes` as the pool resolved it.
        max_bytes: usize,
    },

    /// `block=False` and no room now.
    #[error("buffer pool is exhausted; release a lease or acquire with block=True")]
    Exhausted,

    /// The wait for room ran past the timeout.
    #[error("timed out waiting for buffer after {timeout_seconds}s")]
    TimedOut {
        /// The timeout.
        timeout_seconds: f64,
    },

    /// `close()` has finished.
    #[error("buffer pool is closed")]
    Closed,

    /// `close()` is under way.
    #[error("buffer pool is closing")]
    Closing,

    /// `close()` while leases are out.
    #[error("cannot close buffer pool with {0} active leases; release them first")]
    ActiveLeases(usize),

    /// The store's `register_buffer` refused an overflow buffer.
    #[error("overflow buffer registration failed: register_buffer returned {0}")]
    Register(String),

    /// The store's `unregister_buffer` refused an overflow buffer.
    #[error("overflow buffer unregistration failed: unregister_buffer returned {0}")]
    Unregister(String),

    /// The lease was released (or its pool let it go).
    #[error("buffer lease is closed")]
    LeaseClosed,

    /// `release()` while memoryviews of the lease are alive.
    #[error("cannot release buffer while {0} exported views exist; delete them first")]
    ExportedViews(usize),
}
