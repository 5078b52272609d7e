//! What a snapshot holds, and its binary form (`snapshot.bin`).
//!
//! Only what the nodes cannot tell a new master: its term, the segments that were mounted
//! (so it knows whom to wait for), and per complete object the put it belongs to, its pins
//! and where its slices were. The bytes themselves, the CRCs and whether a put is complete
//! come from the nodes' object indexes at recovery (`docs/why-recovery.md`).
//!
//! Little-endian, versioned, with a magic; strings are a `u32` length and UTF-8 bytes:
//!
//! ```text
//! header    magic "MCRSSNAP" | version u32 = 1 | reserved u32 = 0 | term u64 | created_unix_ms u64
//! segments  count u32, then per segment:
//!           id u64 | client_id u64 | size_bytes u64 | name str | host str | endpoint str
//! objects   count u64, then per object:
//!           key str | put_generation u64 | size u64 | flags u8 (bit 0: hard pin)
//!           | soft_pin_until_unix_ms u64 (0: none) | loc_count u32
//!           | loc_count × (segment_id u64 | offset u64 | generation u64)
//! ```
//!
//! The file ends right after the last object. [`decode`] is total: any byte string yields a
//! [`Content`] or a typed error, never a panic, and never allocates more than the input
//! could hold. Bit flips inside values are caught by the manifest's CRC32C, not here.

use mc_schema::limits::{MAX_OBJECT_BYTES, MAX_REPLICAS, key_is_valid, slice_count};

use crate::MasterError;

/// First bytes of every snapshot data file.
pub const MAGIC: [u8; 8] = *b"MCRSSNAP";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Bytes of the fixed header.
const HEADER_BYTES: usize = 32;
/// Smallest encoded segment and object (empty strings, one location), to bound counts.
const MIN_SEGMENT_BYTES: usize = 3 * 8 + 3 * 4;
const MIN_OBJECT_BYTES: usize = 4 + 1 + 8 + 8 + 1 + 8 + 4 + LOC_BYTES;
const LOC_BYTES: usize = 24;
/// Flag bit of a hard-pinned object.
const HARD_PIN: u8 = 1;

/// A segment that was mounted when the snapshot was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRecord {
    /// Segment id (chosen by its shard).
    pub id: u64,
    /// The node (client) that mounted it.
    pub client_id: u64,
    /// Capacity.
    pub size_bytes: u64,
    /// `host:port` name.
    pub name: String,
    /// Failure domain.
    pub host: String,
    /// Data endpoint.
    pub endpoint: String,
}

/// Where one slice of an object was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocRecord {
    /// Segment id.
    pub segment_id: u64,
    /// Offset in the segment.
    pub offset: u64,
    /// The slice's allocation generation.
    pub generation: u64,
}

/// One complete object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    /// The key.
    pub key: String,
    /// Generation naming the put ([`crate::objects::Object::put_generation`]).
    pub put_generation: u64,
    /// Bytes of the value.
    pub size: u64,
    /// Never evicted.
    pub hard_pin: bool,
    /// Soft pin end, wall clock (Unix milliseconds); 0 = not soft-pinned.
    pub soft_pin_until_unix_ms: u64,
    /// Replica-major slice locations.
    pub locs: Vec<LocRecord>,
}

/// A decoded snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Content {
    /// The master's term when it was taken (`Segments::term`).
    pub term: u64,
    /// When it was taken (Unix milliseconds).
    pub created_unix_ms: u64,
    /// Mounted segments.
    pub segments: Vec<SegmentRecord>,
    /// Complete objects.
    pub objects: Vec<ObjectRecord>,
}

impl Content {
    /// The binary form.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new(self.term, self.created_unix_ms, &self.segments);
        for o in &self.objects {
            e.object(
                &o.key,
                o.put_generation,
                o.size,
                (o.hard_pin, o.soft_pin_until_unix_ms),
                &o.locs,
            );
        }
        e.finish().0
    }
}

