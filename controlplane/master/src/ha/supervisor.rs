//! Runs the election and moves the [`Plane`] through the HA states as its role changes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mc_coord::CoordError;
use mc_coord::elect::{AnyElector, Election, Elector, Role};
use tokio::task::JoinHandle;

use super::{HaConfig, HaState, Plane};
use crate::MasterError;
use crate::snapshot::Snapshots;

/// Longest a starting master tries to reach the coordinator before it gives up: long enough
/// for a coordinator started at the same time, short enough to report a wrong address.
pub const START_PATIENCE: Duration = Duration::from_secs(5);

/// Pause between attempts to reach the coordinator at start.
const START_RETRY: Duration = Duration::from_millis(250);

/// Connects to the coordinator and checks that it answers, before the master binds or logs
/// anything, so a wrong address is one clear line.
///
/// # Errors
/// [`MasterError::CoordinatorUnreachable`] when it does not answer within
/// [`START_PATIENCE`].
pub async fn connect(ha: &HaConfig, cluster_id: &str) -> Result<AnyElector, MasterError> {
    let unreachable = |source| MasterError::CoordinatorUnreachable {
        locator: ha.locator.to_string(),
        waited_seconds: START_PATIENCE.as_secs(),
        source,
    };
    let elector = AnyElector::connect(&ha.locator, cluster_id, ha.election.clone())
        .await
        .map_err(unreachable)?;
    check_reachable(&elector).await.map_err(unreachable)?;
    Ok(elector)
}

/// Starts campaigning on `elector` for `ha.advertise`, attaches the election to `plane`
/// and returns the task that follows it. Each won term first restores the latest snapshot
/// when `snapshots` restore.
///
/// # Errors
/// [`MasterError::HaTiming`] for timing the election refuses.
pub fn start(
    plane: Arc<Plane>,
    elector: AnyElector,
    ha: &HaConfig,
    snapshots: Option<Arc<Snapshots>>,
) -> Result<JoinHandle<()>, MasterError> {
    let election = Election::start(elector, ha.advertise.clone()).map_err(MasterError::HaTiming)?;
    let election = Arc::new(election);
    plane.attach(election.clone());
    tracing::info!(
        coordinator = %ha.locator,
        address = %ha.advertise,
        ttl = ?ha.ttl(),
        "HA on: campaigning for the master view"
    );
    let snapshots = snapshots.filter(|s| s.restores());
    Ok(tokio::spawn(follow(plane, election, snapshots)))
}

/// Reads the view until the coordinator answers, for up to [`START_PATIENCE`].
async fn check_reachable(elector: &AnyElector) -> Result<(), CoordError> {
    let deadline = Instant::now() + START_PATIENCE;
    let op_timeout = elector.config().op_timeout;
    loop {
        let err = match tokio::time::timeout(op_timeout, elector.read_view()).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => e,
            Err(_) => CoordError::Timeout {
                op: "read the master view",
                after: op_timeout,
            },
        };
        if Instant::now() + START_RETRY >= deadline {
            return Err(err);
        }
        tokio::time::sleep(START_RETRY).await;
    }
}

/// Applies every role the election publishes to the plane, until the election stops.
async fn follow(plane: Arc<Plane>, election: Arc<Election>, snapshots: Option<Arc<Snapshots>>) {
    let mut roles = election.subscribe();
    loop {
        let role = roles.borrow_and_update().clone();
        apply(&plane, role, &snapshots);
        if roles.changed().await.is_err() {
            return;
        }
    }
}

/// One role change. A won term begins with fresh metadata (and the latest snapshot's hints,
/// read first when restoring) in state `recovering`, and moves to `serving` once the
/// recovery of what the nodes hold has settled (every node that re-mounted has reported,
/// and the grace for the others has passed).
fn apply(plane: &Arc<Plane>, role: Role, snapshots: &Option<Arc<Snapshots>>) {
    match role {
        Role::Standby {
            leader: Some(view), ..
        } => plane.follow(HaState::Standby, Some(view)),
        Role::Standby { leader: None, .. } => plane.follow(HaState::Candidate, None),
        Role::Stopped => plane.follow(HaState::Standby, None),
        Role::Leader { view } => {
            let (plane, snapshots) = (plane.clone(), snapshots.clone());
            tokio::spawn(async move {
                let prepared = match &snapshots {
                    Some(s) => s.prepare().await,
                    None => None,
                };
                let apply = |svc: &crate::service::MasterService| {
                    if let Some(p) = prepared {
                        p.apply(svc);
                    }
                };
                let Some(svc) = plane.begin_term_with(&view, apply) else {
                    return;
                };
                while !svc.recovery.settled(svc.now_ms()) {
                    // A term lost while recovering: its metadata goes with it.
                    let current = plane.service().map(|s| s.view_version());
                    if current != Some(view.version) {
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                plane.serve(view.version);
            });
        }
    }
}
