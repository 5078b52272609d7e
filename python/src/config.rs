//! `ReplicateConfig`, `SoftPinAction`, `ReplicaStatus` and `ObjectDataType`, with Mooncake's
//! names, types and defaults.

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

/// What kind of data an object holds, as Mooncake classifies it. Carried by
/// `ReplicateConfig.data_type`; placement here does not depend on it.
#[pyclass(eq, eq_int, module = "mooncake_rs.store", from_py_object)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectDataType {
    /// Not classified.
    #[pyo3(name = "UNKNOWN")]
    Unknown = 0,
    /// KV cache blocks.
    #[pyo3(name = "KVCACHE")]
    Kvcache = 1,
    /// A tensor.
    #[pyo3(name = "TENSOR")]
    Tensor = 2,
    /// Model weights.
    #[pyo3(name = "WEIGHT")]
    Weight = 3,
    /// Training samples.
    #[pyo3(name = "SAMPLE")]
    Sample = 4,
    /// Activations.
    #[pyo3(name = "ACTIVATION")]
    Activation = 5,
    /// Gradients.
    #[pyo3(name = "GRADIENT")]
    Gradient = 6,
    /// Optimizer state.
    #[pyo3(name = "OPTIMIZER_STATE")]
    OptimizerState = 7,
    /// Metadata.
    #[pyo3(name = "METADATA")]
    Metadata = 8,
    /// Anything else.
    #[pyo3(name = "GENERAL")]
    General = 9,
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
    /// Replicas on NVMe-oF segments (Mooncake's NoF tier); only 0 here.
    pub nof_replica_num: usize,
    /// Replicas on a distributed file system; only 0 here.
    pub dfs_replica_num: usize,
    /// Preferred NVMe-oF segments; must stay empty here.
    pub preferred_nof_segments: Vec<String>,
    /// What the object holds (a label; placement ignores it).
    pub data_type: ObjectDataType,
    /// Per-key routing groups of a batch (one per key when set); checked, not used for
    /// placement.
    pub group_ids: Option<Vec<String>>,
}

#[pymethods]
impl ReplicateConfig {
    #[new]
    #[pyo3(signature = (replica_num=1, *, soft_pin_action=SoftPinAction::Preserve,
        soft_pin_ttl_ms=None, with_hard_pin=false, preferred_segments=Vec::new(),
        preferred_segment=String::new(), prefer_alloc_in_same_node=false,
        nof_replica_num=0, dfs_replica_num=0, preferred_nof_segments=Vec::new(),
        data_type=ObjectDataType::Unknown, group_ids=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        replica_num: usize,
        soft_pin_action: SoftPinAction,
        soft_pin_ttl_ms: Option<u64>,
        with_hard_pin: bool,
        preferred_segments: Vec<String>,
        preferred_segment: String,
        prefer_alloc_in_same_node: bool,
        nof_replica_num: usize,
        dfs_replica_num: usize,
        preferred_nof_segments: Vec<String>,
        data_type: ObjectDataType,
        group_ids: Option<Vec<String>>,
    ) -> Self {
        ReplicateConfig {
            replica_num,
            soft_pin_action,
            soft_pin_ttl_ms,
            with_hard_pin,
            preferred_segments,
            preferred_segment,
            prefer_alloc_in_same_node,
            nof_replica_num,
            dfs_replica_num,
            preferred_nof_segments,
            data_type,
            group_ids,
        }
    }

    fn __repr__(&self) -> String {
        self.__str__()
    }

    /// Mooncake's text form, field for field.
    fn __str__(&self) -> String {
        let mut s = format!(
            "ReplicateConfig: {{ replica_num: {}, nof_replica_num: {}, dfs_replica_num: {}, \
             soft_pin_action: {}, soft_pin_ttl_ms: {}, with_hard_pin: {}, \
             preferred_segments: [{}]",
            self.replica_num,
            self.nof_replica_num,
            self.dfs_replica_num,
            self.soft_pin_action.upper_name(),
            self.soft_pin_ttl_ms
                .map_or_else(|| "default".to_string(), |t| t.to_string()),
            u8::from(self.with_hard_pin),
            self.preferred_segments.join(", "),
        );
        if !self.preferred_segment.is_empty() {
            s += &format!(
                ", preferred_segment (deprecated): {}",
                self.preferred_segment
            );
        }
        s += &format!(
            ", preferred_nof_segments: [{}], prefer_alloc_in_same_node: {}, data_type: {}",
            self.preferred_nof_segments.join(", "),
            u8::from(self.prefer_alloc_in_same_node),
            self.data_type.upper_name(),
        );
        if let Some(g) = &self.group_ids {
            s += &format!(", group_ids: [{}]", g.join(", "));
        }
        s + " }"
    }
}

/// `name` and `value` of an enum member, as pybind11's enums have them.
#[macro_export]
macro_rules! enum_name_value {
    ($t:ty, $($v:ident => $n:literal),+ $(,)?) => {
        impl $t {
            /// The member's name as Python spells it.
            pub fn upper_name(self) -> &'static str {
                match self { $(<$t>::$v => $n),+ }
            }
        }

        #[pymethods]
        impl $t {
            /// The member's name.
            #[getter]
            fn name(&self) -> &'static str {
                self.upper_name()
            }

            /// The member's integer value.
            #[getter]
            fn value(&self) -> i32 {
                *self as i32
            }
        }
    };
}

enum_name_value!(SoftPinAction, Preserve => "PRESERVE", Enable => "ENABLE", Disable => "DISABLE");
enum_name_value!(ReplicaStatus, Undefined => "UNDEFINED", Initialized => "INITIALIZED",
    Processing => "PROCESSING", Complete => "COMPLETE", Removed => "REMOVED", Failed => "FAILED");
enum_name_value!(ObjectDataType, Unknown => "UNKNOWN", Kvcache => "KVCACHE", Tensor => "TENSOR",
    Weight => "WEIGHT", Sample => "SAMPLE", Activation => "ACTIVATION", Gradient => "GRADIENT",
    OptimizerState => "OPTIMIZER_STATE", Metadata => "METADATA", General => "GENERAL");

impl Default for ReplicateConfig {
    fn default() -> Self {
        ReplicateConfig {
            replica_num: 1,
            soft_pin_action: SoftPinAction::Preserve,
            soft_pin_ttl_ms: None,
            with_hard_pin: false,
            preferred_segments: Vec::new(),
            preferred_segment: String::new(),
            prefer_alloc_in_same_node: false,
            nof_replica_num: 0,
            dfs_replica_num: 0,
            preferred_nof_segments: Vec::new(),
            data_type: ObjectDataType::Unknown,
            group_ids: None,
        }
    }
}

impl ReplicateConfig {
    /// The wire form, or why the config is invalid. `local_host` stands for "this node"
    /// when `prefer_alloc_in_same_node` is set.
    pub fn to_wire(&self, local_host: &str) -> Result<WireConfig, BindingError> {
        if self.nof_replica_num != 0 || self.dfs_replica_num != 0 {
            return Err(BindingError::NoTier {
                what: "nof_replica_num / dfs_replica_num (NVMe-oF and DFS replicas)",
            });
        }
        if !self.preferred_nof_segments.is_empty() {
            return Err(BindingError::NoTier {
                what: "preferred_nof_segments (NVMe-oF segments)",
            });
        }
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
