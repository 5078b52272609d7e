//! Memory the binding reads from and writes into: Python buffers, raw addresses, the
//! registry behind `register_buffer`, the staging pool, and `BufferHandle`.
//!
//! A [`Mem`] is one caller-owned byte range for the length of one Python call. A call has
//! either sources ([`Access::Read`], for puts) or destinations ([`Access::Write`], for gets),
//! never both. Sources are read through [`Mem::bytes`] and may overlap. Destinations are
//! written only through [`dests`] / [`dests_nested`], which first check that no two share a
//! byte, so each `&mut [u8]` handed out is the only path to its bytes.

use std::collections::BTreeMap;
use std::ffi::c_int;
use std::ptr::NonNull;

use parking_lot::Mutex;
use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::PyBufferError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt};

use crate::error::BindingError;

/// What a call does with a buffer: reads a value from it (puts) or reads an object into it
/// (gets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Only read.
    Read,
    /// Written (and possibly read).
    Write,
}

/// A byte range of the caller's, valid for as long as this lives: a raw address the caller
/// vouched for ([`Mem::from_raw`]) or a Python buffer kept exported by `_keep`
/// ([`Mem::from_buffer`]).
pub struct Mem {
    ptr: NonNull<u8>,
    len: usize,
    access: Access,
    _keep: Option<PyUntypedBuffer>,
}

// SAFETY: a `Mem` is an address range plus, for a buffer object, its export, which is itself
// `Sync` (pyo3 releases it under the GIL). A shared `&Mem` gives only `addr`, `len` and
// `bytes()` — shared reads of bytes nobody writes while the `Mem` lives (the constructors'
// contracts), which may run on any thread at once. Writing needs `&mut Mem` (`dests`).
unsafe impl Sync for Mem {}

/// The integer address in `obj`, or `None` when it is not an `int`. A bool is refused: it
/// is an `int` to Python, but never an address.
pub fn address(obj: &Bound<'_, PyAny>) -> Result<Option<usize>, BindingError> {
    if !obj.is_instance_of::<PyInt>() {
        return Ok(None);
    }
    if obj.is_instance_of::<PyBool>() {
        return Err(BindingError::BadAddress);
    }
    obj.extract()
        .map(Some)
        .map_err(|_| BindingError::BadAddress)
}

impl Mem {
    /// The first `size` bytes (all of them when `size` is `None`) of an object with the
    /// buffer protocol: a C-contiguous numpy array, bytearray, memoryview, bytes... With
    /// [`Access::Write`] a read-only object is refused.
    ///
    /// Safe: the export keeps the memory allocated and in place (an exported bytearray or
    /// array cannot be resized) until this `Mem` is dropped, and Python's buffer protocol
    /// carries the same promise as a raw address — the caller does not touch the bytes from
    /// elsewhere while the call runs (docs/python.md).
    pub fn from_buffer(
        obj: &Bound<'_, PyAny>,
        size: Option<usize>,
        access: Access,
    ) -> Result<Mem, BindingError> {
        let buf =
            PyUntypedBuffer::get(obj).map_err(|source| BindingError::NotABuffer { source })?;
        if !buf.is_c_contiguous() {
            return Err(BindingError::NotContiguous);
        }
        if access == Access::Write && buf.readonly() {
            return Err(BindingError::ReadOnly);
        }
        let have_bytes = buf.len_bytes();
        let len = size.unwrap_or(have_bytes);
        if len > have_bytes {
            return Err(BindingError::SizeExceedsBuffer {
                size_bytes: len,
                have_bytes,
            });
        }
        // An empty buffer may export a null pointer; no byte of it is ever touched.
        let ptr = match NonNull::new(buf.buf_ptr().cast::<u8>()) {
            Some(p) => p,
            None if have_bytes == 0 => NonNull::dangling(),
            None => return Err(BindingError::NullAddress),
        };
        Ok(Mem {
            ptr,
            len,
            access,
            _keep: Some(buf),
        })
    }

