//! The local hot cache: copies of values this client read over TCP from a shard, kept in
//! a fixed region of its own memory so a repeated get of a big value moves no payload
//! (Mooncake's `MC_STORE_LOCAL_HOT_CACHE_*`; `docs/why-fast-path.md`, "Local hot cache").
//!
//! - **Memory.** One mapping of `size_bytes`, made at connect (anonymous, or a memfd with
//!   `use_shm`), cut into blocks of `block_bytes`; a value takes `ceil(len / block)` blocks.
//!   Values needing more than a quarter of the blocks are never cached. Whole entries are
//!   evicted, least recently used first, until a new one fits.
//! - **Admission.** A count-min sketch ([`sketch`]) counts reads per key; a value is copied
//!   in after a successful TCP read once its key's count reaches `admission_threshold`.
//!   Same-host (memcpy) reads are never cached: they are local already.
//! - **Identity.** An entry records the object as the read saw it: its size, the CRC32C of
//!   every slice, and the replica it came from (segment, offset, length, generation of each
//!   slice). It is served only for a replica list that names that same object (the read
//!   path then has the shard or the master confirm that list is current) and only if every
//!   slice's CRC32C, computed again while the bytes are copied out, matches: memory damaged
//!   in the cache is caught on every serve, at the price of one CRC pass (much less than
//!   the transfer it replaces).

mod blocks;
mod region;
mod sketch;

use std::collections::{BTreeMap, HashMap};
use std::mem::MaybeUninit;

use mc_schema::checksum::Crc32c;
use mc_schema::msg::ReplicaListResult;
use parking_lot::Mutex;

use crate::metrics::HotMetrics;
use crate::{Error, ErrorCode};
use blocks::Blocks;
use region::Region;
use sketch::Sketch;

/// Block size by default (`MC_STORE_LOCAL_HOT_BLOCK_SIZE`), Mooncake's: 16 MiB.
pub const DEFAULT_BLOCK_BYTES: usize = 16 << 20;
/// Reads of a key before its value is cached, by default
/// (`MC_STORE_LOCAL_HOT_ADMISSION_THRESHOLD`), Mooncake's: 2.
pub const DEFAULT_ADMISSION_THRESHOLD: u8 = 2;
/// Bytes checksummed per step while a value is copied out (stays in cache).
const COPY_CHUNK_BYTES: usize = 256 * 1024;

/// Configuration of the local hot cache (`StoreConfig::hot_cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HotCacheConfig {
    /// Bytes of memory the cache takes (`MC_STORE_LOCAL_HOT_CACHE_SIZE`); 0, the
    /// default, turns it off.
    pub size_bytes: usize,
    /// Size of the blocks that memory is cut into (`MC_STORE_LOCAL_HOT_BLOCK_SIZE`, default
    /// 16 MiB as in Mooncake; a value takes whole blocks, so set it near the typical value
    /// size). Larger than `size_bytes`, it is lowered to `size_bytes`.
    pub block_bytes: usize,
    /// Reads of a key (counted by a decaying sketch) before its value is cached
    /// (`MC_STORE_LOCAL_HOT_ADMISSION_THRESHOLD`, default 2; 0 or 1 = the first read).
    pub admission_threshold: u8,
    /// Back the memory by a memfd instead of anonymous memory
    /// (`MC_STORE_LOCAL_HOT_CACHE_USE_SHM`: `1/true/yes/on`; default off).
    pub use_shm: bool,
}

impl Default for HotCacheConfig {
    /// Off; Mooncake's block size and threshold for when it is turned on.
    fn default() -> HotCacheConfig {
        HotCacheConfig {
            size_bytes: 0,
            block_bytes: DEFAULT_BLOCK_BYTES,
            admission_threshold: DEFAULT_ADMISSION_THRESHOLD,
            use_shm: false,
        }
    }
}

