//! Snapshots in a local directory: `<dir>/mooncake_master_snapshot/<cluster_id>/`.
//!
//! A crash at any point leaves either the previous state or the new one, never a torn
//! `latest`:
//!
//! 1. the data file and manifest are written into `<id>.tmp/` and fsynced, then the
//!    directory itself;
//! 2. `<id>.tmp` is renamed to `<id>` and the parent directory fsynced: the snapshot is
//!    whole under its name or absent;
//! 3. `latest` is written as `latest.tmp`, fsynced, renamed over `latest`, and the parent
//!    fsynced.
//!
//! Leftover `*.tmp` entries (a crash between the steps) are never read and are deleted by
//! the next retention round. Blocking I/O: callers run it on tokio's blocking pool.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::ROOT_DIR;
use super::manifest::{DATA_FILE, MANIFEST_FILE, is_id};
use crate::MasterError;

/// Name of the marker naming the newest whole snapshot.
const LATEST: &str = "latest";
/// Suffix of entries being written.
const TMP: &str = ".tmp";

/// One cluster's snapshots in a directory.
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> MasterError {
    let path = path.to_path_buf();
    move |source| MasterError::SnapshotIo {
        action,
        path,
        source,
    }
}

/// Writes `bytes` to a new file at `path` and fsyncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), MasterError> {
    let mut f = File::create(path).map_err(io_error("create", path))?;
    f.write_all(bytes).map_err(io_error("write", path))?;
    f.sync_all().map_err(io_error("fsync", path))
}

/// Fsyncs directory `dir`, so the entries created or renamed in it are durable.
fn sync_dir(dir: &Path) -> Result<(), MasterError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("fsync the directory", dir))
}

impl LocalDir {
    /// The snapshots of cluster `cluster_id` under `base`.
    pub fn new(base: &Path, cluster_id: &str) -> LocalDir {
        LocalDir {
            root: base.join(ROOT_DIR).join(super::path_component(cluster_id)),
        }
    }

    /// The cluster's snapshot directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes snapshot `id` (steps 1 and 2 of the module docs).
    ///
    /// # Errors
    /// [`MasterError::SnapshotIo`] naming the step and path.
    pub fn write(&self, id: &str, data: &[u8], manifest: &[u8]) -> Result<(), MasterError> {
        fs::create_dir_all(&self.root).map_err(io_error("create", &self.root))?;
        let tmp = self.root.join(format!("{id}{TMP}"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io_error("remove", &tmp))?;
        }
        fs::create_dir(&tmp).map_err(io_error("create", &tmp))?;
        write_synced(&tmp.join(DATA_FILE), data)?;
        write_synced(&tmp.join(MANIFEST_FILE), manifest)?;
        sync_dir(&tmp)?;
        let done = self.root.join(id);
        fs::rename(&tmp, &done).map_err(io_error("rename into place", &done))?;
        sync_dir(&self.root)
    }

    /// Points `latest` at `id` (step 3).
    ///
    /// # Errors
    /// [`MasterError::SnapshotIo`].
    pub fn set_latest(&self, id: &str) -> Result<(), MasterError> {
        let tmp = self.root.join(format!("{LATEST}{TMP}"));
        write_synced(&tmp, format!("{id}\n").as_bytes())?;
        let latest = self.root.join(LATEST);
        fs::rename(&tmp, &latest).map_err(io_error("rename into place", &latest))?;
        sync_dir(&self.root)
    }

    /// The id `latest` names, if there is one.
    ///
    /// # Errors
    /// [`MasterError::SnapshotIo`] for a `latest` that exists but cannot be read.
    pub fn latest(&self) -> Result<Option<String>, MasterError> {
        Ok(self
            .read_file(&self.root.join(LATEST))?
            .map(|b| String::from_utf8_lossy(&b).trim().to_string()))
    }

    /// File `file` of snapshot `id`, or `None` when it is missing.
    ///
    /// # Errors
    /// [`MasterError::SnapshotIo`] when it exists but cannot be read.
    pub fn read(&self, id: &str, file: &str) -> Result<Option<Vec<u8>>, MasterError> {
        self.read_file(&self.root.join(id).join(file))
    }

