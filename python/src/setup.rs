//! The arguments of `setup()`: positional, keyword, or one config dict (as LMCache sends
//! it: every value a string, both spellings of a renamed key); sizes as integers or strings
//! such as `"4GB"`. As lenient as Mooncake's: unknown names are accepted with a warning,
//! the older names `device_name` and `master_server_address` are folded into the
//! canonical ones.

use std::collections::BTreeMap;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyInt, PyString};

use crate::error::BindingError;

/// Default of `global_segment_size` and `local_buffer_size`, as upstream: 16 MiB.
const DEFAULT_SIZE: u64 = 16 << 20;

/// Smallest segment an embedded store may host (one shard's minimum).
const MIN_SEGMENT: u64 = mc_agent::node::MIN_SHARD_SEGMENT_BYTES;

/// Validated settings of one `setup()`.
#[derive(Debug, Clone)]
pub struct SetupArgs {
    /// This node's host name, without a `:port` suffix.
    pub local_hostname: String,
    /// The port of `local_hostname` when it named one (`get_hostname()` answers it).
    pub local_hostname_port: Option<u16>,
    /// `P2PHANDSHAKE` or an HTTP metadata URL (accepted for compatibility).
    pub metadata_server: String,
    /// Bytes of segment memory this process hosts; 0 = pure client.
    pub global_segment_size: u64,
    /// Bytes of staging memory the client keeps for gathers and scatters.
    pub local_buffer_size: u64,
    /// Master RPC address `host:port`.
    pub master_server_addr: String,
    /// Directory of the hosted node's SSD tier (`enable_ssd_offload=True`), if on.
    pub ssd_offload_path: Option<String>,
}

/// Names `setup()` takes positionally, in order.
pub const POSITIONAL: [&str; 7] = [
    "local_hostname",
    "metadata_server",
    "global_segment_size",
    "local_buffer_size",
    "protocol",
    "rdma_devices",
    "master_server_addr",
];

/// Names of upstream's `setup()` (keywords or config-dict keys) that have no effect here;
/// accepted when they ask for nothing this build lacks.
const TOLERATED: [&str; 6] = [
    "engine",
    "ssd_offload_path",
    "tenant_id",
    "client_http_port",
    "enable_client_http_server",
    "ipc_socket_path",
];

/// Older spellings and the canonical name each stands for. LMCache sends both spellings
/// (it fills `device_name` with `""` by default), Mooncake reads only the canonical one.
const ALIASES: [(&str, &str); 2] = [
    ("device_name", "rdma_devices"),
    ("master_server_address", "master_server_addr"),
];

/// A size given as a non-negative integer or a string such as `"4GB"`.
fn size_arg(name: &str, v: &Bound<'_, PyAny>) -> Result<u64, BindingError> {
    let wrong = |expected| BindingError::WrongType {
        name: name.to_string(),
        expected,
    };
    if v.is_instance_of::<PyBool>() {
        return Err(wrong("an integer or a size string, not a bool"));
    }
    if v.is_instance_of::<PyInt>() {
        return v
            .extract::<u64>()
            .map_err(|_| wrong("a non-negative integer"));
    }
    if let Ok(s) = v.cast::<PyString>() {
        let input = s.to_string();
        return mooncake_rs::parse_size(&input).map_err(|source| BindingError::BadSize {
            name: name.to_string(),
            input,
            source,
        });
    }
    Err(wrong("an integer or a size string such as \"4GB\""))
}

/// A string argument.
fn str_arg(name: &str, v: &Bound<'_, PyAny>) -> Result<String, BindingError> {
    v.cast::<PyString>()
        .map(|s| s.to_string())
        .map_err(|_| BindingError::WrongType {
            name: name.to_string(),
            expected: "a string",
        })
}

