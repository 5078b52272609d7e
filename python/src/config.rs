//! `ReplicateConfig`, `SoftPinAction` and `ReplicaStatus`, with Mooncake's names and types.

use mc_schema::limits::MAX_REPLICAS;
use mooncake_rs::{ReplicateConfig as WireConfig, SoftPinAction as WirePin};
use pyo3::prelude::*;

use crate::error::BindingError;

/// What a put does to the object's soft pin.
#[pyclass(eq, eq_int, module = "mooncake_rs.store", from_py_object)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoftPinAction {
    /// Keep the current soft pin (a new object gets none).
    #[pyo3(name = "PRESERVE")]
    Preserve = 0,
    /// Soft-pin the object for `soft_pin_ttl_ms` (or the master's default).
    #[pyo3(name = "ENABLE")]
    Enable = 1,
    /// Remove the soft pin.
    #[pyo3(name = "DISABLE")]
    Disable = 2,
}

/// State of a replica as `get_replica_desc` reports it.
#[pyclass(eq, eq_int, module = "mooncake_rs.store", from_py_object)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaStatus {
    /// Not initialised.
    #[pyo3(name = "UNDEFINED")]
    Undefined = 0,
    /// Space allocated, waiting for the write.
    #[pyo3(name = "INITIALIZED")]
    Initialized = 1,
    /// Write in progress.
    #[pyo3(name = "PROCESSING")]
    Processing = 2,
    /// Written and readable.
    #[pyo3(name = "COMPLETE")]
    Complete = 3,
    /// Removed.
    #[pyo3(name = "REMOVED")]
    Removed = 4,
    /// Failed.
    #[pyo3(name = "FAILED")]
    Failed = 5,
}

/// How a put places its replicas.
#[pyclass(module = "mooncake_rs.store", get_all, set_all, from_py_object)]
#[derive(Clone, Debug)]
pub struct ReplicateConfig {
    /// Number of replicas, on distinct nodes where possible (1..=16).
    pub replica_num: usize,
    /// Soft pin transition.
    pub soft_pin_action: SoftPinAction,
    /// Soft pin lifetime; `None` = the master's default.
    pub soft_pin_ttl_ms: Option<u64>,
    /// Never evicted.
    pub with_hard_pin: bool,
    /// Segments (`host:port`, or a host for all its segments) tried first, in order.
    pub preferred_segments: Vec<String>,
    /// One preferred segment (older form of `preferred_segments`).
    pub preferred_segment: String,
    /// Prefer segments on this client's host.
    pub prefer_alloc_in_same_node: bool,
}

#[pymethods]
impl ReplicateConfig {
    #[new]
    #[pyo3(signature = (replica_num=1, *, soft_pin_action=SoftPinAction::Preserve,
        soft_pin_ttl_ms=None, with_hard_pin=false, preferred_segments=Vec::new(),
        preferred_segment=String::new(), prefer_alloc_in_same_node=false))]
    fn new(
        replica_num: usize,
        soft_pin_action: SoftPinAction,
        soft_pin_ttl_ms: Option<u64>,
        with_hard_pin: bool,
        preferred_segments: Vec<String>,
        preferred_segment: String,
        prefer_alloc_in_same_node: bool,
    ) -> Self {
        ReplicateConfig {
            replica_num,
            soft_pin_action,
            soft_pin_ttl_ms,
            with_hard_pin,
            preferred_segments,
            preferred_segment,
            prefer_alloc_in_same_node,
        }
    }

    fn __repr__(&self) -> String {
        let b = |v: bool| if v { "True" } else { "False" };
        let ttl = self
            .soft_pin_ttl_ms
            .map_or_else(|| "None".to_string(), |t| t.to_string());
        format!(
            "ReplicateConfig(replica_num={}, soft_pin_action=SoftPinAction.{}, \
             soft_pin_ttl_ms={ttl}, with_hard_pin={}, preferred_segments={:?}, \
             preferred_segment={:?}, prefer_alloc_in_same_node={})",
            self.replica_num,
            format!("{:?}", self.soft_pin_action).to_uppercase(),
            b(self.with_hard_pin),
            self.preferred_segments,
            self.preferred_segment,
            b(self.prefer_alloc_in_same_node)
        )
    }

    fn __str__(&self) -> String {
        self.__repr__()
    }
}

impl Default for ReplicateConfig {
    fn default() -> Self {
        ReplicateConfig::new(
            1,
            SoftPinAction::Preserve,
            None,
            false,
            Vec::new(),
            String::new(),
            false,
        )
    }
}

impl ReplicateConfig {
    /// The wire form, or why the config is invalid. `local_host` stands for "this node"
    /// when `prefer_alloc_in_same_node` is set.
    pub fn to_wire(&self, local_host: &str) -> Result<WireConfig, BindingError> {
        if self.replica_num == 0 || self.replica_num > MAX_REPLICAS as usize {
            return Err(BindingError::ReplicaNum {
                got: self.replica_num,
                max: MAX_REPLICAS,
            });
        }
        let mut preferred = Vec::new();
        if !self.preferred_segment.is_empty() {
            preferred.push(self.preferred_segment.clone());
        }
        preferred.extend(self.preferred_segments.iter().cloned());
        if self.prefer_alloc_in_same_node && !local_host.is_empty() {
            preferred.push(local_host.to_string());
        }
        if preferred.iter().any(|s| s.is_empty()) {
            return Err(BindingError::EmptyPreferredSegment);
        }
        Ok(WireConfig {
            replica_num: self.replica_num as u32,
            preferred_segments: preferred,
            with_hard_pin: self.with_hard_pin,
            soft_pin_action: match self.soft_pin_action {
                SoftPinAction::Preserve => WirePin::Preserve,
                SoftPinAction::Enable => WirePin::Enable,
                SoftPinAction::Disable => WirePin::Disable,
            },
            soft_pin_ttl_ms: self.soft_pin_ttl_ms.unwrap_or(0),
        })
    }
}
