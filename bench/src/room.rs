//! How many keys of a size a case may write without making the master evict.
//!
//! The master reports its mounted capacity, what is allocated, and where background
//! eviction starts in its Ping answer. A case's working set is kept below that watermark
//! with headroom, so on a small cluster mc-bench measures reads of what it wrote rather than
//! misses of what the master evicted.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use mc_rpc::RpcClient;
use mc_schema::handshake::{DEFAULT_CLUSTER_ID, Role};
use mc_schema::msg::{Request, ResponseBody};

/// Share of the watermark a case may fill: the rest is headroom for other writers and for
/// allocator rounding, so eviction does not start.
const HEADROOM_FILL: f64 = 0.9;

/// The master allocates ranges in multiples of this (mc-master's `ALIGN_BYTES`), so a value
/// costs its size rounded up to it.
const ALLOC_ALIGN_BYTES: u64 = 64;

/// Connect and answer timeout of the Ping.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// The space the master reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    /// Bytes of all mounted segments.
    pub capacity_bytes: u64,
    /// Bytes allocated in them.
    pub allocated_bytes: u64,
    /// Allocated bytes at which the master starts evicting.
    pub watermark_bytes: u64,
}

/// The address of the master that leads for `master` (a `host:port` is itself; an
/// `etcd://` or `redis://` locator is resolved through its coordinator).
fn leader_of(master: &str) -> Result<String> {
    let loc =
        mc_coord::MasterLocator::parse(master).map_err(|e| anyhow!("--master {master}: {e}"))?;
    if !loc.is_coordinated() {
        return Ok(master.to_string());
    }
    let follower = mc_coord::ViewFollower::start(&loc, &mc_coord::cluster_id_from_env())
        .map_err(|e| anyhow!("following the leader at {master}: {e}"))?;
    let view = match follower.current() {
        Some(v) => Some(v),
        None => follower.wait_for_change(0, PING_TIMEOUT * 5),
    };
    view.map(|v| v.leader)
        .ok_or_else(|| anyhow!("no master leads at {master}"))
}

impl Room {
    /// Asks the master at `master` (an address or a locator) with one Ping.
    pub fn ask(master: &str) -> Result<Room> {
        let master = &leader_of(master)?;
        let what = || format!("asking the master at {master} for its free space");
        // An RpcError's message already names its cause, so it is not chained again.
        let failed = |e: mc_rpc::RpcError| anyhow!("{}: {e}", what());
        let mut rpc = RpcClient::connect(master, Role::Tool, DEFAULT_CLUSTER_ID, PING_TIMEOUT)
            .map_err(failed)?;
        let r = rpc
            .call(
                &Request::Ping { client_id: 0 },
                Instant::now() + PING_TIMEOUT,
            )
            .map_err(failed)?;
        let ResponseBody::PingAck {
            capacity_bytes,
            allocated_bytes,
            eviction_high_watermark_bytes,
            ..
        } = r.body
        else {
            bail!("{}: Ping answered {} {:?}", what(), r.status, r.message);
        };
        if capacity_bytes == 0 {
            bail!(
                "the master at {master} reports no capacity: no store node has mounted a \
                 segment yet (or the master is too old to report it)"
            );
        }
        Ok(Room {
            capacity_bytes,
            allocated_bytes,
            watermark_bytes: eviction_high_watermark_bytes,
        })
    }

    /// Bytes a case may allocate: [`HEADROOM_FILL`] of the watermark, less what is in use.
    pub fn budget_bytes(&self) -> u64 {
        ((self.watermark_bytes as f64 * HEADROOM_FILL) as u64).saturating_sub(self.allocated_bytes)
    }

    /// Keys of `size` bytes with `replicas` replicas each that fit in the budget.
    pub fn keys_that_fit(&self, size: u64, replicas: u32) -> u64 {
        let per_key = size.max(1).next_multiple_of(ALLOC_ALIGN_BYTES) * u64::from(replicas.max(1));
        self.budget_bytes() / per_key
    }

    /// One line describing the room, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} MiB usable below the eviction watermark ({} MiB of {} MiB capacity in use, \
             eviction starts at {} MiB)",
            self.budget_bytes() >> 20,
            self.allocated_bytes >> 20,
            self.capacity_bytes >> 20,
            self.watermark_bytes >> 20
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_below_the_watermark_with_headroom() {
        let room = Room {
            capacity_bytes: 512 << 20,
            allocated_bytes: 0,
            watermark_bytes: (512u64 << 20) / 100 * 95,
        };
        // 0.95 * 0.9 of 512 MiB is 437.8 MiB: 27 values of 16 MiB, 13 with two replicas.
        assert_eq!(room.keys_that_fit(16 << 20, 1), 27);
        assert_eq!(room.keys_that_fit(16 << 20, 2), 13);
        assert!(room.keys_that_fit(4096, 1) * 4096 < room.watermark_bytes);
        // A 100-byte value takes 128 bytes of segment.
        assert_eq!(room.keys_that_fit(100, 1), room.budget_bytes() / 128);
        let full = Room {
            allocated_bytes: 500 << 20,
            ..room
        };
        assert_eq!(full.budget_bytes(), 0);
        assert_eq!(full.keys_that_fit(4096, 1), 0);
    }
}
