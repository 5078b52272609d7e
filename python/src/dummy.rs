//! The dummy client in the binding: `setup_dummy` connects this process to the real client
//! of its host (`mooncake_client`), and the store methods become requests to it
//! (`mc_dummy`). Buffers inside the pool `alloc_from_mem_pool` hands out travel as offsets
//! (no copy through the socket); other buffers travel inline. Methods the dummy does not
//! forward answer with a clear error (docs/dummy-client.md lists them).

use std::sync::Arc;

use mc_dummy::DummyError;
use mc_dummy::client::Dummy;
use mc_schema::dummy::{Dst, Got, Src};
use mooncake_rs::ErrorCode;
use pyo3::prelude::*;

use crate::buffers::{self, Mem};
use crate::config::ReplicateConfig;
use crate::error::BindingError;
use crate::store::MooncakeDistributedStore;

/// Where `m`'s bytes travel from: the pool when it holds them, else inline (copied).
fn src(d: &Dummy, m: &Mem) -> Src {
    match d.pool_offset(m.addr(), m.len()) {
        Some(offset) => Src::Pool {
            offset,
            len: m.len() as u64,
        },
        None => Src::Inline(m.bytes().to_vec()),
    }
}

impl MooncakeDistributedStore {
    /// The dummy link, when `setup_dummy` made one.
    pub(crate) fn dummy(&self) -> Option<Arc<Dummy>> {
        self.dummy.read().clone()
    }

    /// Runs `f` on the dummy without the GIL; a failure is logged and becomes its code.
    pub(crate) fn via_dummy<T: Send>(
        &self,
        py: Python<'_>,
        op: &str,
        d: &Dummy,
        f: impl FnOnce(&Dummy) -> Result<T, DummyError> + Send,
    ) -> Result<T, i32> {
        py.detach(|| f(d))
            .map_err(|source| self.refuse(op, &BindingError::Dummy { source }))
    }

    /// Puts through the real client: one code per key.
    pub(crate) fn dummy_write(
        &self,
        py: Python<'_>,
        d: &Dummy,
        keys: &[String],
        values: impl FnOnce() -> Vec<Src> + Send,
        config: Option<&ReplicateConfig>,
        upsert: bool,
    ) -> Vec<i32> {
        let host = d
            .hostname()
            .rsplit_once(':')
            .map_or(d.hostname(), |(h, _)| h);
        let cfg = match config.cloned().unwrap_or_default().to_wire(host) {
            Ok(c) => c,
            Err(e) => return vec![self.refuse("ReplicateConfig", &e); keys.len()],
        };
        let r = self.via_dummy(py, "put", d, |d| {
            let items = keys.iter().cloned().zip(values()).collect();
            d.put(upsert, &cfg, items)
        });
        r.unwrap_or_else(|code| vec![code; keys.len()])
    }

    /// [`Self::dummy_write`] of caller memory: pool buffers as offsets, others inline.
    pub(crate) fn dummy_write_mems(
        &self,
        py: Python<'_>,
        d: &Dummy,
        keys: &[String],
        mems: &[Mem],
        config: Option<&ReplicateConfig>,
        upsert: bool,
    ) -> Vec<i32> {
        let values = || mems.iter().map(|m| src(d, m)).collect();
        self.dummy_write(py, d, keys, values, config, upsert)
    }

    /// Whole objects through the real client; `None` for each key that failed.
    pub(crate) fn dummy_get_bytes(
        &self,
        py: Python<'_>,
        d: &Dummy,
        keys: &[String],
    ) -> Vec<Option<Vec<u8>>> {
        let items = keys
            .iter()
            .map(|k| (k.clone(), Dst::Inline { cap: u64::MAX }))
            .collect();
        match self.via_dummy(py, "get", d, |d| d.get(items)) {
            Ok(got) => got
                .into_iter()
                .map(|g| (g.size_or_code >= 0).then_some(g.data))
                .collect(),
            Err(_) => keys.iter().map(|_| None).collect(),
        }
    }

