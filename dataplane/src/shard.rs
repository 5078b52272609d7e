//! A shard: one glommio executor owning its segments and its data port.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use futures_lite::future;
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};
use mc_hugepages::RegionOptions;
use mc_schema::agent::{FromShard, SegmentInfo, SegmentKind, ToShard};
use tracing::{debug, info, warn};

use crate::DataplaneError;
use crate::control::ShardLink;
use crate::segment::SegmentMem;
use crate::stats::ShardStats;
use crate::transfer::server::serve_connection;
use std::sync::Arc;

/// Control polls (20 ms apart) with no transfer in flight before a drain is answered.
const DRAIN_QUIET_POLLS: u32 = 5;

/// How one shard is set up.
#[derive(Debug, Clone)]
pub struct ShardConfig {
    /// Shard index within the node.
    pub index: usize,
    /// Core to pin to; `None` runs unpinned.
    pub core: Option<usize>,
    /// Host to bind the data port on and to advertise (`--local_hostname`).
    pub host: String,
    /// Data port; 0 = ephemeral.
    pub data_port: u16,
    /// Bytes of the shard's first segment.
    pub segment_bytes: usize,
    /// How segment memory is backed.
    pub region: RegionOptions,
    /// Cluster id peers must present.
    pub cluster_id: String,
    /// glommio io_uring buffer memory in bytes (counted against the memlock limit).
    pub io_memory_bytes: usize,
}

/// A running shard.
pub struct ShardHandle {
    /// Shard index.
    pub index: usize,
    /// Its first segment.
    pub segment: SegmentInfo,
    /// Its counters (written by the shard, read by anyone).
    pub stats: Arc<ShardStats>,
    thread: JoinHandle<()>,
}

impl ShardHandle {
    /// Waits for the shard thread to end (after it was told to stop).
    pub fn join(self) {
        if self.thread.join().is_err() {
            warn!(shard = self.index, "shard thread panicked");
        }
    }
}

/// Per-shard state shared by its tasks (single-threaded: `Rc`, no locks).
pub(crate) struct ShardState {
    pub(crate) segments: RefCell<HashMap<u64, Rc<SegmentMem>>>,
    pub(crate) cluster_id: String,
    pub(crate) stats: Arc<ShardStats>,
    /// Transfers between header and answer right now.
    pub(crate) in_flight: Cell<usize>,
}

impl ShardState {
    pub(crate) fn segment(&self, id: u64) -> Option<Rc<SegmentMem>> {
        self.segments.borrow().get(&id).cloned()
    }
}

