//! A shard: one glommio executor owning its segments and its data port.
//!
//! The shard thread maps its first segment, binds its data port, then runs two loops until
//! told to stop: one accepts data connections (each served by `transfer`), the other polls
//! the agent's link for control messages ([`segments`] handles mounts and unmounts).

mod objects;
mod offload;
mod pace;
mod prefault;
mod revive;
mod segments;
mod stop;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use std::os::fd::{FromRawFd, IntoRawFd, RawFd};

use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};
use mc_hugepages::RegionOptions;
use mc_schema::agent::{FromShard, SegmentInfo, SegmentKind, ToShard};
use tracing::{debug, info, warn};

use crate::DataplaneError;
use crate::control::ShardLink;
use crate::index::Index;
use crate::keep::{KeeperHandle, ShardMemory};
use crate::segment::SegmentMem;
use crate::ssd::SsdStore;
use crate::state::ShardState;
use crate::stats::ShardStats;
use crate::transfer::serve_connection;
use segments::Segments;

/// How long no transfer may have been in flight before a drain is answered.
const DRAIN_QUIET: Duration = Duration::from_millis(100);

/// How often a shard polls its control link by default. A remove is answered once the
/// shards holding the object applied its free notice, so this bounds a remove's latency; a
/// timer wake every 2 ms costs a shard well under 1% of a core.
pub const CONTROL_POLL_INTERVAL: Duration = Duration::from_millis(2);

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
    /// The node's mmap arena (`MC_MMAP_ARENA_POOL_SIZE`), which runtime mounts draw from
    /// first; `None` maps each mount on its own.
    pub arena: Option<mc_hugepages::Arena>,
    /// Cluster id peers must present.
    pub cluster_id: String,
    /// glommio io_uring buffer memory in bytes (counted against the memlock limit).
    pub io_memory_bytes: usize,
    /// How often the control link is polled ([`CONTROL_POLL_INTERVAL`]; tests shorten it).
    pub control_poll_interval: Duration,
    /// The SSD tier, if enabled (`--enable_ssd_offload`).
    pub ssd: Option<crate::ssd::SsdConfig>,
    /// Who holds the shard's memory descriptors for a data plane started after this one
    /// (`crate::keep`); `None` in a node that runs its data plane in-process.
    pub keeper: Option<KeeperHandle>,
    /// What `ToShard::Metrics` is answered with; `None` answers empty text.
    pub metrics: Option<crate::stats::FamiliesText>,
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
    /// Whether the shard thread has ended (told to stop, or died).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the shard thread to end (after it was told to stop); false when it
    /// panicked (logged).
    pub fn join(self) -> bool {
        let ok = self.thread.join().is_ok();
        if !ok {
            warn!(shard = self.index, "shard thread panicked");
        }
        ok
    }
}

/// Starts a shard on its own thread; returns once its segment is mapped and its port bound.
pub fn start_shard<L: ShardLink + Send + 'static>(
    cfg: ShardConfig,
    link: L,
) -> Result<ShardHandle, DataplaneError> {
    start_shard_from(cfg, link, None)
}

/// [`start_shard`], taking over `memory` when given: the segments (same ids, same bytes),
/// the object index and the data port a shard of an earlier data-plane process served
/// (`crate::keep`). `cfg.segment_bytes` and `cfg.data_port` are then ignored.
pub fn start_shard_from<L: ShardLink + Send + 'static>(
    cfg: ShardConfig,
    link: L,
    memory: Option<ShardMemory>,
) -> Result<ShardHandle, DataplaneError> {
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
            ex.run(run_shard(cfg, link, memory, ready_tx));
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
            Err(DataplaneError::Start { shard: index })
        }
    }
}

/// What a shard reports once it is up: its first segment and its counters, or why not.
type Ready = Result<(SegmentInfo, Arc<ShardStats>), DataplaneError>;

