//! The Ping answer tells tools where the admin HTTP is and how full the cluster is, so
//! mcctl finds the admin port and mc-bench sizes its working set below the watermark.

use std::sync::Arc;

use mc_master::clock::ManualClock;
use mc_master::service::{MasterService, ServiceConfig};

use mc_schema::msg::{ReplicateConfig, Request, ResponseBody};

const SEG: u64 = 8 << 20;

fn ping(svc: &MasterService, client_id: u64) -> ResponseBody {
    let r = svc.handle_now(0, Request::Ping { client_id });
    assert_eq!(r.status, 0, "{r:?}");
    r.body
}

#[test]
fn ping_reports_admin_port_capacity_usage_and_watermark() {
    let svc = MasterService::new(
        ServiceConfig {
            eviction_high_watermark_ratio: 0.75,
            admin_port: 9177,
            ..ServiceConfig::default()
        },
        Arc::new(ManualClock::default()),
    );
    let empty = ping(&svc, 0);
    assert_eq!(
        empty,
        ResponseBody::PingAck {
            client_known: false,
            view_version: 1,
            admin_port: 9177,
            capacity_bytes: 0,
            allocated_bytes: 0,
            eviction_high_watermark_bytes: 0,
        }
    );

    let mounted = svc.handle_now(
        0,
        Request::MountSegment {
            client_id: 7,
            segment_id: 1,
            name: "h:1".into(),
            host: "h".into(),
            endpoint: "h:1".into(),
            size: SEG,
            term_seen: 0,
            reports_inventory: false,
            disk: false,
        },
    );
    assert_eq!(mounted.status, 0, "{mounted:?}");
    let started = svc.handle_now(
        0,
        Request::PutStart {
            client_id: 1,
            client_host: String::new(),
            items: vec![("k".into(), 1 << 20)],
            config: ReplicateConfig::default(),
        },
    );
    assert_eq!(started.status, 0, "{started:?}");

    // A mounting node is a known client; the pending put's space counts as allocated.
    let ResponseBody::PingAck {
        client_known,
        admin_port,
        capacity_bytes,
        allocated_bytes,
        eviction_high_watermark_bytes,
        ..
    } = ping(&svc, 7)
    else {
        panic!("Ping must answer PingAck")
    };
    assert!(client_known);
    assert_eq!(admin_port, 9177);
    assert_eq!(capacity_bytes, SEG);
    assert_eq!(allocated_bytes, 1 << 20);
    assert_eq!(eviction_high_watermark_bytes, SEG / 4 * 3);
}
