//! Master calls that follow the leader.
//!
//! A call goes to the leader the pool's `LeaderTracker` names. A pooled connection that
//! turns out dead is replaced once (the master may have closed it while idle). When the
//! master does not serve the call (a standby's or a deposed leader's not-leader answer) or
//! cannot be reached (refused, reset), the call is sent once more, to the leader the answer
//! named or the next one the coordinator publishes before the call's deadline. Sending it
//! again is safe. A not-leader answer executed nothing. A master that was reached but died
//! mid-call took its pending PutStarts with it (a new leader starts a fresh term and
//! re-adopts only what the nodes hold), so no PutStart is left pending twice and no object
//! is created twice. A PutEnd whose commit the dead master made, or whose writes the new
//! leader re-adopted, is answered OK again (the same put generation). A remove the dead
//! master carried out (its holders forgot the object) is answered OBJECT_NOT_FOUND by the
//! new leader: the object is gone either way.

use std::time::Instant;

use mc_coord::{MasterLocator, Target};
use mc_rpc::RpcError;
use mc_schema::msg::{Request, Response};

use super::{Store, StoreConfig};
use crate::pool::MasterPool;
use crate::{Error, ErrorCode, Result};

/// The master pool for `cfg`, with a first connection to the leader checked.
pub(super) fn pool(cfg: &StoreConfig) -> Result<MasterPool> {
    let locator = MasterLocator::parse(&cfg.master_addr).map_err(|e| {
        Error::new(
            ErrorCode::InvalidParams,
            format!("master_addr `{}`: {e}", cfg.master_addr),
        )
    })?;
    let pool = MasterPool::new(&locator, &cfg.cluster_id, cfg.connect_timeout).map_err(|e| {
        Error::new(
            ErrorCode::from_code(e.mooncake_code()),
            format!("cannot follow the master at {locator}: {e}"),
        )
    })?;
    let target = pool
        .leader()
        .wait_for_leader(cfg.connect_timeout)
        .ok_or_else(|| no_leader(&locator, &cfg.cluster_id))?;
    let first = pool.connect(&target.address)?;
    pool.give(first);
    Ok(pool)
}

/// The error of a call made while the coordinator names no leader.
fn no_leader(locator: &MasterLocator, cluster_id: &str) -> Error {
    Error::new(
        ErrorCode::UnavailableInCurrentStatus,
        format!(
            "no master leads cluster `{cluster_id}` at {locator}: none is published (are the masters running with --enable_ha and --cluster_id={cluster_id}?)"
        ),
    )
}

/// Whether a failed call may be sent to another master: it did not reach one that serves.
fn unreached(e: &RpcError) -> bool {
    matches!(e, RpcError::Connect { .. } | RpcError::Io { .. })
}

impl Store {
    /// Sends one request to the leader, following it once if it moved; see the module docs.
    pub(super) fn call(&self, req: &Request) -> Result<Response> {
        let deadline = Instant::now() + self.cfg.rpc_timeout;
        let leader = self.master.leader();
        let target = match leader.target() {
            Some(t) => t,
            None => leader
                .wait_for_leader(self.cfg.rpc_timeout)
                .ok_or_else(|| no_leader(leader.locator(), &self.cfg.cluster_id))?,
        };
        let first = self.call_at(&target, req, deadline);
        let hint = match &first {
            Ok(r) if r.is_not_leader() => r.leader_address.clone(),
            Err(e) if unreached(e) => String::new(),
            _ => return finish(req, first),
        };
        let Some(next) = leader.redirect(&target, Some(&hint), deadline) else {
            return finish(req, first);
        };
        tracing::info!(
            op = req.op_name(),
            from = %target.address,
            to = %next.address,
            "master call sent again to the leader"
        );
        finish(req, self.call_at(&next, req, deadline))
    }

    /// One call to `target`; a pooled connection that turns out dead is replaced once.
    fn call_at(
        &self,
        target: &Target,
        req: &Request,
        deadline: Instant,
    ) -> std::result::Result<Response, RpcError> {
        let (mut c, pooled) = self.master.take(&target.address)?;
        match c.call(req, deadline) {
            Ok(r) => {
                self.master.give(c);
                Ok(r)
            }
            Err(e) if pooled && !matches!(e, RpcError::Timeout { .. }) => {
                let mut c = self.master.connect(&target.address)?;
                let r = c.call(req, deadline)?;
                self.master.give(c);
                Ok(r)
            }
            Err(e) => Err(e),
        }
    }
}

/// A call's outcome as the client's result: a refused request becomes its error code.
fn finish(req: &Request, r: std::result::Result<Response, RpcError>) -> Result<Response> {
    let resp = r?;
    if resp.status != 0 {
        let code = ErrorCode::from_code(resp.status);
        return Err(Error::new(
            code,
            format!("{}: {}", req.op_name(), resp.message),
        ));
    }
    Ok(resp)
}
