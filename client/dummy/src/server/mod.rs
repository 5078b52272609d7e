//! The real client (`mooncake_client`): a store node hosting `--global_segment_size`, a
//! store client of the master, and the service the dummies of this host talk to — an
//! abstract Unix socket `@mooncake_client_<port>.sock` (pools and zero-copy buffers) and TCP
//! on `--host:--port` (the same requests, values inline only).

mod conn;
mod exec;
mod mapped;

use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use mc_agent::node::NodeHandle;
use mooncake_rs::{Store, StoreConfig};

use crate::{DummyError, socket_name};

/// Most dummy connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long start-up waits for the master to accept the hosted segment.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(30);

/// Flags of `mooncake_client`, Mooncake's names and defaults.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "mooncake_client",
    about = "Mooncake's real client: hosts a segment and serves the dummy clients of this host"
)]
pub struct ClientFlags {
    /// This host's name or address: the hosted segment's host, and where TCP is served.
    #[arg(long = "host", default_value = "0.0.0.0")]
    pub host: String,
    /// Service port; the Unix socket is `@mooncake_client_<port>.sock`.
    #[arg(long = "port", default_value_t = 50052)]
    pub port: u16,
    /// Memory this client contributes to the cluster (0 = none).
    #[arg(long = "global_segment_size", default_value = "4 GB", value_parser = size)]
    pub global_segment_size: u64,
    /// Accepted for Mooncake's command lines; values that do not live in a dummy's pool
    /// are carried in the request and reply themselves.
    #[arg(long = "local_buffer_size", default_value = "0", value_parser = size)]
    pub local_buffer_size: u64,
    /// The master: `host:port`, `etcd://...` or `redis://...`.
    #[arg(long = "master_server_address", default_value = "127.0.0.1:50051")]
    pub master_server_address: String,
    /// Accepted for Mooncake's command lines; segments are found through the master.
    #[arg(
        long = "metadata_server",
        default_value = "http://127.0.0.1:8080/metadata"
    )]
    pub metadata_server: String,
    /// Transfer protocol; `tcp` (anything else is served as tcp, with a warning).
    #[arg(long = "protocol", default_value = "tcp")]
    pub protocol: String,
    /// Accepted for Mooncake's command lines (RDMA devices).
    #[arg(long = "device_names", default_value = "")]
    pub device_names: String,
    /// Accepted for Mooncake's command lines: every connection has its own thread.
    #[arg(long = "threads", default_value_t = 1)]
    pub threads: u32,
}

fn size(s: &str) -> Result<u64, mc_schema::SchemaError> {
    mc_schema::units::parse_size(s)
}

impl ClientFlags {
    /// Parses a command line (both `--a_b` and `--a-b` spellings).
    pub fn try_from_args<I: IntoIterator<Item = String>>(
        args: I,
    ) -> Result<ClientFlags, clap::Error> {
        ClientFlags::try_parse_from(mc_schema::units::normalize_flags(args))
    }
}

/// A running real client; stops its node when dropped.
pub struct RealClient {
    node: Option<NodeHandle>,
    store: Arc<Store>,
    hostname: String,
}

impl RealClient {
    /// Hosts the segment, connects to the master, then listens and serves dummies on
    /// threads of their own.
    pub fn start(flags: &ClientFlags) -> Result<RealClient, DummyError> {
        if flags.protocol != "tcp" {
            tracing::warn!(
                "--protocol={}: this build moves data over tcp",
                flags.protocol
            );
        }
        let node = match flags.global_segment_size {
            0 => None,
            _ => Some(start_node(flags)?),
        };
        let mut cfg = StoreConfig::new(flags.master_server_address.clone());
        cfg.local_hostname = node_host(flags).unwrap_or("localhost").to_string();
        let store = Store::connect(cfg).map_err(|source| DummyError::Master {
            master: flags.master_server_address.clone(),
            source,
        })?;
        let hostname = node
            .as_ref()
            .and_then(|n| n.segments().first().map(|s| s.name.clone()))
            .unwrap_or_else(|| format!("{}:{}", flags.host, flags.port));
        let rc = RealClient {
            node,
            store: Arc::new(store),
            hostname,
        };
        rc.listen(flags)?;
        tracing::info!(
            "serving dummies on @{} and {}:{}; segment {}",
            socket_name(flags.port),
            flags.host,
            flags.port,
            rc.hostname
        );
        Ok(rc)
    }

    /// The name dummies' `get_hostname()` answers.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// Why the hosted node stopped on its own, if it did.
    pub fn died(&self) -> Option<String> {
        self.node.as_ref().and_then(NodeHandle::died)
    }

