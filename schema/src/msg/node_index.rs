//! Codec of the node-index messages of the master RPC: `Sync` and its `Notices`,
//! `ReportInventory`, `InventoryDone` (`docs/node-index.md`), `ReportHits`
//! (`docs/why-fast-path.md`) and `ReportOffloaded` (`docs/why-ssd-format.md`).

use flatbuffers::{ForwardsUOffset, UnionWIPOffset, Vector, WIPOffset};

use super::{
    DroppedSlice, Fbb, InventoryEntry, Notice, OffloadedSlice, PromotedSlice, Request,
    ResponseBody, missing, unknown_request,
};
use crate::SchemaError;
use crate::generated::mc::proto as fb;

/// A finished vector of tables in a builder.
pub(crate) type FbVec<'b, T> = WIPOffset<Vector<'b, ForwardsUOffset<T>>>;

/// Kind byte of a commit notice.
const COMMIT: u8 = 1;
/// Kind byte of a free notice.
const FREE: u8 = 2;
/// Kind byte of an offload notice.
const OFFLOAD: u8 = 3;
/// Kind byte of a promote notice.
const PROMOTE: u8 = 4;

pub(super) fn enc_sync(
    fbb: &mut Fbb<'_>,
    client_id: u64,
    acked_seq: u64,
    acked_term: u64,
) -> WIPOffset<UnionWIPOffset> {
    let args = fb::SyncArgs {
        client_id,
        acked_seq,
        acked_term,
    };
    fb::Sync::create(fbb, &args).as_union_value()
}

pub(super) fn enc_report(
    fbb: &mut Fbb<'_>,
    client_id: u64,
    entries: &[InventoryEntry],
) -> WIPOffset<UnionWIPOffset> {
    let entries = enc_entries(fbb, entries);
    let args = fb::ReportInventoryArgs {
        client_id,
        entries: Some(entries),
    };
    fb::ReportInventory::create(fbb, &args).as_union_value()
}

/// A vector of inventory entries (also used by the agent ↔ shard codec).
pub(crate) fn enc_entries<'b>(
    fbb: &mut Fbb<'b>,
    entries: &[InventoryEntry],
) -> FbVec<'b, fb::InventoryEntryFb<'b>> {
    let v: Vec<_> = entries
        .iter()
        .map(|e| {
            let key = fbb.create_string(&e.key);
            fb::InventoryEntryFb::create(
                fbb,
                &fb::InventoryEntryFbArgs {
                    key: Some(key),
                    segment_id: e.segment_id,
                    offset: e.offset,
                    length: e.length,
                    generation: e.generation,
                    put_generation: e.put_generation,
                    object_size: e.object_size,
                    slice_index: e.slice_index,
                    slice_count: e.slice_count,
                    crc32c: e.crc32c,
                    replica_index: e.replica_index,
                    pins: e.pins,
                    committed: e.committed,
                },
            )
        })
        .collect();
    fbb.create_vector(&v)
}

pub(super) fn enc_done(fbb: &mut Fbb<'_>, client_id: u64) -> WIPOffset<UnionWIPOffset> {
    fb::InventoryDone::create(fbb, &fb::InventoryDoneArgs { client_id }).as_union_value()
}

pub(super) fn enc_hits(
    fbb: &mut Fbb<'_>,
    client_id: u64,
    keys: &[String],
) -> WIPOffset<UnionWIPOffset> {
    let v: Vec<_> = keys.iter().map(|k| fbb.create_string(k)).collect();
    let keys = fbb.create_vector(&v);
    let args = fb::ReportHitsArgs {
        client_id,
        keys: Some(keys),
    };
    fb::ReportHits::create(fbb, &args).as_union_value()
}

pub(super) fn enc_offloaded(
    fbb: &mut Fbb<'_>,
    client_id: u64,
    entries: &[OffloadedSlice],
) -> WIPOffset<UnionWIPOffset> {
    let entries = enc_offloaded_vec(fbb, entries);
    let args = fb::ReportOffloadedArgs {
        client_id,
        entries: Some(entries),
    };
    fb::ReportOffloaded::create(fbb, &args).as_union_value()
}

/// A vector of OffloadedFb tables (also used by the agent ↔ shard codec).
pub(crate) fn enc_offloaded_vec<'b>(
    fbb: &mut Fbb<'b>,
    entries: &[OffloadedSlice],
) -> FbVec<'b, fb::OffloadedFb<'b>> {
    let v: Vec<_> = entries
        .iter()
        .map(|e| {
            let key = fbb.create_string(&e.key);
            fb::OffloadedFb::create(
                fbb,
                &fb::OffloadedFbArgs {
                    key: Some(key),
                    put_generation: e.put_generation,
                    slice_index: e.slice_index,
                    slice_count: e.slice_count,
                    source_segment_id: e.source_segment_id,
                    source_offset: e.source_offset,
                    disk_segment_id: e.disk_segment_id,
                    disk_offset: e.disk_offset,
                    length: e.length,
                    generation: e.generation,
                    crc32c: e.crc32c,
                },
            )
        })
        .collect();
    fbb.create_vector(&v)
}

