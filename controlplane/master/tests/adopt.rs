//! Re-adoption of node inventories, driven in-process through the RPC handler: what a
//! report proves is adopted, everything else (overlaps, a future term, incomplete replicas,
//! wrong lengths, misalignment, unknown segments) is refused and the node is told to forget
//! it; a node that reports late only adds replicas; a removed key cannot come back.

use std::sync::Arc;

use mc_master::clock::ManualClock;
use mc_master::service::{MasterService, ServiceConfig};
use mc_rpc::Reply;
use mc_schema::generation::compose;
use mc_schema::msg::{InventoryEntry, Notice, Request, Response, ResponseBody};

const SEG: u64 = 64 << 20;

fn master(clock: Arc<ManualClock>) -> Arc<MasterService> {
    MasterService::new(
        ServiceConfig {
            client_ttl_ms: 10_000,
            ..ServiceConfig::default()
        },
        clock,
    )
}

/// Mounts segment `id` of node `client` announcing a report; returns the master's term.
fn mount(svc: &MasterService, client: u64, id: u64, term_seen: u64) -> u64 {
    let name = format!("h{client}:{id}");
    let r = svc.handle_now(
        0,
        Request::MountSegment {
            client_id: client,
            segment_id: id,
            name: name.clone(),
            host: format!("h{client}"),
            endpoint: name,
            size: SEG,
            term_seen,
            reports_inventory: true,
            disk: false,
        },
    );
    match r.body {
        ResponseBody::MountAck { term, .. } => term,
        other => panic!("mount answered {} {other:?}", r.status),
    }
}

/// An entry of a one-slice object.
fn entry(key: &str, segment_id: u64, offset: u64, len: u64, generation: u64) -> InventoryEntry {
    InventoryEntry {
        key: key.into(),
        segment_id,
        offset,
        length: len,
        generation,
        put_generation: generation,
        object_size: len,
        slice_index: 0,
        slice_count: 1,
        crc32c: 7,
        replica_index: 0,
        pins: 0,
        committed: true,
    }
}

/// Answers a request, waiting for a deferred answer (an adoption runs off the RPC runtime).
fn call(svc: &MasterService, req: Request) -> Response {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    let rt = RT.get_or_init(|| tokio::runtime::Runtime::new().expect("a tokio runtime"));
    match mc_rpc::Service::handle(svc, 0, req) {
        Reply::Now(r) => r,
        Reply::Later(f) => rt.block_on(f),
    }
}

fn report(svc: &MasterService, client: u64, entries: Vec<InventoryEntry>) -> Response {
    let r = call(
        svc,
        Request::ReportInventory {
            client_id: client,
            entries,
        },
    );
    assert_eq!(r.status, 0, "{}", r.message);
    call(svc, Request::InventoryDone { client_id: client })
}

fn replicas(svc: &MasterService, key: &str) -> Option<usize> {
    match svc
        .handle_now(
            0,
            Request::GetReplicaList {
                keys: vec![key.into()],
            },
        )
        .body
    {
        ResponseBody::ReplicaLists(v) if v[0].status == 0 => Some(v[0].replicas.len()),
        _ => None,
    }
}

/// The free notices queued for `client` (acknowledging nothing).
fn freed(svc: &MasterService, client: u64) -> Vec<(u64, u64)> {
    match svc
        .handle_now(
            0,
            Request::Sync {
                client_id: client,
                acked_seq: 0,
                acked_term: 0,
            },
        )
        .body
    {
        ResponseBody::Notices { notices, .. } => notices
            .into_iter()
            .filter_map(|n| match n {
                Notice::Free {
                    segment_id, offset, ..
                } => Some((segment_id, offset)),
                Notice::Commit { .. } | Notice::Offload { .. } | Notice::Promote { .. } => None,
            })
            .collect(),
        other => panic!("sync answered {other:?}"),
    }
}

