//! The fuzz targets: one function per decoder that crosses a process boundary or reads a
//! file (RPC frames, handshake and messages, the transfer header and object info, node
//! index records, SSD records and index checkpoints, snapshot data and manifest, the
//! master's config file, flag values). A
//! target panics only on a bug: the decoders are total (any byte string gives a value or a
//! typed error), and where an encoder exists a decoded value must encode and decode back to
//! itself.
//!
//! The engine that feeds them lives in `fuzz/` (its own workspace); this crate holds only
//! the targets, so the test suite can replay every saved input (`fuzz/regressions/`)
//! without compiling a fuzzer. Agent ↔ shard messages are fuzzed as the flatbuffers that
//! cross the shared-memory rings (`mc_schema::agent::wire`). SSD record headers and index
//! checkpoints carry a CRC, which random bytes almost never match: their targets try every
//! input as it is and once more with the CRC made right, so the fields behind it are
//! fuzzed too.

use std::time::Duration;

use mc_schema::frame::FrameHeader;
use mc_schema::handshake::{Hello, Role};
use mc_schema::msg::{PutEndItem, ReplicateConfig, Request, Response, ResponseBody};
use mc_transfer::header::{ObjectInfo, Op, TransferHeader};

/// A fuzz target: its name, the function, valid encodings to mutate, and the longest
/// random input worth trying.
pub struct Target {
    /// Name on the command line and of its crash directory.
    pub name: &'static str,
    /// Runs one input; panics on a bug.
    pub run: fn(&[u8]),
    /// Valid encodings.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Longest random input.
    pub max_len: usize,
}

/// Every target.
pub fn all() -> Vec<Target> {
    vec![
        Target {
            name: "rpc_frame",
            run: rpc_frame,
            seeds: frame_seeds,
            max_len: 64,
        },
        Target {
            name: "handshake",
            run: handshake,
            seeds: hello_seeds,
            max_len: 128,
        },
        Target {
            name: "rpc_request",
            run: rpc_request,
            seeds: request_seeds,
            max_len: 1024,
        },
        Target {
            name: "rpc_response",
            run: rpc_response,
            seeds: response_seeds,
            max_len: 1024,
        },
        Target {
            name: "transfer_header",
            run: transfer_header,
            seeds: header_seeds,
            max_len: 96,
        },
        Target {
            name: "object_info",
            run: object_info,
            seeds: info_seeds,
            max_len: 96,
        },
        Target {
            name: "index_record",
            run: index_record,
            seeds: record_seeds,
            max_len: 96,
        },
        Target {
            name: "snapshot_data",
            run: snapshot_data,
            seeds: snapshot_seeds,
            max_len: 2048,
        },
        Target {
            name: "snapshot_manifest",
            run: snapshot_manifest,
            seeds: manifest_seeds,
            max_len: 1024,
        },
        Target {
            name: "master_config_file",
            run: master_config_file,
            seeds: config_seeds,
            max_len: 512,
        },
        Target {
            name: "flag_values",
            run: flag_values,
            seeds: unit_seeds,
            max_len: 32,
        },
        Target {
            name: "ssd_record",
            run: ssd_record,
            seeds: ssd_record_seeds,
            max_len: 256,
        },
        Target {
            name: "ssd_checkpoint",
            run: ssd_checkpoint,
            seeds: ssd_checkpoint_seeds,
            max_len: 1024,
        },
        Target {
            name: "agent_to_shard",
            run: agent_to_shard,
            seeds: to_shard_seeds,
            max_len: 1024,
        },
        Target {
            name: "shard_to_agent",
            run: shard_to_agent,
            seeds: from_shard_seeds,
            max_len: 2048,
        },
    ]
}

fn agent_to_shard(b: &[u8]) {
    use mc_schema::agent::wire::{decode_to_shard, encode_to_shard};
    if let Ok(m) = decode_to_shard(b) {
        assert_eq!(decode_to_shard(&encode_to_shard(&m)).unwrap(), m);
    }
}

