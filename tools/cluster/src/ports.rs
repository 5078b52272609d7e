//! Picking free TCP ports at run time.

use std::net::{TcpListener, ToSocketAddrs};

use crate::Error;

/// Reserves `count` distinct free TCP ports on `host` and releases them.
///
/// Each port comes from binding `host:0`; all listeners are held until the last is bound so
/// the ports differ, then dropped so the child can bind them. Another process may take a
/// port in that gap: callers that can choose new ports retry once when a child reports
/// "address already in use".
///
/// # Errors
/// [`Error::PortPick`] when `host` does not resolve or cannot be bound.
pub fn pick_free_ports(host: &str, count: usize) -> Result<Vec<u16>, Error> {
    let port_pick_error = |source| Error::PortPick {
        host: host.to_string(),
        source,
    };
    let addr = (host, 0u16)
        .to_socket_addrs()
        .map_err(port_pick_error)?
        .next()
        .ok_or_else(|| {
            port_pick_error(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the host resolved to no address",
            ))
        })?;
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count {
        listeners.push(TcpListener::bind(addr).map_err(port_pick_error)?);
    }
    listeners
        .iter()
        .map(|listener| {
            listener
                .local_addr()
                .map(|a| a.port())
                .map_err(port_pick_error)
        })
        .collect()
}

/// Reserves one free TCP port on `host`; see [`pick_free_ports`].
///
/// # Errors
/// [`Error::PortPick`] when `host` does not resolve or cannot be bound.
pub fn pick_free_port(host: &str) -> Result<u16, Error> {
    Ok(pick_free_ports(host, 1)?[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picked_ports_are_distinct_and_bindable() {
        let ports = pick_free_ports("127.0.0.1", 3).unwrap();
        assert_eq!(ports.len(), 3);
        assert!(ports.iter().all(|&port| port != 0));
        assert!(ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2]);
        // Released: binding again succeeds unless another test grabbed it in between, which
        // is the documented race, so only assert that at least one rebinds.
        assert!(
            ports
                .iter()
                .any(|&port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        );
    }

    #[test]
    fn other_loopback_hosts_work() {
        let port = pick_free_port("127.0.0.3").unwrap();
        assert_ne!(port, 0);
    }

    #[test]
    fn unbindable_host_is_an_error_naming_the_host() {
        // 192.0.2.0/24 is TEST-NET-1: never assigned to a local interface.
        let err = pick_free_port("192.0.2.1").unwrap_err();
        assert!(err.to_string().contains("192.0.2.1"), "{err}");
    }
}
