//! The dummy-client protocol: what a process that called `setup_dummy` (a *dummy*) asks the
//! `mooncake_client` of its host (the *real client*) over a Unix stream socket.
//!
//! A frame is `u32 length (LE) | body`; a body is one tag byte and fields in little-endian
//! order: integers fixed-width, strings and byte strings `u32 length | bytes`, lists
//! `u32 count | items`. Every request gets exactly one reply, in order.
//!
//! Values travel in one of two ways. A buffer inside the dummy's shared memory pool (a
//! memfd handed over once with [`Request::RegisterPool`]) is named by its offset and length
//! ([`Src::Pool`], [`Dst::Pool`]): the real client reads or writes the bytes in place and
//! none cross the socket. Anything else travels inline.
//!
//! The decoder is total: any byte string yields a message or a [`SchemaError`].

use crate::SchemaError;
use crate::msg::{ReplicateConfig, SoftPinAction};

/// First field of [`Request::Hello`]: "MCDU".
pub const DUMMY_MAGIC: u32 = 0x5544_434d;
/// Version of this protocol.
pub const DUMMY_VERSION: u16 = 1;
/// Largest frame either side accepts; larger inline values must go through the pool.
pub const MAX_DUMMY_FRAME_BYTES: usize = 256 << 20;
/// Most items of one batch request.
pub const MAX_DUMMY_BATCH: usize = 4096;

/// Where a value to write comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Src {
    /// `len` bytes at `offset` of the registered pool.
    Pool {
        /// Offset in the pool.
        offset: u64,
        /// Byte count.
        len: u64,
    },
    /// The bytes themselves.
    Inline(Vec<u8>),
}

/// Where a value read goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dst {
    /// Into `len` bytes at `offset` of the registered pool.
    Pool {
        /// Offset in the pool.
        offset: u64,
        /// Room in bytes.
        len: u64,
    },
    /// Back in the reply, if the object has at most `cap` bytes.
    Inline {
        /// Largest object accepted.
        cap: u64,
    },
}

/// What a dummy asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// First request of a connection: magic and version. Answered with [`Reply::Hello`].
    Hello {
        /// [`DUMMY_MAGIC`].
        magic: u32,
        /// [`DUMMY_VERSION`].
        version: u16,
    },
    /// The dummy's pool of `size` bytes; its memfd follows as one byte carrying it
    /// (`SCM_RIGHTS`). Answered with [`Reply::Code`]. Replaces an earlier pool.
    RegisterPool {
        /// Bytes the dummy mapped.
        size: u64,
    },
    /// Puts (or upserts) a batch. Answered with [`Reply::Codes`].
    Put {
        /// Replace existing values.
        upsert: bool,
        /// Placement.
        config: ReplicateConfig,
        /// Keys and their values.
        items: Vec<(String, Src)>,
    },
    /// Reads a batch. Answered with [`Reply::Got`].
    Get {
        /// Keys and where their bytes go.
        items: Vec<(String, Dst)>,
    },
    /// Which keys exist. Answered with [`Reply::Codes`] (1, 0 or a negative code).
    Exists {
        /// Keys.
        keys: Vec<String>,
    },
    /// An object's size. Answered with [`Reply::Value`].
    Size {
        /// Key.
        key: String,
    },
    /// Removes keys. Answered with [`Reply::Codes`].
    Remove {
        /// Keys.
        keys: Vec<String>,
        /// Also leased objects.
        force: bool,
    },
    /// Removes keys matching a regex. Answered with [`Reply::Value`] (count or code).
    RemoveRegex {
        /// The pattern.
        pattern: String,
        /// Also leased objects.
        force: bool,
    },
    /// Removes everything. Answered with [`Reply::Value`].
    RemoveAll {
        /// Also leased objects.
        force: bool,
    },
    /// The real client's health. Answered with [`Reply::Code`] (0, or 2 when its master is
    /// unreachable).
    Ping,
}

