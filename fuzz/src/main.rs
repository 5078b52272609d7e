//! `mc-fuzz SECONDS [TARGET...]`: runs every decoder target (or those named) for SECONDS
//! each, then the HTTP target against a live master and node; `mc-fuzz replay FILE...`
//! runs saved inputs through every target with panics shown. Exits 1 on any crash.

use std::time::{Duration, Instant};

use mc_fuzz::engine::{self, Rng};
use mc_fuzz::targets;

fn replay(files: &[String]) -> Result<(), String> {
    for f in files {
        let data = std::fs::read(f).map_err(|e| format!("{f}: {e}"))?;
        for t in targets::all() {
            (t.run)(&data);
        }
        println!("{f}: ok");
    }
    Ok(())
}

/// Requests in flight at once against the two servers: one connection each is mostly
/// kernel and server time, so a few senders keep both servers busy.
const HTTP_SENDERS: u64 = 4;

fn http_target(seconds: u64) -> Result<(u64, u64), String> {
    use mc_cluster::{ClusterSpec, LocalCluster};
    let c = LocalCluster::start(ClusterSpec::default()).map_err(|e| e.to_string())?;
    let addrs = [c.metrics_addr(), c.node_rest_addr(0)];
    let end = Instant::now() + Duration::from_secs(seconds);
    let counts: Vec<(u64, u64)> = std::thread::scope(|s| {
        let senders: Vec<_> = (0..HTTP_SENDERS)
            .map(|i| {
                let addrs = &addrs;
                s.spawn(move || http_sender(addrs, 0x5eed + i, end))
            })
            .collect();
        senders
            .into_iter()
            .map(|t| t.join().unwrap_or((0, 1)))
            .collect()
    });
    for a in &addrs {
        if mc_fuzz::http::send(a, b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n") != Some(200)
        {
            return Err(format!("{a} no longer answers /health"));
        }
    }
    Ok(counts
        .iter()
        .fold((0, 0), |(n, bad), (a, b)| (n + a, bad + b)))
}

/// One sender of fuzzed requests until `end`: (requests sent, bad answers). A request
/// answered with a 5xx other than 503, or not at all, is saved under `crashes/http/`.
fn http_sender(addrs: &[String; 2], seed: u64, end: Instant) -> (u64, u64) {
    let mut rng = Rng::new(seed);
    let seeds: Vec<Vec<u8>> = vec![
        b"key=a&force=true".to_vec(),
        br#"keys=a,b{"size":16777216,"protocol":"tcp"}"#.to_vec(),
        br#"{"key":"k","value":"dmFsdWU=","replica_num":2}"#.to_vec(),
        br#"{"segment_ids":[1,2],"timeout":"5s"}"#.to_vec(),
    ];
    let (mut n, mut bad) = (0u64, 0u64);
    while Instant::now() < end {
        let b = engine::input(&mut rng, &seeds, 256);
        let req = mc_fuzz::http::request_from(&b, &mut rng);
        let addr = &addrs[rng.below(2)];
        n += 1;
        match mc_fuzz::http::send(addr, &req) {
            Some(code) if code < 500 || code == 503 => {}
            other => {
                bad += 1;
                let dir = std::path::Path::new("crashes/http");
                let _ = std::fs::create_dir_all(dir);
                let _ = std::fs::write(dir.join(format!("{seed:x}-{n}.req")), &req);
                eprintln!("http: {addr} answered {other:?} to request {n}");
            }
        }
    }
    (n, bad)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("replay") {
        if let Err(e) = replay(&args[1..]) {
            eprintln!("{e}");
            std::process::exit(1);
        }
        return;
    }
    let Some(seconds) = args.first().and_then(|s| s.parse::<u64>().ok()) else {
        eprintln!("usage: mc-fuzz SECONDS [TARGET...] | mc-fuzz replay FILE...");
        std::process::exit(2);
    };
    let only = &args[1..];
    // Panics are expected and counted; their messages come back with `replay`.
    std::panic::set_hook(Box::new(|_| {}));
    let mut crashed = false;
    for t in targets::all() {
        if !only.is_empty() && !only.iter().any(|o| o == t.name) {
            continue;
        }
        let r = engine::run(
            t.name,
            &t.run,
            &(t.seeds)(),
            t.max_len,
            Duration::from_secs(seconds),
            u64::MAX,
            seconds,
        );
        println!(
            "{:<20} {:>12} inputs {:>4} crashes",
            t.name, r.inputs, r.crashes
        );
        for f in &r.crash_files {
            println!("  crash: {}", f.display());
        }
        crashed |= r.crashes > 0;
    }
    if only.is_empty() || only.iter().any(|o| o == "http") {
        let _ = std::panic::take_hook();
        match http_target(seconds) {
            Ok((n, bad)) => {
                println!("{:<20} {:>12} inputs {:>4} crashes", "http", n, bad);
                crashed |= bad > 0;
            }
            Err(e) => {
                println!("http: {e}");
                crashed = true;
            }
        }
    }
    if crashed {
        std::process::exit(1);
    }
}
