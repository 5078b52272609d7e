//! `get_replica_desc`'s answer: where each replica of an object lives.

use mooncake_rs::{ReplicaDesc, ReplicaKind};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::config::ReplicaStatus;

/// One contiguous range of a replica: `size` bytes at `buffer_address` (the offset in its
/// segment) on the shard at `transport_endpoint`.
#[pyclass(module = "mooncake_rs.store", name = "Descriptor", frozen, get_all)]
#[derive(Clone, Debug)]
pub struct BufferDescriptor {
    /// Bytes.
    pub size: u64,
    /// Offset of the range within its segment.
    pub buffer_address: u64,
    /// Data endpoint (`host:port`) of the shard holding the range.
    pub transport_endpoint: String,
    /// Segment id.
    pub segment_id: u64,
}

#[pymethods]
impl BufferDescriptor {
    fn __repr__(&self) -> String {
        format!(
            "<Descriptor size={} buffer_address={} transport_endpoint={}>",
            self.size, self.buffer_address, self.transport_endpoint
        )
    }
}

/// The memory side of a replica: its ranges in value order. `buffer_descriptor` is the
/// first (the whole value unless it was striped).
#[pyclass(module = "mooncake_rs.store", frozen, get_all)]
#[derive(Clone, Debug)]
pub struct MemoryDescriptor {
    /// First range.
    pub buffer_descriptor: BufferDescriptor,
    /// Every range, in value order.
    pub buffer_descriptors: Vec<BufferDescriptor>,
}

/// Where a disk replica lives. Replicas here are memory replicas, so
/// `get_disk_descriptor()` never returns one; the class exists so code that names it runs.
#[pyclass(module = "mooncake_rs.store", get_all, set_all, from_py_object)]
#[derive(Clone, Debug, Default)]
pub struct DiskDescriptor {
    /// The file holding the replica.
    pub file_path: String,
    /// Bytes.
    pub object_size: u64,
}

#[pymethods]
impl DiskDescriptor {
    #[new]
    fn new() -> Self {
        DiskDescriptor::default()
    }
}

/// One replica of an object.
#[pyclass(module = "mooncake_rs.store", frozen)]
#[derive(Clone, Debug)]
pub struct ReplicaDescriptor {
    #[pyo3(get)]
    status: ReplicaStatus,
    memory: MemoryDescriptor,
    kind: ReplicaKind,
}

#[pymethods]
impl ReplicaDescriptor {
    /// True for a copy in a segment's memory.
    fn is_memory_replica(&self) -> bool {
        self.kind == ReplicaKind::Memory
    }

    /// Always false: there are no shared-file-system copies in this build.
    fn is_disk_replica(&self) -> bool {
        false
    }

    /// True for a node's SSD copy (`--enable_offload` masters, `enable_ssd_offload` nodes).
    fn is_local_disk_replica(&self) -> bool {
        self.kind == ReplicaKind::LocalDisk
    }

    /// The replica's ranges: segment ranges for a memory replica; for a node's SSD copy,
    /// the records on that node's disk segment (offset = record location).
    fn get_memory_descriptor(&self) -> MemoryDescriptor {
        self.memory.clone()
    }

    /// Raises, as Mooncake does for a memory replica: there is no disk side.
    fn get_disk_descriptor(&self) -> PyResult<DiskDescriptor> {
        Err(PyRuntimeError::new_err(
            "not a disk replica: this replica lives in memory (is_disk_replica() is False)",
        ))
    }

    fn __repr__(&self) -> String {
        format!(
            "<ReplicaDescriptor status={:?} kind={:?} ranges={}>",
            self.status,
            self.kind,
            self.memory.buffer_descriptors.len()
        )
    }
}

impl ReplicaDescriptor {
    /// From the master's descriptor; `None` for a replica without ranges.
    pub fn from_wire(r: &ReplicaDesc) -> Option<ReplicaDescriptor> {
        let ranges: Vec<BufferDescriptor> = r
            .slices
            .iter()
            .map(|s| BufferDescriptor {
                size: s.length,
                buffer_address: s.offset,
                transport_endpoint: s.endpoint.clone(),
                segment_id: s.segment_id,
            })
            .collect();
        Some(ReplicaDescriptor {
            status: if r.complete {
                ReplicaStatus::Complete
            } else {
                ReplicaStatus::Processing
            },
            memory: MemoryDescriptor {
                buffer_descriptor: ranges.first()?.clone(),
                buffer_descriptors: ranges,
            },
            kind: r.kind,
        })
    }
}