/// Writes a snapshot object by object, so the writer never holds a second copy of the
/// metadata: records go straight from the shards (under their locks) into the buffer.
#[derive(Debug)]
pub struct Encoder {
    buf: Vec<u8>,
    count_at: usize,
    objects: u64,
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

impl Encoder {
    /// Starts a snapshot of term `term` taken at `created_unix_ms` with these segments.
    pub fn new(term: u64, created_unix_ms: u64, segments: &[SegmentRecord]) -> Encoder {
        let mut buf = Vec::with_capacity(64 << 10);
        buf.extend_from_slice(&MAGIC);
        buf.extend_from_slice(&VERSION.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        buf.extend_from_slice(&term.to_le_bytes());
        buf.extend_from_slice(&created_unix_ms.to_le_bytes());
        buf.extend_from_slice(&(segments.len() as u32).to_le_bytes());
        for s in segments {
            for v in [s.id, s.client_id, s.size_bytes] {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            for t in [&s.name, &s.host, &s.endpoint] {
                put_str(&mut buf, t);
            }
        }
        let count_at = buf.len();
        buf.extend_from_slice(&0u64.to_le_bytes());
        Encoder {
            buf,
            count_at,
            objects: 0,
        }
    }

    /// Appends one object; `pins` is (hard pin, soft pin end in Unix ms or 0).
    pub fn object(
        &mut self,
        key: &str,
        put_generation: u64,
        size: u64,
        (hard_pin, soft_pin_until_unix_ms): (bool, u64),
        locs: &[LocRecord],
    ) {
        let b = &mut self.buf;
        put_str(b, key);
        b.extend_from_slice(&put_generation.to_le_bytes());
        b.extend_from_slice(&size.to_le_bytes());
        b.push(if hard_pin { HARD_PIN } else { 0 });
        b.extend_from_slice(&soft_pin_until_unix_ms.to_le_bytes());
        b.extend_from_slice(&(locs.len() as u32).to_le_bytes());
        for l in locs {
            for v in [l.segment_id, l.offset, l.generation] {
                b.extend_from_slice(&v.to_le_bytes());
            }
        }
        self.objects += 1;
    }

    /// The finished file and the number of objects in it.
    pub fn finish(mut self) -> (Vec<u8>, u64) {
        let at = self.count_at;
        self.buf[at..at + 8].copy_from_slice(&self.objects.to_le_bytes());
        (self.buf, self.objects)
    }
}

/// A cursor over the input that fails, naming the field, instead of reading past the end.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], MasterError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(MasterError::SnapshotTruncated { at: self.at, field })?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, MasterError> {
        Ok(self.take(1, field)?[0])
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, MasterError> {
        let b = self.take(4, field)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, MasterError> {
        let b = self.take(8, field)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn string(&mut self, field: &'static str) -> Result<String, MasterError> {
        let n = self.u32(field)? as usize;
        let at = self.at;
        let b = self.take(n, field)?;
        String::from_utf8(b.to_vec()).map_err(|_| MasterError::SnapshotMalformed {
            at,
            what: "a string that is not UTF-8",
        })
    }

    fn left(&self) -> usize {
        self.buf.len() - self.at
    }

    /// A count of records of at least `min_bytes` each, refused when the rest of the input
    /// could not hold them (so a forged count cannot make us allocate).
    fn count(
        &mut self,
        n: u64,
        min_bytes: usize,
        what: &'static str,
    ) -> Result<usize, MasterError> {
        let fits = (self.left() / min_bytes) as u64;
        if n > fits {
            return Err(MasterError::SnapshotMalformed { at: self.at, what });
        }
        Ok(n as usize)
    }
}

/// Decodes a snapshot data file.
///
/// # Errors
/// [`MasterError::SnapshotBadMagic`], [`MasterError::SnapshotVersion`],
/// [`MasterError::SnapshotTruncated`] or [`MasterError::SnapshotMalformed`].
pub fn decode(buf: &[u8]) -> Result<Content, MasterError> {
    if buf.len() < HEADER_BYTES || buf[..8] != MAGIC {
        return Err(MasterError::SnapshotBadMagic);
    }
    let mut r = Reader { buf, at: 8 };
    let version = r.u32("version")?;
    if version != VERSION {
        return Err(MasterError::SnapshotVersion { version });
    }
    r.u32("reserved")?;
    let term = r.u64("term")?;
    let created_unix_ms = r.u64("created_unix_ms")?;
    let n = r.u32("segment count")?;
    let n = r.count(
        n.into(),
        MIN_SEGMENT_BYTES,
        "a segment count larger than the file",
    )?;
    let mut segments = Vec::with_capacity(n);
    for _ in 0..n {
        segments.push(SegmentRecord {
            id: r.u64("segment id")?,
            client_id: r.u64("segment client id")?,
            size_bytes: r.u64("segment size")?,
            name: r.string("segment name")?,
            host: r.string("segment host")?,
            endpoint: r.string("segment endpoint")?,
        });
    }
    let n = r.u64("object count")?;
    let n = r.count(n, MIN_OBJECT_BYTES, "an object count larger than the file")?;
    let mut objects = Vec::with_capacity(n);
    for _ in 0..n {
        objects.push(object(&mut r)?);
    }
    if r.left() != 0 {
        return Err(MasterError::SnapshotMalformed {
            at: r.at,
            what: "bytes after the last object",
        });
    }
    Ok(Content {
        term,
        created_unix_ms,
        segments,
        objects,
    })
}

/// One object record, checked as a put would be: a valid key, a size a put may have, and
/// whole replicas of `slice_count(size)` slices each.
fn object(r: &mut Reader<'_>) -> Result<ObjectRecord, MasterError> {
    let at = r.at;
    let bad = |what| MasterError::SnapshotMalformed { at, what };
    let key = r.string("object key")?;
    if !key_is_valid(&key) {
        return Err(bad("an invalid key"));
    }
    let put_generation = r.u64("put generation")?;
    let size = r.u64("object size")?;
    if size == 0 || size > MAX_OBJECT_BYTES {
        return Err(bad("an object size no put can have"));
    }
    let flags = r.u8("object flags")?;
    if flags & !HARD_PIN != 0 {
        return Err(bad("unknown object flags"));
    }
    let soft_pin_until_unix_ms = r.u64("soft pin deadline")?;
    let n = r.u32("location count")?;
    let n = r.count(n.into(), LOC_BYTES, "a location count larger than the file")?;
    let per_replica = slice_count(size);
    let n64 = n as u64;
    if n == 0 || !n64.is_multiple_of(per_replica) || n64 / per_replica > MAX_REPLICAS as u64 {
        return Err(bad("locations that are not whole replicas"));
    }
    let mut locs = Vec::with_capacity(n);
    for _ in 0..n {
        locs.push(LocRecord {
            segment_id: r.u64("location segment")?,
            offset: r.u64("location offset")?,
            generation: r.u64("location generation")?,
        });
    }
    Ok(ObjectRecord {
        key,
        put_generation,
        size,
        hard_pin: flags & HARD_PIN != 0,
        soft_pin_until_unix_ms,
        locs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn segment() -> impl Strategy<Value = SegmentRecord> {
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            ".{0,12}",
            ".{0,12}",
            ".{0,12}",
        )
            .prop_map(
                |(id, client_id, size_bytes, name, host, endpoint)| SegmentRecord {
                    id,
                    client_id,
                    size_bytes,
                    name,
                    host,
                    endpoint,
                },
            )
    }

    fn object() -> impl Strategy<Value = ObjectRecord> {
        (
            "[a-z0-9/_]{1,40}",
            any::<u64>(),
            prop_oneof![1u64..100_000, (16u64 << 20)..(50 << 20)],
            any::<bool>(),
            any::<u64>(),
            1u64..3,
        )
            .prop_flat_map(|(key, g, size, hard, soft, replicas)| {
                let n = (slice_count(size) * replicas) as usize;
                let loc =
                    (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(s, o, g)| LocRecord {
                        segment_id: s,
                        offset: o,
                        generation: g,
                    });
                proptest::collection::vec(loc, n).prop_map(move |locs| ObjectRecord {
                    key: key.clone(),
                    put_generation: g,
                    size,
                    hard_pin: hard,
                    soft_pin_until_unix_ms: soft,
                    locs,
                })
            })
    }

    fn content() -> impl Strategy<Value = Content> {
        (
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(segment(), 0..4),
            proptest::collection::vec(object(), 0..8),
        )
            .prop_map(|(term, created_unix_ms, segments, objects)| Content {
                term,
                created_unix_ms,
                segments,
                objects,
            })
    }

    proptest! {
        #[test]
        fn round_trips(c in content()) {
            prop_assert_eq!(decode(&c.encode()).unwrap(), c);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
            let mut framed = MAGIC.to_vec();
            framed.extend_from_slice(&VERSION.to_le_bytes());
            framed.extend_from_slice(&bytes);
            let _ = decode(&framed);
        }

        #[test]
        fn every_truncation_is_refused(c in content(), cut in any::<prop::sample::Index>()) {
            let bytes = c.encode();
            let at = cut.index(bytes.len());
            prop_assert!(decode(&bytes[..at]).is_err());
        }

        #[test]
        fn flipped_bytes_never_panic(c in content(), at in any::<prop::sample::Index>(), x in 1u8..) {
            let mut bytes = c.encode();
            let i = at.index(bytes.len());
            bytes[i] ^= x;
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn forged_counts_are_refused_without_allocating() {
        let mut bytes = Content::default().encode();
        let at = bytes.len() - 8;
        bytes[at..].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decode(&bytes),
            Err(MasterError::SnapshotMalformed { .. })
        ));
        let mut bytes = Content::default().encode();
        bytes[8] = 2;
        assert!(matches!(
            decode(&bytes),
            Err(MasterError::SnapshotVersion { version: 2 })
        ));
        assert!(matches!(
            decode(b"not a snapshot at all, but long enough"),
            Err(MasterError::SnapshotBadMagic)
        ));
    }
}
