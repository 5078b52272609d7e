//! One phase of a case: put (or get) a set of keys from `threads` threads, in batches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mooncake_rs::{ErrorCode, ReplicateConfig, Store};

use crate::payload::{check, stamp};
use crate::zipf::Zipf;

/// What a phase does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Put keys 0..n.
    Put,
    /// Get keys 0..n (or zipf-distributed among them) into buffers the worker reuses.
    Get,
    /// The same reads returning fresh vectors (`Store::get_batch`).
    GetOwned,
    /// [`Op::Get`] by a client that has seen none of the keys (an empty location cache).
    GetCold,
}

impl Op {
    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::GetOwned => "get_owned",
            Op::GetCold => "get_cold",
        }
    }
}

/// Parameters of a phase.
pub struct Phase<'a> {
    /// put or get.
    pub op: Op,
    /// Value size.
    pub size: u64,
    /// Keys per call.
    pub batch: usize,
    /// Client threads.
    pub threads: usize,
    /// Keys in the working set.
    pub keys: u64,
    /// Stop early after this long.
    pub max_time: Option<Duration>,
    /// Zipf exponent for gets (None = each key once, in order).
    pub zipf: Option<f64>,
    /// Key length in bytes.
    pub key_size: usize,
    /// Template value.
    pub template: &'a [u8],
    /// Placement.
    pub config: &'a ReplicateConfig,
}

/// Outcome of a phase.
pub struct PhaseResult {
    /// Keys done.
    pub ops: u64,
    /// Keys that failed or read back wrong.
    pub failed: u64,
    /// Keys a get did not find (evicted, or never written): not failures.
    pub misses: u64,
    /// Wall time.
    pub secs: f64,
    /// Per-call latency, microseconds.
    pub hist: Histogram<u64>,
    /// Keys read through the client's location cache, and keys it had to ask the master
    /// for, during the phase.
    pub cache: (u64, u64),
}

impl PhaseResult {
    /// Keys per second.
    pub fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.secs.max(1e-9)
    }
}

/// The key of index `i`, padded to `key_size` bytes.
pub fn key(size: u64, i: u64, key_size: usize) -> String {
    let k = format!("mcb-{size}-{i}");
    if k.len() >= key_size {
        k
    } else {
        format!("{k}{}", "~".repeat(key_size - k.len()))
    }
}

pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

/// What one phase's workers count.
#[derive(Default)]
struct Counts {
    /// Keys claimed from the working set: the next batch starts here.
    next: AtomicU64,
    /// Keys done.
    done: AtomicU64,
    /// Keys that failed or read back wrong.
    failed: AtomicU64,
    /// Keys a get did not find.
    misses: AtomicU64,
}

/// How a get of one key went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetOutcome {
    /// The value read back is the one written.
    Good,
    /// The key is gone (OBJECT_NOT_FOUND): evicted or never written. Not a failure.
    Miss,
    /// The call failed another way, or the bytes differ from what was written.
    Bad,
}

/// Classifies one get result against the value key `index` was written with.
pub fn classify(got: &mooncake_rs::Result<Vec<u8>>, template: &[u8], index: u64) -> GetOutcome {
    match got {
        Ok(v) => classify_into(&Ok(v.len()), v, template, index),
        Err(e) => classify_into(&Err(e.clone()), &[], template, index),
    }
}

/// [`classify`] for a read into `buf` that returned the object's size.
pub fn classify_into(
    got: &mooncake_rs::Result<usize>,
    buf: &[u8],
    template: &[u8],
    index: u64,
) -> GetOutcome {
    match got {
        Ok(n) if *n <= buf.len() && check(&buf[..*n], template, index) => GetOutcome::Good,
        Err(e) if e.code() == ErrorCode::ObjectNotFound => GetOutcome::Miss,
        _ => GetOutcome::Bad,
    }
}

/// Runs one phase and returns its counts and latencies.
pub fn run(store: &Store, p: &Phase<'_>) -> PhaseResult {
    let counts = Counts::default();
    let start = Instant::now();
    let deadline = p.max_time.map(|t| start + t);
    let mut hist = new_hist();
    let mut busy = Duration::ZERO;
    let cache0 = store.cache_stats();
    std::thread::scope(|sc| {
        let workers: Vec<_> = (0..p.threads)
            .map(|_| {
                let counts = &counts;
                sc.spawn(move || worker(store, p, deadline, counts))
            })
            .collect();
        let mut last_report = Instant::now();
        while workers.iter().any(|w| !w.is_finished()) {
            std::thread::sleep(Duration::from_millis(20));
            if last_report.elapsed() >= Duration::from_secs(5) {
                last_report = Instant::now();
                let n = counts.done.load(Ordering::Relaxed);
                eprintln!(
                    "  .. {} {}B batch {}: {n}/{} keys, {:.0} keys/s",
                    p.op.name(),
                    p.size,
                    p.batch,
                    p.keys,
                    n as f64 / start.elapsed().as_secs_f64()
                );
            }
        }
        for w in workers {
            let (h, b) = w.join().expect("bench worker");
            hist.add(h).expect("same bounds");
            busy = busy.max(b);
        }
    });
    PhaseResult {
        ops: counts.done.load(Ordering::Relaxed),
        failed: counts.failed.load(Ordering::Relaxed),
        misses: counts.misses.load(Ordering::Relaxed),
        // Time inside store calls, of the busiest worker: generating and checking values
        // is excluded, as the ceiling does none of it.
        secs: busy.as_secs_f64(),
        hist,
        cache: {
            let c = store.cache_stats();
            (c.hits - cache0.hits, c.misses - cache0.misses)
        },
    }
}

