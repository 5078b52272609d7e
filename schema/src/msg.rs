//! Master RPC messages as Rust values, and their flatbuffers encoding (`fbs/master_rpc.fbs`).
//!
//! Every per-key request carries a list of keys: a batch costs one round trip and a single
//! call is a batch of one. Decoding runs the flatbuffers verifier with bounded depth, table
//! count and size, so any byte string yields a message or a typed error.

use flatbuffers::{
    FlatBufferBuilder, ForwardsUOffset, UnionWIPOffset, Vector, VerifierOptions, WIPOffset,
};

use crate::generated::mc::proto as fb;
use crate::token::WriteToken;
use crate::{ErrorCode, SchemaError};

mod credit;
pub(crate) mod node_index;
mod tasks;

pub use credit::Credit;
pub use tasks::{TaskCopy, TaskInfo, TaskKind, TaskOutcome, TaskState};

/// What to do with an object's soft pin (Mooncake's `SoftPinAction`).
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SoftPinAction {
    /// Keep whatever the object has.
    #[default]
    Preserve = 0,
    /// Soft-pin the object.
    Enable = 1,
    /// Remove the soft pin.
    Disable = 2,
}

impl SoftPinAction {
    fn from_u8(v: u8) -> SoftPinAction {
        match v {
            1 => SoftPinAction::Enable,
            2 => SoftPinAction::Disable,
            _ => SoftPinAction::Preserve,
        }
    }
}

/// How an object is placed (Mooncake's `ReplicateConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicateConfig {
    /// Number of replicas, 1..=16.
    pub replica_num: u32,
    /// Segments (`host:port`, or a bare host for all shards of a node) tried first.
    pub preferred_segments: Vec<String>,
    /// Never evicted.
    pub with_hard_pin: bool,
    /// Soft pin handling.
    pub soft_pin_action: SoftPinAction,
    /// Soft pin lifetime; 0 = the master's default.
    pub soft_pin_ttl_ms: u64,
}

impl Default for ReplicateConfig {
    fn default() -> Self {
        ReplicateConfig {
            replica_num: 1,
            preferred_segments: Vec::new(),
            with_hard_pin: false,
            soft_pin_action: SoftPinAction::Preserve,
            soft_pin_ttl_ms: 0,
        }
    }
}

/// One contiguous range of one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceDesc {
    /// Segment holding the range.
    pub segment_id: u64,
    /// Data endpoint (`host:port`) of the shard owning the segment.
    pub endpoint: String,
    /// Byte offset in the segment.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
    /// Allocation generation.
    pub generation: u64,
    /// The capability to write the slice (PutStart answers; `None` in replica lists).
    pub token: Option<WriteToken>,
}

/// Where a replica's bytes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplicaKind {
    /// A segment's memory (DRAM, hugepages, shm).
    #[default]
    Memory,
    /// A shard's SSD record store on its node (Mooncake's `LOCAL_DISK` replica): read over
    /// the same data port, slower than memory.
    LocalDisk,
}

/// One replica: the object's bytes in slice order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaDesc {
    /// Slices, concatenated in order.
    pub slices: Vec<SliceDesc>,
    /// Written and committed by PutEnd.
    pub complete: bool,
    /// Memory or a node's SSD.
    pub kind: ReplicaKind,
}

/// One slice a shard copied to its SSD (answer to a [`Notice::Offload`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffloadedSlice {
    /// The object's key.
    pub key: String,
    /// The put the slice belongs to (its first slice's generation).
    pub put_generation: u64,
    /// Position of the slice in the value.
    pub slice_index: u32,
    /// Slices of the value.
    pub slice_count: u32,
    /// The memory slice copied: segment.
    pub source_segment_id: u64,
    /// The memory slice copied: offset.
    pub source_offset: u64,
    /// The shard's disk segment holding the copy.
    pub disk_segment_id: u64,
    /// The record's location in the disk segment.
    pub disk_offset: u64,
    /// Bytes of the slice.
    pub length: u64,
    /// Generation of the memory slice, kept in the record (reads name it).
    pub generation: u64,
    /// CRC32C of the slice.
    pub crc32c: u32,
}

/// A request to the master.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Request {
    /// `term_seen`: the highest master term the node has seen (0 = none);
    /// `reports_inventory`: the node reports its object index before the segment is used.
    MountSegment {
        client_id: u64,
        segment_id: u64,
        name: String,
        host: String,
        endpoint: String,
        size: u64,
        term_seen: u64,
        reports_inventory: bool,
        /// A shard's SSD record store (never placed into; holds offloaded copies).
        disk: bool,
    },
    UnmountSegment {
        client_id: u64,
        segment_id: u64,
    },
    Ping {
        client_id: u64,
    },
    /// (key, value length) pairs; `client_host` is the writer's host ("" = unknown).
    PutStart {
        client_id: u64,
        client_host: String,
        items: Vec<(String, u64)>,
        config: ReplicateConfig,
    },
    PutEnd {
        items: Vec<PutEndItem>,
    },
    PutRevoke {
        keys: Vec<String>,
    },
    GetReplicaList {
        keys: Vec<String>,
    },
    ExistKey {
        keys: Vec<String>,
    },
    GetSize {
        keys: Vec<String>,
    },
    Remove {
        keys: Vec<String>,
        force: bool,
    },
    RemoveByRegex {
        regex: String,
        force: bool,
    },
    RemoveAll {
        force: bool,
    },
    /// The node is leaving: no new allocations in these segments.
    DrainSegments {
        client_id: u64,
        segment_ids: Vec<u64>,
    },
    /// Like PutStart, but an existing complete key gets new space for a replacement value.
    UpsertStart {
        client_id: u64,
        client_host: String,
        items: Vec<(String, u64)>,
        config: ReplicateConfig,
    },
    /// Swaps the replacement in (or commits a new key).
    UpsertEnd {
        items: Vec<PutEndItem>,
    },
    /// Drops a replacement in progress; the current value stays.
    UpsertRevoke {
        keys: Vec<String>,
    },
    /// A node's long poll for notices; `acked_seq` is the last one its shards applied of
    /// the master of term `acked_term`.
    Sync {
        client_id: u64,
        acked_seq: u64,
        acked_term: u64,
    },
    /// Part of a node's inventory, after it mounted with a master that did not know it.
    ReportInventory {
        client_id: u64,
        entries: Vec<InventoryEntry>,
    },
    /// The node's inventory is complete: adopt it.
    InventoryDone {
        client_id: u64,
    },
    /// Keys the node's shards served from clients' location caches: count them as reads.
    ReportHits {
        client_id: u64,
        keys: Vec<String>,
    },
    /// Slices the node's shards made durable on SSD: the master adds them as disk replicas.
    ReportOffloaded {
        client_id: u64,
        entries: Vec<OffloadedSlice>,
    },
    /// Memory slices the node's shards filled from SSD: the master adds them as memory
    /// replicas.
    ReportPromoted {
        client_id: u64,
        entries: Vec<PromotedSlice>,
    },
    /// SSD records the node's shards dropped on their own: the master forgets them.
    ReportDropped {
        client_id: u64,
        entries: Vec<DroppedSlice>,
    },
    /// Copy `key` to a whole new replica on each segment named in `targets`
    /// (`docs/tasks.md`); answered with the new task.
    CreateCopyTask {
        key: String,
        targets: Vec<String>,
    },
    /// Move `key`'s replica on segment `source` to segment `target`.
    CreateMoveTask {
        key: String,
        source: String,
        target: String,
    },
    /// One task by id.
    QueryTask {
        id: u128,
    },
    /// A node asks for up to `max` of its pending tasks (they become processing).
    FetchTasks {
        client_id: u64,
        max: u32,
    },
    /// A node starts a fetched task: the master allocates the target replicas.
    TaskStart {
        client_id: u64,
        id: u128,
    },
    /// A node's outcome of a started task: the master commits or frees the targets.
    TaskEnd {
        client_id: u64,
        id: u128,
        outcome: TaskOutcome,
    },
    /// The most recent `max` tasks (tools).
    ListTasks {
        max: u32,
    },
    /// Client `client_id` drops the replicas of its objects `keys` on segment
    /// `segment_name` (all of them when empty) where no read lease runs; one status each.
    BatchReplicaClear {
        client_id: u64,
        keys: Vec<String>,
        segment_name: String,
    },
    /// Put credit (`docs/why-fast-path.md`): client `client_id` gives credit back
    /// (`release`, credit ids), commits puts it wrote into credit (`commits`, each item's
    /// generation naming its credit) and asks for more (`want`: (size, count) pairs placed
    /// with `config`), in that order. Answered by [`ResponseBody::CreditGrant`].
    PutCredit {
        client_id: u64,
        client_host: String,
        config: ReplicateConfig,
        commits: Vec<PutEndItem>,
        want: Vec<(u64, u32)>,
        release: Vec<u64>,
    },
}

