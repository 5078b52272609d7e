//! The store handle other classes take: Mooncake's `_get_pyclient_from_wrapper(store)` and
//! `store._get_pyclient_capsule()` return a capsule holding the store's client (`None`
//! before `setup()`), and `BufferPool` / `EngramStore` accept either the store itself or
//! any object whose `_get_pyclient_capsule()` returns such a capsule (a wrapper class).
//!
//! Here the capsule holds a reference to the `MooncakeDistributedStore` itself: it owns the
//! client and the registry of buffers, and answers "not set up" once closed, as Mooncake's
//! client does after `close()`. The capsule's name is this module's own, so a capsule of
//! Mooncake's (which holds a C++ pointer) is never mistaken for one of ours.

use std::ffi::CStr;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

use crate::store::MooncakeDistributedStore;

/// Name of the capsules made here.
const CAPSULE_NAME: &CStr = c"mooncake_rs.store.MooncakeDistributedStore";

/// Method a store wrapper implements to hand over its store.
const CAPSULE_METHOD: &str = "_get_pyclient_capsule";

/// A capsule holding `store`, or `None` when it is not set up.
fn capsule<'py>(
    store: &Bound<'py, MooncakeDistributedStore>,
) -> PyResult<Option<Bound<'py, PyCapsule>>> {
    if !store.get().is_set_up() {
        return Ok(None);
    }
    PyCapsule::new_with_value(store.py(), store.clone().unbind(), CAPSULE_NAME).map(Some)
}

/// Mooncake's `_get_pyclient_from_wrapper(wrapper)`: a capsule holding the store's client,
/// or `None` when it is not set up. TypeError for anything but a `MooncakeDistributedStore`.
#[pyfunction]
#[pyo3(signature = (wrapper))]
pub fn _get_pyclient_from_wrapper<'py>(
    wrapper: &Bound<'py, MooncakeDistributedStore>,
) -> PyResult<Option<Bound<'py, PyCapsule>>> {
    capsule(wrapper)
}

#[pymethods]
impl MooncakeDistributedStore {
    /// The store's client as a capsule (`None` before `setup()`), for `BufferPool` and
    /// `EngramStore`.
    fn _get_pyclient_capsule<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<Option<Bound<'py, PyCapsule>>> {
        capsule(slf)
    }
}

impl MooncakeDistributedStore {
    /// Whether `setup()` or `setup_dummy()` succeeded and `close()` has not run since.
    pub(crate) fn is_set_up(&self) -> bool {
        self.client.read().is_some() || self.dummy.read().is_some()
    }
}

/// The store `obj` names, for the class `who`: `None` for `None` (and for a wrapper whose
/// capsule is `None`); the store itself; or the store in a wrapper's capsule.
/// RuntimeError for anything else, as Mooncake.
pub fn resolve<'py>(
    obj: &Bound<'py, PyAny>,
    who: &str,
) -> PyResult<Option<Bound<'py, MooncakeDistributedStore>>> {
    if obj.is_none() {
        return Ok(None);
    }
    if let Ok(store) = obj.cast::<MooncakeDistributedStore>() {
        return Ok(Some(store.clone()));
    }
    if !obj.hasattr(CAPSULE_METHOD)? {
        return Err(PyRuntimeError::new_err(format!(
            "{who} store parameter must be a MooncakeDistributedStore or a store wrapper \
             that implements {CAPSULE_METHOD}()"
        )));
    }
    let cap = obj.call_method0(CAPSULE_METHOD)?;
    if cap.is_none() {
        return Ok(None);
    }
    let cap = cap.cast_into::<PyCapsule>().map_err(|_| {
        PyRuntimeError::new_err(format!("{CAPSULE_METHOD}() returned a non-capsule handle"))
    })?;
    let ptr = cap.pointer_checked(Some(CAPSULE_NAME)).map_err(|_| {
        PyRuntimeError::new_err(format!(
            "{CAPSULE_METHOD}() returned a capsule that is not a mooncake_rs store handle"
        ))
    })?;
    // SAFETY: only `capsule` above makes capsules with this name, each holding a boxed
    // `Py<MooncakeDistributedStore>` (`new_with_value`), and the capsule is alive (bound)
    // while the reference is read and cloned here, under the GIL.
    let store = unsafe { ptr.cast::<Py<MooncakeDistributedStore>>().as_ref() };
    Ok(Some(store.bind(obj.py()).clone()))
}
