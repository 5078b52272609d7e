//! The blocking client API.

use std::time::{Duration, Instant};

use mc_schema::limits::{MAX_BATCH_KEYS, key_is_valid, slice_count};
use mc_schema::msg::{ReplicaDesc, ReplicateConfig, Request, ResponseBody};

use crate::pool::{DataPool, EndpointHealth, MasterPool};

mod cache;
mod credit;
mod hot;
mod master;
mod pipeline;
mod ranges;
mod read;
mod samehost;
mod tasks;
mod write;
use crate::metrics::{ClientMetrics, MetricsSnapshot, Op};
use crate::{Error, ErrorCode, Result};
pub use cache::CacheStats;
pub use credit::CreditStats;
pub use hot::{HotCacheConfig, HotCacheStats};
pub use ranges::{ObjectLocation, RangeRead};
pub use samehost::{MemcpyMode, SameHostStats};
pub use write::PutReservation;

/// How to reach the cluster, and the deadlines of each call.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Where the master is: a master RPC address `host:port`, or the coordinator HA masters
    /// elect on, `etcd://h1:2379;h2:2379` or `redis://[:password@]host:port[/db]`; the
    /// client then follows the leader.
    pub master_addr: String,
    /// Cluster id (must match the masters' `--cluster_id`); from `MC_STORE_CLUSTER_ID`,
    /// `mooncake_cluster` when unset, as in Mooncake.
    pub cluster_id: String,
    /// This process's host, for `local_first` placement ("" = unknown).
    pub local_hostname: String,
    /// Deadline to open a connection.
    pub connect_timeout: Duration,
    /// Deadline of one master call.
    pub rpc_timeout: Duration,
    /// Deadline of one slice transfer to or from a shard; when it passes, a read moves on
    /// to the next replica and a write marks that replica failed.
    pub transfer_timeout: Duration,
    /// Collect client metrics (`MC_STORE_CLIENT_METRIC`, on unless set to `0`).
    pub metrics_enabled: bool,
    /// Log a metrics line this often (`MC_STORE_CLIENT_METRIC_INTERVAL` seconds; zero =
    /// collect without logging).
    pub metrics_interval: Duration,
    /// Most keys whose location the client remembers, so their gets skip the master
    /// (`MC_STORE_LOCATION_CACHE_ENTRIES`, default 65536; 0 turns the cache off).
    pub location_cache_entries: usize,
    /// Most bytes those entries take (`MC_STORE_LOCATION_CACHE_BYTES`, default 64 MiB;
    /// 0 turns the cache off).
    pub location_cache_bytes: usize,
    /// Most bytes of put credit held, replicas counted (`MC_STORE_PUT_CREDIT_BYTES`,
    /// default 64 MiB; 0 = none): space the master places ahead of this client's puts, so
    /// a put is the write and one commit (`docs/why-fast-path.md`).
    pub put_credit_bytes: usize,
    /// Whether gets of replicas on this host copy from the node's shared memory instead of
    /// TCP (`MC_STORE_MEMCPY`: `1/true/yes/on`, `0/false/no/off`, unset = auto: on for
    /// replicas on this host; another value is logged as a warning and means auto).
    pub memcpy: MemcpyMode,
    /// The local hot cache of values read from other nodes (`MC_STORE_LOCAL_HOT_*`; off
    /// unless `MC_STORE_LOCAL_HOT_CACHE_SIZE` > 0; `docs/why-fast-path.md`).
    pub hot_cache: HotCacheConfig,
}

/// A count from the environment variable `name`, or `default` when unset or not a number.
fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| mc_schema::units::parse_size(v.trim()).ok())
        .map_or(default, |n| n as usize)
}

impl StoreConfig {
    /// Defaults for a master (or coordinator locator) at `master_addr`: 2 s connect, 5 s
    /// RPC, 5 s per slice transfer, the cluster id from `MC_STORE_CLUSTER_ID`.
    pub fn new(master_addr: impl Into<String>) -> StoreConfig {
        StoreConfig {
            master_addr: master_addr.into(),
            cluster_id: mc_coord::cluster_id_from_env(),
            local_hostname: String::new(),
            connect_timeout: Duration::from_secs(2),
            rpc_timeout: Duration::from_secs(5),
            transfer_timeout: Duration::from_secs(5),
            metrics_enabled: std::env::var("MC_STORE_CLIENT_METRIC").as_deref() != Ok("0"),
            metrics_interval: std::env::var("MC_STORE_CLIENT_METRIC_INTERVAL")
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map_or(Duration::ZERO, Duration::from_secs),
            location_cache_entries: env_count(
                "MC_STORE_LOCATION_CACHE_ENTRIES",
                cache::DEFAULT_ENTRIES,
            ),
            location_cache_bytes: env_count("MC_STORE_LOCATION_CACHE_BYTES", cache::DEFAULT_BYTES),
            put_credit_bytes: env_count("MC_STORE_PUT_CREDIT_BYTES", credit::DEFAULT_BYTES),
            memcpy: MemcpyMode::from_env(),
            hot_cache: HotCacheConfig::from_env(),
        }
    }
}

