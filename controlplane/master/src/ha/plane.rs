//! The service plane: the gate in front of the current term's metadata.
//!
//! Every RPC passes [`Plane::handle`], which serves it from the term's `MasterService` only
//! while this master holds that very term (`Election::leader_term_now`, checked per
//! request) and answers everything else at once with `Response::not_leader`.

use std::sync::{Arc, OnceLock};

use mc_coord::MasterView;
use mc_coord::elect::Election;
use mc_rpc::Reply;
use mc_schema::msg::{Request, Response, ResponseBody};
use parking_lot::RwLock;
use tracing::info;

use super::HaState;
use crate::clock::Clock;
use crate::metrics::{RpcMetrics, classify};
use crate::service::{MasterService, ServiceConfig};

/// The term this master is in, and what it knows of the leader.
struct Term {
    state: HaState,
    /// The view version of the term `svc` belongs to (1 without HA).
    version: u64,
    /// The term's metadata; `None` while not leading.
    svc: Option<Arc<MasterService>>,
    /// The leader as last seen (this master's own view while it leads).
    leader: Option<MasterView>,
}

/// What `/health` and `/role` show.
#[derive(Clone)]
pub struct PlaneStatus {
    /// The HA state (a leader whose deadline passed shows `candidate` at once).
    pub state: HaState,
    /// Whether client requests are served now.
    pub service_ready: bool,
    /// The leader known (this master itself while it leads).
    pub leader: Option<MasterView>,
    /// The current term's metadata, if this master holds one.
    pub service: Option<Arc<MasterService>>,
}

/// The gate and the current term; see the [module docs](self).
pub struct Plane {
    /// This master's RPC address, as published when it leads.
    address: String,
    cfg: ServiceConfig,
    clock: Arc<dyn Clock>,
    rpc_metrics: Arc<RpcMetrics>,
    /// Set once the election runs; never set without HA.
    election: OnceLock<Arc<Election>>,
    term: RwLock<Term>,
}

impl Plane {
    /// A master without HA: it serves from the start, view version 1.
    pub fn standalone(cfg: ServiceConfig, clock: Arc<dyn Clock>, address: String) -> Plane {
        let plane = Plane::with_state(cfg, clock, address.clone(), HaState::Standalone);
        let svc = plane.new_service(1);
        let mut term = plane.term.write();
        term.svc = Some(svc);
        term.leader = Some(MasterView {
            leader: address,
            version: 1,
        });
        drop(term);
        plane
    }

    /// One of several HA masters publishing `address` when it leads; it serves nothing
    /// until it wins a term.
    pub fn for_ha(cfg: ServiceConfig, clock: Arc<dyn Clock>, address: String) -> Plane {
        Plane::with_state(cfg, clock, address, HaState::Starting)
    }

    fn with_state(
        cfg: ServiceConfig,
        clock: Arc<dyn Clock>,
        address: String,
        state: HaState,
    ) -> Plane {
        Plane {
            address,
            cfg,
            clock,
            rpc_metrics: Arc::default(),
            election: OnceLock::new(),
            term: RwLock::new(Term {
                state,
                version: 0,
                svc: None,
                leader: None,
            }),
        }
    }

    /// Connects the gate to the running election (once).
    pub fn attach(&self, election: Arc<Election>) {
        if self.election.set(election).is_err() {
            tracing::error!("an election was attached twice; keeping the first");
        }
    }

    /// The process's RPC counters, shared by every term.
    pub fn rpc_metrics(&self) -> &Arc<RpcMetrics> {
        &self.rpc_metrics
    }

    /// The current term's metadata, if this master holds a term (for upkeep tasks).
    pub fn service(&self) -> Option<Arc<MasterService>> {
        self.term.read().svc.clone()
    }

    /// The term this master may act in at this instant: `Some` only while its election's
    /// fail-closed deadline holds.
    fn leading(&self) -> Option<u64> {
        self.election.get().and_then(|e| e.leader_term_now())
    }

    /// What the status pages show.
    pub fn status(&self) -> PlaneStatus {
        let t = self.term.read();
        let leading = self.leading();
        let state = match t.state {
            HaState::Serving | HaState::Recovering if leading != Some(t.version) => {
                HaState::Candidate
            }
            s => s,
        };
        PlaneStatus {
            state,
            service_ready: matches!(state, HaState::Standalone | HaState::Serving),
            leader: t.leader.clone(),
            service: t.svc.clone(),
        }
    }

    /// Follows another leader (`Standby`) or none (`Candidate`): drops the term's metadata,
    /// so it can never be served again.
    pub fn follow(&self, state: HaState, leader: Option<MasterView>) {
        let mut t = self.term.write();
        if t.state == state && t.leader == leader {
            return;
        }
        let dropped = t.svc.take().map(|_| t.version);
        t.state = state;
        t.leader = leader;
        info!(
            state = state.name(),
            role = state.role(),
            leader = t.leader.as_ref().map(|v| v.leader.as_str()),
            view_version = t.leader.as_ref().map(|v| v.version),
            dropped_term = dropped,
            "master HA state changed"
        );
    }

