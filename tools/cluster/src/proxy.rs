//! [`FaultProxy`]: a TCP proxy on loopback that injects network faults between two
//! processes of a test cluster (a node and its master, a client and a shard, a master and
//! its coordinator), in the spirit of TiKV's transport filters.
//!
//! Each direction of every proxied connection has a [`Mode`]: pass bytes on, hold each
//! chunk for a while ([`Mode::Delay`]), read and discard them ([`Mode::Drop`], a one-way
//! partition: the sender's writes succeed, nothing arrives), or stop reading
//! ([`Mode::Stall`]: the sender's socket buffers fill and its writes block). New
//! connections can be refused ([`FaultProxy::set_refuse`]) and live ones reset with an RST
//! ([`FaultProxy::reset_all`]). Plain threads and blocking sockets: no runtime needed.
//! Both ends are loopback addresses only; the proxy never reaches beyond this machine.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::Error;

/// How often an idle pump or the acceptor looks at its settings and the stop flag.
const POLL: Duration = Duration::from_millis(20);
/// Bytes moved per read.
const CHUNK_BYTES: usize = 64 * 1024;
/// Deadline to connect to the target.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the proxy does with the bytes of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Forward every byte at once.
    #[default]
    Pass,
    /// Hold every chunk this long before forwarding it.
    Delay(Duration),
    /// Read and discard: the sender sees its writes succeed, the receiver gets nothing.
    Drop,
    /// Stop reading until the mode changes: the sender's buffers fill up and it blocks.
    Stall,
}

/// A direction through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the connecting side (the client of the proxy) to the target.
    ToTarget,
    /// From the target back to the connecting side.
    FromTarget,
}

/// Settings shared by the acceptor and every pump.
#[derive(Debug, Default)]
struct Shared {
    modes: Mutex<[Mode; 2]>,
    refuse: AtomicBool,
    /// Bumped by [`FaultProxy::reset_all`]; a pump that sees it move resets its connection.
    reset_epoch: AtomicU64,
    stop: AtomicBool,
    /// Connections accepted so far.
    accepted: AtomicU64,
    /// Bytes forwarded (index = direction).
    forwarded: [AtomicU64; 2],
    /// Bytes discarded by [`Mode::Drop`] (index = direction).
    dropped: [AtomicU64; 2],
}

impl Shared {
    fn mode(&self, d: usize) -> Mode {
        self.modes.lock().unwrap_or_else(|e| e.into_inner())[d]
    }
}

