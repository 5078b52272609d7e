//! Same-host reads: a get whose replica lives on this host copies the bytes out of the
//! node's segment memory instead of asking over TCP (`MC_STORE_MEMCPY`, as in Mooncake;
//! `docs/why-fast-path.md`, "Same-host reads and writes").
//!
//! Only reads of a cached location take this path: the location names the slice (segment,
//! offset, length, generation, CRC32C), and the node's index records, mapped read-only,
//! say whether the shard still holds exactly that slice, before and after the copy. The
//! copy's CRC32C is checked as after any read. Anything unexpected (no mapping, a record
//! that does not match, a node that went away) sends the key down the normal path: a
//! validated TCP read, then the master. A client of another host never tries: the decision
//! is made from the replica's address before any socket is opened.

mod node;

use std::collections::{HashMap, HashSet};
use std::mem::MaybeUninit;
use std::net::{IpAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mc_schema::msg::ReplicaDesc;
use parking_lot::Mutex;

use node::{LocalNode, SliceRead};

/// Whether gets of replicas on this host copy from shared memory (`MC_STORE_MEMCPY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemcpyMode {
    /// Unset: on for a replica on this host (its address is one of this host's), off
    /// otherwise. The transfer protocol is always tcp here.
    #[default]
    Auto,
    /// `1`, `true`, `yes`, `on`: try every replica's node (a node of another host simply
    /// cannot be reached on its Unix socket, and the read goes over TCP).
    On,
    /// `0`, `false`, `no`, `off`: always TCP.
    Off,
}

impl MemcpyMode {
    /// The mode a value of `MC_STORE_MEMCPY` names (case and surrounding blanks ignored; an
    /// empty value is unset); an error saying what is accepted otherwise.
    pub fn parse(value: &str) -> Result<MemcpyMode, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" => Ok(MemcpyMode::Auto),
            "1" | "true" | "yes" | "on" => Ok(MemcpyMode::On),
            "0" | "false" | "no" | "off" => Ok(MemcpyMode::Off),
            _ => Err(format!(
                "MC_STORE_MEMCPY=`{value}` is not a switch: use 1/true/yes/on, 0/false/no/off, \
                 or leave it unset (auto: on for replicas on this host)"
            )),
        }
    }

    /// The mode `MC_STORE_MEMCPY` asks for; a value that is not a switch is logged as a
    /// warning and the default (auto) is used, as Mooncake does.
    pub fn from_env() -> MemcpyMode {
        let Ok(v) = std::env::var("MC_STORE_MEMCPY") else {
            return MemcpyMode::Auto;
        };
        MemcpyMode::parse(&v).unwrap_or_else(|e| {
            tracing::warn!("{e}; using auto");
            MemcpyMode::Auto
        })
    }
}

/// Counters of same-host reads since the client started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SameHostStats {
    /// Slices read by copying from a node of this host.
    pub reads: u64,
    /// Same-host attempts that went to TCP instead (no mapping yet, a record that no longer
    /// matched, a CRC mismatch, a node that went away).
    pub fallbacks: u64,
    /// Nodes of this host whose memory is mapped now.
    pub nodes: u64,
}

/// How long an endpoint whose socket could not be reached is left alone.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Distinct keys read this way remembered until the next hit report.
pub(crate) const MAX_NOTED_HITS: usize = 16384;
/// How often those keys are reported to the master (as the shards' own reports).
const REPORT_EVERY: Duration = Duration::from_millis(500);

/// The client's same-host state: the nodes mapped, the endpoints that are not local or not
/// reachable, the keys read since the last hit report, and the counters.
pub(crate) struct SameHost {
    mode: MemcpyMode,
    cluster_id: String,
    nodes: Mutex<HashMap<String, Arc<LocalNode>>>,
    /// Endpoint → whether its host is this host (auto mode), decided once.
    local_hosts: Mutex<HashMap<String, bool>>,
    /// Endpoint → when a connect may be tried again.
    unreachable: Mutex<HashMap<String, Instant>>,
    hits: Mutex<(HashSet<String>, Instant)>,
    /// `mc_client_same_host_reads_total` of the client's metrics.
    reads: prometheus::IntCounter,
    /// `mc_client_same_host_fallbacks_total`.
    fallbacks: prometheus::IntCounter,
}