impl HotCacheConfig {
    /// The configuration the `MC_STORE_LOCAL_HOT_*` variables ask for. A value that cannot
    /// be used is logged as a warning and the default is taken (a bad cache size turns the
    /// cache off), as Mooncake does. Sizes take a bare byte count, as in Mooncake, or a
    /// suffix (`64MB`, `1GiB`).
    pub fn from_env() -> HotCacheConfig {
        HotCacheConfig::from_vars(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any source of variables.
    fn from_vars(var: impl Fn(&str) -> Option<String>) -> HotCacheConfig {
        let d = HotCacheConfig::default();
        let warned = |name: &str, v: &str, what: &str| {
            tracing::warn!("{name}=`{v}` is not {what}; using the default");
        };
        let size = |name: &str, default: usize, zero_ok: bool| match var(name) {
            None => default,
            Some(v) => match mc_schema::units::parse_size(v.trim()) {
                Ok(n) if n > 0 || zero_ok => n as usize,
                _ => {
                    warned(name, &v, "a size in bytes");
                    default
                }
            },
        };
        let size_bytes = size("MC_STORE_LOCAL_HOT_CACHE_SIZE", 0, true);
        let block_bytes = size("MC_STORE_LOCAL_HOT_BLOCK_SIZE", d.block_bytes, false);
        let name = "MC_STORE_LOCAL_HOT_ADMISSION_THRESHOLD";
        let admission_threshold = match var(name) {
            None => d.admission_threshold,
            Some(v) => v.trim().parse::<u8>().unwrap_or_else(|_| {
                warned(name, &v, "a count of 0..=255");
                d.admission_threshold
            }),
        };
        let name = "MC_STORE_LOCAL_HOT_CACHE_USE_SHM";
        let use_shm = match var(name).map(|v| (v.trim().to_ascii_lowercase(), v)) {
            None => false,
            Some((t, v)) => match t.as_str() {
                "1" | "true" | "yes" | "on" => true,
                "" | "0" | "false" | "no" | "off" => false,
                _ => {
                    warned(name, &v, "a switch (1/true/yes/on, 0/false/no/off)");
                    false
                }
            },
        };
        HotCacheConfig {
            size_bytes,
            block_bytes,
            admission_threshold,
            use_shm,
        }
    }
}

/// Counters of the hot cache since the client started (all zero when it is off).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HotCacheStats {
    /// Gets served from the cache (after the shard or the master confirmed the object).
    pub hits: u64,
    /// Gets of a key the cache did not hold.
    pub misses: u64,
    /// Values copied in.
    pub admitted: u64,
    /// Entries evicted to make room.
    pub evicted: u64,
    /// Entries dropped because the object changed: replaced, removed, or its replica gone
    /// (the probe or the master said so), or a CRC mismatch on serve.
    pub stale: u64,
    /// Of those, entries whose bytes failed their CRC32C on serve (damaged memory).
    pub corrupt: u64,
    /// Entries dropped because this client wrote or removed their key.
    pub invalidated: u64,
    /// Entries held now.
    pub entries: u64,
    /// Bytes of blocks held by entries now (at most `capacity_bytes`).
    pub used_bytes: u64,
    /// Bytes of blocks in the cache.
    pub capacity_bytes: u64,
}

/// One cached value.
struct Entry {
    /// Its position in the LRU order; also names this entry (a re-admission gets another).
    tick: u64,
    /// The object's size.
    size: u64,
    /// CRC32C of each slice.
    crcs: Vec<u32>,
    /// The replica read: (segment, offset, length, generation) of each slice.
    slices: Vec<[u64; 4]>,
    /// The blocks holding the value, in value order.
    blocks: Vec<u32>,
    /// Names this entry for its pins (never reused, unlike `tick`).
    id: u64,
    /// Serves copying out of `blocks` now, outside the lock.
    readers: u32,
}

impl Entry {
    /// The replica of `r` this entry's bytes came from, if `r` names the same object.
    fn replica_in(&self, r: &ReplicaListResult) -> Option<usize> {
        if r.status != 0 || r.size != self.size || r.slice_crcs != self.crcs {
            return None;
        }
        r.replicas.iter().position(|rep| {
            rep.slices.len() == self.slices.len()
                && rep
                    .slices
                    .iter()
                    .zip(&self.slices)
                    .all(|(s, e)| [s.segment_id, s.offset, s.length, s.generation] == *e)
        })
    }
}

/// Everything behind the lock.
struct Inner {
    blocks: Blocks,
    map: HashMap<String, Entry>,
    /// Tick → key, oldest first.
    lru: BTreeMap<u64, String>,
    next_tick: u64,
    next_id: u64,
    /// Entries removed while serves were copying out of them: id → (blocks, readers
    /// left). Their blocks go back to the free list when the last reader is done.
    retired: HashMap<u64, (Vec<u32>, u32)>,
}

/// A serve's claim on an entry's blocks while it copies outside the lock
/// ([`HotCache::pin`]): blocks pinned are never handed out again, so never written.
struct Pin {
    id: u64,
    blocks: Vec<u32>,
    crcs: Vec<u32>,
    /// Length of each slice.
    lens: Vec<u64>,
}

/// A cached value a get may serve: the entry and the replica of the get's list it matches.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    tick: u64,
    /// Index of the matching replica in the list the lookup was given.
    pub(crate) replica: usize,
}

