//! The supervisor's vault: the data plane's memory descriptors, kept across its restarts.
//!
//! The data plane sends each [`Kept`] item as one `SOCK_SEQPACKET` message (a JSON header,
//! the descriptors as `SCM_RIGHTS`); the supervisor's vault holds the latest per index
//! file pair and per segment, drops a segment on `Gone`, and hands everything to the next
//! data plane, ending with `End`. The data plane says `Ready` once its shards serve.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};

use mc_dataplane::keep::{Keeper, Kept, KeptIndex, KeptSegment, KeptSource, ShardMemory};
use mc_hugepages::handover::{recv_fds, send_fds};
use mc_schema::agent::{SegmentInfo, SegmentKind};
use serde::{Deserialize, Serialize};
use tracing::warn;

/// A segment as it travels in a vault message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Seg {
    shard: u32,
    segment_id: u64,
    name: String,
    endpoint: String,
    size_bytes: u64,
    kind: String,
    /// Path and offset of a segment mapped from a named file; `None` = a memfd follows.
    file: Option<(String, u64)>,
}

/// One vault message (its descriptors travel beside it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum Msg {
    /// A shard's index files: records, keys.
    Index { shard: u32 },
    /// A segment: its memfd follows unless it maps a file.
    Segment(Seg),
    /// A segment is no longer served.
    Gone { shard: u32, segment_id: u64 },
    /// Supervisor → data plane: everything kept was sent.
    End,
    /// Data plane → supervisor: every shard serves.
    Ready,
}

fn kind_name(k: SegmentKind) -> &'static str {
    match k {
        SegmentKind::Startup => "startup",
        SegmentKind::Allocated => "allocated",
        SegmentKind::Shm => "shm",
        SegmentKind::LocalDisk => "local_disk",
        SegmentKind::Cxl => "cxl",
    }
}

fn kind_of(name: &str) -> Option<SegmentKind> {
    Some(match name {
        "startup" => SegmentKind::Startup,
        "allocated" => SegmentKind::Allocated,
        "shm" => SegmentKind::Shm,
        "local_disk" => SegmentKind::LocalDisk,
        "cxl" => SegmentKind::Cxl,
        _ => return None,
    })
}

/// Sends one message with its descriptors.
pub(crate) fn send(sock: BorrowedFd<'_>, msg: &Msg, fds: &[BorrowedFd<'_>]) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    send_fds(sock, &bytes, fds)
}

/// Receives one message; `Ok(None)` when the peer closed.
pub(crate) fn recv(sock: BorrowedFd<'_>) -> std::io::Result<Option<(Msg, Vec<OwnedFd>)>> {
    let Some((bytes, fds)) = recv_fds(sock)? else {
        return Ok(None);
    };
    let msg = serde_json::from_slice(&bytes)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok(Some((msg, fds)))
}

/// What the supervisor holds: per key, the message and its descriptors.
#[derive(Default)]
pub(crate) struct Vault {
    items: BTreeMap<String, (Msg, Vec<OwnedFd>)>,
}

impl Vault {
    /// Takes one message from the data plane; `Ready` and `End` are not kept (the caller
    /// handles them).
    pub(crate) fn take(&mut self, msg: Msg, fds: Vec<OwnedFd>) {
        match &msg {
            Msg::Index { shard } if fds.len() == 2 => {
                self.items.insert(format!("index/{shard}"), (msg, fds));
            }
            Msg::Segment(s) if s.file.is_some() || fds.len() == 1 => {
                self.items
                    .insert(format!("segment/{}", s.segment_id), (msg, fds));
            }
            Msg::Gone { segment_id, .. } => {
                self.items.remove(&format!("segment/{segment_id}"));
            }
            Msg::Ready | Msg::End => {}
            other => warn!(
                "vault: {other:?} came with {} descriptor(s); not kept",
                fds.len()
            ),
        }
    }

    /// Segments held.
    pub(crate) fn segments(&self) -> usize {
        self.items
            .keys()
            .filter(|k| k.starts_with("segment/"))
            .count()
    }