fn to_shard_seeds() -> Vec<Vec<u8>> {
    use mc_schema::agent::ToShard;
    use mc_schema::msg::Notice;
    let msgs = [
        ToShard::Describe,
        ToShard::Mount {
            request: 1,
            size_bytes: 1 << 20,
        },
        ToShard::MountShm {
            request: 2,
            path: "/dev/shm/seg".into(),
            offset_bytes: 4096,
            size_bytes: 1 << 20,
        },
        ToShard::SetWriteSecret {
            secret: vec![1; 16],
        },
        ToShard::Notices {
            seq: 3,
            term: 2,
            notices: vec![
                Notice::Commit {
                    segment_id: 1,
                    offset: 0,
                    generation: 5,
                },
                Notice::Promote {
                    segment_id: 2,
                    offset: 8,
                    generation: 5,
                    target_segment_id: 1,
                    target_offset: 64,
                    target_generation: 6,
                },
            ],
        },
        ToShard::Inventory { request: 4 },
    ];
    msgs.iter()
        .map(mc_schema::agent::wire::encode_to_shard)
        .collect()
}

fn shard_to_agent(b: &[u8]) {
    use mc_schema::agent::wire::{decode_from_shard, encode_from_shard};
    if let Ok(m) = decode_from_shard(b) {
        assert_eq!(decode_from_shard(&encode_from_shard(&m)).unwrap(), m);
    }
}

fn from_shard_seeds() -> Vec<Vec<u8>> {
    use mc_schema::agent::{FromShard, SegmentInfo, SegmentKind};
    use mc_schema::msg::{InventoryEntry, OffloadedSlice};
    let segment = SegmentInfo {
        shard: 0,
        segment_id: 7,
        name: "127.0.0.1:9000".into(),
        endpoint: "127.0.0.1:9000".into(),
        size_bytes: 1 << 26,
        kind: SegmentKind::Startup,
    };
    let msgs = [
        FromShard::Segment(segment.clone()),
        FromShard::Mounted {
            request: 1,
            segment,
        },
        FromShard::MountFailed {
            request: 2,
            reason: "no memory".into(),
        },
        FromShard::Hits {
            shard: 0,
            keys: vec!["a".into(), "b".into()],
        },
        FromShard::Offloaded {
            shard: 0,
            entries: vec![OffloadedSlice {
                key: "k".into(),
                length: 4096,
                ..OffloadedSlice::default()
            }],
        },
        FromShard::Inventory {
            request: 4,
            entries: vec![InventoryEntry {
                key: "k".into(),
                length: 4096,
                committed: true,
                ..InventoryEntry::default()
            }],
            last: true,
        },
    ];
    msgs.iter()
        .map(mc_schema::agent::wire::encode_from_shard)
        .collect()
}

fn rpc_frame(b: &[u8]) {
    if let Ok(h) = FrameHeader::decode(b, mc_schema::limits::MAX_RPC_FRAME_BYTES) {
        assert_eq!(FrameHeader::decode(&h.encode(), u32::MAX).unwrap(), h);
    }
    let _ = mc_schema::frame::split_frame(b, 1 << 20);
}

fn frame_seeds() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    mc_schema::frame::write_frame(&mut v, 7, b"payload");
    vec![v]
}

fn handshake(b: &[u8]) {
    if let Ok(h) = Hello::decode(b) {
        assert_eq!(Hello::decode(&h.encode()).unwrap(), h);
    }
    let _ = mc_schema::handshake::check_ack(b);
}

fn hello_seeds() -> Vec<Vec<u8>> {
    [Role::Client, Role::Agent, Role::Master, Role::Tool]
        .into_iter()
        .map(|r| Hello::new(r, "mooncake_cluster").unwrap().encode().to_vec())
        .collect()
}

fn rpc_request(b: &[u8]) {
    if let Ok((term, req)) = mc_schema::msg::decode_request(b) {
        let mut fbb = flatbuffers::FlatBufferBuilder::new();
        let again = mc_schema::msg::encode_request(&mut fbb, term, &req).to_vec();
        assert_eq!(mc_schema::msg::decode_request(&again).unwrap(), (term, req));
    }
}