/// A shard that is up: its state, its listener, its first segment and its disk segment.
struct Opened {
    state: Rc<ShardState>,
    listener: TcpListener,
    /// The listener's descriptor, to shut it down at stop.
    listen_fd: std::os::fd::RawFd,
    info: SegmentInfo,
    disk: Option<SegmentInfo>,
    /// Segments taken over besides the start-up one.
    others: Vec<revive::Adopted>,
    /// The start-up segment, when it is to be prefaulted behind serving.
    prefault_behind: Option<Rc<SegmentMem>>,
}

async fn run_shard<L: ShardLink>(
    cfg: ShardConfig,
    link: L,
    memory: Option<ShardMemory>,
    ready: mpsc::Sender<Ready>,
) {
    let opened = match open(&cfg, memory).await {
        Ok(o) => o,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let Opened {
        state,
        listener,
        listen_fd,
        info,
        disk,
        others,
        prefault_behind,
    } = opened;
    let _ = ready.send(Ok((info.clone(), state.stats.clone())));
    if let Some(seg) = prefault_behind {
        prefault::start_behind(cfg.index, seg);
    }
    let offloader = cfg
        .ssd
        .as_ref()
        .map(|c| offload::Offloader::start(state.clone(), c.queue_limit));
    let mut segments = Segments::new(&cfg, &info, disk);
    for adopted in others {
        segments.adopt(adopted, &state);
    }
    segments.keep_all(&state);
    // The accept loop is a task of its own, polled only when the listener wakes it. Racing
    // it against the control loop in one future (`future::or`) re-polled the pending accept
    // on every control tick, and glommio keeps one waker reference per such poll in an i16:
    // after 32767 ticks (about 11 minutes at 20 ms) the shard thread panicked.
    let (stop_accept, stopped) = stop::stop_pair();
    // The stop first: `or` polls its first future first, so once stopped the accept that the
    // shutdown below fails is never looked at (and never logged).
    let accept = glommio::spawn_local(futures_lite::future::or(
        stopped,
        accept_loop(listener, state.clone(), info.endpoint.clone()),
    ));
    control_loop(&cfg, &link, &state, segments, offloader.as_ref()).await;
    // Awaited, not cancelled: the listener is closed once this returns, so a shard started
    // next on the same port (SO_REUSEPORT) never shares it with a listener still open here.
    // Closing alone is not enough: a pending io_uring accept holds the socket open until
    // the ring is torn down, and would take (and drop) the next connection. Shutting a
    // listening socket down stops it listening at once.
    drop(stop_accept);
    // SAFETY: `listen_fd` is the listener's descriptor, still open: the accept task owns the
    // listener and has not run since the stop fired (this task has not yielded), so it has
    // not ended and dropped it.
    unsafe { libc::shutdown(listen_fd, libc::SHUT_RDWR) };
    accept.await;
    let _ = link.send(FromShard::Stopped {
        shard: cfg.index as u32,
    });
    info!(shard = cfg.index, "shard stopped");
}

/// Maps and prefaults the first segment and binds the data port. Memory is allocated on the
/// shard's own thread so its pages land on the shard's NUMA node (first touch).
async fn open(cfg: &ShardConfig, memory: Option<ShardMemory>) -> Result<Opened, DataplaneError> {
    let t0 = std::time::Instant::now();
    let revived = memory.is_some();
    // A node restarted with SSD records serves them as soon as it can: its fresh memory
    // segment is prefaulted behind serving rather than before it.
    let behind = !revived
        && cfg.region.prefault
        && cfg
            .ssd
            .as_ref()
            .is_some_and(|c| crate::ssd::holds_records(&c.dir, cfg.index));
    let (seg, data_port, index, others) = match memory {
        Some(m) => {
            let r = revive::take_over(cfg, m)?;
            (r.first, r.port, r.index, r.others)
        }
        None => (
            SegmentMem::new(
                cfg.segment_bytes,
                &RegionOptions {
                    prefault: cfg.region.prefault && !behind,
                    ..cfg.region.clone()
                },
            )?,
            cfg.data_port,
            Index::create(&format!("mc-index-{}", cfg.index))?,
            Vec::new(),
        ),
    };
    let seg = Rc::new(seg);
    let prefault_behind = behind.then(|| seg.clone());
    let (listener, listen_fd, stats, ssd) = bind_and_open_ssd(cfg, data_port).await?;
    let endpoint = stats.endpoint.clone();
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
        prefaulted = !behind,
        took_ms = t0.elapsed().as_millis() as u64,
        "shard serving its segment"
    );
    stats.capacity_bytes.set(info.size_bytes);
    let disk = ssd.as_ref().map(|s| SegmentInfo {
        shard: cfg.index as u32,
        segment_id: s.segment_id,
        name: format!("{endpoint}#ssd"),
        endpoint: endpoint.clone(),
        size_bytes: cfg.ssd.as_ref().map_or(0, |c| c.quota_bytes),
        kind: SegmentKind::LocalDisk,
    });
    let term = index.highest_term();
    let state = Rc::new(ShardState {
        stats,
        segments: RefCell::new(HashMap::from([(seg.id, seg)])),
        cluster_id: cfg.cluster_id.clone(),
        ranges: Default::default(),
        index: RefCell::new(index),
        term: Cell::new(term),
        hits: Default::default(),
        // A shard that took over a predecessor's memory was mounted: it takes no write
        // until the agent hands it the secret again.
        caps: RefCell::new(if revived {
            crate::capability::Capabilities::sealed()
        } else {
            Default::default()
        }),
        ssd,
    });
    Ok(Opened {
        state,
        listener,
        listen_fd,
        info,
        disk,
        others,
        prefault_behind,
    })
}

