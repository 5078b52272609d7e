//! The same-host protocol: how a client on a store node's host gets the memory files of one
//! of the node's shards, to read objects with memcpy instead of TCP
//! (`docs/why-fast-path.md`, "Same-host reads and writes").
//!
//! A shard serving endpoint `host:port` listens on the abstract `SOCK_SEQPACKET` Unix socket
//! [`socket_name`]. Abstract names live in the network namespace, so a connect that works
//! means the client is on the node's host. The client sends one [`Hello`]; the shard answers
//! with one or more [`Offer`] messages, each carrying up to [`MAX_OFFER_FILES`] descriptors
//! with `SCM_RIGHTS`, in the order of its [`OfferedFile`]s, the last one flagged `last`. The
//! connection then stays open and idle: the client watches it to learn that the process
//! that serves the shard is gone.
//!
//! Decoders are total: any byte string yields a message or a [`SchemaError`].

use crate::SchemaError;

/// First bytes of every message: "MCLOCAL" and the protocol version.
pub const LOCAL_MAGIC: [u8; 8] = *b"MCLOCAL1";
/// Most descriptors one [`Offer`] carries (`mc_hugepages::handover::MAX_FDS`).
pub const MAX_OFFER_FILES: usize = 8;
/// Longest cluster id a [`Hello`] carries.
pub const MAX_CLUSTER_ID_BYTES: usize = 1024;

/// The abstract socket name (without the leading NUL) of the shard serving `endpoint`.
pub fn socket_name(endpoint: &str) -> String {
    format!("mooncake_store_{endpoint}.sock")
}

/// What the client sends first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The client's cluster id; a shard of another cluster refuses.
    pub cluster_id: String,
}

/// What one offered descriptor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// The shard's index records file (`docs/node-index.md`); it grows, never shrinks.
    Records,
    /// A segment's memory; its size is sealed.
    Segment,
}

/// One offered descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferedFile {
    /// Records or segment.
    pub kind: FileKind,
    /// The segment id (0 for the records file).
    pub id: u64,
    /// Bytes to map (the segment's usable size; the records file's size when offered).
    pub size_bytes: u64,
}

/// The shard's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// Files, whose descriptors travel with this message in the same order.
    Files {
        /// The files.
        files: Vec<OfferedFile>,
        /// No more offers follow.
        last: bool,
    },
    /// The shard does not serve this client (another cluster, or nothing to offer).
    Refused(String),
}

impl Hello {
    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = LOCAL_MAGIC.to_vec();
        b.extend_from_slice(self.cluster_id.as_bytes());
        b
    }

    /// Decodes a hello.
    pub fn decode(b: &[u8]) -> Result<Hello, SchemaError> {
        let rest = strip_magic(b)?;
        if rest.len() > MAX_CLUSTER_ID_BYTES {
            return Err(SchemaError::Invalid("cluster id too long".into()));
        }
        let cluster_id = std::str::from_utf8(rest)
            .map_err(|_| SchemaError::Invalid("cluster id is not UTF-8".into()))?;
        Ok(Hello {
            cluster_id: cluster_id.to_string(),
        })
    }
}

/// Bytes of one encoded [`OfferedFile`].
const FILE_BYTES: usize = 17;

impl Offer {
    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = LOCAL_MAGIC.to_vec();
        match self {
            Offer::Files { files, last } => {
                b.push(0);
                b.push(u8::from(*last));
                b.push(files.len() as u8);
                for f in files {
                    b.push(match f.kind {
                        FileKind::Records => 0,
                        FileKind::Segment => 1,
                    });
                    b.extend_from_slice(&f.id.to_le_bytes());
                    b.extend_from_slice(&f.size_bytes.to_le_bytes());
                }
            }
            Offer::Refused(why) => {
                b.push(1);
                b.extend_from_slice(why.as_bytes());
            }
        }
        b
    }

    /// Decodes an offer.
    pub fn decode(b: &[u8]) -> Result<Offer, SchemaError> {
        let rest = strip_magic(b)?;
        match rest.first() {
            Some(0) => decode_files(&rest[1..]),
            Some(1) => Ok(Offer::Refused(
                String::from_utf8_lossy(&rest[1..]).into_owned(),
            )),
            Some(t) => Err(SchemaError::Invalid(format!("unknown offer tag {t}"))),
            None => Err(SchemaError::Truncated {
                needed: LOCAL_MAGIC.len() + 1,
                got: b.len(),
            }),
        }
    }
}

