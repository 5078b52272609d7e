//! Shard side of a data connection.
//!
//! After the handshake the connection carries transfer headers (`mc_transfer::header`). A
//! WRITE payload goes straight into segment memory; the shard checks the writer's CRC32C
//! before it acks. A READ is answered from segment memory. Every range is taken through
//! [`InFlight`](crate::inflight::InFlight), which refuses a transfer that overlaps a write
//! in flight (answered `OBJECT_REPLICA_BUSY`; a busy WRITE's payload is skipped). A WRITE
//! that names an unknown segment or a range outside it is answered with an error and closes
//! the connection (its length may be garbage, so its payload cannot be skipped safely); a
//! refused READ is answered with an error and the connection goes on.

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use mc_schema::ErrorCode;
use mc_schema::checksum::Crc32c;
use mc_schema::handshake::{HELLO_BYTES, Hello, HelloStatus, Role, encode_ack};
use mc_transfer::header::{Op, TRANSFER_HEADER_BYTES, TransferHeader};

use crate::DataplaneError;
use crate::inflight::RangeError;
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
            Op::Write => (write(&mut stream, state, &h).await, &state.stats.writes),
            Op::Read => (
                read(&mut stream, state, &h, &mut out).await,
                &state.stats.reads,
            ),
            other => return Err(DataplaneError::UnexpectedOp(other)),
        };
        stats.record(h.length, matches!(r, Ok(0)), t0.elapsed());
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

/// Serves one WRITE; returns the status its ack carried.
async fn write(stream: &mut TcpStream, state: &ShardState, h: &TransferHeader) -> Result<i32> {
    let seg = state.segment(h.segment_id);
    let view = match &seg {
        Some(seg) => state.ranges.write(seg, h.offset, h.length),
        None => Err(RangeError::OutOfBounds),
    };
    let mut dst = match view {
        Ok(v) => v,
        Err(e) => {
            let code = refusal(state, e, ErrorCode::InvalidWrite);
            // A busy range lies inside a known segment, so its length is sane and the
            // payload can be skipped to keep the connection; anything else may be garbage.
            let keep = e == RangeError::Busy && skip(stream, h.length).await.is_ok();
            let ack = h.answer(Op::WriteAck, code.code());
            let _ = stream.write_all(&ack.encode()).await;
            if keep {
                return Ok(code.code());
            }
            return Err(DataplaneError::WriteRefused {
                segment_id: h.segment_id,
                offset: h.offset,
                length: h.length,
                code,
            });
        }
    };
    // Checksum each chunk as it lands, while the kernel keeps receiving the next one.
    let mut crc = Crc32c::default();
    for chunk in dst.chunks_mut(CRC_CHUNK_BYTES) {
        stream.read_exact(chunk).await.map_err(io)?;
        crc.update(chunk);
    }
    drop(dst);
    let status = if crc.finish() == h.crc32c {
        0
    } else {
        state.stats.crc_failures_total.inc();
        ErrorCode::ChecksumMismatch.code()
    };
    let ack = h.answer(Op::WriteAck, status);
    stream.write_all(&ack.encode()).await.map_err(io)?;
    Ok(status)
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

/// Serves one READ; returns the status its answer carried.
async fn read(
    stream: &mut TcpStream,
    state: &ShardState,
    h: &TransferHeader,
    out: &mut Vec<u8>,
) -> Result<i32> {
    let seg = state.segment(h.segment_id);
    let view = match &seg {
        Some(seg) => state.ranges.read(seg, h.offset, h.length),
        None => Err(RangeError::OutOfBounds),
    };
    let src = match view {
        Ok(v) => v,
        Err(e) => {
            let code = refusal(state, e, ErrorCode::InvalidRead).code();
            let resp = h.answer(Op::ReadData, code);
            stream.write_all(&resp.encode()).await.map_err(io)?;
            return Ok(code);
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