fn worker(
    store: &Store,
    p: &Phase<'_>,
    deadline: Option<Instant>,
    counts: &Counts,
) -> (Histogram<u64>, Duration) {
    let mut h = new_hist();
    let mut busy = Duration::ZERO;
    let zipf = match (p.op, p.zipf) {
        (Op::Get | Op::GetOwned | Op::GetCold, Some(s)) => Some(Zipf::new(p.keys, s)),
        _ => None,
    };
    let mut rng = rand::rng();
    let mut bufs: Vec<Vec<u8>> = (0..p.batch).map(|_| p.template.to_vec()).collect();
    let mut group: Vec<u64> = Vec::with_capacity(p.batch);
    let mut keys: Vec<String> = Vec::with_capacity(p.batch);
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        // Keys are claimed from a shared counter, so whatever a cut-short phase finished is
        // a prefix 0..n that the get phase can read.
        let start = counts.next.fetch_add(p.batch as u64, Ordering::Relaxed);
        if start >= p.keys {
            break;
        }
        let end = (start + p.batch as u64).min(p.keys);
        group.clear();
        match &zipf {
            Some(z) => group.extend((start..end).map(|_| z.sample(&mut rng))),
            None => group.extend(start..end),
        }
        keys.clear();
        keys.extend(group.iter().map(|&i| key(p.size, i, p.key_size)));
        // Only the store call is timed: making and verifying values is the bench's own work.
        let (bad, missed, took) = match p.op {
            Op::Put => {
                for (b, &i) in bufs.iter_mut().zip(&group) {
                    stamp(b, i);
                }
                let items: Vec<(&str, &[u8])> = keys
                    .iter()
                    .zip(&bufs)
                    .map(|(k, b)| (k.as_str(), b.as_slice()))
                    .collect();
                let t0 = Instant::now();
                let res = store.put_batch(&items, p.config);
                let took = t0.elapsed();
                (res.iter().filter(|r| r.is_err()).count(), 0, took)
            }
            Op::Get | Op::GetCold => {
                // A stamp no key has: a get that wrote nothing cannot pass the check.
                for b in &mut bufs {
                    stamp(b, u64::MAX);
                }
                let mut items: Vec<(&str, &mut [u8])> = keys
                    .iter()
                    .zip(bufs.iter_mut())
                    .map(|(k, b)| (k.as_str(), b.as_mut_slice()))
                    .collect();
                let t0 = Instant::now();
                let got = store.get_into_batch(&mut items);
                let took = t0.elapsed();
                let outcomes: Vec<GetOutcome> = got
                    .iter()
                    .zip(&items)
                    .zip(&group)
                    .map(|((r, (_, b)), &i)| classify_into(r, b, p.template, i))
                    .collect();
                let count = |o| outcomes.iter().filter(|&&x| x == o).count();
                (count(GetOutcome::Bad), count(GetOutcome::Miss), took)
            }
            Op::GetOwned => {
                let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                let t0 = Instant::now();
                let got = store.get_batch(&refs);
                let took = t0.elapsed();
                let outcomes: Vec<GetOutcome> = got
                    .iter()
                    .zip(&group)
                    .map(|(r, &i)| classify(r, p.template, i))
                    .collect();
                let count = |o| outcomes.iter().filter(|&&x| x == o).count();
                (count(GetOutcome::Bad), count(GetOutcome::Miss), took)
            }
        };
        busy += took;
        h.record(took.as_micros().max(1) as u64).expect("in bounds");
        counts.done.fetch_add(group.len() as u64, Ordering::Relaxed);
        counts.failed.fetch_add(bad as u64, Ordering::Relaxed);
        counts.misses.fetch_add(missed as u64, Ordering::Relaxed);
    }
    (h, busy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::template;
    use mooncake_rs::Error;

    #[test]
    fn a_missing_key_is_a_miss_and_wrong_bytes_or_errors_are_failures() {
        let t = template(8192);
        let mut good = t.clone();
        stamp(&mut good, 3);
        assert_eq!(classify(&Ok(good.clone()), &t, 3), GetOutcome::Good);
        // The value of another key, and a flipped byte, are wrong bytes.
        assert_eq!(classify(&Ok(good.clone()), &t, 4), GetOutcome::Bad);
        good[5000] ^= 1;
        assert_eq!(classify(&Ok(good), &t, 3), GetOutcome::Bad);
        let err = |c| Err(Error::new(c, "x"));
        assert_eq!(
            classify(&err(ErrorCode::ObjectNotFound), &t, 3),
            GetOutcome::Miss
        );
        // Into a buffer: the size returned must cover the value, the bytes must check.
        let mut buf = t.clone();
        stamp(&mut buf, 3);
        assert_eq!(classify_into(&Ok(8192), &buf, &t, 3), GetOutcome::Good);
        assert_eq!(classify_into(&Ok(8000), &buf, &t, 3), GetOutcome::Bad);
        assert_eq!(classify_into(&Ok(9000), &buf, &t, 3), GetOutcome::Bad);
        stamp(&mut buf, u64::MAX);
        assert_eq!(classify_into(&Ok(8192), &buf, &t, 3), GetOutcome::Bad);
        for c in [
            ErrorCode::ChecksumMismatch,
            ErrorCode::TransferFail,
            ErrorCode::RpcTimeout,
        ] {
            assert_eq!(classify(&err(c), &t, 3), GetOutcome::Bad, "{c:?}");
        }
    }
}