/// Collects positional values, keywords, or a single config dict into one name → value map,
/// with older spellings folded into the canonical names (see [`fold_aliases`]).
pub fn collect<'py>(
    positional: &[Option<Bound<'py, PyAny>>],
    kwargs: Option<&Bound<'py, PyDict>>,
) -> Result<BTreeMap<String, Bound<'py, PyAny>>, BindingError> {
    let mut map = BTreeMap::new();
    let dict_form = positional
        .first()
        .and_then(|v| v.as_ref())
        .and_then(|v| v.cast::<PyDict>().ok().cloned());
    let mut add = |k: String, v: Bound<'py, PyAny>| -> Result<(), BindingError> {
        if map.insert(k.clone(), v).is_some() {
            return Err(BindingError::ArgumentTwice { name: k });
        }
        Ok(())
    };
    if let Some(d) = dict_form {
        if positional[1..].iter().any(Option::is_some) || kwargs.is_some_and(|k| !k.is_empty()) {
            return Err(BindingError::ConfigDictNotAlone);
        }
        for (k, v) in d.iter() {
            add(str_arg("config key", &k)?, v)?;
        }
    } else {
        for (name, v) in POSITIONAL.iter().zip(positional) {
            if let Some(v) = v {
                add((*name).to_string(), v.clone())?;
            }
        }
        if let Some(kw) = kwargs {
            for (k, v) in kw.iter() {
                add(str_arg("keyword", &k)?, v)?;
            }
        }
    }
    fold_aliases(&mut map)?;
    Ok(map)
}

/// The text of a setting for comparing two spellings: `str(value)`, as Mooncake reads a
/// config dict.
fn text(v: &Bound<'_, PyAny>) -> String {
    v.str().map(|s| s.to_string()).unwrap_or_default()
}

/// Folds each older spelling into its canonical name. Both given: the canonical one wins
/// when they agree or the older one is empty (LMCache's default for `device_name`);
/// different values are refused, naming both.
fn fold_aliases(map: &mut BTreeMap<String, Bound<'_, PyAny>>) -> Result<(), BindingError> {
    for (alias, canonical) in ALIASES {
        let Some(old) = map.remove(alias) else {
            continue;
        };
        match map.get(canonical) {
            None => {
                map.insert(canonical.to_string(), old);
            }
            Some(new) => {
                let (a, c) = (text(&old), text(new));
                if !a.is_empty() && a != c {
                    return Err(BindingError::AliasConflict {
                        alias,
                        alias_value: a,
                        canonical,
                        canonical_value: c,
                    });
                }
            }
        }
    }
    Ok(())
}

/// A boolean setting: a Python bool, or the text Mooncake's config dict accepts
/// (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, any case).
fn bool_arg(name: &str, v: &Bound<'_, PyAny>) -> Result<bool, BindingError> {
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(b.is_true());
    }
    if v.is_none() {
        return Ok(false);
    }
    match text(v).trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(BindingError::WrongType {
            name: name.to_string(),
            expected: "a bool (True/False, or \"true\"/\"false\")",
        }),
    }
}

/// Names given that no `setup()` of Mooncake's or ours reads: accepted, each logged once
/// at warning level so a misspelt key is visible.
fn warn_unknown(map: &BTreeMap<String, Bound<'_, PyAny>>) -> Vec<String> {
    let unknown: Vec<String> = map
        .keys()
        .filter(|k| {
            !POSITIONAL.contains(&k.as_str())
                && !TOLERATED.contains(&k.as_str())
                && k.as_str() != "enable_ssd_offload"
        })
        .cloned()
        .collect();
    for k in &unknown {
        tracing::warn!("setup(): ignoring unknown setting {k:?} (not a Mooncake setup key)");
    }
    unknown
}

