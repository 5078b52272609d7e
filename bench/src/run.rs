//! Running one case: put every key, then get every key, from `threads` threads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Result;
use hdrhistogram::Histogram;
use mooncake_rs::{ReplicateConfig, Store};

use crate::Args;
use crate::payload::{check, stamp, template};
use crate::report::CaseResult;

fn key(size: u64, i: u64) -> String {
    format!("mc-bench-{size}-{i}")
}

/// Runs the put phase then the get phase of `ops` keys of `size` bytes.
pub fn run_case(store: &Store, args: &Args, size: u64, ops: u64) -> Result<Vec<CaseResult>> {
    let tmpl = template(size as usize);
    let cfg = ReplicateConfig {
        replica_num: args.replicas,
        ..ReplicateConfig::default()
    };
    let threads = args.threads.max(1);
    let batch = args.batch.max(1) as u64;
    let mut out = Vec::new();
    for op in ["put", "get"] {
        let failed = AtomicU64::new(0);
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        let start = Instant::now();
        std::thread::scope(|sc| {
            let handles: Vec<_> = (0..threads as u64)
                .map(|t| {
                    let (tmpl, cfg, failed) = (&tmpl, &cfg, &failed);
                    sc.spawn(move || {
                        let mut h =
                            Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
                        let mine: Vec<u64> = (0..ops).filter(|i| i % threads as u64 == t).collect();
                        let mut bufs: Vec<Vec<u8>> = (0..batch).map(|_| tmpl.clone()).collect();
                        for group in mine.chunks(batch as usize) {
                            let keys: Vec<String> = group.iter().map(|&i| key(size, i)).collect();
                            let t0 = Instant::now();
                            let bad = if op == "put" {
                                for (b, &i) in bufs.iter_mut().zip(group) {
                                    stamp(b, i);
                                }
                                let items: Vec<(&str, &[u8])> = keys
                                    .iter()
                                    .zip(&bufs)
                                    .map(|(k, b)| (k.as_str(), b.as_slice()))
                                    .collect();
                                store
                                    .put_batch(&items, cfg)
                                    .iter()
                                    .filter(|r| r.is_err())
                                    .count()
                            } else {
                                let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                                let got = store.get_batch(&refs);
                                got.iter()
                                    .zip(group)
                                    .filter(|(r, i)| !matches!(r, Ok(v) if check(v, tmpl, **i)))
                                    .count()
                            };
                            h.record(t0.elapsed().as_micros().max(1) as u64)
                                .expect("in bounds");
                            failed.fetch_add(bad as u64, Ordering::Relaxed);
                        }
                        h
                    })
                })
                .collect();
            for hnd in handles {
                hist.add(hnd.join().expect("bench thread"))
                    .expect("same bounds");
            }
        });
        let secs = start.elapsed().as_secs_f64();
        let f = failed.load(Ordering::Relaxed);
        out.push(CaseResult::new(
            op,
            size,
            batch as usize,
            threads,
            ops,
            f,
            secs,
            &hist,
        ));
    }
    Ok(out)
}