    fn read_file(&self, path: &Path) -> Result<Option<Vec<u8>>, MasterError> {
        match fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("read", path)(e)),
        }
    }

    /// Names of the entries of the root (none when it does not exist yet).
    fn entries(&self) -> Result<Vec<String>, MasterError> {
        let dir = match fs::read_dir(&self.root) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("list", &self.root)(e)),
        };
        let mut names = Vec::new();
        for e in dir {
            let e = e.map_err(io_error("list", &self.root))?;
            names.push(e.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    /// Ids of the snapshots written in full (renamed into place), oldest first.
    ///
    /// # Errors
    /// [`MasterError::SnapshotIo`] when the directory cannot be listed.
    pub fn ids(&self) -> Result<Vec<String>, MasterError> {
        let mut ids: Vec<String> = self.entries()?.into_iter().filter(|n| is_id(n)).collect();
        ids.sort();
        Ok(ids)
    }

    /// Deletes snapshot `id`: its manifest first, so a half-deleted one is never whole.
    ///
    /// # Errors
    /// [`MasterError::SnapshotIo`].
    pub fn remove(&self, id: &str) -> Result<(), MasterError> {
        let dir = self.root.join(id);
        match fs::remove_file(dir.join(MANIFEST_FILE)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("remove", &dir)(e)),
        }
        fs::remove_dir_all(&dir).map_err(io_error("remove", &dir))
    }

    /// Deletes what a crash left half-written: `*.tmp` snapshots older than `before` (a
    /// newer one may be another master's write in progress) and a stray `latest.tmp`.
    /// Returns their names.
    ///
    /// # Errors
    /// [`MasterError::SnapshotIo`].
    pub fn clean_partial(&self, before: &str) -> Result<Vec<String>, MasterError> {
        let mut removed = Vec::new();
        for name in self.entries()? {
            let Some(stem) = name.strip_suffix(TMP) else {
                continue;
            };
            let path = self.root.join(&name);
            if stem == LATEST {
                fs::remove_file(&path).map_err(io_error("remove", &path))?;
            } else if is_id(stem) && stem < before {
                fs::remove_dir_all(&path).map_err(io_error("remove", &path))?;
            } else {
                continue;
            }
            removed.push(name);
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("mc-snap-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        p
    }

    #[test]
    fn a_snapshot_appears_whole_under_its_name_and_latest_follows() {
        let base = temp_dir("local");
        let d = LocalDir::new(&base, "c1");
        assert_eq!(d.ids().unwrap(), Vec::<String>::new());
        assert_eq!(d.latest().unwrap(), None);
        d.write("20240301_000000_000", b"data", b"{}").unwrap();
        d.set_latest("20240301_000000_000").unwrap();
        d.write("20240301_000001_000", b"data2", b"{}").unwrap();
        assert_eq!(
            d.latest().unwrap().as_deref(),
            Some("20240301_000000_000"),
            "latest moves only when told"
        );
        assert_eq!(
            d.read("20240301_000001_000", DATA_FILE).unwrap().as_deref(),
            Some(&b"data2"[..])
        );
        assert_eq!(d.read("20240301_000001_000", "nope").unwrap(), None);
        // A crash mid-write leaves a .tmp directory: never listed, cleaned once older.
        fs::create_dir_all(d.root().join("20240301_000000_500.tmp")).unwrap();
        fs::write(d.root().join("latest.tmp"), b"x").unwrap();
        fs::create_dir_all(d.root().join("20240301_000009_000.tmp")).unwrap();
        assert_eq!(d.ids().unwrap().len(), 2);
        let mut cleaned = d.clean_partial("20240301_000001_000").unwrap();
        cleaned.sort();
        assert_eq!(cleaned, ["20240301_000000_500.tmp", "latest.tmp"]);
        assert!(d.root().join("20240301_000009_000.tmp").exists());
        d.remove("20240301_000000_000").unwrap();
        assert_eq!(d.ids().unwrap(), ["20240301_000001_000"]);
        fs::remove_dir_all(&base).unwrap();
    }
}
