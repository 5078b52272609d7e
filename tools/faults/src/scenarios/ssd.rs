//! The SSD tier under a failing disk: bits flipped in record files behind the node's back.

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mc_cluster::probe::http_get;
use mooncake_rs::ErrorCode;

use super::{Ctx, PATIENCE};
use crate::harness::{Done, Run, client, node, put_many, replicas, start};
use crate::ledger::verify;

/// A fresh directory for record files, on a file system that takes O_DIRECT (`None` when
/// the temporary directory's does not, e.g. tmpfs).
fn record_dir(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::env::temp_dir().join(format!("mc-faults-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).ok()?;
    let probe = dir.join("o_direct_probe");
    let ok = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&probe)
        .is_ok();
    let _ = std::fs::remove_file(&probe);
    ok.then_some(dir)
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
    let Some(dir) = record_dir("ssd-flip") else {
        return Ok(Run::Skipped(
            "the temporary directory's file system refuses O_DIRECT".into(),
        ));
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
