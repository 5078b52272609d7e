//! A client process SIGKILLed in the middle of a put: its acknowledged puts stay, the put
//! it was making never becomes readable, and its space comes back after the master's
//! `--put_start_release_timeout_sec`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{Ctx, PATIENCE};
use crate::harness::{Done, Run, client, health, node, start, wait_until};
use crate::ledger::{Acked, verify};

/// Release timeout given to the master here.
const RELEASE_S: u64 = 3;

/// A child process killed when dropped (also when a scenario fails or panics).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Parses the writer's `acked <key> <seed> <len>` lines into a channel.
fn follow(out: std::process::ChildStdout) -> mpsc::Receiver<Acked> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let ["acked", key, seed, len] = f[..] {
                let (Ok(seed), Ok(len)) = (seed.parse(), len.parse()) else {
                    continue;
                };
                let a = Acked {
                    key: key.into(),
                    seed,
                    len,
                    at: Instant::now(),
                };
                if tx.send(a).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// See the module docs. With failpoints the writer is held between the acks and the commit
/// of its fourth put (`client::write::before_commit`); without, it is killed once its
/// fourth put has its space. `recover_s`: from the kill until the space is back.
pub fn kill_mid_put(ctx: &Ctx) -> anyhow::Result<Run> {
    let c = start(
        vec![node("127.0.0.1", "64MB", &[])],
        &[
            "--put_start_discard_timeout_sec=1",
            &format!("--put_start_release_timeout_sec={RELEASE_S}"),
        ],
    )?;
    let len: usize = ctx.pick(2 << 20, 8 << 20);
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["writer", "--master", &c.master_addr(), "--prefix", "ck"])
        .args(["--len", &len.to_string(), "--count", "100000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if ctx.failpoints {
        cmd.env(
            "FAILPOINTS",
            "client::write::before_commit=3*off->sleep(600000)",
        );
    }
    let mut child = Reaped(cmd.spawn()?);
    let lines = follow(child.0.stdout.take().expect("piped stdout"));
    let mut acked = Vec::new();
    while acked.len() < 3 {
        acked.push(lines.recv_timeout(PATIENCE)?);
    }
    // The fourth put has its space once the master counts more than three values.
    let metrics = c.metrics_addr();
    let allocated = || health(&metrics)["allocated_bytes"].as_u64().unwrap_or(0);
    wait_until(PATIENCE, || allocated() > 3 * len as u64)
        .ok_or_else(|| anyhow::anyhow!("the writer's fourth put never started"))?;
    let killed = Instant::now();
    let _ = child.0.kill();
    let _ = child.0.wait();
    acked.extend(lines.try_iter());
    let s = client(&c.master_addr())?;
    let mut d = Done::default();
    let held = acked.len() as u64 * len as u64;
    match wait_until(PATIENCE + Duration::from_secs(RELEASE_S), || {
        allocated() <= held
    }) {
        Some(t) => d.recover = t - killed,
        None => d.problems.push(format!(
            "space not released: {} bytes allocated for {held} acknowledged",
            allocated()
        )),
    }
    d.tally = verify(&s, &acked, PATIENCE);
    // The interrupted put: never readable with other bytes.
    let next = Acked {
        key: format!("ck-{}", acked.len()),
        seed: acked.len() as u64,
        len,
        at: Instant::now(),
    };
    if let Ok(b) = s.get(&next.key)
        && b != next.value()
    {
        d.tally.wrong += 1;
    }
    Ok(Run::Done(d))
}