/// One key's outcome of a [`Request::Get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    /// The object's size, or a negative Mooncake error code.
    pub size_or_code: i64,
    /// The bytes, for an inline destination that succeeded.
    pub data: Vec<u8>,
}

/// What the real client answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Accepts the connection: the name of the real client (`host:port` of its segment).
    Hello {
        /// What the dummy's `get_hostname()` answers.
        hostname: String,
    },
    /// Refuses the request as a whole: a Mooncake code and why.
    Refused {
        /// Negative code.
        code: i32,
        /// Reason.
        reason: String,
    },
    /// One code.
    Code(i32),
    /// One code per item.
    Codes(Vec<i32>),
    /// One number (size, count) or a negative code.
    Value(i64),
    /// One outcome per key read.
    Got(Vec<Got>),
}

/// Appends little-endian fields to a frame under construction.
struct Writer(Vec<u8>);

impl Writer {
    fn new(tag: u8) -> Writer {
        // Room for the length, filled by `finish`.
        Writer(vec![0, 0, 0, 0, tag])
    }
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn strs(&mut self, v: &[String]) {
        self.len(v.len());
        v.iter().for_each(|s| self.str(s));
    }
    fn config(&mut self, c: &ReplicateConfig) {
        self.u32(c.replica_num);
        self.strs(&c.preferred_segments);
        self.bool(c.with_hard_pin);
        self.u8(c.soft_pin_action as u8);
        self.u64(c.soft_pin_ttl_ms);
    }
    /// The frame: length prefix and body.
    fn finish(mut self) -> Vec<u8> {
        let body = u32::try_from(self.0.len() - 4).unwrap_or(u32::MAX);
        self.0[..4].copy_from_slice(&body.to_le_bytes());
        self.0
    }
}

/// Reads little-endian fields from a frame body; every read checks what is left.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SchemaError> {
        if self.0.len() < n {
            return Err(SchemaError::Truncated {
                needed: n,
                got: self.0.len(),
            });
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], SchemaError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, SchemaError> {
        Ok(self.take(1)?[0])
    }
    fn bool(&mut self) -> Result<bool, SchemaError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(invalid(format!("boolean byte {v}"))),
        }
    }
    fn u16(&mut self) -> Result<u16, SchemaError> {
        self.array().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Result<u32, SchemaError> {
        self.array().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Result<u64, SchemaError> {
        self.array().map(u64::from_le_bytes)
    }
    fn i64(&mut self) -> Result<i64, SchemaError> {
        self.array().map(i64::from_le_bytes)
    }
    fn i32(&mut self) -> Result<i32, SchemaError> {
        self.array().map(i32::from_le_bytes)
    }
    /// A count of items, each at least `min_item_bytes` long: bounded by the batch limit
    /// and by what is left, so a forged count never allocates.
    fn count(&mut self, min_item_bytes: usize) -> Result<usize, SchemaError> {
        let n = self.u32()? as usize;
        if n > MAX_DUMMY_BATCH {
            return Err(invalid(format!(
                "batch of {n} items exceeds {MAX_DUMMY_BATCH}"
            )));
        }
        let needed = n.saturating_mul(min_item_bytes);
        if needed > self.0.len() {
            return Err(SchemaError::Truncated {
                needed,
                got: self.0.len(),
            });
        }
        Ok(n)
    }
    fn bytes(&mut self) -> Result<Vec<u8>, SchemaError> {
        let n = self.u32()? as usize;
        self.take(n).map(<[u8]>::to_vec)
    }
    fn str(&mut self) -> Result<String, SchemaError> {
        String::from_utf8(self.bytes()?).map_err(|_| invalid("string is not UTF-8".into()))
    }
    fn strs(&mut self) -> Result<Vec<String>, SchemaError> {
        let n = self.count(4)?;
        (0..n).map(|_| self.str()).collect()
    }
    fn config(&mut self) -> Result<ReplicateConfig, SchemaError> {
        Ok(ReplicateConfig {
            replica_num: self.u32()?,
            preferred_segments: self.strs()?,
            with_hard_pin: self.bool()?,
            soft_pin_action: match self.u8()? {
                0 => SoftPinAction::Preserve,
                1 => SoftPinAction::Enable,
                2 => SoftPinAction::Disable,
                v => return Err(invalid(format!("soft pin action {v}"))),
            },
            soft_pin_ttl_ms: self.u64()?,
        })
    }
    fn end(self) -> Result<(), SchemaError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(invalid(format!("{} bytes after the message", self.0.len())))
        }
    }
}

