//! The segments a shard serves, and how control messages add and remove them.

use std::collections::HashMap;
use std::rc::Rc;

use mc_hugepages::RegionOptions;
use mc_schema::agent::{FromShard, SegmentInfo, SegmentKind, ToShard};
use tracing::{info, warn};

use super::ShardConfig;
use super::revive::Adopted;
use crate::DataplaneError;
use crate::keep::{KeeperHandle, Kept, KeptIndex, KeptSegment, KeptSource};
use crate::segment::SegmentMem;
use crate::state::ShardState;

/// A mapped range of a shared-memory file: (device, inode, first byte, end).
type ShmRange = (u64, u64, u64, u64);
/// A freshly mapped file range, with the path it was mapped by.
type ShmMapped = (u64, u64, u64, u64, String);

/// The control side of a shard: which segments it serves and how to add and remove them.
pub(super) struct Segments {
    index: usize,
    endpoint: String,
    region: RegionOptions,
    /// Where runtime mounts take memory from first.
    arena: Option<mc_hugepages::Arena>,
    infos: HashMap<u64, SegmentInfo>,
    /// The shard's SSD record store, reported with the segments.
    disk: Option<SegmentInfo>,
    /// Who holds the descriptors for a later data plane (`crate::keep`).
    keeper: Option<KeeperHandle>,
    /// Path and offset of segments mapped from named files (kept by path).
    files: HashMap<u64, (String, u64)>,
    /// What `Metrics` is answered with.
    metrics: Option<crate::stats::FamiliesText>,
    /// File ranges of shm segments, so one file range is never mapped twice: two segments
    /// over the same bytes would let two transfers view them under different segment ids.
    shm: HashMap<u64, ShmRange>,
    /// Suffix of the next runtime segment's name (`host:port#n`); never reused in a process.
    next_name: u32,
}

/// Refuses a plain-page segment larger than the memory the kernel has available: prefaulting
/// it would end with the OOM killer taking the whole node. (Hugetlb pages are checked
/// against their pool when mapped.)
fn check_available(size_bytes: u64, opts: &RegionOptions) -> Result<(), DataplaneError> {
    if opts.huge == mc_hugepages::HugePolicy::Require {
        return Ok(());
    }
    match mc_hugepages::available_memory_bytes() {
        Some(avail) if size_bytes > avail => Err(DataplaneError::NotEnoughMemory {
            size_bytes,
            available_bytes: avail,
        }),
        _ => Ok(()),
    }
}

fn to_usize(size_bytes: u64) -> Result<usize, DataplaneError> {
    usize::try_from(size_bytes).map_err(|_| DataplaneError::TooLarge { size_bytes })
}

impl Segments {
    /// The control side of the shard `cfg` describes, serving its first segment `first`
    /// and its disk segment `disk`.
    pub(super) fn new(
        cfg: &ShardConfig,
        first: &SegmentInfo,
        disk: Option<SegmentInfo>,
    ) -> Segments {
        Segments {
            index: cfg.index,
            endpoint: first.endpoint.clone(),
            region: cfg.region.clone(),
            arena: cfg.arena.clone(),
            infos: HashMap::from([(first.segment_id, first.clone())]),
            disk,
            keeper: cfg.keeper.clone(),
            files: HashMap::new(),
            metrics: cfg.metrics.clone(),
            shm: HashMap::new(),
            next_name: 1,
        }
    }

    /// Serves a segment an earlier data plane served (same id and name).
    pub(super) fn adopt(&mut self, adopted: Adopted, state: &ShardState) {
        let Adopted { info, seg, file } = adopted;
        if let Some(n) = info
            .name
            .rsplit_once('#')
            .and_then(|(_, n)| n.parse::<u32>().ok())
        {
            self.next_name = self.next_name.max(n + 1);
        }
        if let Some((path, offset)) = &file {
            if let Ok(m) = std::fs::metadata(path) {
                use std::os::unix::fs::MetadataExt;
                let end = offset.saturating_add(info.size_bytes);
                self.shm
                    .insert(info.segment_id, (m.dev(), m.ino(), *offset, end));
            }
            self.files.insert(info.segment_id, (path.clone(), *offset));
        }
        state.stats.capacity_bytes.add(info.size_bytes);
        state
            .segments
            .borrow_mut()
            .insert(seg.id, std::rc::Rc::new(seg));
        self.infos.insert(info.segment_id, info);
    }

