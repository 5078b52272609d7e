//! Shard side of a data connection.
//!
//! After the handshake the connection carries transfer headers (`mc_transfer::header`). A
//! WRITE payload goes straight into segment memory, once its write token passed
//! ([`capability`](crate::capability)); the shard checks the writer's CRC32C before it acks. A READ is answered from segment memory. Every range is taken through
//! [`InFlight`](crate::inflight::InFlight), which refuses a transfer that overlaps a write
//! in flight (answered `OBJECT_REPLICA_BUSY`; a busy WRITE's payload is skipped). A WRITE
//! that names an unknown segment or a range outside it is answered with an error and closes
//! the connection (its length may be garbage, so its payload cannot be skipped safely); a
//! refused READ is answered with an error and the connection goes on.

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use mc_schema::ErrorCode;
use mc_schema::checksum::Crc32c;
use mc_schema::generation::term_of;
use mc_schema::handshake::{HELLO_BYTES, Hello, HelloStatus, Role, encode_ack};
use mc_transfer::header::{
    FLAG_OBJECT_INFO, FLAG_PROBE, FLAG_TOKEN, FLAG_VALIDATE, OBJECT_INFO_BYTES, ObjectInfo, Op,
    TOKEN_BYTES, TRANSFER_HEADER_BYTES, TransferHeader, decode_token,
};

use crate::DataplaneError;
use crate::index::{Entry, EntryState};
use crate::inflight::RangeError;
use crate::ssd::{ReadError, SsdStore};
use crate::state::ShardState;

/// Granularity of checksumming a payload while it is received.
const CRC_CHUNK_BYTES: usize = 256 * 1024;

/// Payloads up to this size are answered with header and data in one write.
const COALESCE_BYTES: usize = 64 * 1024;

type Result<T> = std::result::Result<T, DataplaneError>;

fn io(source: std::io::Error) -> DataplaneError {
    DataplaneError::Connection { source }
}

/// Serves one accepted connection until the peer closes it or sends garbage.
pub(crate) async fn serve_connection(mut stream: TcpStream, state: &ShardState) -> Result<()> {
    stream.set_nodelay(true).map_err(|e| io(e.into()))?;
    state.stats.connections_total.inc();
    mc_transfer::net::set_socket_buffers(std::os::fd::AsRawFd::as_raw_fd(&stream));
    handshake(&mut stream, state).await?;
    let mut hdr = [0u8; TRANSFER_HEADER_BYTES];
    let mut out: Vec<u8> = Vec::with_capacity(TRANSFER_HEADER_BYTES + COALESCE_BYTES);
    let mut key: Vec<u8> = Vec::with_capacity(256);
    loop {
        match stream.read(&mut hdr[..1]).await {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(io(e)),
        }
        stream.read_exact(&mut hdr[1..]).await.map_err(io)?;
        let h = TransferHeader::decode(&hdr).map_err(DataplaneError::BadHeader)?;
        let t0 = std::time::Instant::now();
        let (r, stats) = match h.op {
            Op::Write => (
                write(&mut stream, state, &h, &mut key).await,
                &state.stats.writes,
            ),
            Op::Read => (
                read(&mut stream, state, &h, &mut out).await,
                &state.stats.reads,
            ),
            other => return Err(DataplaneError::UnexpectedOp(other)),
        };
        // A probe moves no payload.
        let bytes = if h.flags & FLAG_PROBE != 0 {
            0
        } else {
            h.length
        };
        stats.record(bytes, matches!(r, Ok(0)), t0.elapsed());
        r?;
    }
}

/// Reads the peer's Hello and answers it; a refused peer ends the connection.
async fn handshake(stream: &mut TcpStream, state: &ShardState) -> Result<()> {
    let mut hello = [0u8; HELLO_BYTES];
    stream.read_exact(&mut hello).await.map_err(io)?;
    let hello = Hello::decode(&hello).map_err(DataplaneError::BadHandshake)?;
    let status = hello.check(
        &state.cluster_id,
        &[Role::Client, Role::Agent, Role::Master, Role::Tool],
    );
    stream.write_all(&encode_ack(status)).await.map_err(io)?;
    if status != HelloStatus::Ok {
        return Err(DataplaneError::HandshakeRefused(status));
    }
    Ok(())
}

