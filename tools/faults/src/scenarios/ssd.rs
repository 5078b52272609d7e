//! The SSD tier under a failing disk: bits flipped in record files behind the node's back.

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mc_cluster::probe::http_get;
use mooncake_rs::ErrorCode;

use super::{Ctx, PATIENCE};
use crate::harness::{Done, Run, client, node, put_many, replicas, start};
use crate::ledger::verify;

/// A fresh directory for record files, on a file system that takes O_DIRECT (or why not:
/// the temporary directory's refuses it, e.g. tmpfs).
fn record_dir(name: &str) -> Result<PathBuf, String> {
    mc_cluster::o_direct_dir(&std::env::temp_dir(), &format!("mc-faults-{name}"))
}

/// Whether `key` is held only on SSD, as the master's `/query_key` shows it (which grants
/// no lease, unlike a get).
fn ssd_only(metrics: &str, key: &str) -> bool {
    let Ok(r) = http_get(
        metrics,
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

/// One bit flipped in the payload of SSD-only objects' records (as a failing disk would):
/// each must fail with `CHECKSUM_MISMATCH` (never wrong bytes) and then be dropped by the
/// node; every object whose record was not touched must read back intact.
pub fn bitflip_records(ctx: &Ctx) -> anyhow::Result<Run> {
    let dir = match record_dir("ssd-flip") {
        Ok(dir) => dir,
        Err(why) => return Ok(Run::Skipped(why)),
    };
    let args = [
        "--enable_ssd_offload".to_string(),
        format!("--ssd_offload_path={}", dir.display()),
        "--ssd_quota_bytes=1GB".into(),
        "--ssd_file_size=64MB".into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let c = start(
        vec![node("127.0.0.1", "32MB", &args)],
        &["--enable_offload"],
    )?;
    let s = client(&c.master_addr())?;
    let len = 1usize << 20;
    // Three times the node's memory: the early objects end up on SSD only.
    let acked = put_many(&s, "ssdflip", 0, 96, len, &replicas(1));
    anyhow::ensure!(acked.len() == 96, "puts failed");
    let metrics = c.metrics_addr();
    let victims: Vec<_> = acked
        .iter()
        .filter(|a| ssd_only(&metrics, &a.key))
        .take(ctx.pick(4, 16))
        .cloned()
        .collect();
    anyhow::ensure!(!victims.is_empty(), "no object was held only on SSD");
    for (i, a) in victims.iter().enumerate() {
        // The record's location is file << 40 | offset; its payload follows a 4 KiB header.
        let loc = s.replicas(&a.key)?[0].slices[0].offset;
        let file = dir.join(format!("shard-0/{:06}.rec", loc >> 40));
        let at = (loc & ((1 << 40) - 1)) + 4096 + (i as u64 * 7919) % len as u64;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&file)?;
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at)?;
        f.write_all_at(&[b[0] ^ (1 << (i % 8))], at)?;
        f.sync_all()?;
    }
    let mut d = Done::default();
    for a in &victims {
        match s.get(&a.key) {
            Err(e) if e.code() == ErrorCode::ChecksumMismatch => {}
            Ok(b) if b == a.value() => d.problems.push(format!("{}: flip not detected", a.key)),
            Ok(_) => d.tally.wrong += 1,
            Err(e) => d
                .problems
                .push(format!("{}: {e} (wanted CHECKSUM_MISMATCH)", a.key)),
        }
        // The node drops the corrupt record and reports it: the key goes away for good.
        let t = Instant::now();
        while s.get(&a.key).map_err(|e| e.code()) != Err(ErrorCode::ObjectNotFound) {
            if t.elapsed() > PATIENCE {
                d.problems
                    .push(format!("{}: the corrupt replica stays listed", a.key));
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let rest: Vec<_> = acked
        .iter()
        .filter(|a| !victims.iter().any(|v| v.key == a.key))
        .cloned()
        .collect();
    d.tally = verify(&s, &rest, PATIENCE);
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Run::Done(d))
}

/// The sum of node `i`'s metric `name` over its samples.
fn node_metric(c: &mc_cluster::LocalCluster, i: usize, name: &str) -> f64 {
    let Ok(r) = http_get(&c.node_rest_addr(i), "/metrics", Duration::from_secs(5)) else {
        return 0.0;
    };
    r.body
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The line a node logs (once per 10 s) when offload stops on a full disk.
const DISK_FULL_LINE: &str = "offload stops while the SSD is full";

/// Offload on a disk that fills up (a 24 MB ext4 on a loop device, a quota far above it):
/// DRAM puts keep working, offload stops with one clear log line and a moving
/// `mc_shard_ssd_offload_errors_total`, and every acknowledged object reads back intact.
pub fn disk_full_under_offload(ctx: &Ctx) -> anyhow::Result<Run> {
    let fs = match mc_cluster::SmallExt4::new(&std::env::temp_dir(), "mc-faults-disk-full", 24) {
        Ok(fs) => fs,
        Err(why) => return Ok(Run::Skipped(format!("no loop-mounted ext4: {why}"))),
    };
    let args = [
        "--enable_ssd_offload".to_string(),
        format!("--ssd_offload_path={}", fs.mnt().display()),
        "--ssd_quota_bytes=1GB".into(),
        "--ssd_file_size=64MB".into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let c = start(
        vec![node("127.0.0.1", "96MB", &args)],
        &["--enable_offload"],
    )?;
    let s = client(&c.master_addr())?;
    let len = 1usize << 20;
    let n = ctx.pick(40, 64);
    let mut d = Done::default();
    // Enough to fill the disk several times over, all within memory.
    let mut acked = put_many(&s, "diskfull", 0, n, len, &replicas(1));
    if acked.len() as u64 != n {
        d.problems.push(format!(
            "{} of {n} puts failed while the disk filled",
            n - acked.len() as u64
        ));
    }
    let settled = || {
        node_metric(&c, 0, "mc_shard_ssd_offloads_total")
            + node_metric(&c, 0, "mc_shard_ssd_offload_errors_total")
            + node_metric(&c, 0, "mc_shard_ssd_offload_dropped_total")
    };
    let t = Instant::now();
    while settled() < acked.len() as f64 && t.elapsed() < PATIENCE {
        std::thread::sleep(Duration::from_millis(20));
    }
    let errors = node_metric(&c, 0, "mc_shard_ssd_offload_errors_total");
    if errors == 0.0 {
        d.problems
            .push("the disk never filled: no offload error counted".into());
    }
    // Puts after the disk is full still work (DRAM), and remove keeps making room.
    let removed: Vec<_> = acked.drain(..acked.len() / 2).collect();
    for a in &removed {
        if let Err(e) = s.remove(&a.key, false) {
            d.problems.push(format!("remove {}: {e}", a.key));
        }
    }
    let more = put_many(&s, "diskfull-after", 1000, n / 2, len, &replicas(1));
    if (more.len() as u64) < n / 2 {
        d.problems.push(format!(
            "{} of {} puts failed after the disk was full",
            n / 2 - more.len() as u64,
            n / 2
        ));
    }
    acked.extend(more);
    let logs = c.logs_tail(20_000);
    let lines = logs.matches(DISK_FULL_LINE).count();
    if lines == 0 {
        d.problems
            .push(format!("no `{DISK_FULL_LINE}` line in the node's log"));
    }
    d.tally = verify(&s, &acked, PATIENCE);
    drop(c);
    drop(fs);
    Ok(Run::Done(d))
}
