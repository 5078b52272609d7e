//! The dummy side: what `setup_dummy` makes. One connection to the real client, shared by
//! the calling threads one request at a time, re-opened (and the pool registered again)
//! when it breaks.

use std::os::fd::AsFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::time::{Duration, Instant};

use mc_schema::dummy::{
    DUMMY_MAGIC, DUMMY_VERSION, Dst, Got, MAX_DUMMY_FRAME_BYTES, Reply, Request, Src,
};
use mc_schema::msg::ReplicateConfig;
use parking_lot::Mutex;

use crate::io::{read_frame, write_frame};
use crate::pool::Pool;
use crate::{DummyError, socket_name};

/// How long a call keeps trying to reach a real client that went away (a restart) before
/// it fails with RPC_FAIL.
pub const RECONNECT_WINDOW: Duration = Duration::from_secs(10);
/// Pause between connection attempts.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Longest wait for one reply: the real client's own calls have deadlines well inside it.
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// A process's link to the real client of its host.
pub struct Dummy {
    socket: String,
    port: u16,
    pool: Option<Pool>,
    hostname: String,
    session: Mutex<Option<UnixStream>>,
}

/// The port of `host:port`.
fn port_of(addr: &str) -> Result<u16, DummyError> {
    addr.rsplit_once(':')
        .and_then(|(h, p)| (!h.is_empty()).then_some(p))
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| DummyError::BadAddress { addr: addr.into() })
}

impl Dummy {
    /// Connects to the real client serving `server_address`'s port on this host and hands
    /// it a new pool of `mem_pool_size` bytes (none when 0). Fails at once, without
    /// retrying, when nobody serves that port.
    pub fn connect(server_address: &str, mem_pool_size: usize) -> Result<Dummy, DummyError> {
        let port = port_of(server_address)?;
        let pool = match mem_pool_size {
            0 => None,
            n => Some(Pool::new(n)?),
        };
        let mut d = Dummy {
            socket: socket_name(port),
            port,
            pool,
            hostname: String::new(),
            session: Mutex::new(None),
        };
        let (stream, hostname) = d.open()?;
        d.hostname = hostname;
        *d.session.get_mut() = Some(stream);
        Ok(d)
    }

    /// The real client's name (`host:port` of its segment).
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// The shared pool, if any.
    pub fn pool(&self) -> Option<&Pool> {
        self.pool.as_ref()
    }

    /// The offset in the pool of `[addr, addr + len)`, when the pool holds it.
    pub fn pool_offset(&self, addr: usize, len: usize) -> Option<u64> {
        self.pool.as_ref()?.offset_of(addr, len)
    }

    /// A new connection: hello, then the pool.
    fn open(&self) -> Result<(UnixStream, String), DummyError> {
        let unreachable = |source| DummyError::Unreachable {
            socket: self.socket.clone(),
            port: self.port,
            source,
        };
        let addr = SocketAddr::from_abstract_name(self.socket.as_bytes()).map_err(unreachable)?;
        let mut s = UnixStream::connect_addr(&addr).map_err(unreachable)?;
        s.set_read_timeout(Some(REPLY_TIMEOUT))?;
        let hello = Request::Hello {
            magic: DUMMY_MAGIC,
            version: DUMMY_VERSION,
        };
        let hostname = match round_trip(&mut s, &hello.encode())? {
            Reply::Hello { hostname } => hostname,
            other => return Err(unexpected("Hello", &other)),
        };
        if let Some(pool) = &self.pool {
            let req = Request::RegisterPool {
                size: pool.len_bytes() as u64,
            };
            write_frame(&mut s, &req.encode())?;
            mc_hugepages::handover::send_fds(s.as_fd(), b"P", &[pool.fd()])?;
            match reply(&mut s)? {
                Reply::Code(0) => {}
                other => return Err(unexpected("RegisterPool", &other)),
            }
        }
        Ok((s, hostname))
    }

