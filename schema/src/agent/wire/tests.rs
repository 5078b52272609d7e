//! Round trips of every agent ↔ shard message, and garbage that must not panic.

use proptest::prelude::*;

use super::*;
use crate::agent::INVENTORY_CHUNK;
use crate::msg::{DroppedSlice, InventoryEntry, Notice, OffloadedSlice, PromotedSlice};

fn key() -> impl Strategy<Value = String> {
    prop_oneof!["\\PC{0,24}", "[a-z/0-9]{100,300}"]
}

fn notice() -> impl Strategy<Value = Notice> {
    let t3 = (any::<u64>(), any::<u64>(), any::<u64>());
    prop_oneof![
        t3.prop_map(|(segment_id, offset, generation)| Notice::Commit {
            segment_id,
            offset,
            generation
        }),
        t3.prop_map(|(segment_id, offset, generation)| Notice::Free {
            segment_id,
            offset,
            generation
        }),
        (t3, any::<bool>()).prop_map(|((segment_id, offset, generation), evict_oldest)| {
            Notice::Offload {
                segment_id,
                offset,
                generation,
                evict_oldest,
            }
        }),
        (t3, t3).prop_map(|((segment_id, offset, generation), (a, b, c))| {
            Notice::Promote {
                segment_id,
                offset,
                generation,
                target_segment_id: a,
                target_offset: b,
                target_generation: c,
            }
        }),
    ]
}

fn segment() -> impl Strategy<Value = SegmentInfo> {
    let kind = prop_oneof![
        Just(SegmentKind::Startup),
        Just(SegmentKind::Allocated),
        Just(SegmentKind::Shm),
        Just(SegmentKind::LocalDisk),
        Just(SegmentKind::Cxl),
    ];
    (any::<u32>(), any::<u64>(), key(), key(), any::<u64>(), kind).prop_map(
        |(shard, segment_id, name, endpoint, size_bytes, kind)| SegmentInfo {
            shard,
            segment_id,
            name,
            endpoint,
            size_bytes,
            kind,
        },
    )
}

fn to_shard() -> impl Strategy<Value = ToShard> {
    let u = any::<u64>;
    prop_oneof![
        Just(ToShard::Describe),
        Just(ToShard::Drain),
        Just(ToShard::Stop),
        (u(), u()).prop_map(|(request, size_bytes)| ToShard::Mount {
            request,
            size_bytes
        }),
        (u(), key(), u(), u()).prop_map(|(request, path, offset_bytes, size_bytes)| {
            ToShard::MountShm {
                request,
                path,
                offset_bytes,
                size_bytes,
            }
        }),
        (u(), key(), u()).prop_map(|(request, path, size_bytes)| ToShard::MountCxl {
            request,
            path,
            size_bytes
        }),
        (u(), u()).prop_map(|(request, segment_id)| ToShard::Unmount {
            request,
            segment_id
        }),
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|secret| ToShard::SetWriteSecret { secret }),
        u().prop_map(|term| ToShard::SetTerm { term }),
        (u(), u(), proptest::collection::vec(notice(), 0..20))
            .prop_map(|(seq, term, notices)| ToShard::Notices { seq, term, notices }),
        u().prop_map(|request| ToShard::Inventory { request }),
        u().prop_map(|request| ToShard::Metrics { request }),
    ]
}

fn entry() -> impl Strategy<Value = InventoryEntry> {
    (
        key(),
        proptest::array::uniform6(any::<u64>()),
        proptest::array::uniform5(any::<u32>()),
        any::<bool>(),
    )
        .prop_map(|(key, u, w, committed)| InventoryEntry {
            key,
            segment_id: u[0],
            offset: u[1],
            length: u[2],
            generation: u[3],
            put_generation: u[4],
            object_size: u[5],
            slice_index: w[0],
            slice_count: w[1],
            crc32c: w[2],
            replica_index: w[3],
            pins: w[4],
            committed,
        })
}

fn offloaded() -> impl Strategy<Value = OffloadedSlice> {
    (
        key(),
        proptest::array::uniform7(any::<u64>()),
        proptest::array::uniform3(any::<u32>()),
    )
        .prop_map(|(key, u, w)| OffloadedSlice {
            key,
            put_generation: u[0],
            slice_index: w[0],
            slice_count: w[1],
            source_segment_id: u[1],
            source_offset: u[2],
            disk_segment_id: u[3],
            disk_offset: u[4],
            length: u[5],
            generation: u[6],
            crc32c: w[2],
        })
}

fn promoted() -> impl Strategy<Value = PromotedSlice> {
    (key(), proptest::array::uniform4(any::<u64>())).prop_map(|(key, u)| PromotedSlice {
        key,
        put_generation: u[0],
        segment_id: u[1],
        offset: u[2],
        generation: u[3],
    })
}

fn dropped() -> impl Strategy<Value = DroppedSlice> {
    (key(), proptest::array::uniform3(any::<u64>())).prop_map(|(key, u)| DroppedSlice {
        key,
        segment_id: u[0],
        offset: u[1],
        generation: u[2],
    })
}

