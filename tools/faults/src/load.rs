//! Background load: a thread that puts values in a loop and keeps the ledger of what was
//! acknowledged, so a fault can strike mid-put.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mooncake_rs::{ReplicateConfig, Store};

use crate::ledger::{Acked, pattern};

/// A writer thread; [`Load::stop`] ends it and hands back its ledger.
pub struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
    failed: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Load {
    /// Puts `prefix-<n>` with values of `len_bytes` (seed `seed_base + n`) until stopped.
    pub fn start(
        store: Arc<Store>,
        prefix: &str,
        seed_base: u64,
        len_bytes: usize,
        cfg: ReplicateConfig,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let failed = Arc::new(AtomicU64::new(0));
        let (s, a, f, prefix) = (
            stop.clone(),
            acked.clone(),
            failed.clone(),
            prefix.to_string(),
        );
        let thread = std::thread::spawn(move || {
            let mut n = 0u64;
            while !s.load(Ordering::Acquire) {
                let (key, seed) = (format!("{prefix}-{n}"), seed_base + n);
                n += 1;
                match store.put(&key, &pattern(len_bytes, seed), &cfg) {
                    Ok(()) => a.lock().unwrap_or_else(|e| e.into_inner()).push(Acked {
                        key,
                        seed,
                        len: len_bytes,
                        at: Instant::now(),
                    }),
                    Err(_) => {
                        f.fetch_add(1, Ordering::AcqRel);
                        // A failing cluster is not hammered.
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
        });
        Load {
            stop,
            acked,
            failed,
            thread: Some(thread),
        }
    }

    /// Puts acknowledged so far.
    pub fn acked_count(&self) -> usize {
        self.acked.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Puts that failed so far.
    pub fn failed_count(&self) -> u64 {
        self.failed.load(Ordering::Acquire)
    }

    /// The first ack that came after `t`, if any.
    pub fn first_ack_after(&self, t: Instant) -> Option<Instant> {
        let acked = self.acked.lock().unwrap_or_else(|e| e.into_inner());
        acked.iter().map(|a| a.at).find(|&at| at > t)
    }

    /// Waits until `n` puts have been acknowledged, up to `patience`; false on timeout.
    pub fn wait_acked(&self, n: usize, patience: Duration) -> bool {
        let deadline = Instant::now() + patience;
        while self.acked_count() < n {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Stops the thread (after its put in flight) and returns the ledger.
    pub fn stop(mut self) -> Vec<Acked> {
        self.halt();
        std::mem::take(&mut *self.acked.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.halt();
    }
}
