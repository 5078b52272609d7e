//! `BufferLease` (one buffer out of a pool: its address, its size, a memoryview over it) and
//! `BufferLeaseView` (what that memoryview exports).
//!
//! A lease's memory stays put until the lease is released or garbage-collected. Every
//! `lease.buffer` makes a new view object that the memoryview keeps alive; the lease
//! counts its live views and refuses `release()` while any is alive, so no memoryview ever
//! outlives the bytes it shows. Garbage collection cannot free a lease under a view either:
//! each view holds a reference to its lease.

use std::ffi::{c_int, c_void};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use pyo3::exceptions::PyBufferError;
use pyo3::prelude::*;
use pyo3::types::PyMemoryView;

use super::PoolError;
use super::state::Pool;

/// One buffer lent by a `BufferPool`: `ptr` and `size` for the zero-copy calls
/// (`put_from`, `get_into`, ...), `buffer` for Python.
#[pyclass(module = "mooncake_rs.store", frozen)]
pub struct BufferLease {
    pool: Arc<Pool>,
    /// The lease's address; `None` once released.
    addr: Mutex<Option<usize>>,
    size: usize,
    /// Live `BufferLeaseView`s of this lease.
    views: AtomicUsize,
}

impl BufferLease {
    /// The lease of `size` bytes at `addr`, which `pool` has just lent.
    pub fn new(pool: Arc<Pool>, addr: usize, size: usize) -> BufferLease {
        BufferLease {
            pool,
            addr: Mutex::new(Some(addr)),
            size,
            views: AtomicUsize::new(0),
        }
    }

    fn addr(&self) -> Result<usize, PoolError> {
        self.addr.lock().ok_or(PoolError::LeaseClosed)
    }
}

impl Drop for BufferLease {
    /// A lease garbage-collected unreleased goes back to its pool (no view can be alive:
    /// each holds the lease).
    fn drop(&mut self) {
        if let Some(addr) = self.addr.get_mut().take()
            && let Err(e) = self.pool.release(addr)
        {
            tracing::warn!("buffer lease {addr:#x} dropped: {e}");
        }
    }
}

#[pymethods]
impl BufferLease {
    /// Address of the first byte; RuntimeError once released.
    #[getter]
    fn ptr(&self) -> PyResult<usize> {
        Ok(self.addr()?)
    }

    /// The size asked for (the memory may be larger).
    #[getter]
    fn size(&self) -> usize {
        self.size
    }

    /// A writable memoryview of `size` bytes over the lease. While it (or a slice of it) is
    /// alive, `release()` fails.
    #[getter]
    fn buffer<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyMemoryView>> {
        let view = Bound::new(slf.py(), BufferLeaseView::new(slf))?;
        PyMemoryView::from(view.as_any())
    }

    /// Gives the buffer back to the pool; a no-op when already released. RuntimeError while
    /// memoryviews of it are alive.
    fn release(&self) -> PyResult<()> {
        let addr = {
            let mut a = self.addr.lock();
            let views = self.views.load(Ordering::Acquire);
            if a.is_some() && views != 0 {
                return Err(PoolError::ExportedViews(views).into());
            }
            a.take()
        };
        match addr {
            Some(addr) => Ok(self.pool.release(addr)?),
            None => Ok(()),
        }
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// Releases the lease (raising if views are still alive); never swallows an exception.
    fn __exit__(
        &self,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.release()
    }

    fn __repr__(&self) -> String {
        match *self.addr.lock() {
            Some(a) => format!("<BufferLease ptr={a:#x} size={}>", self.size),
            None => format!("<BufferLease released size={}>", self.size),
        }
    }
}

/// The object behind `lease.buffer`: exports the lease's bytes, writable, through the
/// buffer protocol, and keeps the lease from being released while it lives.
#[pyclass(module = "mooncake_rs.store", frozen)]
pub struct BufferLeaseView {
    lease: Py<BufferLease>,
}

impl BufferLeaseView {
    fn new(lease: &Bound<'_, BufferLease>) -> BufferLeaseView {
        lease.get().views.fetch_add(1, Ordering::AcqRel);
        BufferLeaseView {
            lease: lease.clone().unbind(),
        }
    }
}

impl Drop for BufferLeaseView {
    fn drop(&mut self) {
        self.lease.get().views.fetch_sub(1, Ordering::AcqRel);
    }
}

#[pymethods]
impl BufferLeaseView {
    /// A memoryview over the view's bytes.
    #[getter]
    fn buffer<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyMemoryView>> {
        PyMemoryView::from(slf.as_any())
    }

    /// Exports the lease's `size` bytes, writable.
    ///
    /// # Safety
    ///
    /// Called by Python (through pyo3) with `view` null or pointing at a `Py_buffer` the
    /// consumer owns and lets this fill.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut pyo3::ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("null view"));
        }
        let lease = slf.get().lease.get();
        let addr = lease.addr()?;
        let len = pyo3::ffi::Py_ssize_t::try_from(lease.size)
            .map_err(|_| PyBufferError::new_err("lease too large for a buffer"))?;
        let ptr = std::ptr::with_exposed_provenance_mut::<c_void>(addr);
        // SAFETY: `view` is non-null and the consumer's to fill (this method's contract);
        // the GIL is held (`slf` is bound). The lease's memory (at least `size` bytes from
        // `addr`, owned by its pool until the lease is released) outlives the export:
        // PyBuffer_FillInfo stores a new reference to this view in `view.obj`, the view
        // holds the lease, and the lease refuses `release()` while any view lives. Writes
        // through the export are the caller's, as with any writable buffer.
        let rc = unsafe { pyo3::ffi::PyBuffer_FillInfo(view, slf.as_ptr(), ptr, len, 0, flags) };
        if rc != 0 {
            return Err(PyErr::fetch(slf.py()));
        }
        Ok(())
    }
}