/// A running proxy: listens on `127.0.0.1:<port picked at run time>` and forwards every
/// connection to its target. Dropping it stops every thread and closes every connection.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy in front of `target` (`host:port`, a loopback address).
    ///
    /// # Errors
    /// [`Error::Proxy`] when `target` does not resolve to a loopback address or the
    /// listening socket cannot be made.
    pub fn start(target: &str) -> Result<FaultProxy, Error> {
        let bad = |why: String| Error::Proxy {
            target: target.to_string(),
            why,
        };
        let target_addr = target
            .to_socket_addrs()
            .map_err(|e| bad(e.to_string()))?
            .next()
            .ok_or_else(|| bad("no address".into()))?;
        if !target_addr.ip().is_loopback() {
            return Err(bad("only loopback targets are proxied".into()));
        }
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| bad(e.to_string()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| bad(e.to_string()))?;
        let addr = listener.local_addr().map_err(|e| bad(e.to_string()))?;
        let shared = Arc::new(Shared::default());
        let threads = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let (shared, threads) = (shared.clone(), threads.clone());
            std::thread::Builder::new()
                .name("mc-proxy-accept".into())
                .spawn(move || accept_loop(listener, target_addr, &shared, &threads))
                .map_err(|e| bad(e.to_string()))?
        };
        Ok(FaultProxy {
            addr,
            target: target_addr,
            shared,
            threads,
            acceptor: Some(acceptor),
        })
    }

    /// The address to dial instead of the target, `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// The proxied target.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Sets the mode of one direction, for live connections and new ones.
    pub fn set_mode(&self, direction: Direction, mode: Mode) {
        self.shared.modes.lock().unwrap_or_else(|e| e.into_inner())[direction as usize] = mode;
    }

    /// Both directions back to [`Mode::Pass`], new connections accepted again.
    pub fn heal(&self) {
        self.set_mode(Direction::ToTarget, Mode::Pass);
        self.set_mode(Direction::FromTarget, Mode::Pass);
        self.set_refuse(false);
    }

    /// When `true`, a new connection is accepted and closed at once with an RST.
    pub fn set_refuse(&self, refuse: bool) {
        self.shared.refuse.store(refuse, Ordering::Release);
    }

    /// Resets (RST) every connection open now; later ones are served normally.
    pub fn reset_all(&self) {
        self.shared.reset_epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Acquire)
    }

    /// Bytes forwarded in `direction` so far.
    pub fn forwarded_bytes(&self, direction: Direction) -> u64 {
        self.shared.forwarded[direction as usize].load(Ordering::Acquire)
    }

    /// Bytes discarded in `direction` by [`Mode::Drop`] so far.
    pub fn dropped_bytes(&self, direction: Direction) -> u64 {
        self.shared.dropped[direction as usize].load(Ordering::Acquire)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Closes `s` with an RST instead of a FIN.
fn reset(s: &TcpStream) {
    // SO_LINGER with a zero timeout makes close() send an RST.
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `s` owns a valid socket descriptor for this call; the option value is a
    // `linger` on the stack whose size is passed alongside it.
    unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(s),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    let _ = s.shutdown(Shutdown::Both);
}

fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    shared: &Arc<Shared>,
    threads: &Mutex<Vec<JoinHandle<()>>>,
) {
    while !shared.stop.load(Ordering::Acquire) {
        let inbound = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(POLL);
                continue;
            }
            Err(_) => {
                std::thread::sleep(POLL);
                continue;
            }
        };
        shared.accepted.fetch_add(1, Ordering::AcqRel);
        if shared.refuse.load(Ordering::Acquire) {
            reset(&inbound);
            continue;
        }
        let Ok(outbound) = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) else {
            reset(&inbound);
            continue;
        };
        let _ = inbound.set_nonblocking(false);
        for (from, to, d) in [
            (
                inbound.try_clone(),
                outbound.try_clone(),
                Direction::ToTarget,
            ),
            (
                outbound.try_clone(),
                inbound.try_clone(),
                Direction::FromTarget,
            ),
        ] {
            let (Ok(from), Ok(to)) = (from, to) else {
                reset(&inbound);
                reset(&outbound);
                break;
            };
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name("mc-proxy-pump".into())
                .spawn(move || pump(from, to, d as usize, &shared));
            if let Ok(t) = spawned {
                threads.lock().unwrap_or_else(|e| e.into_inner()).push(t);
            }
        }
    }
}

/// The direction's mode once it is not [`Mode::Stall`] (bytes read meanwhile are held);
/// `None` when the connection is to be reset or the proxy stops.
fn mode_after_stall(shared: &Shared, d: usize, epoch: u64) -> Option<Mode> {
    loop {
        if shared.stop.load(Ordering::Acquire)
            || shared.reset_epoch.load(Ordering::Acquire) != epoch
        {
            return None;
        }
        match shared.mode(d) {
            Mode::Stall => std::thread::sleep(POLL),
            mode => return Some(mode),
        }
    }
}

