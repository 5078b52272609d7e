//! Network interfaces: the IPv4 address of a named interface, for services that bind and
//! advertise the address of one NIC (the master's `--rpc_interface`).

use std::ffi::CStr;
use std::io;
use std::net::Ipv4Addr;

use crate::Error;

/// The first IPv4 address of interface `name` (as `ip addr` lists it, e.g. `eth0`).
///
/// # Errors
/// [`Error::NoSuchInterface`] when no interface has that name, [`Error::NoIpv4`] when it has
/// no IPv4 address, [`Error::Interfaces`] when the kernel cannot list them.
pub fn interface_ipv4(name: &str) -> Result<Ipv4Addr, Error> {
    let interfaces = list_ipv4()?;
    if let Some((_, addr)) = interfaces.iter().find(|(n, a)| n == name && a.is_some()) {
        return Ok(addr.expect("filtered on an address"));
    }
    if interfaces.iter().any(|(n, _)| n == name) {
        return Err(Error::NoIpv4 { name: name.into() });
    }
    let mut names: Vec<String> = interfaces.into_iter().map(|(n, _)| n).collect();
    names.sort();
    names.dedup();
    Err(Error::NoSuchInterface {
        name: name.into(),
        known: names.join(", "),
    })
}

/// Every interface entry `getifaddrs(3)` reports: its name and, for an IPv4 entry, the
/// address (other families give `None`).
fn list_ipv4() -> Result<Vec<(String, Option<Ipv4Addr>)>, Error> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `getifaddrs` writes one pointer to `head`, which is a valid place for it.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(Error::Interfaces {
            source: io::Error::last_os_error(),
        });
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a non-null node of the list `getifaddrs` returned, which stays
        // valid until `freeifaddrs` below; nothing else frees or writes it meanwhile.
        let entry = unsafe { &*cur };
        // SAFETY: `ifa_name` of a listed entry is a valid NUL-terminated string.
        let name = unsafe { CStr::from_ptr(entry.ifa_name) }
            .to_string_lossy()
            .into_owned();
        let addr = ipv4_of(entry.ifa_addr);
        out.push((name, addr));
        cur = entry.ifa_next;
    }
    // SAFETY: `head` came from a successful `getifaddrs` and is freed exactly once, after
    // the last use of any entry.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// The IPv4 address in `sa`, if it is one.
fn ipv4_of(sa: *const libc::sockaddr) -> Option<Ipv4Addr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: a non-null `ifa_addr` points at a socket address at least as large as
    // `sockaddr`, so its family field can be read.
    let family = unsafe { (*sa).sa_family };
    if i32::from(family) != libc::AF_INET {
        return None;
    }
    // SAFETY: an AF_INET address is a `sockaddr_in`; it may be unaligned for that type in
    // principle, so it is read unaligned.
    let sin = unsafe { std::ptr::read_unaligned(sa.cast::<libc::sockaddr_in>()) };
    Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_its_address_and_unknown_names_list_the_known_ones() {
        assert_eq!(interface_ipv4("lo").unwrap(), Ipv4Addr::LOCALHOST);
        let e = interface_ipv4("no-such-nic0").unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::NoSuchInterface { .. }), "{msg}");
        assert!(msg.contains("no-such-nic0") && msg.contains("lo"), "{msg}");
    }
}
