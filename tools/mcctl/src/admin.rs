//! Finding the master's admin HTTP port, and reading from it.
//!
//! The master tells its admin port in the Ping answer, so `--master` alone is enough
//! whatever `--metrics_port` the master runs with. `--admin` overrides; the old default
//! (port 9003 on the master's host) is a last resort, used only when the master cannot be
//! asked or does not say, and an error then explains what was tried.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mc_cluster::probe::http_get;
use mc_rpc::RpcClient;
use mc_schema::handshake::Role;
use mc_schema::msg::{Request, ResponseBody};
use serde_json::Value;

/// The admin port a master listens on unless `--metrics_port` says otherwise.
const DEFAULT_ADMIN_PORT: u16 = 9003;

/// Connect and answer timeout of the Ping that asks for the admin port.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one admin HTTP request may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// How the admin address was chosen; it decides what a failure tells the user.
#[derive(Debug)]
enum Source {
    /// `--admin`.
    Flag,
    /// The port the master reported in its Ping answer.
    Master,
    /// The default port, because the master could not be asked or did not say (why).
    Default(String),
}

/// The master's admin HTTP endpoint.
#[derive(Debug)]
pub struct Admin {
    addr: String,
    source: Source,
}

/// The host part of `host:port` (brackets of an IPv6 address kept).
fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(h, _)| h)
}

/// Asks the master at `master` for its admin port with one Ping.
fn ask_admin_port(master: &str, cluster_id: &str) -> Result<u16> {
    let mut rpc = RpcClient::connect(master, Role::Tool, cluster_id, PING_TIMEOUT)?;
    let r = rpc.call(
        &Request::Ping { client_id: 0 },
        Instant::now() + PING_TIMEOUT,
    )?;
    match r.body {
        ResponseBody::PingAck { admin_port, .. } => Ok(admin_port),
        _ => bail!("Ping answered {} {:?}", r.status, r.message),
    }
}

impl Admin {
    /// `--admin` when given, else the port the master reports, else the default port on
    /// the master's host.
    pub fn resolve(master: &str, cluster_id: &str, flag: Option<&str>) -> Admin {
        if let Some(addr) = flag {
            return Admin {
                addr: addr.to_string(),
                source: Source::Flag,
            };
        }
        let host = host_of(master);
        let (port, source) = match ask_admin_port(master, cluster_id) {
            Ok(0) => (
                DEFAULT_ADMIN_PORT,
                Source::Default(format!(
                    "the master at {master} did not report its admin port"
                )),
            ),
            Ok(port) => (port, Source::Master),
            Err(e) => (
                DEFAULT_ADMIN_PORT,
                Source::Default(format!(
                    "asking the master at {master} for its admin port failed ({e})"
                )),
            ),
        };
        Admin {
            addr: format!("{host}:{port}"),
            source,
        }
    }

    /// Status and body of `GET path`.
    pub fn get(&self, path: &str) -> Result<(u16, String)> {
        let r = http_get(&self.addr, path, HTTP_TIMEOUT).with_context(|| {
            let addr = &self.addr;
            match &self.source {
                Source::Flag => format!("cannot reach the master's admin HTTP at {addr} (--admin)"),
                Source::Master => format!(
                    "cannot reach the master's admin HTTP at {addr}, the port the master \
                     reported (set --admin HOST:PORT to use another)"
                ),
                Source::Default(why) => format!(
                    "cannot reach the master's admin HTTP at {addr}: {why}, so the default \
                     port {DEFAULT_ADMIN_PORT} was tried (set --admin HOST:PORT)"
                ),
            }
        })?;
        Ok((r.status, r.body))
    }

    /// `GET path` as JSON; a non-200 answer is an error carrying the server's message.
    pub fn get_json(&self, path: &str) -> Result<Value> {
        let (status, body) = self.get(path)?;
        let v: Value =
            serde_json::from_str(&body).with_context(|| format!("{path}: not JSON: {body}"))?;
        if status != 200 {
            bail!(
                "{path}: HTTP {status}: {}",
                v["message"].as_str().unwrap_or(&body)
            );
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_keeps_the_host_part() {
        assert_eq!(host_of("10.0.0.5:50051"), "10.0.0.5");
        assert_eq!(host_of("[::1]:50051"), "[::1]");
        assert_eq!(host_of("master"), "master");
    }
}