fn requests() -> Vec<Request> {
    vec![
        Request::Ping { client_id: 9 },
        Request::PutStart {
            client_id: 1,
            client_host: "127.0.0.1".into(),
            items: vec![("k".into(), 10), ("key/2".into(), 1 << 30)],
            config: ReplicateConfig {
                replica_num: 2,
                preferred_segments: vec!["127.0.0.2".into()],
                ..ReplicateConfig::default()
            },
        },
        Request::PutEnd {
            items: vec![PutEndItem {
                key: "k".into(),
                slice_crcs: vec![1, 2],
                failed_replicas: vec![1],
                generation: 1 << 44,
            }],
        },
        Request::GetReplicaList {
            keys: vec!["a".into(), "b".into()],
        },
        Request::Remove {
            keys: vec!["a".into()],
            force: true,
        },
        Request::RemoveByRegex {
            regex: "^a.*".into(),
            force: false,
        },
        Request::MountSegment {
            client_id: 3,
            segment_id: 4,
            name: "127.0.0.1:1234".into(),
            host: "127.0.0.1".into(),
            endpoint: "127.0.0.1:1234".into(),
            size: 1 << 26,
            term_seen: 2,
            reports_inventory: true,
            disk: false,
        },
        Request::Sync {
            client_id: 1,
            acked_seq: 2,
            acked_term: 3,
        },
    ]
}

fn request_seeds() -> Vec<Vec<u8>> {
    requests()
        .iter()
        .map(|r| {
            let mut fbb = flatbuffers::FlatBufferBuilder::new();
            mc_schema::msg::encode_request(&mut fbb, 5, r).to_vec()
        })
        .collect()
}

fn rpc_response(b: &[u8]) {
    if let Ok(resp) = mc_schema::msg::decode_response(b) {
        let mut fbb = flatbuffers::FlatBufferBuilder::new();
        let again = mc_schema::msg::encode_response(&mut fbb, &resp).to_vec();
        assert_eq!(mc_schema::msg::decode_response(&again).unwrap(), resp);
    }
}

fn response_seeds() -> Vec<Vec<u8>> {
    let rs = [
        Response::ok(ResponseBody::Statuses(vec![0, -704])),
        Response::ok(ResponseBody::Count(42)),
        Response::ok(ResponseBody::Values(vec![-1, 5])),
        Response::error(-1010, "not the leader"),
    ];
    rs.iter()
        .map(|r| {
            let mut fbb = flatbuffers::FlatBufferBuilder::new();
            mc_schema::msg::encode_response(&mut fbb, r).to_vec()
        })
        .collect()
}

fn transfer_header(b: &[u8]) {
    if let Ok(h) = TransferHeader::decode(b) {
        assert_eq!(TransferHeader::decode(&h.encode()).unwrap(), h);
    }
}

fn header_seeds() -> Vec<Vec<u8>> {
    [Op::Write, Op::Read, Op::WriteAck, Op::ReadData]
        .into_iter()
        .map(|op| TransferHeader::request(op, 3, 4096, 100).encode().to_vec())
        .collect()
}

fn object_info(b: &[u8]) {
    if let Ok((info, key_len)) = ObjectInfo::decode(b) {
        let (again, len) = ObjectInfo::decode(&info.encode(key_len as u16)).unwrap();
        assert_eq!((again, len), (info, key_len));
    }
}

fn info_seeds() -> Vec<Vec<u8>> {
    let info = ObjectInfo {
        object_size: 1 << 30,
        put_generation: 1 << 44,
        slice_index: 1,
        slice_count: 64,
        replica_index: 1,
        pins: 3,
    };
    vec![info.encode(10).to_vec()]
}

fn index_record(b: &[u8]) {
    use mc_dataplane::index::record::RECORD_BYTES;
    let mut rec = [0u8; RECORD_BYTES];
    let n = b.len().min(RECORD_BYTES);
    rec[..n].copy_from_slice(&b[..n]);
    if let Some((e, key_at, key_len)) = mc_dataplane::index::Entry::decode(&rec) {
        let again = mc_dataplane::index::Entry::decode(&e.encode(key_at, key_len)).unwrap();
        assert_eq!(again, (e, key_at, key_len));
    }
}