    /// `batch_get_into` through the real client: pool buffers filled in place by the real
    /// client, others copied from the reply. The object's size per key, or a code.
    pub(crate) fn dummy_get_into(
        &self,
        py: Python<'_>,
        d: &Dummy,
        keys: &[String],
        mems: &mut [Mem],
    ) -> Vec<i64> {
        let n = keys.len();
        let dsts: Vec<Option<u64>> = mems
            .iter()
            .map(|m| d.pool_offset(m.addr(), m.len()))
            .collect();
        let items = keys
            .iter()
            .zip(mems.iter().zip(&dsts))
            .map(|(k, (m, off))| {
                let len = m.len() as u64;
                let dst = off.map_or(Dst::Inline { cap: len }, |offset| Dst::Pool { offset, len });
                (k.clone(), dst)
            })
            .collect();
        let mut bufs = match buffers::dests(mems) {
            Ok(b) => b,
            Err(e) => return vec![self.refuse("batch_get_into", &e).into(); n],
        };
        let got = match self.via_dummy(py, "batch_get_into", d, |d| d.get(items)) {
            Ok(g) => g,
            Err(code) => return vec![code.into(); n],
        };
        py.detach(|| {
            got.into_iter()
                .zip(bufs.iter_mut())
                .map(
                    |(Got { size_or_code, data }, buf)| match buf.get_mut(..data.len()) {
                        Some(dst) if size_or_code >= 0 => {
                            dst.copy_from_slice(&data);
                            size_or_code
                        }
                        Some(_) => size_or_code,
                        None => ErrorCode::InvalidParams.code().into(),
                    },
                )
                .collect()
        })
    }

    /// `batch_get_into_multi_buffers` through the real client: each object comes back
    /// inline and is scattered over its buffers in order. Size per key, or a code.
    pub(crate) fn dummy_get_scatter(
        &self,
        py: Python<'_>,
        d: &Dummy,
        keys: &[String],
        dsts: &mut [Vec<&mut [u8]>],
    ) -> Vec<i64> {
        let items = keys
            .iter()
            .zip(dsts.iter())
            .map(|(k, ds)| {
                let cap = ds.iter().map(|b| b.len() as u64).sum();
                (k.clone(), Dst::Inline { cap })
            })
            .collect();
        let got = match self.via_dummy(py, "batch_get_into_multi_buffers", d, |d| d.get(items)) {
            Ok(g) => g,
            Err(code) => return vec![code.into(); keys.len()],
        };
        py.detach(|| {
            got.into_iter()
                .zip(dsts.iter_mut())
                .map(|(g, ds)| {
                    if g.size_or_code >= 0 {
                        crate::zero_copy::scatter(&g.data, ds);
                    }
                    g.size_or_code
                })
                .collect()
        })
    }

    /// `register_buffer` on a dummy: the range must lie inside its pool (the real client
    /// already maps all of it).
    pub(crate) fn dummy_register(&self, d: &Dummy, ptr: usize, size: usize) -> i32 {
        if size == 0 || d.pool_offset(ptr, size).is_none() {
            let e = BindingError::OutsidePool {
                addr: ptr,
                size_bytes: size,
            };
            return self.refuse("register_buffer", &e);
        }
        match self.registry.register(ptr, size) {
            Ok(()) => 0,
            Err(e) => self.refuse("register_buffer", &e),
        }
    }
}

#[pymethods]
impl MooncakeDistributedStore {
    /// Connects to the real client (`mooncake_client --port=<port>`) of this host through
    /// its Unix socket `@mooncake_client_<port>.sock`, and shares a new pool of
    /// `mem_pool_size` bytes with it. 0, or -1 (Mooncake's code) with the reason logged.
    /// `local_buffer_size` caps the staging memory of multi-buffer calls.
    fn setup_dummy(
        &self,
        py: Python<'_>,
        mem_pool_size: usize,
        local_buffer_size: usize,
        server_address: &str,
    ) -> i32 {
        let _ = local_buffer_size;
        if self.dummy.read().is_some() || self.client.read().is_some() {
            return self.refuse("setup_dummy", &BindingError::AlreadySetUp);
        }
        match py.detach(|| Dummy::connect(server_address, mem_pool_size)) {
            Ok(d) => {
                let mut slot = self.dummy.write();
                if slot.is_some() {
                    return self.refuse("setup_dummy", &BindingError::AlreadySetUp);
                }
                *slot = Some(Arc::new(d));
                self.last_error.lock().clear();
                0
            }
            Err(source) => {
                let msg = format!("setup_dummy({server_address}) failed: {source}");
                tracing::error!("{msg}");
                *self.last_error.lock() = msg;
                -1
            }
        }
    }

    /// `size` bytes of the pool shared with the real client (buffers there move without a
    /// copy); their address, or 0 when the pool has no room or this is not a dummy.
    fn alloc_from_mem_pool(&self, size: usize) -> u64 {
        let got = self.dummy().and_then(|d| d.pool()?.alloc(size));
        match got {
            Some(addr) => addr as u64,
            None => {
                self.fail(
                    -1,
                    format!(
                        "alloc_from_mem_pool({size}): no room in the pool \
                         (or not a dummy client: call setup_dummy first)"
                    ),
                );
                0
            }
        }
    }
}