pub(super) fn enc_promoted(
    fbb: &mut Fbb<'_>,
    client_id: u64,
    entries: &[PromotedSlice],
) -> WIPOffset<UnionWIPOffset> {
    let entries = enc_promoted_vec(fbb, entries);
    let args = fb::ReportPromotedArgs {
        client_id,
        entries: Some(entries),
    };
    fb::ReportPromoted::create(fbb, &args).as_union_value()
}

/// A vector of PromotedFb tables (also used by the agent ↔ shard codec).
pub(crate) fn enc_promoted_vec<'b>(
    fbb: &mut Fbb<'b>,
    entries: &[PromotedSlice],
) -> FbVec<'b, fb::PromotedFb<'b>> {
    let v: Vec<_> = entries
        .iter()
        .map(|e| {
            let key = fbb.create_string(&e.key);
            fb::PromotedFb::create(
                fbb,
                &fb::PromotedFbArgs {
                    key: Some(key),
                    put_generation: e.put_generation,
                    segment_id: e.segment_id,
                    offset: e.offset,
                    generation: e.generation,
                },
            )
        })
        .collect();
    fbb.create_vector(&v)
}

pub(super) fn enc_dropped(
    fbb: &mut Fbb<'_>,
    client_id: u64,
    entries: &[DroppedSlice],
) -> WIPOffset<UnionWIPOffset> {
    let entries = enc_dropped_vec(fbb, entries);
    let args = fb::ReportDroppedArgs {
        client_id,
        entries: Some(entries),
    };
    fb::ReportDropped::create(fbb, &args).as_union_value()
}

/// A vector of DroppedFb tables (also used by the agent ↔ shard codec).
pub(crate) fn enc_dropped_vec<'b>(
    fbb: &mut Fbb<'b>,
    entries: &[DroppedSlice],
) -> FbVec<'b, fb::DroppedFb<'b>> {
    let v: Vec<_> = entries
        .iter()
        .map(|e| {
            let key = fbb.create_string(&e.key);
            fb::DroppedFb::create(
                fbb,
                &fb::DroppedFbArgs {
                    key: Some(key),
                    segment_id: e.segment_id,
                    offset: e.offset,
                    generation: e.generation,
                },
            )
        })
        .collect();
    fbb.create_vector(&v)
}

/// Decodes one element (also used by the agent ↔ shard codec).
pub(crate) fn dec_dropped(e: fb::DroppedFb<'_>) -> DroppedSlice {
    DroppedSlice {
        key: e.key().unwrap_or_default().to_string(),
        segment_id: e.segment_id(),
        offset: e.offset(),
        generation: e.generation(),
    }
}

/// Decodes one element (also used by the agent ↔ shard codec).
pub(crate) fn dec_promoted(e: fb::PromotedFb<'_>) -> PromotedSlice {
    PromotedSlice {
        key: e.key().unwrap_or_default().to_string(),
        put_generation: e.put_generation(),
        segment_id: e.segment_id(),
        offset: e.offset(),
        generation: e.generation(),
    }
}

/// Decodes one element (also used by the agent ↔ shard codec).
pub(crate) fn dec_offloaded(e: fb::OffloadedFb<'_>) -> OffloadedSlice {
    OffloadedSlice {
        key: e.key().unwrap_or_default().to_string(),
        put_generation: e.put_generation(),
        slice_index: e.slice_index(),
        slice_count: e.slice_count(),
        source_segment_id: e.source_segment_id(),
        source_offset: e.source_offset(),
        disk_segment_id: e.disk_segment_id(),
        disk_offset: e.disk_offset(),
        length: e.length(),
        generation: e.generation(),
        crc32c: e.crc32c(),
    }
}

