//! [`LocalCluster`]: one master and N store nodes running as children of this process.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use crate::binary::{MASTER_BINARY, STORE_BINARY, find_binary};
use crate::logs::unique_temp_dir;
use crate::ports::{pick_free_port, pick_free_ports};
use crate::probe::{check_master, check_node};
use crate::process::ManagedChild;
use crate::{ClusterSpec, Error, NodeSpec};

/// Address the master binds its RPC and metrics ports on.
const MASTER_HOST: &str = "127.0.0.1";
/// Attempts at a restart that must keep its ports, when each attempt finds a port taken.
const SAME_PORT_ATTEMPTS: u32 = 5;
/// Pause before retrying a restart on the same ports, for the holder to let go.
const SAME_PORT_RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Whether a launch may move the child to new ports when one is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPolicy {
    /// First start: pick ports now, and pick new ones once if a port turns out to be taken.
    Fresh,
    /// Restart: others know the ports (nodes dial the master, tests hold node addresses),
    /// so keep them and retry a few times instead.
    Keep,
}

/// What every launch needs, apart from the child being launched.
#[derive(Debug)]
struct LaunchConfig {
    master_bin: PathBuf,
    store_bin: PathBuf,
    master_args: Vec<String>,
    master_env: Vec<(String, String)>,
    cluster_id: Option<String>,
    ready_timeout: Duration,
}

/// The master child and its ports.
#[derive(Debug)]
struct MasterProcess {
    rpc_port: u16,
    metrics_port: u16,
    child: ManagedChild,
}

/// A store-node child, the spec it was started from and its REST port.
#[derive(Debug)]
struct NodeProcess {
    spec: NodeSpec,
    rest_port: u16,
    child: ManagedChild,
}

/// A running local cluster: one `mooncake_master` (or several HA masters, see
/// [`ClusterSpec::masters`]) and any number of `mooncake_store` nodes, all children of this
/// process, with their output in a temporary log directory.
///
/// Methods without an index act on master 0; the `*_of(i)` ones on master `i`.
///
/// Dropping it SIGKILLs and reaps every child still running and removes the log directory,
/// unless env `MC_KEEP_LOGS` is set (then the directory's path is printed to stderr).
///
/// Methods taking a node index panic when the index is not below [`Self::node_count`], like
/// slice indexing: a wrong index is a bug in the calling test.
#[derive(Debug)]
pub struct LocalCluster {
    config: LaunchConfig,
    log_dir: PathBuf,
    masters: Vec<MasterProcess>,
    /// What nodes get as `--master_server` (master 0's address when `None`).
    master_server: Option<String>,
    nodes: Vec<NodeProcess>,
}

impl LocalCluster {
    /// Starts the masters one by one, waiting until each one's `/health` answers 200, then
    /// starts the nodes one by one and waits until each has mounted all its segments.
    ///
    /// Ports are picked at run time; a child that exits because a port was taken in the
    /// meantime is started once more on new ports. If any step fails, every child started so
    /// far is killed before the error is returned.
    ///
    /// # Errors
    /// [`Error::BinaryNotFound`] before anything starts; afterwards the error of the child
    /// that failed ([`Error::ExitedEarly`], [`Error::NotReady`], ...), with its log tail.
    pub fn start(spec: ClusterSpec) -> Result<LocalCluster, Error> {
        let master_bin = find_binary(MASTER_BINARY, spec.bin_dir.as_deref())?;
        let store_bin = find_binary(STORE_BINARY, spec.bin_dir.as_deref())?;
        let log_dir = unique_temp_dir("mc-cluster")?;
        // Built before anything runs so that an early return drops it, which kills and
        // reaps whatever did start.
        let mut cluster = LocalCluster {
            config: LaunchConfig {
                master_bin,
                store_bin,
                master_args: spec.master_args,
                master_env: spec.master_env,
                cluster_id: spec.cluster_id,
                ready_timeout: spec.ready_timeout,
            },
            masters: (0..spec.masters.max(1))
                .map(|i| MasterProcess {
                    rpc_port: 0,
                    metrics_port: 0,
                    child: ManagedChild::new(
                        if i == 0 {
                            "master".to_string()
                        } else {
                            format!("master {i}")
                        },
                        log_dir.join(if i == 0 {
                            "master.log".to_string()
                        } else {
                            format!("master-{i}.log")
                        }),
                    ),
                })
                .collect(),
            log_dir,
            master_server: spec.master_server,
            nodes: Vec::with_capacity(spec.nodes.len()),
        };
        for master in &mut cluster.masters {
            launch_master(&cluster.config, master, PortPolicy::Fresh)?;
        }
        for node in spec.nodes {
            cluster.add_node(node)?;
        }
        Ok(cluster)
    }