    fn listen(&self, flags: &ClientFlags) -> Result<(), DummyError> {
        let name = socket_name(flags.port);
        let bind_err = |addr: String| move |source| DummyError::Bind { addr, source };
        let unix = SocketAddr::from_abstract_name(name.as_bytes())
            .and_then(|a| UnixListener::bind_addr(&a))
            .map_err(bind_err(format!("@{name}")))?;
        let tcp_addr = format!("{}:{}", flags.host, flags.port);
        let tcp = TcpListener::bind(&tcp_addr).map_err(bind_err(tcp_addr))?;
        let live = Arc::new(AtomicUsize::new(0));
        let (store, host) = (self.store.clone(), self.hostname.clone());
        spawn_acceptor(
            "mc-dummy-unix",
            live.clone(),
            store.clone(),
            host.clone(),
            move || unix.accept().map(|(s, _)| s),
        );
        spawn_acceptor("mc-dummy-tcp", live, store, host, move || {
            let (s, _) = tcp.accept()?;
            s.set_nodelay(true)?;
            Ok(s)
        });
        Ok(())
    }
}

impl Drop for RealClient {
    fn drop(&mut self) {
        if let Some(n) = self.node.take() {
            n.stop();
        }
    }
}

/// Accepts connections with `accept` on a thread of its own, each served on another.
fn spawn_acceptor<S, F>(
    name: &str,
    live: Arc<AtomicUsize>,
    store: Arc<Store>,
    host: String,
    mut accept: F,
) where
    S: std::io::Read + std::io::Write + std::os::fd::AsFd + Send + 'static,
    F: FnMut() -> std::io::Result<S> + Send + 'static,
{
    let unix = name.ends_with("unix");
    let spawn = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            loop {
                let s = match accept() {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("accepting a dummy: {e}");
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                };
                if live.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                    live.fetch_sub(1, Ordering::AcqRel);
                    tracing::warn!(
                        "{MAX_CONNECTIONS} dummy connections already: closing a new one"
                    );
                    continue;
                }
                let (store, host, live) = (store.clone(), host.clone(), live.clone());
                let served = std::thread::Builder::new()
                    .name("mc-dummy-conn".into())
                    .spawn(move || {
                        conn::serve(s, &store, &host, unix);
                        live.fetch_sub(1, Ordering::AcqRel);
                    });
                if let Err(e) = served {
                    tracing::warn!("no thread for a dummy connection: {e}");
                }
            }
        });
    if let Err(e) = spawn {
        tracing::error!("cannot start {name}: {e}");
    }
}

/// The node's `--local_hostname`: `--host`, unless it is the wildcard address.
fn node_host(flags: &ClientFlags) -> Option<&str> {
    (flags.host != "0.0.0.0" && !flags.host.is_empty()).then_some(flags.host.as_str())
}

/// Starts the hosted node (one shard, REST on an ephemeral loopback port) and waits until
/// the master has mounted its segment.
fn start_node(flags: &ClientFlags) -> Result<NodeHandle, DummyError> {
    let mut args = vec![
        "mooncake_store".to_string(),
        format!("--master_server={}", flags.master_server_address),
        format!("--global_segment_size={}", flags.global_segment_size),
        "--data_port=0".into(),
        "--port=0".into(),
        "--cores=1".into(),
        "--rest_host=127.0.0.1".into(),
    ];
    if let Some(h) = node_host(flags) {
        args.push(format!("--local_hostname={h}"));
    }
    let cfg = mc_agent::StoreConfig::try_from_args(args)
        .map_err(|e| DummyError::NodeFlags(e.to_string()))?;
    let node = mc_agent::node::start(cfg)?;
    let deadline = Instant::now() + MOUNT_TIMEOUT;
    while node.segments().is_empty() || node.mounted_segments() < node.segments().len() {
        if Instant::now() >= deadline {
            node.stop();
            return Err(DummyError::MountTimeout {
                master: flags.master_server_address.clone(),
                timeout_seconds: MOUNT_TIMEOUT.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(node)
}

/// Runs a real client until SIGTERM or SIGINT (or until its node stops on its own).
pub fn run(flags: &ClientFlags) -> Result<(), DummyError> {
    let signalled = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, signalled.clone()).map_err(DummyError::Io)?;
    }
    let rc = RealClient::start(flags)?;
    while !signalled.load(Ordering::Acquire) {
        if let Some(what) = rc.died() {
            tracing::error!("{what}: stopping");
            return Err(DummyError::NodeFlags(format!(
                "the hosted node stopped: {what}"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    tracing::info!("signal received: stopping");
    drop(rc);
    Ok(())
}
