//! Blocking client side of the data port: one connection to one shard, I/O on the
//! caller's thread.
//!
//! A connection that saw any error is in an unknown state; callers drop it. Payloads are
//! sent with the header in one vectored write and received straight into the caller's
//! buffer.

use std::io::{self, IoSlice, Read, Write};
use std::mem::MaybeUninit;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::header::{
    FLAG_OBJECT_INFO, FLAG_PROBE, FLAG_TOKEN, FLAG_VALIDATE, ObjectInfo, Op, TRANSFER_HEADER_BYTES,
    TransferHeader, encode_token,
};
use crate::net;
use crate::uninit;
use mc_schema::ErrorCode;
use mc_schema::checksum::Crc32c;
use mc_schema::handshake::Role;
use mc_schema::token::WriteToken;

/// Granularity of checksumming a payload while it is received.
const CRC_CHUNK_BYTES: usize = 256 * 1024;

/// Errors of a transfer.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The shard could not be reached.
    #[error("cannot connect to shard {endpoint}: {reason}")]
    Connect {
        /// Shard endpoint.
        endpoint: String,
        /// Cause.
        reason: String,
    },
    /// The deadline passed.
    #[error("shard {endpoint} did not answer before the deadline")]
    Timeout {
        /// Shard endpoint.
        endpoint: String,
    },
    /// The connection failed mid-transfer.
    #[error("transfer with shard {endpoint} failed: {source}")]
    Io {
        /// Shard endpoint.
        endpoint: String,
        /// Cause.
        source: io::Error,
    },
    /// The shard answered with an error code.
    #[error("shard {endpoint} refused the transfer: {code}")]
    Refused {
        /// Shard endpoint.
        endpoint: String,
        /// Mooncake code.
        code: ErrorCode,
    },
    /// The shard's answer made no sense.
    #[error("bad answer from shard {endpoint}: {reason}")]
    Protocol {
        /// Shard endpoint.
        endpoint: String,
        /// Cause.
        reason: String,
    },
}

impl TransferError {
    /// Mooncake code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            TransferError::Refused { code, .. } => *code,
            TransferError::Timeout { .. } => ErrorCode::RpcTimeout,
            _ => ErrorCode::TransferFail,
        }
    }
}

/// One connection to a shard's data port.
pub struct DataConn {
    stream: TcpStream,
    endpoint: String,
    next_id: u64,
}