fn record_seeds() -> Vec<Vec<u8>> {
    let e = mc_dataplane::index::Entry {
        segment_id: 1,
        offset: 4096,
        length: 100,
        generation: 1 << 44,
        put_generation: 1 << 44,
        object_size: 100,
        slice_index: 0,
        slice_count: 1,
        crc32c: 7,
        replica_index: 0,
        pins: 0,
        state: mc_dataplane::index::EntryState::Written,
    };
    vec![e.encode(0, 3).to_vec()]
}

fn snapshot_data(b: &[u8]) {
    use mc_master::snapshot::content::{MAGIC, decode};
    if let Ok(c) = decode(b) {
        assert_eq!(decode(&c.encode()).unwrap(), c);
    }
    // Past the magic, so random bytes reach the body too.
    let mut framed = MAGIC.to_vec();
    framed.extend_from_slice(b);
    if let Ok(c) = decode(&framed) {
        assert_eq!(decode(&c.encode()).unwrap(), c);
    }
}

fn snapshot_seeds() -> Vec<Vec<u8>> {
    use mc_master::snapshot::content::{Content, LocRecord, ObjectRecord, SegmentRecord};
    let c = Content {
        term: 2,
        created_unix_ms: 1_700_000_000_000,
        segments: vec![SegmentRecord {
            id: 11,
            client_id: 5,
            size_bytes: 1 << 26,
            name: "127.0.0.1:7000".into(),
            host: "127.0.0.1".into(),
            endpoint: "127.0.0.1:7000".into(),
        }],
        objects: vec![ObjectRecord {
            key: "k".into(),
            put_generation: 1 << 44,
            size: 100,
            hard_pin: true,
            soft_pin_until_unix_ms: 0,
            locs: vec![LocRecord {
                segment_id: 11,
                offset: 0,
                generation: 1 << 44,
            }],
        }],
    };
    vec![Content::default().encode(), c.encode()]
}

fn snapshot_manifest(b: &[u8]) {
    use mc_master::snapshot::manifest::Manifest;
    if let Ok(m) = Manifest::parse("20260101T000000000Z", b) {
        let _ = m.verify(b);
        let again = Manifest::parse("20260101T000000000Z", &m.to_json()).unwrap();
        assert_eq!(again.to_json(), m.to_json());
    }
}