    /// Sends everything held to a new data plane, then `End`.
    pub(crate) fn hand_back(&self, sock: BorrowedFd<'_>) -> std::io::Result<()> {
        for (msg, fds) in self.items.values() {
            let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
            send(sock, msg, &borrowed)?;
        }
        send(sock, &Msg::End, &[])
    }
}

/// The data plane's side: hands every [`Kept`] item to the supervisor.
pub(crate) struct VaultKeeper {
    sock: Mutex<OwnedFd>,
}

impl VaultKeeper {
    pub(crate) fn new(sock: OwnedFd) -> Arc<VaultKeeper> {
        Arc::new(VaultKeeper {
            sock: Mutex::new(sock),
        })
    }

    /// Tells the supervisor every shard serves.
    pub(crate) fn ready(&self) -> std::io::Result<()> {
        let sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        send(sock.as_fd(), &Msg::Ready, &[])
    }
}

impl Keeper for VaultKeeper {
    fn keep(&self, what: Kept) {
        let sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        let sent = match &what {
            Kept::Index { shard, files } => send(
                sock.as_fd(),
                &Msg::Index { shard: *shard },
                &[files.records.as_fd(), files.keys.as_fd()],
            ),
            Kept::Segment(k) => {
                let i = &k.info;
                let (file, fds): (_, Vec<BorrowedFd<'_>>) = match &k.source {
                    KeptSource::Memfd(fd) => (None, vec![fd.as_fd()]),
                    KeptSource::File { path, offset_bytes } => {
                        (Some((path.clone(), *offset_bytes)), Vec::new())
                    }
                };
                let seg = Seg {
                    shard: i.shard,
                    segment_id: i.segment_id,
                    name: i.name.clone(),
                    endpoint: i.endpoint.clone(),
                    size_bytes: i.size_bytes,
                    kind: kind_name(i.kind).into(),
                    file,
                };
                send(sock.as_fd(), &Msg::Segment(seg), &fds)
            }
            Kept::Gone { shard, segment_id } => send(
                sock.as_fd(),
                &Msg::Gone {
                    shard: *shard,
                    segment_id: *segment_id,
                },
                &[],
            ),
        };
        if let Err(e) = sent {
            warn!(
                "cannot hand memory to the supervisor (it does not survive a data-plane restart): {e}"
            );
        }
    }
}