    /// Starts the term `view` won with fresh metadata, in state `recovering`; `None` if
    /// this term has already begun. Recovery runs until [`Plane::serve`].
    pub fn begin_term(&self, view: &MasterView) -> Option<Arc<MasterService>> {
        self.begin_term_with(view, |_| {})
    }

    /// [`begin_term`](Self::begin_term), with `prepare` run on the fresh metadata before
    /// any request can reach it (a restored snapshot's hints; keep it O(1), requests wait).
    /// `None` also when the election no longer holds this term (the caller took time).
    pub fn begin_term_with(
        &self,
        view: &MasterView,
        prepare: impl FnOnce(&MasterService),
    ) -> Option<Arc<MasterService>> {
        let mut t = self.term.write();
        if t.svc.is_some() && t.version == view.version {
            return None;
        }
        if self
            .election
            .get()
            .is_some_and(|e| e.leader_term_now() != Some(view.version))
        {
            return None;
        }
        let svc = self.new_service(view.version);
        prepare(&svc);
        t.state = HaState::Recovering;
        t.version = view.version;
        t.svc = Some(svc.clone());
        t.leader = Some(view.clone());
        info!(
            state = t.state.name(),
            view_version = view.version,
            "won the master election: recovering a fresh term"
        );
        Some(svc)
    }

    /// Ends recovery of term `version`: clients are served from now on. False if the
    /// term is no longer the current one.
    pub fn serve(&self, version: u64) -> bool {
        let mut t = self.term.write();
        if t.state != HaState::Recovering || t.version != version {
            return false;
        }
        t.state = HaState::Serving;
        info!(
            state = t.state.name(),
            role = t.state.role(),
            view_version = version,
            "serving as the leader"
        );
        true
    }

    /// Hands leadership over at once (SIGTERM): stops serving, deletes the view key so a
    /// standby wins without waiting for the TTL, and stops campaigning. Without HA, nothing.
    pub async fn resign(&self) {
        if let Some(election) = self.election.get() {
            match election.resign().await {
                Ok(()) => info!("resigned the master view: a standby takes over"),
                Err(e) => tracing::warn!("resign failed, the view expires with its lease: {e}"),
            }
        }
    }

    fn new_service(&self, version: u64) -> Arc<MasterService> {
        let cfg = ServiceConfig {
            view_version: version,
            ..self.cfg.clone()
        };
        MasterService::with_metrics(cfg, self.clock.clone(), self.rpc_metrics.clone())
    }

    /// The service to answer `req` from, or the answer refusing it.
    fn admit(&self, req: &Request) -> Result<Arc<MasterService>, Response> {
        let t = self.term.read();
        if t.state == HaState::Standalone {
            return t.svc.clone().ok_or_else(|| self.refuse(req, &t, None));
        }
        let leading = self.leading();
        let admitted = match t.state {
            HaState::Serving => true,
            HaState::Recovering => admitted_while_recovering(req),
            _ => false,
        };
        match &t.svc {
            Some(svc) if admitted && leading == Some(t.version) => Ok(svc.clone()),
            _ => Err(self.refuse(req, &t, leading)),
        }
    }

    /// The not-leader answer: naming this master while it leads but recovers, else the
    /// other leader it knows of.
    fn refuse(&self, req: &Request, t: &Term, leading: Option<u64>) -> Response {
        let me = &self.address;
        let mut resp = match (leading, &t.leader) {
            (Some(v), _) => Response::not_leader(
                me,
                format!("the leader {me} is recovering term {v}; retry shortly"),
            ),
            (None, Some(l)) if l.leader != *me => Response::not_leader(
                &l.leader,
                format!(
                    "{me} is not the leader; the leader is {} (view version {})",
                    l.leader, l.version
                ),
            ),
            (None, _) => Response::not_leader(
                "",
                format!("{me} is not the leader and knows no leader: an election is under way"),
            ),
        };
        if let Request::Ping { .. } = req {
            // Tools ask any master for its admin port.
            resp.body = ResponseBody::PingAck {
                client_known: false,
                view_version: t.leader.as_ref().map_or(0, |l| l.version),
                admin_port: self.cfg.admin_port,
                capacity_bytes: 0,
                allocated_bytes: 0,
                eviction_high_watermark_bytes: 0,
                write_secret: Vec::new(),
            };
        }
        resp
    }
}

/// What a leader admits while it recovers: everything. The nodes re-mount and report what
/// they hold; clients are served meanwhile, and a lookup of a key no report has named yet
/// waits for the reports (`recovery`), so no committed object is ever answered missing.
fn admitted_while_recovering(_req: &Request) -> bool {
    true
}

