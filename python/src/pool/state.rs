//! The pool's bookkeeping: which leases are out, how many bytes they hold, who waits for
//! room. Every method but the overflow (un)registration runs without the GIL; the state
//! lock is never held while the GIL is taken, so a thread holding the GIL and waiting for
//! the lock cannot deadlock with one holding the lock.
//!
//! A lease takes the exact size asked for (at least one byte) from the store's local
//! buffer, or, when that is full, from an overflow buffer it registers with the store and
//! unregisters on release. `max_bytes` bounds both together, `max_regions` the number of
//! leases out at once; a lease that does not fit waits (or fails, with `block=False`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};
use pyo3::prelude::*;

use super::PoolError;
use super::memory::{LocalBuffer, LocalSlice, OverflowBytes};

/// The limits a pool was made with, resolved against the store's local buffer.
pub struct Limits {
    /// Bytes all leases out may hold together.
    pub max_bytes: usize,
    /// Leases above this size are allowed but logged (Mooncake counts them).
    pub max_size_class: usize,
    /// Alignment of overflow buffers.
    pub alignment: usize,
    /// Whether `acquire` waits for room unless told otherwise.
    pub block_on_exhaustion: bool,
    /// How long `acquire` waits unless told otherwise; `None` waits for ever.
    pub default_timeout_seconds: Option<f64>,
    /// How many leases may be out at once; `None` for no limit but `max_bytes`.
    pub max_regions: Option<usize>,
}

/// Where a lease's bytes live.
enum Backing {
    Local(LocalSlice),
    Overflow(OverflowBytes),
}

impl Backing {
    fn addr(&self) -> usize {
        match self {
            Backing::Local(s) => s.addr(),
            Backing::Overflow(o) => o.addr(),
        }
    }
}

/// One lease's memory and the bytes it counts against `max_bytes`.
struct Region {
    bytes: usize,
    backing: Backing,
}

/// What the lock guards.
#[derive(Default)]
struct State {
    closed: bool,
    closing: bool,
    /// Bytes of the leases out.
    total_bytes: usize,
    /// Bytes being allocated right now (outside the lock).
    reserved_bytes: usize,
    /// Allocations running right now.
    reserved_regions: usize,
    /// Leases out, by address.
    in_use: HashMap<usize, Region>,
}

impl State {
    fn check_open(&self) -> Result<(), PoolError> {
        if self.closed {
            return Err(PoolError::Closed);
        }
        if self.closing {
            return Err(PoolError::Closing);
        }
        Ok(())
    }

    /// Whether a lease of `bytes` fits beside the ones out and the ones being made.
    fn has_room(&self, bytes: usize, limits: &Limits) -> bool {
        let used = self.total_bytes + self.reserved_bytes;
        bytes <= limits.max_bytes.saturating_sub(used)
            && limits
                .max_regions
                .is_none_or(|m| self.in_use.len() + self.reserved_regions < m)
    }
}

/// A buffer pool over one store.
pub struct Pool {
    /// The object given as `store`: its `register_buffer` / `unregister_buffer` are called
    /// for overflow buffers, as Mooncake's pool does.
    store: Py<PyAny>,
    local: Arc<LocalBuffer>,
    limits: Limits,
    state: Mutex<State>,
    room: Condvar,
}

impl Pool {
    /// A pool lending from `local`, with overflow buffers registered through `store`.
    pub fn new(store: Py<PyAny>, local: Arc<LocalBuffer>, limits: Limits) -> Pool {
        Pool {
            store,
            local,
            limits,
            state: Mutex::new(State::default()),
            room: Condvar::new(),
        }
    }

    /// The store's local buffer.
    pub fn local(&self) -> &LocalBuffer {
        &self.local
    }

    /// The address of a new lease of `size` bytes. `block` and `timeout` (seconds) default
    /// to the pool's; waits for room when blocking. Call without the GIL.
    pub fn acquire(
        &self,
        size: usize,
        block: Option<bool>,
        timeout: Option<f64>,
    ) -> Result<usize, PoolError> {
        let block = block.unwrap_or(self.limits.block_on_exhaustion);
        let timeout = timeout.or(self.limits.default_timeout_seconds);
        if let Some(t) = timeout
            && (t.is_nan() || t < 0.0)
        {
            return Err(PoolError::NegativeTimeout(t));
        }
        // A timeout too long for an Instant waits for ever.
        let deadline = timeout
            .and_then(|t| Duration::try_from_secs_f64(t).ok())
            .and_then(|d| Instant::now().checked_add(d));
        let bytes = size.max(1);
        if bytes > self.limits.max_bytes {
            return Err(PoolError::TooLarge {
                size_bytes: size,
                max_bytes: self.limits.max_bytes,
            });
        }
        if bytes > self.limits.max_size_class {
            tracing::debug!(
                "buffer lease of {bytes} bytes is above max_size_class ({})",
                self.limits.max_size_class
            );
        }
        let mut st = self.state.lock();
        loop {
            st.check_open()?;
            if let Some(addr) = self.try_acquire(&mut st, bytes)? {
                return Ok(addr);
            }
            if !block {
                return Err(PoolError::Exhausted);
            }
            match deadline {
                Some(d) if Instant::now() >= d => {
                    return Err(PoolError::TimedOut {
                        timeout_seconds: timeout.unwrap_or_default(),
                    });
                }
                Some(d) => {
                    let _ = self.room.wait_until(&mut st, d);
                }
                None => self.room.wait(&mut st),
            }
        }
    }