/// Binds the data port and opens the SSD store (rebuilding its index). A node restarted
/// on its old port often waits for it: a process killed with -9 closes its sockets only
/// after the kernel has torn its memory down, over a second for a few GB. Its SSD index is
/// rebuilt meanwhile (the endpoint, which labels the shard's metrics, is known then).
async fn bind_and_open_ssd(
    cfg: &ShardConfig,
    data_port: u16,
) -> Result<(TcpListener, RawFd, Arc<ShardStats>, Option<SsdStore>), DataplaneError> {
    let open_ssd = |stats: Arc<ShardStats>| async move {
        match &cfg.ssd {
            Some(c) => SsdStore::open(c, cfg.index, stats.ssd.clone())
                .await
                .map(Some),
            None => Ok(None),
        }
    };
    if data_port != 0 {
        let endpoint = format!("{}:{data_port}", cfg.host);
        let stats = Arc::new(ShardStats::new(cfg.index as u32, &endpoint));
        let (bound, ssd) =
            futures_lite::future::zip(bind(cfg, data_port), open_ssd(stats.clone())).await;
        let (listener, fd) = bound?;
        return Ok((listener, fd, stats, ssd?));
    }
    let (listener, fd) = bind(cfg, 0).await?;
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let stats = Arc::new(ShardStats::new(
        cfg.index as u32,
        &format!("{}:{port}", cfg.host),
    ));
    let ssd = open_ssd(stats.clone()).await?;
    Ok((listener, fd, stats, ssd))
}

/// Longest wait for a data port still held by a process that just died (the kernel
/// releases a dead process's io_uring, and the listener a pending accept holds, a little
/// after the process is gone).
const BIND_RETRY: Duration = Duration::from_secs(3);

/// Binds the shard's data port (without `SO_REUSEPORT`, so a port another live process
/// serves is refused rather than shared), retrying "address in use" for [`BIND_RETRY`].
async fn bind(cfg: &ShardConfig, port: u16) -> Result<(TcpListener, RawFd), DataplaneError> {
    let addr = format!("{}:{}", cfg.host, port);
    let until = std::time::Instant::now() + BIND_RETRY;
    let std_listener = loop {
        match std::net::TcpListener::bind(addr.as_str()) {
            Ok(l) => break l,
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && port != 0
                    && std::time::Instant::now() < until =>
            {
                glommio::timer::sleep(Duration::from_millis(20)).await;
            }
            Err(source) => {
                return Err(DataplaneError::Bind {
                    shard: cfg.index,
                    addr,
                    source,
                });
            }
        }
    };
    let fd = std_listener.into_raw_fd();
    // SAFETY: `fd` is the listening socket just made, owned by nobody else from here on.
    Ok((unsafe { TcpListener::from_raw_fd(fd) }, fd))
}