    /// `len` bytes from the integer address `addr`.
    ///
    /// Refuses a null address and a range that runs past the end of the address space (or
    /// beyond `isize::MAX` bytes, the most a slice may cover).
    ///
    /// # Safety
    ///
    /// For as long as the returned `Mem` lives, the `len` bytes from `addr` must be valid
    /// for reads and, with [`Access::Write`], for writes, and nothing but the `Mem`s of the
    /// same call may access them: nothing else may write them, nor, with [`Access::Write`],
    /// read them. This is the contract of Mooncake's Python API for raw addresses
    /// (docs/python.md, "Raw addresses"). Overlap between `Mem`s of one call is this
    /// module's business: sources only share reads and [`dests`] refuses overlapping
    /// destinations before writing any.
    pub unsafe fn from_raw(addr: usize, len: usize, access: Access) -> Result<Mem, BindingError> {
        let ptr = NonNull::new(std::ptr::with_exposed_provenance_mut::<u8>(addr))
            .ok_or(BindingError::NullAddress)?;
        let past_end = BindingError::AddressRange {
            addr,
            size_bytes: len,
        };
        if addr.checked_add(len).is_none() || isize::try_from(len).is_err() {
            return Err(past_end);
        }
        Ok(Mem {
            ptr,
            len,
            access,
            _keep: None,
        })
    }

    /// Address of the first byte.
    pub fn addr(&self) -> usize {
        self.ptr.as_ptr().addr()
    }

    /// Byte count.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The bytes, for reading.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` is non-null and covers `len` (at most isize::MAX) bytes valid for
        // reads while `self` lives: a raw address by `from_raw`'s contract, a buffer object
        // by its export in `_keep`. Nothing writes them meanwhile: nothing outside the call
        // (the contract); within it, a call with sources has no destinations (module doc),
        // and a destination is written only through `dests*`, which borrow it mutably, so
        // no `&[u8]` from here is alive then.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, for writing. Private: only `dests*` call it, after checking that no other
    /// destination of the call shares a byte with it. Panics on a `Mem` made for reading.
    fn bytes_mut(&mut self) -> &mut [u8] {
        assert_eq!(self.access, Access::Write, "writing a Mem made for reading");
        // SAFETY: as in `bytes`, the range is valid, and with `Access::Write` (asserted) also
        // for writes: `from_raw`'s contract, or an export that is not read-only
        // (`from_buffer` refuses those). It is the only path to those bytes while the slice
        // lives: `&mut self` rules out a second one through this `Mem`, the callers
        // (`dests*`) have checked that no other destination of the call overlaps, and
        // nothing outside the call touches them (the contract).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

/// Refuses destinations that share a byte; positions in the error count `mems` in order.
fn check_dests<'a>(mems: impl Iterator<Item = &'a Mem>) -> Result<(), BindingError> {
    let mut ranges = Vec::new();
    for (i, m) in mems.enumerate() {
        // Empty ranges share no byte with anything.
        if m.len > 0 {
            ranges.push((m.addr(), m.addr() + m.len, i));
        }
    }
    ranges.sort_unstable();
    // Sorted by start, a range overlaps an earlier one exactly when it starts before the
    // furthest end seen so far.
    let mut furthest: Option<(usize, usize)> = None;
    for &(start, end, i) in &ranges {
        if let Some((far_end, far_i)) = furthest
            && start < far_end
        {
            return Err(BindingError::Overlap {
                first: far_i.min(i),
                second: far_i.max(i),
                start,
                end: end.min(far_end),
            });
        }
        if furthest.is_none_or(|(far_end, _)| end > far_end) {
            furthest = Some((end, i));
        }
    }
    Ok(())
}

/// The destinations of one call (made with [`Access::Write`]) as slices to write, one per
/// `Mem` in order; refuses the call when two share a byte (then nothing is written).
pub fn dests(mems: &mut [Mem]) -> Result<Vec<&mut [u8]>, BindingError> {
    check_dests(mems.iter())?;
    Ok(mems.iter_mut().map(Mem::bytes_mut).collect())
}

/// [`dests`] for calls with several destinations per key: no two share a byte, across
/// keys too.
pub fn dests_nested(lists: &mut [Vec<Mem>]) -> Result<Vec<Vec<&mut [u8]>>, BindingError> {
    check_dests(lists.iter().flatten())?;
    Ok(lists
        .iter_mut()
        .map(|ms| ms.iter_mut().map(Mem::bytes_mut).collect())
        .collect())
}

/// Ranges passed to `register_buffer`: start → length.
#[derive(Default)]
pub struct Registry {
    ranges: Mutex<BTreeMap<usize, usize>>,
}

impl Registry {
    /// Records `[ptr, ptr + size)`; refuses a null or empty range and overlaps.
    pub fn register(&self, ptr: usize, size: usize) -> Result<(), BindingError> {
        if ptr == 0 || size == 0 {
            return Err(BindingError::RegisterEmpty);
        }
        let end = ptr
            .checked_add(size)
            .ok_or(BindingError::RegisterOverflow {
                ptr,
                size_bytes: size,
            })?;
        let mut r = self.ranges.lock();
        if r.get(&ptr) == Some(&size) {
            return Ok(());
        }
        let before = r.range(..end).next_back();
        if before.is_some_and(|(&s, &l)| s + l > ptr) {
            return Err(BindingError::RegisterOverlap { start: ptr, end });
        }
        r.insert(ptr, size);
        Ok(())
    }