    /// A lease of `bytes` when there is room for one now. The memory is allocated (and an
    /// overflow buffer registered) outside the lock, with its bytes reserved meanwhile.
    fn try_acquire(
        &self,
        st: &mut MutexGuard<'_, State>,
        bytes: usize,
    ) -> Result<Option<usize>, PoolError> {
        if !st.has_room(bytes, &self.limits) {
            return Ok(None);
        }
        st.reserved_bytes += bytes;
        st.reserved_regions += 1;
        let got = MutexGuard::unlocked(st, || self.allocate(bytes));
        st.reserved_bytes -= bytes;
        st.reserved_regions -= 1;
        self.room.notify_all();
        let Some(backing) = got? else {
            return Ok(None);
        };
        if let Err(e) = st.check_open() {
            let region = Region { bytes, backing };
            MutexGuard::unlocked(st, || self.free(region))?;
            return Err(match e {
                PoolError::Closed => PoolError::Closed,
                _ => PoolError::Closing,
            });
        }
        let addr = backing.addr();
        st.total_bytes += bytes;
        st.in_use.insert(addr, Region { bytes, backing });
        Ok(Some(addr))
    }

    /// `bytes` of the local buffer, else a registered overflow buffer; `None` when neither
    /// can be had.
    fn allocate(&self, bytes: usize) -> Result<Option<Backing>, PoolError> {
        if let Some(s) = self.local.alloc(bytes) {
            return Ok(Some(Backing::Local(s)));
        }
        let Some(o) = OverflowBytes::new(bytes, self.limits.alignment) else {
            return Ok(None);
        };
        self.call_store("register_buffer", o.addr(), Some(bytes))
            .map_err(PoolError::Register)?;
        Ok(Some(Backing::Overflow(o)))
    }

    /// Lets a region's memory go, unregistering an overflow buffer first.
    fn free(&self, region: Region) -> Result<(), PoolError> {
        let res = match &region.backing {
            Backing::Overflow(o) => self
                .call_store("unregister_buffer", o.addr(), None)
                .map_err(PoolError::Unregister),
            Backing::Local(_) => Ok(()),
        };
        drop(region);
        res
    }

    /// `store.<method>(addr[, size])` under the GIL; `Err` with what it returned (or
    /// raised) unless it returned 0.
    fn call_store(&self, method: &str, addr: usize, size: Option<usize>) -> Result<(), String> {
        Python::attach(|py| {
            let store = self.store.bind(py);
            let res = match size {
                Some(n) => store.call_method1(method, (addr, n)),
                None => store.call_method1(method, (addr,)),
            };
            match res.map(|v| v.extract::<i64>()) {
                Ok(Ok(0)) => Ok(()),
                Ok(Ok(code)) => Err(code.to_string()),
                Ok(Err(e)) | Err(e) => Err(e.to_string()),
            }
        })
    }

    /// Takes back the lease at `addr`. Needs nothing of the GIL but takes it to unregister
    /// an overflow buffer.
    pub fn release(&self, addr: usize) -> Result<(), PoolError> {
        let region = {
            let mut st = self.state.lock();
            let region = st.in_use.remove(&addr).ok_or(PoolError::LeaseClosed)?;
            st.total_bytes -= region.bytes;
            region
        };
        let res = self.free(region);
        self.room.notify_all();
        res
    }

    /// Refuses new leases once allocations under way have finished; fails (and stays open)
    /// while leases are out. Closing twice is fine. Call without the GIL.
    pub fn close(&self) -> Result<(), PoolError> {
        let mut st = self.state.lock();
        if st.closed {
            return Ok(());
        }
        st.closing = true;
        while st.reserved_regions > 0 {
            self.room.wait(&mut st);
        }
        st.closing = false;
        self.room.notify_all();
        if !st.in_use.is_empty() {
            return Err(PoolError::ActiveLeases(st.in_use.len()));
        }
        st.closed = true;
        Ok(())
    }
}