/// Commit of one object written by PutStart's replicas.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PutEndItem {
    /// The key.
    pub key: String,
    /// CRC32C of each slice.
    pub slice_crcs: Vec<u32>,
    /// Indexes of replicas whose transfer failed; the master drops them.
    pub failed_replicas: Vec<u32>,
    /// Generation of the first slice PutStart returned (0 = unchecked).
    pub generation: u64,
}

impl Request {
    /// Name used in logs and metrics (`put_start`, ...).
    pub fn op_name(&self) -> &'static str {
        match self {
            Request::MountSegment { .. } => "mount_segment",
            Request::UnmountSegment { .. } => "unmount_segment",
            Request::Ping { .. } => "ping",
            Request::PutStart { .. } => "put_start",
            Request::PutEnd { .. } => "put_end",
            Request::PutRevoke { .. } => "put_revoke",
            Request::GetReplicaList { .. } => "get_replica_list",
            Request::ExistKey { .. } => "exist_key",
            Request::GetSize { .. } => "get_size",
            Request::Remove { .. } => "remove",
            Request::RemoveByRegex { .. } => "remove_by_regex",
            Request::RemoveAll { .. } => "remove_all",
            Request::DrainSegments { .. } => "drain_segments",
            Request::UpsertStart { .. } => "upsert_start",
            Request::UpsertEnd { .. } => "upsert_end",
            Request::UpsertRevoke { .. } => "upsert_revoke",
            Request::Sync { .. } => "sync",
            Request::ReportInventory { .. } => "report_inventory",
            Request::InventoryDone { .. } => "inventory_done",
            Request::ReportHits { .. } => "report_hits",
            Request::ReportOffloaded { .. } => "report_offloaded",
            Request::ReportPromoted { .. } => "report_promoted",
            Request::ReportDropped { .. } => "report_dropped",
            Request::CreateCopyTask { .. } => "create_copy_task",
            Request::CreateMoveTask { .. } => "create_move_task",
            Request::QueryTask { .. } => "query_task",
            Request::FetchTasks { .. } => "fetch_tasks",
            Request::TaskStart { .. } => "task_start",
            Request::TaskEnd { .. } => "task_end",
            Request::ListTasks { .. } => "list_tasks",
            Request::BatchReplicaClear { .. } => "batch_replica_clear",
            Request::PutCredit { .. } => "put_credit",
        }
    }
}

/// What the master tells a node about one slice in the node's object index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The put of this slice is committed.
    Commit {
        /// Segment.
        segment_id: u64,
        /// Offset of the slice.
        offset: u64,
        /// Its allocation's generation.
        generation: u64,
    },
    /// The slice's space was freed (removed, evicted, revoked, replaced): forget it. For a
    /// disk segment: delete the record durably (tombstone, fdatasync) before answering.
    Free {
        /// Segment.
        segment_id: u64,
        /// Offset of the slice.
        offset: u64,
        /// Its allocation's generation.
        generation: u64,
    },
    /// Copy this committed memory slice to the shard's SSD and report the copy
    /// (`Request::ReportOffloaded`) once it is durable.
    Offload {
        /// Segment holding the memory slice.
        segment_id: u64,
        /// Offset of the slice.
        offset: u64,
        /// Its allocation's generation.
        generation: u64,
        /// The master runs with `--enable_disk_eviction`: when the shard's SSD quota is
        /// reached, delete its oldest records to make room rather than refuse the copy.
        evict_oldest: bool,
    },
    /// Copy the SSD record at (`segment_id`, `offset`) (the disk segment, the record's
    /// location; the slice of `generation`) into the memory range the master allocated,
    /// and report it (`Request::ReportPromoted`).
    Promote {
        /// The shard's disk segment.
        segment_id: u64,
        /// The record's location.
        offset: u64,
        /// The record's slice generation.
        generation: u64,
        /// The memory segment to fill.
        target_segment_id: u64,
        /// Where in it.
        target_offset: u64,
        /// The new range's allocation generation.
        target_generation: u64,
    },
}

/// An SSD record a shard dropped on its own (corrupt on read, or disk eviction).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DroppedSlice {
    /// The object's key.
    pub key: String,
    /// The shard's disk segment.
    pub segment_id: u64,
    /// The record's location.
    pub offset: u64,
    /// The record's slice generation.
    pub generation: u64,
}

/// A memory slice a shard filled from its SSD (answer to a [`Notice::Promote`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PromotedSlice {
    /// The object's key.
    pub key: String,
    /// The put the slice belongs to.
    pub put_generation: u64,
    /// The memory segment filled.
    pub segment_id: u64,
    /// Where in it.
    pub offset: u64,
    /// The range's allocation generation.
    pub generation: u64,
}

impl Notice {
    /// The segment the notice is about.
    pub fn segment_id(&self) -> u64 {
        match *self {
            Notice::Commit { segment_id, .. }
            | Notice::Free { segment_id, .. }
            | Notice::Offload { segment_id, .. }
            | Notice::Promote { segment_id, .. } => segment_id,
        }
    }
}

/// One slice a node holds, as it reports it to a master that does not know it
/// (`docs/node-index.md`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InventoryEntry {
    /// The object's key.
    pub key: String,
    /// Segment holding the slice.
    pub segment_id: u64,
    /// First byte.
    pub offset: u64,
    /// Bytes of the slice.
    pub length: u64,
    /// The allocation's generation.
    pub generation: u64,
    /// Generation naming the put.
    pub put_generation: u64,
    /// Bytes of the whole value.
    pub object_size: u64,
    /// Index of the slice in its replica.
    pub slice_index: u32,
    /// Slices per replica.
    pub slice_count: u32,
    /// CRC32C of the slice.
    pub crc32c: u32,
    /// Index of the replica in the put.
    pub replica_index: u32,
    /// Pin bits: 1 hard, 2 soft.
    pub pins: u32,
    /// Whether the master had committed the put (as far as the node heard).
    pub committed: bool,
}

/// Outcome of PutStart for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutStartResult {
    /// 0 or a Mooncake error code.
    pub status: i32,
    /// Where to write, one entry per placed replica.
    pub replicas: Vec<ReplicaDesc>,
}