    /// Bytes from `addr` to the end of the registered range holding it, or `None` when no
    /// registered range holds it.
    pub fn capacity(&self, addr: usize) -> Option<usize> {
        let r = self.ranges.lock();
        let (&start, &len) = r.range(..=addr).next_back()?;
        (addr < start + len).then(|| start + len - addr)
    }

    /// Forgets the range starting at `ptr`.
    pub fn unregister(&self, ptr: usize) -> Result<(), BindingError> {
        self.ranges
            .lock()
            .remove(&ptr)
            .map(|_| ())
            .ok_or(BindingError::NotRegistered { ptr })
    }
}

/// Reusable staging vectors for gathers and scatters, keeping at most `cap` bytes between
/// calls (`local_buffer_size`); larger needs are met with one-off allocations.
pub struct Staging {
    cap: usize,
    free: Mutex<Vec<Vec<u8>>>,
}

impl Staging {
    /// A pool keeping at most `cap` bytes.
    pub fn new(cap: usize) -> Staging {
        Staging {
            cap,
            free: Mutex::new(Vec::new()),
        }
    }

    /// An empty vector with room for `len` bytes.
    fn take_empty(&self, len: usize) -> Vec<u8> {
        let mut free = self.free.lock();
        let mut v = match free.iter().position(|v| v.capacity() >= len) {
            Some(i) => free.swap_remove(i),
            None => Vec::with_capacity(len),
        };
        v.clear();
        v
    }

    /// A vector of exactly `len` zeroed bytes, to read into.
    pub fn take(&self, len: usize) -> Vec<u8> {
        let mut v = self.take_empty(len);
        v.resize(len, 0);
        v
    }

    /// The concatenation of `parts`, copied once.
    pub fn gather(&self, parts: &[Mem]) -> Vec<u8> {
        let mut v = self.take_empty(parts.iter().map(Mem::len).sum());
        for m in parts {
            v.extend_from_slice(m.bytes());
        }
        v
    }

    /// Returns a vector to the pool when it fits under the cap.
    pub fn give(&self, v: Vec<u8>) {
        let mut free = self.free.lock();
        let held: usize = free.iter().map(Vec::capacity).sum();
        if held + v.capacity() <= self.cap {
            free.push(v);
        }
    }
}

/// An object read by `get_buffer`: its bytes, exposed through the buffer protocol
/// (`memoryview(h)`, `numpy.frombuffer(h, ...)`, `bytes(h)`) without a copy. Frozen: the
/// bytes never change or move while the handle lives, which the exported views rely on.
#[pyclass(module = "mooncake_rs.store", frozen)]
pub struct BufferHandle {
    data: Box<[u8]>,
}

impl BufferHandle {
    /// Wraps bytes already read.
    pub fn new(data: Vec<u8>) -> BufferHandle {
        BufferHandle {
            data: data.into_boxed_slice(),
        }
    }
}

#[pymethods]
impl BufferHandle {
    /// Address of the first byte.
    fn ptr(&self) -> usize {
        self.data.as_ptr() as usize
    }

    /// Byte count.
    fn size(&self) -> usize {
        self.data.len()
    }

    fn __len__(&self) -> usize {
        self.data.len()
    }

    fn __repr__(&self) -> String {
        format!("<BufferHandle size={}>", self.data.len())
    }

    /// Exports the bytes, read-only, to a buffer-protocol consumer.
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
        let data = &slf.get().data;
        let len = pyo3::ffi::Py_ssize_t::try_from(data.len())
            .map_err(|_| PyBufferError::new_err("object too large for a buffer"))?;
        // SAFETY: `view` is non-null and the consumer's to fill (this method's contract);
        // the GIL is held (`slf` is bound). `slf` is alive, and PyBuffer_FillInfo stores a
        // new reference to it in `view.obj`, so the handle and its boxed bytes outlive the
        // view; the class is frozen, so `data` is never replaced or moved meanwhile. The
        // pointer is cast to `*mut` only because the C signature wants one: readonly = 1
        // makes PyBuffer_FillInfo refuse PyBUF_WRITABLE requests, so nobody writes through it.
        let rc = unsafe {
            pyo3::ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                data.as_ptr().cast_mut().cast::<std::ffi::c_void>(),
                len,
                1,
                flags,
            )
        };
        if rc != 0 {
            return Err(PyErr::fetch(slf.py()));
        }
        Ok(())
    }
}
