//! Real etcd and redis-server processes on loopback ports chosen at run time
//! (`mc_cluster::Coordinator`, killed when dropped, even when a test panics).

use std::time::Duration;

use mc_cluster::{Coordinator, CoordinatorKind};
use mc_coord::MasterLocator;
use mc_coord::elect::{AnyElector, ElectionConfig};

/// Generous bound for events that should take about a second.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A coordinator server a test owns.
pub trait Server: Sized + Send {
    /// Starts a fresh server and waits until it answers.
    fn start() -> Self;
    /// The server.
    fn coordinator(&mut self) -> &mut Coordinator;
    /// Its locator.
    fn locator(&self) -> MasterLocator;
    /// Kills it (SIGKILL), as a crash would.
    fn kill(&mut self) {
        self.coordinator().kill();
    }
    /// Starts it again on the same ports (and, for etcd, the same data).
    fn restart(&mut self) {
        self.coordinator()
            .restart()
            .unwrap_or_else(|e| panic!("coordinator did not restart: {e}"));
    }
}

fn start(kind: CoordinatorKind) -> Coordinator {
    Coordinator::start(kind).unwrap_or_else(|e| panic!("{} did not start: {e}", kind.binary()))
}

/// A single-member etcd cluster in a temporary data directory.
pub struct Etcd(Coordinator);

impl Etcd {
    pub fn client_port(&self) -> u16 {
        self.0.port()
    }
}

impl Server for Etcd {
    fn start() -> Self {
        Self(start(CoordinatorKind::Etcd))
    }

    fn coordinator(&mut self) -> &mut Coordinator {
        &mut self.0
    }

    fn locator(&self) -> MasterLocator {
        MasterLocator::parse(&self.0.locator()).unwrap()
    }
}

/// A redis-server without persistence.
pub struct Redis(Coordinator);

impl Redis {
    /// A blocking connection for inspecting keys.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.0.locator())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Server for Redis {
    fn start() -> Self {
        Self(start(CoordinatorKind::Redis))
    }

    fn coordinator(&mut self) -> &mut Coordinator {
        &mut self.0
    }

    fn locator(&self) -> MasterLocator {
        MasterLocator::parse(&self.0.locator()).unwrap()
    }
}

/// An elector on `server` for `cluster` with a lease of `ttl`.
pub async fn elector(server: &impl Server, cluster: &str, ttl: Duration) -> AnyElector {
    AnyElector::connect(&server.locator(), cluster, ElectionConfig::with_ttl(ttl))
        .await
        .unwrap()
}