    /// The master's RPC address, `127.0.0.1:<rpc_port>`, as clients and nodes dial it.
    pub fn master_addr(&self) -> String {
        self.master_addr_of(0)
    }

    /// The master's metrics/health HTTP address, `127.0.0.1:<metrics_port>`.
    pub fn metrics_addr(&self) -> String {
        self.metrics_addr_of(0)
    }

    /// Number of masters ([`ClusterSpec::masters`]).
    pub fn master_count(&self) -> usize {
        self.masters.len()
    }

    /// Master `i`'s RPC address.
    pub fn master_addr_of(&self, i: usize) -> String {
        format!("{MASTER_HOST}:{}", self.master(i).rpc_port)
    }

    /// Master `i`'s metrics/health HTTP address.
    pub fn metrics_addr_of(&self, i: usize) -> String {
        format!("{MASTER_HOST}:{}", self.master(i).metrics_port)
    }

    /// Master `i`'s pid while its process has not exited and been reaped.
    pub fn master_pid_of(&self, i: usize) -> Option<u32> {
        self.master(i).child.pid()
    }

    /// SIGKILLs master `i` and waits for it to exit; nothing happens if it already has.
    pub fn kill_master_of(&mut self, i: usize) {
        self.master_mut(i).child.kill();
    }

    /// Sends signal `sig` to master `i`; ignored if it has already exited and been reaped.
    pub fn signal_master_of(&mut self, i: usize, sig: i32) {
        self.master(i).child.signal(sig);
    }

    /// Waits up to `timeout` for master `i` to exit and returns its exit status; `None` if
    /// it is still running.
    pub fn wait_master_exit_of(&mut self, i: usize, timeout: Duration) -> Option<ExitStatus> {
        self.master_mut(i).child.wait_exit(timeout)
    }

    /// Kills master `i` if it still runs, starts it again with the same flags on the same
    /// ports, and waits until its `/health` answers 200.
    ///
    /// # Errors
    /// As for [`Self::start`]; the master is left stopped.
    pub fn restart_master_of(&mut self, i: usize) -> Result<(), Error> {
        let config = &self.config;
        let master = self.masters.get_mut(i).unwrap_or_else(|| no_such_master(i));
        master.child.kill();
        launch_master(config, master, PortPolicy::Keep)
    }

    /// What nodes are given as `--master_server`: [`ClusterSpec::master_server`], else
    /// master 0's address.
    pub fn node_master_server(&self) -> String {
        self.master_server
            .clone()
            .unwrap_or_else(|| self.master_addr())
    }

    /// Node `i`'s REST address, `<host>:<rest_port>`.
    pub fn node_rest_addr(&self, i: usize) -> String {
        let node = self.node(i);
        format!("{}:{}", node.spec.host, node.rest_port)
    }

    /// The spec node `i` was started from.
    pub fn node_spec(&self, i: usize) -> &NodeSpec {
        &self.node(i).spec
    }

    /// Number of nodes started so far, running or not; valid indexes are below this.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Node `i`'s pid while its process has not exited and been reaped.
    pub fn node_pid(&self, i: usize) -> Option<u32> {
        self.node(i).child.pid()
    }

    /// The master's pid while its process has not exited and been reaped.
    pub fn master_pid(&self) -> Option<u32> {
        self.master_pid_of(0)
    }

    /// SIGKILLs node `i` and waits for it to exit; nothing happens if it already has.
    pub fn kill_node(&mut self, i: usize) {
        self.node_mut(i).child.kill();
    }

    /// Sends signal `sig` (`libc::SIGTERM`, `libc::SIGSTOP`, `libc::SIGCONT`, ...) to node
    /// `i`; ignored if the node has already exited and been reaped. SIGSTOP and SIGCONT
    /// also go to the node's `dataplane` and `agent` processes, so the whole node freezes
    /// and thaws; other signals go to the supervisor alone, which passes on what it must.
    pub fn signal_node(&mut self, i: usize, sig: i32) {
        let node = self.node(i);
        if (sig == libc::SIGSTOP || sig == libc::SIGCONT)
            && let Some(pid) = node.child.pid()
        {
            for (child, _) in crate::children::children(pid) {
                let _ = crate::process::send_signal(child, sig);
            }
        }
        node.child.signal(sig);
    }