fn invalid(what: String) -> SchemaError {
    SchemaError::Invalid(format!("dummy-client protocol: {what}"))
}

/// The body length in a frame's 4-byte prefix, checked against [`MAX_DUMMY_FRAME_BYTES`].
pub fn frame_len(prefix: [u8; 4]) -> Result<usize, SchemaError> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len > MAX_DUMMY_FRAME_BYTES {
        return Err(SchemaError::FrameTooLarge {
            len: len as u64,
            max: MAX_DUMMY_FRAME_BYTES as u64,
        });
    }
    Ok(len)
}

mod tag {
    pub const HELLO: u8 = 1;
    pub const REGISTER_POOL: u8 = 2;
    pub const PUT: u8 = 3;
    pub const GET: u8 = 4;
    pub const EXISTS: u8 = 5;
    pub const SIZE: u8 = 6;
    pub const REMOVE: u8 = 7;
    pub const REMOVE_REGEX: u8 = 8;
    pub const REMOVE_ALL: u8 = 9;
    pub const PING: u8 = 10;

    pub const R_HELLO: u8 = 101;
    pub const R_REFUSED: u8 = 102;
    pub const R_CODE: u8 = 103;
    pub const R_CODES: u8 = 104;
    pub const R_VALUE: u8 = 105;
    pub const R_GOT: u8 = 106;
}

impl Request {
    /// The whole frame: length prefix and body.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Request::Hello { magic, version } => {
                let mut w = Writer::new(tag::HELLO);
                w.u32(*magic);
                w.u16(*version);
                w.finish()
            }
            Request::RegisterPool { size } => {
                let mut w = Writer::new(tag::REGISTER_POOL);
                w.u64(*size);
                w.finish()
            }
            Request::Put {
                upsert,
                config,
                items,
            } => encode_put(*upsert, config, items),
            Request::Get { items } => {
                let mut w = Writer::new(tag::GET);
                w.len(items.len());
                for (k, d) in items {
                    w.str(k);
                    match *d {
                        Dst::Pool { offset, len } => {
                            w.u8(0);
                            w.u64(offset);
                            w.u64(len);
                        }
                        Dst::Inline { cap } => {
                            w.u8(1);
                            w.u64(cap);
                        }
                    }
                }
                w.finish()
            }
            Request::Exists { keys } => {
                let mut w = Writer::new(tag::EXISTS);
                w.strs(keys);
                w.finish()
            }
            Request::Size { key } => {
                let mut w = Writer::new(tag::SIZE);
                w.str(key);
                w.finish()
            }
            Request::Remove { keys, force } => {
                let mut w = Writer::new(tag::REMOVE);
                w.strs(keys);
                w.bool(*force);
                w.finish()
            }
            Request::RemoveRegex { pattern, force } => {
                let mut w = Writer::new(tag::REMOVE_REGEX);
                w.str(pattern);
                w.bool(*force);
                w.finish()
            }
            Request::RemoveAll { force } => {
                let mut w = Writer::new(tag::REMOVE_ALL);
                w.bool(*force);
                w.finish()
            }
            Request::Ping => Writer::new(tag::PING).finish(),
        }
    }

    /// Decodes a frame body (without its length prefix).
    pub fn decode(body: &[u8]) -> Result<Request, SchemaError> {
        let mut r = Reader(body);
        let req = match r.u8()? {
            tag::HELLO => Request::Hello {
                magic: r.u32()?,
                version: r.u16()?,
            },
            tag::REGISTER_POOL => Request::RegisterPool { size: r.u64()? },
            tag::PUT => decode_put(&mut r)?,
            tag::GET => {
                let n = r.count(13)?;
                let items = (0..n)
                    .map(|_| Ok((r.str()?, decode_dst(&mut r)?)))
                    .collect::<Result<_, SchemaError>>()?;
                Request::Get { items }
            }
            tag::EXISTS => Request::Exists { keys: r.strs()? },
            tag::SIZE => Request::Size { key: r.str()? },
            tag::REMOVE => Request::Remove {
                keys: r.strs()?,
                force: r.bool()?,
            },
            tag::REMOVE_REGEX => Request::RemoveRegex {
                pattern: r.str()?,
                force: r.bool()?,
            },
            tag::REMOVE_ALL => Request::RemoveAll { force: r.bool()? },
            tag::PING => Request::Ping,
            t => return Err(invalid(format!("unknown request tag {t}"))),
        };
        r.end()?;
        Ok(req)
    }
}

