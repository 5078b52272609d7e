//! Segments mounted at run time, as Mooncake's `mount_segment` family: the hosted store
//! node (embedded mode, `global_segment_size > 0`) mounts more memory with the master, or
//! unmounts it, through the node's agent (what its `/api/mount*` endpoints do).
//!
//! `allocate_and_mount_segment` / `unmount_and_free_segment` allocate and free the memory;
//! `mount_segment` / `unmount_segment` map a POSIX shared-memory file the caller made
//! (`/dev/shm/NAME`). Segment ids are strings in Mooncake's UUID form.

use std::time::Duration;

use mc_agent::state::{CommandError, format_segment_id, parse_segment_id};
use mc_schema::agent::SegmentKind;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::store::MooncakeDistributedStore;

/// INVALID_PARAMS.
const INVALID: i32 = -600;

/// Longest grace period, as the node's REST API.
const MAX_GRACE_SECONDS: u64 = 3600;

/// The code of an agent's refusal.
fn command_code(e: &CommandError) -> i32 {
    match e {
        CommandError::NotFound(_) => mooncake_rs::ErrorCode::SegmentNotFound.code(),
        CommandError::Invalid(_) | CommandError::Refused(_) => INVALID,
        CommandError::Failed(_) | CommandError::Stopping => {
            mooncake_rs::ErrorCode::InternalError.code()
        }
    }
}

/// The `/dev/shm` file `path` names (`/dev/shm/NAME` or a bare `NAME`), or `None`.
fn shm_file(path: &str) -> Option<String> {
    let name = path
        .strip_prefix(mc_agent::node::SHM_DIR)
        .map(|r| r.trim_start_matches('/'))
        .unwrap_or(path);
    let ok = !name.is_empty() && name != "." && !name.contains("..") && !name.contains(['/', '\0']);
    ok.then(|| format!("{}/{name}", mc_agent::node::SHM_DIR))
}

impl MooncakeDistributedStore {
    /// Runs `f` on the hosted node; `Err(code)` (logged) without one.
    fn with_node<T>(
        &self,
        py: Python<'_>,
        op: &str,
        f: impl FnOnce(&mc_agent::node::NodeHandle) -> Result<T, CommandError> + Send,
    ) -> Result<T, i32>
    where
        T: Send,
    {
        let c = self.client()?;
        let Some(node) = c.node() else {
            return Err(self.fail(
                INVALID,
                format!("{op}: needs a hosted segment; set up with global_segment_size > 0"),
            ));
        };
        py.detach(|| f(node))
            .map_err(|e| self.fail(command_code(&e), format!("{op}: {e}")))
    }

    /// Unmounts segments of `kind`; 0 or a negative code.
    fn unmount_kind(
        &self,
        py: Python<'_>,
        op: &str,
        segment_ids: Vec<String>,
        grace_period_seconds: u64,
        kind: SegmentKind,
    ) -> i32 {
        let ids: Option<Vec<u64>> = segment_ids.iter().map(|s| parse_segment_id(s)).collect();
        let Some(ids) = ids.filter(|v| !v.is_empty()) else {
            return self.fail(
                INVALID,
                format!("{op}: {segment_ids:?} are not segment ids of this client"),
            );
        };
        if grace_period_seconds > MAX_GRACE_SECONDS {
            return self.fail(
                INVALID,
                format!("{op}: grace_period_seconds above {MAX_GRACE_SECONDS}"),
            );
        }
        let grace = Duration::from_secs(grace_period_seconds);
        self.with_node(py, op, |n| n.unmount(ids, kind, grace))
            .map_or_else(|code| code, |()| 0)
    }
}

/// `{"ret": code, "segment_ids": [...]}` (and `allocated_size` when asked).
fn answer<'py>(
    py: Python<'py>,
    ret: i32,
    ids: Vec<String>,
    allocated: Option<u64>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("ret", ret)?;
    d.set_item("segment_ids", ids)?;
    if let Some(a) = allocated {
        d.set_item("allocated_size", a)?;
    }
    Ok(d)
}

