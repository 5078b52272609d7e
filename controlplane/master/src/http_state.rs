//! What the admin HTTP handlers read. Its own module so the handler modules ([`http`]'s
//! status pages and [`query`]'s inspection endpoints) depend on it and the router in
//! [`http`] depends on them, never the other way round.
//!
//! [`http`]: crate::http
//! [`query`]: crate::query

use std::sync::Arc;

use crate::service::MasterService;

/// What the handlers read.
#[derive(Clone)]
pub struct HttpState {
    /// The master.
    pub svc: Arc<MasterService>,
    /// Address clients reach the leader's RPC at.
    pub leader_address: String,
    /// What `/metrics` serves.
    pub metrics: crate::metrics::MasterMetrics,
}