    /// Sends `req` and returns its reply. A broken connection is re-opened within
    /// [`RECONNECT_WINDOW`] and the request sent again once.
    fn call(&self, req: &Request) -> Result<Reply, DummyError> {
        let frame = req.encode();
        if frame.len() - 4 > MAX_DUMMY_FRAME_BYTES {
            return Err(DummyError::TooLarge {
                len: frame.len(),
                max: MAX_DUMMY_FRAME_BYTES,
            });
        }
        let mut session = self.session.lock();
        let deadline = Instant::now() + RECONNECT_WINDOW;
        let mut sends = 0;
        loop {
            if session.is_none() {
                match self.open() {
                    Ok((s, _)) => {
                        tracing::info!("reconnected to the real client; pool registered again");
                        *session = Some(s);
                    }
                    Err(e) if e.is_broken() && Instant::now() < deadline => {
                        std::thread::sleep(RETRY_PAUSE);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let Some(stream) = session.as_mut() else {
                continue;
            };
            sends += 1;
            match round_trip(stream, &frame) {
                Ok(Reply::Refused { code, reason }) => {
                    return Err(DummyError::Refused { code, reason });
                }
                Ok(r) => return Ok(r),
                Err(e) if e.is_broken() && !timed_out(&e) && sends < 2 => {
                    tracing::warn!("{e}; reconnecting to the real client");
                    *session = None;
                }
                Err(e) => {
                    *session = None;
                    return Err(e);
                }
            }
        }
    }

    /// Puts (or upserts) a batch; one code per key (0 also for a key that existed).
    pub fn put(
        &self,
        upsert: bool,
        config: &ReplicateConfig,
        items: Vec<(String, Src)>,
    ) -> Result<Vec<i32>, DummyError> {
        let n = items.len();
        let req = Request::Put {
            upsert,
            config: config.clone(),
            items,
        };
        codes(self.call(&req)?, n, "Put")
    }

    /// Reads a batch; one outcome per key.
    pub fn get(&self, items: Vec<(String, Dst)>) -> Result<Vec<Got>, DummyError> {
        let n = items.len();
        match self.call(&Request::Get { items })? {
            Reply::Got(g) if g.len() == n => Ok(g),
            other => Err(unexpected("Get", &other)),
        }
    }

    /// 1, 0 or a negative code per key.
    pub fn exists(&self, keys: Vec<String>) -> Result<Vec<i32>, DummyError> {
        let n = keys.len();
        codes(self.call(&Request::Exists { keys })?, n, "Exists")
    }

    /// The object's size or a negative code.
    pub fn size(&self, key: String) -> Result<i64, DummyError> {
        value(self.call(&Request::Size { key })?, "Size")
    }

    /// One code per key.
    pub fn remove(&self, keys: Vec<String>, force: bool) -> Result<Vec<i32>, DummyError> {
        let n = keys.len();
        codes(self.call(&Request::Remove { keys, force })?, n, "Remove")
    }

    /// How many objects were removed, or a negative code.
    pub fn remove_regex(&self, pattern: String, force: bool) -> Result<i64, DummyError> {
        value(
            self.call(&Request::RemoveRegex { pattern, force })?,
            "RemoveRegex",
        )
    }

    /// How many objects were removed, or a negative code.
    pub fn remove_all(&self, force: bool) -> Result<i64, DummyError> {
        value(self.call(&Request::RemoveAll { force })?, "RemoveAll")
    }

    /// 0 when the real client and its master answer, 2 when its master does not.
    pub fn ping(&self) -> Result<i32, DummyError> {
        match self.call(&Request::Ping)? {
            Reply::Code(c) => Ok(c),
            other => Err(unexpected("Ping", &other)),
        }
    }
}

fn timed_out(e: &DummyError) -> bool {
    matches!(e, DummyError::Io(io) if matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
}

fn round_trip(s: &mut UnixStream, frame: &[u8]) -> Result<Reply, DummyError> {
    write_frame(s, frame)?;
    reply(s)
}

fn reply(s: &mut UnixStream) -> Result<Reply, DummyError> {
    let body = read_frame(s)?.ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the real client closed the connection",
        )
    })?;
    Ok(Reply::decode(&body)?)
}

fn unexpected(asked: &'static str, got: &Reply) -> DummyError {
    if let Reply::Refused { code, reason } = got {
        return DummyError::Refused {
            code: *code,
            reason: reason.clone(),
        };
    }
    let got = format!("{got:?}");
    DummyError::UnexpectedReply {
        asked,
        got: got.chars().take(80).collect(),
    }
}

fn codes(r: Reply, n: usize, asked: &'static str) -> Result<Vec<i32>, DummyError> {
    match r {
        Reply::Codes(c) if c.len() == n => Ok(c),
        other => Err(unexpected(asked, &other)),
    }
}

fn value(r: Reply, asked: &'static str) -> Result<i64, DummyError> {
    match r {
        Reply::Value(v) => Ok(v),
        other => Err(unexpected(asked, &other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_need_a_port() {
        assert_eq!(port_of("127.0.0.1:50052").unwrap(), 50052);
        assert_eq!(port_of("[::1]:7").unwrap(), 7);
        for bad in ["", "127.0.0.1", ":1", "h:x", "h:70000"] {
            assert!(port_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nobody_listening_fails_at_once_with_rpc_fail() {
        // A port chosen now, whose socket no real client binds.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let e = Dummy::connect(&format!("127.0.0.1:{port}"), 0)
            .err()
            .expect("no real client");
        assert!(matches!(e, DummyError::Unreachable { .. }), "{e}");
        assert_eq!(e.code(), -900);
    }
}
