//! Mooncake's memory environment variables: `MC_STORE_USE_HUGEPAGE`,
//! `MC_STORE_HUGEPAGE_SIZE`, `MC_MMAP_ARENA_POOL_SIZE` and `MC_DISABLE_MMAP_ARENA`.

use crate::error::Error;
use crate::region::HugePolicy;

/// The hugepage sizes `MC_STORE_HUGEPAGE_SIZE` accepts (x86-64's two).
const HUGE_PAGE_SIZES: [(&str, usize); 2] = [("2MB", 2 << 20), ("1GB", 1 << 30)];

/// What the memory variables ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryEnv {
    /// `MC_STORE_USE_HUGEPAGE=1`: hugetlb pages, falling back to plain pages with a logged
    /// reason.
    pub use_hugepage: bool,
    /// `MC_STORE_HUGEPAGE_SIZE`: 2 MiB (the default) or 1 GiB.
    pub huge_page_bytes: usize,
    /// `MC_MMAP_ARENA_POOL_SIZE`: the arena's size, when set.
    pub arena_pool_bytes: Option<u64>,
    /// `MC_DISABLE_MMAP_ARENA=1`: no arena even when a size is set.
    pub arena_disabled: bool,
}

impl MemoryEnv {
    /// Reads the variables from the environment.
    pub fn from_env() -> Result<MemoryEnv, Error> {
        MemoryEnv::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `get` (the environment, or a test's table).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<MemoryEnv, Error> {
        let set = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let huge_page_bytes = match set("MC_STORE_HUGEPAGE_SIZE") {
            Some(v) => parse_huge_page_size(&v).map_err(|reason| Error::InvalidEnv {
                var: "MC_STORE_HUGEPAGE_SIZE",
                value: v.chars().take(64).collect(),
                reason,
            })?,
            None => HUGE_PAGE_SIZES[0].1,
        };
        let arena_pool_bytes = match set("MC_MMAP_ARENA_POOL_SIZE") {
            Some(v) => Some(parse_size(&v).map_err(|reason| Error::InvalidEnv {
                var: "MC_MMAP_ARENA_POOL_SIZE",
                value: v.chars().take(64).collect(),
                reason,
            })?),
            None => None,
        };
        Ok(MemoryEnv {
            use_hugepage: set("MC_STORE_USE_HUGEPAGE").as_deref().map(str::trim) == Some("1"),
            huge_page_bytes,
            arena_pool_bytes,
            arena_disabled: set("MC_DISABLE_MMAP_ARENA").as_deref().map(str::trim) == Some("1"),
        })
    }

    /// The hugepage policy the variables ask for: `Try` with `MC_STORE_USE_HUGEPAGE=1`.
    pub fn huge_policy(&self) -> HugePolicy {
        if self.use_hugepage {
            HugePolicy::Try
        } else {
            HugePolicy::Never
        }
    }

    /// The arena size to reserve: the pool size unless the arena is disabled (logged when
    /// both are set, so the operator sees which won).
    pub fn arena_pool(&self) -> Option<u64> {
        match (self.arena_pool_bytes, self.arena_disabled) {
            (Some(bytes), true) => {
                tracing::info!(
                    pool_bytes = bytes,
                    "MC_DISABLE_MMAP_ARENA=1: no mmap arena despite MC_MMAP_ARENA_POOL_SIZE; each mount maps its own memory"
                );
                None
            }
            (pool, _) => pool.filter(|&b| b > 0),
        }
    }
}

/// `2MB` or `1GB` (any case; `2M`, `2MiB`, `1G`, `1GiB` too) to bytes; the error says which
/// sizes are accepted.
pub fn parse_huge_page_size(text: &str) -> Result<usize, String> {
    let t = text.trim().to_ascii_uppercase().replace("IB", "B");
    let t = if t.ends_with('B') { t } else { t + "B" };
    HUGE_PAGE_SIZES
        .iter()
        .find(|(name, _)| *name == t)
        .map(|&(_, bytes)| bytes)
        .ok_or_else(|| "hugepage sizes are 2MB and 1GB".to_owned())
}

/// A size such as `8gb`, `512MB`, `64kb` or a byte count (binary units: `1gb` is 2^30).
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = t.split_at(digits);
    let n: u64 = number
        .parse()
        .map_err(|_| "give a size such as 8gb, 512mb or a byte count".to_owned())?;
    let shift = match unit.trim().trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err("units are b, kb, mb, gb and tb".to_owned()),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| "the size does not fit in 64 bits".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<MemoryEnv, Error> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        MemoryEnv::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let e = env(&[]).unwrap();
        assert!(!e.use_hugepage && !e.arena_disabled);
        assert_eq!(e.huge_page_bytes, 2 << 20);
        assert_eq!(e.arena_pool(), None);
        assert_eq!(e.huge_policy(), HugePolicy::Never);
    }

    #[test]
    fn mooncake_spellings_parse() {
        let e = env(&[
            ("MC_STORE_USE_HUGEPAGE", "1"),
            ("MC_STORE_HUGEPAGE_SIZE", "1GB"),
            ("MC_MMAP_ARENA_POOL_SIZE", "8gb"),
        ])
        .unwrap();
        assert_eq!(e.huge_policy(), HugePolicy::Try);
        assert_eq!(e.huge_page_bytes, 1 << 30);
        assert_eq!(e.arena_pool(), Some(8 << 30));
        for (text, bytes) in [("2mb", 2 << 20), ("2M", 2 << 20), ("1GiB", 1 << 30)] {
            assert_eq!(parse_huge_page_size(text), Ok(bytes), "{text}");
        }
        assert_eq!(parse_size("512MB"), Ok(512 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
    }

    #[test]
    fn disable_wins_over_a_pool_size() {
        let e = env(&[
            ("MC_MMAP_ARENA_POOL_SIZE", "1gb"),
            ("MC_DISABLE_MMAP_ARENA", "1"),
        ])
        .unwrap();
        assert_eq!(e.arena_pool_bytes, Some(1 << 30));
        assert_eq!(e.arena_pool(), None);
    }

    #[test]
    fn bad_values_name_the_variable_and_the_fix() {
        let e = env(&[("MC_STORE_HUGEPAGE_SIZE", "4MB")]).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("MC_STORE_HUGEPAGE_SIZE") && msg.contains("2MB and 1GB"),
            "{msg}"
        );
        for bad in ["lots", "8xb", "-1gb", "99999999999999tb"] {
            let e = env(&[("MC_MMAP_ARENA_POOL_SIZE", bad)]).unwrap_err();
            assert!(
                e.to_string().contains("MC_MMAP_ARENA_POOL_SIZE"),
                "{bad}: {e}"
            );
        }
    }
}