fn from_shard() -> impl Strategy<Value = FromShard> {
    use proptest::collection::vec;
    let (u, w) = (any::<u64>, any::<u32>);
    prop_oneof![
        segment().prop_map(FromShard::Segment),
        (u(), segment()).prop_map(|(request, segment)| FromShard::Mounted { request, segment }),
        (u(), key()).prop_map(|(request, reason)| FromShard::MountFailed { request, reason }),
        (u(), u(), any::<bool>()).prop_map(|(request, segment_id, found)| {
            FromShard::Unmounted {
                request,
                segment_id,
                found,
            }
        }),
        w().prop_map(|shard| FromShard::Drained { shard }),
        w().prop_map(|shard| FromShard::Stopped { shard }),
        w().prop_map(|shard| FromShard::Described { shard }),
        (w(), u(), u()).prop_map(|(shard, term, seq)| FromShard::Applied { shard, term, seq }),
        (w(), vec(key(), 0..20)).prop_map(|(shard, keys)| FromShard::Hits { shard, keys }),
        (w(), vec(offloaded(), 0..8))
            .prop_map(|(shard, entries)| FromShard::Offloaded { shard, entries }),
        (w(), vec(promoted(), 0..8))
            .prop_map(|(shard, entries)| FromShard::Promoted { shard, entries }),
        (w(), vec(dropped(), 0..8))
            .prop_map(|(shard, entries)| FromShard::Dropped { shard, entries }),
        (u(), vec(any::<u8>(), 0..300))
            .prop_map(|(request, text)| FromShard::Metrics { request, text }),
        (u(), vec(entry(), 0..8), any::<bool>()).prop_map(|(request, entries, last)| {
            FromShard::Inventory {
                request,
                entries,
                last,
            }
        }),
    ]
}

proptest! {
    #[test]
    fn every_to_shard_message_round_trips(msg in to_shard()) {
        prop_assert_eq!(decode_to_shard(&encode_to_shard(&msg)).unwrap(), msg);
    }

    #[test]
    fn every_from_shard_message_round_trips(msg in from_shard()) {
        prop_assert_eq!(decode_from_shard(&encode_from_shard(&msg)).unwrap(), msg);
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_to_shard(&bytes);
        let _ = decode_from_shard(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(msg in from_shard(), pos in any::<usize>(), val in any::<u8>()) {
        let mut bytes = encode_from_shard(&msg);
        let i = pos % bytes.len();
        bytes[i] = val;
        let _ = decode_from_shard(&bytes);
        let _ = decode_to_shard(&bytes);
    }
}

#[test]
fn a_full_inventory_part_of_long_keys_round_trips() {
    let entries: Vec<InventoryEntry> = (0..INVENTORY_CHUNK)
        .map(|i| InventoryEntry {
            key: format!("{i:0>4096}"),
            segment_id: i as u64,
            ..InventoryEntry::default()
        })
        .collect();
    let msg = FromShard::Inventory {
        request: 7,
        entries,
        last: true,
    };
    let bytes = encode_from_shard(&msg);
    assert!(bytes.len() < MAX_AGENT_MESSAGE_BYTES);
    assert_eq!(decode_from_shard(&bytes).unwrap(), msg);
}

#[test]
fn limits_and_unknown_values_are_refused() {
    let long = "k".repeat(MAX_KEY_LEN + 1);
    let hits = FromShard::Hits {
        shard: 0,
        keys: vec![long.clone()],
    };
    assert!(matches!(
        decode_from_shard(&encode_from_shard(&hits)),
        Err(SchemaError::Invalid(_))
    ));
    let too_many = FromShard::Inventory {
        request: 1,
        entries: vec![InventoryEntry::default(); INVENTORY_CHUNK + 1],
        last: true,
    };
    assert!(decode_from_shard(&encode_from_shard(&too_many)).is_err());
    let path = ToShard::MountShm {
        request: 1,
        path: "p".repeat(MAX_AGENT_TEXT_BYTES + 1),
        offset_bytes: 0,
        size_bytes: 1,
    };
    assert!(decode_to_shard(&encode_to_shard(&path)).is_err());

    // A notice kind and a segment kind this build does not know.
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let bad = crate::generated::mc::proto::NoticeFb::new(99, 1, 2, 3, 0, 0, 0);
    let notices = fbb.create_vector(&[bad]);
    let body = fb::ApplyNotices::create(
        &mut fbb,
        &fb::ApplyNoticesArgs {
            seq: 1,
            term: 1,
            notices: Some(notices),
        },
    );
    let root = fb::ToShardMsg::create(
        &mut fbb,
        &fb::ToShardMsgArgs {
            body_type: fb::ToShardBody::ApplyNotices,
            body: Some(body.as_union_value()),
        },
    );
    fbb.finish(root, None);
    let e = decode_to_shard(fbb.finished_data()).unwrap_err();
    assert!(e.to_string().contains("notice kind 99"), "{e}");

    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let seg = fb::SegmentInfoFb::create(
        &mut fbb,
        &fb::SegmentInfoFbArgs {
            kind: fb::SegmentKindFb(42),
            ..Default::default()
        },
    );
    let body = fb::SegmentReport::create(&mut fbb, &fb::SegmentReportArgs { segment: Some(seg) });
    let root = fb::FromShardMsg::create(
        &mut fbb,
        &fb::FromShardMsgArgs {
            body_type: fb::FromShardBody::SegmentReport,
            body: Some(body.as_union_value()),
        },
    );
    fbb.finish(root, None);
    let e = decode_from_shard(fbb.finished_data()).unwrap_err();
    assert!(e.to_string().contains("segment kind 42"), "{e}");
    assert!(decode_to_shard(&[]).is_err());
}