impl SameHost {
    /// Same-host reads as `mode` says, for nodes of cluster `cluster_id`, counted in
    /// `reads` and `fallbacks`.
    pub(crate) fn new(
        mode: MemcpyMode,
        cluster_id: &str,
        (reads, fallbacks): (prometheus::IntCounter, prometheus::IntCounter),
    ) -> SameHost {
        SameHost {
            mode,
            cluster_id: cluster_id.to_string(),
            nodes: Mutex::default(),
            local_hosts: Mutex::default(),
            unreachable: Mutex::default(),
            // The first hits are due at once: a reader that reads once and then only
            // writes holds its lease from the start (later ones go every REPORT_EVERY).
            hits: Mutex::new((
                HashSet::new(),
                Instant::now()
                    .checked_sub(REPORT_EVERY)
                    .unwrap_or_else(Instant::now),
            )),
            reads,
            fallbacks,
        }
    }

    /// Whether this client ever tries.
    pub(crate) fn enabled(&self) -> bool {
        self.mode != MemcpyMode::Off
    }

    /// Reads every slice of replica `r` (`crcs[i]` the CRC32C of slice `i`) into `buf` by
    /// copying from this host's nodes; false when it did not (nothing is then known about
    /// `buf`'s bytes; the caller reads over TCP).
    pub(crate) fn read(
        &self,
        key: &str,
        r: &ReplicaDesc,
        crcs: &[u32],
        buf: &mut [MaybeUninit<u8>],
    ) -> bool {
        if !self.enabled()
            || r.kind != mc_schema::msg::ReplicaKind::Memory
            || r.slices.len() != crcs.len()
        {
            return false;
        }
        let mut rest: &mut [MaybeUninit<u8>] = buf;
        for (s, &crc) in r.slices.iter().zip(crcs) {
            if s.length as usize > rest.len() {
                return false;
            }
            let (part, tail) = rest.split_at_mut(s.length as usize);
            rest = tail;
            let Some(node) = self.node(&s.endpoint) else {
                return false;
            };
            match node.read_slice(s, crc, part) {
                SliceRead::Done => {}
                SliceRead::Fallback => {
                    self.fallbacks.inc();
                    return false;
                }
                SliceRead::Gone => {
                    self.fallbacks.inc();
                    self.forget(&s.endpoint);
                    return false;
                }
            }
        }
        if !rest.is_empty() {
            return false;
        }
        self.reads.inc_by(r.slices.len() as u64);
        self.note_hit(key);
        true
    }

    /// Whether gets of replica `r` copy from this host's memory now (the nodes of all its
    /// slices are mapped): its value is local already, and the hot cache leaves it alone.
    pub(crate) fn maps(&self, r: &ReplicaDesc) -> bool {
        if !self.enabled() || r.kind != mc_schema::msg::ReplicaKind::Memory {
            return false;
        }
        let nodes = self.nodes.lock();
        r.slices.iter().all(|s| nodes.contains_key(&s.endpoint))
    }

    /// The mapped node serving `endpoint`, connecting when allowed and not tried lately.
    fn node(&self, endpoint: &str) -> Option<Arc<LocalNode>> {
        if let Some(n) = self.nodes.lock().get(endpoint) {
            return Some(n.clone());
        }
        if !self.may_try(endpoint) {
            return None;
        }
        {
            let mut u = self.unreachable.lock();
            if u.get(endpoint).is_some_and(|t| Instant::now() < *t) {
                return None;
            }
            u.insert(endpoint.to_string(), Instant::now() + RETRY_AFTER);
        }
        match LocalNode::connect(endpoint, &self.cluster_id) {
            Ok(n) => {
                let n = Arc::new(n);
                self.unreachable.lock().remove(endpoint);
                self.nodes.lock().insert(endpoint.to_string(), n.clone());
                tracing::debug!(%endpoint, "same-host reads from this node's memory");
                Some(n)
            }
            Err(e) => {
                tracing::debug!(%endpoint, "same-host reads not available: {e}");
                None
            }
        }
    }

    /// Whether the mode lets this client try `endpoint`'s node.
    fn may_try(&self, endpoint: &str) -> bool {
        match self.mode {
            MemcpyMode::Off => false,
            MemcpyMode::On => true,
            MemcpyMode::Auto => *self
                .local_hosts
                .lock()
                .entry(endpoint.to_string())
                .or_insert_with(|| is_this_host(endpoint)),
        }
    }

