//! The endpoint listing `up` and `status` print: every process with its URLs (IP addresses,
//! never `localhost`), whether it runs, each master's role, and how to connect.

use std::path::Path;

use super::health::master_health;
use super::state::{Ha, LOG_DIR, State};

/// `running` or `STOPPED`.
fn liveness(alive: bool) -> &'static str {
    if alive { "running" } else { "STOPPED" }
}

/// Prints the endpoints of `state` (the cluster in `dir`).
pub fn print(dir: &Path, state: &State) {
    print!("{}", render(dir, state));
}

/// The listing as text.
pub fn render(dir: &Path, state: &State) -> String {
    let mut out = format!(
        "cluster {} in {}: ha {}, {} master(s), {} node(s) of {} each\n",
        state.cluster_id,
        dir.display(),
        state.ha.name(),
        state.masters.len(),
        state.nodes.len(),
        state.segment
    );
    if let Some(c) = &state.coordinator {
        out += &format!(
            "  {:<11} {}://127.0.0.1:{}  pid {} {}\n",
            c.proc.name,
            if state.ha == Ha::Redis {
                "redis"
            } else {
                "http"
            },
            c.ports[0],
            c.proc.pid,
            liveness(c.proc.is_alive())
        );
    }
    let mut leader_dashboard = None;
    for (i, m) in state.masters.iter().enumerate() {
        let role = match master_health(state, i) {
            Ok(h) => {
                if h.serves() {
                    leader_dashboard = Some(format!("http://{}/dashboard", m.admin_addr()));
                }
                h.describe()
            }
            Err(_) => "no answer".to_string(),
        };
        out += &format!(
            "  {:<11} rpc {}  admin http://{}/health  pid {} {}, {role}\n",
            m.proc.name,
            m.rpc_addr(),
            m.admin_addr(),
            m.proc.pid,
            liveness(m.proc.is_alive()),
        );
        out += &format!(
            "  {:<11} dashboard http://{}/dashboard\n",
            "",
            m.admin_addr()
        );
    }
    for n in &state.nodes {
        out += &format!(
            "  {:<11} rest http://{}/health  pid {} {}\n",
            n.proc.name,
            n.rest_addr(),
            n.proc.pid,
            liveness(n.proc.is_alive())
        );
    }
    if let Some(p) = &state.prometheus {
        out += &format!(
            "  {:<11} http://{}/targets  pid {} {}\n",
            p.proc.name,
            p.addr(),
            p.proc.pid,
            liveness(p.proc.is_alive())
        );
    }
    if let Some(url) = leader_dashboard {
        out += &format!("dashboard (leader): {url}\n");
    }
    let locator = state.locator();
    out += &format!(
        "clients connect to: {locator}  (cluster id {})\n",
        state.cluster_id
    );
    let env = if state.cluster_id == mc_coord::DEFAULT_CLUSTER_ID {
        String::new()
    } else {
        format!(" (with MC_STORE_CLUSTER_ID={})", state.cluster_id)
    };
    out += &format!(
        "python{env}: from mooncake_rs.store import MooncakeDistributedStore; \
         s = MooncakeDistributedStore(); \
         s.setup(\"127.0.0.1\", \"P2PHANDSHAKE\", 0, 16 << 20, \"tcp\", \"\", \"{locator}\")\n"
    );
    out += &format!(
        "logs: {}  (mc-cluster logs NAME)\n",
        dir.join(LOG_DIR).display()
    );
    out
}