fn manifest_seeds() -> Vec<Vec<u8>> {
    vec![br#"{"format":"mooncake-rs-master-snapshot","version":1,"snapshot_id":"20260101T000000000Z","cluster_id":"c","created_unix_ms":1,"term":2,"objects":1,"segments":1,"data_file":"snapshot.bin","data_bytes":10,"data_crc32c":5}"#.to_vec()]
}

/// Runs `--config_path` on `b` written to a file.
/// The config-file decoder on the input's text (as `--config_path` reads it: UTF-8 or
/// refused), then clap on the arguments it produced, as the master does after reading the
/// file. In memory: writing a file per input kept this target at ~1,700 inputs/s.
fn master_config_file(b: &[u8]) {
    let Ok(text) = std::str::from_utf8(b) else {
        return;
    };
    if let Ok(args) = mc_master::config::config_text_args("fuzz.yaml", text) {
        let argv = std::iter::once("mooncake_master".to_string()).chain(args);
        let _ = mc_master::MasterConfig::try_from_args(argv);
    }
}

fn config_seeds() -> Vec<Vec<u8>> {
    vec![
        b"rpc_port: 50051\neviction_ratio: 0.1\nenable_ha: false\n".to_vec(),
        br#"{"rpc_port": 1, "default_kv_lease_ttl": "5s", "cluster_id": "x"}"#.to_vec(),
        b"client_ttl: 10\nput_start_release_timeout_sec: 5m\n".to_vec(),
    ]
}

fn flag_values(b: &[u8]) {
    use mc_schema::units::{DurationUnit, parse_duration, parse_size};
    let Ok(s) = std::str::from_utf8(b) else {
        return;
    };
    let _ = parse_size(s);
    for unit in [DurationUnit::Seconds, DurationUnit::Millis] {
        if let Ok(d) = parse_duration(s, unit) {
            assert!(d <= Duration::MAX);
        }
    }
}

fn unit_seeds() -> Vec<Vec<u8>> {
    [
        "4GB",
        "16 MiB",
        "500ms",
        "5s",
        "30m",
        "1h",
        "18446744073709551615TB",
        "1.5GB",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// An SSD record header (`mc_dataplane::ssd::format`): as given, then with its CRC fixed; a
/// header that decodes must encode to bytes that decode to it again.
fn ssd_record(b: &[u8]) {
    use mc_dataplane::ssd::format::{FIXED_BYTES, Header, MAX_KEY_BYTES};
    let _ = Header::decode(b);
    if b.len() < FIXED_BYTES {
        return;
    }
    let mut fixed = b.to_vec();
    let key_len = (u32::from_le_bytes(fixed[8..12].try_into().expect("4 bytes")) as usize)
        .min(MAX_KEY_BYTES)
        .min(fixed.len() - FIXED_BYTES);
    fixed[8..12].copy_from_slice(&(key_len as u32).to_le_bytes());
    fixed[12..16].fill(0);
    let crc = mc_schema::checksum::crc32c(&fixed[..FIXED_BYTES + key_len]);
    fixed[12..16].copy_from_slice(&crc.to_le_bytes());
    if let Ok(h) = Header::decode(&fixed) {
        let mut out = vec![0u8; h.block_bytes() as usize];
        h.encode_into(&mut out);
        assert_eq!(Header::decode(&out).as_ref(), Ok(&h));
    }
}

fn ssd_record_seeds() -> Vec<Vec<u8>> {
    use mc_dataplane::ssd::format::{Header, Kind};
    let h = Header {
        kind: Kind::Value,
        key: b"key-1".to_vec(),
        value_len: 4096,
        generation: 1 << 44,
        put_generation: 1 << 44,
        value_crc: 7,
        slice_index: 0,
        slice_count: 1,
        target: 0,
        object_size: 4096,
    };
    let mut out = vec![0u8; h.block_bytes() as usize];
    h.encode_into(&mut out);
    out.truncate(128);
    vec![out]
}

/// An SSD index checkpoint (`mc_dataplane::ssd::checkpoint`): as given, then with its
/// trailer's CRC made right; one that decodes must encode to one that decodes alike.
fn ssd_checkpoint(b: &[u8]) {
    use mc_dataplane::ssd::checkpoint::{decode, encode};
    let _ = decode(b);
    if b.len() < 8 {
        return;
    }
    let mut fixed = b.to_vec();
    let body = fixed.len() - 8;
    let crc = mc_schema::checksum::crc32c(&fixed[..body]);
    fixed[body..body + 4].copy_from_slice(&crc.to_le_bytes());
    if let Ok(c) = decode(&fixed) {
        let again = decode(&encode(
            c.covered,
            c.used_bytes,
            c.entries.iter().map(|(l, e)| (*l, e)),
        ))
        .expect("an encoded checkpoint decodes");
        assert_eq!((again.covered, again.used_bytes), (c.covered, c.used_bytes));
        assert_eq!(again.entries, c.entries);
    }
}

fn ssd_checkpoint_seeds() -> Vec<Vec<u8>> {
    use mc_dataplane::ssd::SsdEntry;
    use mc_dataplane::ssd::checkpoint::encode;
    let e = SsdEntry {
        key: b"k".to_vec(),
        block_bytes: 4096,
        value_len: 100,
        generation: 1 << 44,
        put_generation: 1 << 44,
        value_crc: 9,
        slice: (0, 1),
        object_size: 100,
    };
    vec![
        encode(1 << 20, 8192, [(0u64, &e)].into_iter()),
        encode(0, 0, std::iter::empty()),
    ]
}
