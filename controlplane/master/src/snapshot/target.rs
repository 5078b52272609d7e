//! A place snapshots are kept (a local directory or an S3 bucket), and retention.

use std::sync::Arc;

use super::local::LocalDir;
use super::s3::S3Bucket;
use crate::MasterError;

/// Where one copy of the snapshots lives.
#[derive(Debug, Clone)]
pub enum Target {
    /// A directory (`MOONCAKE_SNAPSHOT_LOCAL_PATH` or `--snapshot_backup_dir`).
    Local(LocalDir),
    /// A bucket.
    S3(Arc<S3Bucket>),
}

/// Runs blocking file I/O on tokio's blocking pool, off the RPC workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, MasterError> + Send + 'static,
) -> Result<T, MasterError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| MasterError::SnapshotTaskPanicked)?
}

impl Target {
    /// Where it is, for logs.
    pub fn describe(&self) -> String {
        match self {
            Target::Local(d) => d.root().display().to_string(),
            Target::S3(b) => b.describe(),
        }
    }

    /// Writes snapshot `id` whole under its name (not yet named by `latest`).
    pub async fn write(
        &self,
        id: &str,
        data: Arc<Vec<u8>>,
        manifest: Arc<Vec<u8>>,
    ) -> Result<(), MasterError> {
        match self {
            Target::Local(d) => {
                let (d, id) = (d.clone(), id.to_string());
                blocking(move || d.write(&id, &data, &manifest)).await
            }
            Target::S3(b) => b.write(id, data.to_vec(), manifest.to_vec()).await,
        }
    }

    /// Points `latest` at `id`.
    pub async fn set_latest(&self, id: &str) -> Result<(), MasterError> {
        match self {
            Target::Local(d) => {
                let (d, id) = (d.clone(), id.to_string());
                blocking(move || d.set_latest(&id)).await
            }
            Target::S3(b) => b.set_latest(id).await,
        }
    }

    /// The id `latest` names.
    pub async fn latest(&self) -> Result<Option<String>, MasterError> {
        match self {
            Target::Local(d) => {
                let d = d.clone();
                blocking(move || d.latest()).await
            }
            Target::S3(b) => b.latest().await,
        }
    }

    /// File `file` of snapshot `id`, `None` when missing.
    pub async fn read(&self, id: &str, file: &str) -> Result<Option<Vec<u8>>, MasterError> {
        match self {
            Target::Local(d) => {
                let (d, id, file) = (d.clone(), id.to_string(), file.to_string());
                blocking(move || d.read(&id, &file)).await
            }
            Target::S3(b) => b.read(id, file).await,
        }
    }

    /// Snapshot ids, oldest first.
    pub async fn ids(&self) -> Result<Vec<String>, MasterError> {
        match self {
            Target::Local(d) => {
                let d = d.clone();
                blocking(move || d.ids()).await
            }
            Target::S3(b) => b.ids().await,
        }
    }

    async fn remove(&self, id: &str) -> Result<(), MasterError> {
        match self {
            Target::Local(d) => {
                let (d, id) = (d.clone(), id.to_string());
                blocking(move || d.remove(&id)).await
            }
            Target::S3(b) => b.remove(id).await,
        }
    }

    /// Keeps the `keep` newest snapshots and the one `latest` names, deletes the others,
    /// and cleans what crashes left half-written before `current` (the one just written).
    /// Returns the ids deleted.
    pub async fn retain(&self, keep: usize, current: &str) -> Result<Vec<String>, MasterError> {
        let ids = self.ids().await?;
        let latest = self.latest().await?;
        let old = ids.len().saturating_sub(keep.max(1));
        let mut removed = Vec::new();
        for id in &ids[..old] {
            if Some(id) == latest.as_ref() || id == current {
                continue;
            }
            self.remove(id).await?;
            removed.push(id.clone());
        }
        if let Target::Local(d) = self {
            let (d, current) = (d.clone(), current.to_string());
            for name in blocking(move || d.clean_partial(&current)).await? {
                tracing::info!(entry = %name, "removed a snapshot left half-written by a crash");
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn retention_keeps_the_newest_and_never_the_latest() {
        let base = std::env::temp_dir().join(format!("mc-snap-{}-retain", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let t = Target::Local(LocalDir::new(&base, "c"));
        let ids: Vec<String> = (0..6).map(|i| format!("20240301_00000{i}_000")).collect();
        let bytes = Arc::new(b"x".to_vec());
        for id in &ids {
            t.write(id, bytes.clone(), bytes.clone()).await.unwrap();
        }
        // `latest` names an old one (say the newer ones were written by a deposed leader).
        t.set_latest(&ids[1]).await.unwrap();
        let removed = t.retain(2, &ids[5]).await.unwrap();
        assert_eq!(removed, [ids[0].clone(), ids[2].clone(), ids[3].clone()]);
        assert_eq!(
            t.ids().await.unwrap(),
            [ids[1].clone(), ids[4].clone(), ids[5].clone()]
        );
        assert_eq!(t.retain(2, &ids[5]).await.unwrap(), Vec::<String>::new());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