/// The hot cache of one client.
pub(crate) struct HotCache {
    block_bytes: usize,
    max_entry_blocks: usize,
    threshold: u8,
    /// The memory; bytes are copied in and out without the lock, guarded by pins.
    region: Region,
    inner: Mutex<Inner>,
    sketch: Mutex<Sketch>,
    m: HotMetrics,
}

/// Region byte ranges `(offset, len)` holding value bytes `from..to` of an entry stored
/// in `blocks` of `block` bytes each.
fn runs(
    blocks: &[u32],
    block: usize,
    from: usize,
    to: usize,
) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut at = from;
    std::iter::from_fn(move || {
        if at >= to {
            return None;
        }
        let (j, inner) = (at / block, at % block);
        let n = (block - inner).min(to - at);
        at += n;
        Some((blocks[j] as usize * block + inner, n))
    })
}

impl HotCache {
    /// The cache `cfg` asks for, counted in `m`; `None` when it is off. Fails when its
    /// memory cannot be mapped.
    pub(crate) fn new(cfg: &HotCacheConfig, m: HotMetrics) -> crate::Result<Option<HotCache>> {
        if cfg.size_bytes == 0 {
            return Ok(None);
        }
        let mut block_bytes = cfg.block_bytes.max(1);
        if block_bytes > cfg.size_bytes {
            tracing::warn!(
                "local hot cache: block size {block_bytes} exceeds the cache size {}; one block \
                 of the cache size is used",
                cfg.size_bytes
            );
            block_bytes = cfg.size_bytes;
        }
        let count = u32::try_from(cfg.size_bytes / block_bytes).map_err(|_| {
            Error::new(
                ErrorCode::InvalidParams,
                "local hot cache: more than 2^32 blocks; raise MC_STORE_LOCAL_HOT_BLOCK_SIZE",
            )
        })?;
        let len = count as usize * block_bytes;
        let region =
            Region::new(len, cfg.use_shm).map_err(|e| Error::new(ErrorCode::InvalidParams, e))?;
        tracing::info!(
            "local hot cache on: {count} blocks of {block_bytes} bytes, threshold {}, {}",
            cfg.admission_threshold,
            if region.is_shm() {
                "memfd"
            } else {
                "anonymous memory"
            }
        );
        m.capacity_bytes.set(len as i64);
        Ok(Some(HotCache {
            block_bytes,
            max_entry_blocks: (count as usize / 4).max(1),
            threshold: cfg.admission_threshold,
            region,
            inner: Mutex::new(Inner {
                blocks: Blocks::new(count),
                map: HashMap::with_capacity(count as usize),
                lru: BTreeMap::new(),
                next_tick: 0,
                next_id: 0,
                retired: HashMap::new(),
            }),
            sketch: Mutex::new(Sketch::default()),
            m,
        }))
    }

