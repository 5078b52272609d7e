//! `mc-fuzz [--inputs N] SECONDS [TARGET...]`: runs every decoder target (or those named)
//! for SECONDS each, then the HTTP target against a live master and node; with `--inputs N`
//! each target stops as soon as it has tried N inputs (SECONDS is then only a cap), so a
//! run reaches a set count however loaded the machine is. `mc-fuzz replay FILE...` runs
//! saved inputs through every target with panics shown. Exits 1 on any crash, and 3 when
//! `--inputs` was given and a target hit the SECONDS cap before reaching N.

use std::sync::atomic::{AtomicU64, Ordering};
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

fn http_target(seconds: u64, max_inputs: u64) -> Result<(u64, u64), String> {
    use mc_cluster::{ClusterSpec, LocalCluster};
    let c = LocalCluster::start(ClusterSpec::default()).map_err(|e| e.to_string())?;
    let addrs = [c.metrics_addr(), c.node_rest_addr(0)];
    let end = Instant::now() + Duration::from_secs(seconds);
    let sent = AtomicU64::new(0);
    let counts: Vec<(u64, u64)> = std::thread::scope(|s| {
        let senders: Vec<_> = (0..HTTP_SENDERS)
            .map(|i| {
                let (addrs, sent) = (&addrs, &sent);
                let stop = Stop {
                    end,
                    sent,
                    max_inputs,
                };
                s.spawn(move || http_sender(addrs, 0x5eed + i, stop))
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

/// When the HTTP senders stop: at `end`, or once they have sent `max_inputs` between them.
#[derive(Clone, Copy)]
struct Stop<'a> {
    end: Instant,
    sent: &'a AtomicU64,
    max_inputs: u64,
}

impl Stop<'_> {
    /// Takes one request's place in the count; false once it is time to stop.
    fn next(&self) -> bool {
        Instant::now() < self.end && self.sent.fetch_add(1, Ordering::Relaxed) < self.max_inputs
    }
}

/// One sender of fuzzed requests until `stop` says so: (requests sent, bad answers). A
/// request answered with a 5xx other than 503, or not at all, is saved under `crashes/http/`.
fn http_sender(addrs: &[String; 2], seed: u64, stop: Stop) -> (u64, u64) {
    let mut rng = Rng::new(seed);
    let seeds: Vec<Vec<u8>> = vec![
        b"key=a&force=true".to_vec(),
        br#"keys=a,b{"size":16777216,"protocol":"tcp"}"#.to_vec(),
        br#"{"key":"k","value":"dmFsdWU=","replica_num":2}"#.to_vec(),
        br#"{"segment_ids":[1,2],"timeout":"5s"}"#.to_vec(),
    ];
    let (mut n, mut bad) = (0u64, 0u64);
    while stop.next() {
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

/// The command line after `replay` is ruled out.
struct Args {
    seconds: u64,
    /// Inputs per target at most (`u64::MAX`: SECONDS alone decides).
    max_inputs: u64,
    only: Vec<String>,
}

const USAGE: &str = "usage: mc-fuzz [--inputs N] SECONDS [TARGET...] | mc-fuzz replay FILE...";

fn parse(mut args: &[String]) -> Option<Args> {
    let mut max_inputs = u64::MAX;
    if args.first().map(String::as_str) == Some("--inputs") {
        max_inputs = args.get(1)?.replace('_', "").parse().ok().filter(|&n| n > 0)?;
        args = &args[2..];
    }
    let seconds = args.first()?.parse().ok()?;
    Some(Args {
        seconds,
        max_inputs,
        only: args[1..].to_vec(),
    })
}

/// Prints one target's row; true when it reached the input count it was given.
fn report(name: &str, inputs: u64, crashes: u64, took: Duration, max_inputs: u64) -> bool {
    let rate = inputs as f64 / took.as_secs_f64().max(1e-3);
    println!(
        "{name:<20} {inputs:>12} inputs {crashes:>4} crashes {:>8.1} s {rate:>10.0}/s",
        took.as_secs_f64()
    );
    max_inputs == u64::MAX || inputs >= max_inputs
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
    let Some(a) = parse(&args) else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let wanted = |name: &str| a.only.is_empty() || a.only.iter().any(|o| o == name);
    // Panics are expected and counted; their messages come back with `replay`.
    std::panic::set_hook(Box::new(|_| {}));
    let (mut crashed, mut short) = (false, false);
    for t in targets::all().iter().filter(|t| wanted(t.name)) {
        let start = Instant::now();
        let r = engine::run(
            t.name,
            &t.run,
            &(t.seeds)(),
            t.max_len,
            Duration::from_secs(a.seconds),
            a.max_inputs,
            a.seconds,
        );
        short |= !report(t.name, r.inputs, r.crashes, start.elapsed(), a.max_inputs);
        for f in &r.crash_files {
            println!("  crash: {}", f.display());
        }
        crashed |= r.crashes > 0;
    }
    if wanted("http") {
        let _ = std::panic::take_hook();
        let start = Instant::now();
        match http_target(a.seconds, a.max_inputs) {
            Ok((n, bad)) => {
                short |= !report("http", n, bad, start.elapsed(), a.max_inputs);
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
    if short {
        eprintln!("mc-fuzz: a target hit the {} s cap before {} inputs", a.seconds, a.max_inputs);
        std::process::exit(3);
    }
}
