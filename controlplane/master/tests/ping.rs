//! The Ping answer tells tools where the admin HTTP is and how full the cluster is, so
//! mcctl finds the admin port and mc-bench sizes its working set below the watermark.

mod common;

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
            write_secret: Vec::new(),
        }
    );

    common::mount(&svc, 7, 1, "h", SEG);
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

/// The secret in a Ping answer to `client_id`.
fn secret_for(svc: &MasterService, client_id: u64) -> Vec<u8> {
    match ping(svc, client_id) {
        ResponseBody::PingAck { write_secret, .. } => write_secret,
        other => panic!("Ping must answer PingAck, not {other:?}"),
    }
}

#[test]
fn only_nodes_get_the_secret_and_a_rotation_switches_once_every_node_holds_it() {
    use mc_master::secret::{Staged, WriteSecrets};
    let old: &[u8] = b"the secret at start, 32 bytes...";
    let new: &[u8] = b"the rotated secret, 32 bytes....";
    let secrets = Arc::new(WriteSecrets::new(old.into(), 0));
    let svc = MasterService::new(
        ServiceConfig {
            write_secrets: secrets.clone(),
            ..ServiceConfig::default()
        },
        Arc::new(ManualClock::default()),
    );
    let mount = |client_id: u64, segment_id: u64| {
        let r = svc.handle_now(
            0,
            Request::MountSegment {
                client_id,
                segment_id,
                name: format!("h:{segment_id}"),
                host: "h".into(),
                endpoint: format!("h:{segment_id}"),
                size: SEG,
                term_seen: 0,
                reports_inventory: false,
                disk: false,
            },
        );
        match r.body {
            ResponseBody::MountAck { write_secret, .. } => write_secret,
            other => panic!("MountSegment answered {} {other:?}", r.status),
        }
    };
    assert_eq!(mount(7, 1), old);
    assert_eq!(
        secret_for(&svc, 7),
        old,
        "a node is told the current secret"
    );
    assert!(
        secret_for(&svc, 5).is_empty(),
        "a plain client (no segment) gets none"
    );

    assert_eq!(secrets.stage(new, 0), Staged::Pending);
    assert_eq!(
        secret_for(&svc, 7),
        new,
        "the pending secret goes to the nodes"
    );
    assert!(secret_for(&svc, 5).is_empty());
    // Node 8 mounts during the rotation: its MountAck has the secret signed with now.
    assert_eq!(mount(8, 2), old);
    assert_eq!(secret_for(&svc, 7), new);
    assert_eq!(secrets.fingerprint(), mc_schema::token::fingerprint(old));
    assert_eq!(secret_for(&svc, 8), new);
    assert_eq!(
        secrets.fingerprint(),
        mc_schema::token::fingerprint(old),
        "node 8 answered once"
    );
    assert_eq!(secret_for(&svc, 8), new);
    assert_eq!(secrets.fingerprint(), mc_schema::token::fingerprint(new));
    assert_eq!(secrets.rotations_total(), 1);
    assert_eq!(mount(9, 3), new, "now MountAcks carry the new secret");
}