/// The status a refused range is answered with, counted in the shard's stats.
fn refusal(state: &ShardState, e: RangeError, out_of_bounds: ErrorCode) -> ErrorCode {
    match e {
        RangeError::OutOfBounds => out_of_bounds,
        RangeError::Busy => {
            state.stats.range_busy_total.inc();
            ErrorCode::ObjectReplicaBusy
        }
    }
}

/// Reads the object info and key that follow a WRITE header flagged with them.
async fn read_object_info(stream: &mut TcpStream, key: &mut Vec<u8>) -> Result<ObjectInfo> {
    let mut b = [0u8; OBJECT_INFO_BYTES];
    stream.read_exact(&mut b).await.map_err(io)?;
    let (info, key_len) = ObjectInfo::decode(&b).map_err(DataplaneError::BadObjectInfo)?;
    key.resize(key_len, 0);
    stream.read_exact(key).await.map_err(io)?;
    if std::str::from_utf8(key).is_err() {
        return Err(DataplaneError::BadObjectInfo(
            mc_schema::SchemaError::Invalid("object key is not UTF-8".into()),
        ));
    }
    Ok(info)
}

/// Answers a WRITE that is refused with `code`. When the range lies inside a known segment
/// (`skippable`) its length is sane, so the payload is skipped and the connection kept;
/// otherwise the length may be garbage and the connection closes.
async fn refuse_write(
    stream: &mut TcpStream,
    h: &TransferHeader,
    code: ErrorCode,
    skippable: bool,
) -> Result<i32> {
    let keep = skippable && skip(stream, h.length).await.is_ok();
    let ack = h.answer(Op::WriteAck, code.code());
    let _ = stream.write_all(&ack.encode()).await;
    if keep {
        return Ok(code.code());
    }
    Err(DataplaneError::WriteRefused {
        segment_id: h.segment_id,
        offset: h.offset,
        length: h.length,
        code,
    })
}

/// Serves one WRITE; returns the status its ack carried. `key` is a reusable buffer.
async fn write(
    stream: &mut TcpStream,
    state: &ShardState,
    h: &TransferHeader,
    key: &mut Vec<u8>,
) -> Result<i32> {
    let token = match h.flags & FLAG_TOKEN {
        0 => None,
        _ => {
            let mut b = [0u8; TOKEN_BYTES];
            stream.read_exact(&mut b).await.map_err(io)?;
            Some(decode_token(&b))
        }
    };
    let object = match h.flags & FLAG_OBJECT_INFO {
        0 => None,
        _ => Some(read_object_info(stream, key).await?),
    };
    let seg = state.segment(h.segment_id);
    let in_range = seg.as_ref().is_some_and(|s| s.contains(h.offset, h.length));
    // Before any byte lands: only what the master allocated, while it is allocated.
    let allowed = state.caps.borrow().check(
        (h.segment_id, h.offset, h.length, h.generation),
        token.as_ref(),
        mc_schema::token::unix_ms_now(),
    );
    if let Err(why) = allowed {
        state
            .stats
            .refused_writes_total
            .with_label_values(&[why.label()])
            .inc();
        return refuse_write(stream, h, why.code(), in_range).await;
    }
    // An allocation of a deposed master (generation 0 = unchecked, raw tools).
    if h.generation != 0 && term_of(h.generation) < state.term.get() {
        state.stats.stale_term_writes_total.inc();
        return refuse_write(stream, h, ErrorCode::InvalidVersion, in_range).await;
    }
    let view = match &seg {
        Some(seg) => state.ranges.write(seg, h.offset, h.length),
        None => Err(RangeError::OutOfBounds),
    };
    let mut dst = match view {
        Ok(v) => v,
        Err(e) => {
            let code = refusal(state, e, ErrorCode::InvalidWrite);
            return refuse_write(stream, h, code, e == RangeError::Busy).await;
        }
    };
    // Whatever the index held in these bytes is being replaced.
    state
        .index
        .borrow_mut()
        .clear_range(h.segment_id, h.offset, h.length);
    // Checksum each chunk as it lands, while the kernel keeps receiving the next one.
    let mut crc = Crc32c::default();
    for chunk in dst.chunks_mut(CRC_CHUNK_BYTES) {
        stream.read_exact(chunk).await.map_err(io)?;
        crc.update(chunk);
    }
    drop(dst);
    // The payload took a while: the segment may have been unmounted, or a new master may
    // have taken over, meanwhile. Such a write is not acknowledged, nor indexed.
    let same_segment = state
        .segment(h.segment_id)
        .zip(seg.as_ref())
        .is_some_and(|(now, then)| std::rc::Rc::ptr_eq(&now, then));
    let stale = h.generation != 0 && term_of(h.generation) < state.term.get();
    let status = if injected_write_failure() {
        ErrorCode::TransferFail.code()
    } else if crc.finish() != h.crc32c {
        state.stats.crc_failures_total.inc();
        ErrorCode::ChecksumMismatch.code()
    } else if !same_segment {
        ErrorCode::InvalidWrite.code()
    } else if stale {
        state.stats.stale_term_writes_total.inc();
        ErrorCode::InvalidVersion.code()
    } else {
        // Generation 0 (raw tools) is neither checked nor indexed.
        if let (Some(info), true) = (object, h.generation != 0) {
            record(state, h, &info, key);
        }
        0
    };
    let ack = h.answer(Op::WriteAck, status);
    stream.write_all(&ack.encode()).await.map_err(io)?;
    Ok(status)
}

