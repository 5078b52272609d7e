//! Snapshot settings from Mooncake's flags and environment variables, checked before the
//! master binds anything so a missing setting is one line naming it.

use std::path::PathBuf;
use std::time::Duration;

use super::s3::S3Settings;
use crate::{MasterConfig, MasterError};

/// The directory of local snapshots (Mooncake's variable).
pub const LOCAL_PATH_VAR: &str = "MOONCAKE_SNAPSHOT_LOCAL_PATH";

/// Where snapshots go (`--snapshot_object_store_type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// `local`: a directory on this host ([`LOCAL_PATH_VAR`]).
    Local(PathBuf),
    /// `s3`: a bucket on S3 or an S3-compatible server.
    S3(S3Settings),
}

/// What the snapshot machinery does, resolved from the flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotConfig {
    /// `--enable_snapshot`: write snapshots periodically while leading.
    pub write: bool,
    /// `--enable_snapshot_restore`: read the latest at start and when a term begins.
    pub restore: bool,
    /// `--snapshot_interval_seconds`.
    pub interval: Duration,
    /// `--snapshot_child_timeout_seconds`: longest one snapshot may take (walk, encode,
    /// write); Mooncake's limit on its snapshot child process.
    pub timeout: Duration,
    /// `--snapshot_retention_count`: snapshots kept per store.
    pub retention: usize,
    /// `--snapshot_object_store_type`.
    pub store: StoreKind,
    /// `--snapshot_backup_dir`: a local copy of every snapshot.
    pub backup_dir: Option<PathBuf>,
    /// `--cluster_id`: the snapshots' namespace.
    pub cluster_id: String,
}

impl SnapshotConfig {
    /// The settings of `cfg` (`None` when neither writing nor restoring is on), reading
    /// environment variables through `vars`.
    ///
    /// # Errors
    /// A missing or unknown `--snapshot_object_store_type`, a missing
    /// `MOONCAKE_SNAPSHOT_LOCAL_PATH` or S3 bucket, an unsupported catalog store, or an
    /// interval or retention count of zero; each message names what to set.
    pub fn from_config(
        cfg: &MasterConfig,
        vars: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<SnapshotConfig>, MasterError> {
        if !cfg.enable_snapshot && !cfg.enable_snapshot_restore {
            return Ok(None);
        }
        let flag = if cfg.enable_snapshot {
            "enable_snapshot"
        } else {
            "enable_snapshot_restore"
        };
        let present = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let store = match cfg.snapshot_object_store_type.trim() {
            "" => return Err(MasterError::SnapshotStoreTypeMissing { flag }),
            "local" => {
                let dir = present(vars(LOCAL_PATH_VAR)).ok_or(MasterError::SnapshotEnvMissing {
                    variable: LOCAL_PATH_VAR,
                    purpose: "the persistent directory local snapshots are kept in (a dedicated one: old snapshots in it are deleted)",
                })?;
                StoreKind::Local(PathBuf::from(dir.trim()))
            }
            "s3" => StoreKind::S3(S3Settings::from_vars(&vars)?),
            other => {
                return Err(MasterError::SnapshotStoreTypeUnknown {
                    name: other.to_string(),
                });
            }
        };
        match cfg.snapshot_catalog_store_type.trim() {
            "" | "embedded" => {}
            other => {
                return Err(MasterError::SnapshotCatalogUnsupported {
                    name: other.to_string(),
                });
            }
        }
        if cfg.snapshot_interval_seconds < Duration::from_secs(1) {
            return Err(MasterError::SnapshotFlagTooSmall {
                flag: "snapshot_interval_seconds",
                min: "1 s",
            });
        }
        if cfg.snapshot_retention_count == 0 {
            return Err(MasterError::SnapshotFlagTooSmall {
                flag: "snapshot_retention_count",
                min: "1",
            });
        }
        Ok(Some(SnapshotConfig {
            write: cfg.enable_snapshot,
            restore: cfg.enable_snapshot_restore,
            interval: cfg.snapshot_interval_seconds,
            timeout: cfg
                .snapshot_child_timeout_seconds
                .max(Duration::from_secs(1)),
            retention: cfg.snapshot_retention_count as usize,
            store,
            backup_dir: present(cfg.snapshot_backup_dir.clone()).map(PathBuf::from),
            cluster_id: cfg.cluster_id.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> MasterConfig {
        let mut v = vec!["mooncake_master".to_string()];
        v.extend(args.iter().map(|s| s.to_string()));
        MasterConfig::try_from_args(v).unwrap()
    }

    fn resolve(args: &[&str], env: &[(&str, &str)]) -> Result<Option<SnapshotConfig>, String> {
        let vars = |k: &str| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        SnapshotConfig::from_config(&cfg(args), vars).map_err(|e| e.to_string())
    }

    #[test]
    fn mooncakes_flags_in_both_spellings() {
        assert_eq!(resolve(&[], &[]).unwrap(), None);
        let c = resolve(
            &[
                "--enable-snapshot",
                "--snapshot-interval-seconds=2",
                "--snapshot_retention_count=3",
                "--snapshot-object-store-type=local",
                "--snapshot_backup_dir=/b",
                "--enable_snapshot_restore=true",
            ],
            &[(LOCAL_PATH_VAR, "/data/snap")],
        )
        .unwrap()
        .unwrap();
        assert!(c.write && c.restore);
        assert_eq!(c.interval, Duration::from_secs(2));
        assert_eq!(c.timeout, Duration::from_secs(3600));
        assert_eq!(c.retention, 3);
        assert_eq!(c.store, StoreKind::Local("/data/snap".into()));
        assert_eq!(c.backup_dir, Some("/b".into()));
        let c = resolve(
            &[
                "--enable_snapshot_restore",
                "--snapshot_object_store_type=local",
            ],
            &[(LOCAL_PATH_VAR, "/x")],
        )
        .unwrap()
        .unwrap();
        assert!(!c.write && c.restore);
        assert_eq!((c.interval, c.retention), (Duration::from_secs(300), 10));
    }

    #[test]
    fn missing_settings_are_one_line_naming_them() {
        let e = resolve(&["--enable_snapshot"], &[]).unwrap_err();
        assert!(e.contains("--snapshot_object_store_type=local"), "{e}");
        let e = resolve(
            &["--enable_snapshot", "--snapshot_object_store_type=local"],
            &[(LOCAL_PATH_VAR, " ")],
        )
        .unwrap_err();
        assert!(e.contains(LOCAL_PATH_VAR), "{e}");
        let e = resolve(
            &[
                "--enable_snapshot_restore",
                "--snapshot_object_store_type=s3",
            ],
            &[],
        )
        .unwrap_err();
        assert!(e.contains("MOONCAKE_AWS_BUCKET_NAME"), "{e}");
        let e = resolve(
            &["--enable_snapshot", "--snapshot_object_store_type=hdfs"],
            &[],
        )
        .unwrap_err();
        assert!(e.contains("`hdfs`") && e.contains("local, s3"), "{e}");
        let local = [(LOCAL_PATH_VAR, "/x")];
        let e = resolve(
            &[
                "--enable_snapshot",
                "--snapshot_object_store_type=local",
                "--snapshot_catalog_store_type=redis",
            ],
            &local,
        )
        .unwrap_err();
        assert!(e.contains("redis") && e.contains("latest"), "{e}");
        let e = resolve(
            &[
                "--enable_snapshot",
                "--snapshot_object_store_type=local",
                "--snapshot_retention_count=0",
            ],
            &local,
        )
        .unwrap_err();
        assert!(
            e.contains("--snapshot_retention_count") && !e.contains('\n'),
            "{e}"
        );
    }
}
