//! Blocking RPC client: one TCP connection, I/O on the caller's thread.
//!
//! A connection that saw any transport error is left in an unknown state; callers drop it
//! and open a new one (the client crate's pool does that).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mc_schema::frame::{FRAME_HEADER_BYTES, FrameHeader};
use mc_schema::handshake::Role;
use mc_schema::limits::MAX_RPC_FRAME_BYTES;
use mc_schema::msg::{Builder, Request, Response, decode_response, encode_request};
use mc_transfer::net::{connect_tcp, handshake};

use crate::RpcError;

/// One connection to the master.
pub struct RpcClient {
    stream: TcpStream,
    addr: String,
    fbb: Builder,
    out: Vec<u8>,
    inbuf: Vec<u8>,
    next_id: u64,
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl RpcClient {
    /// Connects and handshakes.
    pub fn connect(
        addr: &str,
        role: Role,
        cluster_id: &str,
        connect_timeout: Duration,
    ) -> Result<RpcClient, RpcError> {
        let mut stream =
            connect_tcp(addr, connect_timeout).map_err(|source| RpcError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        handshake(&mut stream, role, cluster_id, connect_timeout).map_err(|source| {
            RpcError::Handshake {
                addr: addr.to_string(),
                source,
            }
        })?;
        Ok(RpcClient {
            stream,
            addr: addr.to_string(),
            fbb: Builder::with_capacity(1024),
            out: Vec::with_capacity(1024),
            inbuf: Vec::with_capacity(1024),
            next_id: 1,
        })
    }

    /// Address this client talks to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one request and waits for its answer until `deadline`.
    pub fn call(&mut self, req: &Request, deadline: Instant) -> Result<Response, RpcError> {
        let id = self.send(req, deadline)?;
        self.recv(id, deadline)
    }

    /// Sends several requests back to back, then collects their answers in order
    /// (pipelining: one round trip for all of them).
    pub fn call_many(
        &mut self,
        reqs: &[Request],
        deadline: Instant,
    ) -> Result<Vec<Response>, RpcError> {
        let mut ids = Vec::with_capacity(reqs.len());
        for r in reqs {
            ids.push(self.send(r, deadline)?);
        }
        ids.into_iter().map(|id| self.recv(id, deadline)).collect()
    }

    fn io_err(&self, e: io::Error) -> RpcError {
        if is_timeout(&e) {
            RpcError::Timeout {
                addr: self.addr.clone(),
            }
        } else {
            RpcError::Io {
                addr: self.addr.clone(),
                source: e,
            }
        }
    }

    fn remaining(&self, deadline: Instant) -> Result<Duration, RpcError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(RpcError::Timeout {
                addr: self.addr.clone(),
            });
        }
        Ok(left)
    }

    fn send(&mut self, req: &Request, deadline: Instant) -> Result<u64, RpcError> {
        let id = self.next_id;
        self.next_id += 1;
        let payload = encode_request(&mut self.fbb, 0, req);
        self.out.clear();
        mc_schema::frame::write_frame(&mut self.out, id, payload);
        let left = self.remaining(deadline)?;
        self.stream
            .set_write_timeout(Some(left))
            .map_err(|e| self.io_err(e))?;
        let r = self.stream.write_all(&self.out);
        r.map_err(|e| self.io_err(e))?;
        Ok(id)
    }

    fn read_exact_by(&mut self, n: usize, deadline: Instant) -> Result<(), RpcError> {
        self.inbuf.resize(n, 0);
        let mut got = 0;
        while got < n {
            let left = self.remaining(deadline)?;
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| self.io_err(e))?;
            match self.stream.read(&mut self.inbuf[got..n]) {
                Ok(0) => {
                    return Err(self.io_err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed by the master",
                    )));
                }
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_err(e)),
            }
        }
        Ok(())
    }

    fn recv(&mut self, id: u64, deadline: Instant) -> Result<Response, RpcError> {
        self.read_exact_by(FRAME_HEADER_BYTES, deadline)?;
        let h = FrameHeader::decode(&self.inbuf, MAX_RPC_FRAME_BYTES).map_err(|source| {
            RpcError::Protocol {
                addr: self.addr.clone(),
                source,
            }
        })?;
        if h.request_id != id {
            return Err(RpcError::Protocol {
                addr: self.addr.clone(),
                source: mc_schema::SchemaError::Invalid(format!(
                    "answer for request {} while waiting for {id}",
                    h.request_id
                )),
            });
        }
        self.read_exact_by(h.payload_len as usize, deadline)?;
        decode_response(&self.inbuf).map_err(|source| RpcError::Protocol {
            addr: self.addr.clone(),
            source,
        })
    }
}
