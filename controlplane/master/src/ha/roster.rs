//! Announcing this master in the coordinator's roster (`mc_coord::elect::roster`), so tools
//! and every master's dashboard can list the masters of the cluster, standbys included.

use std::sync::Arc;

use mc_coord::elect::{Member, Roster};
use tracing::{info, warn};

use super::HaConfig;

/// Connects to the roster and announces `admin_port` for this master every TTL/3 in the
/// background; `None` (logged) if the roster cannot be reached at all.
pub async fn start(ha: &HaConfig, cluster_id: &str, admin_port: u16) -> Option<Arc<Roster>> {
    let roster = match Roster::connect(&ha.locator, cluster_id, ha.election.op_timeout).await {
        Ok(r) => Arc::new(r),
        Err(e) => {
            warn!(error = %e, "cannot reach the coordinator's master roster; dashboards will not list the masters");
            return None;
        }
    };
    let member = Member {
        rpc_address: ha.advertise.clone(),
        admin_port,
    };
    let ttl = ha.ttl();
    let announcer = roster.clone();
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            match announcer.announce(&member, ttl).await {
                Ok(()) if failing => {
                    info!("announcing this master in the roster works again");
                    failing = false;
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    warn!(error = %e, "cannot announce this master in the roster; retrying");
                    failing = true;
                }
                Err(_) => {}
            }
            tokio::time::sleep(ttl / 3).await;
        }
    });
    Some(roster)
}