/// Failpoint `shard::write::before_ack`, between receiving a write and acking it: `return`
/// answers `TRANSFER_FAIL` (nothing indexed), `sleep(ms)` stalls the shard, `panic` kills the
/// shard thread. Always false without the `failpoints` feature.
fn injected_write_failure() -> bool {
    #[cfg(feature = "failpoints")]
    if fail::eval("shard::write::before_ack", |_| ()).is_some() {
        return true;
    }
    false
}

/// Records a slice that landed intact in the shard's object index. A failure to record
/// (the index could not grow) is counted and logged: the write itself succeeded, only its
/// recovery after a master loss is at stake.
fn record(state: &ShardState, h: &TransferHeader, info: &ObjectInfo, key: &[u8]) {
    let e = Entry {
        segment_id: h.segment_id,
        offset: h.offset,
        length: h.length,
        generation: h.generation,
        put_generation: info.put_generation,
        object_size: info.object_size,
        slice_index: info.slice_index,
        slice_count: info.slice_count,
        crc32c: h.crc32c,
        replica_index: info.replica_index,
        pins: info.pins,
        state: EntryState::Written,
    };
    let mut index = state.index.borrow_mut();
    if let Err(err) = index.insert(&e, key) {
        state.stats.index_errors_total.inc();
        tracing::warn!(
            "slice not indexed (it is stored, but a master restart would lose it): {err}"
        );
    }
    state.stats.index_entries.set(index.len() as u64);
    state.stats.index_bytes.set(index.file_bytes() as u64);
}

/// Whether the index holds the slice a validated READ names; counts the ones it does.
fn holds(state: &ShardState, h: &TransferHeader) -> bool {
    let ok = state
        .index
        .borrow()
        .holds(h.segment_id, h.offset, h.length, h.generation, h.crc32c);
    if ok {
        state.stats.validated_reads_total.inc();
        state.hits.borrow_mut().note(h.segment_id, h.offset);
    }
    ok
}

/// Reads and drops `len` payload bytes.
async fn skip(stream: &mut TcpStream, mut len: u64) -> std::io::Result<()> {
    let mut scratch = [0u8; 16 * 1024];
    while len > 0 {
        let n = len.min(scratch.len() as u64) as usize;
        stream.read_exact(&mut scratch[..n]).await?;
        len -= n as u64;
    }
    Ok(())
}