    /// Sends signal `sig` to the master; ignored if it has already exited and been reaped.
    pub fn signal_master(&mut self, sig: i32) {
        self.signal_master_of(0, sig);
    }

    /// Waits up to `timeout` for node `i` to exit and returns its exit status (at once if it
    /// exited before); `None` if it is still running.
    pub fn wait_node_exit(&mut self, i: usize, timeout: Duration) -> Option<ExitStatus> {
        self.node_mut(i).child.wait_exit(timeout)
    }

    /// Waits up to `timeout` for the master to exit and returns its exit status; `None` if
    /// it is still running.
    pub fn wait_master_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.wait_master_exit_of(0, timeout)
    }

    /// Waits until node `i` reports all segments mounted again (e.g. after `SIGCONT` or a
    /// master restart), up to the spec's ready timeout.
    ///
    /// # Errors
    /// [`Error::ExitedEarly`] if the node exits, [`Error::NotReady`] on timeout.
    pub fn wait_node_ready(&mut self, i: usize) -> Result<(), Error> {
        let rest_addr = self.node_rest_addr(i);
        let timeout = self.config.ready_timeout;
        let ports = format!("rest {}", self.node(i).rest_port);
        self.node_mut(i)
            .child
            .wait_ready(timeout, &ports, || check_node(&rest_addr).map(drop))
    }

    /// Kills node `i` if it still runs, starts it again from the same spec on the same REST
    /// port, and waits until it is ready.
    ///
    /// # Errors
    /// As for [`Self::start`]; the node is left stopped.
    pub fn restart_node(&mut self, i: usize) -> Result<(), Error> {
        let master_addr = self.node_master_server();
        let node = self.nodes.get_mut(i).unwrap_or_else(|| no_such_node(i));
        node.child.kill();
        launch_node(&self.config, &master_addr, node, PortPolicy::Keep)
    }

    /// Starts one more node on a fresh REST port, waits until it is ready, and returns its
    /// index.
    ///
    /// # Errors
    /// As for [`Self::start`]; the failed node is killed and not added.
    pub fn add_node(&mut self, spec: NodeSpec) -> Result<usize, Error> {
        let index = self.nodes.len();
        let what = format!("node {index} on {}", spec.host);
        let log_path = self.log_dir.join(format!("node-{index}.log"));
        let mut node = NodeProcess {
            spec,
            rest_port: 0,
            child: ManagedChild::new(what, log_path),
        };
        // On error `node` is dropped here, which kills and reaps its process.
        launch_node(
            &self.config,
            &self.node_master_server(),
            &mut node,
            PortPolicy::Fresh,
        )?;
        self.nodes.push(node);
        Ok(index)
    }

    /// SIGKILLs the master and waits for it to exit; nothing happens if it already has.
    pub fn kill_master(&mut self) {
        self.kill_master_of(0);
    }

    /// Kills the master if it still runs, starts it again with the same flags on the same
    /// ports (the nodes keep dialling them), and waits until its `/health` answers 200.
    ///
    /// # Errors
    /// As for [`Self::start`]; the master is left stopped.
    pub fn restart_master(&mut self) -> Result<(), Error> {
        self.restart_master_of(0)
    }

    /// The temporary directory holding `master.log` (`master-<i>.log` for further masters)
    /// and `node-<i>.log`.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// The last `lines` lines of every child's log, masters first, each under a
    /// `==> name (file) <==` header; meant for test failure messages.
    pub fn logs_tail(&self, lines: usize) -> String {
        let children = (self.masters.iter().map(|m| &m.child))
            .chain(self.nodes.iter().map(|node| &node.child));
        let mut out = String::new();
        for child in children {
            let file = child
                .log_path()
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push_str(&format!("==> {} ({file}) <==\n", child.what()));
            out.push_str(&child.log_tail(lines));
        }
        out
    }

    fn master(&self, i: usize) -> &MasterProcess {
        self.masters.get(i).unwrap_or_else(|| no_such_master(i))
    }

    fn master_mut(&mut self, i: usize) -> &mut MasterProcess {
        self.masters.get_mut(i).unwrap_or_else(|| no_such_master(i))
    }

    fn node(&self, i: usize) -> &NodeProcess {
        self.nodes.get(i).unwrap_or_else(|| no_such_node(i))
    }

    fn node_mut(&mut self, i: usize) -> &mut NodeProcess {
        self.nodes.get_mut(i).unwrap_or_else(|| no_such_node(i))
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // Nodes before the master, so no node sees its master vanish while it still runs.
        for node in &mut self.nodes {
            node.child.kill();
        }
        for master in &mut self.masters {
            master.child.kill();
        }
        if std::env::var_os("MC_KEEP_LOGS").is_some() {
            eprintln!("mc-cluster: logs kept in {}", self.log_dir.display());
        } else {
            // Best effort: a leftover temp dir must not turn into a panic during unwinding.
            let _ = std::fs::remove_dir_all(&self.log_dir);
        }
    }
}