    /// Hands the keeper the index files and every segment (at start, fresh or taken over).
    pub(super) fn keep_all(&self, state: &ShardState) {
        let Some(keeper) = &self.keeper else { return };
        let index = state.index.borrow();
        let (records, keys) = index.files();
        match (
            records.fd().try_clone_to_owned(),
            keys.fd().try_clone_to_owned(),
        ) {
            (Ok(records), Ok(keys)) => keeper.0.keep(Kept::Index {
                shard: self.index as u32,
                files: KeptIndex { records, keys },
            }),
            (Err(e), _) | (_, Err(e)) => {
                warn!(
                    shard = self.index,
                    "index files not kept for a restart: {e}"
                )
            }
        }
        drop(index);
        for id in self.infos.keys() {
            self.keep(*id, state);
        }
    }

    /// Hands the keeper segment `id`'s descriptor (or file), if it can be kept.
    fn keep(&self, id: u64, state: &ShardState) {
        let (Some(keeper), Some(info)) = (&self.keeper, self.infos.get(&id)) else {
            return;
        };
        let source = match self.files.get(&id) {
            Some((path, offset_bytes)) => Ok(KeptSource::File {
                path: path.clone(),
                offset_bytes: *offset_bytes,
            }),
            None => match state.segment(id).as_deref().and_then(SegmentMem::memfd) {
                Some(fd) => fd
                    .try_clone_to_owned()
                    .map(KeptSource::Memfd)
                    .map_err(|e| e.to_string()),
                None => Err("its memory is a slice of the mmap arena".to_string()),
            },
        };
        match source {
            Ok(source) => keeper.0.keep(Kept::Segment(KeptSegment {
                info: info.clone(),
                source,
            })),
            Err(why) => warn!(
                shard = self.index,
                segment = %info.name,
                "segment not kept for a data-plane restart: {why}"
            ),
        }
    }

    /// Answers one control message other than Drain, Stop and Notices.
    ///
    /// Mapping and prefaulting a new segment runs on the shard's own thread (first touch puts
    /// the pages on the shard's NUMA node), so transfers on this shard pause while a large
    /// segment is prefaulted; mounts are rare operator actions.
    pub(super) fn handle(&mut self, msg: ToShard, state: &ShardState) -> Vec<FromShard> {
        match msg {
            ToShard::Describe => self
                .disk
                .iter()
                .chain(self.infos.values())
                .cloned()
                .map(FromShard::Segment)
                .chain([FromShard::Described {
                    shard: self.index as u32,
                }])
                .collect(),
            ToShard::Mount {
                request,
                size_bytes,
            } => {
                let opts = RegionOptions {
                    name: format!("mc-seg-{}-{}", self.index, self.next_name),
                    ..self.region.clone()
                };
                let arena = self.arena.as_ref();
                let made = to_usize(size_bytes).and_then(|n| {
                    // Memory the arena already holds needs no check against the kernel's.
                    if arena.is_none_or(|a| a.pool_bytes() - a.used_bytes() < n) {
                        check_available(size_bytes, &opts)?;
                    }
                    Ok(SegmentMem::new_in(n, &opts, arena)?)
                });
                vec![self.added(
                    request,
                    made.map(|s| (s, None)),
                    SegmentKind::Allocated,
                    state,
                )]
            }
            ToShard::MountShm {
                request,
                path,
                offset_bytes,
                size_bytes,
            } => {
                let made = self.map_shm(&path, offset_bytes, size_bytes);
                vec![self.added(request, made, SegmentKind::Shm, state)]
            }
            ToShard::MountCxl {
                request,
                path,
                size_bytes,
            } => {
                let made = self.map_shm(&path, 0, size_bytes);
                vec![self.added(request, made, SegmentKind::Cxl, state)]
            }
            ToShard::Unmount {
                request,
                segment_id,
            } => vec![self.remove(request, segment_id, state)],
            ToShard::SetWriteSecret { secret } => {
                state.caps.borrow_mut().set_secret(&secret);
                Vec::new()
            }
            ToShard::SetTerm { term } => {
                super::objects::set_term(state, term);
                Vec::new()
            }
            ToShard::Inventory { request } => {
                super::objects::inventory(state, request, self.infos.keys().copied())
            }
            ToShard::Metrics { request } => vec![FromShard::Metrics {
                request,
                text: self
                    .metrics
                    .as_ref()
                    .map(|m| (m.0)().into_bytes())
                    .unwrap_or_default(),
            }],
            // The control loop answers these itself (notices may wait for the disk).
            ToShard::Drain | ToShard::Stop | ToShard::Notices { .. } => Vec::new(),
        }
    }