/// Outcome of GetReplicaList for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaListResult {
    /// 0 or a Mooncake error code.
    pub status: i32,
    /// Object size in bytes.
    pub size: u64,
    /// Complete replicas.
    pub replicas: Vec<ReplicaDesc>,
    /// CRC32C of each slice, as recorded at PutEnd.
    pub slice_crcs: Vec<u32>,
}

/// The body of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseBody {
    /// Nothing beyond the status.
    Unit,
    /// Answer to Ping.
    PingAck {
        /// False when the master does not know the client (e.g. after a restart): re-mount.
        client_known: bool,
        /// Version of the master view.
        view_version: u64,
        /// Port of the master's admin HTTP on its host (0 = unknown), so tools find it.
        admin_port: u16,
        /// Bytes of all mounted segments.
        capacity_bytes: u64,
        /// Bytes allocated in them.
        allocated_bytes: u64,
        /// Allocated bytes at which background eviction starts.
        eviction_high_watermark_bytes: u64,
        /// The write-token secret the caller's shards must hold (the one a rotation hands
        /// over, else the one the master signs with); sent only to nodes with mounted
        /// segments, empty for anyone else and from masters that predate the field.
        write_secret: Vec<u8>,
    },
    /// Per-key PutStart outcomes.
    PutStart(Vec<PutStartResult>),
    /// PutCredit's answer: one status per commit, and the credit granted.
    CreditGrant {
        /// One code per commit, in order.
        codes: Vec<i32>,
        /// New credit, in the order asked (fewer when space ran short).
        credits: Vec<Credit>,
    },
    /// Per-key status codes.
    Statuses(Vec<i32>),
    /// Per-key replica lists.
    ReplicaLists(Vec<ReplicaListResult>),
    /// Per-key values (ExistKey: 1 / 0 / negative code; GetSize: size or negative code).
    Values(Vec<i64>),
    /// A count (RemoveByRegex, RemoveAll).
    Count(u64),
    /// Answer to Sync: notices up to `seq` from the master of `term`.
    Notices {
        /// The master's term.
        term: u64,
        /// Sequence number of the last notice (the batch ends there).
        seq: u64,
        /// The notices, oldest first.
        notices: Vec<Notice>,
    },
    /// Answer to MountSegment: the master's term and the key of its write tokens.
    MountAck {
        /// The master's term.
        term: u64,
        /// Secret the shards check write tokens with (empty: the master signs none).
        write_secret: Vec<u8>,
    },
    /// Tasks (a created or queried one, those fetched, or a listing).
    Tasks(Vec<TaskInfo>),
    /// Answer to TaskStart (boxed: it is the largest body).
    TaskCopy(Box<TaskCopy>),
}

/// An answer from the master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Whole-request status (0 = OK).
    pub status: i32,
    /// Human-readable detail for a failed request.
    pub message: String,
    /// Result body.
    pub body: ResponseBody,
    /// The leader's RPC address, from a master that is not serving (see
    /// [`Response::not_leader`]); empty otherwise, and when it knows no leader.
    pub leader_address: String,
}

impl Response {
    /// A failed answer.
    pub fn error(status: i32, message: impl Into<String>) -> Response {
        Response {
            status,
            message: message.into(),
            body: ResponseBody::Unit,
            leader_address: String::new(),
        }
    }

    /// The answer of a master that does not serve requests now: UNAVAILABLE_IN_CURRENT_STATUS
    /// (-1010, what Mooncake answers when no master serves), naming the leader it knows of
    /// (`""` = none known) so the caller can redirect without waiting for the coordinator.
    pub fn not_leader(leader_address: &str, message: impl Into<String>) -> Response {
        Response {
            leader_address: leader_address.to_string(),
            ..Response::error(ErrorCode::UnavailableInCurrentStatus.code(), message)
        }
    }

    /// Whether this is a [`Response::not_leader`] answer: the request was not executed, and
    /// may be sent again to the leader.
    pub fn is_not_leader(&self) -> bool {
        self.status == ErrorCode::UnavailableInCurrentStatus.code()
    }

    /// A successful answer.
    pub fn ok(body: ResponseBody) -> Response {
        Response {
            status: 0,
            message: String::new(),
            body,
            leader_address: String::new(),
        }
    }
}

fn verifier_opts() -> VerifierOptions {
    VerifierOptions {
        max_depth: 16,
        max_tables: 4_000_000,
        max_apparent_size: crate::limits::MAX_RPC_FRAME_BYTES as usize,
        ignore_missing_null_terminator: false,
    }
}

type Fbb<'b> = FlatBufferBuilder<'b>;

/// A reusable flatbuffers builder for [`encode_request`] / [`encode_response`].
pub type Builder = FlatBufferBuilder<'static>;
type StrVec<'b> = WIPOffset<Vector<'b, ForwardsUOffset<&'b str>>>;

fn enc_strs<'b>(fbb: &mut Fbb<'b>, v: &[String]) -> StrVec<'b> {
    let offs: Vec<_> = v.iter().map(|s| fbb.create_string(s)).collect();
    fbb.create_vector(&offs)
}

fn enc_keys<'b>(fbb: &mut Fbb<'b>, keys: &[String], force: bool) -> WIPOffset<fb::KeyList<'b>> {
    let keys = enc_strs(fbb, keys);
    fb::KeyList::create(
        fbb,
        &fb::KeyListArgs {
            keys: Some(keys),
            force,
        },
    )
}

fn enc_token(t: &WriteToken) -> fb::WriteToken {
    let half = |i: usize| u64::from_le_bytes(t.mac[i..i + 8].try_into().expect("8 bytes"));
    fb::WriteToken::new(
        t.range_offset,
        t.range_length,
        t.expires_unix_ms,
        half(0),
        half(8),
    )
}

fn dec_token(t: &fb::WriteToken) -> WriteToken {
    let mut mac = [0u8; crate::token::MAC_BYTES];
    mac[..8].copy_from_slice(&t.mac_lo().to_le_bytes());
    mac[8..].copy_from_slice(&t.mac_hi().to_le_bytes());
    WriteToken {
        range_offset: t.range_offset(),
        range_length: t.range_length(),
        expires_unix_ms: t.expires_unix_ms(),
        mac,
    }
}

fn enc_replica<'b>(fbb: &mut Fbb<'b>, r: &ReplicaDesc) -> WIPOffset<fb::Replica<'b>> {
    let slices: Vec<_> = r
        .slices
        .iter()
        .map(|s| {
            let endpoint = fbb.create_string(&s.endpoint);
            fb::Slice::create(
                fbb,
                &fb::SliceArgs {
                    segment_id: s.segment_id,
                    endpoint: Some(endpoint),
                    offset: s.offset,
                    length: s.length,
                    generation: s.generation,
                    token: s.token.as_ref().map(enc_token).as_ref(),
                },
            )
        })
        .collect();
    let slices = fbb.create_vector(&slices);
    fb::Replica::create(
        fbb,
        &fb::ReplicaArgs {
            slices: Some(slices),
            status: r.complete as u8,
            kind: match r.kind {
                ReplicaKind::Memory => 0,
                ReplicaKind::LocalDisk => 1,
            },
        },
    )
}

fn enc_replicas<'b>(
    fbb: &mut Fbb<'b>,
    rs: &[ReplicaDesc],
) -> WIPOffset<Vector<'b, ForwardsUOffset<fb::Replica<'b>>>> {
    let v: Vec<_> = rs.iter().map(|r| enc_replica(fbb, r)).collect();
    fbb.create_vector(&v)
}

