//! The one error type of this crate: why a call's buffers, a registration, a `setup()` or a
//! `ReplicateConfig` were refused. Every message names the cause and, where there is one,
//! the fix. Methods turn these into Mooncake's numeric codes with [`BindingError::code`]
//! (and into `last_error()` text) at the Python edge; errors of the client library itself
//! stay [`mooncake_rs::Error`] and keep their own codes.

use mooncake_rs::ErrorCode;
use pyo3::PyErr;

/// Why the binding refused a call before (or instead of) doing it.
#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    /// The object is neither an integer address nor an exporter of the buffer protocol.
    #[error(
        "not a buffer: {source}; pass bytes, bytearray, memoryview, a numpy array or an integer address"
    )]
    NotABuffer {
        /// What the buffer protocol said.
        source: PyErr,
    },

    /// The buffer's bytes are not one contiguous run, so they cannot be read or written as one.
    #[error(
        "buffer must be C-contiguous; pass a contiguous array (numpy.ascontiguousarray) or copy it first"
    )]
    NotContiguous,

    /// The size given is larger than the buffer object.
    #[error(
        "size {size_bytes} exceeds the buffer's {have_bytes} bytes; pass at most the buffer's size"
    )]
    SizeExceedsBuffer {
        /// The size asked for.
        size_bytes: usize,
        /// The buffer's length.
        have_bytes: usize,
    },

    /// An integer address that is negative or does not fit in a pointer.
    #[error("buffer address must be a non-negative integer that fits in a pointer")]
    BadAddress,

    /// Address 0.
    #[error("buffer address is null; pass the address of memory you own (arr.ctypes.data)")]
    NullAddress,

    /// An address and size whose end lies past the end of the address space.
    #[error(
        "buffer [{addr:#x}, +{size_bytes}) runs past the end of the address space; check the size"
    )]
    AddressRange {
        /// The address given.
        addr: usize,
        /// The size given.
        size_bytes: usize,
    },

    /// An integer address where a value (bytes-like object) is expected: without a size the
    /// bytes cannot be found.
    #[error(
        "a raw buffer address needs a size: pass a bytes-like value, or use put_from(key, ptr, size)"
    )]
    AddressNeedsSize,

    /// A read-only object was given as memory to read an object into.
    #[error(
        "a buffer is read-only, but the object is read into it; pass writable memory (bytearray, a numpy array)"
    )]
    ReadOnly,

    /// Two destination buffers of one call share bytes: both would be written at once.
    #[error(
        "destination buffers #{first} and #{second} (counted across the call from 0) overlap at \
         [{start:#x}, {end:#x}); each destination needs memory of its own"
    )]
    Overlap {
        /// Position of the buffer that starts first.
        first: usize,
        /// Position of the other buffer.
        second: usize,
        /// First shared byte.
        start: usize,
        /// End of the shared bytes.
        end: usize,
    },

    /// Two lists of a call that go together (keys and buffers, buffers and sizes) differ in
    /// length.
    #[error("{left} {left_what} but {right} {right_what}; the lists must be of equal length")]
    LengthMismatch {
        /// What the first list holds, e.g. `keys`.
        left_what: &'static str,
        /// Length of the first list.
        left: usize,
        /// What the second list holds, e.g. `buffers`.
        right_what: &'static str,
        /// Length of the second list.
        right: usize,
    },

    /// `register_buffer` of a null address or zero bytes.
    #[error("register_buffer needs a non-null address and a non-zero size")]
    RegisterEmpty,

    /// `register_buffer` of a range whose end does not fit in an address.
    #[error("[{ptr:#x}, +{size_bytes}) overflows the address space; check the size")]
    RegisterOverflow {
        /// The address given.
        ptr: usize,
        /// The size given.
        size_bytes: usize,
    },

    /// `register_buffer` of a range that shares bytes with a registered one.
    #[error("[{start:#x}, {end:#x}) overlaps a registered buffer; unregister it first")]
    RegisterOverlap {
        /// Start of the refused range.
        start: usize,
        /// End of the refused range.
        end: usize,
    },

    /// `unregister_buffer` of an address that starts no registered range.
    #[error("{ptr:#x} is not a registered buffer; pass the address given to register_buffer")]
    NotRegistered {
        /// The address given.
        ptr: usize,
    },

    /// The same argument twice (positionally and by keyword).
    #[error("setup() got {name} twice; pass it once")]
    ArgumentTwice {
        /// The argument's name.
        name: String,
    },

    /// Both spellings of one setting, with different values.
    #[error(
        "setup() got {canonical}={canonical_value:?} and its older name \
         {alias}={alias_value:?}; they differ, so it is unclear which is meant: drop one or \
         make them equal"
    )]
    AliasConflict {
        /// The older name.
        alias: &'static str,
        /// Its value.
        alias_value: String,
        /// The canonical name.
        canonical: &'static str,
        /// Its value.
        canonical_value: String,
    },

    /// `setup(config_dict, ...)` with more arguments next to the dict.
    #[error("setup(config) takes the config dict alone; put every argument in the dict")]
    ConfigDictNotAlone,

    /// An argument of the wrong Python type.
    #[error("{name} must be {expected}")]
    WrongType {
        /// The argument's name.
        name: String,
        /// What it must be, e.g. `a string`.
        expected: &'static str,
    },

    /// A size string that does not parse.
    #[error("{name}={input:?}: {source}")]
    BadSize {
        /// The argument's name.
        name: String,
        /// The text as given.
        input: String,
        /// Why it does not parse.
        source: mc_schema::SchemaError,
    },

    /// A required argument is missing.
    #[error("setup() needs {name}")]
    Missing {
        /// The argument's name.
        name: &'static str,
    },

    /// `local_hostname` is empty or not one word.
    #[error(
        "local_hostname {input:?} is not a host name; pass this node's host (e.g. \"10.0.0.5\")"
    )]
    BadHost {
        /// The text as given.
        input: String,
    },

    /// `engine=` something other than `None`.
    #[error("engine: mooncake-rs has its own transport; pass engine=None")]
    EngineGiven,

    /// `enable_ssd_offload=True` without what it needs.
    #[error(
        "enable_ssd_offload=True needs a hosted segment (global_segment_size > 0) and \
         ssd_offload_path (or MOONCAKE_OFFLOAD_FILE_STORAGE_PATH) on a disk file system"
    )]
    SsdOffload,

    /// `protocol="rdma"` on a machine without RDMA devices.
    #[error(
        "protocol=\"rdma\" needs an RDMA device, and none was found \
         (/sys/class/infiniband is empty; rdma_devices={devices:?}); use protocol=\"tcp\""
    )]
    NoRdmaDevice {
        /// `rdma_devices` as given.
        devices: String,
    },

    /// `protocol="rdma"` with devices present: this build has no RDMA transport.
    #[error(
        "protocol=\"rdma\": {found} RDMA device(s) present, but this build of mooncake-rs has \
         no RDMA transport; use protocol=\"tcp\""
    )]
    NoRdmaTransport {
        /// How many devices `/sys/class/infiniband` lists.
        found: usize,
    },

    /// A protocol neither here nor upstream.
    #[error("protocol={name:?} is not supported; use \"tcp\"")]
    UnknownProtocol {
        /// The protocol as given.
        name: String,
    },

    /// A metadata server other than `P2PHANDSHAKE` or an HTTP URL.
    #[error(
        "metadata_server={input:?}: expected \"P2PHANDSHAKE\" or http://host:port/metadata \
         (mooncake-rs keeps segment metadata in the master)"
    )]
    MetadataServer {
        /// The text as given.
        input: String,
    },

    /// A master address that is neither `host:port` nor a coordinator locator.
    #[error(
        "master_server_addr={input:?}: {reason} (expected host:port of the master's RPC service, \
         or etcd://h1:2379;h2:2379 or redis://host:port where HA masters elect a leader)"
    )]
    MasterAddress {
        /// The text as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A hosted segment below the smallest a shard can serve.
    #[error(
        "global_segment_size={size_bytes} is below the smallest segment ({min_bytes} bytes); \
         pass at least that, or 0 for a pure client"
    )]
    SegmentTooSmall {
        /// The size given.
        size_bytes: u64,
        /// The smallest segment.
        min_bytes: u64,
    },

    /// `setup()` on an object that is already set up.
    #[error("already set up; call close() first")]
    AlreadySetUp,

    /// A call after a failed `setup()`.
    #[error("the store is not set up: {reason}; fix it and call setup() again")]
    SetupFailed {
        /// What the failed setup said.
        reason: String,
    },

    /// A call before `setup()` (or after `close()`).
    #[error("the store is not set up: call setup() first")]
    NotSetUp,

    /// The flags built for the hosted store node were refused.
    #[error("hosted segment: {source}")]
    HostedFlags {
        /// What the node's flag parser said.
        source: clap::Error,
    },

    /// The hosted store node did not start.
    #[error("hosted segment: {source}")]
    HostedNode {
        /// Why the node did not start.
        source: mc_agent::node::NodeError,
    },

    /// The master did not accept the hosted segment in time.
    #[error(
        "hosted segment: the master at {master} did not accept it within {timeout_seconds}s; \
         check the master's log and that it can reach this host"
    )]
    MountTimeout {
        /// The master's address.
        master: String,
        /// How long `setup()` waited.
        timeout_seconds: u64,
    },

    /// The master could not be reached (or refused the client).
    #[error("master {addr}: {source}")]
    Master {
        /// The master's address.
        addr: String,
        /// The client library's error, with its code.
        source: mooncake_rs::Error,
    },

    /// `replica_num` outside what a put may ask for.
    #[error("replica_num must be 1..={max}, got {got}")]
    ReplicaNum {
        /// The number given.
        got: usize,
        /// The largest allowed.
        max: u32,
    },

    /// A replica tier this build does not have (NVMe-oF, DFS).
    #[error("{what}: this build has memory replicas only; leave it at its default")]
    NoTier {
        /// What was asked for.
        what: &'static str,
    },

    /// The real client of a dummy (`setup_dummy`) failed or could not be reached.
    #[error("{source}")]
    Dummy {
        /// What went wrong between this dummy and its real client.
        source: mc_dummy::DummyError,
    },

    /// A method a dummy client does not forward to its real client.
    #[error(
        "this method is not available through a dummy client (setup_dummy); \
         call it from a client made with setup()"
    )]
    DummyUnsupported,

    /// `register_buffer` on a dummy with memory outside its pool.
    #[error(
        "buffer {addr:#x}+{size_bytes} is not inside this dummy's memory pool; \
         take buffers from alloc_from_mem_pool()"
    )]
    OutsidePool {
        /// Start.
        addr: usize,
        /// Length.
        size_bytes: usize,
    },

    /// An empty string among the preferred segments.
    #[error("preferred segment names must not be empty; drop the empty entry")]
    EmptyPreferredSegment,

    /// A buffer-pool call was refused (`pool/`); raised as `RuntimeError`.
    #[error(transparent)]
    Pool(#[from] crate::pool::PoolError),
}

impl BindingError {
    /// The Mooncake error code a method returns for this refusal: INVALID_PARAMS for bad
    /// arguments, INTERNAL_ERROR when the hosted node failed, the client's own code when the
    /// master could not be reached.
    pub fn code(&self) -> i32 {
        match self {
            BindingError::HostedFlags { .. }
            | BindingError::HostedNode { .. }
            | BindingError::MountTimeout { .. } => ErrorCode::InternalError.code(),
            BindingError::Master { source, .. } => source.code().code(),
            BindingError::Dummy { source } => source.code(),
            // Mooncake's dummy answers -1 for a buffer it cannot register.
            BindingError::OutsidePool { .. } => ErrorCode::InternalError.code(),
            _ => ErrorCode::InvalidParams.code(),
        }
    }
}