    /// Drops the mapping of `endpoint`'s node (it went away, or serves a segment it did not
    /// offer); a read connects again after [`RETRY_AFTER`], so a segment that is never
    /// offered (an arena slice) costs at most one reconnect a second.
    fn forget(&self, endpoint: &str) {
        self.nodes.lock().remove(endpoint);
        self.unreachable
            .lock()
            .insert(endpoint.to_string(), Instant::now() + RETRY_AFTER);
    }

    fn note_hit(&self, key: &str) {
        let mut h = self.hits.lock();
        if h.0.len() < MAX_NOTED_HITS && !h.0.contains(key) {
            h.0.insert(key.to_string());
        }
    }

    /// The keys read this way since the last report, when a report is due.
    pub(crate) fn take_due_hits(&self) -> Option<Vec<String>> {
        let mut h = self.hits.lock();
        if h.0.is_empty() || (h.1.elapsed() < REPORT_EVERY && h.0.len() < MAX_NOTED_HITS) {
            return None;
        }
        h.1 = Instant::now();
        Some(h.0.drain().collect())
    }

    /// Counters so far.
    pub(crate) fn stats(&self) -> SameHostStats {
        SameHostStats {
            reads: self.reads.get(),
            fallbacks: self.fallbacks.get(),
            nodes: self.nodes.lock().len() as u64,
        }
    }
}

/// Whether the host of `endpoint` (`host:port`) is an address of this host: a loopback
/// address, or one this process can bind a socket to (an address of one of its
/// interfaces). A name that does not resolve is not.
fn is_this_host(endpoint: &str) -> bool {
    let Ok(addrs) = endpoint.to_socket_addrs() else {
        return false;
    };
    addrs
        .map(|a| a.ip())
        .any(|ip| ip.is_loopback() || binds_locally(ip))
}

/// Whether a UDP socket can be bound to `ip` (only addresses of this host's interfaces can).
fn binds_locally(ip: IpAddr) -> bool {
    !ip.is_unspecified() && UdpSocket::bind((ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters() -> (prometheus::IntCounter, prometheus::IntCounter) {
        let c = |n: &str| prometheus::IntCounter::new(n, "test").unwrap();
        (c("r"), c("f"))
    }

    #[test]
    fn switch_values_as_in_mooncake_and_bad_ones_named() {
        for v in ["1", "true", "YES", " on "] {
            assert_eq!(MemcpyMode::parse(v), Ok(MemcpyMode::On), "{v}");
        }
        for v in ["0", "false", "No", "OFF"] {
            assert_eq!(MemcpyMode::parse(v), Ok(MemcpyMode::Off), "{v}");
        }
        assert_eq!(MemcpyMode::parse(""), Ok(MemcpyMode::Auto));
        let e = MemcpyMode::parse("maybe").unwrap_err();
        assert!(e.contains("`maybe`") && e.contains("1/true/yes/on"), "{e}");
    }

    #[test]
    fn loopback_is_this_host_and_a_foreign_address_is_not() {
        assert!(is_this_host("127.0.0.1:1"));
        assert!(is_this_host("127.0.0.2:1"));
        assert!(is_this_host("localhost:1"));
        // TEST-NET-3 (RFC 5737): never an address of this host.
        assert!(!is_this_host("203.0.113.7:1"));
        assert!(!is_this_host("no-such-host.invalid:1"));
        let off = SameHost::new(MemcpyMode::Off, "c", counters());
        assert!(!off.may_try("127.0.0.1:1"));
        let auto = SameHost::new(MemcpyMode::Auto, "c", counters());
        assert!(auto.may_try("127.0.0.1:1"));
        assert!(!auto.may_try("203.0.113.7:1"));
    }

    #[test]
    fn hits_are_bounded_and_reported_when_due() {
        let s = SameHost::new(MemcpyMode::On, "c", counters());
        s.note_hit("first");
        assert_eq!(
            s.take_due_hits(),
            Some(vec!["first".to_string()]),
            "due at once"
        );
        s.note_hit("a");
        s.note_hit("a");
        assert_eq!(s.take_due_hits(), None, "not due yet");
        for i in 0..MAX_NOTED_HITS + 10 {
            s.note_hit(&format!("k{i}"));
        }
        let got = s.take_due_hits().expect("a full set is due at once");
        assert_eq!(got.len(), MAX_NOTED_HITS);
        assert_eq!(s.take_due_hits(), None);
    }
}