fn enc_config<'b>(fbb: &mut Fbb<'b>, c: &ReplicateConfig) -> WIPOffset<fb::ReplicateConfig<'b>> {
    let preferred = enc_strs(fbb, &c.preferred_segments);
    fb::ReplicateConfig::create(
        fbb,
        &fb::ReplicateConfigArgs {
            replica_num: c.replica_num,
            preferred_segments: Some(preferred),
            with_hard_pin: c.with_hard_pin,
            soft_pin_action: c.soft_pin_action as u8,
            soft_pin_ttl_ms: c.soft_pin_ttl_ms,
        },
    )
}

fn enc_put_start<'b>(
    fbb: &mut Fbb<'b>,
    client_id: u64,
    client_host: &str,
    items: &[(String, u64)],
    config: &ReplicateConfig,
) -> WIPOffset<fb::PutStart<'b>> {
    let client_host = fbb.create_string(client_host);
    let items: Vec<_> = items
        .iter()
        .map(|(k, len)| {
            let key = fbb.create_string(k);
            fb::PutStartItem::create(
                fbb,
                &fb::PutStartItemArgs {
                    key: Some(key),
                    value_length: *len,
                },
            )
        })
        .collect();
    let items = fbb.create_vector(&items);
    let config = enc_config(fbb, config);
    fb::PutStart::create(
        fbb,
        &fb::PutStartArgs {
            client_id,
            items: Some(items),
            config: Some(config),
            client_host: Some(client_host),
        },
    )
}

fn enc_put_end_items<'b>(
    fbb: &mut Fbb<'b>,
    items: &[PutEndItem],
) -> WIPOffset<Vector<'b, ForwardsUOffset<fb::PutEndItem<'b>>>> {
    let items: Vec<_> = items
        .iter()
        .map(|i| {
            let key = fbb.create_string(&i.key);
            let crcs = fbb.create_vector(&i.slice_crcs);
            let failed = fbb.create_vector(&i.failed_replicas);
            fb::PutEndItem::create(
                fbb,
                &fb::PutEndItemArgs {
                    key: Some(key),
                    slice_crcs: Some(crcs),
                    failed_replicas: Some(failed),
                    generation: i.generation,
                },
            )
        })
        .collect();
    fbb.create_vector(&items)
}

fn enc_put_end<'b>(fbb: &mut Fbb<'b>, items: &[PutEndItem]) -> WIPOffset<fb::PutEnd<'b>> {
    let items = enc_put_end_items(fbb, items);
    fb::PutEnd::create(fbb, &fb::PutEndArgs { items: Some(items) })
}

/// A request's body table: the union tag and the table's offset.
type RequestBody = (fb::RequestBody, WIPOffset<UnionWIPOffset>);

/// Encodes `req` into `fbb` (reset first) and returns the finished bytes.
pub fn encode_request<'a>(fbb: &'a mut Fbb<'static>, term: u64, req: &Request) -> &'a [u8] {
    fbb.reset();
    let (body_type, body) = enc_request_body(fbb, req);
    let root = fb::Request::create(
        fbb,
        &fb::RequestArgs {
            term,
            body_type,
            body: Some(body),
        },
    );
    fbb.finish(root, None);
    fbb.finished_data()
}

/// The body table of `req`. One exhaustive match, so a new request cannot go unencoded;
/// each arm hands its fields to the encoder of its table.
fn enc_request_body(fbb: &mut Fbb<'_>, req: &Request) -> RequestBody {
    use fb::RequestBody as B;
    match req {
        // A node joining, heartbeating and leaving.
        Request::MountSegment {
            client_id,
            segment_id,
            name,
            host,
            endpoint,
            size,
            term_seen,
            reports_inventory,
            disk,
        } => (
            B::MountSegment,
            enc_mount_segment(
                fbb,
                *client_id,
                *segment_id,
                [name, host, endpoint],
                *size,
                (*term_seen, *reports_inventory, *disk),
            ),
        ),
        Request::UnmountSegment {
            client_id,
            segment_id,
        } => (
            B::UnmountSegment,
            enc_unmount_segment(fbb, *client_id, *segment_id),
        ),
        Request::Ping { client_id } => (B::Ping, enc_ping(fbb, *client_id)),
        Request::DrainSegments {
            client_id,
            segment_ids,
        } => (
            B::DrainSegments,
            enc_drain_segments(fbb, *client_id, segment_ids),
        ),
        // Writes: space first, then the commit.
        Request::PutStart {
            client_id,
            client_host,
            items,
            config,
        } => (
            B::PutStart,
            enc_put_start(fbb, *client_id, client_host, items, config).as_union_value(),
        ),
        Request::UpsertStart {
            client_id,
            client_host,
            items,
            config,
        } => (
            B::UpsertStart,
            enc_put_start(fbb, *client_id, client_host, items, config).as_union_value(),
        ),
        Request::PutEnd { items } => (B::PutEnd, enc_put_end(fbb, items).as_union_value()),
        Request::UpsertEnd { items } => (B::UpsertEnd, enc_put_end(fbb, items).as_union_value()),
        // Everything else that names keys carries a key list.
        Request::UpsertRevoke { keys } => (B::UpsertRevoke, enc_key_list(fbb, keys, false)),
        Request::PutRevoke { keys } => (B::PutRevoke, enc_key_list(fbb, keys, false)),
        Request::GetReplicaList { keys } => (B::GetReplicaList, enc_key_list(fbb, keys, false)),
        Request::ExistKey { keys } => (B::ExistKey, enc_key_list(fbb, keys, false)),
        Request::GetSize { keys } => (B::GetSize, enc_key_list(fbb, keys, false)),
        Request::Remove { keys, force } => (B::Remove, enc_key_list(fbb, keys, *force)),
        // Removal by pattern.
        Request::RemoveByRegex { regex, force } => {
            (B::RemoveByRegex, enc_remove_by_regex(fbb, regex, *force))
        }
        Request::RemoveAll { force } => (B::RemoveAll, enc_remove_all(fbb, *force)),
        // The node index: notices and inventories.
        Request::Sync {
            client_id,
            acked_seq,
            acked_term,
        } => (
            B::Sync,
            node_index::enc_sync(fbb, *client_id, *acked_seq, *acked_term),
        ),
        Request::ReportInventory { client_id, entries } => (
            B::ReportInventory,
            node_index::enc_report(fbb, *client_id, entries),
        ),
        Request::InventoryDone { client_id } => {
            (B::InventoryDone, node_index::enc_done(fbb, *client_id))
        }
        Request::ReportHits { client_id, keys } => {
            (B::ReportHits, node_index::enc_hits(fbb, *client_id, keys))
        }
        Request::ReportOffloaded { client_id, entries } => (
            B::ReportOffloaded,
            node_index::enc_offloaded(fbb, *client_id, entries),
        ),
        Request::ReportPromoted { client_id, entries } => (
            B::ReportPromoted,
            node_index::enc_promoted(fbb, *client_id, entries),
        ),
        Request::ReportDropped { client_id, entries } => (
            B::ReportDropped,
            node_index::enc_dropped(fbb, *client_id, entries),
        ),
        // Copy and move tasks.
        Request::CreateCopyTask { .. }
        | Request::CreateMoveTask { .. }
        | Request::QueryTask { .. }
        | Request::FetchTasks { .. }
        | Request::TaskStart { .. }
        | Request::TaskEnd { .. }
        | Request::ListTasks { .. }
        | Request::BatchReplicaClear { .. } => {
            tasks::enc_request(fbb, req).expect("a replica-management request")
        }
        Request::PutCredit { .. } => credit::enc_request(fbb, req).expect("a credit request"),
    }
}

