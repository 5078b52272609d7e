//! `MooncakeDistributedStore`: set-up, the copy-based calls, and the helpers every method
//! shares. Zero-copy calls are in `zero_copy.rs`.
//!
//! Conventions, as upstream: methods return `0` or a negative Mooncake error code (sizes
//! and counts where upstream returns them); `get` of a missing key returns `b''`; `put` of
//! an existing key returns `0` and keeps the old value. The GIL is released for every
//! network call and every copy of object bytes.

use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::Arc;

use mooncake_rs::{Error, ErrorCode, ReplicateConfig as WireConfig, Store, StoreConfig};
use parking_lot::{Mutex, RwLock};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyTuple};

use crate::buffers::{Access, BufferHandle, Mem, Registry, Staging};
use crate::config::ReplicateConfig;
use crate::embedded::Embedded;
use crate::error::BindingError;
use crate::replica::ReplicaDescriptor;
use crate::setup::{self, SetupArgs};
use mc_dummy::client::Dummy;
use mc_schema::dummy::Src;

/// A set-up store: the client, and the segment this process hosts in embedded mode.
pub struct Client {
    pub store: Store,
    pub host: String,
    /// What `get_hostname()` answers: `local_hostname` as given when it named a port,
    /// else the hosted segment's name (`host:data_port`), else the host.
    pub hostname: String,
    pub staging: Staging,
    /// Put and get sessions (`sessions.rs`).
    pub sessions: crate::sessions::Sessions,
    /// The local buffer `BufferPool`s lend from (`pool/`), mapped on first use.
    pub local_buffer: crate::pool::LocalBufferSlot,
    // Dropped after `store`: the node outlives the client that may still read from it.
    _node: Option<Embedded>,
}

impl Client {
    /// The store node this process hosts (embedded mode), if any.
    pub fn node(&self) -> Option<&mc_agent::node::NodeHandle> {
        self._node.as_ref().and_then(Embedded::handle)
    }

    fn connect(args: &SetupArgs) -> Result<Client, BindingError> {
        let node = if args.global_segment_size > 0 {
            Some(Embedded::start(args)?)
        } else {
            None
        };
        let mut cfg = StoreConfig::new(args.master_server_addr.clone());
        cfg.local_hostname = args.local_hostname.clone();
        let store = Store::connect(cfg).map_err(|source| BindingError::Master {
            addr: args.master_server_addr.clone(),
            source,
        })?;
        let hostname = match (&args.local_hostname_port, &node) {
            (Some(p), _) => format!("{}:{p}", args.local_hostname),
            (None, Some(n)) => n
                .segment_name()
                .unwrap_or_else(|| args.local_hostname.clone()),
            (None, None) => args.local_hostname.clone(),
        };
        Ok(Client {
            store,
            hostname,
            host: args.local_hostname.clone(),
            staging: Staging::new(args.local_buffer_size as usize),
            sessions: Default::default(),
            local_buffer: crate::pool::LocalBufferSlot::new(args.local_buffer_size as usize),
            _node: node,
        })
    }
}

/// The store, as Mooncake's Python API presents it. Safe to share between threads.
/// `mooncake_rs.store.MooncakeDistributedStore` subclasses it to add the tensor methods.
#[pyclass(module = "mooncake_rs.store", frozen, subclass)]
pub struct MooncakeDistributedStore {
    pub(crate) client: RwLock<Option<Arc<Client>>>,
    /// The link to the real client, after `setup_dummy` (`dummy.rs`); `client` is then
    /// `None`.
    pub(crate) dummy: RwLock<Option<Arc<mc_dummy::client::Dummy>>>,
    pub(crate) registry: Registry,
    pub(crate) last_error: Mutex<String>,
    /// Why the last `setup()` failed, until one succeeds: later calls say so.
    setup_failure: Mutex<Option<String>>,
}

