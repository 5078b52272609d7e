//! Dev harness: a node holding N objects (memory + SSD) restarts; its successor reports the
//! N SSD records; prints how long each master step takes.

use std::sync::Arc;
use std::time::Instant;

use mc_master::clock::ManualClock;
use mc_master::service::{MasterService, ServiceConfig};
use mc_rpc::Reply;
use mc_schema::msg::{InventoryEntry, Request, Response, ResponseBody};

const SIZE: u64 = 4096;

/// mimalloc rather than glibc's malloc: the master holds millions of small allocations
/// (keys, replica lists) and frees them in bulk (adoption, dropping a node), where glibc
/// spent a fifth of the time consolidating and unlinking chunks (`docs/benchmarks.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn call(svc: &MasterService, req: Request) -> Response {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    let rt = RT.get_or_init(|| tokio::runtime::Runtime::new().expect("a tokio runtime"));
    match mc_rpc::Service::handle(svc, 0, req) {
        Reply::Now(r) => r,
        Reply::Later(f) => rt.block_on(f),
    }
}

fn mount(svc: &MasterService, client: u64, id: u64, name: &str, size: u64, disk: bool) -> u64 {
    let r = svc.handle_now(
        0,
        Request::MountSegment {
            client_id: client,
            segment_id: id,
            name: name.into(),
            host: "h".into(),
            endpoint: "h:1".into(),
            size,
            term_seen: 0,
            reports_inventory: true,
            disk,
        },
    );
    match r.body {
        ResponseBody::MountAck { term, .. } => term,
        other => panic!("mount answered {} {other:?}", r.status),
    }
}

fn entry(i: u64, seg: u64, offset: u64, generation: u64, replica: u32) -> InventoryEntry {
    InventoryEntry {
        key: format!("warm/{i:012}"),
        segment_id: seg,
        offset,
        length: SIZE,
        generation,
        put_generation: generation,
        object_size: SIZE,
        slice_index: 0,
        slice_count: 1,
        crc32c: i as u32,
        replica_index: replica,
        pins: 0,
        committed: true,
    }
}

fn report(svc: &MasterService, client: u64, entries: Vec<InventoryEntry>) {
    for chunk in entries.chunks(4096) {
        let r = call(
            svc,
            Request::ReportInventory {
                client_id: client,
                entries: chunk.to_vec(),
            },
        );
        assert_eq!(r.status, 0, "{}", r.message);
    }
}

fn main() {
    tracing_subscriber::fmt().init();
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let clock = Arc::new(ManualClock::default());
    clock.advance_ms(1_000);
    let svc = MasterService::new(
        ServiceConfig {
            client_ttl_ms: 10_000,
            ..ServiceConfig::default()
        },
        clock.clone(),
    );
    let seg_bytes = (n * SIZE * 5 / 4).next_multiple_of(1 << 20);
    let term = mount(&svc, 1, 11, "h:1", seg_bytes, false);
    mount(&svc, 1, 12, "h:1#ssd", 1 << 40, true);
    let g = |i: u64| mc_schema::generation::compose(term, i + 1);
    let mut first: Vec<InventoryEntry> = Vec::with_capacity(2 * n as usize);
    for i in 0..n {
        first.push(entry(i, 11, i * SIZE, g(i), 0));
        first.push(entry(i, 12, i * 8192, g(i), u32::MAX));
    }
    report(&svc, 1, first);
    let t = Instant::now();
    let r = call(&svc, Request::InventoryDone { client_id: 1 });
    println!("first adoption: {:?} {:?}", t.elapsed(), r.body);
    clock.advance_ms(20);
    // The restarted node: new client id, new segment ids, same names.
    mount(&svc, 2, 21, "h:1", seg_bytes, false);
    mount(&svc, 2, 22, "h:1#ssd", 1 << 40, true);
    let second: Vec<InventoryEntry> = (0..n)
        .map(|i| entry(i, 22, i * 8192, g(i), u32::MAX))
        .collect();
    let t = Instant::now();
    report(&svc, 2, second);
    println!("reports: {:?}", t.elapsed());
    let t = Instant::now();
    let r = call(&svc, Request::InventoryDone { client_id: 2 });
    println!("second adoption: {:?} {:?}", t.elapsed(), r.body);
}
