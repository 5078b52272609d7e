//! Gets from several client processes at once: the `get_4proc` rows.
//!
//! Each process is this binary started again as `mc-bench get-worker`, with its own client
//! (its own connections and location cache). Each reads every key of the case once untimed
//! (so its cache is warm, as a long-running reader's would be), says it is ready, and on
//! `go` (sent to all at once) reads every key again, timed. It prints one JSON line with its
//! counts and its latency histogram; the parent adds the counts and the histograms, and
//! takes the busiest process's time, so ops/s is what the processes did together.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use mooncake_rs::{MemcpyMode, ReplicateConfig, Store, StoreConfig};
use serde::{Deserialize, Serialize};

use crate::payload;
use crate::run::{self, Op, Phase, PhaseResult};

/// Processes of a `get_4proc` row.
pub const PROCESSES: usize = 4;

/// What a worker is asked to read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// The cluster.
    pub master: String,
    /// Value size.
    pub size: u64,
    /// Keys per call.
    pub batch: usize,
    /// Keys 0..keys.
    pub keys: u64,
    /// Key length.
    pub key_size: usize,
    /// Cap on the timed pass, ms (0 = none).
    pub max_ms: u64,
    /// Read same-host (`--same-host`) rather than over TCP.
    pub same_host: bool,
}

/// What a worker reports.
#[derive(Debug, Serialize, Deserialize)]
struct Report {
    ops: u64,
    failed: u64,
    misses: u64,
    secs: f64,
    cache: (u64, u64),
    /// (latency µs, calls) pairs of the histogram.
    hist: Vec<(u64, u64)>,
}

fn phase<'a>(job: &Job, op: Op, template: &'a [u8], cfg: &'a ReplicateConfig) -> Phase<'a> {
    Phase {
        op,
        size: job.size,
        batch: job.batch,
        threads: 1,
        keys: job.keys,
        max_time: (job.max_ms > 0).then(|| Duration::from_millis(job.max_ms)),
        zipf: None,
        key_size: job.key_size,
        template,
        config: cfg,
    }
}

/// `mc-bench get-worker JOB_JSON`: the worker side.
pub fn worker(job_json: &str) -> Result<()> {
    let job: Job = serde_json::from_str(job_json).context("get-worker job")?;
    let store = Store::connect(StoreConfig {
        memcpy: if job.same_host {
            MemcpyMode::On
        } else {
            MemcpyMode::Off
        },
        ..StoreConfig::new(&job.master)
    })?;
    let template = payload::template(job.size as usize);
    let cfg = ReplicateConfig::default();
    // Untimed warm-up: every key once, so the timed pass runs with a warm location cache.
    run::run(&store, &phase(&job, Op::Get, &template, &cfg));
    println!("ready");
    std::io::stdout().flush()?;
    let mut go = String::new();
    std::io::stdin().read_line(&mut go)?;
    let r = run::run(&store, &phase(&job, Op::Get, &template, &cfg));
    let report = Report {
        ops: r.ops,
        failed: r.failed,
        misses: r.misses,
        secs: r.secs,
        cache: r.cache,
        hist: r
            .hist
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect(),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Runs [`PROCESSES`] workers on `job` at once and folds what they report.
pub fn run_all(job: &Job) -> Result<PhaseResult> {
    let exe = std::env::current_exe()?;
    let spawn = || -> Result<Child> {
        Command::new(&exe)
            .args(["get-worker", &serde_json::to_string(job)?])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting a get-worker process")
    };
    let mut kids: Vec<Child> = (0..PROCESSES).map(|_| spawn()).collect::<Result<_>>()?;
    let result = fold(&mut kids);
    for k in &mut kids {
        let _ = k.kill();
        let _ = k.wait();
    }
    result
}

fn fold(kids: &mut [Child]) -> Result<PhaseResult> {
    let mut outs: Vec<BufReader<std::process::ChildStdout>> = kids
        .iter_mut()
        .map(|k| BufReader::new(k.stdout.take().expect("piped")))
        .collect();
    let mut line = String::new();
    for o in &mut outs {
        line.clear();
        o.read_line(&mut line)?;
        if line.trim() != "ready" {
            bail!("a get-worker failed before it was ready");
        }
    }
    for k in kids.iter_mut() {
        writeln!(k.stdin.as_mut().expect("piped"), "go")?;
    }
    let mut total = PhaseResult {
        ops: 0,
        failed: 0,
        misses: 0,
        secs: 0.0,
        hist: run::new_hist(),
        cache: (0, 0),
    };
    for o in &mut outs {
        line.clear();
        o.read_line(&mut line)?;
        let r: Report = serde_json::from_str(line.trim()).context("a get-worker's report")?;
        total.ops += r.ops;
        total.failed += r.failed;
        total.misses += r.misses;
        total.secs = total.secs.max(r.secs);
        total.cache.0 += r.cache.0;
        total.cache.1 += r.cache.1;
        for (v, n) in r.hist {
            total.hist.record_n(v, n)?;
        }
    }
    Ok(total)
}
