//! Host memory for callers to fill and hand to zero-copy calls, as Mooncake's
//! `MooncakeHostMemAllocator` (memfd shared memory, mapped shared and prefaulted; hugetlb
//! pages when `MC_STORE_USE_HUGEPAGE=1`) and the C functions behind `get_alloc_func_addr`
//! / `get_free_func_addr` (`void *alloc(size_t)`, `void free(void *)`).
//!
//! Every allocation is an `mc_hugepages::Memory` kept in one process-wide table until it is
//! freed, so an address is freed once and only an address handed out here is. With
//! `MC_MMAP_ARENA_POOL_SIZE` set (and no `MC_DISABLE_MMAP_ARENA=1`) the allocations are
//! slices of one arena reserved on first use, named `mc-client-arena` in
//! `/proc/<pid>/maps`; `MC_STORE_HUGEPAGE_SIZE` picks the hugepage size.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::{LazyLock, OnceLock};

use mc_hugepages::{Arena, Memory, MemoryEnv, RegionOptions};
use parking_lot::Mutex;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// Live allocations by start address.
static REGIONS: LazyLock<Mutex<BTreeMap<usize, Memory>>> = LazyLock::new(Default::default);

/// The process's arena, reserved on the first allocation when the environment asks for one;
/// `None` when it does not, or when it could not be had (logged once: allocations then map
/// their own memory).
static ARENA: OnceLock<Option<Arena>> = OnceLock::new();

/// How allocations are made, from the environment.
fn options(env: &MemoryEnv, name: &str) -> RegionOptions {
    RegionOptions {
        name: name.into(),
        huge: env.huge_policy(),
        huge_page_bytes: env.huge_page_bytes,
        ..RegionOptions::default()
    }
}

/// The arena, reserving it on first use.
fn arena(env: &MemoryEnv) -> Option<&'static Arena> {
    ARENA
        .get_or_init(|| {
            let pool = env.arena_pool()?;
            let bytes = usize::try_from(pool).ok()?;
            match Arena::reserve(bytes, &options(env, "mc-client-arena")) {
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::error!(
                        "MC_MMAP_ARENA_POOL_SIZE={pool}: {e}; host buffers map their own memory"
                    );
                    None
                }
            }
        })
        .as_ref()
}

/// The process's arena (reserved now if the environment asks for one and it is not yet),
/// which an embedded store node shares for its runtime mounts.
pub(crate) fn process_arena() -> Result<Option<Arena>, mc_hugepages::Error> {
    Ok(arena(&MemoryEnv::from_env()?).cloned())
}

/// New memory of at least `size` bytes; its address.
fn alloc(size: usize) -> Result<usize, mc_hugepages::Error> {
    let env = MemoryEnv::from_env()?;
    let m = Memory::allocate(size, &options(&env, "mooncake_shm"), arena(&env))?;
    let addr = m.as_ptr().addr();
    REGIONS.lock().insert(addr, m);
    Ok(addr)
}

/// Frees the memory at `addr`; false when none of ours starts there.
fn free(addr: usize) -> bool {
    REGIONS.lock().remove(&addr).is_some()
}

/// `void *alloc(size_t)`: null when the memory cannot be had (logged).
extern "C" fn mooncake_rs_host_alloc(size: usize) -> *mut c_void {
    match alloc(size) {
        Ok(a) => std::ptr::with_exposed_provenance_mut(a),
        Err(e) => {
            tracing::error!("host memory of {size} bytes: {e}");
            std::ptr::null_mut()
        }
    }
}

/// `void free(void *)`: an address not from `mooncake_rs_host_alloc` is logged and left.
extern "C" fn mooncake_rs_host_free(ptr: *mut c_void) {
    if !ptr.is_null() && !free(ptr.addr()) {
        tracing::error!("free of {ptr:p}: not memory this allocator handed out");
    }
}

/// Address of the C allocation function (`void *(size_t)`).
#[pyfunction]
pub fn get_alloc_func_addr() -> usize {
    mooncake_rs_host_alloc as extern "C" fn(usize) -> *mut c_void as usize
}

/// Address of the C free function (`void (void *)`).
#[pyfunction]
pub fn get_free_func_addr() -> usize {
    mooncake_rs_host_free as extern "C" fn(*mut c_void) as usize
}

/// Mooncake's `MooncakeHostMemAllocator`: `alloc(size)` returns the address of `size` bytes
/// of shared memory, `free(ptr)` returns 0 (or -1 for an address it did not hand out).
#[pyclass(module = "mooncake_rs.store")]
pub struct MooncakeHostMemAllocator;

#[pymethods]
impl MooncakeHostMemAllocator {
    #[new]
    fn new() -> Self {
        MooncakeHostMemAllocator
    }

    /// Allocates `size` bytes; raises RuntimeError when it cannot (as upstream).
    fn alloc(&self, py: Python<'_>, size: usize) -> PyResult<usize> {
        py.detach(|| alloc(size))
            .map_err(|e| PyRuntimeError::new_err(format!("failed to allocate shared memory: {e}")))
    }

    /// Frees memory from `alloc`: 0, or -1 for an unknown address.
    fn free(&self, py: Python<'_>, ptr: usize) -> i32 {
        if py.detach(|| free(ptr)) {
            0
        } else {
            tracing::error!("free of {ptr:#x}: unknown shared memory address");
            -1
        }
    }
}
