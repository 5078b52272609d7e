//! Real etcd and redis-server processes on loopback ports chosen at run time.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mc_coord::MasterLocator;
use mc_coord::elect::{AnyElector, ElectionConfig};

/// Generous bound for events that should take about a second.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A coordinator server a test owns.
pub trait Server: Sized + Send {
    /// Starts a fresh server and waits until it answers.
    fn start() -> Self;
    /// Its locator.
    fn locator(&self) -> MasterLocator;
    /// Kills it (SIGKILL), as a crash would.
    fn kill(&mut self);
    /// Starts it again on the same ports (and, for etcd, the same data).
    fn restart(&mut self);
}

/// Fails the test with the fix when a binary is missing: CI installs them.
fn require(binary: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{binary}` is not on PATH: run scripts/setup.sh (CI installs it)")
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("mc-coord-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn log_file(dir: &Path, name: &str) -> Stdio {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .unwrap();
    Stdio::from(f)
}

fn stop_child(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Polls `ready` until it holds, failing the test after [`PATIENCE`] with `what`.
fn wait_until(what: &str, log: &Path, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !ready() {
        if Instant::now() > deadline {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} did not come up within {PATIENCE:?}; its log:\n{tail}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A single-member etcd cluster in a temporary data directory.
pub struct Etcd {
    child: Option<Child>,
    dir: TempDir,
    client_port: u16,
    peer_port: u16,
}

impl Etcd {
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    fn spawn(&mut self) {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new(require("etcd"))
            .arg("--name=t")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=t={peer}"))
            .stdin(Stdio::null())
            .stdout(log_file(self.dir.path(), "etcd.log"))
            .stderr(log_file(self.dir.path(), "etcd.log"))
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
        let port = self.client_port;
        wait_until("etcd", &self.dir.path().join("etcd.log"), || {
            etcd_healthy(port)
        });
    }
}

fn etcd_healthy(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.contains("\"health\":\"true\"")
}

impl Server for Etcd {
    fn start() -> Self {
        let mut etcd = Self {
            child: None,
            dir: TempDir::new("etcd"),
            client_port: free_port(),
            peer_port: free_port(),
        };
        etcd.spawn();
        etcd
    }

    fn locator(&self) -> MasterLocator {
        MasterLocator::parse(&format!("etcd://127.0.0.1:{}", self.client_port)).unwrap()
    }

    fn kill(&mut self) {
        stop_child(&mut self.child);
    }

    fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}

/// A redis-server without persistence.
pub struct Redis {
    child: Option<Child>,
    dir: TempDir,
    port: u16,
}

impl Redis {
    fn spawn(&mut self) {
        let child = Command::new(require("redis-server"))
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log_file(self.dir.path(), "redis.log"))
            .stderr(log_file(self.dir.path(), "redis.log"))
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let url = format!("redis://127.0.0.1:{}", self.port);
        wait_until("redis-server", &self.dir.path().join("redis.log"), || {
            let Ok(client) = redis::Client::open(url.as_str()) else {
                return false;
            };
            let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
                return false;
            };
            redis::cmd("PING").query::<String>(&mut conn).is_ok()
        });
    }

    /// A blocking connection for inspecting keys.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}", self.port))
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Server for Redis {
    fn start() -> Self {
        let mut redis = Self {
            child: None,
            dir: TempDir::new("redis"),
            port: free_port(),
        };
        redis.spawn();
        redis
    }

    fn locator(&self) -> MasterLocator {
        MasterLocator::parse(&format!("redis://127.0.0.1:{}", self.port)).unwrap()
    }

    fn kill(&mut self) {
        stop_child(&mut self.child);
    }

    fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}

/// An elector on `server` for `cluster` with a lease of `ttl`.
pub async fn elector(server: &impl Server, cluster: &str, ttl: Duration) -> AnyElector {
    AnyElector::connect(&server.locator(), cluster, ElectionConfig::with_ttl(ttl))
        .await
        .unwrap()
}
