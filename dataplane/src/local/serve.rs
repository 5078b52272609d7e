//! The thread that serves one shard's memory files on its abstract Unix socket.
//!
//! Per connection: one `Hello` in, the offers out (descriptors attached), then the
//! connection is kept open, idle, until this thread ends: a client that sees it close knows
//! the process serving the shard is gone and stops trusting its mappings.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use mc_hugepages::{Region, handover};
use mc_schema::local::{FileKind, Hello, MAX_OFFER_FILES, Offer, OfferedFile, socket_name};
use tracing::{debug, info, warn};

use super::Offered;

/// Connections kept open at once; a client beyond that is refused (it uses TCP).
pub(crate) const MAX_CONNECTIONS: usize = 1024;
/// How long a new connection may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the thread checks that its keeper is still alive.
const ALIVE_CHECK: Duration = Duration::from_millis(200);

/// One shard's server.
pub(crate) struct Server {
    pub(crate) endpoint: String,
    pub(crate) cluster_id: String,
    pub(crate) offered: Arc<Mutex<Offered>>,
    /// Gone when the shard's keeper is dropped: the thread then ends.
    pub(crate) alive: Weak<()>,
}

/// Binds the shard's socket and serves it on a thread of its own.
pub(crate) fn start(server: Server) -> std::io::Result<()> {
    let listener = handover::seqpacket_listen(&socket_name(&server.endpoint), 64)?;
    info!(endpoint = %server.endpoint, "same-host reads offered on @{}", socket_name(&server.endpoint));
    std::thread::Builder::new()
        .name("mc-local".into())
        .spawn(move || run(server, listener))?;
    Ok(())
}

fn run(server: Server, listener: OwnedFd) {
    let mut conns: Vec<OwnedFd> = Vec::new();
    while server.alive.upgrade().is_some() {
        match handover::wait_readable(listener.as_fd(), ALIVE_CHECK) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(e) => {
                warn!(endpoint = %server.endpoint, "same-host socket failed, no longer offered: {e}");
                return;
            }
        }
        let conn = match handover::accept(listener.as_fd()) {
            Ok(c) => c,
            Err(e) => {
                debug!("same-host accept failed: {e}");
                continue;
            }
        };
        conns.retain(|c| !handover::peer_gone(c.as_fd()));
        match answer(&server, conn.as_fd(), conns.len() < MAX_CONNECTIONS) {
            Ok(true) => conns.push(conn),
            Ok(false) => {}
            Err(e) => debug!("same-host client dropped: {e}"),
        }
    }
}

/// Reads the hello and sends the offers; true when the connection is to be kept.
fn answer(server: &Server, conn: BorrowedFd<'_>, room: bool) -> std::io::Result<bool> {
    if !handover::wait_readable(conn, HELLO_TIMEOUT)? {
        return Ok(false);
    }
    let Some((msg, _)) = handover::recv_fds(conn)? else {
        return Ok(false);
    };
    let refuse =
        |why: String| handover::send_fds(conn, &Offer::Refused(why).encode(), &[]).map(|()| false);
    // The files give read access to every object of the shard: only to the node's own
    // user (or root).
    let uid = handover::peer_uid(conn)?;
    if uid != handover::own_uid() && uid != 0 {
        return refuse(format!(
            "user {uid} is not the node's user ({})",
            handover::own_uid()
        ));
    }
    match Hello::decode(&msg) {
        Err(e) => return refuse(format!("bad hello: {e}")),
        Ok(h) if h.cluster_id != server.cluster_id => {
            return refuse(format!(
                "this shard belongs to cluster `{}`, not `{}`",
                server.cluster_id, h.cluster_id
            ));
        }
        Ok(_) if !room => {
            return refuse(format!("{MAX_CONNECTIONS} same-host clients already"));
        }
        Ok(_) => {}
    }
    let offered = server.offered.lock().unwrap_or_else(|p| p.into_inner());
    let files = offer_list(&offered);
    if files.is_empty() {
        drop(offered);
        return refuse("nothing to offer yet".into());
    }
    let chunks: Vec<_> = files.chunks(MAX_OFFER_FILES).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let msg = Offer::Files {
            files: chunk.iter().map(|(f, _)| *f).collect(),
            last: i + 1 == chunks.len(),
        };
        let fds: Vec<BorrowedFd<'_>> = chunk.iter().map(|(_, fd)| *fd).collect();
        handover::send_fds(conn, &msg.encode(), &fds)?;
    }
    Ok(true)
}

/// The records file, then every segment whose size is sealed (sealing it first when it
/// can be): a client maps only memory that cannot shrink under it.
fn offer_list(o: &Offered) -> Vec<(OfferedFile, BorrowedFd<'_>)> {
    let Some(records) = &o.records else {
        return Vec::new();
    };
    let Ok(size) = file_size(records.as_fd()) else {
        return Vec::new();
    };
    let mut out = vec![(
        OfferedFile {
            kind: FileKind::Records,
            id: 0,
            size_bytes: size,
        },
        records.as_fd(),
    )];
    for (&id, (fd, size)) in &o.segments {
        if !Region::size_sealed(fd.as_fd()) {
            let _ = seal(fd.as_fd());
        }
        if Region::size_sealed(fd.as_fd()) {
            out.push((
                OfferedFile {
                    kind: FileKind::Segment,
                    id,
                    size_bytes: *size,
                },
                fd.as_fd(),
            ));
        }
    }
    out
}

/// Seals a segment memfd's size (it never changes anyway).
fn seal(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    Region::seal_fd_size(fd)
}

fn file_size(fd: BorrowedFd<'_>) -> std::io::Result<u64> {
    let f = std::fs::File::from(fd.try_clone_to_owned()?);
    Ok(f.metadata()?.len())
}