impl Drop for MooncakeDistributedStore {
    /// A store garbage-collected without `close()` closes now; stopping a hosted node waits
    /// for the master, so other Python threads run meanwhile (when the interpreter is not
    /// shutting down).
    fn drop(&mut self) {
        let mut c = self.client.get_mut().take();
        if c.is_some() {
            let _ = Python::try_attach(|py| py.detach(|| drop(c.take())));
        }
    }
}

/// The code of a write's outcome: an existing key counts as success (its value is kept).
pub fn write_code(r: &Result<(), Error>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) if e.code() == ErrorCode::ObjectAlreadyExists => 0,
        Err(e) => e.code().code(),
    }
}

impl MooncakeDistributedStore {
    /// Records and logs why a call failed; returns `code`.
    pub(crate) fn fail(&self, code: i32, msg: impl Into<String>) -> i32 {
        let msg = msg.into();
        tracing::warn!("{msg}");
        *self.last_error.lock() = msg;
        code
    }

    /// A failed `setup()`: logged at error level (callers such as LMCache ignore the code),
    /// remembered so later calls say that setup failed and why; returns the code.
    fn setup_failed(&self, e: &BindingError) -> i32 {
        let msg = format!("setup() failed ({}): {e}", e.code());
        tracing::error!("{msg}");
        *self.setup_failure.lock() = Some(msg.clone());
        *self.last_error.lock() = msg;
        e.code()
    }

    /// Records and logs why `op` was refused; returns the refusal's code.
    pub(crate) fn refuse(&self, op: &str, e: &BindingError) -> i32 {
        self.fail(e.code(), format!("{op}: {e}"))
    }

    /// The set-up client, or INVALID after logging that `setup()` is missing.
    pub(crate) fn client(&self) -> Result<Arc<Client>, i32> {
        let c = self.client.read().clone();
        let not_set_up = || {
            let e = match self.setup_failure.lock().clone() {
                _ if self.dummy.read().is_some() => BindingError::DummyUnsupported,
                Some(reason) => BindingError::SetupFailed { reason },
                None => BindingError::NotSetUp,
            };
            self.fail(e.code(), e.to_string())
        };
        c.ok_or_else(not_set_up)
    }

    /// The set-up client and the wire form of `config` (default when `None`).
    pub(crate) fn client_and_config(
        &self,
        config: Option<&ReplicateConfig>,
    ) -> Result<(Arc<Client>, WireConfig), i32> {
        let c = self.client()?;
        let cfg = config
            .cloned()
            .unwrap_or_default()
            .to_wire(&c.host)
            .map_err(|e| self.refuse("ReplicateConfig", &e))?;
        Ok((c, cfg))
    }