    /// Whether `key` has an entry for the object `r` names; counts a miss when there is
    /// no entry, and drops (as stale) one of another object.
    pub(crate) fn lookup(&self, key: &str, r: &ReplicaListResult) -> Option<Hit> {
        let mut g = self.inner.lock();
        let Some(e) = g.map.get(key) else {
            self.m.misses.inc();
            return None;
        };
        match e.replica_in(r) {
            Some(replica) => Some(Hit {
                tick: e.tick,
                replica,
            }),
            None => {
                self.remove_locked(&mut g, key);
                self.m.stale.inc();
                None
            }
        }
    }

    /// Copies the value of `hit` into `buf` (exactly its size), checking each slice's
    /// CRC32C as it goes. False when the entry is gone or its bytes fail a check (the entry
    /// is dropped then); the caller reads the value instead, and `buf` may hold anything.
    ///
    /// The copy runs outside the lock, on pinned blocks: other gets are served, and values
    /// admitted, meanwhile. A serve counts from its pin: an entry removed during the copy
    /// still yields the bytes it held when pinned (the object the caller had confirmed).
    pub(crate) fn serve(&self, key: &str, hit: Hit, buf: &mut [MaybeUninit<u8>]) -> bool {
        let Some(pin) = self.pin(key, hit, buf.len()) else {
            return false;
        };
        let intact = self.copy_out(&pin, buf);
        self.unpin(key, pin, intact)
    }

    /// Pins the entry of `hit` when it is still there and of `len` bytes.
    fn pin(&self, key: &str, hit: Hit, len: usize) -> Option<Pin> {
        let mut g = self.inner.lock();
        let e = g
            .map
            .get_mut(key)
            .filter(|e| e.tick == hit.tick && e.size == len as u64)?;
        e.readers += 1;
        Some(Pin {
            id: e.id,
            blocks: e.blocks.clone(),
            crcs: e.crcs.clone(),
            lens: e.slices.iter().map(|s| s[2]).collect(),
        })
    }

    /// Copies the pinned value into `buf` (its size) and whether every slice's CRC32C held.
    #[allow(unsafe_code)]
    fn copy_out(&self, pin: &Pin, buf: &mut [MaybeUninit<u8>]) -> bool {
        let mut at = 0usize;
        let mut intact = true;
        for (&len, &want) in pin.lens.iter().zip(&pin.crcs) {
            let end = at + len as usize;
            let mut crc = Crc32c::default();
            let mut out = at;
            for (off, n) in runs(&pin.blocks, self.block_bytes, at, end) {
                // SAFETY: these bytes lie in blocks of a pinned entry; a pinned entry's
                // blocks stay off the free list until its last pin is released (`unpin`,
                // `remove_locked`), and only blocks taken from the free list are written
                // (`admit`), so nothing writes them while this slice lives.
                let src = unsafe { self.region.range(off, n) };
                for (from, to) in src
                    .chunks(COPY_CHUNK_BYTES)
                    .zip(buf[out..out + n].chunks_mut(COPY_CHUNK_BYTES))
                {
                    for (d, b) in to.iter_mut().zip(from) {
                        d.write(*b);
                    }
                    crc.update(from);
                }
                out += n;
            }
            intact &= crc.finish() == want;
            at = end;
        }
        intact
    }