/// Validates the collected arguments.
pub fn parse(map: &BTreeMap<String, Bound<'_, PyAny>>) -> Result<SetupArgs, BindingError> {
    warn_unknown(map);
    if map.get("engine").is_some_and(|v| !v.is_none()) {
        return Err(BindingError::EngineGiven);
    }
    let ssd = match map.get("enable_ssd_offload") {
        Some(v) => bool_arg("enable_ssd_offload", v)?,
        None => false,
    };
    let get_str = |name: &'static str, default: Option<&str>| -> Result<String, BindingError> {
        match (map.get(name), default) {
            (Some(v), _) => str_arg(name, v),
            (None, Some(d)) => Ok(d.to_string()),
            (None, None) => Err(BindingError::Missing { name }),
        }
    };
    let get_size = |name: &str| -> Result<u64, BindingError> {
        map.get(name)
            .map_or(Ok(DEFAULT_SIZE), |v| size_arg(name, v))
    };
    let (local_hostname, local_hostname_port) = host_part(&get_str("local_hostname", None)?)?;
    let mut args = SetupArgs {
        local_hostname,
        local_hostname_port,
        metadata_server: get_str("metadata_server", None)?,
        global_segment_size: get_size("global_segment_size")?,
        local_buffer_size: get_size("local_buffer_size")?,
        master_server_addr: get_str("master_server_addr", Some("127.0.0.1:50051"))?,
        ssd_offload_path: None,
    };
    if ssd {
        // The SSD tier belongs to the hosted node; Mooncake's variable names the directory
        // when the keyword does not.
        let path = match map.get("ssd_offload_path") {
            Some(v) if !v.is_none() => str_arg("ssd_offload_path", v)?,
            _ => std::env::var("MOONCAKE_OFFLOAD_FILE_STORAGE_PATH").unwrap_or_default(),
        };
        if args.global_segment_size == 0 || path.is_empty() {
            return Err(BindingError::SsdOffload);
        }
        args.ssd_offload_path = Some(path);
    }
    check_protocol(
        &get_str("protocol", Some("tcp"))?,
        &get_str("rdma_devices", Some(""))?,
    )?;
    check_metadata(&args.metadata_server)?;
    check_addr(&args.master_server_addr)?;
    if args.global_segment_size != 0 && args.global_segment_size < MIN_SEGMENT {
        return Err(BindingError::SegmentTooSmall {
            size_bytes: args.global_segment_size,
            min_bytes: MIN_SEGMENT,
        });
    }
    Ok(args)
}

/// The host of `local_hostname` (`host` or `host:port`) and the port when one was named.
fn host_part(s: &str) -> Result<(String, Option<u16>), BindingError> {
    let s = s.trim();
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.parse::<u16>().is_ok() => (h, p.parse().ok()),
        _ => (s, None),
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(BindingError::BadHost { input: s.into() });
    }
    Ok((host.to_string(), port))
}

/// Refuses every protocol but TCP, saying why RDMA is not available here.
fn check_protocol(protocol: &str, devices: &str) -> Result<(), BindingError> {
    match protocol.to_ascii_lowercase().as_str() {
        "tcp" => Ok(()),
        "rdma" => {
            let found = std::fs::read_dir("/sys/class/infiniband")
                .map(|d| d.count())
                .unwrap_or(0);
            if found == 0 {
                Err(BindingError::NoRdmaDevice {
                    devices: devices.into(),
                })
            } else {
                Err(BindingError::NoRdmaTransport { found })
            }
        }
        other => Err(BindingError::UnknownProtocol { name: other.into() }),
    }
}

/// Accepts `P2PHANDSHAKE` and HTTP metadata URLs (for compatibility; unused here).
fn check_metadata(m: &str) -> Result<(), BindingError> {
    if m == "P2PHANDSHAKE" {
        return Ok(());
    }
    let rest = m
        .strip_prefix("http://")
        .or_else(|| m.strip_prefix("https://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') => Ok(()),
        _ => Err(BindingError::MetadataServer { input: m.into() }),
    }
}

/// Accepts `host:port` with a non-zero port.
/// Accepts a master address `host:port` or a coordinator locator (`etcd://h1:2379;h2:2379`,
/// `redis://host:port`) that HA masters elect on.
fn check_addr(a: &str) -> Result<(), BindingError> {
    mooncake_rs::MasterLocator::parse(a)
        .map(drop)
        .map_err(|e| BindingError::MasterAddress {
            input: a.into(),
            reason: e.to_string(),
        })
}