    /// Writes Python values (anything with the buffer protocol) under `keys`; a value that
    /// is not a buffer raises TypeError, as upstream.
    fn write_objects<'py>(
        &self,
        py: Python<'py>,
        keys: &[String],
        values: impl IntoIterator<Item = Bound<'py, PyAny>>,
        config: Option<&ReplicateConfig>,
        upsert: bool,
    ) -> PyResult<Vec<i32>> {
        let mems = values
            .into_iter()
            .map(|v| value(&v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PyTypeError::new_err(e.to_string()))?;
        Ok(self.write_mems(py, keys, &mems, config, upsert))
    }

    /// Writes `mems[i]` under `keys[i]`; one code per key.
    pub(crate) fn write_mems(
        &self,
        py: Python<'_>,
        keys: &[String],
        mems: &[Mem],
        config: Option<&ReplicateConfig>,
        upsert: bool,
    ) -> Vec<i32> {
        if keys.len() != mems.len() {
            let e = BindingError::LengthMismatch {
                left_what: "keys",
                left: keys.len(),
                right_what: "values",
                right: mems.len(),
            };
            return vec![self.refuse("put", &e); keys.len()];
        }
        if let Some(d) = self.dummy() {
            return self.dummy_write_mems(py, &d, keys, mems, config, upsert);
        }
        let (c, cfg) = match self.client_and_config(config) {
            Ok(v) => v,
            Err(code) => return vec![code; keys.len()],
        };
        py.detach(|| {
            let values: Vec<&[u8]> = mems.iter().map(Mem::bytes).collect();
            write_batch(&c, keys, &values, &cfg, upsert)
        })
    }

    /// Writes under `keys[i]` the concatenation of `parts[i]`, gathered in staging memory;
    /// one code per key.
    pub(crate) fn write_gathered(
        &self,
        py: Python<'_>,
        keys: &[String],
        parts: &[Vec<Mem>],
        config: Option<&ReplicateConfig>,
        upsert: bool,
    ) -> Vec<i32> {
        if let Some(d) = self.dummy() {
            let values = || {
                let gather = |ms: &Vec<Mem>| -> Vec<u8> {
                    ms.iter().flat_map(Mem::bytes).copied().collect()
                };
                parts.iter().map(|ms| Src::Inline(gather(ms))).collect()
            };
            return self.dummy_write(py, &d, keys, values, config, upsert);
        }
        let (c, cfg) = match self.client_and_config(config) {
            Ok(v) => v,
            Err(code) => return vec![code; keys.len()],
        };
        py.detach(|| {
            let gathered: Vec<Vec<u8>> = parts.iter().map(|ms| c.staging.gather(ms)).collect();
            let values: Vec<&[u8]> = gathered.iter().map(Vec::as_slice).collect();
            let res = write_batch(&c, keys, &values, &cfg, upsert);
            gathered.into_iter().for_each(|v| c.staging.give(v));
            res
        })
    }

    /// `put_parts` / `upsert_parts`: the parts concatenated as one value.
    fn write_parts(
        &self,
        py: Python<'_>,
        key: &str,
        parts: &Bound<'_, PyTuple>,
        config: Option<&ReplicateConfig>,
        upsert: bool,
    ) -> PyResult<i32> {
        let mems = parts
            .iter()
            .map(|p| value(&p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PyTypeError::new_err(format!("parts must be bytes-like: {e}")))?;
        Ok(self.write_gathered(py, &[key.to_string()], &[mems], config, upsert)[0])
    }
}

/// The code of a whole batch: 0, or the first key's failure (Mooncake stops at it).
pub fn first_failure(codes: &[i32]) -> i32 {
    codes.iter().copied().find(|&c| c != 0).unwrap_or(0)
}

/// One put (or upsert) batch; one code per key. Runs without the GIL.
fn write_batch(
    c: &Client,
    keys: &[String],
    values: &[&[u8]],
    cfg: &WireConfig,
    upsert: bool,
) -> Vec<i32> {
    let items: Vec<(&str, &[u8])> = keys
        .iter()
        .map(String::as_str)
        .zip(values.iter().copied())
        .collect();
    let res = if upsert {
        c.store.upsert_batch(&items, cfg)
    } else {
        c.store.put_batch(&items, cfg)
    };
    res.iter().map(write_code).collect()
}

/// A value to put: an object with the buffer protocol, read whole. An integer is refused
/// with its own reason: it would be an address without a size.
fn value(obj: &Bound<'_, PyAny>) -> Result<Mem, BindingError> {
    if obj.is_instance_of::<PyInt>() {
        return Err(BindingError::AddressNeedsSize);
    }
    Mem::from_buffer(obj, None, Access::Read)
}

/// A new `bytes` object of `size` bytes and a pointer to its contents, which are not yet
/// initialised. Nobody else holds a reference to the object.
fn uninit_bytes(py: Python<'_>, size: usize) -> Result<(Py<PyBytes>, NonNull<u8>), Error> {
    if size == 0 {
        // CPython hands out one shared empty `bytes`; it gets no pointer, so it is never written.
        return Ok((PyBytes::new(py, b"").unbind(), NonNull::dangling()));
    }
    let len = pyo3::ffi::Py_ssize_t::try_from(size)
        .map_err(|_| Error::new(ErrorCode::InvalidParams, "object too large"))?;
    // SAFETY: the GIL is held (`py`). A null source asks CPython for `len` bytes left
    // uninitialised, the documented way to build a `bytes` in place; for `len` > 0 the result
    // is a new object (not a cached one) owned by this reference, or null with an exception.
    let raw = unsafe { pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), len) };
    // SAFETY: `raw` is a new reference that this takes over, or null (then the exception
    // is fetched and returned).
    let obj = unsafe { Bound::from_owned_ptr_or_err(py, raw) }
        .map_err(|_| Error::new(ErrorCode::InternalError, "out of memory"))?;
    // SAFETY: `obj` is a live `bytes` object and the GIL is held; the returned pointer, to
    // its `len` bytes (plus a NUL), carries write permission and stays valid while the
    // object lives.
    let data = unsafe { pyo3::ffi::PyBytes_AsString(obj.as_ptr()) };
    let data = NonNull::new(data.cast::<u8>())
        .ok_or_else(|| Error::new(ErrorCode::InternalError, "bytes object without contents"))?;
    let obj = obj.cast_into::<PyBytes>().map_err(|_| {
        Error::new(
            ErrorCode::InternalError,
            "PyBytes_FromStringAndSize made a non-bytes",
        )
    })?;
    Ok((obj.unbind(), data))
}