    /// Releases `pin`: the entry becomes the most recently used (when intact) or is
    /// dropped (when not); a retired entry's blocks are freed with its last pin. Returns
    /// whether the serve counts as a hit.
    fn unpin(&self, key: &str, pin: Pin, intact: bool) -> bool {
        let mut g = self.inner.lock();
        let g = &mut *g;
        let live = match g.map.get_mut(key).filter(|e| e.id == pin.id) {
            Some(e) => {
                e.readers -= 1;
                true
            }
            None => {
                let (blocks, readers) = g.retired.get_mut(&pin.id).expect("a pinned entry");
                *readers -= 1;
                if *readers == 0 {
                    g.blocks.give(blocks);
                    g.retired.remove(&pin.id);
                    self.set_used(g);
                }
                false
            }
        };
        if !intact {
            tracing::error!("local hot cache: `{key}` failed its CRC32C in memory; dropped");
            self.m.corrupt.inc();
            self.m.stale.inc();
            if live {
                self.remove_locked(g, key);
            }
            return false;
        }
        if live {
            // Most recently used now.
            let tick = g.next_tick;
            g.next_tick += 1;
            let e = g.map.get_mut(key).expect("checked above");
            let old = std::mem::replace(&mut e.tick, tick);
            let k = g.lru.remove(&old).expect("every entry is in the LRU order");
            g.lru.insert(tick, k);
        }
        self.m.hits.inc();
        true
    }

    /// Counts a successful read of `key` from replica `replica` of `r` (`value`, its
    /// checked bytes) and caches the value once the key was read often enough.
    pub(crate) fn admit(&self, key: &str, r: &ReplicaListResult, replica: usize, value: &[u8]) {
        let need = value.len().div_ceil(self.block_bytes);
        if need == 0 || need > self.max_entry_blocks || value.len() as u64 != r.size {
            return;
        }
        if self.sketch.lock().increment(key) < self.threshold {
            return;
        }
        let Some(rep) = r.replicas.get(replica) else {
            return;
        };
        // What the entry records must describe `value` exactly (the read checked it).
        let covered: u64 = rep.slices.iter().map(|s| s.length).sum();
        if covered != r.size || rep.slices.len() != r.slice_crcs.len() {
            return;
        }
        let Some(blocks) = self.claim(key, need) else {
            return;
        };
        for (j, chunk) in value.chunks(self.block_bytes).enumerate() {
            // SAFETY: `blocks` came off the free list and are in no entry yet, so no pin
            // covers them and no other admit writes them (`copy_out`'s argument).
            #[allow(unsafe_code)]
            unsafe {
                self.region
                    .write(blocks[j] as usize * self.block_bytes, chunk)
            };
        }
        let mut g = self.inner.lock();
        let g = &mut *g;
        // Another admit of the key may have landed while this one copied: the newer wins.
        self.remove_locked(g, key);
        let (tick, id) = (g.next_tick, g.next_id);
        g.next_tick += 1;
        g.next_id += 1;
        g.lru.insert(tick, key.to_string());
        g.map.insert(
            key.to_string(),
            Entry {
                tick,
                size: r.size,
                crcs: r.slice_crcs.clone(),
                slices: rep
                    .slices
                    .iter()
                    .map(|s| [s.segment_id, s.offset, s.length, s.generation])
                    .collect(),
                blocks,
                id,
                readers: 0,
            },
        );
        self.m.admitted.inc();
        self.set_used(g);
    }

    /// Drops the entry of `key` and takes `need` free blocks, evicting the least recently
    /// used entries until they are there; `None` when even that leaves too few (the rest
    /// are pinned by serves).
    fn claim(&self, key: &str, need: usize) -> Option<Vec<u32>> {
        let mut g = self.inner.lock();
        let g = &mut *g;
        self.remove_locked(g, key);
        while g.blocks.free() < need {
            let Some((_, victim)) = g.lru.first_key_value().map(|(t, k)| (*t, k.clone())) else {
                break;
            };
            self.remove_locked(g, &victim);
            self.m.evicted.inc();
        }
        let blocks = g.blocks.take(need);
        self.set_used(g);
        blocks
    }

    /// Drops the entry of `key`, if any, without counting it.
    fn remove_locked(&self, g: &mut Inner, key: &str) -> bool {
        let Some(e) = g.map.remove(key) else {
            return false;
        };
        g.lru.remove(&e.tick);
        if e.readers == 0 {
            g.blocks.give(&e.blocks);
        } else {
            g.retired.insert(e.id, (e.blocks, e.readers));
        }
        self.set_used(g);
        true
    }

    fn set_used(&self, g: &Inner) {
        let used = (g.blocks.count() as usize - g.blocks.free()) * self.block_bytes;
        self.m.used_bytes.set(used as i64);
    }