fn encode_put(upsert: bool, config: &ReplicateConfig, items: &[(String, Src)]) -> Vec<u8> {
    let mut w = Writer::new(tag::PUT);
    w.bool(upsert);
    w.config(config);
    w.len(items.len());
    for (k, s) in items {
        w.str(k);
        match s {
            Src::Pool { offset, len } => {
                w.u8(0);
                w.u64(*offset);
                w.u64(*len);
            }
            Src::Inline(b) => {
                w.u8(1);
                w.bytes(b);
            }
        }
    }
    w.finish()
}

fn decode_put(r: &mut Reader<'_>) -> Result<Request, SchemaError> {
    let upsert = r.bool()?;
    let config = r.config()?;
    let n = r.count(9)?;
    let items = (0..n)
        .map(|_| {
            let key = r.str()?;
            let src = match r.u8()? {
                0 => Src::Pool {
                    offset: r.u64()?,
                    len: r.u64()?,
                },
                1 => Src::Inline(r.bytes()?),
                v => return Err(invalid(format!("value source {v}"))),
            };
            Ok((key, src))
        })
        .collect::<Result<_, SchemaError>>()?;
    Ok(Request::Put {
        upsert,
        config,
        items,
    })
}

fn decode_dst(r: &mut Reader<'_>) -> Result<Dst, SchemaError> {
    match r.u8()? {
        0 => Ok(Dst::Pool {
            offset: r.u64()?,
            len: r.u64()?,
        }),
        1 => Ok(Dst::Inline { cap: r.u64()? }),
        v => Err(invalid(format!("destination {v}"))),
    }
}