/// The `bytes` objects made by one `get_batch`, filled without the GIL before any Python
/// code can see them. An arena: each [`FreshBytes::alloc`] makes a new object and lends its
/// contents for as long as `self` is borrowed; the objects are only let go by
/// [`FreshBytes::into_objects`], which takes `self`, so no lent slice outlives its object.
#[derive(Default)]
struct FreshBytes {
    made: Mutex<Vec<(usize, Py<PyBytes>)>>,
}

impl FreshBytes {
    /// A new `bytes` object of `size` bytes for key `k`, and its (uninitialised) contents to
    /// fill. The object is handed to Python only when its key's read succeeded, which means
    /// every byte was received (`Store::get_batch_with_uninit`).
    #[expect(
        clippy::mut_from_ref,
        reason = "an arena: each call lends the contents of a new object, never the same bytes twice"
    )]
    fn alloc(&self, k: usize, size: usize) -> Result<&mut [MaybeUninit<u8>], Error> {
        let (obj, data) = Python::attach(|py| uninit_bytes(py, size))?;
        self.made.lock().push((k, obj));
        // SAFETY: `data` points at the `size` bytes of the object just made (dangling for
        // size 0, when nothing is written), valid for writes; `MaybeUninit` asks nothing of
        // their contents. The object stays alive, held in `made`, until `into_objects` takes
        // `self`, which ends the borrow of `self` that this slice's lifetime is tied to.
        // Nothing else can reach the bytes: the object has no other reference, and every
        // call makes a new object, so lent slices never overlap.
        Ok(unsafe { std::slice::from_raw_parts_mut(data.as_ptr().cast(), size) })
    }

    /// The objects made, each with the index of its key.
    fn into_objects(self) -> Vec<(usize, Py<PyBytes>)> {
        self.made.into_inner()
    }
}

impl MooncakeDistributedStore {
    /// Replica descriptors per key; `None` for a key that failed.
    fn replica_descs(
        &self,
        py: Python<'_>,
        keys: Vec<String>,
    ) -> Vec<Option<Vec<ReplicaDescriptor>>> {
        let Ok(c) = self.client() else {
            return keys.iter().map(|_| None).collect();
        };
        let res = py.detach(|| {
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            c.store.replicas_batch(&refs)
        });
        res.into_iter()
            .map(|r| {
                r.ok()
                    .map(|rs| rs.iter().filter_map(ReplicaDescriptor::from_wire).collect())
            })
            .collect()
    }
}

/// Reads `keys` straight into new `bytes` objects (no intermediate copy); `None` for
/// each key that is missing or unreadable.
fn get_bytes(py: Python<'_>, c: &Client, keys: &[String]) -> Vec<Option<Py<PyBytes>>> {
    let fresh = FreshBytes::default();
    let res = py.detach(|| {
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        c.store
            .get_batch_with_uninit(&refs, |k, size| fresh.alloc(k, size))
    });
    let mut out: Vec<Option<Py<PyBytes>>> = keys.iter().map(|_| None).collect();
    for (k, obj) in fresh.into_objects() {
        out[k] = Some(obj);
    }
    res.into_iter()
        .zip(out)
        .zip(keys)
        .map(|((r, obj), key)| match r {
            Ok(_) => obj,
            Err(e) => {
                tracing::debug!("get {key}: {e}");
                None
            }
        })
        .collect()
}

