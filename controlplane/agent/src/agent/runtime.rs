//! The agent's runtime segments: serving mount and unmount [`Command`]s, matching shard
//! answers to them by request number, and releasing unmounted segments once their grace
//! period ends.

use std::time::{Duration, Instant};

use mc_dataplane::control::AgentLink;
use mc_schema::agent::{FromShard, SegmentInfo, SegmentKind, ToShard};
use mc_schema::msg::Request;
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::{Agent, Group, NodeSegment, Pending};
use crate::state::{Command, CommandError, MountResult, format_segment_id};

impl<L: AgentLink> Agent<L> {
    pub(super) fn request_id(&mut self) -> u64 {
        let r = self.next_request;
        self.next_request += 1;
        r
    }

    /// Starts serving one command; its answer may come later from `poll_shards`.
    pub(super) fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Mount { size_bytes, reply } => {
                let request = self.request_id();
                let shard = self.emptiest_shard();
                info!(shard, size_bytes, "mounting more memory");
                self.send_to_shard(
                    shard,
                    ToShard::Mount {
                        request,
                        size_bytes,
                    },
                    request,
                    Pending::Mount(reply),
                );
            }
            Command::MountShm {
                path,
                offset_bytes,
                size_bytes,
                reply,
            } => {
                let request = self.request_id();
                let shard = self.emptiest_shard();
                info!(shard, %path, offset_bytes, size_bytes, "mounting shared memory");
                self.send_to_shard(
                    shard,
                    ToShard::MountShm {
                        request,
                        path,
                        offset_bytes,
                        size_bytes,
                    },
                    request,
                    Pending::Mount(reply),
                );
            }
            Command::MountCxl {
                path,
                size_bytes,
                reply,
            } => {
                let request = self.request_id();
                let shard = self.emptiest_shard();
                info!(shard, %path, size_bytes, "mounting CXL memory");
                self.send_to_shard(
                    shard,
                    ToShard::MountCxl {
                        request,
                        path,
                        size_bytes,
                    },
                    request,
                    Pending::Mount(reply),
                );
            }
            Command::Unmount {
                segment_ids,
                kind,
                grace,
                reply,
            } => {
                if let Err(e) = self.check_unmount(&segment_ids, kind) {
                    let _ = reply.send(Err(e));
                    return;
                }
                self.begin_unmount(segment_ids, grace, reply);
            }
            Command::Notices { term, seq, notices } => self.forward_notices(term, seq, notices),
            Command::Metrics { reply } => {
                let request = self.request_id();
                self.send_to_shard(
                    0,
                    ToShard::Metrics { request },
                    request,
                    Pending::Metrics(reply),
                );
            }
        }
    }

    /// The shard serving the fewest bytes: new memory spreads over the node's cores.
    pub(super) fn emptiest_shard(&self) -> usize {
        let mut bytes = vec![0u64; self.links.len()];
        for s in self
            .segments
            .iter()
            .filter(|s| s.info.kind != SegmentKind::LocalDisk)
        {
            if let Some(b) = bytes.get_mut(s.info.shard as usize) {
                *b += s.info.size_bytes;
            }
        }
        (0..bytes.len()).min_by_key(|&i| bytes[i]).unwrap_or(0)
    }

    pub(super) fn send_to_shard(
        &mut self,
        shard: usize,
        msg: ToShard,
        request: u64,
        pending: Pending,
    ) {
        match self.links.get(shard).map(|l| l.send(msg)) {
            Some(Ok(())) => {
                self.pending.insert(request, pending);
            }
            _ => {
                let why = CommandError::Failed(format!("shard {shard} is not running"));
                match pending {
                    Pending::Mount(reply) => {
                        let _ = reply.send(Err(why));
                    }
                    Pending::Unmount { group } => self.group_done(group, Some(why.to_string())),
                    // Dropping the sender tells the scrape there is nothing to add.
                    Pending::Metrics(_) => {}
                }
            }
        }
    }

    /// Every id must name a segment of `kind` that is not being unmounted already.
    pub(super) fn check_unmount(&self, ids: &[u64], kind: SegmentKind) -> Result<(), CommandError> {
        if ids.is_empty() {
            return Err(CommandError::Invalid("no segment ids given".into()));
        }
        for (i, id) in ids.iter().enumerate() {
            if ids[..i].contains(id) {
                return Err(CommandError::Invalid(format!(
                    "segment {} is listed twice",
                    format_segment_id(*id)
                )));
            }
            let Some(s) = self.segments.iter().find(|s| s.info.segment_id == *id) else {
                return Err(CommandError::NotFound(format!(
                    "this node serves no segment {}",
                    format_segment_id(*id)
                )));
            };
            if s.info.kind != kind {
                let how = match s.info.kind {
                    SegmentKind::Startup => {
                        "is the shard's start-up segment; it leaves when the node stops"
                    }
                    SegmentKind::Allocated => "was mounted by /api/mount; use /api/unmount",
                    SegmentKind::Shm => "was mounted by /api/mount_shm; use /api/unmount_shm",
                    SegmentKind::LocalDisk => "is the shard's SSD store; it goes with the node",
                    SegmentKind::Cxl => "is the node's CXL memory; it goes with the node",
                };
                return Err(CommandError::Invalid(format!(
                    "segment {} {how}",
                    s.info.name
                )));
            }
            if s.release_at.is_some() {
                return Err(CommandError::Invalid(format!(
                    "segment {} is being unmounted already",
                    s.info.name
                )));
            }
        }
        Ok(())
    }

    pub(super) fn begin_unmount(
        &mut self,
        ids: Vec<u64>,
        grace: Duration,
        reply: oneshot::Sender<Result<(), CommandError>>,
    ) {
        let at = Instant::now() + grace;
        let mut names = Vec::new();
        for s in self
            .segments
            .iter_mut()
            .filter(|s| ids.contains(&s.info.segment_id))
        {
            s.release_at = Some(at);
            names.push(s.info.name.clone());
        }
        // A drain that does not reach the master is repeated after the next re-mount.
        match self.drain_at_master(ids.clone()) {
            Ok(()) => info!(
                segments = ?names,
                grace_seconds = grace.as_secs_f64(),
                "unmount: segments draining (readable, no new allocations)"
            ),
            Err(e) => {
                warn!(segments = ?names, "unmount: drain request failed: {e}");
                self.note_error(&e);
            }
        }
        if grace.is_zero() {
            let group = self.request_id();
            self.groups.insert(
                group,
                Group {
                    left: ids.len(),
                    reply,
                },
            );
            for id in ids {
                self.release(id, Some(group));
            }
        } else {
            let _ = reply.send(Ok(()));
        }
    }

    /// Releases every segment whose grace period has ended.
    pub(super) fn release_due(&mut self) {
        let now = Instant::now();
        let due: Vec<u64> = self
            .segments
            .iter()
            .filter(|s| !s.releasing && s.release_at.is_some_and(|t| t <= now))
            .map(|s| s.info.segment_id)
            .collect();
        for id in due {
            self.release(id, None);
        }
    }

    /// Unmounts a segment at the master, then asks its shard to release it.
    pub(super) fn release(&mut self, id: u64, group: Option<u64>) {
        let Some(i) = self.segments.iter().position(|s| s.info.segment_id == id) else {
            return;
        };
        self.segments[i].releasing = true;
        let info = self.segments[i].info.clone();
        if self.segments[i].at_master {
            let r = self.call(&Request::UnmountSegment {
                client_id: self.client_id,
                segment_id: id,
            });
            match r {
                Ok(_) => info!(segment = %info.name, "unmount: the master dropped the segment"),
                Err(e) => {
                    warn!(segment = %info.name, "unmount at the master failed, retried with the heartbeats: {e}");
                    self.note_error(&e);
                    self.orphans.push(id);
                }
            }
            self.segments[i].at_master = false;
            self.publish();
        }
        let request = self.request_id();
        self.send_to_shard(
            info.shard as usize,
            ToShard::Unmount {
                request,
                segment_id: id,
            },
            request,
            Pending::Unmount { group },
        );
    }

    /// One segment of a zero-grace unmount is done (`failure` says why not).
    pub(super) fn group_done(&mut self, group: Option<u64>, failure: Option<String>) {
        let Some(g) = group else { return };
        let Some(entry) = self.groups.get_mut(&g) else {
            return;
        };
        if let Some(why) = failure {
            if let Some(e) = self.groups.remove(&g) {
                let _ = e.reply.send(Err(CommandError::Failed(why)));
            }
            return;
        }
        entry.left -= 1;
        if entry.left == 0
            && let Some(e) = self.groups.remove(&g)
        {
            let _ = e.reply.send(Ok(()));
        }
    }

    /// Handles every message the shards have sent since the last look.
    pub(super) fn poll_shards(&mut self) {
        for i in 0..self.links.len() {
            while let Ok(Some(msg)) = self.links[i].recv_timeout(Duration::ZERO) {
                self.on_shard_message(i, msg);
            }
        }
    }

    pub(super) fn on_shard_message(&mut self, shard: usize, msg: FromShard) {
        match msg {
            FromShard::Mounted { request, segment } => {
                let reply = match self.pending.remove(&request) {
                    Some(Pending::Mount(r)) => Some(r),
                    _ => None,
                };
                self.on_mounted(segment, reply);
            }
            FromShard::MountFailed { request, reason } => {
                if let Some(Pending::Mount(r)) = self.pending.remove(&request) {
                    let _ = r.send(Err(CommandError::Refused(reason)));
                }
            }
            FromShard::Unmounted {
                request,
                segment_id,
                found,
            } => {
                if let Some(i) = self
                    .segments
                    .iter()
                    .position(|s| s.info.segment_id == segment_id)
                {
                    let s = self.segments.remove(i);
                    info!(segment = %s.info.name, found, "unmount: segment released");
                    self.publish();
                }
                if let Some(Pending::Unmount { group }) = self.pending.remove(&request) {
                    self.group_done(group, None);
                }
            }
            FromShard::Metrics { request, text } => {
                if let Some(Pending::Metrics(r)) = self.pending.remove(&request) {
                    let _ = r.send(String::from_utf8_lossy(&text).into_owned());
                }
            }
            FromShard::Applied { term, seq, .. } => self.notices_applied(term, seq),
            FromShard::Hits { keys, .. } => self.note_hits(keys),
            FromShard::Offloaded { entries, .. } => self.report_offloaded(entries),
            FromShard::Promoted { entries, .. } => self.report_promoted(entries),
            FromShard::Dropped { entries, .. } => self.report_dropped(entries),
            other => warn!(shard, "unexpected message from a shard: {other:?}"),
        }
    }

    /// A shard made a new segment: mount it at the master, or give it back on failure.
    pub(super) fn on_mounted(
        &mut self,
        info: SegmentInfo,
        reply: Option<oneshot::Sender<MountResult>>,
    ) {
        let result = self.mount_at_master(&info, false);
        let ok = result.is_ok();
        // The node's CXL memory is part of the node, like its start-up segments: a master
        // not reachable yet gets it with them (the next mount of every segment).
        let part_of_node = info.kind == SegmentKind::Cxl;
        self.segments.push(NodeSegment {
            info: info.clone(),
            at_master: ok,
            release_at: None,
            releasing: !ok && !part_of_node,
        });
        self.publish();
        match result {
            Err(e) if part_of_node => {
                warn!(segment = %info.name, "the master does not have the CXL segment yet ({e}); it is mounted with the others");
                self.mounted = false;
                if let Some(r) = reply {
                    let _ = r.send(Ok(info));
                }
            }
            Ok(()) => {
                info!(segment = %info.name, size_bytes = info.size_bytes, "segment mounted on request");
                if let Some(r) = reply {
                    let _ = r.send(Ok(info));
                }
            }
            Err(e) => {
                warn!(segment = %info.name, "mount at the master failed, releasing the memory: {e}");
                let request = self.request_id();
                self.send_to_shard(
                    info.shard as usize,
                    ToShard::Unmount {
                        request,
                        segment_id: info.segment_id,
                    },
                    request,
                    Pending::Unmount { group: None },
                );
                if let Some(r) = reply {
                    let _ = r.send(Err(CommandError::Failed(format!(
                        "the master did not mount the segment: {e}"
                    ))));
                }
            }
        }
    }
}