/// `MountSegment`: a node offers one segment.
fn enc_mount_segment(
    fbb: &mut Fbb<'_>,
    client_id: u64,
    segment_id: u64,
    [name, host, endpoint]: [&String; 3],
    size_bytes: u64,
    (term_seen, reports_inventory, disk): (u64, bool, bool),
) -> WIPOffset<UnionWIPOffset> {
    let name = fbb.create_string(name);
    let host = fbb.create_string(host);
    let endpoint = fbb.create_string(endpoint);
    let args = fb::MountSegmentArgs {
        client_id,
        segment_id,
        name: Some(name),
        host: Some(host),
        endpoint: Some(endpoint),
        size_bytes,
        term_seen,
        reports_inventory,
        disk,
    };
    fb::MountSegment::create(fbb, &args).as_union_value()
}

/// `UnmountSegment`: a node takes one segment back.
fn enc_unmount_segment(
    fbb: &mut Fbb<'_>,
    client_id: u64,
    segment_id: u64,
) -> WIPOffset<UnionWIPOffset> {
    let args = fb::UnmountSegmentArgs {
        client_id,
        segment_id,
    };
    fb::UnmountSegment::create(fbb, &args).as_union_value()
}

/// `Ping`: a node's heartbeat.
fn enc_ping(fbb: &mut Fbb<'_>, client_id: u64) -> WIPOffset<UnionWIPOffset> {
    fb::Ping::create(fbb, &fb::PingArgs { client_id }).as_union_value()
}

/// `DrainSegments`: a node is leaving; nothing new goes to these segments.
fn enc_drain_segments(
    fbb: &mut Fbb<'_>,
    client_id: u64,
    segment_ids: &[u64],
) -> WIPOffset<UnionWIPOffset> {
    let ids = fbb.create_vector(segment_ids);
    let args = fb::DrainSegmentsArgs {
        client_id,
        segment_ids: Some(ids),
    };
    fb::DrainSegments::create(fbb, &args).as_union_value()
}

/// A key list (every per-key request but the writes).
fn enc_key_list(fbb: &mut Fbb<'_>, keys: &[String], force: bool) -> WIPOffset<UnionWIPOffset> {
    enc_keys(fbb, keys, force).as_union_value()
}

/// `RemoveByRegex`: remove every key matching `regex`.
fn enc_remove_by_regex(fbb: &mut Fbb<'_>, regex: &str, force: bool) -> WIPOffset<UnionWIPOffset> {
    let regex = fbb.create_string(regex);
    let args = fb::RemoveByRegexArgs {
        regex: Some(regex),
        force,
    };
    fb::RemoveByRegex::create(fbb, &args).as_union_value()
}

/// `RemoveAll`: remove every key.
fn enc_remove_all(fbb: &mut Fbb<'_>, force: bool) -> WIPOffset<UnionWIPOffset> {
    fb::RemoveAll::create(fbb, &fb::RemoveAllArgs { force }).as_union_value()
}

fn missing(what: &str) -> SchemaError {
    SchemaError::Invalid(format!("request body does not match its type ({what})"))
}

fn dec_strs(v: Option<Vector<'_, ForwardsUOffset<&str>>>) -> Vec<String> {
    v.map(|v| v.iter().map(str::to_string).collect())
        .unwrap_or_default()
}

fn dec_keys(k: Option<fb::KeyList<'_>>, what: &str) -> Result<(Vec<String>, bool), SchemaError> {
    let k = k.ok_or_else(|| missing(what))?;
    Ok((dec_strs(k.keys()), k.force()))
}

