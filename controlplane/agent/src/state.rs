//! What the agent shares with the REST server and with programs that embed a node: the
//! status the agent publishes, the [`Command`]s it serves and their answers, and segment ids
//! as the REST API writes them.
//!
//! Both sides depend on this module and not on each other: the agent ([`crate::agent`])
//! serves commands and updates the status, the REST server ([`crate::rest`]) sends commands
//! and reads the status, and [`crate::node`] wires the two together.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::Duration;

use mc_schema::agent::{SegmentInfo, SegmentKind};
use tokio::sync::oneshot;

/// What the node's REST `/health` reports, and the segment list a
/// [`NodeHandle`](crate::node::NodeHandle) shows.
#[derive(Debug, Default)]
pub struct AgentStatus {
    /// Segments the master has accepted.
    pub mounted_segments: AtomicUsize,
    /// Whether the last master call succeeded.
    pub master_connected: AtomicBool,
    /// Every segment the node serves, start-up segments first.
    pub segments: Mutex<Vec<SegmentInfo>>,
}

impl AgentStatus {
    /// A copy of the node's segment list.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.segments
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The request names something this node does not serve.
    #[error("{0}")]
    NotFound(String),
    /// The request is not valid here (nothing was changed).
    #[error("{0}")]
    Invalid(String),
    /// The shard could not make the segment (no memory, a missing or short file).
    #[error("{0}")]
    Refused(String),
    /// The shard or the master failed (nothing was left half done).
    #[error("{0}")]
    Failed(String),
    /// The node is stopping.
    #[error("the store node is stopping")]
    Stopping,
}

/// A segment mounted on request.
pub type MountResult = Result<SegmentInfo, CommandError>;

/// A request to the agent (from the REST server or an embedding program).
#[derive(Debug)]
pub enum Command {
    /// Allocate `size_bytes` more memory in one shard and mount it as a new segment.
    Mount {
        /// Bytes asked for.
        size_bytes: u64,
        /// The answer.
        reply: oneshot::Sender<MountResult>,
    },
    /// Map part of a shared-memory file and mount it as a new segment.
    MountShm {
        /// File (`/dev/shm/<name>`), already checked by the caller.
        path: String,
        /// Start in the file.
        offset_bytes: u64,
        /// Bytes to map.
        size_bytes: u64,
        /// The answer.
        reply: oneshot::Sender<MountResult>,
    },
    /// Map the node's CXL memory (`--cxl_path`) and mount it as its CXL segment.
    MountCxl {
        /// Device or stand-in file.
        path: String,
        /// Bytes to map.
        size_bytes: u64,
        /// The answer.
        reply: oneshot::Sender<MountResult>,
    },
    /// Drain segments at the master now; after `grace` unmount them there and release them
    /// in their shards. With a zero grace the answer comes once they are released, otherwise
    /// as soon as they are draining.
    Unmount {
        /// Segments to unmount; all must be of `kind`, else nothing happens.
        segment_ids: Vec<u64>,
        /// The kind the caller mounted them as (`Allocated` or `Shm`).
        kind: SegmentKind,
        /// How long they stay readable first.
        grace: Duration,
        /// The answer.
        reply: oneshot::Sender<Result<(), CommandError>>,
    },
    /// The data plane's metric families, asked of shard 0 over its ring (a node split into
    /// processes renders its `/metrics` with them).
    Metrics {
        /// The answer: Prometheus text.
        reply: std::sync::mpsc::SyncSender<String>,
    },
    /// Notices from the master for the shards' object indexes (from the agent's own sync
    /// thread, never from REST).
    Notices {
        /// The master's term.
        term: u64,
        /// Sequence number of the last notice.
        seq: u64,
        /// The notices.
        notices: Vec<mc_schema::msg::Notice>,
    },
}

/// A segment id as the REST API shows it: Mooncake's segment ids are UUIDs, ours are 64-bit,
/// so the id fills the low half of a UUID (`00000000-0000-0000-xxxx-xxxxxxxxxxxx`).
pub fn format_segment_id(id: u64) -> String {
    format!(
        "00000000-0000-0000-{:04x}-{:012x}",
        id >> 48,
        id & 0xffff_ffff_ffff
    )
}

/// Parses a segment id written by [`format_segment_id`] (hex digits in either case).
pub fn parse_segment_id(s: &str) -> Option<u64> {
    let rest = s.strip_prefix("00000000-0000-0000-")?;
    let (hi, lo) = rest.split_once('-')?;
    if hi.len() != 4 || lo.len() != 12 {
        return None;
    }
    if !hi.chars().chain(lo.chars()).all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let id = (u64::from_str_radix(hi, 16).ok()? << 48) | u64::from_str_radix(lo, 16).ok()?;
    (id != 0).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_ids_roundtrip_in_uuid_form() {
        for id in [1u64, 0xdead_beef, u64::MAX, 0x0123_4567_89ab_cdef] {
            let s = format_segment_id(id);
            assert_eq!(s.len(), 36, "{s}");
            assert_eq!(parse_segment_id(&s), Some(id));
            assert_eq!(parse_segment_id(&s.to_uppercase()), Some(id));
        }
        assert_eq!(
            format_segment_id(0x0123_4567_89ab_cdef),
            "00000000-0000-0000-0123-456789abcdef"
        );
        for bad in [
            "",
            "00000000-0000-0000-0000-000000000000",
            "10000000-0000-0000-0000-000000000001",
            "00000000-0000-0000-000-0000000000001",
            "00000000-0000-0000-00g0-000000000001",
            "00000000-0000-0000-+000-000000000001",
            "42",
        ] {
            assert_eq!(parse_segment_id(bad), None, "{bad}");
        }
    }
}