#[track_caller]
fn no_such_master(i: usize) -> ! {
    panic!("mc-cluster: no master with index {i}")
}

#[track_caller]
fn no_such_node(i: usize) -> ! {
    panic!("mc-cluster: no node with index {i}")
}

/// The master's command line for the given ports.
fn master_args(config: &LaunchConfig, rpc_port: u16, metrics_port: u16) -> Vec<String> {
    let mut args = vec![
        format!("--rpc_port={rpc_port}"),
        format!("--rpc_address={MASTER_HOST}"),
        format!("--metrics_port={metrics_port}"),
    ];
    if let Some(cluster_id) = &config.cluster_id {
        args.push(format!("--cluster_id={cluster_id}"));
    }
    args.extend(config.master_args.iter().cloned());
    args
}

/// A store node's command line.
fn node_args(
    config: &LaunchConfig,
    master_addr: &str,
    spec: &NodeSpec,
    rest_port: u16,
) -> Vec<String> {
    let mut args = vec![
        format!("--master_server={master_addr}"),
        format!("--local_hostname={}", spec.host),
        format!("--global_segment_size={}", spec.segment_size),
        format!("--port={rest_port}"),
    ];
    // Ephemeral data ports unless the spec fixes one (a node restarted on the same
    // address).
    if !spec.extra_args.iter().any(|a| a.starts_with("--data_port")) {
        args.push("--data_port=0".to_string());
    }
    if !spec.cores.is_empty() {
        args.push(format!("--cores={}", spec.cores));
    }
    if let Some(cluster_id) = &config.cluster_id {
        args.push(format!("--cluster_id={cluster_id}"));
    }
    args.extend(spec.extra_args.iter().cloned());
    args
}

/// Whether to try again after attempt number `attempt` (1-based) found a port taken.
fn retry_after_port_clash(policy: PortPolicy, attempt: u32) -> bool {
    match policy {
        PortPolicy::Fresh => attempt < 2,
        PortPolicy::Keep => {
            if attempt < SAME_PORT_ATTEMPTS {
                std::thread::sleep(SAME_PORT_RETRY_PAUSE);
                true
            } else {
                false
            }
        }
    }
}

/// Spawns the master and waits for its health endpoint; see [`PortPolicy`] for retries.
fn launch_master(
    config: &LaunchConfig,
    master: &mut MasterProcess,
    policy: PortPolicy,
) -> Result<(), Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        if policy == PortPolicy::Fresh {
            let ports = pick_free_ports(MASTER_HOST, 2)?;
            master.rpc_port = ports[0];
            master.metrics_port = ports[1];
        }
        let args = master_args(config, master.rpc_port, master.metrics_port);
        master
            .child
            .spawn_with_env(&config.master_bin, &args, &config.master_env)?;
        let metrics_addr = format!("{MASTER_HOST}:{}", master.metrics_port);
        let ports = format!("rpc {}, metrics {}", master.rpc_port, master.metrics_port);
        let result = master
            .child
            .wait_ready(config.ready_timeout, &ports, || check_master(&metrics_addr));
        match result {
            Ok(()) => return Ok(()),
            Err(Error::AddressInUse { .. }) if retry_after_port_clash(policy, attempt) => {}
            Err(err) => {
                master.child.kill();
                return Err(err);
            }
        }
    }
}

