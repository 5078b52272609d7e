//! The `ssd` scenario: issue 14's three targets for the SSD tier, each as a case row with a
//! baseline measured in the same run.
//!
//! - `ssd_get`: 1 MiB objects held only on SSD (put with `--offload_on_evict`, then pushed
//!   out of memory by fillers; `/query_key` confirms each has only a `LOCAL_DISK`
//!   replica), read by 16 client threads at once (16 requests in flight, one per
//!   connection). Ceiling: `fio --ioengine=io_uring --direct=1 --rw=randread --bs=1m
//!   --iodepth=16` over a file of the same size in the same directory. Target ≥ 0.8.
//! - `put_offload`: 1 MiB puts on a cluster whose master has `--enable_offload` (every
//!   object copied to SSD after PutEnd), against the same puts on a cluster without it,
//!   both running, phases interleaved. Target ≥ 0.9 (≤ 10% slower).
//! - `warm_restart`: a node holding `--keys` 4 KiB SSD records (1M by default) killed with
//!   -9 and restarted on the same address and directory: time until the master has every
//!   record reported back and the newest reads back (then a sample is checked byte for
//!   byte, untimed). Baseline: the time `fio`
//!   takes to read the same number of bytes sequentially (bs 1 MiB, QD 16) in the same
//!   directory, i.e. what a full scan would at least cost. Target ≤ 5 s.
//!
//! The record directory (`--ssd_dir`, default `target/mc-bench-ssd-<pid>` next to the
//! binary) must be on a file system that takes O_DIRECT (not tmpfs); it is removed at the
//! end.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mc_cluster::{ClusterSpec, LocalCluster, NodeSpec, probe};
use mooncake_rs::{ReplicateConfig, Store, StoreConfig};

use crate::payload::{check, stamp, template};
use crate::report::CaseResult;
use crate::run::{self, Op, Phase, PhaseResult};

const MIB: u64 = 1 << 20;

/// Requests in flight for the read row and its ceiling.
const QUEUE_DEPTH: usize = 16;

/// Longest wait for offloads, reports and restarts.
const PATIENCE: Duration = Duration::from_secs(600);

/// Sizes of one run.
pub struct SsdPlan {
    /// Fewer objects, for a quick look (said so in the rows).
    pub quick: bool,
    /// Records of the warm-restart row.
    pub restart_records: u64,
    /// Interleaved repetitions of the read and put rows.
    pub repeat: usize,
    /// Where record files go.
    pub dir: Option<PathBuf>,
    /// Rows to run (`ssd_get`, `put_offload`, `warm_restart`); empty = all.
    pub rows: Vec<String>,
}

