//! The periodic snapshot task.
//!
//! Every `--snapshot_interval_seconds` it snapshots the term this master serves, if it
//! serves one: a standalone master always, an HA master only while it leads and serves
//! (never a standby, never a leader still recovering). A term whose recovery is still
//! adopting is skipped too: its metadata lacks what the nodes have not reported yet, and
//! a snapshot of it would become `latest` and lose the pins of everything missing.

use std::sync::Arc;

use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};

use super::Snapshots;
use crate::ha::Plane;
use crate::service::MasterService;

/// The term's metadata if this master serves it now.
fn serving(plane: &Plane) -> Option<Arc<MasterService>> {
    let status = plane.status();
    status.service.filter(|_| status.service_ready)
}

/// Runs forever (the process's lifetime).
pub(super) async fn run(snaps: Arc<Snapshots>, plane: Arc<Plane>) {
    let mut tick = tokio::time::interval(snaps.cfg.interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(svc) = serving(&plane) else {
            continue;
        };
        if !svc.recovery.settled(svc.now_ms()) || svc.recovery.hints.is_live() {
            debug!("snapshot skipped: recovery is still adopting what the nodes hold");
            continue;
        }
        let still_leading = {
            let (plane, svc) = (plane.clone(), svc.clone());
            move || serving(&plane).is_some_and(|s| Arc::ptr_eq(&s, &svc))
        };
        match tokio::time::timeout(snaps.cfg.timeout, snaps.take(&svc, still_leading)).await {
            Ok(Ok(w)) => {
                info!(
                    snapshot = %w.id,
                    objects = w.objects,
                    bytes = w.bytes,
                    took_ms = w.duration_ms,
                    "snapshot written"
                );
                snaps.stats.written(&w);
            }
            Ok(Err(e)) => {
                snaps.stats.failed();
                warn!("snapshot failed: {e}");
            }
            Err(_) => {
                snaps.stats.failed();
                warn!(
                    timeout = ?snaps.cfg.timeout,
                    "snapshot abandoned: it took longer than --snapshot_child_timeout_seconds"
                );
            }
        }
    }
}
