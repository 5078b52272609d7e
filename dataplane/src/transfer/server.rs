//! Shard side of a data connection.
//!
//! After the handshake the connection carries transfer headers. A WRITE payload goes
//! straight into segment memory; the shard checks the writer's CRC32C before it acks. A
//! READ is answered from segment memory. A header that is malformed, names an unknown
//! segment or a range outside it closes the connection for WRITE (its payload cannot be
//! skipped safely) and is answered with an error for READ.

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use mc_schema::ErrorCode;
use mc_schema::checksum::Crc32c;
use mc_schema::handshake::{HELLO_BYTES, Hello, HelloStatus, Role, encode_ack};
use mc_schema::transfer::{Op, TRANSFER_HEADER_BYTES, TransferHeader};

use crate::shard::ShardState;

/// Granularity of checksumming a payload while it is received.
const CRC_CHUNK_BYTES: usize = 256 * 1024;

/// Payloads up to this size are answered with header and data in one write.
const COALESCE_BYTES: usize = 64 * 1024;

/// Serves one accepted connection until the peer closes it or sends garbage.
pub(crate) async fn serve_connection(
    mut stream: TcpStream,
    state: &ShardState,
) -> Result<(), String> {
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    state.stats.connections_total.inc();
    super::set_socket_buffers(std::os::fd::AsRawFd::as_raw_fd(&stream));
    let mut hello = [0u8; HELLO_BYTES];
    stream
        .read_exact(&mut hello)
        .await
        .map_err(|e| e.to_string())?;
    let hello = Hello::decode(&hello).map_err(|e| format!("bad handshake: {e}"))?;
    let status = hello.check(
        &state.cluster_id,
        &[Role::Client, Role::Agent, Role::Master, Role::Tool],
    );
    stream
        .write_all(&encode_ack(status))
        .await
        .map_err(|e| e.to_string())?;
    if status != HelloStatus::Ok {
        return Err(format!("handshake refused: {status:?}"));
    }
    let mut hdr = [0u8; TRANSFER_HEADER_BYTES];
    let mut out: Vec<u8> = Vec::with_capacity(TRANSFER_HEADER_BYTES + COALESCE_BYTES);
    loop {
        match stream.read(&mut hdr[..1]).await {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
        stream
            .read_exact(&mut hdr[1..])
            .await
            .map_err(|e| e.to_string())?;
        let h = TransferHeader::decode(&hdr).map_err(|e| format!("bad transfer header: {e}"))?;
        state.in_flight.set(state.in_flight.get() + 1);
        let t0 = std::time::Instant::now();
        let r = match h.op {
            Op::Write => write(&mut stream, state, &h).await,
            Op::Read => read(&mut stream, state, &h, &mut out).await,
            other => Err(format!("unexpected op {other:?} from a client")),
        };
        state.in_flight.set(state.in_flight.get() - 1);
        let ok = matches!(r, Ok(0));
        match h.op {
            Op::Write => state.stats.writes.record(h.length, ok, t0.elapsed()),
            Op::Read => state.stats.reads.record(h.length, ok, t0.elapsed()),
            _ => {}
        }
        r?;
    }
}

/// Serves one WRITE; returns the status its ack carried.
async fn write(
    stream: &mut TcpStream,
    state: &ShardState,
    h: &TransferHeader,
) -> Result<i32, String> {
    let Some(seg) = state
        .segment(h.segment_id)
        .filter(|s| s.contains(h.offset, h.length))
    else {
        let ack = h.answer(Op::WriteAck, ErrorCode::InvalidWrite.code());
        let _ = stream.write_all(&ack.encode()).await;
        return Err(format!(
            "write outside any segment: segment {:#x} offset {} length {}",
            h.segment_id, h.offset, h.length
        ));
    };
    // SAFETY: range checked just above; the master granted this range to this writer only.
    let dst = unsafe { seg.slice_mut(h.offset, h.length) };
    // Checksum each chunk as it lands, while the kernel keeps receiving the next one.
    let mut crc = Crc32c::default();
    for chunk in dst.chunks_mut(CRC_CHUNK_BYTES) {
        stream.read_exact(chunk).await.map_err(|e| e.to_string())?;
        crc.update(chunk);
    }
    let status = if crc.finish() == h.crc32c {
        0
    } else {
        state.stats.crc_failures_total.inc();
        ErrorCode::ChecksumMismatch.code()
    };
    let ack = h.answer(Op::WriteAck, status);
    stream
        .write_all(&ack.encode())
        .await
        .map_err(|e| e.to_string())?;
    Ok(status)
}

async fn read(
    stream: &mut TcpStream,
    state: &ShardState,
    h: &TransferHeader,
    out: &mut Vec<u8>,
) -> Result<i32, String> {
    let Some(seg) = state
        .segment(h.segment_id)
        .filter(|s| s.contains(h.offset, h.length))
    else {
        let resp = h.answer(Op::ReadData, ErrorCode::InvalidRead.code());
        stream
            .write_all(&resp.encode())
            .await
            .map_err(|e| e.to_string())?;
        return Ok(ErrorCode::InvalidRead.code());
    };
    // SAFETY: range checked just above; complete objects are not written while readable.
    let src = unsafe { seg.slice(h.offset, h.length) };
    let resp = h.answer(Op::ReadData, 0);
    if src.len() <= COALESCE_BYTES {
        out.clear();
        out.extend_from_slice(&resp.encode());
        out.extend_from_slice(src);
        stream.write_all(out).await.map_err(|e| e.to_string())?;
    } else {
        stream
            .write_all(&resp.encode())
            .await
            .map_err(|e| e.to_string())?;
        stream.write_all(src).await.map_err(|e| e.to_string())?;
    }
    Ok(0)
}