    /// Maps a range of a shared-memory file, unless a segment of this shard maps part of it.
    fn map_shm(
        &self,
        path: &str,
        offset_bytes: u64,
        size_bytes: u64,
    ) -> Result<(SegmentMem, Option<ShmMapped>), DataplaneError> {
        let n = to_usize(size_bytes)?;
        let end_bytes = offset_bytes.saturating_add(size_bytes);
        let file = std::fs::metadata(path).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        });
        if let Some((dev, ino)) = file {
            let clash = self.shm.iter().find(|(_, r)| {
                let &(d, i, start, end) = *r;
                d == dev && i == ino && start < end_bytes && offset_bytes < end
            });
            if let Some((id, _)) = clash {
                return Err(DataplaneError::ShmOverlap {
                    path: path.to_string(),
                    offset_bytes,
                    end_bytes,
                    segment: self
                        .infos
                        .get(id)
                        .map(|i| i.name.clone())
                        .unwrap_or_default(),
                });
            }
        }
        let opts = RegionOptions {
            name: path.to_string(),
            ..self.region.clone()
        };
        let seg = SegmentMem::from_file(std::path::Path::new(path), offset_bytes, n, &opts)?;
        Ok((
            seg,
            file.map(|(d, i)| (d, i, offset_bytes, end_bytes, path.to_string())),
        ))
    }

    /// Stops serving a segment. Transfers under way hold their own reference to it: its
    /// memory goes when the last of them ends.
    fn remove(&mut self, request: u64, segment_id: u64, state: &ShardState) -> FromShard {
        if self
            .disk
            .as_ref()
            .is_some_and(|d| d.segment_id == segment_id)
        {
            // The SSD store leaves the node's segments (`unmount_local_disk_segment`): the
            // master sends no more copies to it nor reads from it; its records stay on disk
            // and come back with the next start of the data plane.
            self.disk = None;
            info!(shard = self.index, "SSD store unmounted");
            return FromShard::Unmounted {
                request,
                segment_id,
                found: true,
            };
        }
        let removed = state.segments.borrow_mut().remove(&segment_id);
        let info = self.infos.remove(&segment_id);
        state.index.borrow_mut().drop_segment(segment_id);
        self.shm.remove(&segment_id);
        self.files.remove(&segment_id);
        if let (Some(keeper), true) = (&self.keeper, removed.is_some()) {
            keeper.0.keep(Kept::Gone {
                shard: self.index as u32,
                segment_id,
            });
        }
        if let Some(seg) = &removed {
            state.stats.capacity_bytes.sub(seg.size_bytes());
            info!(
                shard = self.index,
                segment = %info.map(|i| i.name).unwrap_or_default(),
                "segment released"
            );
        }
        FromShard::Unmounted {
            request,
            segment_id,
            found: removed.is_some(),
        }
    }

    /// Registers a freshly made segment and says so, or says why none was made.
    fn added(
        &mut self,
        request: u64,
        made: Result<(SegmentMem, Option<ShmMapped>), DataplaneError>,
        kind: SegmentKind,
        state: &ShardState,
    ) -> FromShard {
        let (seg, shm) = match made {
            Ok(m) => m,
            Err(e) => {
                warn!(shard = self.index, "mount failed: {e}");
                return FromShard::MountFailed {
                    request,
                    reason: e.to_string(),
                };
            }
        };
        let from_arena = seg.from_arena();
        let info = SegmentInfo {
            shard: self.index as u32,
            segment_id: seg.id,
            name: match kind {
                SegmentKind::Cxl => format!("{}/cxl", self.endpoint),
                _ => format!("{}#{}", self.endpoint, self.next_name),
            },
            endpoint: self.endpoint.clone(),
            size_bytes: seg.size_bytes(),
            kind,
        };
        self.next_name += 1;
        state.stats.capacity_bytes.add(info.size_bytes);
        state.segments.borrow_mut().insert(seg.id, Rc::new(seg));
        if let Some((dev, ino, start, end, path)) = shm {
            self.shm.insert(info.segment_id, (dev, ino, start, end));
            self.files.insert(info.segment_id, (path, start));
        }
        self.infos.insert(info.segment_id, info.clone());
        self.keep(info.segment_id, state);
        info!(
            shard = self.index,
            segment = %info.name,
            size_bytes = info.size_bytes,
            ?kind,
            from_arena,
            "segment added"
        );
        FromShard::Mounted {
            request,
            segment: info,
        }
    }
}
