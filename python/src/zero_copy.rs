//! Zero-copy calls: values read from and written into memory the caller owns, named by an
//! address (`arr.ctypes.data`, `tensor.data_ptr()`) or by any object with the buffer
//! protocol (numpy arrays, `bytearray`, `memoryview`).
//!
//! Single-buffer forms move bytes straight between that memory and the shards. The
//! multi-buffer forms gather into / scatter from the staging pool (`local_buffer_size`).
//! Over TCP no registration is needed; `register_buffer` records ranges so code written
//! for RDMA runs unchanged, and refuses overlaps.
//!
//! Every `Mem` made here lives only for the method that made it, which is what the raw-address
//! contract promises for (docs/python.md): the caller's memory is valid and left alone until
//! the method returns.

use pyo3::prelude::*;

use crate::buffers::{self, Access, Mem};
use crate::config::ReplicateConfig;
use crate::error::BindingError;
use crate::store::MooncakeDistributedStore;

/// The memory one argument names: `size` bytes from an integer address, or the first `size`
/// bytes of an object with the buffer protocol.
fn mem(obj: &Bound<'_, PyAny>, size: usize, access: Access) -> Result<Mem, BindingError> {
    match buffers::address(obj)? {
        // SAFETY: an integer address is Mooncake's raw-address contract (docs/python.md): the
        // Python caller promises `size` readable bytes there — writable too when the method
        // reads an object into them — that nothing else touches until the method returns.
        // The `Mem` does not outlive the method (the callers here drop it before returning).
        // Inside the call, sources only share reads and destinations go through
        // `buffers::dests*`, which refuses overlaps before writing.
        Some(addr) => unsafe { Mem::from_raw(addr, size, access) },
        None => Mem::from_buffer(obj, Some(size), access),
    }
}