fn dec_replicas(v: Option<Vector<'_, ForwardsUOffset<fb::Replica<'_>>>>) -> Vec<ReplicaDesc> {
    let Some(v) = v else { return Vec::new() };
    v.iter()
        .map(|r| ReplicaDesc {
            complete: r.status() == 1,
            kind: if r.kind() == 1 {
                ReplicaKind::LocalDisk
            } else {
                ReplicaKind::Memory
            },
            slices: r
                .slices()
                .map(|s| {
                    s.iter()
                        .map(|s| SliceDesc {
                            segment_id: s.segment_id(),
                            endpoint: s.endpoint().unwrap_or_default().to_string(),
                            offset: s.offset(),
                            length: s.length(),
                            generation: s.generation(),
                            token: s.token().map(dec_token),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

type PutStartParts = (u64, String, Vec<(String, u64)>, ReplicateConfig);

fn dec_put_start(p: fb::PutStart<'_>) -> PutStartParts {
    let items = p
        .items()
        .map(|v| {
            v.iter()
                .map(|i| (i.key().unwrap_or_default().to_string(), i.value_length()))
                .collect()
        })
        .unwrap_or_default();
    (
        p.client_id(),
        p.client_host().unwrap_or_default().to_string(),
        items,
        dec_config(p.config()),
    )
}

fn dec_config(c: Option<fb::ReplicateConfig<'_>>) -> ReplicateConfig {
    c.map(|c| ReplicateConfig {
        replica_num: c.replica_num(),
        preferred_segments: dec_strs(c.preferred_segments()),
        with_hard_pin: c.with_hard_pin(),
        soft_pin_action: SoftPinAction::from_u8(c.soft_pin_action()),
        soft_pin_ttl_ms: c.soft_pin_ttl_ms(),
    })
    .unwrap_or_default()
}

fn dec_put_end_items(
    v: Option<Vector<'_, ForwardsUOffset<fb::PutEndItem<'_>>>>,
) -> Vec<PutEndItem> {
    v.map(|v| {
        v.iter()
            .map(|i| PutEndItem {
                key: i.key().unwrap_or_default().to_string(),
                slice_crcs: i
                    .slice_crcs()
                    .map(|c| c.iter().collect())
                    .unwrap_or_default(),
                failed_replicas: i
                    .failed_replicas()
                    .map(|c| c.iter().collect())
                    .unwrap_or_default(),
                generation: i.generation(),
            })
            .collect()
    })
    .unwrap_or_default()
}

fn dec_put_end(p: fb::PutEnd<'_>) -> Vec<PutEndItem> {
    dec_put_end_items(p.items())
}

/// Decodes a request payload into (term, request).
pub fn decode_request(buf: &[u8]) -> Result<(u64, Request), SchemaError> {
    let r = flatbuffers::root_with_opts::<fb::Request>(&verifier_opts(), buf)
        .map_err(|e| SchemaError::Flatbuffer(Box::new(e)))?;
    Ok((r.term(), dec_request_body(&r)?))
}

/// The request in the body of `r`, which the verifier has checked: a body whose table does
/// not match its tag, or an unknown tag, is an error.
fn dec_request_body(r: &fb::Request<'_>) -> Result<Request, SchemaError> {
    use fb::RequestBody as B;
    Ok(match r.body_type() {
        // A node joining, heartbeating and leaving.
        B::MountSegment => {
            dec_mount_segment(r.body_as_mount_segment().ok_or_else(|| missing("mount"))?)
        }
        B::UnmountSegment => {
            let m = r
                .body_as_unmount_segment()
                .ok_or_else(|| missing("unmount"))?;
            Request::UnmountSegment {
                client_id: m.client_id(),
                segment_id: m.segment_id(),
            }
        }
        B::Ping => Request::Ping {
            client_id: r.body_as_ping().ok_or_else(|| missing("ping"))?.client_id(),
        },
        B::DrainSegments => dec_drain_segments(
            r.body_as_drain_segments()
                .ok_or_else(|| missing("drain_segments"))?,
        ),
        // Writes: space first, then the commit.
        B::PutStart => {
            let (client_id, client_host, items, config) =
                dec_put_start(r.body_as_put_start().ok_or_else(|| missing("put_start"))?);
            Request::PutStart {
                client_id,
                client_host,
                items,
                config,
            }
        }
        B::UpsertStart => {
            let (client_id, client_host, items, config) = dec_put_start(
                r.body_as_upsert_start()
                    .ok_or_else(|| missing("upsert_start"))?,
            );
            Request::UpsertStart {
                client_id,
                client_host,
                items,
                config,
            }
        }
        B::PutEnd => Request::PutEnd {
            items: dec_put_end(r.body_as_put_end().ok_or_else(|| missing("put_end"))?),
        },
        B::UpsertEnd => Request::UpsertEnd {
            items: dec_put_end(
                r.body_as_upsert_end()
                    .ok_or_else(|| missing("upsert_end"))?,
            ),
        },
        // Key lists, and removal by pattern.
        B::UpsertRevoke
        | B::PutRevoke
        | B::GetReplicaList
        | B::ExistKey
        | B::GetSize
        | B::Remove => dec_key_request(r)?,
        B::RemoveByRegex => {
            let m = r
                .body_as_remove_by_regex()
                .ok_or_else(|| missing("remove_by_regex"))?;
            Request::RemoveByRegex {
                regex: m.regex().unwrap_or_default().to_string(),
                force: m.force(),
            }
        }
        B::RemoveAll => Request::RemoveAll {
            force: r
                .body_as_remove_all()
                .ok_or_else(|| missing("remove_all"))?
                .force(),
        },
        B::Sync
        | B::ReportInventory
        | B::InventoryDone
        | B::ReportHits
        | B::ReportOffloaded
        | B::ReportPromoted
        | B::ReportDropped => node_index::dec_request(r)?,
        B::CreateCopyTask
        | B::CreateMoveTask
        | B::QueryTask
        | B::FetchTasks
        | B::TaskStart
        | B::TaskEnd
        | B::ListTasks
        | B::BatchReplicaClear => tasks::dec_request(r)?,
        B::PutCredit => credit::dec_request(r)?,
        other => return Err(unknown_request(other)),
    })
}

/// A request tag this version does not know (a newer peer, or garbage that verified).
fn unknown_request(t: fb::RequestBody) -> SchemaError {
    SchemaError::Invalid(format!("unknown request type {}", t.0))
}

/// `MountSegment`: a node offers one segment.
fn dec_mount_segment(m: fb::MountSegment<'_>) -> Request {
    Request::MountSegment {
        client_id: m.client_id(),
        segment_id: m.segment_id(),
        name: m.name().unwrap_or_default().to_string(),
        host: m.host().unwrap_or_default().to_string(),
        endpoint: m.endpoint().unwrap_or_default().to_string(),
        size: m.size_bytes(),
        term_seen: m.term_seen(),
        reports_inventory: m.reports_inventory(),
        disk: m.disk(),
    }
}

/// `DrainSegments`: a node is leaving; nothing new goes to these segments.
fn dec_drain_segments(d: fb::DrainSegments<'_>) -> Request {
    Request::DrainSegments {
        client_id: d.client_id(),
        segment_ids: d
            .segment_ids()
            .map(|v| v.iter().collect())
            .unwrap_or_default(),
    }
}

/// The requests whose body is a key list.
fn dec_key_request(r: &fb::Request<'_>) -> Result<Request, SchemaError> {
    use fb::RequestBody as B;
    Ok(match r.body_type() {
        B::UpsertRevoke => Request::UpsertRevoke {
            keys: dec_keys(r.body_as_upsert_revoke(), "upsert_revoke")?.0,
        },
        B::PutRevoke => Request::PutRevoke {
            keys: dec_keys(r.body_as_put_revoke(), "put_revoke")?.0,
        },
        B::GetReplicaList => Request::GetReplicaList {
            keys: dec_keys(r.body_as_get_replica_list(), "get_replica_list")?.0,
        },
        B::ExistKey => Request::ExistKey {
            keys: dec_keys(r.body_as_exist_key(), "exist_key")?.0,
        },
        B::GetSize => Request::GetSize {
            keys: dec_keys(r.body_as_get_size(), "get_size")?.0,
        },
        B::Remove => {
            let (keys, force) = dec_keys(r.body_as_remove(), "remove")?;
            Request::Remove { keys, force }
        }
        other => return Err(unknown_request(other)),
    })
}

/// Encodes `resp` into `fbb` (reset first) and returns the finished bytes.
pub fn encode_response<'a>(fbb: &'a mut Fbb<'static>, resp: &Response) -> &'a [u8] {
    fbb.reset();
    let (body_type, body) = match &resp.body {
        ResponseBody::Unit => (
            fb::ResponseBody::Unit,
            fb::Unit::create(fbb, &fb::UnitArgs {}).as_union_value(),
        ),
        ResponseBody::PingAck {
            client_known,
            view_version,
            admin_port,
            capacity_bytes,
            allocated_bytes,
            eviction_high_watermark_bytes,
            write_secret,
        } => {
            // Absent rather than empty, so answers to tools and clients stay as they were.
            let write_secret = (!write_secret.is_empty()).then(|| fbb.create_vector(write_secret));
            let t = fb::PingAck::create(
                fbb,
                &fb::PingAckArgs {
                    client_known: *client_known,
                    view_version: *view_version,
                    admin_port: *admin_port,
                    capacity_bytes: *capacity_bytes,
                    allocated_bytes: *allocated_bytes,
                    eviction_high_watermark_bytes: *eviction_high_watermark_bytes,
                    write_secret,
                },
            );
            (fb::ResponseBody::PingAck, t.as_union_value())
        }
        ResponseBody::PutStart(results) => {
            let v: Vec<_> = results
                .iter()
                .map(|r| {
                    let replicas = enc_replicas(fbb, &r.replicas);
                    fb::PutStartResult::create(
                        fbb,
                        &fb::PutStartResultArgs {
                            status: r.status,
                            replicas: Some(replicas),
                        },
                    )
                })
                .collect();
            let v = fbb.create_vector(&v);
            let t = fb::PutStartResults::create(fbb, &fb::PutStartResultsArgs { results: Some(v) });
            (fb::ResponseBody::PutStartResults, t.as_union_value())
        }
        ResponseBody::Statuses(codes) => {
            let v = fbb.create_vector(codes);
            let t = fb::StatusList::create(fbb, &fb::StatusListArgs { codes: Some(v) });
            (fb::ResponseBody::StatusList, t.as_union_value())
        }
        ResponseBody::ReplicaLists(results) => {
            let v: Vec<_> = results
                .iter()
                .map(|r| {
                    let replicas = enc_replicas(fbb, &r.replicas);
                    let crcs = fbb.create_vector(&r.slice_crcs);
                    fb::ReplicaListResult::create(
                        fbb,
                        &fb::ReplicaListResultArgs {
                            status: r.status,
                            size_bytes: r.size,
                            replicas: Some(replicas),
                            slice_crcs: Some(crcs),
                        },
                    )
                })
                .collect();
            let v = fbb.create_vector(&v);
            let t = fb::ReplicaLists::create(fbb, &fb::ReplicaListsArgs { results: Some(v) });
            (fb::ResponseBody::ReplicaLists, t.as_union_value())
        }
        ResponseBody::Values(values) => {
            let v = fbb.create_vector(values);
            let t = fb::ValueList::create(fbb, &fb::ValueListArgs { values: Some(v) });
            (fb::ResponseBody::ValueList, t.as_union_value())
        }
        ResponseBody::Count(count) => {
            let t = fb::Count::create(fbb, &fb::CountArgs { count: *count });
            (fb::ResponseBody::Count, t.as_union_value())
        }
        ResponseBody::Notices { term, seq, notices } => (
            fb::ResponseBody::Notices,
            node_index::enc_notices(fbb, *term, *seq, notices),
        ),
        ResponseBody::MountAck { term, write_secret } => {
            let write_secret = Some(fbb.create_vector(write_secret));
            let t = fb::MountAck::create(
                fbb,
                &fb::MountAckArgs {
                    term: *term,
                    write_secret,
                },
            );
            (fb::ResponseBody::MountAck, t.as_union_value())
        }
        ResponseBody::Tasks(_) | ResponseBody::TaskCopy(_) => {
            tasks::enc_response(fbb, &resp.body).expect("a task answer")
        }
        ResponseBody::CreditGrant { .. } => {
            credit::enc_response(fbb, &resp.body).expect("a credit answer")
        }
    };
    let message = (!resp.message.is_empty()).then(|| fbb.create_string(&resp.message));
    let leader_address =
        (!resp.leader_address.is_empty()).then(|| fbb.create_string(&resp.leader_address));
    let root = fb::Response::create(
        fbb,
        &fb::ResponseArgs {
            status: resp.status,
            message,
            body_type,
            body: Some(body),
            leader_address,
        },
    );
    fbb.finish(root, None);
    fbb.finished_data()
}

/// Decodes a response payload.
pub fn decode_response(buf: &[u8]) -> Result<Response, SchemaError> {
    let r = flatbuffers::root_with_opts::<fb::Response>(&verifier_opts(), buf)
        .map_err(|e| SchemaError::Flatbuffer(Box::new(e)))?;
    let bad = || SchemaError::Invalid("response body does not match its type".into());
    let body = match r.body_type() {
        fb::ResponseBody::NONE | fb::ResponseBody::Unit => ResponseBody::Unit,
        fb::ResponseBody::PingAck => {
            let p = r.body_as_ping_ack().ok_or_else(bad)?;
            ResponseBody::PingAck {
                client_known: p.client_known(),
                view_version: p.view_version(),
                admin_port: p.admin_port(),
                capacity_bytes: p.capacity_bytes(),
                allocated_bytes: p.allocated_bytes(),
                eviction_high_watermark_bytes: p.eviction_high_watermark_bytes(),
                write_secret: p
                    .write_secret()
                    .map(|v| v.iter().collect())
                    .unwrap_or_default(),
            }
        }
        fb::ResponseBody::PutStartResults => {
            let p = r.body_as_put_start_results().ok_or_else(bad)?;
            ResponseBody::PutStart(
                p.results()
                    .map(|v| {
                        v.iter()
                            .map(|x| PutStartResult {
                                status: x.status(),
                                replicas: dec_replicas(x.replicas()),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        }
        fb::ResponseBody::StatusList => {
            let p = r.body_as_status_list().ok_or_else(bad)?;
            ResponseBody::Statuses(p.codes().map(|c| c.iter().collect()).unwrap_or_default())
        }
        fb::ResponseBody::ReplicaLists => {
            let p = r.body_as_replica_lists().ok_or_else(bad)?;
            ResponseBody::ReplicaLists(
                p.results()
                    .map(|v| {
                        v.iter()
                            .map(|x| ReplicaListResult {
                                status: x.status(),
                                size: x.size_bytes(),
                                replicas: dec_replicas(x.replicas()),
                                slice_crcs: x
                                    .slice_crcs()
                                    .map(|c| c.iter().collect())
                                    .unwrap_or_default(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        }
        fb::ResponseBody::ValueList => {
            let p = r.body_as_value_list().ok_or_else(bad)?;
            ResponseBody::Values(p.values().map(|c| c.iter().collect()).unwrap_or_default())
        }
        fb::ResponseBody::Count => ResponseBody::Count(r.body_as_count().ok_or_else(bad)?.count()),
        fb::ResponseBody::Notices => node_index::dec_notices(r.body_as_notices().ok_or_else(bad)?),
        fb::ResponseBody::MountAck => {
            let m = r.body_as_mount_ack().ok_or_else(bad)?;
            ResponseBody::MountAck {
                term: m.term(),
                write_secret: m
                    .write_secret()
                    .map(|v| v.iter().collect())
                    .unwrap_or_default(),
            }
        }
        fb::ResponseBody::Tasks | fb::ResponseBody::TaskCopy => {
            tasks::dec_response(&r).ok_or_else(bad)?
        }
        fb::ResponseBody::CreditGrant => credit::dec_response(&r).ok_or_else(bad)?,
        other => {
            return Err(SchemaError::Invalid(format!(
                "unknown response type {}",
                other.0
            )));
        }
    };
    Ok(Response {
        status: r.status(),
        message: r.message().unwrap_or_default().to_string(),
        body,
        leader_address: r.leader_address().unwrap_or_default().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rt_req(req: Request) {
        let mut fbb = FlatBufferBuilder::new();
        let bytes = encode_request(&mut fbb, 42, &req).to_vec();
        assert_eq!(decode_request(&bytes).unwrap(), (42, req));
    }

    fn replica() -> ReplicaDesc {
        ReplicaDesc {
            complete: true,
            kind: ReplicaKind::LocalDisk,
            slices: vec![SliceDesc {
                segment_id: 5,
                endpoint: "127.0.0.1:9000".into(),
                offset: 64,
                length: 4096,
                generation: 9,
                token: Some(crate::token::WriteKey::new(b"0123456789abcdef").sign(
                    5,
                    9,
                    (64, 4096),
                    77,
                )),
            }],
        }
    }

    #[test]
    fn requests_round_trip() {
        let keys = vec!["a".to_string(), "b".to_string()];
        rt_req(Request::MountSegment {
            client_id: 1,
            segment_id: 2,
            name: "h:1".into(),
            host: "h".into(),
            endpoint: "h:1".into(),
            size: 1 << 30,
            term_seen: 4,
            reports_inventory: true,
            disk: false,
        });
        rt_req(Request::UnmountSegment {
            client_id: 1,
            segment_id: 2,
        });
        rt_req(Request::Ping { client_id: 7 });
        rt_req(Request::PutStart {
            client_id: 3,
            client_host: "h2".into(),
            items: vec![("k".into(), 10), ("j".into(), 1 << 33)],
            config: ReplicateConfig {
                replica_num: 2,
                preferred_segments: vec!["h:1".into()],
                with_hard_pin: true,
                soft_pin_action: SoftPinAction::Enable,
                soft_pin_ttl_ms: 99,
            },
        });
        rt_req(Request::PutEnd {
            items: vec![PutEndItem {
                key: "k".into(),
                slice_crcs: vec![1, 2, 3],
                failed_replicas: vec![1],
                generation: 77,
            }],
        });
        rt_req(Request::UpsertStart {
            client_id: 3,
            client_host: "h".into(),
            items: vec![("u".into(), 5)],
            config: ReplicateConfig::default(),
        });
        rt_req(Request::UpsertEnd {
            items: vec![PutEndItem {
                key: "u".into(),
                slice_crcs: vec![9],
                failed_replicas: vec![],
                generation: 3,
            }],
        });
        rt_req(Request::UpsertRevoke {
            keys: vec!["u".into()],
        });
        rt_req(Request::DrainSegments {
            client_id: 4,
            segment_ids: vec![5, 6],
        });
        rt_req(Request::PutRevoke { keys: keys.clone() });
        rt_req(Request::GetReplicaList { keys: keys.clone() });
        rt_req(Request::ExistKey { keys: keys.clone() });
        rt_req(Request::GetSize { keys: keys.clone() });
        rt_req(Request::Remove { keys, force: true });
        rt_req(Request::RemoveByRegex {
            regex: "^a.*".into(),
            force: false,
        });
        rt_req(Request::RemoveAll { force: true });
        rt_req(Request::Sync {
            client_id: 4,
            acked_seq: 10,
            acked_term: 2,
        });
        rt_req(Request::ReportInventory {
            client_id: 4,
            entries: vec![InventoryEntry {
                key: "layer/0".into(),
                segment_id: 5,
                offset: 4096,
                length: 100,
                generation: 7,
                put_generation: 7,
                object_size: 100,
                slice_index: 0,
                slice_count: 1,
                crc32c: 9,
                replica_index: 1,
                pins: 1,
                committed: true,
            }],
        });
        rt_req(Request::InventoryDone { client_id: 4 });
        rt_req(Request::ReportHits {
            client_id: 4,
            keys: vec!["a".into(), "b/c".into()],
        });
        rt_req(Request::ReportDropped {
            client_id: 4,
            entries: vec![DroppedSlice {
                key: "d".into(),
                segment_id: 1,
                offset: 1 << 40,
                generation: 3,
            }],
        });
        rt_req(Request::ReportPromoted {
            client_id: 4,
            entries: vec![PromotedSlice {
                key: "p".into(),
                put_generation: 1,
                segment_id: 2,
                offset: 3,
                generation: 4,
            }],
        });
        rt_req(Request::ReportOffloaded {
            client_id: 4,
            entries: vec![OffloadedSlice {
                key: "k".into(),
                put_generation: 1,
                slice_index: 1,
                slice_count: 2,
                source_segment_id: 3,
                source_offset: 4,
                disk_segment_id: 5,
                disk_offset: (1 << 40) | 8192,
                length: 6,
                generation: 7,
                crc32c: 8,
            }],
        });
        let id = (7u128 << 64) | 9;
        rt_req(Request::CreateCopyTask {
            key: "k".into(),
            targets: vec!["h:1".into(), "h:2".into()],
        });
        rt_req(Request::CreateMoveTask {
            key: "k".into(),
            source: "h:1".into(),
            target: "h:2".into(),
        });
        rt_req(Request::QueryTask { id });
        rt_req(Request::FetchTasks {
            client_id: 3,
            max: 8,
        });
        rt_req(Request::TaskStart { client_id: 3, id });
        rt_req(Request::TaskEnd {
            client_id: 3,
            id,
            outcome: TaskOutcome {
                ok: false,
                error_code: -800,
                message: "peer gone".into(),
                slice_crcs: vec![1, 2],
                failed_targets: vec![1],
            },
        });
        rt_req(Request::ListTasks { max: 100 });
        rt_req(Request::BatchReplicaClear {
            client_id: 5,
            keys: vec!["a".into(), "b".into()],
            segment_name: "h:1".into(),
        });
        rt_req(Request::PutCredit {
            client_id: 6,
            client_host: "h".into(),
            config: ReplicateConfig {
                replica_num: 2,
                ..Default::default()
            },
            commits: vec![PutEndItem {
                key: "k".into(),
                slice_crcs: vec![3],
                failed_replicas: vec![1],
                generation: 77,
            }],
            want: vec![(4096, 16), (1 << 20, 2)],
            release: vec![78, 79],
        });
    }

    #[test]
    fn responses_round_trip() {
        let bodies = vec![
            ResponseBody::Tasks(vec![TaskInfo {
                id: u128::MAX - 3,
                kind: TaskKind::ReplicaMove,
                state: TaskState::Processing,
                created_ms: 1_700_000_000_000,
                updated_ms: 1_700_000_000_500,
                assigned_client: 11,
                message: "m".into(),
                key: "k".into(),
                source: "h:1".into(),
                targets: vec!["h:2".into()],
                attempts: 2,
            }]),
            ResponseBody::TaskCopy(Box::new(TaskCopy {
                key: "k".into(),
                size: 4096,
                put_generation: 5,
                pins: 1,
                replica_base: 2,
                slice_crcs: vec![77],
                targets: vec![replica()],
                source_segment: "h:1".into(),
            })),
            ResponseBody::CreditGrant {
                codes: vec![0, -705],
                credits: vec![Credit {
                    size: 4096,
                    replicas: vec![replica()],
                    ttl_ms: 60_000,
                }],
            },
            ResponseBody::Unit,
            ResponseBody::PingAck {
                client_known: true,
                view_version: 3,
                admin_port: 9103,
                capacity_bytes: 512 << 20,
                allocated_bytes: 4096,
                eviction_high_watermark_bytes: 510 << 20,
                write_secret: vec![9; 32],
            },
            ResponseBody::PingAck {
                client_known: false,
                view_version: 0,
                admin_port: 0,
                capacity_bytes: 0,
                allocated_bytes: 0,
                eviction_high_watermark_bytes: 0,
                write_secret: Vec::new(),
            },
            ResponseBody::PutStart(vec![PutStartResult {
                status: 0,
                replicas: vec![replica()],
            }]),
            ResponseBody::Statuses(vec![0, -704]),
            ResponseBody::ReplicaLists(vec![ReplicaListResult {
                status: 0,
                size: 4096,
                replicas: vec![replica()],
                slice_crcs: vec![77],
            }]),
            ResponseBody::Values(vec![1, 0, -704]),
            ResponseBody::Count(12),
            ResponseBody::Notices {
                term: 3,
                seq: 99,
                notices: vec![
                    Notice::Commit {
                        segment_id: 1,
                        offset: 2,
                        generation: 3,
                    },
                    Notice::Free {
                        segment_id: 4,
                        offset: 5,
                        generation: 6,
                    },
                    Notice::Offload {
                        segment_id: 7,
                        offset: 8,
                        generation: 9,
                        evict_oldest: true,
                    },
                    Notice::Promote {
                        segment_id: 10,
                        offset: 11,
                        generation: 12,
                        target_segment_id: 13,
                        target_offset: 14,
                        target_generation: 15,
                    },
                ],
            },
            ResponseBody::MountAck {
                term: 8,
                write_secret: vec![1, 2, 3],
            },
        ];
        let mut fbb = FlatBufferBuilder::new();
        for body in bodies {
            let resp = Response::ok(body);
            let bytes = encode_response(&mut fbb, &resp).to_vec();
            assert_eq!(decode_response(&bytes).unwrap(), resp);
        }
        let e = Response::error(-600, "bad key");
        let bytes = encode_response(&mut fbb, &e).to_vec();
        assert_eq!(decode_response(&bytes).unwrap(), e);
        assert!(!e.is_not_leader());
        let standby = Response::not_leader("10.0.0.1:50051", "standby");
        let bytes = encode_response(&mut fbb, &standby).to_vec();
        let back = decode_response(&bytes).unwrap();
        assert_eq!(back, standby);
        assert!(back.is_not_leader());
        assert_eq!(
            (back.status, back.leader_address.as_str()),
            (-1010, "10.0.0.1:50051")
        );
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_request(&bytes);
            let _ = decode_response(&bytes);
        }

        #[test]
        fn mutated_requests_never_panic(pos in 0usize..400, val in any::<u8>()) {
            let mut fbb = FlatBufferBuilder::new();
            let req = Request::PutStart {
                client_id: 3,
                client_host: String::new(),
                items: vec![("key".into(), 10)],
                config: ReplicateConfig::default(),
            };
            let mut bytes = encode_request(&mut fbb, 1, &req).to_vec();
            let i = pos % bytes.len();
            bytes[i] = val;
            let _ = decode_request(&bytes);
        }
    }
}