/// Runs the scenario; prints its three rows. Fails when a row is not ok.
pub fn run(plan: &SsdPlan, json: bool) -> Result<()> {
    let fio = which_fio()?;
    let parent = match &plan.dir {
        Some(d) => d.clone(),
        None => default_parent()?,
    };
    let dir = mc_cluster::o_direct_dir(&parent, "mc-bench-ssd").map_err(anyhow::Error::msg)?;
    eprintln!("mc-bench: SSD records under {}", dir.display());
    const ROWS: [&str; 3] = ["ssd_get", "put_offload", "warm_restart"];
    if let Some(bad) = plan.rows.iter().find(|r| !ROWS.contains(&r.as_str())) {
        bail!("unknown --ssd_rows `{bad}`; available: {}", ROWS.join(", "));
    }
    let wanted = |r: &str| plan.rows.is_empty() || plan.rows.iter().any(|w| w == r);
    let outcome = (|| -> Result<Vec<CaseResult>> {
        let mut rows = Vec::new();
        if wanted("ssd_get") {
            rows.push(read_row(plan, &fio, &dir.join("read"))?);
        }
        if wanted("put_offload") {
            rows.push(put_row(plan, &dir.join("put"))?);
        }
        if wanted("warm_restart") {
            rows.push(restart_row(plan, &fio, &dir.join("restart"))?);
        }
        Ok(rows)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let rows = outcome?;
    if !json {
        crate::report::print_header();
    }
    for r in &rows {
        crate::report::print(r, json);
    }
    if !json {
        for r in &rows {
            println!("{}: {}", r.op, serde_json::Value::Object(r.extra.clone()));
        }
    }
    let bad: Vec<&str> = rows.iter().filter(|r| !r.ok).map(|r| r.op).collect();
    if !bad.is_empty() {
        bail!("row(s) not ok: {}", bad.join(", "));
    }
    Ok(())
}

/// `target/` next to the running binary (`target/<profile>/mc-bench`): on the build disk.
fn default_parent() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .context("no directory above the mc-bench binary; pass --ssd_dir")
}

fn which_fio() -> Result<PathBuf> {
    let out = Command::new("sh")
        .args(["-c", "command -v fio"])
        .output()
        .context("looking for fio")?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if path.is_empty() {
        bail!(
            "--scenario ssd measures its read ceiling with fio, which is not installed: run \
             scripts/setup.sh (or apt-get install fio)"
        );
    }
    Ok(PathBuf::from(path))
}

/// What one fio job measured.
struct FioResult {
    /// Reads per second.
    iops: f64,
    /// Wall time of the job, ms.
    runtime_ms: u64,
}

/// A fio read job over `bytes` of file `file` (laid out first, untimed), O_DIRECT through
/// io_uring.
fn fio_read(fio: &Path, file: &Path, bytes: u64, rw: &str, depth: usize) -> Result<FioResult> {
    let out = Command::new(fio)
        .args([
            "--name=ceiling",
            &format!("--filename={}", file.display()),
            &format!("--size={bytes}"),
            &format!("--rw={rw}"),
            "--bs=1m",
            &format!("--iodepth={depth}"),
            "--direct=1",
            "--ioengine=io_uring",
            "--numjobs=1",
            "--output-format=json",
        ])
        .output()
        .context("running fio")?;
    if !out.status.success() {
        bail!(
            "fio failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("fio's JSON output")?;
    let job = &v["jobs"][0];
    if job["error"].as_i64() != Some(0) {
        bail!("fio reported error {}", job["error"]);
    }
    Ok(FioResult {
        iops: job["read"]["iops"].as_f64().unwrap_or(0.0),
        runtime_ms: job["read"]["runtime"].as_u64().unwrap_or(0),
    })
}

fn ssd_node(host: &str, segment: &str, dir: &Path, extra: &[String]) -> NodeSpec {
    let mut args = vec![
        "--enable_ssd_offload".to_string(),
        format!("--ssd_offload_path={}", dir.display()),
        "--ssd_quota_bytes=0".into(),
    ];
    args.extend(extra.iter().cloned());
    NodeSpec {
        host: host.into(),
        segment_size: segment.into(),
        extra_args: args,
        ..NodeSpec::default()
    }
}

fn start(nodes: Vec<NodeSpec>, master_args: &[&str]) -> Result<LocalCluster> {
    LocalCluster::start(ClusterSpec {
        nodes,
        master_args: master_args.iter().map(|a| a.to_string()).collect(),
        ready_timeout: Duration::from_secs(300),
        ..ClusterSpec::default()
    })
    .context("starting a local cluster (build the binaries with `cargo build --release --bins`)")
}

fn client(c: &LocalCluster, cache: bool) -> Result<Store> {
    let mut cfg = StoreConfig {
        rpc_timeout: Duration::from_secs(30),
        ..StoreConfig::new(c.master_addr())
    };
    if !cache {
        cfg.location_cache_entries = 0;
    }
    Store::connect(cfg).context("connecting to the local master")
}

/// The sum of node `i`'s metric `name` over its samples (shards).
fn node_metric(c: &LocalCluster, i: usize, name: &str) -> f64 {
    let Ok(r) = probe::http_get(&c.node_rest_addr(i), "/metrics", Duration::from_secs(5)) else {
        return 0.0;
    };
    r.body
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Offloads node `i` finished, failed or dropped so far.
fn offloads_settled(c: &LocalCluster, i: usize) -> u64 {
    [
        "mc_shard_ssd_offloads_total",
        "mc_shard_ssd_offload_errors_total",
        "mc_shard_ssd_offload_dropped_total",
    ]
    .iter()
    .map(|m| node_metric(c, i, m))
    .sum::<f64>() as u64
}

/// Waits until node `i` has settled `n` offloads.
fn wait_offloads(c: &LocalCluster, i: usize, n: u64) -> Result<()> {
    let t = Instant::now();
    while offloads_settled(c, i) < n {
        if t.elapsed() > PATIENCE {
            bail!("offloads did not settle: {} of {n}", offloads_settled(c, i));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Whether the master lists only `LOCAL_DISK` replicas for `key`.
fn ssd_only(c: &LocalCluster, key: &str) -> bool {
    let Ok(r) = probe::http_get(
        &c.metrics_addr(),
        &format!("/query_key?key={key}"),
        Duration::from_secs(5),
    ) else {
        return false;
    };
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
    v["replicas"].as_array().is_some_and(|rs| {
        !rs.is_empty() && rs.iter().all(|r| r["type"].as_str() == Some("LOCAL_DISK"))
    })
}

fn phase<'a>(
    op: Op,
    size: u64,
    threads: usize,
    keys: u64,
    tpl: &'a [u8],
    cfg: &'a ReplicateConfig,
) -> Phase<'a> {
    Phase {
        op,
        size,
        batch: 1,
        threads,
        keys,
        max_time: None,
        zipf: None,
        key_size: 24,
        template: tpl,
        config: cfg,
    }
}

/// Row a: SSD-only 1 MiB reads at 16 in flight vs fio at QD 16.
fn read_row(plan: &SsdPlan, fio: &Path, dir: &Path) -> Result<CaseResult> {
    let keys: u64 = if plan.quick { 128 } else { 512 };
    let segment_mib = 64u64;
    let c = start(
        vec![ssd_node(
            "127.0.0.1",
            &format!("{segment_mib}MB"),
            dir,
            &["--ssd_file_size=1GB".into()],
        )],
        &["--offload_on_evict"],
    )?;
    let s = client(&c, true)?;
    let cfg = ReplicateConfig::default();
    let tpl = template(MIB as usize);
    let put = run::run(&s, &phase(Op::Put, MIB, 1, keys, &tpl, &cfg));
    if put.failed > 0 {
        bail!("ssd_get: {} of {keys} puts failed", put.failed);
    }
    // Fillers push the objects out of memory; eviction frees a memory copy only once its
    // SSD copy is durable.
    let mut filler = tpl.clone();
    let mut fillers = 0u64;
    let mut on_ssd_only = 0;
    for _round in 0..4 {
        for _ in 0..segment_mib * 3 / 2 {
            stamp(&mut filler, 1 << 40 | fillers);
            let key = format!("ssd-filler-{fillers}");
            let t = Instant::now();
            while let Err(e) = s.put(&key, &filler, &cfg) {
                if t.elapsed() > Duration::from_secs(60) {
                    bail!("ssd_get: filler {key}: {e}");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            fillers += 1;
        }
        on_ssd_only = (0..keys)
            .filter(|&i| ssd_only(&c, &run::key(MIB, i, 24)))
            .count() as u64;
        if on_ssd_only == keys {
            break;
        }
    }
    if on_ssd_only < keys {
        bail!("ssd_get: only {on_ssd_only} of {keys} objects ended up on SSD only");
    }
    let file = dir.join("fio-read.dat");
    let (mut reps, mut ceilings) = (Vec::new(), Vec::new());
    for _ in 0..plan.repeat.max(1) {
        ceilings.push(fio_read(fio, &file, keys * MIB, "randread", QUEUE_DEPTH)?.iops);
        reps.push(run::run(
            &s,
            &phase(Op::Get, MIB, QUEUE_DEPTH, keys, &tpl, &cfg),
        ));
    }
    let _ = std::fs::remove_file(&file);
    let ssd_reads = node_metric(&c, 0, "mc_shard_ssd_reads_total") as u64;
    let mut row = CaseResult::from_reps("ssd_get", MIB, 1, QUEUE_DEPTH, &reps, &ceilings);
    let e = &mut row.extra;
    e.insert("in_flight".into(), QUEUE_DEPTH.into());
    e.insert(
        "ceiling_tool".into(),
        format!(
            "fio --ioengine=io_uring --direct=1 --rw=randread --bs=1m --iodepth={QUEUE_DEPTH} --size={}",
            keys * MIB
        )
        .into(),
    );
    e.insert("ssd_only_objects".into(), on_ssd_only.into());
    e.insert("node_ssd_reads".into(), ssd_reads.into());
    e.insert("target_ratio".into(), 0.8.into());
    e.insert("quick".into(), plan.quick.into());
    // Every read must have come from SSD: no object may have regained a memory copy.
    row.ok &= ssd_reads >= keys * plan.repeat.max(1) as u64;
    Ok(row)
}

/// Row b: 1 MiB puts with eager offload on vs off, two clusters in one run.
fn put_row(plan: &SsdPlan, dir: &Path) -> Result<CaseResult> {
    let keys: u64 = if plan.quick { 256 } else { 768 };
    let off = start(
        vec![NodeSpec {
            host: "127.0.0.1".into(),
            segment_size: "1GB".into(),
            ..NodeSpec::default()
        }],
        &[],
    )?;
    let on = start(
        vec![ssd_node(
            "127.0.0.2",
            "1GB",
            dir,
            &["--ssd_file_size=1GB".into()],
        )],
        &["--enable_offload"],
    )?;
    let (s_off, s_on) = (client(&off, true)?, client(&on, true)?);
    let cfg = ReplicateConfig::default();
    let tpl = template(MIB as usize);
    let (mut ons, mut offs) = (Vec::new(), Vec::new());
    let mut offloaded = 0u64;
    for rep in 0..plan.repeat.max(1) {
        let mut on_phase = || -> Result<PhaseResult> {
            let r = run::run(&s_on, &phase(Op::Put, MIB, 1, keys, &tpl, &cfg));
            // The copies finish before anything else is measured.
            offloaded += r.ops - r.failed;
            wait_offloads(&on, 0, offloaded)?;
            Ok(r)
        };
        // Alternate which cluster goes first, so neither always runs on a warmer machine.
        if rep % 2 == 0 {
            offs.push(run::run(&s_off, &phase(Op::Put, MIB, 1, keys, &tpl, &cfg)));
            ons.push(on_phase()?);
        } else {
            ons.push(on_phase()?);
            offs.push(run::run(&s_off, &phase(Op::Put, MIB, 1, keys, &tpl, &cfg)));
        }
        s_off
            .remove_all(true)
            .context("clearing the offload-off cluster")?;
        s_on.remove_all(true)
            .context("clearing the offload-on cluster")?;
    }
    let ssd_copies = node_metric(&on, 0, "mc_shard_ssd_offloads_total") as u64;
    let shared_syncs = node_metric(&on, 0, "mc_shard_ssd_shared_syncs_total") as u64;
    let reused = node_metric(&on, 0, "mc_shard_ssd_write_buffers_reused_total") as u64;
    let off_rates: Vec<f64> = offs.iter().map(PhaseResult::ops_per_s).collect();
    let mut row = CaseResult::from_reps("put_offload", MIB, 1, 1, &ons, &off_rates);
    row.ok &= offs.iter().all(|r| r.failed == 0 && r.ops > 0);
    let e = &mut row.extra;
    e.insert(
        "ceiling_is".into(),
        "the same puts on a cluster without --enable_offload, same run".into(),
    );
    e.insert("ssd_copies".into(), ssd_copies.into());
    // Copies made durable by another copy's sync, and copies written from a reused buffer.
    e.insert("shared_syncs".into(), shared_syncs.into());
    e.insert("write_buffers_reused".into(), reused.into());
    e.insert("target_ratio".into(), 0.9.into());
    e.insert("quick".into(), plan.quick.into());
    Ok(row)
}

/// A number field of the master's `/health` (0 when absent).
fn health(c: &LocalCluster, field: &str) -> u64 {
    probe::http_get(&c.metrics_addr(), "/health", Duration::from_secs(5))
        .ok()
        .and_then(|r| probe::json_u64_field(&r.body, field))
        .unwrap_or(0)
}

/// Objects the master re-adopted or gained a replica back for, so far.
fn readopted(c: &LocalCluster) -> u64 {
    health(c, "recovery_adopted_objects_total") + health(c, "recovery_added_replicas_total")
}

/// Row c: warm restart of a node holding `restart_records` 4 KiB SSD records.
fn restart_row(plan: &SsdPlan, fio: &Path, dir: &Path) -> Result<CaseResult> {
    const SIZE: u64 = 4096;
    const BATCH: u64 = 1024;
    const SAMPLE: u64 = 2000;
    let n = plan.restart_records.max(1);
    // Memory for every object (eager offload keeps the memory copy), with slack.
    let segment = (n * SIZE * 5 / 4 + (64 << 20)).next_multiple_of(MIB);
    let data_port = mc_cluster::pick_free_port("127.0.0.1")?;
    let mut c = start(
        vec![ssd_node(
            "127.0.0.1",
            &format!("{}MB", segment / MIB),
            dir,
            &[
                format!("--data_port={data_port}"),
                "--ssd_offload_queue_limit=65536".into(),
            ],
        )],
        &["--enable_offload"],
    )?;
    let s = client(&c, true)?;
    let cfg = ReplicateConfig::default();
    let tpl = template(SIZE as usize);
    let name = |i: u64| format!("warm/{i:012}");
    let t_fill = Instant::now();
    let mut put = 0u64;
    while put < n {
        let end = (put + BATCH).min(n);
        let values: Vec<Vec<u8>> = (put..end)
            .map(|i| {
                let mut v = tpl.clone();
                stamp(&mut v, i);
                v
            })
            .collect();
        let keys: Vec<String> = (put..end).map(name).collect();
        let items: Vec<(&str, &[u8])> = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        for (r, k) in s.put_batch(&items, &cfg).into_iter().zip(&keys) {
            r.with_context(|| format!("warm_restart: put {k}"))?;
        }
        put = end;
        // Keep the node's offload queue short of its bound.
        while put.saturating_sub(offloads_settled(&c, 0)) > 16 * BATCH {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    wait_offloads(&c, 0, n)?;
    let on_ssd = node_metric(&c, 0, "mc_shard_ssd_objects") as u64;
    let dropped = node_metric(&c, 0, "mc_shard_ssd_offload_dropped_total") as u64;
    eprintln!(
        "mc-bench: {n} records of 4 KiB put and offloaded in {:.1} s ({on_ssd} on SSD, \
         {dropped} dropped); killing the node",
        t_fill.elapsed().as_secs_f64()
    );
    if on_ssd < n {
        bail!("warm_restart: only {on_ssd} of {n} objects reached the SSD ({dropped} dropped)");
    }
    let before = readopted(&c);
    c.kill_node(0);
    c.wait_node_exit(0, Duration::from_secs(30));
    let t0 = Instant::now();
    c.restart_node(0).context("restarting the node")?;
    let ready_ms = t0.elapsed().as_millis() as u64;
    while readopted(&c).saturating_sub(before) < on_ssd {
        if t0.elapsed() > PATIENCE {
            bail!(
                "warm_restart: {} of {on_ssd} records reported back",
                readopted(&c).saturating_sub(before)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let reported_ms = t0.elapsed().as_millis() as u64;
    // A fresh client (no cached locations) reads what the master serves now: serving again
    // is every record reported and a get of the newest one answered from the new instance.
    let fresh = client(&c, false)?;
    let last = n - 1;
    while !fresh.get(&name(last)).is_ok_and(|v| check(&v, &tpl, last)) {
        if t0.elapsed() > PATIENCE {
            bail!(
                "warm_restart: {} not readable after the restart",
                name(last)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let serving_ms = t0.elapsed().as_millis() as u64;
    // Then a sample, byte for byte (untimed).
    let step = (n / SAMPLE).max(1);
    let mut wrong = 0u64;
    for i in (0..n).step_by(step as usize) {
        let got = fresh.get(&name(i));
        wrong += u64::from(!got.is_ok_and(|v| check(&v, &tpl, i)));
    }
    let torn = node_metric(&c, 0, "mc_shard_ssd_torn_records_total") as u64;
    let from_checkpoint = node_metric(&c, 0, "mc_shard_ssd_checkpoint_records") as u64;
    drop(c);
    // Baseline: reading the records' bytes once, sequentially, at QD 16.
    let record_bytes = n * 2 * SIZE;
    let raw = fio_read(
        fio,
        &dir.join("fio-scan.dat"),
        record_bytes,
        "read",
        QUEUE_DEPTH,
    )?;
    let _ = std::fs::remove_file(dir.join("fio-scan.dat"));
    let secs = serving_ms as f64 / 1000.0;
    let mut hist = run::new_hist();
    hist.record(serving_ms.max(1) * 1000).expect("in bounds");
    let ours = PhaseResult {
        ops: n,
        failed: wrong,
        misses: 0,
        secs,
        hist,
        cache: (0, 0),
    };
    let raw_rate = n as f64 / (raw.runtime_ms.max(1) as f64 / 1000.0);
    let mut row = CaseResult::from_reps("warm_restart", SIZE, 1, 1, &[ours], &[raw_rate]);
    row.ok &= wrong == 0 && torn == 0;
    let e = &mut row.extra;
    e.insert("records".into(), n.into());
    e.insert("quick".into(), plan.quick.into());
    e.insert("node_ready_ms".into(), ready_ms.into());
    e.insert("reported_ms".into(), reported_ms.into());
    e.insert("serving_ms".into(), serving_ms.into());
    e.insert("sample_read".into(), n.div_ceil(step).into());
    e.insert("torn".into(), torn.into());
    e.insert("records_from_checkpoint".into(), from_checkpoint.into());
    e.insert("raw_scan_ms".into(), raw.runtime_ms.into());
    e.insert(
        "ceiling_is".into(),
        "records/s of fio reading the records' bytes once (seq, bs 1m, QD16, O_DIRECT)".into(),
    );
    e.insert("target_ms".into(), 5000.into());
    Ok(row)
}
