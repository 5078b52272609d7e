//! The per-cluster log directory and reading the tails of child logs.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Error;

/// How much of a log's end is read to find its last lines; bounds the work for huge logs.
const TAIL_READ_BYTES: u64 = 256 * 1024;

/// Makes a fresh directory `<temp_dir>/<prefix>-<pid>-<counter>`.
///
/// The pid keeps concurrent test binaries apart and the counter keeps clusters of one process
/// apart; a directory left behind by an earlier process with the same pid is skipped.
pub(crate) fn unique_temp_dir(prefix: &str) -> Result<PathBuf, Error> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id();
    loop {
        let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("{prefix}-{pid}-{counter}"));
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => {
                return Err(Error::Io {
                    action: "could not create log directory",
                    path,
                    source,
                });
            }
        }
    }
}

/// The last `lines` lines of the file at `path` (at most its last 256 KiB), lossily decoded.
/// A missing or unreadable file yields a one-line note instead of an error: this text only
/// ever decorates another failure.
pub(crate) fn tail_file(path: &Path, lines: usize) -> String {
    match read_tail_bytes(path, 0) {
        Ok(bytes) => last_lines(&String::from_utf8_lossy(&bytes), lines),
        Err(err) => format!("(could not read {}: {err})\n", path.display()),
    }
}

/// Everything written to the file at `path` from byte `offset` on (at most its last 256 KiB),
/// lossily decoded; empty when the file cannot be read.
pub(crate) fn read_from(path: &Path, offset: u64) -> String {
    read_tail_bytes(path, offset)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// The bytes of the file at `path` from `offset` on, limited to its last 256 KiB.
fn read_tail_bytes(path: &Path, offset: u64) -> std::io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(
        offset.max(len.saturating_sub(TAIL_READ_BYTES)),
    ))?;
    let mut bytes = Vec::new();
    file.take(TAIL_READ_BYTES).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The last `lines` lines of `text`, each ending in a newline.
pub(crate) fn last_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut out = String::new();
    for line in &all[start..] {
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_keeps_only_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(last_lines("a\nb", 5), "a\nb\n");
        assert_eq!(last_lines("", 3), "");
        assert_eq!(last_lines("a\nb\n", 0), "");
    }

    #[test]
    fn tail_and_read_from_see_the_file() {
        let dir = unique_temp_dir("mc-cluster-logs").unwrap();
        let other = unique_temp_dir("mc-cluster-logs").unwrap();
        assert_ne!(dir, other);
        let path = dir.join("x.log");
        std::fs::write(&path, "one\ntwo\nthree\n").unwrap();
        assert_eq!(tail_file(&path, 2), "two\nthree\n");
        assert_eq!(read_from(&path, 4), "two\nthree\n");
        assert!(tail_file(&dir.join("missing.log"), 2).contains("could not read"));
        assert_eq!(read_from(&dir.join("missing.log"), 0), "");
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&other).unwrap();
    }
}