/// Reads what a supervisor hands a new data plane, up to `End`: each shard's memory, for
/// shards `0..shards`. A shard the vault knows nothing of starts afresh (`None`); one whose
/// items are incomplete is an error.
pub(crate) fn receive(
    sock: BorrowedFd<'_>,
    shards: usize,
) -> Result<Vec<Option<ShardMemory>>, String> {
    let mut index: Vec<Option<KeptIndex>> = (0..shards).map(|_| None).collect();
    let mut segs: Vec<Vec<KeptSegment>> = (0..shards).map(|_| Vec::new()).collect();
    loop {
        let (msg, mut fds) = recv(sock)
            .map_err(|e| format!("reading kept memory: {e}"))?
            .ok_or("the supervisor closed the vault before End")?;
        match msg {
            Msg::End => break,
            Msg::Index { shard } => {
                let (Some(keys), Some(records)) = (fds.pop(), fds.pop()) else {
                    return Err(format!("index of shard {shard} came without its files"));
                };
                let slot = index.get_mut(shard as usize).ok_or(format!(
                    "kept memory of shard {shard}, but {shards} shard(s) now"
                ))?;
                *slot = Some(KeptIndex { records, keys });
            }
            Msg::Segment(s) => {
                let kind = kind_of(&s.kind).ok_or(format!("unknown segment kind {:?}", s.kind))?;
                let source = match (s.file, fds.pop()) {
                    (Some((path, offset_bytes)), _) => KeptSource::File { path, offset_bytes },
                    (None, Some(fd)) => KeptSource::Memfd(fd),
                    (None, None) => return Err(format!("segment {} came without memory", s.name)),
                };
                let info = SegmentInfo {
                    shard: s.shard,
                    segment_id: s.segment_id,
                    name: s.name,
                    endpoint: s.endpoint,
                    size_bytes: s.size_bytes,
                    kind,
                };
                segs.get_mut(s.shard as usize)
                    .ok_or(format!(
                        "kept memory of shard {}, but {shards} shard(s) now",
                        s.shard
                    ))?
                    .push(KeptSegment { info, source });
            }
            Msg::Gone { .. } | Msg::Ready => {}
        }
    }
    index
        .into_iter()
        .zip(segs)
        .enumerate()
        .map(
            |(i, (index, segments))| match (index, segments.is_empty()) {
                (None, true) => Ok(None),
                (Some(index), _) => Ok(Some(ShardMemory { index, segments })),
                (None, false) => Err(format!("segments of shard {i} were kept without its index")),
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mc_hugepages::handover::seqpacket_pair;
    use mc_hugepages::{MemFile, Region, RegionOptions};

    fn info(shard: u32, id: u64, kind: SegmentKind) -> SegmentInfo {
        SegmentInfo {
            shard,
            segment_id: id,
            name: format!("h:1#{id}"),
            endpoint: "h:1".into(),
            size_bytes: 1 << 20,
            kind,
        }
    }

    #[test]
    fn kept_memory_goes_round_the_vault_and_gone_segments_stay_gone() {
        let (dp, sup) = seqpacket_pair().unwrap();
        let keeper = VaultKeeper::new(dp);
        let records = MemFile::create("r", 4096).unwrap();
        let keys = MemFile::create("k", 4096).unwrap();
        let seg = Region::new(1 << 20, &RegionOptions::default()).unwrap();
        keeper.keep(Kept::Index {
            shard: 0,
            files: KeptIndex {
                records: records.fd().try_clone_to_owned().unwrap(),
                keys: keys.fd().try_clone_to_owned().unwrap(),
            },
        });
        for (id, kind) in [(7, SegmentKind::Startup), (8, SegmentKind::Allocated)] {
            keeper.keep(Kept::Segment(KeptSegment {
                info: info(0, id, kind),
                source: KeptSource::Memfd(seg.fd().try_clone_to_owned().unwrap()),
            }));
        }
        keeper.keep(Kept::Segment(KeptSegment {
            info: info(0, 9, SegmentKind::Shm),
            source: KeptSource::File {
                path: "/dev/shm/x".into(),
                offset_bytes: 4096,
            },
        }));
        keeper.keep(Kept::Gone {
            shard: 0,
            segment_id: 8,
        });
        keeper.ready().unwrap();
        let mut vault = Vault::default();
        loop {
            let (msg, fds) = recv(sup.as_fd()).unwrap().unwrap();
            if msg == Msg::Ready {
                break;
            }
            vault.take(msg, fds);
        }
        assert_eq!(vault.segments(), 2);
        let (to_dp, from_sup) = seqpacket_pair().unwrap();
        vault.hand_back(to_dp.as_fd()).unwrap();
        let mut got = receive(from_sup.as_fd(), 2).unwrap();
        assert!(got[1].is_none(), "shard 1 kept nothing");
        let m = got[0].take().unwrap();
        let mut ids: Vec<u64> = m.segments.iter().map(|s| s.info.segment_id).collect();
        ids.sort_unstable();
        assert_eq!(ids, [7, 9]);
        assert!(m.segments.iter().any(|s| matches!(
            &s.source,
            KeptSource::File { path, offset_bytes: 4096 } if path == "/dev/shm/x"
        )));
        // Too few shards for what was kept: refused, not silently dropped.
        let (to_dp, from_sup) = seqpacket_pair().unwrap();
        vault.hand_back(to_dp.as_fd()).unwrap();
        assert!(receive(from_sup.as_fd(), 0).is_err());
    }
}