impl Reply {
    /// The whole frame: length prefix and body.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Reply::Hello { hostname } => {
                let mut w = Writer::new(tag::R_HELLO);
                w.str(hostname);
                w.finish()
            }
            Reply::Refused { code, reason } => {
                let mut w = Writer::new(tag::R_REFUSED);
                w.u32(*code as u32);
                w.str(reason);
                w.finish()
            }
            Reply::Code(c) => {
                let mut w = Writer::new(tag::R_CODE);
                w.u32(*c as u32);
                w.finish()
            }
            Reply::Codes(cs) => {
                let mut w = Writer::new(tag::R_CODES);
                w.len(cs.len());
                cs.iter().for_each(|c| w.u32(*c as u32));
                w.finish()
            }
            Reply::Value(v) => {
                let mut w = Writer::new(tag::R_VALUE);
                w.u64(*v as u64);
                w.finish()
            }
            Reply::Got(gs) => {
                let mut w = Writer::new(tag::R_GOT);
                w.len(gs.len());
                for g in gs {
                    w.u64(g.size_or_code as u64);
                    w.bytes(&g.data);
                }
                w.finish()
            }
        }
    }

    /// Decodes a frame body (without its length prefix).
    pub fn decode(body: &[u8]) -> Result<Reply, SchemaError> {
        let mut r = Reader(body);
        let rep = match r.u8()? {
            tag::R_HELLO => Reply::Hello { hostname: r.str()? },
            tag::R_REFUSED => Reply::Refused {
                code: r.i32()?,
                reason: r.str()?,
            },
            tag::R_CODE => Reply::Code(r.i32()?),
            tag::R_CODES => {
                let n = r.count(4)?;
                Reply::Codes((0..n).map(|_| r.i32()).collect::<Result<_, _>>()?)
            }
            tag::R_VALUE => Reply::Value(r.i64()?),
            tag::R_GOT => {
                let n = r.count(12)?;
                let gs = (0..n)
                    .map(|_| {
                        Ok(Got {
                            size_or_code: r.i64()?,
                            data: r.bytes()?,
                        })
                    })
                    .collect::<Result<_, SchemaError>>()?;
                Reply::Got(gs)
            }
            t => return Err(invalid(format!("unknown reply tag {t}"))),
        };
        r.end()?;
        Ok(rep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body(frame: &[u8]) -> &[u8] {
        let len = frame_len(frame[..4].try_into().unwrap()).unwrap();
        assert_eq!(len, frame.len() - 4);
        &frame[4..]
    }

    #[test]
    fn requests_round_trip() {
        let cfg = ReplicateConfig {
            replica_num: 2,
            preferred_segments: vec!["h:1".into()],
            with_hard_pin: true,
            soft_pin_action: SoftPinAction::Enable,
            soft_pin_ttl_ms: 9,
        };
        let reqs = [
            Request::Hello {
                magic: DUMMY_MAGIC,
                version: DUMMY_VERSION,
            },
            Request::RegisterPool { size: 1 << 30 },
            Request::Put {
                upsert: true,
                config: cfg,
                items: vec![
                    ("a".into(), Src::Pool { offset: 4, len: 5 }),
                    ("b".into(), Src::Inline(b"xyz".to_vec())),
                ],
            },
            Request::Get {
                items: vec![
                    ("a".into(), Dst::Pool { offset: 1, len: 2 }),
                    ("b".into(), Dst::Inline { cap: u64::MAX }),
                ],
            },
            Request::Exists {
                keys: vec!["a".into(), "".into()],
            },
            Request::Size { key: "k".into() },
            Request::Remove {
                keys: vec!["k".into()],
                force: true,
            },
            Request::RemoveRegex {
                pattern: "^a".into(),
                force: false,
            },
            Request::RemoveAll { force: true },
            Request::Ping,
        ];
        for r in reqs {
            assert_eq!(Request::decode(body(&r.encode())).unwrap(), r);
        }
    }

    #[test]
    fn replies_round_trip() {
        let reps = [
            Reply::Hello {
                hostname: "h:2".into(),
            },
            Reply::Refused {
                code: -600,
                reason: "no".into(),
            },
            Reply::Code(-704),
            Reply::Codes(vec![0, -1, 1]),
            Reply::Value(-900),
            Reply::Got(vec![
                Got {
                    size_or_code: 3,
                    data: b"abc".to_vec(),
                },
                Got {
                    size_or_code: -704,
                    data: vec![],
                },
            ]),
        ];
        for r in reps {
            assert_eq!(Reply::decode(body(&r.encode())).unwrap(), r);
        }
    }

    #[test]
    fn forged_counts_and_trailing_bytes_are_refused() {
        // A GET claiming u32::MAX items in a 5-byte body.
        let forged = [tag::GET, 0xff, 0xff, 0xff, 0xff];
        assert!(Request::decode(&forged).is_err());
        let mut ping = Request::Ping.encode();
        ping.push(0);
        assert!(Request::decode(&ping[4..]).is_err());
        assert!(frame_len(((MAX_DUMMY_FRAME_BYTES + 1) as u32).to_le_bytes()).is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_fail(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Request::decode(&bytes);
            let _ = Reply::decode(&bytes);
        }
    }
}
