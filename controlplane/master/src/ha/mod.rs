//! High availability: several masters elect a leader on a coordinator (etcd or Redis,
//! through `mc-coord`); only the leader serves, the others answer at once with the leader's
//! address.
//!
//! # Model
//!
//! - [`HaConfig::from_config`] turns Mooncake's flags (`--enable_ha`, `--ha_backend_type`,
//!   `--ha_backend_connstring`, `--etcd_endpoints`, `--rpc_address`) into a coordinator
//!   locator and the address this master publishes when it leads, refusing what cannot
//!   work before anything starts.
//! - [`Plane`] is what the RPC server dispatches to. It holds the [`HaState`] and the
//!   metadata of the current term (a `MasterService`), and gates every request: a request
//!   is served only while the election's fail-closed deadline holds for the term that
//!   metadata belongs to (`Election::leader_term_now`, read on every request, so a master
//!   that wakes from SIGSTOP after its lease refuses its first request). Everyone else gets
//!   `Response::not_leader` (UNAVAILABLE_IN_CURRENT_STATUS, -1010) naming the leader.
//! - [`supervisor`] follows the election: states starting → candidate / standby →
//!   recovering → serving. Winning a term builds a **fresh** `MasterService` (a master that
//!   lost its lease and wins again never serves its old metadata); losing it drops the
//!   metadata. Recovery of what the nodes hold runs while the state is recovering, between
//!   [`Plane::begin_term`] and [`Plane::serve`]; a recovering leader already admits every
//!   request: nodes mount and report, and a client's lookup of a key no report has named
//!   yet waits for the reports (`docs/ha.md`).
//! - SIGTERM resigns ([`Plane::resign`]): the view key is deleted, a standby wins within
//!   milliseconds, then the RPC server drains as without HA.

mod plane;
pub mod roster;
pub mod supervisor;

use std::time::Duration;

use mc_coord::MasterLocator;
use mc_coord::elect::ElectionConfig;

use crate::{MasterConfig, MasterError};

pub use plane::{Plane, PlaneStatus};

/// Where a master is in the HA life cycle, as `/health` shows it (`ha_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HaState {
    /// HA is off: this master always serves.
    Standalone,
    /// HA is on and the election has not started yet.
    Starting,
    /// Another master leads; this one follows the view and answers with its address.
    Standby,
    /// No leader is known: this master is campaigning.
    Candidate,
    /// This master won a term and is re-adopting what the nodes hold; it already serves
    /// (lookups of keys no report named yet wait for the reports).
    Recovering,
    /// This master leads and serves.
    Serving,
}

impl HaState {
    /// The state's name, Mooncake's spelling (`standby`, `serving`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Standalone => "standalone",
            Self::Starting => "starting",
            Self::Standby => "standby",
            Self::Candidate => "candidate",
            Self::Recovering => "recovering",
            Self::Serving => "serving",
        }
    }

    /// The role `/health` and `/role` report: `leader` for a master that serves, `standby`
    /// for every other, as in Mooncake.
    pub fn role(self) -> &'static str {
        match self {
            // A recovering leader already serves (lookups wait for the nodes' reports).
            Self::Standalone | Self::Serving | Self::Recovering => "leader",
            _ => "standby",
        }
    }
}

/// HA settings resolved from the flags.
#[derive(Clone, Debug)]
pub struct HaConfig {
    /// The coordinator to elect on.
    pub locator: MasterLocator,
    /// Lease and retry timing.
    pub election: ElectionConfig,
    /// The RPC address this master publishes when it leads, `host:port`.
    pub advertise: String,
}

impl HaConfig {
    /// The HA settings of `cfg` (`None` without `--enable_ha`); `rpc_address` is the
    /// address the RPC server binds (after `--rpc_interface`).
    ///
    /// # Errors
    /// An unsupported backend, a missing or malformed coordinator address, a wildcard RPC
    /// address, or a lease TTL too short to fence with; each message names the flag.
    pub fn from_config(
        cfg: &MasterConfig,
        rpc_address: &str,
    ) -> Result<Option<HaConfig>, MasterError> {
        if !cfg.enable_ha {
            return Ok(None);
        }
        let locator = coordinator(cfg)?;
        let wildcard = ["", "0.0.0.0", "::", "[::]"];
        if wildcard.contains(&rpc_address.trim()) {
            return Err(MasterError::HaUnreachableAddress {
                address: rpc_address.to_string(),
            });
        }
        let election = ElectionConfig::with_ttl(cfg.master_view_lease_ttl_sec);
        election.validate().map_err(MasterError::HaTiming)?;
        Ok(Some(HaConfig {
            locator,
            election,
            advertise: format!("{rpc_address}:{}", cfg.rpc_port),
        }))
    }

    /// How long a standby may wait for a dead leader's lease: the TTL.
    pub fn ttl(&self) -> Duration {
        self.election.ttl
    }
}