/// Starts a shard on its own thread; returns once its segment is mapped and its port bound.
pub fn start_shard<L: ShardLink + Send + 'static>(
    cfg: ShardConfig,
    link: L,
) -> Result<ShardHandle, DataplaneError> {
    type Ready = Result<(SegmentInfo, Arc<ShardStats>), DataplaneError>;
    let (ready_tx, ready_rx) = mpsc::channel::<Ready>();
    let index = cfg.index;
    let placement = match cfg.core {
        Some(c) => Placement::Fixed(c),
        None => Placement::Unbound,
    };
    let builder = LocalExecutorBuilder::new(placement)
        .name(&format!("mc-shard-{index}"))
        .io_memory(cfg.io_memory_bytes);
    let thread = std::thread::Builder::new()
        .name(format!("mc-shard-{index}"))
        .spawn(move || {
            let ex = match builder.make() {
                Ok(ex) => ex,
                Err(e) => {
                    let _ = ready_tx.send(Err(DataplaneError::Executor {
                        shard: index,
                        reason: e.to_string(),
                    }));
                    return;
                }
            };
            ex.run(run_shard(cfg, link, ready_tx));
        })
        .map_err(|e| DataplaneError::Executor {
            shard: index,
            reason: e.to_string(),
        })?;
    match ready_rx.recv() {
        Ok(Ok((segment, stats))) => Ok(ShardHandle {
            index,
            segment,
            stats,
            thread,
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(DataplaneError::Start {
                shard: index,
                reason: "the shard thread exited during start-up".into(),
            })
        }
    }
}

async fn run_shard<L: ShardLink>(
    cfg: ShardConfig,
    link: L,
    ready: mpsc::Sender<Result<(SegmentInfo, Arc<ShardStats>), DataplaneError>>,
) {
    // Memory is allocated and prefaulted on the shard's own thread so its pages land on the
    // shard's NUMA node (first touch).
    let seg = match SegmentMem::new(cfg.segment_bytes, &cfg.region) {
        Ok(s) => Rc::new(s),
        Err(e) => {
            let _ = ready.send(Err(e.into()));
            return;
        }
    };
    let addr = format!("{}:{}", cfg.host, cfg.data_port);
    let listener = match TcpListener::bind(addr.as_str()) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(DataplaneError::Bind {
                shard: cfg.index,
                addr,
                source: std::io::Error::other(e.to_string()),
            }));
            return;
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let endpoint = format!("{}:{port}", cfg.host);
    let info = SegmentInfo {
        shard: cfg.index as u32,
        segment_id: seg.id,
        name: endpoint.clone(),
        endpoint: endpoint.clone(),
        size_bytes: seg.size_bytes(),
        kind: SegmentKind::Startup,
    };
    info!(
        shard = cfg.index,
        core = ?cfg.core,
        %endpoint,
        size_bytes = info.size_bytes,
        "shard serving its segment"
    );
    let stats = Arc::new(ShardStats::new(cfg.index as u32, &endpoint));
    stats.capacity_bytes.set(info.size_bytes);
    let state = Rc::new(ShardState {
        stats: stats.clone(),
        segments: RefCell::new(HashMap::from([(seg.id, seg)])),
        cluster_id: cfg.cluster_id.clone(),
        in_flight: Cell::new(0),
    });
    let _ = ready.send(Ok((info.clone(), stats)));
    let _ = link.send(FromShard::Segment(info.clone()));

    let accept = async {
        loop {
            match listener.accept().await {
                Ok(stream) => {
                    let state = state.clone();
                    glommio::spawn_local(async move {
                        if let Err(e) = serve_connection(stream, &state).await {
                            debug!("data connection closed: {e}");
                        }
                    })
                    .detach();
                }
                Err(e) => {
                    warn!("accept failed on {endpoint}: {e}");
                    glommio::timer::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    };
    let control = async {
        let mut ctl = Control {
            index: cfg.index,
            endpoint: endpoint.clone(),
            region: cfg.region.clone(),
            infos: HashMap::from([(info.segment_id, info.clone())]),
            next_name: 1,
        };
        // Quiet polls still needed before answering a Drain (None = no drain asked).
        let mut drain_quiet: Option<u32> = None;
        loop {
            if let Some(q) = drain_quiet {
                let q = if state.in_flight.get() == 0 {
                    q.saturating_sub(1)
                } else {
                    DRAIN_QUIET_POLLS
                };
                drain_quiet = Some(q);
                if q == 0 {
                    let _ = link.send(FromShard::Drained {
                        shard: cfg.index as u32,
                    });
                    drain_quiet = None;
                }
            }
            match link.try_recv() {
                Ok(Some(ToShard::Drain)) => drain_quiet = Some(DRAIN_QUIET_POLLS),
                Ok(Some(ToShard::Stop)) | Err(_) => break,
                Ok(Some(msg)) => {
                    for answer in ctl.handle(msg, &state) {
                        let _ = link.send(answer);
                    }
                }
                Ok(None) => glommio::timer::sleep(Duration::from_millis(20)).await,
            }
        }
    };
    future::or(accept, control).await;
    let _ = link.send(FromShard::Stopped {
        shard: cfg.index as u32,
    });
    info!(shard = cfg.index, "shard stopped");
}

/// Refuses a plain-page segment larger than the memory the kernel has available: prefaulting
/// it would end with the OOM killer taking the whole node. (Hugetlb pages are checked
/// against their pool when mapped.)
fn check_available(size_bytes: u64, opts: &RegionOptions) -> Result<(), String> {
    if opts.huge == mc_hugepages::HugePolicy::Require {
        return Ok(());
    }
    match mc_hugepages::available_memory_bytes() {
        Some(avail) if size_bytes > avail => Err(format!(
            "{size_bytes} bytes asked for, but the machine has only {avail} bytes available \
             (MemAvailable); ask for less or free memory"
        )),
        _ => Ok(()),
    }
}

/// The control side of a shard: which segments it serves and how to add and remove them.
struct Control {
    index: usize,
    endpoint: String,
    region: RegionOptions,
    infos: HashMap<u64, SegmentInfo>,
    /// Suffix of the next runtime segment's name (`host:port#n`); never reused in a process.
    next_name: u32,
}

impl Control {
    /// Answers one control message other than Drain and Stop.
    ///
    /// Mapping and prefaulting a new segment runs on the shard's own thread (first touch puts
    /// the pages on the shard's NUMA node), so transfers on this shard pause while a large
    /// segment is prefaulted; mounts are rare operator actions.
    fn handle(&mut self, msg: ToShard, state: &ShardState) -> Vec<FromShard> {
        match msg {
            ToShard::Describe => self
                .infos
                .values()
                .cloned()
                .map(FromShard::Segment)
                .collect(),
            ToShard::Mount {
                request,
                size_bytes,
            } => {
                let opts = RegionOptions {
                    name: format!("mc-seg-{}-{}", self.index, self.next_name),
                    ..self.region.clone()
                };
                let made = usize::try_from(size_bytes)
                    .map_err(|_| {
                        format!("{size_bytes} bytes do not fit in this machine's address space")
                    })
                    .and_then(|n| {
                        check_available(size_bytes, &opts)?;
                        SegmentMem::new(n, &opts).map_err(|e| e.to_string())
                    });
                vec![self.added(request, made, SegmentKind::Allocated, state)]
            }
            ToShard::MountShm {
                request,
                path,
                offset_bytes,
                size_bytes,
            } => {
                let opts = RegionOptions {
                    name: path.clone(),
                    ..self.region.clone()
                };
                let made = usize::try_from(size_bytes)
                    .map_err(|_| {
                        format!("{size_bytes} bytes do not fit in this machine's address space")
                    })
                    .and_then(|n| {
                        SegmentMem::from_file(std::path::Path::new(&path), offset_bytes, n, &opts)
                            .map_err(|e| e.to_string())
                    });
                vec![self.added(request, made, SegmentKind::Shm, state)]
            }
            ToShard::Unmount {
                request,
                segment_id,
            } => {
                // Transfers under way hold their own reference to the segment: its memory
                // goes when the last of them ends.
                let removed = state.segments.borrow_mut().remove(&segment_id);
                let info = self.infos.remove(&segment_id);
                if let Some(seg) = &removed {
                    state.stats.capacity_bytes.sub(seg.size_bytes());
                    info!(
                        shard = self.index,
                        segment = %info.map(|i| i.name).unwrap_or_default(),
                        "segment released"
                    );
                }
                vec![FromShard::Unmounted {
                    request,
                    segment_id,
                    found: removed.is_some(),
                }]
            }
            ToShard::Drain | ToShard::Stop => Vec::new(),
        }
    }

    /// Registers a freshly made segment and says so, or says why none was made.
    fn added(
        &mut self,
        request: u64,
        made: Result<SegmentMem, String>,
        kind: SegmentKind,
        state: &ShardState,
    ) -> FromShard {
        match made {
            Err(reason) => {
                warn!(shard = self.index, "mount failed: {reason}");
                FromShard::MountFailed { request, reason }
            }
            Ok(seg) => {
                let info = SegmentInfo {
                    shard: self.index as u32,
                    segment_id: seg.id,
                    name: format!("{}#{}", self.endpoint, self.next_name),
                    endpoint: self.endpoint.clone(),
                    size_bytes: seg.size_bytes(),
                    kind,
                };
                self.next_name += 1;
                state.stats.capacity_bytes.add(info.size_bytes);
                state.segments.borrow_mut().insert(seg.id, Rc::new(seg));
                self.infos.insert(info.segment_id, info.clone());
                info!(
                    shard = self.index,
                    segment = %info.name,
                    size_bytes = info.size_bytes,
                    ?kind,
                    "segment added"
                );
                FromShard::Mounted {
                    request,
                    segment: info,
                }
            }
        }
    }
}
