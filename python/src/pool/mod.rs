//! Mooncake's buffer pool (`BufferPool`, alias `RegisteredBufferPool`): scratch buffers for
//! the zero-copy calls, lent from the store's local buffer (`local_buffer_size` bytes,
//! registered with the store) so repeated `get_into` / `put_from` calls need no
//! `register_buffer` of their own. When the local buffer is full a lease gets an overflow
//! buffer, registered through the store's `register_buffer` and unregistered on release.
//!
//! `min_size_class` and `max_size_class` are checked and kept, as Mooncake's pool does, but
//! every lease takes the exact size asked for: Mooncake's size classes are gone from its
//! pool too. Errors are `RuntimeError`s ([`PoolError`]).

mod error;
mod lease;
mod memory;
mod state;

use std::sync::Arc;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::capsule;
use crate::error::BindingError;
use crate::store::MooncakeDistributedStore;
pub use error::PoolError;
pub use lease::{BufferLease, BufferLeaseView};
use memory::LocalBuffer;
pub use memory::LocalBufferSlot;
use state::{Limits, Pool};

impl From<PoolError> for PyErr {
    fn from(e: PoolError) -> PyErr {
        PyRuntimeError::new_err(BindingError::from(e).to_string())
    }
}

/// The store's local buffer, mapped (and registered with the store) on first use.
fn local_buffer(store: &MooncakeDistributedStore) -> Result<Arc<LocalBuffer>, PoolError> {
    if store.dummy.read().is_some() {
        return Err(PoolError::Dummy);
    }
    let c = store.client.read().clone().ok_or(PoolError::NotSetUp)?;
    let register = |b: &LocalBuffer| {
        if let Err(e) = store.registry.register(b.base(), b.capacity()) {
            tracing::warn!("local buffer not registered: {e}");
        }
    };
    c.local_buffer
        .get_or_map(register)
        .map_err(|source| PoolError::LocalBuffer {
            size_bytes: c.local_buffer.capacity(),
            source,
        })?
        .ok_or(PoolError::NoLocalBuffer)
}

/// Refuses a zero `min_size_class` or `alignment`, and an alignment that is not a power of
/// two at least a pointer wide.
fn check_sizes(min_size_class: usize, alignment: usize) -> Result<(), PoolError> {
    if min_size_class == 0 || alignment == 0 {
        return Err(PoolError::NotPositive);
    }
    let min = size_of::<*const u8>();
    if alignment < min || !alignment.is_power_of_two() {
        return Err(PoolError::Alignment {
            got: alignment,
            min,
        });
    }
    Ok(())
}

/// Mooncake's `BufferPool`: leases of scratch memory the store can read from and write
/// into without further registration.
#[pyclass(module = "mooncake_rs.store", frozen)]
pub struct BufferPool {
    pool: Arc<Pool>,
}

impl Drop for BufferPool {
    /// Closes the pool unless leases are still out (they keep it alive and release into it).
    fn drop(&mut self) {
        let _ = self.pool.close();
    }
}

#[pymethods]
impl BufferPool {
    /// A pool over `store` (a set-up `MooncakeDistributedStore`, or a wrapper with
    /// `_get_pyclient_capsule()`). `max_bytes=0` allows twice the local buffer (one
    /// local-buffer-sized overflow burst); a smaller non-zero value is raised to the local
    /// buffer's size. `alignment` applies to overflow buffers.
    ///
    /// Defaults as Mooncake's, written out so `inspect.signature` shows them: 64 KiB and
    /// 8 MiB.
    #[new]
    #[pyo3(signature = (store, max_bytes=0, min_size_class=65536, max_size_class=None,
        alignment=8388608, block_on_exhaustion=true, default_timeout=None,
        max_regions=None, prewarm_size=None, prewarm_count=0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        store: &Bound<'_, PyAny>,
        max_bytes: usize,
        min_size_class: usize,
        max_size_class: Option<usize>,
        alignment: usize,
        block_on_exhaustion: bool,
        default_timeout: Option<f64>,
        max_regions: Option<usize>,
        prewarm_size: Option<usize>,
        prewarm_count: usize,
    ) -> PyResult<BufferPool> {
        let native = capsule::resolve(store, "BufferPool")?.ok_or(PoolError::NotSetUp)?;
        check_sizes(min_size_class, alignment)?;
        let local = local_buffer(native.get())?;
        let capacity = local.capacity();
        let max_bytes = match max_bytes {
            0 => capacity.checked_mul(2).unwrap_or(capacity),
            n => n.max(capacity),
        };
        let limits = Limits {
            max_bytes,
            max_size_class: max_size_class.unwrap_or(max_bytes),
            alignment,
            block_on_exhaustion,
            default_timeout_seconds: default_timeout,
            max_regions,
        };
        let pool = BufferPool {
            pool: Arc::new(Pool::new(store.clone().unbind(), local, limits)),
        };
        if let Some(size) = prewarm_size
            && prewarm_count > 0
        {
            pool.prewarm(py, size, prewarm_count);
        }
        Ok(pool)
    }

    /// A lease of `size` bytes. Without room: waits (`block`, default
    /// `block_on_exhaustion`) up to `timeout` seconds (default `default_timeout`, `None`
    /// for ever), with the GIL released; raises when it cannot wait or the time is up.
    #[pyo3(signature = (size, block=None, timeout=None))]
    fn acquire(
        &self,
        py: Python<'_>,
        size: usize,
        block: Option<bool>,
        timeout: Option<f64>,
    ) -> PyResult<BufferLease> {
        let pool = &self.pool;
        let addr = py.detach(|| pool.acquire(size, block, timeout))?;
        Ok(BufferLease::new(Arc::clone(pool), addr, size))
    }

    /// `acquire` under Mooncake's other name, for `with pool.buffer(n) as lease:`.
    #[pyo3(signature = (size, block=None, timeout=None))]
    fn buffer(
        &self,
        py: Python<'_>,
        size: usize,
        block: Option<bool>,
        timeout: Option<f64>,
    ) -> PyResult<BufferLease> {
        self.acquire(py, size, block, timeout)
    }

    /// Faults in the local-buffer pages `count` leases of `size` bytes would use first, so
    /// their first writes do not page-fault (Mooncake's pool takes the call and does
    /// nothing). Failure is logged, not raised.
    #[pyo3(signature = (size, count))]
    fn prewarm(&self, py: Python<'_>, size: usize, count: usize) {
        let local = self.pool.local();
        if let Err(e) = py.detach(|| local.prefault(size.saturating_mul(count))) {
            tracing::warn!("BufferPool.prewarm({size}, {count}): {e}");
        }
    }

    /// Refuses further leases; RuntimeError (and the pool stays open) while leases are out.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        Ok(py.detach(|| self.pool.close())?)
    }
}
