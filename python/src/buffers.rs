//! Memory the binding reads from and writes into: Python buffers, raw addresses, the
//! registry behind `register_buffer`, the staging pool, and `BufferHandle`.

use std::collections::BTreeMap;
use std::ffi::c_int;

use parking_lot::Mutex;
use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::PyBufferError;
use pyo3::prelude::*;
use pyo3::types::PyInt;

/// A byte range the caller vouches for: a raw address or a Python buffer kept alive by
/// `_keep` for as long as this lives.
pub struct Mem {
    ptr: usize,
    len: usize,
    writable: bool,
    _keep: Option<PyUntypedBuffer>,
}

impl Mem {
    /// `obj` is an integer address (`size` bytes from it) or an object with the buffer
    /// protocol (a C-contiguous numpy array, bytearray, memoryview, bytes...), of which the
    /// first `size` bytes are used (all of it when `size` is `None`).
    pub fn from_py(obj: &Bound<'_, PyAny>, size: Option<usize>) -> Result<Mem, String> {
        if obj.is_instance_of::<PyInt>() {
            let ptr: usize = obj
                .extract()
                .map_err(|_| "buffer address must be a non-negative integer".to_string())?;
            let len = size.ok_or("a raw buffer address needs a size")?;
            if ptr == 0 {
                return Err("buffer address is null".into());
            }
            return Ok(Mem {
                ptr,
                len,
                writable: true,
                _keep: None,
            });
        }
        let buf = PyUntypedBuffer::get(obj).map_err(|e| format!("not a buffer: {e}"))?;
        if !buf.is_c_contiguous() {
            return Err("buffer must be C-contiguous".into());
        }
        let have = buf.len_bytes();
        let len = size.unwrap_or(have);
        if len > have {
            return Err(format!("size {len} exceeds the buffer's {have} bytes"));
        }
        Ok(Mem {
            ptr: buf.buf_ptr() as usize,
            len,
            writable: !buf.readonly(),
            _keep: Some(buf),
        })
    }

    /// Address of the first byte.
    pub fn addr(&self) -> usize {
        self.ptr
    }

    /// Byte count.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The bytes, for reading. For a raw address, the caller of the Python method vouched
    /// for `len` readable bytes; a buffer object is kept exported while this lives.
    pub fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }

    /// The bytes, for writing; `None` for a read-only Python buffer.
    #[allow(clippy::mut_from_ref)]
    pub fn bytes_mut(&self) -> Option<&mut [u8]> {
        if !self.writable {
            return None;
        }
        if self.len == 0 {
            return Some(&mut []);
        }
        // A raw address or a writable buffer the caller handed over for this call.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr as *mut u8, self.len) })
    }
}

// A Mem is only a range plus a buffer export kept alive; the bytes are the caller's.
unsafe impl Send for Mem {}
unsafe impl Sync for Mem {}

/// Ranges passed to `register_buffer`: start → length.
#[derive(Default)]
pub struct Registry {
    ranges: Mutex<BTreeMap<usize, usize>>,
}

impl Registry {
    /// Records `[ptr, ptr + size)`; refuses a null or empty range and overlaps.
    pub fn register(&self, ptr: usize, size: usize) -> Result<(), String> {
        if ptr == 0 || size == 0 {
            return Err("register_buffer needs a non-null address and a non-zero size".into());
        }
        let end = ptr
            .checked_add(size)
            .ok_or("range overflows the address space")?;
        let mut r = self.ranges.lock();
        if r.get(&ptr) == Some(&size) {
            return Ok(());
        }
        let before = r.range(..end).next_back();
        if before.is_some_and(|(&s, &l)| s + l > ptr) {
            return Err(format!("[{ptr:#x}, {end:#x}) overlaps a registered buffer"));
        }
        r.insert(ptr, size);
        Ok(())
    }

    /// Forgets the range starting at `ptr`.
    pub fn unregister(&self, ptr: usize) -> Result<(), String> {
        self.ranges
            .lock()
            .remove(&ptr)
            .map(|_| ())
            .ok_or_else(|| format!("{ptr:#x} is not a registered buffer"))
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
/// (`memoryview(h)`, `numpy.frombuffer(h, ...)`, `bytes(h)`) without a copy.
#[pyclass(module = "mooncake_rs.store")]
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

    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut pyo3::ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("null view"));
        }
        let (ptr, len) = {
            let b = slf.borrow();
            (b.data.as_ptr(), b.data.len())
        };
        // Read-only: the handle's bytes are the object as read; copy to modify.
        let rc = unsafe {
            pyo3::ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                ptr as *mut std::ffi::c_void,
                len as pyo3::ffi::Py_ssize_t,
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