/// `Sync`, `ReportInventory`, `InventoryDone`, `ReportHits` or `ReportOffloaded`.
pub(super) fn dec_request(r: &fb::Request<'_>) -> Result<Request, SchemaError> {
    use fb::RequestBody as B;
    Ok(match r.body_type() {
        B::Sync => {
            let m = r.body_as_sync().ok_or_else(|| missing("sync"))?;
            Request::Sync {
                client_id: m.client_id(),
                acked_seq: m.acked_seq(),
                acked_term: m.acked_term(),
            }
        }
        B::ReportInventory => {
            let m = r
                .body_as_report_inventory()
                .ok_or_else(|| missing("report_inventory"))?;
            Request::ReportInventory {
                client_id: m.client_id(),
                entries: m
                    .entries()
                    .map(|v| v.iter().map(dec_entry).collect())
                    .unwrap_or_default(),
            }
        }
        B::InventoryDone => Request::InventoryDone {
            client_id: r
                .body_as_inventory_done()
                .ok_or_else(|| missing("inventory_done"))?
                .client_id(),
        },
        B::ReportHits => {
            let m = r
                .body_as_report_hits()
                .ok_or_else(|| missing("report_hits"))?;
            Request::ReportHits {
                client_id: m.client_id(),
                keys: m
                    .keys()
                    .map(|v| v.iter().map(str::to_string).collect())
                    .unwrap_or_default(),
            }
        }
        B::ReportDropped => {
            let m = r
                .body_as_report_dropped()
                .ok_or_else(|| missing("report_dropped"))?;
            Request::ReportDropped {
                client_id: m.client_id(),
                entries: m
                    .entries()
                    .map(|v| v.iter().map(dec_dropped).collect())
                    .unwrap_or_default(),
            }
        }
        B::ReportPromoted => {
            let m = r
                .body_as_report_promoted()
                .ok_or_else(|| missing("report_promoted"))?;
            Request::ReportPromoted {
                client_id: m.client_id(),
                entries: m
                    .entries()
                    .map(|v| v.iter().map(dec_promoted).collect())
                    .unwrap_or_default(),
            }
        }
        B::ReportOffloaded => {
            let m = r
                .body_as_report_offloaded()
                .ok_or_else(|| missing("report_offloaded"))?;
            Request::ReportOffloaded {
                client_id: m.client_id(),
                entries: m
                    .entries()
                    .map(|v| v.iter().map(dec_offloaded).collect())
                    .unwrap_or_default(),
            }
        }
        other => return Err(unknown_request(other)),
    })
}

/// Decodes one element (also used by the agent ↔ shard codec).
pub(crate) fn dec_entry(e: fb::InventoryEntryFb<'_>) -> InventoryEntry {
    InventoryEntry {
        key: e.key().unwrap_or_default().to_string(),
        segment_id: e.segment_id(),
        offset: e.offset(),
        length: e.length(),
        generation: e.generation(),
        put_generation: e.put_generation(),
        object_size: e.object_size(),
        slice_index: e.slice_index(),
        slice_count: e.slice_count(),
        crc32c: e.crc32c(),
        replica_index: e.replica_index(),
        pins: e.pins(),
        committed: e.committed(),
    }
}

pub(super) fn enc_notices(
    fbb: &mut Fbb<'_>,
    term: u64,
    seq: u64,
    notices: &[Notice],
) -> WIPOffset<UnionWIPOffset> {
    let v: Vec<fb::NoticeFb> = notices.iter().map(enc_notice).collect();
    let notices = fbb.create_vector(&v);
    let args = fb::NoticesArgs {
        term,
        seq,
        notices: Some(notices),
    };
    fb::Notices::create(fbb, &args).as_union_value()
}

/// One notice as its flatbuffers struct (also used by the agent ↔ shard codec).
pub(crate) fn enc_notice(n: &Notice) -> fb::NoticeFb {
    match *n {
        Notice::Commit {
            segment_id,
            offset,
            generation,
        } => fb::NoticeFb::new(COMMIT, segment_id, offset, generation, 0, 0, 0),
        Notice::Free {
            segment_id,
            offset,
            generation,
        } => fb::NoticeFb::new(FREE, segment_id, offset, generation, 0, 0, 0),
        // An offload's unused target_generation carries its disk-eviction flag.
        Notice::Offload {
            segment_id,
            offset,
            generation,
            evict_oldest,
        } => fb::NoticeFb::new(
            OFFLOAD,
            segment_id,
            offset,
            generation,
            0,
            0,
            u64::from(evict_oldest),
        ),
        Notice::Promote {
            segment_id,
            offset,
            generation,
            target_segment_id,
            target_offset,
            target_generation,
        } => fb::NoticeFb::new(
            PROMOTE,
            segment_id,
            offset,
            generation,
            target_segment_id,
            target_offset,
            target_generation,
        ),
    }
}

/// Notices of unknown kinds (a newer master) are skipped.
pub(super) fn dec_notices(n: fb::Notices<'_>) -> ResponseBody {
    let notices = n
        .notices()
        .map(|v| v.iter().filter_map(dec_notice).collect())
        .unwrap_or_default();
    ResponseBody::Notices {
        term: n.term(),
        seq: n.seq(),
        notices,
    }
}

/// One notice from its flatbuffers struct; `None` for a kind this build does not know.
pub(crate) fn dec_notice(n: &fb::NoticeFb) -> Option<Notice> {
    let (segment_id, offset, generation) = (n.segment_id(), n.offset(), n.generation());
    match n.kind() {
        COMMIT => Some(Notice::Commit {
            segment_id,
            offset,
            generation,
        }),
        FREE => Some(Notice::Free {
            segment_id,
            offset,
            generation,
        }),
        OFFLOAD => Some(Notice::Offload {
            segment_id,
            offset,
            generation,
            evict_oldest: n.target_generation() == 1,
        }),
        PROMOTE => Some(Notice::Promote {
            segment_id,
            offset,
            generation,
            target_segment_id: n.target_segment_id(),
            target_offset: n.target_offset(),
            target_generation: n.target_generation(),
        }),
        _ => None,
    }
}