/// Serves a READ of the shard's disk segment: the record is read through the shard's ring
/// into a DMA buffer, its header and payload checked, and the payload sent. A record that
/// fails its checks is never sent (CHECKSUM_MISMATCH); one that is not there (deleted, or
/// another generation) is answered REPLICA_IS_GONE.
async fn read_ssd(stream: &mut TcpStream, ssd: &SsdStore, h: &TransferHeader) -> Result<i32> {
    // A read of a cached location names the CRC it expects, too.
    let validated = h.flags & FLAG_VALIDATE == 0
        || ssd
            .get(h.offset, h.generation)
            .is_some_and(|e| e.value_crc == h.crc32c);
    let read = if validated {
        ssd.read(h.offset, h.generation, h.length).await
    } else {
        Err(ReadError::Gone)
    };
    let code = match read {
        Ok((buf, at)) => {
            ssd.stats.reads_total.inc();
            ssd.stats.read_bytes_total.inc_by(h.length);
            let resp = h.answer(Op::ReadData, 0);
            stream.write_all(&resp.encode()).await.map_err(io)?;
            let payload = &buf[at..at + h.length as usize];
            stream.write_all(payload).await.map_err(io)?;
            return Ok(0);
        }
        Err(ReadError::Gone) => ErrorCode::ReplicaIsGone,
        Err(ReadError::Corrupt) => ErrorCode::ChecksumMismatch,
        Err(ReadError::Io(e)) => {
            tracing::warn!("SSD read failed: {e}");
            ErrorCode::TransferFail
        }
    };
    let resp = h.answer(Op::ReadData, code.code());
    stream.write_all(&resp.encode()).await.map_err(io)?;
    Ok(code.code())
}

/// Answers a probe ([`FLAG_PROBE`]): whether the index holds the slice the header names,
/// checked as a validated READ checks it (hits noted the same way), with no payload. An SSD
/// slice is checked against the disk index without reading its record. The answer carries
/// `length` 0 and the probe flag, so it cannot be taken for a data answer.
async fn probe(stream: &mut TcpStream, state: &ShardState, h: &TransferHeader) -> Result<i32> {
    state.stats.probes_total.inc();
    let held = match state.ssd.as_ref().filter(|s| s.segment_id == h.segment_id) {
        Some(ssd) => ssd.get(h.offset, h.generation).is_some_and(|e| {
            e.generation == h.generation && e.value_len == h.length && e.value_crc == h.crc32c
        }),
        None => state.segment(h.segment_id).is_some() && holds(state, h),
    };
    let code = if held {
        0
    } else {
        state.stats.gone_reads_total.inc();
        ErrorCode::ReplicaIsGone.code()
    };
    let mut resp = h.answer(Op::ReadData, code);
    resp.length = 0;
    stream.write_all(&resp.encode()).await.map_err(io)?;
    Ok(code)
}

/// Serves one READ; returns the status its answer carried.
async fn read(
    stream: &mut TcpStream,
    state: &ShardState,
    h: &TransferHeader,
    out: &mut Vec<u8>,
) -> Result<i32> {
    if h.flags & FLAG_PROBE != 0 {
        return probe(stream, state, h).await;
    }
    if let Some(ssd) = state.ssd.as_ref().filter(|s| s.segment_id == h.segment_id) {
        return read_ssd(stream, ssd, h).await;
    }
    let seg = state.segment(h.segment_id);
    let view = match &seg {
        Some(seg) => state.ranges.read(seg, h.offset, h.length),
        None => Err(RangeError::OutOfBounds),
    };
    let src = match view.map_err(|e| refusal(state, e, ErrorCode::InvalidRead)) {
        // Checked after the range is held: no write can replace the slice until it is sent.
        Ok(v) if h.flags & FLAG_VALIDATE != 0 && !holds(state, h) => {
            drop(v);
            state.stats.gone_reads_total.inc();
            Err(ErrorCode::ReplicaIsGone)
        }
        other => other,
    };
    let src = match src {
        Ok(v) => v,
        Err(code) => {
            let resp = h.answer(Op::ReadData, code.code());
            stream.write_all(&resp.encode()).await.map_err(io)?;
            return Ok(code.code());
        }
    };
    let resp = h.answer(Op::ReadData, 0);
    if src.len() <= COALESCE_BYTES {
        out.clear();
        out.extend_from_slice(&resp.encode());
        out.extend_from_slice(&src);
        stream.write_all(out).await.map_err(io)?;
    } else {
        stream.write_all(&resp.encode()).await.map_err(io)?;
        stream.write_all(&src).await.map_err(io)?;
    }
    Ok(0)
}