fn decode_files(b: &[u8]) -> Result<Offer, SchemaError> {
    let [last, n, rest @ ..] = b else {
        return Err(SchemaError::Truncated {
            needed: 2,
            got: b.len(),
        });
    };
    let n = *n as usize;
    if n > MAX_OFFER_FILES {
        return Err(SchemaError::Invalid(format!(
            "offer of {n} files exceeds {MAX_OFFER_FILES}"
        )));
    }
    if rest.len() != n * FILE_BYTES {
        return Err(SchemaError::Truncated {
            needed: n * FILE_BYTES,
            got: rest.len(),
        });
    }
    let files = rest
        .chunks_exact(FILE_BYTES)
        .map(|c| {
            let kind = match c[0] {
                0 => FileKind::Records,
                1 => FileKind::Segment,
                k => return Err(SchemaError::Invalid(format!("unknown file kind {k}"))),
            };
            let u64_at = |i: usize| u64::from_le_bytes(c[i..i + 8].try_into().expect("8 bytes"));
            Ok(OfferedFile {
                kind,
                id: u64_at(1),
                size_bytes: u64_at(9),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Offer::Files {
        files,
        last: *last != 0,
    })
}

fn strip_magic(b: &[u8]) -> Result<&[u8], SchemaError> {
    match b.strip_prefix(&LOCAL_MAGIC[..]) {
        Some(rest) => Ok(rest),
        None if b.len() < LOCAL_MAGIC.len() => Err(SchemaError::Truncated {
            needed: LOCAL_MAGIC.len(),
            got: b.len(),
        }),
        None => Err(SchemaError::BadMagic),
    }
}

/// The fields of a shard's index record (`docs/node-index.md`) a same-host reader checks,
/// at the offsets the shard writes them (`mc_dataplane::index::record`, which a test pairs
/// with this).
pub mod record {
    /// Bytes of one record.
    pub const RECORD_BYTES: usize = 80;
    /// Offset of the state byte, written last and cleared first.
    pub const STATE_AT: usize = RECORD_BYTES - 1;

    /// What a reader checks in one record.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct RecordView {
        /// Segment holding the bytes.
        pub segment_id: u64,
        /// First byte in the segment.
        pub offset: u64,
        /// Bytes of the slice.
        pub length: u64,
        /// The allocation's generation.
        pub generation: u64,
        /// CRC32C of the slice.
        pub crc32c: u32,
        /// Whether the slot holds an entry (written or committed).
        pub live: bool,
    }

    /// Whether a state byte names an entry (1 written, 2 committed).
    pub fn live_state(b: u8) -> bool {
        matches!(b, 1 | 2)
    }

    /// The checked fields of a record.
    pub fn parse(b: &[u8; RECORD_BYTES]) -> RecordView {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        RecordView {
            segment_id: u64_at(0),
            offset: u64_at(8),
            length: u64_at(16),
            generation: u64_at(24),
            crc32c: u32::from_le_bytes(b[64..68].try_into().expect("4 bytes")),
            live: live_state(b[STATE_AT]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn messages_round_trip() {
        let h = Hello {
            cluster_id: "c1".into(),
        };
        assert_eq!(Hello::decode(&h.encode()).unwrap(), h);
        let o = Offer::Files {
            files: vec![
                OfferedFile {
                    kind: FileKind::Records,
                    id: 0,
                    size_bytes: 4096,
                },
                OfferedFile {
                    kind: FileKind::Segment,
                    id: u64::MAX,
                    size_bytes: 1 << 30,
                },
            ],
            last: true,
        };
        assert_eq!(Offer::decode(&o.encode()).unwrap(), o);
        let r = Offer::Refused("other cluster".into());
        assert_eq!(Offer::decode(&r.encode()).unwrap(), r);
        assert!(matches!(
            Offer::decode(b"MCLOCAL2\x00"),
            Err(SchemaError::BadMagic)
        ));
    }

    proptest! {
        #[test]
        fn decoders_are_total(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Hello::decode(&b);
            let _ = Offer::decode(&b);
            let mut m = LOCAL_MAGIC.to_vec();
            m.extend_from_slice(&b);
            let _ = Offer::decode(&m);
        }
    }
}
