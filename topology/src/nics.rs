//! NICs from sysfs (`class/net` netdevs, `class/infiniband` RDMA devices) with their NUMA
//! node, and [`select_nics`]: which of them a node uses, after Mooncake's `MC_MS_AUTO_DISC`
//! and `MC_MS_FILTERS`.

use std::path::Path;

use crate::error::Error;
use crate::sysfs::{at, list_dir, read_int};

/// What a NIC entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NicKind {
    /// A network interface (`class/net/<name>`).
    Netdev,
    /// An RDMA device (`class/infiniband/<name>`, e.g. `mlx5_0`).
    Rdma,
}

impl NicKind {
    /// `netdev` or `rdma`.
    pub fn as_str(self) -> &'static str {
        match self {
            NicKind::Netdev => "netdev",
            NicKind::Rdma => "rdma",
        }
    }
}

/// One network or RDMA device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    /// Its name (`eth0`, `mlx5_0`).
    pub name: String,
    /// Netdev or RDMA device.
    pub kind: NicKind,
    /// The NUMA node of the device it sits on; `None` when the firmware does not say
    /// (`numa_node` is -1 or missing) or it is virtual.
    pub numa_node: Option<usize>,
    /// Whether it sits on a device (PCI, virtio): `lo`, bridges and tunnels do not.
    pub physical: bool,
    /// For an RDMA device, the netdevs of the same device (`device/net/*`); empty otherwise.
    pub netdevs: Vec<String>,
}

/// Every NIC under `root`, netdevs then RDMA devices, each by name. `lo` is left out.
pub(crate) fn discover_nics(root: &Path) -> Result<Vec<Nic>, Error> {
    let mut nics = Vec::new();
    let net = at(root, "class/net");
    for name in list_dir(&net)? {
        if name == "lo" {
            continue;
        }
        let device = net.join(&name).join("device");
        nics.push(Nic {
            numa_node: device_node(&device)?,
            physical: device.exists(),
            name,
            kind: NicKind::Netdev,
            netdevs: Vec::new(),
        });
    }
    let ib = at(root, "class/infiniband");
    for name in list_dir(&ib)? {
        let device = ib.join(&name).join("device");
        nics.push(Nic {
            numa_node: device_node(&device)?,
            physical: device.exists(),
            netdevs: list_dir(&device.join("net"))?,
            name,
            kind: NicKind::Rdma,
        });
    }
    Ok(nics)
}

/// The NUMA node of a device directory: its `numa_node`, or its parent's when it has none (a
/// virtio device sits under the PCI function that knows). -1 means unknown.
fn device_node(device: &Path) -> Result<Option<usize>, Error> {
    let mut value = read_int(&device.join("numa_node"))?;
    if value.is_none()
        && let Ok(real) = device.canonicalize()
        && let Some(parent) = real.parent()
    {
        value = read_int(&parent.join("numa_node"))?;
    }
    Ok(value.and_then(|v| usize::try_from(v).ok()))
}

/// How the NICs are chosen: Mooncake's environment, or the same settings from a test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicConfig {
    /// `MC_MS_AUTO_DISC` (default on): discover the NICs; off: use [`devices`](Self::devices).
    pub auto_discover: bool,
    /// `MC_MS_FILTERS`: when discovering, only these NICs (names of netdevs or RDMA devices).
    pub filters: Vec<String>,
    /// The device list from configuration (`--device_name`), used when not discovering.
    pub devices: Vec<String>,
}

impl NicConfig {
    /// Reads `MC_MS_AUTO_DISC` and `MC_MS_FILTERS`; `devices` is the configured list.
    ///
    /// # Errors
    /// [`Error::InvalidEnv`] when `MC_MS_AUTO_DISC` is neither `0` nor `1`.
    pub fn from_env(devices: Vec<String>) -> Result<NicConfig, Error> {
        let auto = std::env::var("MC_MS_AUTO_DISC").ok();
        let filters = std::env::var("MC_MS_FILTERS").unwrap_or_default();
        NicConfig::from_values(auto.as_deref(), &filters, devices)
    }

