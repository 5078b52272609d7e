//! Mooncake's `MooncakeDistributedNoFRegister`: registers an NVMe-oF namespace with the
//! master as a segment (`real_register`) and unregisters it (`real_unregister_by_endpoint`).
//!
//! mooncake-rs has no NVMe-oF tier: its master keeps memory segments (and the SSD tier of
//! its store nodes) only, and has no RPC to mount a remote namespace. The class is here
//! with Mooncake's signatures so code that imports it loads; both calls log why they
//! cannot work and return -1, the only failure code Mooncake's register client returns
//! (OPERATION_FAILED). docs/python.md lists this under known limitations.

use pyo3::prelude::*;

/// What both calls return: Mooncake's OPERATION_FAILED.
const OPERATION_FAILED: i32 = -1;

/// Mooncake's NVMe-oF segment registration client; every call fails here (module doc).
#[pyclass(module = "mooncake_rs.store", frozen)]
pub struct MooncakeDistributedNoFRegister;

/// The `te_endpoint` Mooncake builds for a namespace (its segment's name at the master);
/// logged so an operator sees which namespace was asked for.
fn endpoint(nqn: &str, nsid: usize, traddr: &str, trsvcid: usize) -> String {
    format!("traddr:{traddr} trsvcid:{trsvcid} subnqn:{nqn} ns:{nsid}")
}

fn unsupported(op: &str, endpoint: &str, master: &str) -> i32 {
    tracing::error!(
        "MooncakeDistributedNoFRegister.{op}({endpoint}, master {master}): NVMe-oF is not built \
         in mooncake-rs (its master has no NVMe-oF segments); for an SSD tier use \
         setup(enable_ssd_offload=True) (docs/python.md)"
    );
    OPERATION_FAILED
}

#[pymethods]
impl MooncakeDistributedNoFRegister {
    #[new]
    fn new() -> Self {
        MooncakeDistributedNoFRegister
    }

    /// Would mount the namespace `[base, base + size)` at the master; returns -1 (module
    /// doc).
    #[pyo3(signature = (nqn=String::new(), nsid=1, traddr=String::new(), trsvcid=4420,
        base=0, size=1024, master_server_addr="127.0.0.1:50051".to_string()),
        text_signature = "($self, nqn='', nsid=1, traddr='', trsvcid=4420, base=0, size=1024, \
            master_server_addr='127.0.0.1:50051')")]
    #[allow(clippy::too_many_arguments)]
    fn real_register(
        &self,
        nqn: String,
        nsid: usize,
        traddr: String,
        trsvcid: usize,
        base: usize,
        size: usize,
        master_server_addr: String,
    ) -> i32 {
        let ep = endpoint(&nqn, nsid, &traddr, trsvcid);
        unsupported(
            "real_register",
            &format!("{ep} base={base:#x} size={size}"),
            &master_server_addr,
        )
    }

    /// Would unmount every segment registered for the namespace; returns -1 (module doc).
    #[pyo3(signature = (nqn=String::new(), nsid=1, traddr=String::new(), trsvcid=4420,
        master_server_addr="127.0.0.1:50051".to_string()),
        text_signature = "($self, nqn='', nsid=1, traddr='', trsvcid=4420, \
            master_server_addr='127.0.0.1:50051')")]
    fn real_unregister_by_endpoint(
        &self,
        nqn: String,
        nsid: usize,
        traddr: String,
        trsvcid: usize,
        master_server_addr: String,
    ) -> i32 {
        let ep = endpoint(&nqn, nsid, &traddr, trsvcid);
        unsupported("real_unregister_by_endpoint", &ep, &master_server_addr)
    }
}