/// Reads through the location cache this recent may not have reached the master in a
/// shard's hit report yet (shards hand hits over every 250 ms, agents report every 500 ms).
const OWN_HITS_WINDOW: Duration = Duration::from_secs(3);

/// A connection to a mooncake-rs cluster. Cheap to share: `Send + Sync`.
pub struct Store {
    cfg: StoreConfig,
    client_id: u64,
    master: MasterPool,
    data: DataPool,
    health: EndpointHealth,
    metrics: std::sync::Arc<ClientMetrics>,
    cache: cache::LocationCache,
    /// Put credit held.
    credit: credit::CreditPool,
    /// Same-host reads (`MC_STORE_MEMCPY`).
    same_host: samehost::SameHost,
    /// The local hot cache; `None` when off (`MC_STORE_LOCAL_HOT_CACHE_SIZE`).
    hot: Option<hot::HotCache>,
    /// Objects this client read from an SSD copy (Mooncake's offload read count).
    ssd_reads: std::sync::atomic::AtomicU64,
    reporter: Option<(
        std::sync::Arc<std::sync::atomic::AtomicBool>,
        std::thread::JoinHandle<()>,
    )>,
}

impl Drop for Store {
    fn drop(&mut self) {
        self.release_credit();
        if let Some((stop, thread)) = self.reporter.take() {
            stop.store(true, std::sync::atomic::Ordering::Release);
            let _ = thread.join();
        }
    }
}

/// Logs a metrics line every `interval` until `stop` is set.
fn spawn_reporter(
    metrics: std::sync::Arc<ClientMetrics>,
    interval: Duration,
) -> Option<(
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<()>,
)> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("mc-client-metrics".into())
        .spawn(move || {
            let mut next = Instant::now() + interval;
            while !flag.load(std::sync::atomic::Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(50));
                if Instant::now() >= next {
                    tracing::info!("client metrics: {}", metrics.snapshot());
                    next += interval;
                }
            }
        })
        .ok()?;
    Some((stop, thread))
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorCode::InvalidParams, msg)
}

fn check_key(key: &str) -> Result<()> {
    if key_is_valid(key) {
        Ok(())
    } else {
        Err(invalid(format!(
            "key must be 1..={} bytes, got {}",
            mc_schema::limits::MAX_KEY_LEN,
            key.len()
        )))
    }
}

fn check_batch(n: usize) -> Result<()> {
    if n > MAX_BATCH_KEYS {
        return Err(invalid(format!(
            "batch of {n} exceeds {MAX_BATCH_KEYS} keys"
        )));
    }
    Ok(())
}

fn unexpected(what: &str) -> Error {
    Error::new(
        ErrorCode::InternalError,
        format!("unexpected answer to {what} from the master"),
    )
}

impl Store {
    /// Connects to the master (checking the handshake) and returns a ready client. With a
    /// coordinator locator it first waits (up to the connect timeout) for a leader to be
    /// published. Fails too when the hot cache's memory cannot be mapped.
    pub fn connect(cfg: StoreConfig) -> Result<Store> {
        let master = master::pool(&cfg)?;
        let metrics = std::sync::Arc::new(ClientMetrics::default());
        let hot = hot::HotCache::new(&cfg.hot_cache, metrics.hot.clone())?;
        let same_host = samehost::SameHost::new(
            cfg.memcpy,
            &cfg.cluster_id,
            (
                metrics.same_host_reads.clone(),
                metrics.same_host_fallbacks.clone(),
            ),
        );
        let reporter = (cfg.metrics_enabled && !cfg.metrics_interval.is_zero())
            .then(|| spawn_reporter(metrics.clone(), cfg.metrics_interval))
            .flatten();
        Ok(Store {
            metrics,
            cache: cache::LocationCache::new(cfg.location_cache_entries, cfg.location_cache_bytes),
            credit: credit::CreditPool::new(cfg.put_credit_bytes),
            same_host,
            hot,
            ssd_reads: Default::default(),
            reporter,
            data: DataPool::new(&cfg.cluster_id, cfg.connect_timeout),
            client_id: rand::random::<u64>() | 1,
            health: EndpointHealth::default(),
            master,
            cfg,
        })
    }

