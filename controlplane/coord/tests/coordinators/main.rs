//! Election and view following against real etcd and redis-server processes.
//!
//! Every scenario runs on both coordinators. Waits are bounded generously ([`PATIENCE`]);
//! assertions are about order and outcome, and the times observed are printed for the record
//! (`cargo test -p mc-coord -- --nocapture`).

mod election;
mod follower;
mod roster;
mod support;

use std::future::Future;
use std::time::{Duration, Instant};

use mc_coord::elect::{Election, Role};
use support::PATIENCE;

/// Instantiates a generic scenario for both coordinators.
macro_rules! on_both {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn etcd() {
                super::$scenario::<crate::support::Etcd>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$scenario::<crate::support::Redis>().await
            }
        }
    };
}
pub(crate) use on_both;

/// Polls `check` every 20 ms until it yields, failing the test after `within`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until one of `elections` leads; returns its index and role view.
pub async fn a_leader(elections: &[&Election]) -> (usize, mc_coord::MasterView) {
    eventually("a leader", PATIENCE, || async {
        elections
            .iter()
            .enumerate()
            .find_map(|(i, e)| match e.role() {
                Role::Leader { view } => Some((i, view)),
                _ => None,
            })
    })
    .await
}