#[pymethods]
impl MooncakeDistributedStore {
    #[new]
    fn new() -> Self {
        MooncakeDistributedStore {
            client: RwLock::new(None),
            dummy: RwLock::new(None),
            registry: Registry::default(),
            last_error: Mutex::new(String::new()),
            setup_failure: Mutex::new(None),
        }
    }

    /// Connects to the master (and, with `global_segment_size > 0`, hosts a segment in this
    /// process). Returns 0, or a negative code with the reason logged; a failed setup
    /// leaves the object ready for another `setup()`.
    #[pyo3(signature = (local_hostname=None, metadata_server=None, global_segment_size=None,
        local_buffer_size=None, protocol=None, rdma_devices=None, master_server_addr=None,
        **kwargs))]
    #[allow(clippy::too_many_arguments)]
    fn setup(
        &self,
        py: Python<'_>,
        local_hostname: Option<Bound<'_, PyAny>>,
        metadata_server: Option<Bound<'_, PyAny>>,
        global_segment_size: Option<Bound<'_, PyAny>>,
        local_buffer_size: Option<Bound<'_, PyAny>>,
        protocol: Option<Bound<'_, PyAny>>,
        rdma_devices: Option<Bound<'_, PyAny>>,
        master_server_addr: Option<Bound<'_, PyAny>>,
        kwargs: Option<Bound<'_, PyDict>>,
    ) -> i32 {
        let positional = [
            local_hostname,
            metadata_server,
            global_segment_size,
            local_buffer_size,
            protocol,
            rdma_devices,
            master_server_addr,
        ];
        if self.client.read().is_some() || self.dummy.read().is_some() {
            return self.refuse("setup", &BindingError::AlreadySetUp);
        }
        let args = match setup::collect(&positional, kwargs.as_ref()).and_then(|m| setup::parse(&m))
        {
            Ok(a) => a,
            Err(e) => return self.setup_failed(&e),
        };
        match py.detach(|| Client::connect(&args)) {
            Ok(c) => {
                let mut slot = self.client.write();
                if slot.is_some() {
                    return self.refuse("setup", &BindingError::AlreadySetUp);
                }
                *slot = Some(Arc::new(c));
                *self.setup_failure.lock() = None;
                self.last_error.lock().clear();
                0
            }
            Err(e) => self.setup_failed(&e),
        }
    }

    /// Disconnects (and stops the hosted segment, unmounting it first). Returns 0.
    /// Disconnects; put sessions still open are revoked first, so their space is freed now
    /// rather than at the master's zombie-put timeout.
    fn close(&self, py: Python<'_>) -> i32 {
        let d = self.dummy.write().take();
        py.detach(move || drop(d));
        let c = self.client.write().take();
        if let Some(b) = c.as_ref().and_then(|c| c.local_buffer.get()) {
            // Leases still out keep the memory; the range is no longer the store's.
            let _ = self.registry.unregister(b.base());
        }
        // Other threads may still hold the client; the last one to finish drops it.
        py.detach(move || {
            if let Some(c) = &c {
                c.sessions.revoke_all(&c.store);
            }
            drop(c)
        });
        0
    }

    /// 0 healthy, 1 not set up (or closed), 2 master unreachable.
    fn health_check(&self, py: Python<'_>) -> i32 {
        if let Some(d) = self.dummy() {
            return self
                .via_dummy(py, "health_check", &d, Dummy::ping)
                .unwrap_or(2);
        }
        let Some(c) = self.client.read().clone() else {
            return 1;
        };
        match py.detach(|| c.store.ping()) {
            Ok(()) => 0,
            Err(_) => 2,
        }
    }

    /// This client's `host:port`: `local_hostname` as given when it named a port, else
    /// the hosted segment's name (what `preferred_segment` takes), else the host of a pure
    /// client. "" before `setup()`.
    fn get_hostname(&self) -> String {
        if let Some(d) = self.dummy() {
            return d.hostname().to_string();
        }
        self.client
            .read()
            .as_ref()
            .map(|c| c.hostname.clone())
            .unwrap_or_default()
    }

    /// The reason of the last failure this object logged ("" when none).
    fn last_error(&self) -> String {
        self.last_error.lock().clone()
    }

    #[pyo3(signature = (key, value, config=None))]
    fn put(
        &self,
        py: Python<'_>,
        key: &str,
        value: &Bound<'_, PyAny>,
        config: Option<PyRef<'_, ReplicateConfig>>,
    ) -> PyResult<i32> {
        let keys = [key.to_string()];
        Ok(self.write_objects(py, &keys, [value.clone()], config.as_deref(), false)?[0])
    }

    #[pyo3(signature = (key, *parts, config=None))]
    fn put_parts(
        &self,
        py: Python<'_>,
        key: &str,
        parts: &Bound<'_, PyTuple>,
        config: Option<PyRef<'_, ReplicateConfig>>,
    ) -> PyResult<i32> {
        self.write_parts(py, key, parts, config.as_deref(), false)
    }

    /// Mooncake's shape: one code for the batch, 0 when every key was written (an
    /// existing key counts), else the first failure's.
    #[pyo3(signature = (keys, values, config=None))]
    fn put_batch(
        &self,
        py: Python<'_>,
        keys: Vec<String>,
        values: Vec<Bound<'_, PyAny>>,
        config: Option<PyRef<'_, ReplicateConfig>>,
    ) -> PyResult<i32> {
        let codes = self.write_objects(py, &keys, values, config.as_deref(), false)?;
        Ok(first_failure(&codes))
    }

    #[pyo3(signature = (key, value, config=None))]
    fn upsert(
        &self,
        py: Python<'_>,
        key: &str,
        value: &Bound<'_, PyAny>,
        config: Option<PyRef<'_, ReplicateConfig>>,
    ) -> PyResult<i32> {
        let keys = [key.to_string()];
        Ok(self.write_objects(py, &keys, [value.clone()], config.as_deref(), true)?[0])
    }

    #[pyo3(signature = (key, *parts, config=None))]
    fn upsert_parts(
        &self,
        py: Python<'_>,
        key: &str,
        parts: &Bound<'_, PyTuple>,
        config: Option<PyRef<'_, ReplicateConfig>>,
    ) -> PyResult<i32> {
        self.write_parts(py, key, parts, config.as_deref(), true)
    }

    /// One code for the batch, as `put_batch`.
    #[pyo3(signature = (keys, values, config=None))]
    fn upsert_batch(
        &self,
        py: Python<'_>,
        keys: Vec<String>,
        values: Vec<Bound<'_, PyAny>>,
        config: Option<PyRef<'_, ReplicateConfig>>,
    ) -> PyResult<i32> {
        let codes = self.write_objects(py, &keys, values, config.as_deref(), true)?;
        Ok(first_failure(&codes))
    }

    /// The object's bytes; `b''` when it is missing or unreadable.
    fn get<'py>(&self, py: Python<'py>, key: &str) -> Bound<'py, PyBytes> {
        self.get_batch(py, vec![key.to_string()])
            .pop()
            .expect("one result per key")
    }

    /// `get` for several keys: one master round trip; `b''` for each failed key.
    fn get_batch<'py>(&self, py: Python<'py>, keys: Vec<String>) -> Vec<Bound<'py, PyBytes>> {
        if let Some(d) = self.dummy() {
            let got = self.dummy_get_bytes(py, &d, &keys);
            let empty: &[u8] = b"";
            return got
                .iter()
                .map(|b| PyBytes::new(py, b.as_deref().unwrap_or(empty)))
                .collect();
        }
        let got = match self.client() {
            Ok(c) => get_bytes(py, &c, &keys),
            Err(_) => keys.iter().map(|_| None).collect(),
        };
        got.into_iter()
            .map(|b| b.map_or_else(|| PyBytes::new(py, b""), |b| b.into_bound(py)))
            .collect()
    }

    /// The object as a `BufferHandle` (buffer protocol, no copy); `None` on failure.
    fn get_buffer(&self, py: Python<'_>, key: &str) -> Option<BufferHandle> {
        if self.dummy.read().is_some() {
            return self
                .batch_get_buffer(py, vec![key.to_string()])
                .pop()
                .flatten();
        }
        let c = self.client().ok()?;
        py.detach(|| c.store.get(key)).ok().map(BufferHandle::new)
    }

    /// `get_buffer` for several keys; `None` for each failed key.
    fn batch_get_buffer(&self, py: Python<'_>, keys: Vec<String>) -> Vec<Option<BufferHandle>> {
        if let Some(d) = self.dummy() {
            let got = self.dummy_get_bytes(py, &d, &keys);
            return got.into_iter().map(|b| b.map(BufferHandle::new)).collect();
        }
        let Ok(c) = self.client() else {
            return keys.iter().map(|_| None).collect();
        };
        let res = py.detach(|| {
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            c.store.get_batch(&refs)
        });
        res.into_iter()
            .map(|r| r.ok().map(BufferHandle::new))
            .collect()
    }

    /// 1 when a complete object exists, 0 when not, or a negative code.
    fn is_exist(&self, py: Python<'_>, key: &str) -> i32 {
        self.batch_is_exist(py, vec![key.to_string()])[0]
    }

    /// `is_exist` for several keys in one round trip.
    fn batch_is_exist(&self, py: Python<'_>, keys: Vec<String>) -> Vec<i32> {
        if let Some(d) = self.dummy() {
            let n = keys.len();
            let r = self.via_dummy(py, "batch_is_exist", &d, |d| d.exists(keys));
            return r.unwrap_or_else(|code| vec![code; n]);
        }
        let c = match self.client() {
            Ok(c) => c,
            Err(code) => return vec![code; keys.len()],
        };
        let res = py.detach(|| {
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            c.store.batch_exists(&refs)
        });
        res.into_iter()
            .map(|r| match r {
                Ok(b) => i32::from(b),
                Err(e) => e.code().code(),
            })
            .collect()
    }

    /// The object's size in bytes, or a negative code.
    fn get_size(&self, py: Python<'_>, key: &str) -> i64 {
        if let Some(d) = self.dummy() {
            let r = self.via_dummy(py, "get_size", &d, |d| d.size(key.to_string()));
            return r.unwrap_or_else(i64::from);
        }
        let c = match self.client() {
            Ok(c) => c,
            Err(code) => return code.into(),
        };
        match py.detach(|| c.store.get_size(key)) {
            Ok(n) => n as i64,
            Err(e) => e.code().code().into(),
        }
    }

    #[pyo3(signature = (key, force=false))]
    fn remove(&self, py: Python<'_>, key: &str, force: bool) -> i32 {
        self.batch_remove(py, vec![key.to_string()], force)[0]
    }

    #[pyo3(signature = (keys, force=false))]
    fn batch_remove(&self, py: Python<'_>, keys: Vec<String>, force: bool) -> Vec<i32> {
        if let Some(d) = self.dummy() {
            let n = keys.len();
            let r = self.via_dummy(py, "batch_remove", &d, |d| d.remove(keys, force));
            return r.unwrap_or_else(|code| vec![code; n]);
        }
        let c = match self.client() {
            Ok(c) => c,
            Err(code) => return vec![code; keys.len()],
        };
        let res = py.detach(|| {
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            c.store.remove_batch(&refs, force)
        });
        res.into_iter()
            .map(|r| r.map_or_else(|e| e.code().code(), |()| 0))
            .collect()
    }

    /// Removes every object whose key matches; returns how many, or a negative code.
    #[pyo3(signature = (regex_pattern, force=false))]
    fn remove_by_regex(&self, py: Python<'_>, regex_pattern: &str, force: bool) -> i64 {
        if let Some(d) = self.dummy() {
            let pattern = regex_pattern.to_string();
            let r = self.via_dummy(py, "remove_by_regex", &d, |d| {
                d.remove_regex(pattern, force)
            });
            return r.unwrap_or_else(i64::from);
        }
        let c = match self.client() {
            Ok(c) => c,
            Err(code) => return code.into(),
        };
        match py.detach(|| c.store.remove_by_regex(regex_pattern, force)) {
            Ok(n) => n as i64,
            Err(e) => e.code().code().into(),
        }
    }

    /// Removes every object; returns how many, or a negative code.
    #[pyo3(signature = (force=false))]
    fn remove_all(&self, py: Python<'_>, force: bool) -> i64 {
        if let Some(d) = self.dummy() {
            let r = self.via_dummy(py, "remove_all", &d, |d| d.remove_all(force));
            return r.unwrap_or_else(i64::from);
        }
        let c = match self.client() {
            Ok(c) => c,
            Err(code) => return code.into(),
        };
        match py.detach(|| c.store.remove_all(force)) {
            Ok(n) => n as i64,
            Err(e) => e.code().code().into(),
        }
    }

    /// Objects this client read from an SSD copy, because no memory replica served them
    /// (Mooncake counts its offload-read RPCs here); 0 before `setup()`.
    fn get_offload_rpc_read_count(&self) -> i64 {
        self.client
            .read()
            .as_ref()
            .map_or(0, |c| c.store.ssd_read_count() as i64)
    }

    /// The replicas of `key` (empty when it is missing). Grants a read lease.
    fn get_replica_desc(&self, py: Python<'_>, key: &str) -> Vec<ReplicaDescriptor> {
        self.replica_descs(py, vec![key.to_string()])
            .pop()
            .flatten()
            .unwrap_or_default()
    }

    /// `get_replica_desc` for several keys in one round trip: a dict of the keys found.
    fn batch_get_replica_desc<'py>(
        &self,
        py: Python<'py>,
        keys: Vec<String>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        let descs = self.replica_descs(py, keys.clone());
        for (k, d) in keys.into_iter().zip(descs) {
            if let Some(d) = d.filter(|d| !d.is_empty()) {
                out.set_item(k, d)?;
            }
        }
        Ok(out)
    }

    /// Counters of this client's local hot cache (`MC_STORE_LOCAL_HOT_CACHE_SIZE`): a dict
    /// of hits, misses, admitted, evicted, stale, corrupt, invalidated, entries,
    /// used_bytes and capacity_bytes, all 0 when the cache is off. Not in Mooncake's
    /// binding. Raises RuntimeError before `setup()` and on a dummy client (whose gets are
    /// served by its real client's cache).
    fn hot_cache_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = self.client().map_err(|code| {
            pyo3::exceptions::PyRuntimeError::new_err(format!(
                "hot_cache_stats: no set-up client of this process (code {code})"
            ))
        })?;
        let s = c.store.hot_cache_stats();
        let out = PyDict::new(py);
        for (name, v) in [
            ("hits", s.hits),
            ("misses", s.misses),
            ("admitted", s.admitted),
            ("evicted", s.evicted),
            ("stale", s.stale),
            ("corrupt", s.corrupt),
            ("invalidated", s.invalidated),
            ("entries", s.entries),
            ("used_bytes", s.used_bytes),
            ("capacity_bytes", s.capacity_bytes),
        ] {
            out.set_item(name, v)?;
        }
        Ok(out)
    }

    fn __repr__(&self) -> String {
        if let Some(d) = self.dummy() {
            return format!("<MooncakeDistributedStore dummy of {}>", d.hostname());
        }
        match self.client.read().as_ref() {
            Some(c) => format!("<MooncakeDistributedStore host={}>", c.host),
            None => "<MooncakeDistributedStore (not set up)>".into(),
        }
    }
}