/// Moves bytes from `from` to `to` following the direction's mode, until either side
/// closes, the connection is reset, or the proxy stops.
fn pump(mut from: TcpStream, mut to: TcpStream, d: usize, shared: &Shared) {
    let epoch = shared.reset_epoch.load(Ordering::Acquire);
    let _ = from.set_read_timeout(Some(POLL));
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        if shared.stop.load(Ordering::Acquire) {
            break;
        }
        if shared.reset_epoch.load(Ordering::Acquire) != epoch {
            reset(&from);
            reset(&to);
            return;
        }
        if shared.mode(d) == Mode::Stall {
            std::thread::sleep(POLL);
            continue;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => break,
        };
        // The mode may have changed while the read waited: what counts is the mode now.
        let Some(mode) = mode_after_stall(shared, d, epoch) else {
            reset(&from);
            reset(&to);
            return;
        };
        match mode {
            Mode::Drop => {
                shared.dropped[d].fetch_add(n as u64, Ordering::AcqRel);
                continue;
            }
            Mode::Delay(t) => std::thread::sleep(t),
            Mode::Pass | Mode::Stall => {}
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        shared.forwarded[d].fetch_add(n as u64, Ordering::AcqRel);
    }
    // One side ended: pass the end on (a FIN), so the other pump sees it too.
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on loopback that counts the bytes it received.
    struct Echo {
        addr: String,
        received: Arc<AtomicU64>,
    }

    fn echo() -> Echo {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let received = Arc::new(AtomicU64::new(0));
        let r = received.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                let r = r.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            return;
                        }
                        r.fetch_add(n as u64, Ordering::AcqRel);
                    }
                });
            }
        });
        Echo { addr, received }
    }

    fn client(p: &FaultProxy) -> TcpStream {
        let s = TcpStream::connect(p.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    fn roundtrip(s: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
        s.write_all(msg).unwrap();
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).unwrap();
        back
    }

    fn wait_until(what: &str, f: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !f() {
            assert!(std::time::Instant::now() < deadline, "never: {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn passes_and_delays_bytes_unchanged() {
        let e = echo();
        let p = FaultProxy::start(&e.addr).unwrap();
        let mut s = client(&p);
        assert_eq!(roundtrip(&mut s, b"hello"), b"hello");
        p.set_mode(Direction::ToTarget, Mode::Delay(Duration::from_millis(30)));
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(roundtrip(&mut s, &big), big);
        wait_until("bytes counted", || {
            p.forwarded_bytes(Direction::FromTarget) == 5 + big.len() as u64
        });
        assert_eq!(p.accepted(), 1);
    }

    #[test]
    fn one_way_drop_delivers_one_direction_only() {
        let e = echo();
        let p = FaultProxy::start(&e.addr).unwrap();
        let mut s = client(&p);
        assert_eq!(roundtrip(&mut s, b"x"), b"x");
        p.set_mode(Direction::FromTarget, Mode::Drop);
        s.write_all(b"lost answer").unwrap();
        // The request reaches the server; its answer is swallowed.
        wait_until("request delivered", || {
            e.received.load(Ordering::Acquire) == 12
        });
        wait_until("answer dropped", || {
            p.dropped_bytes(Direction::FromTarget) == 11
        });
        p.heal();
        assert_eq!(roundtrip(&mut s, b"back"), b"back");
    }

    #[test]
    fn stall_holds_bytes_until_healed() {
        let e = echo();
        let p = FaultProxy::start(&e.addr).unwrap();
        let mut s = client(&p);
        assert_eq!(roundtrip(&mut s, b"a"), b"a");
        p.set_mode(Direction::ToTarget, Mode::Stall);
        s.write_all(b"held").unwrap();
        std::thread::sleep(POLL * 5);
        assert_eq!(
            e.received.load(Ordering::Acquire),
            1,
            "stalled bytes arrived"
        );
        p.heal();
        let mut back = [0u8; 4];
        s.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"held");
    }

    #[test]
    fn reset_and_refuse_cut_connections() {
        let e = echo();
        let p = FaultProxy::start(&e.addr).unwrap();
        let mut s = client(&p);
        assert_eq!(roundtrip(&mut s, b"a"), b"a");
        p.reset_all();
        let mut buf = [0u8; 1];
        // Reset: the peer's next read ends (reset or EOF), it never hangs.
        let r = s.read(&mut buf);
        assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
        p.set_refuse(true);
        let mut s = client(&p);
        let _ = s.write_all(b"x");
        let r = s.read(&mut buf);
        assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
        p.set_refuse(false);
        let mut s = client(&p);
        assert_eq!(roundtrip(&mut s, b"ok"), b"ok");
    }

    #[test]
    fn refuses_targets_off_this_machine() {
        let err = FaultProxy::start("192.0.2.1:80").unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
    }
}
