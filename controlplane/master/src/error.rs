//! The one error type of this crate: why the master cannot start, why a flag value is
//! refused, and why a segment cannot be mounted. Messages name the cause and what to do, on
//! one line (the binary prints them as they are).

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

    /// `--cluster_secret_file` could not be used.
    #[error("--cluster_secret_file={path}: {reason}")]
    SecretFile {
        /// The file as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },

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
    /// `--allocation_strategy=cxl` without `--enable_cxl`.
    #[error(
        "allocation_strategy `cxl` needs --enable_cxl (and nodes started with --enable_cxl); or use random, free_ratio_first or local_first"
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

    /// `--rpc_interface` names no usable interface.
    #[error("--rpc_interface={name}: {source}")]
    RpcInterface {
        /// The interface asked for.
        name: String,
        /// Why it has no address to use.
        source: mc_topology::Error,
    },
    /// `--ha_backend_type=k8s`: a Mooncake backend this build does not have.
    #[error(
        "--ha_backend_type=k8s (a Kubernetes Lease) is not supported by mooncake-rs; supported HA backends: etcd, redis"
    )]
    HaBackendUnsupported,
    /// An `--ha_backend_type` Mooncake does not have either.
    #[error("unknown --ha_backend_type `{name}`; supported HA backends: etcd, redis")]
    HaUnknownBackend {
        /// The name as given.
        name: String,
    },
    /// `--enable_ha` without a coordinator address.
    #[error("--enable_ha with --ha_backend_type={backend} needs {needed}")]
    HaNoCoordinator {
        /// The backend.
        backend: String,
        /// The flag to give, with an example.
        needed: &'static str,
    },
    /// The coordinator address does not parse.
    #[error("--{flag}=`{value}` is not a coordinator address: {source}")]
    HaLocator {
        /// The flag it came from.
        flag: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        source: mc_coord::CoordError,
    },
    /// With HA the leader publishes its RPC address, so a wildcard one cannot work.
    #[error(
        "--enable_ha needs an --rpc_address that other masters, nodes and clients can reach (the leader publishes it); `{address}` only means every interface: give this host's IP address or name its interface with --rpc_interface"
    )]
    HaUnreachableAddress {
        /// The address as given.
        address: String,
    },
    /// A lease TTL the election cannot keep its guarantees with.
    #[error("--master_view_lease_ttl_sec: {0}")]
    HaTiming(#[source] mc_coord::CoordError),
    /// The coordinator did not answer at start.
    #[error(
        "cannot reach the HA coordinator {locator} within {waited_seconds} s: {source}; start it, or fix --etcd_endpoints / --ha_backend_connstring"
    )]
    CoordinatorUnreachable {
        /// The coordinator, as a locator (passwords masked).
        locator: String,
        /// How long the master tried.
        waited_seconds: u64,
        /// The last failure.
        source: mc_coord::CoordError,
    },

    /// Snapshots on without a store type.
    #[error("--{flag} needs --snapshot_object_store_type=local or --snapshot_object_store_type=s3")]
    SnapshotStoreTypeMissing {
        /// The flag that turned snapshots on.
        flag: &'static str,
    },
    /// A store type other than `local` and `s3`.
    #[error("unknown --snapshot_object_store_type `{name}`; supported: local, s3")]
    SnapshotStoreTypeUnknown {
        /// The name as given.
        name: String,
    },
    /// `--snapshot_catalog_store_type=redis` (or another): the catalog here is the store's
    /// own `latest` marker.
    #[error(
        "--snapshot_catalog_store_type={name} is not supported by mooncake-rs: the catalog is the `latest` marker beside the snapshots (`embedded`); leave the flag empty"
    )]
    SnapshotCatalogUnsupported {
        /// The name as given.
        name: String,
    },
    /// An environment variable the snapshot store needs is not set.
    #[error("{variable} is not set: set it to {purpose}")]
    SnapshotEnvMissing {
        /// The variable.
        variable: &'static str,
        /// What it must hold.
        purpose: &'static str,
    },
    /// A snapshot flag below its minimum.
    #[error("--{flag} must be at least {min}")]
    SnapshotFlagTooSmall {
        /// The flag.
        flag: &'static str,
        /// Its minimum.
        min: &'static str,
    },
    /// An S3 request (or the client's configuration) failed.
    #[error("cannot {action} s3 object `{key}`: {source}")]
    SnapshotS3 {
        /// What was being done.
        action: &'static str,
        /// The object key (or bucket).
        key: String,
        /// Cause.
        source: object_store::Error,
    },
    /// A local snapshot file operation failed.
    #[error("cannot {action} {}: {source} (check the snapshot directory's permissions and free space)", path.display())]
    SnapshotIo {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: std::path::PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A snapshot data file that does not start with the magic.
    #[error("not a mooncake-rs snapshot (bad magic)")]
    SnapshotBadMagic,
    /// A snapshot data file of another format version.
    #[error("snapshot format version {version} is not readable by this build (it reads version 1)")]
    SnapshotVersion {
        /// The version found.
        version: u32,
    },
    /// A snapshot data file that ends inside a record.
    #[error("snapshot truncated at byte {at} (reading the {field})")]
    SnapshotTruncated {
        /// Offset where it ended.
        at: usize,
        /// The field being read.
        field: &'static str,
    },
    /// A snapshot data file with a value no snapshot can hold.
    #[error("snapshot malformed at byte {at}: {what}")]
    SnapshotMalformed {
        /// Offset of the record.
        at: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// A snapshot data file whose length or CRC32C differs from its manifest's.
    #[error(
        "snapshot {id} is corrupt: {bytes} bytes with CRC32C {crc32c:#010x}, its manifest says {expected_bytes} bytes with {expected_crc32c:#010x}"
    )]
    SnapshotChecksum {
        /// The snapshot.
        id: String,
        /// Bytes read.
        bytes: u64,
        /// Bytes the manifest records.
        expected_bytes: u64,
        /// CRC32C of what was read.
        crc32c: u32,
        /// CRC32C the manifest records.
        expected_crc32c: u32,
    },
    /// A manifest that does not parse or does not fit its snapshot.
    #[error("snapshot {id} has a bad manifest: {reason}")]
    SnapshotManifest {
        /// The snapshot.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// A snapshot without one of its files.
    #[error("snapshot {id} has no {file}")]
    SnapshotMissing {
        /// The snapshot.
        id: String,
        /// The missing file.
        file: &'static str,
    },
    /// The blocking task walking or decoding a snapshot panicked.
    #[error("the snapshot task panicked (see the log above)")]
    SnapshotTaskPanicked,
    /// Leadership was lost while a snapshot was written; `latest` was left alone.
    #[error("no longer the serving leader: snapshot {id} was written but `latest` not moved to it")]
    SnapshotDeposed {
        /// The snapshot written.
        id: String,
    },
}