/// The coordinator locator named by `--ha_backend_type` and its connection flags.
fn coordinator(cfg: &MasterConfig) -> Result<MasterLocator, MasterError> {
    let backend = cfg.ha_backend_type.trim().to_ascii_lowercase();
    let (flag, value) = if !cfg.ha_backend_connstring.trim().is_empty() {
        ("ha_backend_connstring", cfg.ha_backend_connstring.trim())
    } else {
        ("etcd_endpoints", cfg.etcd_endpoints.trim())
    };
    let mismatch = |text: &str| MasterError::HaLocator {
        flag,
        value: value.to_string(),
        source: mc_coord::CoordError::UnsupportedScheme {
            scheme: format!("{text} with --ha_backend_type={backend}"),
        },
    };
    let text = match backend.as_str() {
        "etcd" if value.is_empty() => {
            return Err(MasterError::HaNoCoordinator {
                backend,
                needed: "--etcd_endpoints=h1:2379;h2:2379 (or --ha_backend_connstring)",
            });
        }
        "etcd" => {
            let rest = value.strip_prefix("etcd://").unwrap_or(value);
            if rest.replace("http://", "").contains("://") {
                return Err(mismatch(value));
            }
            format!("etcd://{rest}")
        }
        "redis" if value.is_empty() || flag == "etcd_endpoints" => {
            return Err(MasterError::HaNoCoordinator {
                backend,
                needed: "--ha_backend_connstring=redis://host:6379",
            });
        }
        "redis" if value.contains("://") => value.to_string(),
        "redis" => format!("redis://{value}"),
        "k8s" => return Err(MasterError::HaBackendUnsupported),
        _ => return Err(MasterError::HaUnknownBackend { name: backend }),
    };
    let locator = MasterLocator::parse(&text).map_err(|source| MasterError::HaLocator {
        flag,
        value: value.to_string(),
        source,
    })?;
    match (&locator, backend.as_str()) {
        (MasterLocator::Etcd(_), "etcd") | (MasterLocator::Redis(_), "redis") => {}
        _ => return Err(mismatch(value)),
    }
    Ok(locator)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> MasterConfig {
        let mut v = vec!["mooncake_master".to_string()];
        v.extend(args.iter().map(|s| s.to_string()));
        MasterConfig::try_from_args(v).unwrap()
    }

    fn ha(args: &[&str]) -> Result<Option<HaConfig>, MasterError> {
        HaConfig::from_config(&cfg(args), "10.0.0.1")
    }

    #[test]
    fn off_without_enable_ha() {
        assert!(ha(&["--ha_backend_type=k8s"]).unwrap().is_none());
    }

    #[test]
    fn etcd_endpoints_in_every_form_and_redis_urls() {
        for value in [
            "--etcd_endpoints=10.0.0.5:2379;10.0.0.6:2379",
            "--etcd_endpoints=http://10.0.0.5:2379;http://10.0.0.6:2379",
            "--ha_backend_connstring=10.0.0.5:2379,10.0.0.6:2379",
            "--ha_backend_connstring=etcd://10.0.0.5:2379;10.0.0.6:2379",
        ] {
            let h = ha(&["--enable_ha", value]).unwrap().unwrap();
            assert_eq!(
                h.locator.to_string(),
                "etcd://10.0.0.5:2379;10.0.0.6:2379",
                "{value}"
            );
            assert_eq!(h.advertise, "10.0.0.1:50051");
        }
        let h = ha(&[
            "--enable_ha",
            "--ha_backend_type=redis",
            "--ha_backend_connstring=redis://10.0.0.7:6380",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(h.locator.to_string(), "redis://10.0.0.7:6380/0");
        let h = ha(&[
            "--enable_ha",
            "--ha_backend_type=redis",
            "--ha_backend_connstring=10.0.0.7:6380",
        ])
        .unwrap()
        .unwrap();
        assert!(matches!(h.locator, MasterLocator::Redis(_)));
    }

    #[test]
    fn what_cannot_work_is_refused_naming_the_flag() {
        let e = ha(&["--enable_ha", "--ha_backend_type=k8s"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("k8s") && e.contains("etcd, redis"), "{e}");
        let e = ha(&["--enable_ha", "--ha_backend_type=zk"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown --ha_backend_type `zk`"), "{e}");
        let e = ha(&["--enable_ha"]).unwrap_err().to_string();
        assert!(e.contains("--etcd_endpoints="), "{e}");
        let e = ha(&[
            "--enable_ha",
            "--ha_backend_type=redis",
            "--etcd_endpoints=h:1",
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("--ha_backend_connstring=redis://"), "{e}");
        let e = ha(&["--enable_ha", "--etcd_endpoints=h1"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--etcd_endpoints=`h1`") && e.contains("no port"),
            "{e}"
        );
        let e = ha(&["--enable_ha", "--ha_backend_connstring=redis://h:1"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("ha_backend_type=etcd"), "{e}");
        let e = ha(&[
            "--enable_ha",
            "--etcd_endpoints=h:1",
            "--master_view_lease_ttl_sec=500ms",
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("--master_view_lease_ttl_sec") && e.contains("at least 1 s"),
            "{e}"
        );
        for wild in ["0.0.0.0", "::", ""] {
            let e = HaConfig::from_config(&cfg(&["--enable_ha", "--etcd_endpoints=h:1"]), wild)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("--rpc_address") && e.contains("--rpc_interface"),
                "{e}"
            );
        }
    }
}
