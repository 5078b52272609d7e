//! Coordinators for HA tests: a real etcd or redis-server (the distribution's binaries, which
//! `scripts/setup.sh` installs) on loopback ports picked at run time, in a fresh temporary
//! directory, killed and removed when the handle drops, even when a test panics.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Error;
use crate::logs::unique_temp_dir;
use crate::ports::pick_free_ports;
use crate::probe::http_get;
use crate::process::ManagedChild;

/// How long a coordinator may take to answer after it is spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on one readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Host every coordinator binds.
const HOST: &str = "127.0.0.1";

/// Which coordinator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoordinatorKind {
    /// A single-member etcd cluster.
    Etcd,
    /// A redis-server without persistence.
    Redis,
}

impl CoordinatorKind {
    /// The binary run from PATH.
    pub fn binary(self) -> &'static str {
        match self {
            Self::Etcd => "etcd",
            Self::Redis => "redis-server",
        }
    }

    /// The Debian package that provides [`Self::binary`].
    pub fn package(self) -> &'static str {
        match self {
            Self::Etcd => "etcd-server",
            Self::Redis => "redis-server",
        }
    }

    /// The number of ports it listens on: the client port, then (etcd) the peer port.
    pub fn port_count(self) -> usize {
        match self {
            Self::Etcd => 2,
            Self::Redis => 1,
        }
    }

    /// The value of the master's `--ha_backend_type`.
    pub fn backend(self) -> &'static str {
        match self {
            Self::Etcd => "etcd",
            Self::Redis => "redis",
        }
    }
}

/// A running coordinator this process owns; see the [module docs](self).
#[derive(Debug)]
pub struct Coordinator {
    kind: CoordinatorKind,
    binary: PathBuf,
    dir: PathBuf,
    /// Client port, then (etcd) the peer port.
    ports: Vec<u16>,
    child: ManagedChild,
}

impl Coordinator {
    /// Starts a fresh coordinator of `kind` and waits until it answers.
    ///
    /// # Errors
    /// [`Error::ToolNotFound`] when its binary is not on PATH; otherwise the child's error
    /// ([`Error::ExitedEarly`], [`Error::NotReady`], ...), with its log tail.
    pub fn start(kind: CoordinatorKind) -> Result<Coordinator, Error> {
        let binary = find_tool(kind.binary(), kind.package())?;
        let dir = unique_temp_dir(&format!("mc-{}", kind.backend()))?;
        let log = dir.join(format!("{}.log", kind.backend()));
        let mut c = Coordinator {
            kind,
            binary,
            child: ManagedChild::new(kind.binary().to_string(), log),
            dir,
            ports: Vec::new(),
        };
        // Ports are free when picked but may be taken before the child binds them: once more.
        match c.launch(true) {
            Err(Error::AddressInUse { .. }) => c.launch(true)?,
            other => other?,
        }
        Ok(c)
    }

    /// Which coordinator this is.
    pub fn kind(&self) -> CoordinatorKind {
        self.kind
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.ports[0]
    }

    /// Its locator, as clients and nodes take it: `etcd://127.0.0.1:<port>` or
    /// `redis://127.0.0.1:<port>`.
    pub fn locator(&self) -> String {
        format!("{}://{HOST}:{}", self.kind.backend(), self.port())
    }

    /// The master flags that elect on this coordinator (Mooncake's spellings).
    pub fn master_args(&self) -> Vec<String> {
        let connection = match self.kind {
            CoordinatorKind::Etcd => format!("--etcd_endpoints={HOST}:{}", self.port()),
            CoordinatorKind::Redis => format!("--ha_backend_connstring={}", self.locator()),
        };
        vec![
            "--enable_ha=true".to_string(),
            format!("--ha_backend_type={}", self.kind.backend()),
            connection,
        ]
    }

    /// The pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.pid()
    }

    /// SIGKILLs it, as a crash would; nothing happens if it is not running.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// Kills it if it runs and starts it again on the same ports (etcd: with the same data).
    ///
    /// # Errors
    /// As for [`Coordinator::start`].
    pub fn restart(&mut self) -> Result<(), Error> {
        self.launch(false)
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.child.log_tail(lines)
    }

    fn launch(&mut self, fresh_ports: bool) -> Result<(), Error> {
        if fresh_ports {
            self.ports = pick_free_ports(HOST, self.kind.port_count())?;
        }
        let args = self.args();
        self.child.spawn(&self.binary, &args)?;
        let port = self.port();
        let ports = format!("{:?}", self.ports);
        let kind = self.kind;
        let result = self
            .child
            .wait_ready(READY_TIMEOUT, &ports, || answers(kind, port));
        if result.is_err() {
            self.child.kill();
        }
        result
    }

    fn args(&self) -> Vec<String> {
        command_line(self.kind, &self.dir, &self.ports)
    }
}

/// The command line of a coordinator of `kind` keeping its data under `dir` and listening on
/// 127.0.0.1 at `ports` ([`CoordinatorKind::port_count`] of them: client, then etcd's peer).
pub fn command_line(kind: CoordinatorKind, dir: &Path, ports: &[u16]) -> Vec<String> {
    let dir = dir.display();
    match kind {
        CoordinatorKind::Etcd => {
            let client = format!("http://{HOST}:{}", ports[0]);
            let peer = format!("http://{HOST}:{}", ports[1]);
            vec![
                "--name=t".into(),
                format!("--data-dir={dir}/data"),
                format!("--listen-client-urls={client}"),
                format!("--advertise-client-urls={client}"),
                format!("--listen-peer-urls={peer}"),
                format!("--initial-advertise-peer-urls={peer}"),
                format!("--initial-cluster=t={peer}"),
            ]
        }
        CoordinatorKind::Redis => [
            "--port",
            &ports[0].to_string(),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            &dir.to_string(),
        ]
        .map(String::from)
        .to_vec(),
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.child.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The path of `binary` on PATH; the error names `package`, the Debian package that has it.
///
/// # Errors
/// [`Error::ToolNotFound`].
pub fn find_tool(binary: &str, package: &str) -> Result<PathBuf, Error> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|p| Path::is_file(p))
        .ok_or_else(|| Error::ToolNotFound {
            name: binary.to_string(),
            package: package.to_string(),
        })
}

/// Whether the coordinator of `kind` on 127.0.0.1:`port` answers: etcd's `/health`, Redis's
/// `PING`; otherwise what was seen instead.
///
/// # Errors
/// A one-line description of the failed probe.
pub fn answers(kind: CoordinatorKind, port: u16) -> Result<(), String> {
    let addr = format!("{HOST}:{port}");
    match kind {
        CoordinatorKind::Etcd => {
            let r = http_get(&addr, "/health", PROBE_TIMEOUT).map_err(|e| e.to_string())?;
            if r.status == 200 && r.body.contains("\"health\":\"true\"") {
                Ok(())
            } else {
                Err(format!("HTTP {}: {}", r.status, r.body))
            }
        }
        CoordinatorKind::Redis => {
            let mut s = TcpStream::connect(&addr).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(PROBE_TIMEOUT))
                .map_err(|e| e.to_string())?;
            s.write_all(b"PING\r\n").map_err(|e| e.to_string())?;
            let mut answer = [0u8; 7];
            s.read_exact(&mut answer).map_err(|e| e.to_string())?;
            if &answer == b"+PONG\r\n" {
                Ok(())
            } else {
                Err(format!(
                    "PING answered {:?}",
                    String::from_utf8_lossy(&answer)
                ))
            }
        }
    }
}
