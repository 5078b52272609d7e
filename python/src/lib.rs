//! Python binding of mooncake-rs: `mooncake_rs.store.MooncakeDistributedStore` with the
//! names, arguments and return conventions of Mooncake's Python API, so that an inference
//! engine's connector switches by changing its import.
//!
//! The extension module is `mooncake_rs._native`; `mooncake_rs/store.py` re-exports it
//! and adds the `ErrorCode` enum. Logs go to stderr through `tracing`, filtered by
//! `MC_LOG` (default `warn`).

mod buffers;
mod capsule;
mod config;
mod dummy;
mod embedded;
mod engram;
mod error;
mod host_mem;
mod nof;
mod numa;
mod pool;
mod ranges;
mod replica;
mod segments;
mod sessions;
mod setup;
mod store;
mod tasks;
mod zero_copy;

use pyo3::prelude::*;

fn init_logging() {
    let filter = std::env::var("MC_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// `(name, code)` of every Mooncake error code.
#[pyfunction]
fn error_codes() -> Vec<(&'static str, i32)> {
    mooncake_rs::ErrorCode::ALL
        .iter()
        .map(|c| (c.name(), c.code()))
        .collect()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    init_logging();
    m.add_class::<store::MooncakeDistributedStore>()?;
    m.add_class::<config::ReplicateConfig>()?;
    m.add_class::<config::SoftPinAction>()?;
    m.add_class::<config::ReplicaStatus>()?;
    m.add_class::<config::ObjectDataType>()?;
    m.add_class::<replica::DiskDescriptor>()?;
    m.add_class::<replica::ReplicaDescriptor>()?;
    m.add_class::<replica::MemoryDescriptor>()?;
    m.add_class::<replica::BufferDescriptor>()?;
    m.add_class::<buffers::BufferHandle>()?;
    m.add_class::<pool::BufferPool>()?;
    m.add_class::<pool::BufferLease>()?;
    m.add_class::<pool::BufferLeaseView>()?;
    m.add_function(wrap_pyfunction!(capsule::_get_pyclient_from_wrapper, m)?)?;
    m.add_class::<engram::EngramStoreConfig>()?;
    m.add_class::<engram::EngramStore>()?;
    m.add_class::<nof::MooncakeDistributedNoFRegister>()?;
    m.add_function(wrap_pyfunction!(error_codes, m)?)?;
    m.add_function(wrap_pyfunction!(numa::bind_to_numa_node, m)?)?;
    m.add_function(wrap_pyfunction!(host_mem::get_alloc_func_addr, m)?)?;
    m.add_function(wrap_pyfunction!(host_mem::get_free_func_addr, m)?)?;
    m.add_class::<host_mem::MooncakeHostMemAllocator>()?;
    m.add_class::<tasks::TaskType>()?;
    m.add_class::<tasks::TaskStatus>()?;
    m.add_class::<tasks::QueryTaskResponse>()?;
    Ok(())
}