/// Spawns a store node and waits until it has mounted all its segments; see [`PortPolicy`]
/// for retries.
fn launch_node(
    config: &LaunchConfig,
    master_addr: &str,
    node: &mut NodeProcess,
    policy: PortPolicy,
) -> Result<(), Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        if policy == PortPolicy::Fresh {
            node.rest_port = pick_free_port(&node.spec.host)?;
        }
        let master_addr = node.spec.master_server.as_deref().unwrap_or(master_addr);
        let args = node_args(config, master_addr, &node.spec, node.rest_port);
        node.child
            .spawn_with_env(&config.store_bin, &args, &node.spec.env)?;
        let rest_addr = format!("{}:{}", node.spec.host, node.rest_port);
        let ports = format!("rest {}", node.rest_port);
        let result = node.child.wait_ready(config.ready_timeout, &ports, || {
            check_node(&rest_addr).map(drop)
        });
        match result {
            Ok(()) => return Ok(()),
            Err(Error::AddressInUse { .. }) if retry_after_port_clash(policy, attempt) => {}
            Err(err) => {
                node.child.kill();
                return Err(err);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! `start()` and friends against fake binaries: shell scripts named `mooncake_master` and
    //! `mooncake_store` that exec a small Python HTTP server speaking the same `/health`
    //! protocol and echoing the flags they were given. Skipped (with a note) without python3.

    use super::*;
    use crate::probe::{PROBE_TIMEOUT, http_get};
    use std::os::unix::process::ExitStatusExt;

    const FAKE_SERVER: &str = r#"
import http.server, json, os, sys, time
role, mode, fake_dir = sys.argv[1], sys.argv[2], sys.argv[3]
args = sys.argv[4:]
flags = dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)
with open(os.path.join(fake_dir, role + ".pid"), "a") as f:
    f.write("%d\n" % os.getpid())
if mode == "exit":
    print("fake: failing on purpose", flush=True)
    sys.exit(3)
if mode == "hang":
    print("fake: hanging", flush=True)
    time.sleep(3600)
if mode == "busy_once":
    marker = os.path.join(fake_dir, role + ".busy")
    if not os.path.exists(marker):
        open(marker, "w").close()
        print("Error: Address already in use (os error 98)", file=sys.stderr, flush=True)
        sys.exit(1)
if role == "master":
    host, port, body = "127.0.0.1", int(flags["metrics_port"]), {"status": "ok"}
else:
    host, port, body = flags["local_hostname"], int(flags["port"]), {"mounted_segments": 2, "shards": 2}
body["args"] = args
payload = json.dumps(body).encode()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/health":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
    def log_message(self, *a):
        pass
server = http.server.HTTPServer((host, port), Handler)
print("fake %s listening on %s:%d" % (role, host, port), flush=True)
server.serve_forever()
"#;

    /// A temp dir holding the fake binaries; removed on drop.
    struct FakeBins {
        dir: PathBuf,
    }

    impl Drop for FakeBins {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    impl FakeBins {
        /// Pids the fake `role` (`master` or `store`) wrote, one per run.
        fn pids(&self, role: &str) -> Vec<u32> {
            std::fs::read_to_string(self.dir.join(format!("{role}.pid")))
                .unwrap_or_default()
                .lines()
                .map(|line| line.parse().unwrap())
                .collect()
        }

        /// True if `pid` is still a fake process from this directory (a recycled pid running
        /// something else does not count).
        fn is_alive(&self, pid: u32) -> bool {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|cmdline| {
                    String::from_utf8_lossy(&cmdline).contains(&*self.dir.to_string_lossy())
                })
                .unwrap_or(false)
        }

        fn spec(&self, nodes: Vec<NodeSpec>) -> ClusterSpec {
            ClusterSpec {
                nodes,
                bin_dir: Some(self.dir.clone()),
                ..ClusterSpec::default()
            }
        }
    }

    /// Writes the fakes, or returns `None` (after saying so) when python3 is missing.
    fn fake_bins(master_mode: &str, store_mode: &str) -> Option<FakeBins> {
        let python = std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8(out.stdout).unwrap().trim().to_string());
        let Some(python) = python else {
            eprintln!("skipped: python3 not found, the fake cluster binaries need it");
            return None;
        };
        let fakes = FakeBins {
            dir: unique_temp_dir("mc-cluster-fake").unwrap(),
        };
        let server = fakes.dir.join("fake_server.py");
        std::fs::write(&server, FAKE_SERVER).unwrap();
        for (binary, role, mode) in [
            (MASTER_BINARY, "master", master_mode),
            (STORE_BINARY, "store", store_mode),
        ] {
            use std::os::unix::fs::PermissionsExt;
            let path = fakes.dir.join(binary);
            let script = format!(
                "#!/bin/sh\nexec '{python}' '{}' {role} {mode} '{}' \"$@\"\n",
                server.display(),
                fakes.dir.display()
            );
            std::fs::write(&path, script).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Some(fakes)
    }

    fn health_body(addr: &str) -> String {
        let response = http_get(addr, "/health", PROBE_TIMEOUT).unwrap();
        assert_eq!(response.status, 200, "{}", response.body);
        response.body
    }

    #[test]
    fn full_lifecycle_against_fake_binaries() {
        let Some(fakes) = fake_bins("serve", "serve") else {
            return;
        };
        let mut first = NodeSpec::default();
        first.extra_args.push("--extra_flag=1".to_string());
        let mut spec = fakes.spec(vec![first, NodeSpec::on_host("127.0.0.2")]);
        spec.cluster_id = Some("lifecycle".to_string());
        spec.master_args.push("--master_flag=2".to_string());
        let mut cluster = LocalCluster::start(spec).unwrap();

        // Flags reach the children.
        assert_eq!(cluster.node_count(), 2);
        let master_body = health_body(&cluster.metrics_addr());
        let rpc_port = cluster
            .master_addr()
            .rsplit(':')
            .next()
            .unwrap()
            .to_string();
        for flag in [
            format!("--rpc_port={rpc_port}"),
            "--rpc_address=127.0.0.1".to_string(),
            "--cluster_id=lifecycle".to_string(),
            "--master_flag=2".to_string(),
        ] {
            assert!(master_body.contains(&flag), "{flag} not in {master_body}");
        }
        assert!(cluster.node_rest_addr(1).starts_with("127.0.0.2:"));
        let node_body = health_body(&cluster.node_rest_addr(1));
        for flag in [
            format!("--master_server={}", cluster.master_addr()),
            "--local_hostname=127.0.0.2".to_string(),
            "--global_segment_size=256MB".to_string(),
            "--data_port=0".to_string(),
            "--cores=auto".to_string(),
            "--cluster_id=lifecycle".to_string(),
        ] {
            assert!(node_body.contains(&flag), "{flag} not in {node_body}");
        }
        assert!(health_body(&cluster.node_rest_addr(0)).contains("--extra_flag=1"));
        let logs = cluster.logs_tail(5);
        assert!(
            logs.contains("==> node 1 on 127.0.0.2 (node-1.log) <=="),
            "{logs}"
        );
        assert!(logs.contains("fake master listening"), "{logs}");
        assert!(logs.contains("fake store listening on 127.0.0.2"), "{logs}");

        // Kill and restart a node on the same address.
        let addr0 = cluster.node_rest_addr(0);
        let old_pid = cluster.node_pid(0).unwrap();
        cluster.kill_node(0);
        assert_eq!(cluster.node_pid(0), None);
        let status = cluster.wait_node_exit(0, Duration::ZERO).unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(!fakes.is_alive(old_pid));
        cluster.restart_node(0).unwrap();
        assert_eq!(cluster.node_rest_addr(0), addr0);
        assert_ne!(cluster.node_pid(0), Some(old_pid));
        health_body(&addr0);

        // Stop/continue, then terminate with a signal.
        cluster.signal_node(1, libc::SIGSTOP);
        assert!(cluster.wait_node_exit(1, Duration::ZERO).is_none());
        cluster.signal_node(1, libc::SIGCONT);
        cluster.wait_node_ready(1).unwrap();
        cluster.signal_node(1, libc::SIGTERM);
        let status = cluster.wait_node_exit(1, Duration::from_secs(600)).unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        assert!(cluster.wait_node_ready(1).is_err());

        // Grow the cluster.
        assert_eq!(cluster.add_node(NodeSpec::on_host("127.0.0.3")).unwrap(), 2);
        assert_eq!(cluster.node_count(), 3);
        assert!(health_body(&cluster.node_rest_addr(2)).contains("--local_hostname=127.0.0.3"));

        // Master restart keeps its addresses.
        let (master_addr, metrics_addr) = (cluster.master_addr(), cluster.metrics_addr());
        let old_master = cluster.master_pid().unwrap();
        cluster.kill_master();
        assert_eq!(cluster.master_pid(), None);
        assert!(!fakes.is_alive(old_master));
        cluster.restart_master().unwrap();
        assert_eq!(
            (cluster.master_addr(), cluster.metrics_addr()),
            (master_addr, metrics_addr.clone())
        );
        health_body(&metrics_addr);
        assert_eq!(fakes.pids("master").len(), 2);

        // Drop kills everything and removes the logs.
        let log_dir = cluster.log_dir().to_path_buf();
        assert!(log_dir.join("master.log").is_file());
        let running: Vec<u32> = [
            cluster.master_pid(),
            cluster.node_pid(0),
            cluster.node_pid(2),
        ]
        .into_iter()
        .map(Option::unwrap)
        .collect();
        drop(cluster);
        for pid in running {
            assert!(!fakes.is_alive(pid), "pid {pid} survived the drop");
        }
        if std::env::var_os("MC_KEEP_LOGS").is_none() {
            assert!(!log_dir.exists());
        }
    }

    #[test]
    fn failing_node_stops_start_and_kills_the_master() {
        let Some(fakes) = fake_bins("serve", "exit") else {
            return;
        };
        let err = LocalCluster::start(fakes.spec(vec![NodeSpec::default()])).unwrap_err();
        assert!(matches!(err, Error::ExitedEarly { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains("node 0 on 127.0.0.1"), "{message}");
        assert!(message.contains("exit status: 3"), "{message}");
        assert!(message.contains("fake: failing on purpose"), "{message}");
        let masters = fakes.pids("master");
        assert_eq!(masters.len(), 1);
        assert!(!fakes.is_alive(masters[0]));
    }

    #[test]
    fn port_clash_at_start_is_retried_on_new_ports() {
        let Some(fakes) = fake_bins("busy_once", "busy_once") else {
            return;
        };
        let cluster = LocalCluster::start(fakes.spec(vec![NodeSpec::default()])).unwrap();
        health_body(&cluster.metrics_addr());
        health_body(&cluster.node_rest_addr(0));
        assert_eq!(fakes.pids("master").len(), 2);
        assert_eq!(fakes.pids("store").len(), 2);
        assert!(cluster.logs_tail(20).contains("Address already in use"));
    }

    #[test]
    fn node_that_never_gets_ready_times_out_and_is_killed() {
        let Some(fakes) = fake_bins("serve", "hang") else {
            return;
        };
        let mut cluster = LocalCluster::start(fakes.spec(Vec::new())).unwrap();
        // Only the node gets the short timeout: the master must be given all the time a
        // loaded machine needs. Running out is the point here, so its length does not matter.
        cluster.config.ready_timeout = Duration::from_millis(300);
        assert_eq!(cluster.node_count(), 0);
        let err = cluster.add_node(NodeSpec::default()).unwrap_err();
        assert!(matches!(err, Error::NotReady { .. }), "{err}");
        assert!(err.to_string().contains("/health"), "{err}");
        assert_eq!(cluster.node_count(), 0);
        // The fake may not have got as far as writing its pid before the timeout.
        for pid in fakes.pids("store") {
            assert!(!fakes.is_alive(pid));
        }
    }

    #[test]
    fn command_lines_follow_the_binaries_interface() {
        let config = LaunchConfig {
            master_bin: PathBuf::from("m"),
            store_bin: PathBuf::from("s"),
            master_args: vec!["--x".to_string()],
            master_env: Vec::new(),
            cluster_id: None,
            ready_timeout: Duration::from_secs(1),
        };
        assert_eq!(
            master_args(&config, 5, 6),
            [
                "--rpc_port=5",
                "--rpc_address=127.0.0.1",
                "--metrics_port=6",
                "--x"
            ]
        );
        let spec = NodeSpec {
            cores: String::new(),
            ..NodeSpec::on_host("127.0.0.4")
        };
        assert_eq!(
            node_args(&config, "127.0.0.1:5", &spec, 9),
            [
                "--master_server=127.0.0.1:5",
                "--local_hostname=127.0.0.4",
                "--global_segment_size=256MB",
                "--port=9",
                "--data_port=0",
            ]
        );
        // A spec that fixes its data port keeps it (a node restarted on the same address).
        let fixed = NodeSpec {
            extra_args: vec!["--data_port=7000".into()],
            ..spec
        };
        let args = node_args(&config, "127.0.0.1:5", &fixed, 9);
        assert!(!args.contains(&"--data_port=0".to_string()), "{args:?}");
        assert_eq!(args.last().map(String::as_str), Some("--data_port=7000"));
    }
}