/// One `Mem` per (address or buffer, size) pair.
pub(crate) fn mems(
    ptrs: &[Bound<'_, PyAny>],
    sizes: &[usize],
    access: Access,
) -> Result<Vec<Mem>, BindingError> {
    if ptrs.len() != sizes.len() {
        return Err(BindingError::LengthMismatch {
            left_what: "buffers",
            left: ptrs.len(),
            right_what: "sizes",
            right: sizes.len(),
        });
    }
    ptrs.iter()
        .zip(sizes)
        .map(|(p, &n)| mem(p, n, access))
        .collect()
}

/// The range `[start, start + len)` an argument names, for the registry: an integer address
/// is taken as given (registering touches no memory), a buffer object is asked for its own.
fn range(obj: &Bound<'_, PyAny>, size: usize) -> Result<(usize, usize), BindingError> {
    match buffers::address(obj)? {
        Some(addr) => Ok((addr, size)),
        None => Mem::from_buffer(obj, Some(size), Access::Read).map(|m| (m.addr(), m.len())),
    }
}

#[pymethods]
impl MooncakeDistributedStore {
    /// Records `[buffer_ptr, buffer_ptr + size)` for later zero-copy calls. 0 or -600.
    fn register_buffer(&self, buffer_ptr: &Bound<'_, PyAny>, size: usize) -> i32 {
        if let Some(d) = self.dummy() {
            return match range(buffer_ptr, size) {
                Ok((ptr, len)) => self.dummy_register(&d, ptr, len),
                Err(e) => self.refuse("register_buffer", &e),
            };
        }
        let r = range(buffer_ptr, size).and_then(|(ptr, len)| self.registry.register(ptr, len));
        r.map_or_else(|e| self.refuse("register_buffer", &e), |()| 0)
    }

    /// Forgets a registered buffer. 0 or -600.
    fn unregister_buffer(&self, buffer_ptr: &Bound<'_, PyAny>) -> i32 {
        let r = range(buffer_ptr, 0).and_then(|(ptr, _)| self.registry.unregister(ptr));
        r.map_or_else(|e| self.refuse("unregister_buffer", &e), |()| 0)
    }

    #[pyo3(signature = (key, buffer_ptr, size, config=None))]
    fn put_from(
        &self,
        py: Python<'_>,
        key: String,
        buffer_ptr: Bound<'_, PyAny>,
        size: usize,
        config: Option<PyRef<'_, ReplicateConfig>>,
    ) -> i32 {
        self.batch_put_from(py, vec![key], vec![buffer_ptr], vec![size], config)[0]
    }

    #[pyo3(signature = (key, buffer_ptr, size, config=None))]
    fn upsert_from(
        &self,
        py: Python<'_>,
        key: String,
        buffer_ptr: Bound<'_, PyAny>,
        size: usize,
        config: Option<PyRef<'_, ReplicateConfig>>,
    ) -> i32 {
        self.batch_upsert_from(py, vec![key], vec![buffer_ptr], vec![size], config)[0]
    }

    #[pyo3(signature = (keys, buffer_ptrs, sizes, config=None))]
    fn batch_put_from(
        &self,
        py: Python<'_>,
        keys: Vec<String>,
        buffer_ptrs: Vec<Bound<'_, PyAny>>,
        sizes: Vec<usize>,
        config: Option<PyRef<'_, ReplicateConfig>>,
    ) -> Vec<i32> {
        match mems(&buffer_ptrs, &sizes, Access::Read) {
            Ok(m) => self.write_mems(py, &keys, &m, config.as_deref(), false),
            Err(e) => vec![self.refuse("batch_put_from", &e); keys.len()],
        }
    }

    #[pyo3(signature = (keys, buffer_ptrs, sizes, config=None))]
    fn batch_upsert_from(
        &self,
        py: Python<'_>,
        keys: Vec<String>,
        buffer_ptrs: Vec<Bound<'_, PyAny>>,
        sizes: Vec<usize>,
        config: Option<PyRef<'_, ReplicateConfig>>,
    ) -> Vec<i32> {
        match mems(&buffer_ptrs, &sizes, Access::Read) {
            Ok(m) => self.write_mems(py, &keys, &m, config.as_deref(), true),
            Err(e) => vec![self.refuse("batch_upsert_from", &e); keys.len()],
        }
    }

    /// Reads `key` into the buffer; returns the object's size, or a negative code
    /// (-600 when the buffer is smaller than the object; it is then left untouched).
    fn get_into(
        &self,
        py: Python<'_>,
        key: String,
        buffer_ptr: Bound<'_, PyAny>,
        size: usize,
    ) -> i64 {
        self.batch_get_into(py, vec![key], vec![buffer_ptr], vec![size])[0]
    }

    /// `get_into` for several keys: one master round trip, slices pipelined per shard.
    /// Refused with -600 (nothing written) when two buffers share a byte.
    fn batch_get_into(
        &self,
        py: Python<'_>,
        keys: Vec<String>,
        buffer_ptrs: Vec<Bound<'_, PyAny>>,
        sizes: Vec<usize>,
    ) -> Vec<i64> {
        let n = keys.len();
        let fail = |e: BindingError| vec![i64::from(self.refuse("batch_get_into", &e)); n];
        let mut m = match mems(&buffer_ptrs, &sizes, Access::Write) {
            Ok(m) if m.len() == n => m,
            Ok(m) => {
                return fail(BindingError::LengthMismatch {
                    left_what: "keys",
                    left: n,
                    right_what: "buffers",
                    right: m.len(),
                });
            }
            Err(e) => return fail(e),
        };
        if let Some(d) = self.dummy() {
            return self.dummy_get_into(py, &d, &keys, &mut m);
        }
        let bufs = match buffers::dests(&mut m) {
            Ok(b) => b,
            Err(e) => return fail(e),
        };
        let c = match self.client() {
            Ok(c) => c,
            Err(code) => return vec![code.into(); n],
        };
        py.detach(|| {
            let mut items: Vec<(&str, &mut [u8])> =
                keys.iter().map(String::as_str).zip(bufs).collect();
            c.store
                .get_into_batch(&mut items)
                .into_iter()
                .map(|r| r.map_or_else(|e| e.code().code().into(), |n| n as i64))
                .collect()
        })
    }

    /// Writes each key's value as the concatenation of its buffers.
    #[pyo3(signature = (keys, all_buffer_ptrs, all_sizes, config=None))]
    fn batch_put_from_multi_buffers(
        &self,
        py: Python<'_>,
        keys: Vec<String>,
        all_buffer_ptrs: Vec<Vec<Bound<'_, PyAny>>>,
        all_sizes: Vec<Vec<usize>>,
        config: Option<PyRef<'_, ReplicateConfig>>,
    ) -> Vec<i32> {
        let n = keys.len();
        let parts = match multi(&all_buffer_ptrs, &all_sizes, n, Access::Read) {
            Ok(p) => p,
            Err(e) => return vec![self.refuse("batch_put_from_multi_buffers", &e); n],
        };
        self.write_gathered(py, &keys, &parts, config.as_deref(), false)
    }

    /// Stores the `metadata_size` bytes at `metadata_buffer_ptr` followed by the `size`
    /// bytes at `buffer_ptr` as one value. As Mooncake, `size` 0 writes nothing and
    /// returns 0.
    #[pyo3(signature = (key, buffer_ptr, metadata_buffer_ptr, size, metadata_size, config=None))]
    #[allow(clippy::too_many_arguments)]
    fn put_from_with_metadata(
        &self,
        py: Python<'_>,
        key: String,
        buffer_ptr: Bound<'_, PyAny>,
        metadata_buffer_ptr: Bound<'_, PyAny>,
        size: usize,
        metadata_size: usize,
        config: Option<PyRef<'_, ReplicateConfig>>,
    ) -> i32 {
        if size == 0 {
            tracing::warn!("put_from_with_metadata {key}: empty data, nothing written");
            return 0;
        }
        let (ptrs, sizes) = if metadata_size == 0 {
            (vec![buffer_ptr], vec![size])
        } else {
            (
                vec![metadata_buffer_ptr, buffer_ptr],
                vec![metadata_size, size],
            )
        };
        match mems(&ptrs, &sizes, Access::Read) {
            Ok(parts) => self.write_gathered(py, &[key], &[parts], config.as_deref(), false)[0],
            Err(e) => self.refuse("put_from_with_metadata", &e),
        }
    }

    /// `batch_put_from_multi_buffers` that replaces existing values (what Mooncake's tensor
    /// upserts use inside).
    #[pyo3(signature = (keys, all_buffer_ptrs, all_sizes, config=None))]
    fn batch_upsert_from_multi_buffers(
        &self,
        py: Python<'_>,
        keys: Vec<String>,
        all_buffer_ptrs: Vec<Vec<Bound<'_, PyAny>>>,
        all_sizes: Vec<Vec<usize>>,
        config: Option<PyRef<'_, ReplicateConfig>>,
    ) -> Vec<i32> {
        let n = keys.len();
        let parts = match multi(&all_buffer_ptrs, &all_sizes, n, Access::Read) {
            Ok(p) => p,
            Err(e) => return vec![self.refuse("batch_upsert_from_multi_buffers", &e); n],
        };
        self.write_gathered(py, &keys, &parts, config.as_deref(), true)
    }

    /// Reads each key and scatters its bytes over its buffers in order; returns the
    /// object's size per key, or a negative code (-600 when the buffers are too small).
    #[pyo3(signature = (keys, all_buffer_ptrs, all_sizes, prefer_alloc_in_same_node=false))]
    fn batch_get_into_multi_buffers(
        &self,
        py: Python<'_>,
        keys: Vec<String>,
        all_buffer_ptrs: Vec<Vec<Bound<'_, PyAny>>>,
        all_sizes: Vec<Vec<usize>>,
        prefer_alloc_in_same_node: bool,
    ) -> Vec<i64> {
        let _ = prefer_alloc_in_same_node; // placement hint of writes; reads pick any replica
        let n = keys.len();
        let fail =
            |e: BindingError| vec![i64::from(self.refuse("batch_get_into_multi_buffers", &e)); n];
        let mut parts = match multi(&all_buffer_ptrs, &all_sizes, n, Access::Write) {
            Ok(p) => p,
            Err(e) => return fail(e),
        };
        let mut dsts = match buffers::dests_nested(&mut parts) {
            Ok(d) => d,
            Err(e) => return fail(e),
        };
        if let Some(d) = self.dummy() {
            return self.dummy_get_scatter(py, &d, &keys, &mut dsts);
        }
        let c = match self.client() {
            Ok(c) => c,
            Err(code) => return vec![code.into(); n],
        };
        py.detach(|| {
            let mut staged: Vec<Vec<u8>> = dsts
                .iter()
                .map(|ds| c.staging.take(ds.iter().map(|d| d.len()).sum()))
                .collect();
            let mut items: Vec<(&str, &mut [u8])> = keys
                .iter()
                .map(String::as_str)
                .zip(staged.iter_mut().map(Vec::as_mut_slice))
                .collect();
            let res = c.store.get_into_batch(&mut items);
            drop(items);
            let out = res
                .into_iter()
                .zip(&staged)
                .zip(&mut dsts)
                .map(|((r, v), ds)| match r {
                    Ok(size) => {
                        scatter(&v[..size], ds);
                        size as i64
                    }
                    Err(e) => e.code().code().into(),
                })
                .collect();
            staged.into_iter().for_each(|v| c.staging.give(v));
            out
        })
    }
}

/// Per key, its buffers.
fn multi(
    ptrs: &[Vec<Bound<'_, PyAny>>],
    sizes: &[Vec<usize>],
    n: usize,
    access: Access,
) -> Result<Vec<Vec<Mem>>, BindingError> {
    for (right_what, right) in [("buffer lists", ptrs.len()), ("size lists", sizes.len())] {
        if right != n {
            return Err(BindingError::LengthMismatch {
                left_what: "keys",
                left: n,
                right_what,
                right,
            });
        }
    }
    ptrs.iter()
        .zip(sizes)
        .map(|(p, s)| mems(p, s, access))
        .collect()
}

/// Copies `data` over `bufs` in order.
pub(crate) fn scatter(data: &[u8], bufs: &mut [&mut [u8]]) {
    let mut at = 0;
    for dst in bufs {
        if at >= data.len() {
            break;
        }
        let k = dst.len().min(data.len() - at);
        dst[..k].copy_from_slice(&data[at..at + k]);
        at += k;
    }
}