    /// Stores `value` under `key`. An existing key is refused with OBJECT_ALREADY_EXISTS
    /// and keeps its old value.
    pub fn put(&self, key: &str, value: &[u8], config: &ReplicateConfig) -> Result<()> {
        self.put_batch(&[(key, value)], config)
            .pop()
            .expect("one result per item")
    }

    /// Checks that the master answers: one Ping round trip.
    pub fn ping(&self) -> Result<()> {
        self.call(&Request::Ping {
            client_id: self.client_id,
        })
        .map(|_| ())
    }

    /// Counters of this client's operations so far.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// This client's metrics in the Prometheus text format (`mc_client_*`), for an
    /// application to serve or push.
    pub fn metrics_text(&self) -> String {
        self.metrics.encode()
    }

    /// Records a call that handled `keys` keys, `failed` of which failed, moving `bytes`.
    fn record(&self, op: Op, keys: usize, bytes: u64, failed: usize, t0: Instant) {
        if self.cfg.metrics_enabled {
            self.metrics
                .record(op, keys as u64, bytes, failed as u64, t0.elapsed());
        }
    }

    fn record_writes(&self, op: Op, items: &[(&str, &[u8])], res: &[Result<()>], t0: Instant) {
        let bytes = items
            .iter()
            .zip(res)
            .filter(|(_, r)| r.is_ok())
            .map(|((_, v), _)| v.len() as u64)
            .sum();
        let failed = res.iter().filter(|r| r.is_err()).count();
        self.record(op, items.len(), bytes, failed, t0);
        // A client that reads by memcpy and then only writes still tells the master what
        // it read (leases, LRU), once the report is due.
        if let Some(read) = self.same_host.take_due_hits() {
            self.report_hits(read);
        }
    }

    /// Stores several objects: with put credit held, the writes and one commit for the whole
    /// batch; else one PutStart, the writes and one PutEnd.
    /// Returns one result per item, in order.
    pub fn put_batch(&self, items: &[(&str, &[u8])], config: &ReplicateConfig) -> Vec<Result<()>> {
        let t0 = Instant::now();
        self.invalidate_hot(items.iter().map(|(k, _)| *k));
        let res = self.write_batch(items, config, false);
        self.record_writes(Op::Put, items, &res, t0);
        res
    }

    /// Stores `value` under `key`, replacing an existing value. The replacement is written
    /// to new space and swapped in at once: readers see the old value or the new one, never
    /// a mix.
    pub fn upsert(&self, key: &str, value: &[u8], config: &ReplicateConfig) -> Result<()> {
        self.upsert_batch(&[(key, value)], config)
            .pop()
            .expect("one result per item")
    }

    /// [`upsert`](Self::upsert) for several objects, one round trip per phase.
    pub fn upsert_batch(
        &self,
        items: &[(&str, &[u8])],
        config: &ReplicateConfig,
    ) -> Vec<Result<()>> {
        let t0 = Instant::now();
        self.invalidate_hot(items.iter().map(|(k, _)| *k));
        let res = self.write_batch(items, config, true);
        self.record_writes(Op::Upsert, items, &res, t0);
        res
    }

