//! Memory under pressure and memory gone bad: 5× more data than the cluster holds, and bits
//! flipped in a running node's segment.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use mooncake_rs::ErrorCode;

use super::{Ctx, PATIENCE};
use crate::harness::{Done, Run, client, health, node, put_many, replicas, start};
use crate::ledger::{Tally, verify};

/// One node; five times its segment is written. Eviction makes room: every acknowledged
/// object reads back byte for byte or is gone (`OBJECT_NOT_FOUND`), none comes back wrong,
/// and puts keep being acknowledged.
pub fn oversubscribed(ctx: &Ctx) -> anyhow::Result<Run> {
    let (segment_mb, len) = (ctx.pick(32u64, 64), 256usize << 10);
    let c = start(
        vec![node("127.0.0.1", &format!("{segment_mb}MB"), &[])],
        &[],
    )?;
    let s = client(&c.master_addr())?;
    let n = 5 * (segment_mb << 20) / len as u64;
    let acked = put_many(&s, "oom", 0, n, len, &replicas(1));
    let mut d = Done::default();
    if (acked.len() as u64) < n * 95 / 100 {
        d.problems.push(format!(
            "only {} of {n} puts acknowledged under pressure",
            acked.len()
        ));
    }
    for a in &acked {
        match s.get(&a.key) {
            Ok(b) if b == a.value() => {}
            Ok(_) => d.tally.wrong += 1,
            Err(e) if e.code() == ErrorCode::ObjectNotFound => {}
            Err(_) => d.tally.lost += 1,
        }
    }
    let evicted = health(&c.metrics_addr())["evicted_keys_total"]
        .as_u64()
        .unwrap_or(0);
    if evicted == 0 {
        d.problems
            .push("nothing was evicted: the scenario did not oversubscribe".into());
    }
    // The newest values fit: they must all be there.
    let newest = &acked[acked.len().saturating_sub(8)..];
    d.tally.add(verify(&s, newest, PATIENCE));
    Ok(Run::Done(d))
}

/// The memfd holding shard 0's segment of process `pid` (`/memfd:mc-seg-0`), opened again
/// through `/proc`: writes to it land in the running node's segment memory.
fn segment_file(pid: u32) -> anyhow::Result<std::fs::File> {
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let path: PathBuf = fd?.path();
        let Ok(target) = std::fs::read_link(&path) else {
            continue;
        };
        if target.to_string_lossy().starts_with("/memfd:mc-seg-0 ") {
            return Ok(OpenOptions::new().read(true).write(true).open(&path)?);
        }
    }
    anyhow::bail!("node {pid} has no memfd named mc-seg-0")
}

/// Flips one bit of byte `at` of a segment file.
fn flip(file: &std::fs::File, at: u64, bit: u8) -> anyhow::Result<()> {
    let mut b = [0u8; 1];
    file.read_exact_at(&mut b, at)?;
    b[0] ^= 1 << (bit % 8);
    file.write_all_at(&b, at)?;
    Ok(())
}

/// Bits flipped behind the node's back in its segment memory (through the memfd, as a
/// failing DIMM would): a one-replica object must fail with `CHECKSUM_MISMATCH`, a
/// two-replica object whose first replica is hit must come back intact from the other.
pub fn bitflip(ctx: &Ctx) -> anyhow::Result<Run> {
    let c = start(
        vec![
            node("127.0.0.1", "64MB", &[]),
            node("127.0.0.2", "64MB", &[]),
        ],
        &[],
    )?;
    let s = client(&c.master_addr())?;
    let n = ctx.pick(10, 50);
    let len = 100_000usize;
    let single = put_many(&s, "flip1", 0, n, len, &replicas(1));
    let double = put_many(&s, "flip2", 1000, n, len, &replicas(2));
    anyhow::ensure!(single.len() + double.len() == 2 * n as usize, "puts failed");
    let files = [
        segment_file(c.node_pid(0).unwrap_or(0))?,
        segment_file(c.node_pid(1).unwrap_or(0))?,
    ];
    for (i, a) in single.iter().chain(&double).enumerate() {
        let r = &s.replicas(&a.key)?[0];
        let slice = &r.slices[0];
        let host = slice.endpoint.rsplit_once(':').map_or("", |(h, _)| h);
        let file = &files[usize::from(host == "127.0.0.2")];
        let pos = (i as u64 * 7919) % slice.length;
        flip(file, slice.offset + pos, i as u8)?;
    }
    let mut d = Done::default();
    let mut undetected = 0;
    for a in &single {
        match s.get(&a.key) {
            Err(e) if e.code() == ErrorCode::ChecksumMismatch => {}
            Ok(b) if b == a.value() => undetected += 1,
            Ok(_) => d.tally.wrong += 1,
            Err(e) => d
                .problems
                .push(format!("{}: {e} (wanted CHECKSUM_MISMATCH)", a.key)),
        }
    }
    if undetected > 0 {
        d.problems
            .push(format!("{undetected} flips did not change the bytes read"));
    }
    let t: Tally = verify(&s, &double, PATIENCE);
    d.tally.add(t);
    Ok(Run::Done(d))
}