/// Accepts data connections forever, each served on its own task.
async fn accept_loop(listener: TcpListener, state: Rc<ShardState>, endpoint: String) {
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
}

/// Polls the agent's link until Stop (or the link dies). A Drain is answered once no
/// transfer has been in flight for [`DRAIN_QUIET`] (counted in polls).
async fn control_loop<L: ShardLink>(
    cfg: &ShardConfig,
    link: &L,
    state: &ShardState,
    mut segments: Segments,
    offloader: Option<&offload::Offloader>,
) {
    let index = cfg.index;
    let quiet_polls = (DRAIN_QUIET.as_micros() / cfg.control_poll_interval.as_micros().max(1))
        .clamp(1, u128::from(u32::MAX)) as u32;
    // Quiet polls still needed before answering a Drain (None = no drain asked).
    let mut drain_quiet: Option<u32> = None;
    loop {
        if let Some(q) = drain_quiet {
            let q = if state.ranges.is_empty() {
                q.saturating_sub(1)
            } else {
                quiet_polls
            };
            drain_quiet = Some(q);
            if q == 0 {
                let _ = link.send(FromShard::Drained {
                    shard: index as u32,
                });
                drain_quiet = None;
            }
        }
        match link.try_recv() {
            Ok(Some(ToShard::Drain)) => drain_quiet = Some(quiet_polls),
            Ok(Some(ToShard::Stop)) | Err(_) => break,
            Ok(Some(ToShard::Notices { seq, term, notices })) => {
                let ids = (index as u32, seq, term);
                let answer = offload::apply(state, offloader, ids, notices).await;
                let _ = link.send(answer);
            }
            Ok(Some(msg)) => {
                for answer in segments.handle(msg, state) {
                    if matches!(answer, FromShard::Inventory { .. }) {
                        pace::send_paced(link, answer, pace::PACE_BYTES).await;
                    } else {
                        let _ = link.send(answer);
                    }
                }
            }
            Ok(None) => {
                report_hits(link, state, index as u32);
                report_offloads(link, state, offloader, index as u32);
                glommio::timer::sleep(cfg.control_poll_interval).await
            }
        }
    }
}

/// Hands the copies made durable on SSD, the slices promoted from it and the records it
/// dropped on its own, since the last poll, to the agent.
fn report_offloads<L: ShardLink>(
    link: &L,
    state: &ShardState,
    offloader: Option<&offload::Offloader>,
    shard: u32,
) {
    let Some(o) = offloader else { return };
    let entries = std::mem::take(&mut *o.done.borrow_mut());
    if !entries.is_empty() {
        let _ = link.send(FromShard::Offloaded { shard, entries });
    }
    let entries = std::mem::take(&mut *o.promoted.borrow_mut());
    if !entries.is_empty() {
        let _ = link.send(FromShard::Promoted { shard, entries });
    }
    let entries = state
        .ssd
        .as_ref()
        .map(|s| s.take_dropped())
        .unwrap_or_default();
    if !entries.is_empty() {
        let _ = link.send(FromShard::Dropped { shard, entries });
    }
}

/// Hands the keys of the slices validated reads hit to the agent, when a report is due.
fn report_hits<L: ShardLink>(link: &L, state: &ShardState, shard: u32) {
    let Some(slices) = state.hits.borrow_mut().take_due(std::time::Instant::now()) else {
        return;
    };
    let index = state.index.borrow();
    let mut keys: Vec<String> = slices
        .into_iter()
        .filter_map(|(seg, off)| index.get(seg, off))
        .filter_map(|(_, key)| String::from_utf8(key).ok())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    if !keys.is_empty() {
        let _ = link.send(FromShard::Hits { shard, keys });
    }
}