    /// One value per key (ExistKey, GetSize). While a recovering master answers some keys
    /// UNAVAILABLE_IN_CURRENT_STATUS, the whole request is asked again until the deadline.
    fn values(&self, req: Request, n: usize, what: &str) -> Result<Vec<i64>> {
        let later = i64::from(ErrorCode::UnavailableInCurrentStatus.code());
        let deadline = Instant::now() + self.cfg.rpc_timeout;
        loop {
            let v = match self.call(&req)?.body {
                ResponseBody::Values(v) if v.len() == n => v,
                _ => return Err(unexpected(what)),
            };
            if !v.contains(&later) || Instant::now() >= deadline {
                return Ok(v);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether a complete object exists under `key` (grants a read lease, as in Mooncake).
    pub fn exists(&self, key: &str) -> Result<bool> {
        self.batch_exists(&[key]).pop().expect("one result per key")
    }

    /// Body of [`batch_exists`](Self::batch_exists), without metrics.
    fn batch_exists_inner(&self, keys: &[&str]) -> Vec<Result<bool>> {
        let run = || -> Result<Vec<i64>> {
            check_batch(keys.len())?;
            keys.iter().try_for_each(|k| check_key(k))?;
            let keys_owned = keys.iter().map(|k| k.to_string()).collect();
            self.values(
                Request::ExistKey { keys: keys_owned },
                keys.len(),
                "ExistKey",
            )
        };
        match run() {
            Ok(v) => v
                .into_iter()
                .map(|x| {
                    if x < 0 {
                        Err(Error::from_status(x as i32, "exists"))
                    } else {
                        Ok(x == 1)
                    }
                })
                .collect(),
            Err(e) => keys.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    /// Size in bytes of the object under `key`.
    pub fn get_size(&self, key: &str) -> Result<u64> {
        check_key(key)?;
        let v = self.values(
            Request::GetSize {
                keys: vec![key.to_string()],
            },
            1,
            "GetSize",
        )?;
        if v[0] < 0 {
            return Err(Error::from_status(v[0] as i32, &format!("get_size {key}")));
        }
        Ok(v[0] as u64)
    }

    /// Removes an object. A leased object (recently read) needs `force`.
    pub fn remove(&self, key: &str, force: bool) -> Result<()> {
        self.remove_batch(&[key], force)
            .pop()
            .expect("one result per key")
    }

    /// A read grants a lease, so a remove without `force` of a key just read is refused
    /// (OBJECT_HAS_LEASE). A read through the location cache reaches the master only with
    /// the shard's next hit report; so before such a remove, the keys this client read that
    /// way lately are reported by the client itself, and the remove sees their leases.
    fn report_own_hits(&self, keys: &[&str]) {
        let read: Vec<String> = keys
            .iter()
            .filter(|k| self.cache.read_within(k, OWN_HITS_WINDOW))
            .map(|k| k.to_string())
            .collect();
        self.report_hits(read);
    }

    /// [`report_own_hits`](Self::report_own_hits) before a remove by pattern: every key
    /// read through the cache lately.
    fn report_all_own_hits(&self) {
        self.report_hits(self.cache.read_keys_within(OWN_HITS_WINDOW));
    }

    fn report_hits(&self, keys: Vec<String>) {
        for chunk in keys.chunks(mc_schema::limits::MAX_BATCH_KEYS) {
            let _ = self.call(&Request::ReportHits {
                client_id: self.client_id,
                keys: chunk.to_vec(),
            });
        }
    }

    /// Objects this client has read from an SSD copy (no memory replica served them).
    pub fn ssd_read_count(&self) -> u64 {
        self.ssd_reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counters of the location cache.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Put credit: bytes held now, and puts committed into credit so far (each one a
    /// write and one commit).
    pub fn credit_stats(&self) -> CreditStats {
        self.credit.stats()
    }

    /// Hands every credit held back to the master (best effort; unreturned credit is
    /// freed when its TTL runs out). Puts ask for new credit as they need it.
    pub fn release_credit(&self) {
        let ids = self.credit.clear();
        if ids.is_empty() {
            return;
        }
        for chunk in ids.chunks(MAX_BATCH_KEYS) {
            let _ = self.call(&Request::PutCredit {
                client_id: self.client_id,
                client_host: self.cfg.local_hostname.clone(),
                config: ReplicateConfig::default(),
                commits: Vec::new(),
                want: Vec::new(),
                release: chunk.to_vec(),
            });
        }
    }

    /// Counters of the local hot cache (all zero when it is off).
    pub fn hot_cache_stats(&self) -> HotCacheStats {
        self.metrics
            .hot
            .stats(self.hot.as_ref().map_or(0, |h| h.entries()))
    }

    /// Drops the hot cache entries of `keys`: this client writes or removes them, so what
    /// it cached may be about to change.
    fn invalidate_hot<'k>(&self, keys: impl Iterator<Item = &'k str>) {
        if let Some(hot) = &self.hot {
            keys.for_each(|k| hot.invalidate(k));
        }
    }

    /// Counters of same-host reads (`MC_STORE_MEMCPY`).
    pub fn same_host_stats(&self) -> SameHostStats {
        self.same_host.stats()
    }

    /// Body of [`remove_batch`](Self::remove_batch), without metrics.
    fn remove_batch_inner(&self, keys: &[&str], force: bool) -> Vec<Result<()>> {
        if !force {
            self.report_own_hits(keys);
        }
        for k in keys {
            self.cache.remove(k);
        }
        self.invalidate_hot(keys.iter().copied());
        let run = || -> Result<Vec<i32>> {
            check_batch(keys.len())?;
            keys.iter().try_for_each(|k| check_key(k))?;
            let req = Request::Remove {
                keys: keys.iter().map(|k| k.to_string()).collect(),
                force,
            };
            match self.call(&req)?.body {
                ResponseBody::Statuses(v) if v.len() == keys.len() => Ok(v),
                _ => Err(unexpected("Remove")),
            }
        };
        match run() {
            Ok(v) => keys
                .iter()
                .zip(v)
                .map(|(k, c)| {
                    if c == 0 {
                        Ok(())
                    } else {
                        Err(Error::from_status(c, &format!("remove {k}")))
                    }
                })
                .collect(),
            Err(e) => keys.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    fn count(&self, req: Request) -> Result<u64> {
        match self.call(&req)?.body {
            ResponseBody::Count(n) => Ok(n),
            _ => Err(unexpected("remove")),
        }
    }

    /// Body of [`remove_by_regex`](Self::remove_by_regex), without metrics.
    fn remove_by_regex_inner(&self, regex: &str, force: bool) -> Result<u64> {
        if !force {
            self.report_all_own_hits();
        }
        self.cache.clear();
        self.hot.as_ref().inspect(|h| h.clear());
        self.count(Request::RemoveByRegex {
            regex: regex.to_string(),
            force,
        })
    }

    /// Body of [`remove_all`](Self::remove_all), without metrics.
    fn remove_all_inner(&self, force: bool) -> Result<u64> {
        if !force {
            self.report_all_own_hits();
        }
        self.cache.clear();
        self.hot.as_ref().inspect(|h| h.clear());
        self.count(Request::RemoveAll { force })
    }

    /// Where the replicas of `key` live (grants a read lease).
    pub fn replicas(&self, key: &str) -> Result<Vec<ReplicaDesc>> {
        self.replicas_batch(&[key])
            .pop()
            .expect("one result per key")
    }

    /// [`replicas`](Self::replicas) for several keys in one round trip.
    pub fn replicas_batch(&self, keys: &[&str]) -> Vec<Result<Vec<ReplicaDesc>>> {
        let lists = keys
            .iter()
            .try_for_each(|k| check_key(k))
            .and_then(|()| self.replica_lists(keys));
        match lists {
            Ok(lists) => keys
                .iter()
                .zip(lists)
                .map(|(k, r)| {
                    if r.status != 0 {
                        return Err(Error::from_status(r.status, &format!("replicas {k}")));
                    }
                    Ok(r.replicas)
                })
                .collect(),
            Err(e) => keys.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    /// [`exists`](Self::exists) for several keys in one round trip.
    pub fn batch_exists(&self, keys: &[&str]) -> Vec<Result<bool>> {
        let t0 = Instant::now();
        let res = self.batch_exists_inner(keys);
        let failed = res.iter().filter(|r| r.is_err()).count();
        self.record(Op::Exists, keys.len(), 0, failed, t0);
        res
    }

    /// Removes several objects in one round trip; one result per key.
    pub fn remove_batch(&self, keys: &[&str], force: bool) -> Vec<Result<()>> {
        let t0 = Instant::now();
        let res = self.remove_batch_inner(keys, force);
        let failed = res.iter().filter(|r| r.is_err()).count();
        self.record(Op::Remove, keys.len(), 0, failed, t0);
        res
    }

    /// Removes every object whose key matches `regex`; returns how many. Leased objects
    /// are skipped unless `force`.
    pub fn remove_by_regex(&self, regex: &str, force: bool) -> Result<u64> {
        let t0 = Instant::now();
        let res = self.remove_by_regex_inner(regex, force);
        let n = *res.as_ref().unwrap_or(&0) as usize;
        self.record(Op::Remove, n, 0, usize::from(res.is_err()), t0);
        res
    }

    /// Removes every object; returns how many. Leased objects are skipped unless `force`.
    pub fn remove_all(&self, force: bool) -> Result<u64> {
        let t0 = Instant::now();
        let res = self.remove_all_inner(force);
        let n = *res.as_ref().unwrap_or(&0) as usize;
        self.record(Op::Remove, n, 0, usize::from(res.is_err()), t0);
        res
    }

    /// Number of slices a value of `len` bytes is cut into.
    pub fn slice_count(len: u64) -> u64 {
        slice_count(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Store>();
    }
}
