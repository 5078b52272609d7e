//! Embedded mode: `setup(global_segment_size > 0)` hosts a store node in this process, so
//! the Python process contributes memory to the cluster as well as using it (Mooncake's
//! "real client" with a global segment). The node is `mc_agent`'s, started without signal
//! handlers (the interpreter owns its signals), with one shard, and with its REST port on
//! an ephemeral loopback port.

use std::time::{Duration, Instant};

use mc_agent::node::{self, NodeHandle};

use crate::error::BindingError;
use crate::setup::SetupArgs;

/// How long `setup()` waits for the master to accept the hosted segment.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(30);

/// A store node running inside this process; stopped (drained, unmounted) on drop.
pub struct Embedded {
    node: Option<NodeHandle>,
}

impl Embedded {
    /// Starts the node and waits until the master has accepted its segments.
    pub fn start(args: &SetupArgs) -> Result<Embedded, BindingError> {
        let mut flags = vec![
            "mooncake_store".to_string(),
            format!("--master_server={}", args.master_server_addr),
            format!("--local_hostname={}", args.local_hostname),
            format!("--global_segment_size={}", args.global_segment_size),
            "--data_port=0".to_string(),
            "--port=0".to_string(),
            // One shard: the host process (an inference engine) keeps its other cores.
            "--cores=1".to_string(),
            "--rest_host=127.0.0.1".to_string(),
        ];
        if let Some(path) = &args.ssd_offload_path {
            flags.push("--enable_ssd_offload".to_string());
            flags.push(format!("--ssd_offload_path={path}"));
        }
        let cfg = mc_agent::StoreConfig::try_from_args(flags)
            .map_err(|source| BindingError::HostedFlags { source })?;
        // One arena per process: the node's runtime mounts and the host buffers share it.
        let arena = crate::host_mem::process_arena().map_err(|e| BindingError::HostedNode {
            source: node::NodeError::Config(e.to_string()),
        })?;
        let handle = node::start_with_arena(cfg, arena)
            .map_err(|source| BindingError::HostedNode { source })?;
        let deadline = Instant::now() + MOUNT_TIMEOUT;
        loop {
            let want = handle.segments().len();
            if want > 0 && handle.mounted_segments() >= want {
                break;
            }
            if Instant::now() >= deadline {
                handle.stop();
                return Err(BindingError::MountTimeout {
                    master: args.master_server_addr.clone(),
                    timeout_seconds: MOUNT_TIMEOUT.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::info!(
            "hosting {} bytes of segment memory; node REST on {}",
            args.global_segment_size,
            handle.rest_addr()
        );
        Ok(Embedded { node: Some(handle) })
    }
}

impl Embedded {
    /// The hosted node.
    pub fn handle(&self) -> Option<&NodeHandle> {
        self.node.as_ref()
    }

    /// The name of the hosted segment as the master knows it (`host:data_port`).
    pub fn segment_name(&self) -> Option<String> {
        self.node
            .as_ref()
            .and_then(|n| n.segments().first().map(|s| s.name.clone()))
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if let Some(n) = self.node.take() {
            n.stop();
        }
    }
}