#[pymethods]
impl MooncakeDistributedStore {
    /// Maps `size` bytes of the shared-memory file `path` (`/dev/shm/NAME`) from `offset`
    /// and mounts them as a segment of the hosted node. `{"ret", "segment_ids"}`.
    #[pyo3(signature = (path, size, offset=0, protocol="tcp", location=""))]
    fn mount_segment<'py>(
        &self,
        py: Python<'py>,
        path: &str,
        size: u64,
        offset: u64,
        protocol: &str,
        location: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let _ = location; // NUMA placement hint; the file's pages are where they are
        let r = match (shm_file(path), protocol) {
            (_, p) if !p.eq_ignore_ascii_case("tcp") => Err(self.fail(
                INVALID,
                format!("mount_segment: protocol {p:?}; use \"tcp\""),
            )),
            (None, _) => Err(self.fail(
                INVALID,
                format!(
                    "mount_segment: {path:?} is not a POSIX shared-memory file (/dev/shm/NAME)"
                ),
            )),
            (Some(file), _) => {
                self.with_node(py, "mount_segment", |n| n.mount_shm(file, offset, size))
            }
        };
        match r {
            Ok(seg) => answer(py, 0, vec![format_segment_id(seg.segment_id)], None),
            Err(code) => answer(py, code, Vec::new(), None),
        }
    }

    /// Unmounts segments from `mount_segment` (the file stays the caller's), readable for
    /// `grace_period_seconds` first. 0 or a negative code.
    #[pyo3(signature = (segment_ids, grace_period_seconds=0))]
    fn unmount_segment(
        &self,
        py: Python<'_>,
        segment_ids: Vec<String>,
        grace_period_seconds: u64,
    ) -> i32 {
        self.unmount_kind(
            py,
            "unmount_segment",
            segment_ids,
            grace_period_seconds,
            SegmentKind::Shm,
        )
    }

    /// Takes the hosted node's SSD stores (`enable_ssd_offload`) out of the cluster: the
    /// master forgets their copies (an object whose only copy was on SSD goes) and sends
    /// them no more, after `grace_period_seconds` during which they stay readable. 0 (also
    /// when the node has no SSD store, as Mooncake) or a negative code.
    #[pyo3(signature = (grace_period_seconds=0))]
    fn unmount_local_disk_segment(&self, py: Python<'_>, grace_period_seconds: u64) -> i32 {
        let ids = self.with_node(py, "unmount_local_disk_segment", |n| {
            Ok(n.segments()
                .into_iter()
                .filter(|s| s.kind == SegmentKind::LocalDisk)
                .map(|s| format_segment_id(s.segment_id))
                .collect::<Vec<_>>())
        });
        match ids {
            Ok(ids) if ids.is_empty() => {
                tracing::warn!("unmount_local_disk_segment: this node has no SSD store");
                0
            }
            Ok(ids) => self.unmount_kind(
                py,
                "unmount_local_disk_segment",
                ids,
                grace_period_seconds,
                SegmentKind::LocalDisk,
            ),
            Err(code) => code,
        }
    }

    /// Allocates `size` bytes in the hosted node and mounts them as a new segment.
    /// `{"ret", "segment_ids", "allocated_size"}`.
    #[pyo3(signature = (size, protocol="tcp", location=""))]
    fn allocate_and_mount_segment<'py>(
        &self,
        py: Python<'py>,
        size: u64,
        protocol: &str,
        location: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let _ = location; // NUMA placement hint; the shard allocates on its own node
        let r = if protocol.eq_ignore_ascii_case("tcp") {
            self.with_node(py, "allocate_and_mount_segment", |n| n.mount(size))
        } else {
            Err(self.fail(
                INVALID,
                format!("allocate_and_mount_segment: protocol {protocol:?}; use \"tcp\""),
            ))
        };
        match r {
            Ok(seg) => answer(
                py,
                0,
                vec![format_segment_id(seg.segment_id)],
                Some(seg.size_bytes),
            ),
            Err(code) => answer(py, code, Vec::new(), Some(0)),
        }
    }

    /// Unmounts segments from `allocate_and_mount_segment` and frees their memory.
    #[pyo3(signature = (segment_ids, grace_period_seconds=0))]
    fn unmount_and_free_segment(
        &self,
        py: Python<'_>,
        segment_ids: Vec<String>,
        grace_period_seconds: u64,
    ) -> i32 {
        self.unmount_kind(
            py,
            "unmount_and_free_segment",
            segment_ids,
            grace_period_seconds,
            SegmentKind::Allocated,
        )
    }
}