impl mc_rpc::Service for Plane {
    fn handle(&self, term: u64, req: Request) -> Reply {
        let t0 = std::time::Instant::now();
        match self.admit(&req) {
            Ok(svc) => match (
                mc_rpc::Service::handle(&*svc, term, req),
                self.election.get(),
            ) {
                // An answer that waited is given only if the term still holds: a leader that
                // lost its lease meanwhile must not speak for the cluster.
                (Reply::Later(f), Some(e)) => {
                    let (e, version, me) = (e.clone(), svc.view_version(), self.address.clone());
                    Reply::Later(Box::pin(async move {
                        let resp = f.await;
                        if e.leader_term_now() == Some(version) {
                            resp
                        } else {
                            Response::not_leader(
                                "",
                                format!(
                                    "{me} lost the leadership while answering; ask the new leader"
                                ),
                            )
                        }
                    }))
                }
                (reply, _) => reply,
            },
            Err(resp) => {
                // Counted as failures of their op, so a standby's metrics show the traffic
                // it turned away.
                let (op, keys) = classify(&req);
                self.rpc_metrics.record(op, keys, true, t0.elapsed());
                Reply::Now(resp)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use mc_schema::ErrorCode;

    fn get() -> Request {
        Request::GetReplicaList {
            keys: vec!["k".into()],
        }
    }

    fn ask(plane: &Plane, req: Request) -> Response {
        mc_rpc::Service::handle(plane, 0, req).now()
    }

    #[test]
    fn standalone_serves_and_ha_without_a_term_refuses_naming_the_leader() {
        let clock = Arc::new(SystemClock::default());
        let solo = Plane::standalone(ServiceConfig::default(), clock.clone(), "a:1".into());
        assert_eq!(ask(&solo, get()).status, 0);
        assert!(solo.status().service_ready);

        let ha = Plane::for_ha(ServiceConfig::default(), clock, "a:1".into());
        let r = ask(&ha, get());
        assert!(r.is_not_leader());
        assert_eq!(r.leader_address, "");
        assert_eq!(ha.status().state, HaState::Starting);
        let other = MasterView {
            leader: "b:2".into(),
            version: 7,
        };
        ha.follow(HaState::Standby, Some(other));
        let r = ask(&ha, get());
        assert_eq!((r.status, r.leader_address.as_str()), (-1010, "b:2"));
        assert!(r.message.contains("the leader is b:2"), "{}", r.message);
        assert_eq!(
            ErrorCode::from_code(r.status),
            ErrorCode::UnavailableInCurrentStatus
        );
        // Without an election nothing is ever certain: a begun term is not served.
        let own = MasterView {
            leader: "a:1".into(),
            version: 9,
        };
        assert!(ha.begin_term(&own).is_some());
        assert!(ha.begin_term(&own).is_none(), "one term begins once");
        assert!(ha.serve(9));
        assert!(ask(&ha, get()).is_not_leader());
        assert_eq!(ha.status().state, HaState::Candidate);
        let ping = ask(&ha, Request::Ping { client_id: 1 });
        assert!(ping.is_not_leader());
        assert!(matches!(ping.body, ResponseBody::PingAck { .. }));
        ha.follow(HaState::Candidate, None);
        assert!(ha.service().is_none(), "the term's metadata is dropped");
    }

    #[test]
    fn winning_again_starts_a_fresh_term() {
        let clock = Arc::new(SystemClock::default());
        let ha = Plane::for_ha(ServiceConfig::default(), clock, "a:1".into());
        let view = |version| MasterView {
            leader: "a:1".into(),
            version,
        };
        let first = ha.begin_term(&view(3)).unwrap();
        first.handle_now(
            0,
            Request::MountSegment {
                client_id: 1,
                segment_id: 1,
                name: "n:1".into(),
                host: "n".into(),
                endpoint: "n:1".into(),
                size: 1 << 20,
                term_seen: 0,
                reports_inventory: false,
                disk: false,
            },
        );
        assert_eq!(first.segments.len(), 1);
        ha.follow(HaState::Standby, Some(view(4)));
        let again = ha.begin_term(&view(5)).unwrap();
        assert!(!Arc::ptr_eq(&first, &again));
        assert_eq!((again.view_version(), again.segments.len()), (5, 0));
        assert!(!ha.serve(3), "a past term cannot be served");
        assert!(ha.serve(5));
    }

    #[test]
    fn a_term_is_prepared_before_it_is_published() {
        let clock = Arc::new(SystemClock::default());
        let ha = Plane::for_ha(ServiceConfig::default(), clock, "a:1".into());
        let view = MasterView {
            leader: "a:1".into(),
            version: 2,
        };
        let svc = ha
            .begin_term_with(&view, |svc| {
                assert!(ha.term.try_read().is_none(), "nobody can reach it yet");
                svc.segments.observe_term(41);
            })
            .unwrap();
        assert_eq!(svc.segments.term(), 42);
        assert!(
            ha.begin_term_with(&view, |_| panic!("begun twice"))
                .is_none()
        );
    }
}
