//! Reading sysfs: small text files under a root directory that is `/sys` on a real machine
//! and a fixture tree in tests.

use std::path::{Path, PathBuf};

use crate::error::Error;

/// The sysfs root of a real machine.
pub const SYSFS_ROOT: &str = "/sys";

/// Longest sysfs file read: every file read here is one short line.
const MAX_FILE_BYTES: u64 = 64 << 10;

/// The trimmed text of `path`, or `None` when the file does not exist.
pub(crate) fn read_opt(path: &Path) -> Result<Option<String>, Error> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(sysfs_error(path, e.to_string())),
    };
    let mut text = String::new();
    file.take(MAX_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| sysfs_error(path, e.to_string()))?;
    Ok(Some(text.trim().to_owned()))
}

/// A cpu list file such as `0-3,8-11` (`cpulist`, `online`, `thread_siblings_list`), or
/// `None` when it does not exist.
pub(crate) fn read_cpu_list(path: &Path) -> Result<Option<Vec<usize>>, Error> {
    match read_opt(path)? {
        Some(text) => parse_cpu_list(&text)
            .map(Some)
            .map_err(|reason| sysfs_error(path, reason)),
        None => Ok(None),
    }
}

/// A file holding one decimal integer (may be negative, as `numa_node` is `-1` when the
/// firmware does not say), or `None` when it does not exist.
pub(crate) fn read_int(path: &Path) -> Result<Option<i64>, Error> {
    match read_opt(path)? {
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|_| sysfs_error(path, format!("{text:?} is not an integer"))),
        None => Ok(None),
    }
}

/// The names of the entries of directory `dir`, sorted; empty when it does not exist.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<String>, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(sysfs_error(dir, e.to_string())),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// `name` without `prefix`, when the rest is a decimal number (`node3` → 3).
pub(crate) fn numbered(name: &str, prefix: &str) -> Option<usize> {
    let rest = name.strip_prefix(prefix)?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

/// `root` joined with a relative sysfs path.
pub(crate) fn at(root: &Path, rel: &str) -> PathBuf {
    root.join(rel)
}

/// Parses the kernel's cpu list format: comma-separated numbers and inclusive ranges,
/// possibly empty (a node without cpus). Bounded by [`MAX_CORE_ID`](crate::MAX_CORE_ID).
pub(crate) fn parse_cpu_list(text: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for item in text.trim().split(',').filter(|s| !s.trim().is_empty()) {
        let (first, last) = match item.split_once('-') {
            Some((a, b)) => (cpu_number(a)?, cpu_number(b)?),
            None => {
                let c = cpu_number(item)?;
                (c, c)
            }
        };
        if first > last {
            return Err(format!("range {item:?} runs backwards"));
        }
        out.extend(first..=last);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// One cpu number of a cpu list.
fn cpu_number(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n <= crate::MAX_CORE_ID => Ok(n),
        _ => Err(format!("{:?} is not a cpu number", text.trim())),
    }
}

/// The error for a sysfs file that exists but cannot be read or understood.
fn sysfs_error(path: &Path, reason: String) -> Error {
    Error::Sysfs {
        path: path.display().to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cpu_lists_parse_as_the_kernel_writes_them() {
        assert_eq!(
            parse_cpu_list("0-3,8-11").unwrap(),
            vec![0, 1, 2, 3, 8, 9, 10, 11]
        );
        assert_eq!(parse_cpu_list("5").unwrap(), vec![5]);
        assert_eq!(parse_cpu_list("").unwrap(), Vec::<usize>::new());
        assert_eq!(parse_cpu_list("3,1,1-2\n").unwrap(), vec![1, 2, 3]);
        for bad in ["a", "3-1", "1-", "-1", "99999", "0,x"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbered_names() {
        assert_eq!(numbered("node12", "node"), Some(12));
        assert_eq!(numbered("node", "node"), None);
        assert_eq!(numbered("nodex", "node"), None);
        assert_eq!(numbered("cpufreq", "cpu"), None);
    }

    proptest! {
        #[test]
        fn cpu_list_parsing_never_panics(s in "[0-9,\\- ]{0,24}") {
            if let Ok(cpus) = parse_cpu_list(&s) {
                prop_assert!(cpus.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }
}
