//! Mooncake's `EngramStore` and `EngramStoreConfig`: Engram embedding tables of one layer
//! kept in the store, one `float32` table `[N_h, D]` per head, and lookups of precomputed
//! row ids `[B, L, H]` returning `[B, L, H, D]` NumPy arrays. The storage logic is the
//! client's ([`mooncake_rs::EngramLayer`]); this is its Python face, with Mooncake's
//! arguments, return shapes and exceptions (ValueError for a bad config, RuntimeError for
//! a refused call).

use std::sync::Arc;

use mooncake_rs::{EngramLayer, ErrorCode};
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::buffers::{self, Access, Mem};
use crate::capsule;
use crate::store::{Client, MooncakeDistributedStore};

fn runtime(msg: impl Into<String>) -> PyErr {
    PyRuntimeError::new_err(msg.into())
}

/// Mooncake's `EngramStoreConfig`: the physical layout of one layer.
#[pyclass(module = "mooncake_rs.store")]
#[derive(Clone)]
pub struct EngramStoreConfig {
    /// Rows of each head's table, `[N_0, ..., N_{H-1}]`.
    #[pyo3(get, set)]
    pub table_vocab_sizes: Vec<i64>,
    /// Floats per row, `D`.
    #[pyo3(get, set)]
    pub embedding_dim: i64,
}

#[pymethods]
impl EngramStoreConfig {
    /// Mooncake's defaults: one head of 1024 rows, 64 floats wide.
    #[new]
    fn new() -> Self {
        EngramStoreConfig {
            table_vocab_sizes: vec![1024],
            embedding_dim: 64,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "EngramStoreConfig(table_vocab_sizes={:?}, embedding_dim={})",
            self.table_vocab_sizes, self.embedding_dim
        )
    }
}

/// Mooncake's `EngramStore`: one layer's tables, `engram:l{layer_id}:h{head}`.
#[pyclass(module = "mooncake_rs.store", frozen)]
pub struct EngramStore {
    layer: EngramLayer,
    /// `None` for a metadata-only object (`store=None`).
    store: Option<Py<MooncakeDistributedStore>>,
}

impl EngramStore {
    /// The set-up client, or RuntimeError naming the call that needed it.
    fn client(&self, py: Python<'_>, what: &str) -> PyResult<Arc<Client>> {
        let store = self.store.as_ref().ok_or_else(|| {
            runtime(format!(
                "EngramStore {what} failed: it was made without a store (store=None)"
            ))
        })?;
        store.bind(py).get().client().map_err(|code| {
            runtime(format!(
                "EngramStore {what} failed: store not set up ({code})"
            ))
        })
    }

    /// `row_ids` (a NumPy array or nested lists of logical shape `[B, L, H]`) flattened,
    /// with `B` and `L`.
    fn row_ids(&self, row_ids: &Bound<'_, PyAny>) -> PyResult<(Vec<i64>, usize, usize)> {
        let py = row_ids.py();
        let heads = self.layer.num_heads();
        let np = py.import("numpy")?;
        if row_ids.is_instance(&np.getattr("ndarray")?)? {
            let arr = np.call_method1("ascontiguousarray", (row_ids, np.getattr("int64")?))?;
            let shape: Vec<usize> = arr.getattr("shape")?.extract()?;
            if shape.len() != 3 {
                return Err(runtime(format!(
                    "row_ids array must have shape [B, L, H], got {shape:?}"
                )));
            }
            if shape[2] != heads {
                return Err(runtime(format!(
                    "row_ids last dimension must match num_heads ({heads}), got {}",
                    shape[2]
                )));
            }
            let ids = PyBuffer::<i64>::get(&arr)?.to_vec(py)?;
            return Ok((ids, shape[0], shape[1]));
        }
        let nested: Vec<Vec<Vec<i64>>> = row_ids.extract()?;
        let tokens = match nested.first() {
            Some(t) if !t.is_empty() => t.len(),
            _ => return Err(runtime("row_ids must not be empty")),
        };
        let ragged = nested
            .iter()
            .any(|b| b.len() != tokens || b.iter().any(|t| t.len() != heads));
        if ragged {
            return Err(runtime(format!(
                "EngramStore lookup failed: row_ids must be [B, L, H] with the same L in every \
                 batch and H == num_heads ({heads})"
            )));
        }
        let batches = nested.len();
        let ids = nested.into_iter().flatten().flatten().collect();
        Ok((ids, batches, tokens))
    }