fn timeout_kind(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl DataConn {
    /// Connects and handshakes within `connect_timeout`.
    pub fn connect(
        endpoint: &str,
        cluster_id: &str,
        connect_timeout: Duration,
    ) -> Result<DataConn, TransferError> {
        let err = |reason: String| TransferError::Connect {
            endpoint: endpoint.to_string(),
            reason,
        };
        let mut stream =
            net::connect_tcp(endpoint, connect_timeout).map_err(|e| err(e.to_string()))?;
        net::handshake(&mut stream, Role::Client, cluster_id, connect_timeout)
            .map_err(|e| err(e.to_string()))?;
        net::set_socket_buffers(std::os::fd::AsRawFd::as_raw_fd(&stream));
        Ok(DataConn {
            stream,
            endpoint: endpoint.to_string(),
            next_id: 1,
        })
    }

    /// The shard endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn io(&self, e: io::Error) -> TransferError {
        if timeout_kind(&e) {
            TransferError::Timeout {
                endpoint: self.endpoint.clone(),
            }
        } else {
            TransferError::Io {
                endpoint: self.endpoint.clone(),
                source: e,
            }
        }
    }

    /// Arms the socket's timeouts for everything up to `deadline` (a pipelined exchange
    /// arms once, then sends and receives several transfers).
    pub fn arm_deadline(&self, deadline: Instant) -> Result<(), TransferError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(TransferError::Timeout {
                endpoint: self.endpoint.clone(),
            });
        }
        self.stream
            .set_read_timeout(Some(left))
            .map_err(|e| self.io(e))?;
        self.stream
            .set_write_timeout(Some(left))
            .map_err(|e| self.io(e))
    }

    fn header(
        &mut self,
        op: Op,
        segment_id: u64,
        offset: u64,
        length: u64,
        generation: u64,
    ) -> TransferHeader {
        let mut h = TransferHeader::request(op, segment_id, offset, length);
        h.generation = generation;
        h.request_id = self.next_id;
        self.next_id += 1;
        h
    }

    fn read_answer(&mut self, want: Op, id: u64) -> Result<TransferHeader, TransferError> {
        let mut b = [0u8; TRANSFER_HEADER_BYTES];
        self.stream.read_exact(&mut b).map_err(|e| self.io(e))?;
        let a = TransferHeader::decode(&b).map_err(|e| TransferError::Protocol {
            endpoint: self.endpoint.clone(),
            reason: e.to_string(),
        })?;
        if a.op != want || a.request_id != id {
            return Err(TransferError::Protocol {
                endpoint: self.endpoint.clone(),
                reason: format!(
                    "expected {want:?} for request {id}, got {:?} for {}",
                    a.op, a.request_id
                ),
            });
        }
        if a.status != 0 {
            return Err(TransferError::Refused {
                endpoint: self.endpoint.clone(),
                code: ErrorCode::from_code(a.status),
            });
        }
        Ok(a)
    }

    /// Sends a WRITE of `data` at `offset` of `segment_id` (`crc` = CRC32C of `data`, checked
    /// by the shard) without waiting for the ack; returns the request id for
    /// [`recv_write_ack`](Self::recv_write_ack).
    pub fn send_write(
        &mut self,
        segment_id: u64,
        offset: u64,
        generation: u64,
        data: &[u8],
        crc: u32,
    ) -> Result<u64, TransferError> {
        self.send_object_write((segment_id, offset, generation), data, crc, None, None)
    }

    /// [`send_write`](Self::send_write) of one slice of an object: `object` (its info and
    /// key) travels between header and payload so the shard can index the slice, after the
    /// slice's write `token` when the master gave one. Everything leaves in one vectored
    /// write.
    pub fn send_object_write(
        &mut self,
        (segment_id, offset, generation): (u64, u64, u64),
        data: &[u8],
        crc: u32,
        token: Option<&WriteToken>,
        object: Option<(&ObjectInfo, &str)>,
    ) -> Result<u64, TransferError> {
        let mut h = self.header(Op::Write, segment_id, offset, data.len() as u64, generation);
        h.crc32c = crc;
        let tb = token.map(|t| {
            h.flags |= FLAG_TOKEN;
            encode_token(t)
        });
        let info = object.map(|(i, key)| {
            h.flags |= FLAG_OBJECT_INFO;
            (i.encode(key.len() as u16), key.as_bytes())
        });
        let hb = h.encode();
        let (ib, kb): (&[u8], &[u8]) = match &info {
            Some((ib, kb)) => (ib, kb),
            None => (&[], &[]),
        };
        let tb: &[u8] = tb.as_ref().map_or(&[], |b| b);
        write_all_vectored(&mut self.stream, &[&hb, tb, ib, kb, data]).map_err(|e| self.io(e))?;
        Ok(h.request_id)
    }

    /// Waits for the ack of WRITE `id` (acks come in request order).
    pub fn recv_write_ack(&mut self, id: u64) -> Result<(), TransferError> {
        self.read_answer(Op::WriteAck, id).map(|_| ())
    }

    /// Sends a READ of `len` bytes at `offset` of `segment_id` without waiting; returns the
    /// request id for [`recv_read`](Self::recv_read).
    pub fn send_read(
        &mut self,
        segment_id: u64,
        offset: u64,
        generation: u64,
        len: u64,
    ) -> Result<u64, TransferError> {
        let h = self.header(Op::Read, segment_id, offset, len, generation);
        self.stream.write_all(&h.encode()).map_err(|e| self.io(e))?;
        Ok(h.request_id)
    }

    /// [`send_read`](Self::send_read) of a slice the caller expects to be the one of
    /// `generation` with CRC32C `crc` ([`FLAG_VALIDATE`]): the shard refuses it with
    /// REPLICA_IS_GONE unless its index holds exactly that slice.
    pub fn send_validated_read(
        &mut self,
        segment_id: u64,
        offset: u64,
        generation: u64,
        len: u64,
        crc: u32,
    ) -> Result<u64, TransferError> {
        let mut h = self.header(Op::Read, segment_id, offset, len, generation);
        h.flags |= FLAG_VALIDATE;
        h.crc32c = crc;
        self.stream.write_all(&h.encode()).map_err(|e| self.io(e))?;
        Ok(h.request_id)
    }

    /// Sends a probe ([`FLAG_PROBE`]) of the slice [`send_validated_read`] would read: the
    /// shard answers whether its index holds exactly that slice, without sending it.
    /// Returns the request id for [`recv_probe`](Self::recv_probe).
    ///
    /// [`send_validated_read`]: Self::send_validated_read
    pub fn send_probe(
        &mut self,
        segment_id: u64,
        offset: u64,
        generation: u64,
        len: u64,
        crc: u32,
    ) -> Result<u64, TransferError> {
        let mut h = self.header(Op::Read, segment_id, offset, len, generation);
        h.flags |= FLAG_VALIDATE | FLAG_PROBE;
        h.crc32c = crc;
        self.stream.write_all(&h.encode()).map_err(|e| self.io(e))?;
        Ok(h.request_id)
    }

    /// Receives the answer to probe `id`: `Ok` when the shard holds the slice, `Refused`
    /// (REPLICA_IS_GONE) when it does not. An answer that is not a probe's (a shard that
    /// ignores the flag and sends the payload) is a protocol error: the connection must be
    /// dropped, as after any error.
    pub fn recv_probe(&mut self, id: u64) -> Result<(), TransferError> {
        let a = self.read_answer(Op::ReadData, id)?;
        if a.flags & FLAG_PROBE == 0 || a.length != 0 {
            return Err(TransferError::Protocol {
                endpoint: self.endpoint.clone(),
                reason: format!(
                    "a probe was answered with {} bytes of data (the shard predates probes)",
                    a.length
                ),
            });
        }
        Ok(())
    }

    /// Receives the answer to READ `id` into `buf` (exactly the length asked for) and
    /// returns its CRC32C, computed chunk by chunk as the bytes arrive.
    pub fn recv_read(&mut self, id: u64, buf: &mut [u8]) -> Result<u32, TransferError> {
        self.recv_read_uninit(id, uninit::as_uninit_mut(buf))
    }

    /// [`recv_read`](Self::recv_read) into memory that need not be initialised: on `Ok`
    /// every byte of `buf` holds the payload; on an error its contents are unspecified.
    pub fn recv_read_uninit(
        &mut self,
        id: u64,
        buf: &mut [MaybeUninit<u8>],
    ) -> Result<u32, TransferError> {
        let a = self.read_answer(Op::ReadData, id)?;
        if a.length != buf.len() as u64 {
            return Err(TransferError::Protocol {
                endpoint: self.endpoint.clone(),
                reason: format!("asked for {} bytes, shard sends {}", buf.len(), a.length),
            });
        }
        let mut crc = Crc32c::default();
        for chunk in buf.chunks_mut(CRC_CHUNK_BYTES) {
            uninit::recv_exact(&self.stream, chunk, |run| crc.update(run))
                .map_err(|e| self.io(e))?;
        }
        Ok(crc.finish())
    }

    /// Writes `data` at `offset` of `segment_id` and waits for the shard's ack; `crc` is
    /// the CRC32C of `data`, which the shard checks before it acks.
    pub fn write(
        &mut self,
        segment_id: u64,
        offset: u64,
        generation: u64,
        data: &[u8],
        crc: u32,
        deadline: Instant,
    ) -> Result<(), TransferError> {
        self.arm_deadline(deadline)?;
        let id = self.send_write(segment_id, offset, generation, data, crc)?;
        self.recv_write_ack(id)
    }

    /// Reads `buf.len()` bytes at `offset` of `segment_id` into `buf` and returns their
    /// CRC32C.
    pub fn read_into(
        &mut self,
        segment_id: u64,
        offset: u64,
        generation: u64,
        buf: &mut [u8],
        deadline: Instant,
    ) -> Result<u32, TransferError> {
        self.arm_deadline(deadline)?;
        let id = self.send_read(segment_id, offset, generation, buf.len() as u64)?;
        self.recv_read(id, buf)
    }
}

/// Writes `parts` (header, token, object info, key, payload) with as few syscalls as the kernel
/// allows (one, usually).
fn write_all_vectored(stream: &mut TcpStream, parts: &[&[u8]; 5]) -> io::Result<()> {
    let mut bufs = parts.map(IoSlice::new);
    let mut slices: &mut [IoSlice<'_>] = &mut bufs;
    while !slices.is_empty() {
        match stream.write_vectored(slices) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "connection closed",
                ));
            }
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