    /// Drops the entry of `key`: its object was found changed (a probe refused).
    pub(crate) fn drop_stale(&self, key: &str) {
        if self.remove_locked(&mut self.inner.lock(), key) {
            self.m.stale.inc();
        }
    }

    /// Drops the entry of `key`: this client writes or removes it.
    pub(crate) fn invalidate(&self, key: &str) {
        if self.remove_locked(&mut self.inner.lock(), key) {
            self.m.invalidated.inc();
        }
    }

    /// Drops every entry (a remove by pattern or of everything).
    pub(crate) fn clear(&self) {
        let mut g = self.inner.lock();
        let keys: Vec<String> = g.map.keys().cloned().collect();
        for k in keys {
            self.remove_locked(&mut g, &k);
            self.m.invalidated.inc();
        }
    }

    /// Entries held now.
    pub(crate) fn entries(&self) -> u64 {
        self.inner.lock().map.len() as u64
    }
}

impl HotMetrics {
    /// The counters as stats; `entries` from the cache, if any.
    pub(crate) fn stats(&self, entries: u64) -> HotCacheStats {
        HotCacheStats {
            hits: self.hits.get(),
            misses: self.misses.get(),
            admitted: self.admitted.get(),
            evicted: self.evicted.get(),
            stale: self.stale.get(),
            corrupt: self.corrupt.get(),
            invalidated: self.invalidated.get(),
            entries,
            used_bytes: self.used_bytes.get() as u64,
            capacity_bytes: self.capacity_bytes.get() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mc_schema::msg::{ReplicaDesc, SliceDesc};

    /// A list naming one replica of `value` cut into `slice`-byte slices, at generation `g`.
    fn list(value: &[u8], slice: usize, g: u64) -> ReplicaListResult {
        let slices = value
            .chunks(slice)
            .enumerate()
            .map(|(i, c)| SliceDesc {
                segment_id: 1,
                endpoint: "h:1".into(),
                offset: (i * slice) as u64,
                length: c.len() as u64,
                generation: g + i as u64,
                token: None,
            })
            .collect();
        ReplicaListResult {
            status: 0,
            size: value.len() as u64,
            replicas: vec![ReplicaDesc {
                kind: Default::default(),
                slices,
                complete: true,
            }],
            slice_crcs: value
                .chunks(slice)
                .map(mc_schema::checksum::crc32c)
                .collect(),
        }
    }

    fn cache(size: usize, block: usize, threshold: u8) -> HotCache {
        let cfg = HotCacheConfig {
            size_bytes: size,
            block_bytes: block,
            admission_threshold: threshold,
            use_shm: false,
        };
        HotCache::new(&cfg, HotMetrics::default()).unwrap().unwrap()
    }

    fn value(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    fn read(c: &HotCache, key: &str, r: &ReplicaListResult) -> Option<Vec<u8>> {
        let hit = c.lookup(key, r)?;
        let mut buf = vec![0u8; r.size as usize];
        c.serve(key, hit, mc_transfer::uninit::as_uninit_mut(&mut buf))
            .then_some(buf)
    }

    #[test]
    fn admits_after_the_threshold_and_serves_across_blocks_and_slices() {
        let c = cache(1 << 20, 1000, 3);
        let v = value(2500, 1);
        let r = list(&v, 700, 10);
        for _ in 0..2 {
            assert!(c.lookup("k", &r).is_none());
            c.admit("k", &r, 0, &v);
        }
        assert_eq!(c.entries(), 0, "two reads are below the threshold");
        c.admit("k", &r, 0, &v);
        assert_eq!(read(&c, "k", &r).unwrap(), v);
        let s = c.m.stats(c.entries());
        assert_eq!(
            (s.admitted, s.hits, s.misses, s.used_bytes),
            (1, 1, 2, 3000)
        );
    }

    #[test]
    fn another_object_under_the_key_is_never_served() {
        let c = cache(1 << 20, 4096, 0);
        let v = value(5000, 2);
        let r = list(&v, 4096, 10);
        c.admit("k", &r, 0, &v);
        // Same bytes at another generation (replaced by an identical value): not served.
        assert!(c.lookup("k", &list(&v, 4096, 99)).is_none());
        assert_eq!(c.entries(), 0, "the entry is dropped");
        c.admit("k", &r, 0, &v);
        // Other bytes, same size and place.
        let mut other = list(&value(5000, 3), 4096, 10);
        assert!(c.lookup("k", &other).is_none());
        c.admit("k", &r, 0, &v);
        other = r.clone();
        other.status = ErrorCode::ObjectNotFound.code();
        assert!(c.lookup("k", &other).is_none(), "a removed key");
        assert_eq!(c.m.stats(0).stale, 3);
    }

    #[test]
    fn damaged_memory_is_caught_on_serve() {
        let c = cache(1 << 20, 4096, 0);
        let v = value(6000, 4);
        let r = list(&v, 6000, 10);
        c.admit("k", &r, 0, &v);
        let hit = c.lookup("k", &r).unwrap();
        let b = c.inner.lock().map["k"].blocks[1] as usize * 4096;
        // SAFETY: this test is the cache's only user, one call at a time.
        #[allow(unsafe_code)]
        unsafe {
            let flipped = c.region.range(b + 3, 1)[0] ^ 0x40;
            c.region.write(b + 3, &[flipped]);
        }
        let mut buf = vec![0u8; 6000];
        assert!(!c.serve("k", hit, mc_transfer::uninit::as_uninit_mut(&mut buf)));
        let s = c.m.stats(c.entries());
        assert_eq!((s.corrupt, s.entries, s.used_bytes), (1, 0, 0));
    }

    #[test]
    fn blocks_being_copied_out_are_never_handed_out_again() {
        // Four blocks, one value in each.
        let c = cache(4 * 4096, 4096, 0);
        let vals: Vec<(Vec<u8>, ReplicaListResult)> = (0..4u8)
            .map(|i| {
                let v = value(4096, 10 + i);
                let r = list(&v, 4096, 10 * (u64::from(i) + 1));
                (v, r)
            })
            .collect();
        for (i, (v, r)) in vals.iter().enumerate() {
            c.admit(&format!("k{i}"), r, 0, v);
        }
        assert_eq!(c.entries(), 4);
        let hit = c.lookup("k0", &vals[0].1).unwrap();
        let pin = c.pin("k0", hit, 4096).expect("pinned");
        let pinned = pin.blocks.clone();
        // Removed while a serve copies; two new values each evict a live entry instead.
        c.invalidate("k0");
        for i in 0..2u8 {
            let w = value(4096, 50 + i);
            let rw = list(&w, 4096, 500 + u64::from(i));
            c.admit(&format!("n{i}"), &rw, 0, &w);
            let g = c.inner.lock();
            assert!(g.map.contains_key(&format!("n{i}")));
            assert!(g.map.values().all(|e| e.blocks != pinned), "n{i}");
        }
        assert_eq!(c.entries(), 3);
        assert_eq!(
            c.m.stats(0).used_bytes,
            4 * 4096,
            "the pinned block still counts"
        );
        // The pinned bytes are the old value's, intact; the serve counts.
        let mut buf = vec![0u8; 4096];
        assert!(c.copy_out(&pin, mc_transfer::uninit::as_uninit_mut(&mut buf)));
        assert_eq!(buf, vals[0].0);
        assert!(c.unpin("k0", pin, true));
        assert_eq!(c.m.stats(0).used_bytes, 3 * 4096, "freed with the last pin");
        assert!(c.inner.lock().retired.is_empty());
    }

    #[test]
    fn serves_racing_admits_and_removes_return_only_whole_values() {
        let c = std::sync::Arc::new(cache(64 * 1024, 4096, 0));
        let values: Vec<(Vec<u8>, ReplicaListResult)> = (0..6)
            .map(|i| {
                let v = value(8192 + 1000 * i, i as u8);
                let r = list(&v, 3000, 100 * i as u64);
                (v, r)
            })
            .collect();
        let values = std::sync::Arc::new(values);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (c, values) = (c.clone(), values.clone());
                std::thread::spawn(move || {
                    let mut served = 0;
                    for n in 0..2000usize {
                        let (v, r) = &values[(n + t) % values.len()];
                        let key = format!("k{}", (n + t) % values.len());
                        match n % 7 {
                            0 => c.invalidate(&key),
                            1 | 2 => c.admit(&key, r, 0, v),
                            _ => {
                                if let Some(got) = read(&c, &key, r) {
                                    assert_eq!(&got, v, "{key}");
                                    served += 1;
                                }
                            }
                        }
                    }
                    served
                })
            })
            .collect();
        let served: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert!(served > 0, "some gets were served from the cache");
        assert_eq!(c.m.stats(0).corrupt, 0);
        c.clear();
        let g = c.inner.lock();
        assert!(g.retired.is_empty(), "no pin outlives its serve");
        assert_eq!(g.blocks.free(), 16, "every block is back");
    }

    #[test]
    fn eviction_keeps_memory_bounded_least_recently_used_first() {
        let c = cache(10 * 1024, 1024, 0);
        let lists: Vec<(Vec<u8>, ReplicaListResult)> = (0..8)
            .map(|i| {
                let v = value(2000, i as u8);
                let r = list(&v, 2000, 100 * i);
                (v, r)
            })
            .collect();
        for (i, (v, r)) in lists.iter().enumerate() {
            c.admit(&format!("k{i}"), r, 0, v);
            if i >= 1 {
                // k0 is read after every insert: always the most recently used.
                assert!(read(&c, "k0", &lists[0].1).is_some(), "k0 after k{i}");
            }
            let s = c.m.stats(c.entries());
            assert!(s.used_bytes <= s.capacity_bytes, "{s:?}");
        }
        let s = c.m.stats(c.entries());
        assert_eq!(s.entries, 5, "five 2-block values fit in 10 blocks");
        assert_eq!(s.evicted, 3);
        assert!(
            read(&c, "k1", &lists[1].1).is_none(),
            "the oldest went first"
        );
        // More than a quarter of the cache is never cached.
        let big = value(3000, 9);
        c.admit("big", &list(&big, 3000, 7), 0, &big);
        assert!(c.lookup("big", &list(&big, 3000, 7)).is_none());
        c.invalidate("k0");
        c.clear();
        let s = c.m.stats(c.entries());
        assert_eq!((s.entries, s.used_bytes, s.invalidated), (0, 0, 5));
    }

    #[test]
    fn env_values_parse_and_bad_ones_fall_back() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            HotCacheConfig::from_vars(|_| None),
            HotCacheConfig::default()
        );
        let c = HotCacheConfig::from_vars(vars(&[
            ("MC_STORE_LOCAL_HOT_CACHE_SIZE", "33554432"),
            ("MC_STORE_LOCAL_HOT_BLOCK_SIZE", "1MB"),
            ("MC_STORE_LOCAL_HOT_ADMISSION_THRESHOLD", "1"),
            ("MC_STORE_LOCAL_HOT_CACHE_USE_SHM", "1"),
        ]));
        assert_eq!(
            c,
            HotCacheConfig {
                size_bytes: 32 << 20,
                block_bytes: 1 << 20,
                admission_threshold: 1,
                use_shm: true
            }
        );
        let c = HotCacheConfig::from_vars(vars(&[
            ("MC_STORE_LOCAL_HOT_CACHE_SIZE", "-1"),
            ("MC_STORE_LOCAL_HOT_BLOCK_SIZE", "0"),
            ("MC_STORE_LOCAL_HOT_ADMISSION_THRESHOLD", "300"),
            ("MC_STORE_LOCAL_HOT_CACHE_USE_SHM", "maybe"),
        ]));
        assert_eq!(c, HotCacheConfig::default(), "bad values: defaults (off)");
    }
}