    /// `embedding_buffers[h]` as a C-contiguous `float32` array of shape `[N_h, D]`.
    fn table<'py>(&self, h: usize, buf: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let np = buf.py().import("numpy")?;
        if !buf.is_instance(&np.getattr("ndarray")?)? {
            return Err(runtime("embedding_buffers must be NumPy arrays"));
        }
        let arr = np.call_method1("ascontiguousarray", (buf, np.getattr("float32")?))?;
        let shape: Vec<usize> = arr.getattr("shape")?.extract()?;
        if shape.len() != 2 {
            return Err(runtime(format!(
                "each embedding buffer must be 2D [N_h, D], buffer {h} has shape {shape:?}"
            )));
        }
        let want = [
            self.layer.table_vocab_sizes()[h] as usize,
            self.layer.embedding_dim(),
        ];
        if shape != want {
            return Err(runtime(format!(
                "embedding buffer {h} has shape {shape:?}, get_table_vocab_sizes()/get_embedding_dim() \
                 say {want:?}"
            )));
        }
        Ok(arr)
    }
}

#[pymethods]
impl EngramStore {
    /// Layer `layer_id` laid out as `config`, over `store` (a `MooncakeDistributedStore`,
    /// a wrapper with `_get_pyclient_capsule()`, or `None` for metadata only).
    #[new]
    #[pyo3(signature = (layer_id, config, store=None))]
    fn new(
        layer_id: i64,
        config: PyRef<'_, EngramStoreConfig>,
        store: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let store = match store {
            Some(s) => capsule::resolve(s, "EngramStore")?.map(Bound::unbind),
            None => None,
        };
        let layer = EngramLayer::new(
            layer_id,
            config.table_vocab_sizes.clone(),
            config.embedding_dim,
        )
        .map_err(|e| PyValueError::new_err(format!("EngramStoreConfig: {}", e.message())))?;
        Ok(EngramStore { layer, store })
    }

    fn get_table_vocab_sizes(&self) -> Vec<i64> {
        self.layer.table_vocab_sizes().to_vec()
    }

    fn get_store_keys(&self) -> Vec<String> {
        self.layer.keys().to_vec()
    }

    fn get_num_heads(&self) -> usize {
        self.layer.num_heads()
    }

    fn get_embedding_dim(&self) -> usize {
        self.layer.embedding_dim()
    }

    /// Removes this layer's tables; returns how many existed (missing ones are skipped).
    /// RuntimeError with the code of the first failure.
    #[pyo3(signature = (force=false))]
    fn remove_from_store(&self, py: Python<'_>, force: bool) -> PyResult<usize> {
        let failed = |rc: i32| runtime(format!("remove_from_store failed, rc={rc}"));
        let Some(store) = &self.store else {
            return Err(failed(ErrorCode::InvalidParams.code()));
        };
        let c = store.bind(py).get().client().map_err(failed)?;
        py.detach(|| self.layer.remove(&c.store, force))
            .map_err(|e| failed(e.code().code()))
    }

    /// The rows `row_ids` (`[B, L, H]`, NumPy int array or nested lists) names, as a
    /// `float32` array `[B, L, H, D]`.
    #[pyo3(signature = (row_ids))]
    fn lookup<'py>(&self, row_ids: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = row_ids.py();
        let (ids, batches, tokens) = self.row_ids(row_ids)?;
        let shape = (
            batches,
            tokens,
            self.layer.num_heads(),
            self.layer.embedding_dim(),
        );
        let np = py.import("numpy")?;
        let out = np.call_method1("empty", (shape, np.getattr("float32")?))?;
        let c = self.client(py, "lookup")?;
        let bad = |e: crate::error::BindingError| runtime(format!("EngramStore lookup: {e}"));
        let mut mems = [Mem::from_buffer(&out, None, Access::Write).map_err(bad)?];
        let mut dst = buffers::dests(&mut mems).map_err(bad)?;
        let dst: &mut [u8] = dst.pop().expect("one destination");
        py.detach(|| self.layer.lookup(&c.store, &ids, dst))
            .map_err(|e| runtime(format!("EngramStore lookup failed: {e}")))?;
        Ok(out)
    }

    /// Writes one `float32` table `[N_h, D]` per head (other float dtypes are converted).
    /// Create only: fails while the layer's tables exist (remove them first).
    #[pyo3(signature = (embedding_buffers))]
    fn populate(&self, embedding_buffers: &Bound<'_, PyList>) -> PyResult<()> {
        let py = embedding_buffers.py();
        let heads = self.layer.num_heads();
        if embedding_buffers.len() != heads {
            return Err(runtime(format!(
                "embedding_buffers size must match num_heads ({heads}), got {}",
                embedding_buffers.len()
            )));
        }
        let arrays = embedding_buffers
            .iter()
            .enumerate()
            .map(|(h, b)| self.table(h, &b))
            .collect::<PyResult<Vec<_>>>()?;
        let c = self.client(py, "populate")?;
        let mems = arrays
            .iter()
            .map(|a| Mem::from_buffer(a, None, Access::Read))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| runtime(format!("EngramStore populate: {e}")))?;
        py.detach(|| {
            let tables: Vec<&[u8]> = mems.iter().map(Mem::bytes).collect();
            self.layer.populate(&c.store, &tables)
        })
        .map_err(|e| runtime(format!("EngramStore populate failed: {e}")))
    }
}
