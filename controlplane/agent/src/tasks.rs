//! The node's task runner (`docs/tasks.md`): a thread that asks the master for the copy and
//! move tasks assigned to this node and runs them through the node's client
//! (`mooncake_rs::Store::run_tasks`): it reads the object, writes the new replicas straight
//! into the target shards and reports the outcome, which the master commits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::warn;

use crate::rest::LazyStore;

/// Wait between fetches while there is nothing to do.
const POLL: Duration = Duration::from_millis(250);
/// Longest wait between fetches while the master cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Granularity of the stop check while waiting.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// Starts the runner for node `client_id`; it ends once `stop` is set.
pub(crate) fn spawn(
    client: Arc<LazyStore>,
    client_id: u64,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("mc-tasks".into())
        .spawn(move || run(&client, client_id, &stop))
}

fn run(client: &LazyStore, client_id: u64, stop: &AtomicBool) {
    let mut wait = POLL;
    let mut failing = false;
    while !pause(wait, stop) {
        match client.get().and_then(|s| s.run_tasks(client_id)) {
            Ok(n) => {
                failing = false;
                wait = if n > 0 { Duration::ZERO } else { POLL };
            }
            Err(e) => {
                if !failing {
                    warn!("copy/move tasks cannot be fetched from the master: {e}");
                }
                failing = true;
                wait = (wait * 2).clamp(POLL, MAX_BACKOFF);
            }
        }
    }
}

/// Sleeps `d` unless `stop` is set meanwhile; whether it is.
fn pause(d: Duration, stop: &AtomicBool) -> bool {
    let mut left = d;
    while !left.is_zero() {
        if stop.load(Ordering::Acquire) {
            return true;
        }
        let step = left.min(STOP_CHECK);
        std::thread::sleep(step);
        left -= step;
    }
    stop.load(Ordering::Acquire)
}
