//! Zero-copy calls: values read from and written into memory the caller owns, named by an
//! address (`arr.ctypes.data`, `tensor.data_ptr()`) or by any object with the buffer
//! protocol (numpy arrays, `bytearray`, `memoryview`).
//!
//! Single-buffer forms move bytes straight between that memory and the shards. The
//! multi-buffer forms gather into / scatter from the staging pool (`local_buffer_size`).
//! Over TCP no registration is needed; `register_buffer` records ranges so code written
//! for RDMA runs unchanged, and refuses overlaps.

use pyo3::prelude::*;

use crate::buffers::Mem;
use crate::config::ReplicateConfig;
use crate::store::{INVALID, MooncakeDistributedStore};

/// One `Mem` per (address or buffer, size) pair.
fn mems(ptrs: &[Bound<'_, PyAny>], sizes: &[usize]) -> Result<Vec<Mem>, String> {
    if ptrs.len() != sizes.len() {
        return Err(format!("{} buffers but {} sizes", ptrs.len(), sizes.len()));
    }
    ptrs.iter()
        .zip(sizes)
        .map(|(p, &n)| Mem::from_py(p, Some(n)))
        .collect()
}

#[pymethods]
impl MooncakeDistributedStore {
    /// Records `[buffer_ptr, buffer_ptr + size)` for later zero-copy calls. 0 or -600.
    fn register_buffer(&self, buffer_ptr: &Bound<'_, PyAny>, size: usize) -> i32 {
        let r = Mem::from_py(buffer_ptr, Some(size))
            .and_then(|m| self.registry.register(m.addr(), m.len()));
        r.map_or_else(
            |e| self.fail(INVALID, format!("register_buffer: {e}")),
            |()| 0,
        )
    }

    /// Forgets a registered buffer. 0 or -600.
    fn unregister_buffer(&self, buffer_ptr: &Bound<'_, PyAny>) -> i32 {
        let r = Mem::from_py(buffer_ptr, Some(0)).and_then(|m| self.registry.unregister(m.addr()));
        r.map_or_else(
            |e| self.fail(INVALID, format!("unregister_buffer: {e}")),
            |()| 0,
        )
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
        match mems(&buffer_ptrs, &sizes) {
            Ok(m) => self.write_mems(py, &keys, &m, config.as_deref(), false),
            Err(e) => vec![self.fail(INVALID, format!("batch_put_from: {e}")); keys.len()],
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
        match mems(&buffer_ptrs, &sizes) {
            Ok(m) => self.write_mems(py, &keys, &m, config.as_deref(), true),
            Err(e) => vec![self.fail(INVALID, format!("batch_upsert_from: {e}")); keys.len()],
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
    fn batch_get_into(
        &self,
        py: Python<'_>,
        keys: Vec<String>,
        buffer_ptrs: Vec<Bound<'_, PyAny>>,
        sizes: Vec<usize>,
    ) -> Vec<i64> {
        let n = keys.len();
        let fail =
            |e: String| vec![i64::from(self.fail(INVALID, format!("batch_get_into: {e}"))); n];
        let m = match mems(&buffer_ptrs, &sizes) {
            Ok(m) if m.len() == n => m,
            Ok(_) => return fail("keys and buffers differ in length".into()),
            Err(e) => return fail(e),
        };
        let Some(bufs) = m.iter().map(Mem::bytes_mut).collect::<Option<Vec<_>>>() else {
            return fail("a buffer is read-only".into());
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
        let parts = match multi(&all_buffer_ptrs, &all_sizes, n) {
            Ok(p) => p,
            Err(e) => {
                return vec![self.fail(INVALID, format!("batch_put_from_multi_buffers: {e}")); n];
            }
        };
        self.write_gathered(py, &keys, &parts, config.as_deref(), false)
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
        let fail = |e: String| {
            vec![i64::from(self.fail(INVALID, format!("batch_get_into_multi_buffers: {e}"))); n]
        };
        let parts = match multi(&all_buffer_ptrs, &all_sizes, n) {
            Ok(p) => p,
            Err(e) => return fail(e),
        };
        if parts.iter().flatten().any(|m| m.bytes_mut().is_none()) {
            return fail("a buffer is read-only".into());
        }
        let c = match self.client() {
            Ok(c) => c,
            Err(code) => return vec![code.into(); n],
        };
        py.detach(|| {
            let mut staged: Vec<Vec<u8>> = parts
                .iter()
                .map(|ms| c.staging.take(ms.iter().map(Mem::len).sum()))
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
                .zip(&parts)
                .map(|((r, v), ms)| match r {
                    Ok(size) => {
                        scatter(&v[..size], ms);
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
) -> Result<Vec<Vec<Mem>>, String> {
    if ptrs.len() != n || sizes.len() != n {
        return Err(format!(
            "{n} keys, {} buffer lists, {} size lists",
            ptrs.len(),
            sizes.len()
        ));
    }
    ptrs.iter().zip(sizes).map(|(p, s)| mems(p, s)).collect()
}

/// Copies `data` over `bufs` in order.
fn scatter(data: &[u8], bufs: &[Mem]) {
    let mut at = 0;
    for m in bufs {
        if at >= data.len() {
            break;
        }
        let Some(dst) = m.bytes_mut() else { continue };
        let k = dst.len().min(data.len() - at);
        dst[..k].copy_from_slice(&data[at..at + k]);
        at += k;
    }
}
