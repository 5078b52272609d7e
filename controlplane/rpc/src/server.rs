//! Tokio RPC server: handshake, frame splitting, inline dispatch, pipelined answers.
//!
//! A connection's reader collects bytes, answers every complete frame in order as soon as it
//! is there, and flushes all answers of one read in a single write. A request whose answer
//! is deferred ([`Reply::Later`]) is awaited on the connection's task, in order. Malformed input (bad
//! handshake, oversized or garbage frames) closes that connection only.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mc_schema::ErrorCode;
use mc_schema::frame::{FRAME_HEADER_BYTES, split_frame, write_frame};
use mc_schema::handshake::{HELLO_BYTES, Hello, HelloStatus, Role, encode_ack};
use mc_schema::msg::{Builder, Request, Response, decode_request, encode_response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use crate::RpcError;

/// An answer: ready now, or later (a request that waits for something, such as a remove
/// waiting for the holders to confirm). A deferred answer holds back the answers to later
/// requests on the same connection, so every connection's answers stay in request order;
/// other connections are not affected.
pub enum Reply {
    /// Ready.
    Now(Response),
    /// Ready when the future completes (it must complete: bound its waits).
    Later(Pin<Box<dyn Future<Output = Response> + Send>>),
}

impl Reply {
    /// The answer of a request that never waits. For in-process callers (tests) that know
    /// the request they send answers at once.
    ///
    /// # Panics
    /// When the answer is deferred.
    pub fn now(self) -> Response {
        match self {
            Reply::Now(r) => r,
            Reply::Later(_) => panic!("a deferred answer was taken as immediate"),
        }
    }
}

impl From<Response> for Reply {
    fn from(r: Response) -> Reply {
        Reply::Now(r)
    }
}

/// What the server dispatches to. Handlers run inline on the connection's task, so they
/// must not block (take short locks, no I/O); anything that waits returns
/// [`Reply::Later`].
pub trait Service: Send + Sync + 'static {
    /// Answers one request stamped with the leader `term` the sender expects.
    fn handle(&self, term: u64, req: Request) -> Reply;
}

/// Server limits and identity.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Cluster id peers must present.
    pub cluster_id: String,
    /// Roles allowed on this port.
    pub accepted_roles: Vec<Role>,
    /// Largest frame payload accepted.
    pub max_frame_bytes: u32,
    /// Most concurrent connections; more are closed at accept.
    pub max_connections: usize,
    /// Close connections idle this long (`None` = never; Mooncake's `rpc_conn_timeout_seconds`).
    pub idle_timeout: Option<Duration>,
    /// Set TCP_NODELAY on accepted sockets.
    pub tcp_nodelay: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            cluster_id: mc_schema::handshake::DEFAULT_CLUSTER_ID.to_string(),
            accepted_roles: vec![Role::Client, Role::Agent, Role::Tool, Role::Master],
            max_frame_bytes: mc_schema::limits::MAX_RPC_FRAME_BYTES,
            max_connections: 16_384,
            idle_timeout: None,
            tcp_nodelay: true,
        }
    }
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a stopping server waits for its connections to finish what they received.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `listener` until `shutdown` completes. Then it stops accepting; every connection
/// answers the requests it has fully received and closes; the call returns once they are
/// all closed (or after 5 s).
pub async fn serve(
    listener: TcpListener,
    svc: Arc<dyn Service>,
    cfg: ServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let cfg = Arc::new(cfg);
    let live = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if live.load(Ordering::Relaxed) >= cfg.max_connections {
            warn!(%peer, "refusing connection: {} connections open", cfg.max_connections);
            continue;
        }
        live.fetch_add(1, Ordering::Relaxed);
        let (svc, cfg, live, stop) = (svc.clone(), cfg.clone(), live.clone(), stop_rx.clone());
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &*svc, &cfg, stop).await {
                debug!(%peer, "connection closed: {e}");
            }
            live.fetch_sub(1, Ordering::Relaxed);
        });
    }
    info!("RPC server stopped accepting; closing connections");
    let _ = stop_tx.send(true);
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    while live.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads the peer's hello and answers it; an error closes the connection.
async fn handshake(stream: &mut TcpStream, cfg: &ServerConfig) -> Result<(), RpcError> {
    let mut hello = [0u8; HELLO_BYTES];
    tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.read_exact(&mut hello))
        .await
        .map_err(|_| RpcError::HandshakeTimeout {
            timeout: HANDSHAKE_TIMEOUT,
        })?
        .map_err(RpcError::HandshakeRead)?;
    let hello = Hello::decode(&hello).map_err(RpcError::BadHello)?;
    let status = hello.check(&cfg.cluster_id, &cfg.accepted_roles);
    stream
        .write_all(&encode_ack(status))
        .await
        .map_err(RpcError::PeerIo)?;
    if status != HelloStatus::Ok {
        return Err(RpcError::HandshakeRefused { status });
    }
    Ok(())
}

async fn connection(
    mut stream: TcpStream,
    svc: &dyn Service,
    cfg: &ServerConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), RpcError> {
    if cfg.tcp_nodelay {
        let _ = stream.set_nodelay(true);
    }
    handshake(&mut stream, cfg).await?;
    let mut inbuf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut fbb = Builder::with_capacity(4096);
    loop {
        // Answer every complete frame already buffered, in order.
        let mut consumed = 0;
        let mut fatal = None;
        loop {
            match split_frame(&inbuf[consumed..], cfg.max_frame_bytes) {
                Ok(Some((h, len))) => {
                    let payload = &inbuf[consumed + FRAME_HEADER_BYTES..consumed + len];
                    let resp = match decode_request(payload) {
                        Ok((term, req)) => match svc.handle(term, req) {
                            Reply::Now(r) => r,
                            Reply::Later(f) => {
                                // Answers before this one go out now; this one and those
                                // after it wait (in order) for it.
                                if !out.is_empty() {
                                    stream.write_all(&out).await.map_err(RpcError::PeerIo)?;
                                    out.clear();
                                }
                                f.await
                            }
                        },
                        Err(e) => {
                            let resp =
                                Response::error(ErrorCode::InvalidParams.code(), e.to_string());
                            fatal = Some(RpcError::UndecodableRequest(e));
                            resp
                        }
                    };
                    write_frame(&mut out, h.request_id, encode_response(&mut fbb, &resp));
                    consumed += len;
                    if fatal.is_some() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    fatal = Some(RpcError::BadFrame(e));
                    break;
                }
            }
        }
        inbuf.drain(..consumed);
        if !out.is_empty() {
            stream.write_all(&out).await.map_err(RpcError::PeerIo)?;
            out.clear();
        }
        if let Some(f) = fatal {
            return Err(f);
        }
        if inbuf.capacity() - inbuf.len() < 16 * 1024 {
            inbuf.reserve(64 * 1024);
        }
        // Everything received so far is answered; a stopping server closes here.
        if *stop.borrow() {
            return Ok(());
        }
        let read = async {
            let read = stream.read_buf(&mut inbuf);
            match cfg.idle_timeout {
                Some(timeout) => tokio::time::timeout(timeout, read)
                    .await
                    .map_err(|_| RpcError::IdleTimeout { timeout })?,
                None => read.await,
            }
            .map_err(RpcError::PeerIo)
        };
        let n = tokio::select! {
            r = read => r?,
            _ = stop.changed() => return Ok(()),
        };
        if n == 0 {
            return Ok(());
        }
    }
}