    /// The settings for `MC_MS_AUTO_DISC=auto` (`None`: unset) and `MC_MS_FILTERS=filters`.
    pub fn from_values(
        auto: Option<&str>,
        filters: &str,
        devices: Vec<String>,
    ) -> Result<NicConfig, Error> {
        let auto_discover = match auto.map(str::trim) {
            None | Some("") | Some("1") => true,
            Some("0") => false,
            Some(other) => {
                return Err(Error::InvalidEnv {
                    var: "MC_MS_AUTO_DISC",
                    value: other.chars().take(64).collect(),
                    reason: "use 1 to discover NICs or 0 to take them from --device_name".into(),
                });
            }
        };
        Ok(NicConfig {
            auto_discover,
            filters: split_names(filters),
            devices: devices.iter().flat_map(|d| split_names(d)).collect(),
        })
    }
}

impl Default for NicConfig {
    fn default() -> Self {
        NicConfig {
            auto_discover: true,
            filters: Vec::new(),
            devices: Vec::new(),
        }
    }
}

/// The NICs a node uses, and how they were chosen (for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicChoice {
    /// The chosen NICs.
    pub nics: Vec<Nic>,
    /// How: "discovered", "MC_MS_FILTERS", "--device_name", in a phrase.
    pub how: String,
}

impl NicChoice {
    /// The NUMA nodes the chosen NICs are on, ascending (NICs with no known node left out).
    pub fn numa_nodes(&self) -> Vec<usize> {
        let mut nodes: Vec<usize> = self.nics.iter().filter_map(|n| n.numa_node).collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }
}

/// Chooses the NICs of `nics` (as discovered) that `cfg` asks for:
/// - discovering without filters: every RDMA device, or every physical netdev when there is
///   no RDMA device;
/// - discovering with `MC_MS_FILTERS`: the named NICs;
/// - not discovering: the `--device_name` list (possibly empty: no NIC locality).
///
/// # Errors
/// [`Error::NoSuchNic`] when a filter or a configured device names no NIC here: a typo
/// would otherwise silently plan for the wrong socket.
pub fn select_nics(nics: &[Nic], cfg: &NicConfig) -> Result<NicChoice, Error> {
    let (names, how) = if !cfg.auto_discover {
        (&cfg.devices, "MC_MS_AUTO_DISC=0, from --device_name")
    } else if !cfg.filters.is_empty() {
        (&cfg.filters, "discovered, whitelisted by MC_MS_FILTERS")
    } else {
        let rdma: Vec<Nic> = nics
            .iter()
            .filter(|n| n.kind == NicKind::Rdma)
            .cloned()
            .collect();
        if !rdma.is_empty() {
            return Ok(NicChoice {
                nics: rdma,
                how: "discovered RDMA devices".into(),
            });
        }
        return Ok(NicChoice {
            nics: nics.iter().filter(|n| n.physical).cloned().collect(),
            how: "discovered netdevs (no RDMA device)".into(),
        });
    };
    let mut chosen = Vec::with_capacity(names.len());
    for name in names {
        match nics.iter().find(|n| &n.name == name) {
            Some(n) => {
                if !chosen.contains(n) {
                    chosen.push(n.clone());
                }
            }
            None => {
                return Err(Error::NoSuchNic {
                    name: name.clone(),
                    source_of_name: how.into(),
                    known: nics
                        .iter()
                        .map(|n| n.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
    }
    Ok(NicChoice {
        nics: chosen,
        how: how.into(),
    })
}

/// `a, b,,c` → `["a", "b", "c"]`.
fn split_names(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values_parse() {
        let c = NicConfig::from_values(None, "", vec![]).unwrap();
        assert!(c.auto_discover && c.filters.is_empty());
        let c = NicConfig::from_values(Some("1"), " mlx5_0, ,mlx5_2 ", vec![]).unwrap();
        assert_eq!(c.filters, ["mlx5_0", "mlx5_2"]);
        let c = NicConfig::from_values(Some("0"), "", vec!["a,b".into()]).unwrap();
        assert!(!c.auto_discover);
        assert_eq!(c.devices, ["a", "b"]);
        let e = NicConfig::from_values(Some("yes"), "", vec![]).unwrap_err();
        assert!(e.to_string().contains("MC_MS_AUTO_DISC"), "{e}");
    }
}