#[test]
fn a_report_adopts_what_it_proves_and_refuses_the_rest() {
    let svc = master(Arc::new(ManualClock::default()));
    let term = mount(&svc, 1, 10, 3);
    assert_eq!(term, 4, "one above the highest term a node saw");
    let old = |c| compose(3, c);
    let mut two_slices = entry("d", 10, 1 << 20, 16 << 20, old(20));
    two_slices.object_size = 20 << 20;
    two_slices.slice_count = 2;
    let mut short = entry("e", 10, 40 << 20, 50, old(21));
    short.object_size = 100;
    let entries = vec![
        entry("a", 10, 0, 100, old(10)),
        entry("b", 10, 0, 100, old(5)),           // overlaps a, older
        entry("c", 10, 4096, 100, compose(9, 1)), // a term above the master's
        two_slices,                               // its second slice is missing
        short,                                    // not the length its size implies
        entry("a", 10, 0, 100, old(10)),          // the same slice reported twice
        entry("g", 10, 8192 + 1, 100, old(22)),   // misaligned
        entry("h", 99, 0, 100, old(23)),          // a segment this node does not have
    ];
    let r = report(&svc, 1, entries);
    assert_eq!(r.body, ResponseBody::Count(1));
    assert_eq!(replicas(&svc, "a"), Some(1));
    for k in ["b", "c", "d", "e", "g", "h"] {
        assert_eq!(replicas(&svc, k), None, "{k}");
    }
    let mut f = freed(&svc, 1);
    f.sort_unstable();
    assert_eq!(
        f,
        vec![
            (10, 0),
            (10, 4096),
            (10, 8193),
            (10, 1 << 20),
            (10, 40 << 20),
            (99, 0)
        ],
        "every refused slice but the duplicate is freed at the node"
    );
    // The adopted range is taken: a new put lands elsewhere; the refused ones are free.
    let r = call(
        &svc,
        Request::PutStart {
            client_id: 1,
            client_host: String::new(),
            items: vec![("new".into(), 100)],
            config: Default::default(),
        },
    );
    let ResponseBody::PutStart(v) = r.body else {
        panic!("{r:?}")
    };
    let s = &v[0].replicas[0].slices[0];
    assert_ne!(s.offset, 0);
    assert_eq!(mc_schema::generation::term_of(s.generation), 4);
}

#[test]
fn late_nodes_only_add_replicas_and_removed_keys_stay_removed() {
    let clock = Arc::new(ManualClock::default());
    let svc = master(clock.clone());
    mount(&svc, 1, 10, 2);
    let g = compose(2, 1);
    report(
        &svc,
        1,
        vec![
            entry("kept", 10, 0, 64, g),
            entry("gone", 10, 4096, 64, compose(2, 2)),
        ],
    );
    // A remove during recovery is remembered: a report naming the key later is refused.
    let r = call(
        &svc,
        Request::Remove {
            keys: vec!["gone".into()],
            force: true,
        },
    );
    assert_eq!(r.body, ResponseBody::Statuses(vec![0]));
    mount(&svc, 2, 20, 2);
    report(&svc, 2, vec![entry("gone", 20, 0, 64, compose(2, 2))]);
    assert_eq!(replicas(&svc, "gone"), None);
    // Past the window (client_ttl), a late node adds a replica of the same put, and
    // nothing the master does not know.
    clock.advance_ms(20_000);
    mount(&svc, 3, 30, 2);
    let mut replica = entry("kept", 30, 0, 64, compose(2, 3));
    (replica.put_generation, replica.replica_index) = (g, 1);
    let r = report(
        &svc,
        3,
        vec![replica, entry("unknown", 30, 4096, 64, compose(2, 9))],
    );
    assert_eq!(r.body, ResponseBody::Count(1));
    assert_eq!(replicas(&svc, "kept"), Some(2));
    assert_eq!(replicas(&svc, "unknown"), None);
    assert!(freed(&svc, 3).contains(&(30, 4096)));
}
