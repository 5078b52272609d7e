//! Set-up and look-ups the master's in-process tests share: a service on a manual clock
//! with memory segments mounted, and the status of a key as a get would see it.

// Each test binary uses its own subset.
#![allow(dead_code)]

use std::sync::Arc;

use mc_master::clock::ManualClock;
use mc_master::service::{MasterService, ServiceConfig};
use mc_schema::msg::{ReplicaListResult, Request, Response, ResponseBody};

/// Mounts an empty memory segment `segment_id` of `size` bytes for `client_id` on `host`
/// (named and reached at `host:1`).
pub fn mount(svc: &MasterService, client_id: u64, segment_id: u64, host: &str, size: u64) {
    let name = format!("{host}:1");
    let r = svc.handle_now(
        0,
        Request::MountSegment {
            client_id,
            segment_id,
            name: name.clone(),
            host: host.to_string(),
            endpoint: name,
            size,
            term_seen: 0,
            reports_inventory: false,
            disk: false,
        },
    );
    assert_eq!(r.status, 0, "mount answered {r:?}");
}

/// A service configured by `cfg` on a manual clock, with one memory segment of `size`
/// bytes mounted for each host of `hosts` (segment id = client id = 1, 2, ...).
pub fn master_on(
    cfg: ServiceConfig,
    hosts: &[&str],
    size: u64,
) -> (Arc<MasterService>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::default());
    let svc = MasterService::new(cfg, clock.clone());
    for (i, host) in hosts.iter().enumerate() {
        let id = i as u64 + 1;
        mount(&svc, id, id, host, size);
    }
    (svc, clock)
}

/// A service configured by `cfg` with one segment of `size` bytes mounted by client 7 on
/// host `h`.
pub fn master_with_one_segment(
    cfg: ServiceConfig,
    size: u64,
) -> (Arc<MasterService>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::default());
    let svc = MasterService::new(cfg, clock.clone());
    mount(&svc, 7, 1, "h", size);
    (svc, clock)
}

/// The GetReplicaList answer for `key`.
pub fn replica_list(svc: &MasterService, key: &str) -> ReplicaListResult {
    let r = svc.handle_now(
        0,
        Request::GetReplicaList {
            keys: vec![key.into()],
        },
    );
    let ResponseBody::ReplicaLists(mut v) = r.body else {
        panic!("{r:?}")
    };
    v.remove(0)
}

/// The status a get of `key` answers (0 = found).
pub fn read_status(svc: &MasterService, key: &str) -> i32 {
    replica_list(svc, key).status
}

/// The per-key statuses of an answer.
pub fn statuses(r: Response) -> Vec<i32> {
    let ResponseBody::Statuses(v) = r.body else {
        panic!("{r:?}")
    };
    v
}

/// Bytes allocated in the mounted segments.
pub fn used(svc: &MasterService) -> u64 {
    svc.segments.usage().0
}
