//! Snapshots in an S3 bucket (or an S3-compatible server), through the `object_store`
//! crate.
//!
//! Settings come from Mooncake's variables, each falling back to the standard AWS one:
//!
//! | variable | fallback | meaning |
//! |---|---|---|
//! | `MOONCAKE_AWS_BUCKET_NAME` | `AWS_BUCKET_NAME`, `AWS_BUCKET` | the bucket (required) |
//! | `MOONCAKE_AWS_REGION` | `AWS_REGION`, `AWS_DEFAULT_REGION` | region, `us-east-1` by default |
//! | `MOONCAKE_AWS_S3_ENDPOINT` | `AWS_ENDPOINT_URL`, `AWS_ENDPOINT` | a non-AWS server, e.g. `http://10.0.0.5:9000` |
//! | `MOONCAKE_AWS_ACCESS_KEY_ID` | `AWS_ACCESS_KEY_ID` | credentials (else the instance's role) |
//! | `MOONCAKE_AWS_SECRET_ACCESS_KEY` | `AWS_SECRET_ACCESS_KEY` | |
//! | — | `AWS_SESSION_TOKEN` | temporary credentials |
//! | `MOONCAKE_AWS_USE_VIRTUAL_ADDRESSING` | — | `true`: `bucket.host` URLs; path-style by default |
//! | `MOONCAKE_AWS_USE_HTTPS` | — | scheme for an endpoint given without one (`true`) |
//!
//! Each object PUT is atomic, so a snapshot is its data, then its manifest, then the
//! `latest` marker: a reader never sees a `latest` naming a snapshot that is not whole.

use std::fmt;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStore as _, ObjectStoreExt as _, PutPayload, RetryConfig};

use super::ROOT_DIR;
use super::manifest::{DATA_FILE, MANIFEST_FILE, is_id};
use crate::MasterError;

/// Name of the marker naming the newest whole snapshot.
const LATEST: &str = "latest";

/// How to reach the bucket.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// Bucket name.
    pub bucket: String,
    /// Region.
    pub region: String,
    /// Endpoint URL of a non-AWS server (with its scheme).
    pub endpoint: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Session token.
    pub session_token: Option<String>,
    /// Virtual-hosted-style URLs instead of path-style ones.
    pub virtual_hosted: bool,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Credentials stay out of logs.
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("credentials", &self.access_key_id.is_some())
            .field("virtual_hosted", &self.virtual_hosted)
            .finish()
    }
}

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

impl S3Settings {
    /// Reads the variables of the module table through `vars`.
    ///
    /// # Errors
    /// [`MasterError::SnapshotEnvMissing`] without a bucket.
    pub fn from_vars(vars: &impl Fn(&str) -> Option<String>) -> Result<S3Settings, MasterError> {
        let first = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| vars(n).filter(|v| !v.trim().is_empty()))
                .map(|v| v.trim().to_string())
        };
        let bucket = first(&["MOONCAKE_AWS_BUCKET_NAME", "AWS_BUCKET_NAME", "AWS_BUCKET"]).ok_or(
            MasterError::SnapshotEnvMissing {
                variable: "MOONCAKE_AWS_BUCKET_NAME",
                purpose: "the bucket of --snapshot_object_store_type=s3 (with MOONCAKE_AWS_S3_ENDPOINT, MOONCAKE_AWS_ACCESS_KEY_ID and MOONCAKE_AWS_SECRET_ACCESS_KEY for a non-AWS server)",
            },
        )?;
        let https = first(&["MOONCAKE_AWS_USE_HTTPS"]).is_none_or(|v| truthy(&v));
        let endpoint = first(&[
            "MOONCAKE_AWS_S3_ENDPOINT",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT",
        ])
        .map(|e| {
            if e.contains("://") {
                e
            } else if https {
                format!("https://{e}")
            } else {
                format!("http://{e}")
            }
        });
        Ok(S3Settings {
            bucket,
            region: first(&["MOONCAKE_AWS_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"])
                .unwrap_or_else(|| "us-east-1".to_string()),
            endpoint,
            access_key_id: first(&["MOONCAKE_AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"]),
            secret_access_key: first(&["MOONCAKE_AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"]),
            session_token: first(&["AWS_SESSION_TOKEN"]),
            virtual_hosted: first(&["MOONCAKE_AWS_USE_VIRTUAL_ADDRESSING"])
                .is_some_and(|v| truthy(&v)),
        })
    }
}

/// One cluster's snapshots in a bucket: `mooncake_master_snapshot/<cluster_id>/...`.
#[derive(Debug)]
pub struct S3Bucket {
    store: AmazonS3,
    root: String,
    bucket: String,
}

fn s3_error(action: &'static str, key: &str) -> impl FnOnce(object_store::Error) -> MasterError {
    let key = key.to_string();
    move |source| MasterError::SnapshotS3 {
        action,
        key,
        source,
    }
}

impl S3Bucket {
    /// A client for `s` (no request is made yet).
    ///
    /// # Errors
    /// [`MasterError::SnapshotS3`] for settings the client refuses (a malformed endpoint).
    pub fn open(s: &S3Settings, cluster_id: &str) -> Result<S3Bucket, MasterError> {
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&s.bucket)
            .with_region(&s.region)
            .with_virtual_hosted_style_request(s.virtual_hosted)
            // A snapshot that cannot be written within a minute is retried at the next
            // interval; a start must not hang for minutes on an unreachable server.
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(60),
                ..RetryConfig::default()
            });
        if let Some(e) = &s.endpoint {
            b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
        }
        if let (Some(id), Some(secret)) = (&s.access_key_id, &s.secret_access_key) {
            b = b.with_access_key_id(id).with_secret_access_key(secret);
        }
        if let Some(t) = &s.session_token {
            b = b.with_token(t);
        }
        let store = b.build().map_err(s3_error("configure S3 for", &s.bucket))?;
        Ok(S3Bucket {
            store,
            root: format!("{ROOT_DIR}/{}", super::path_component(cluster_id)),
            bucket: s.bucket.clone(),
        })
    }

    /// Where the snapshots are, for logs.
    pub fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.root)
    }

    fn key(&self, rest: &str) -> Path {
        Path::from(format!("{}/{rest}", self.root))
    }

    async fn put(&self, rest: &str, bytes: Vec<u8>) -> Result<(), MasterError> {
        let key = self.key(rest);
        self.store
            .put(&key, PutPayload::from(bytes))
            .await
            .map_err(s3_error("upload", key.as_ref()))?;
        Ok(())
    }

    /// Uploads snapshot `id`: its data, then its manifest.
    pub async fn write(
        &self,
        id: &str,
        data: Vec<u8>,
        manifest: Vec<u8>,
    ) -> Result<(), MasterError> {
        self.put(&format!("{id}/{DATA_FILE}"), data).await?;
        self.put(&format!("{id}/{MANIFEST_FILE}"), manifest).await
    }

    /// Points `latest` at `id`.
    pub async fn set_latest(&self, id: &str) -> Result<(), MasterError> {
        self.put(LATEST, format!("{id}\n").into_bytes()).await
    }

    /// `rest` under the root, or `None` when there is no such object.
    async fn get(&self, rest: &str) -> Result<Option<Vec<u8>>, MasterError> {
        let key = self.key(rest);
        let err = s3_error("download", key.as_ref());
        match self.store.get(&key).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(err)?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    /// The id `latest` names, if any.
    pub async fn latest(&self) -> Result<Option<String>, MasterError> {
        Ok(self
            .get(LATEST)
            .await?
            .map(|b| String::from_utf8_lossy(&b).trim().to_string()))
    }

    /// File `file` of snapshot `id`, or `None` when it is missing.
    pub async fn read(&self, id: &str, file: &str) -> Result<Option<Vec<u8>>, MasterError> {
        self.get(&format!("{id}/{file}")).await
    }

    /// Ids of the snapshots in the bucket, oldest first.
    pub async fn ids(&self) -> Result<Vec<String>, MasterError> {
        let prefix = Path::from(self.root.as_str());
        let list = self
            .store
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(s3_error("list", prefix.as_ref()))?;
        let mut ids: Vec<String> = list
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .filter(|n| is_id(n))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Deletes snapshot `id` (manifest first, so a half-deleted one is never whole).
    pub async fn remove(&self, id: &str) -> Result<(), MasterError> {
        for file in [MANIFEST_FILE, DATA_FILE] {
            let key = self.key(&format!("{id}/{file}"));
            match self.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(s3_error("delete", key.as_ref())(e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(env: &[(&str, &str)]) -> Result<S3Settings, MasterError> {
        S3Settings::from_vars(&|k: &str| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn mooncakes_variables_first_then_the_standard_ones() {
        let s = settings(&[
            ("MOONCAKE_AWS_BUCKET_NAME", "snaps"),
            ("AWS_BUCKET", "other"),
            ("MOONCAKE_AWS_S3_ENDPOINT", "10.0.0.5:9000"),
            ("MOONCAKE_AWS_USE_HTTPS", "false"),
            ("AWS_ACCESS_KEY_ID", "id"),
            ("MOONCAKE_AWS_SECRET_ACCESS_KEY", "secret"),
        ])
        .unwrap();
        assert_eq!(s.bucket, "snaps");
        assert_eq!(s.region, "us-east-1");
        assert_eq!(s.endpoint.as_deref(), Some("http://10.0.0.5:9000"));
        assert_eq!(s.access_key_id.as_deref(), Some("id"));
        assert!(!s.virtual_hosted);
        assert!(!format!("{s:?}").contains("secret"), "{s:?}");
        let s = settings(&[
            ("AWS_BUCKET", "b"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ENDPOINT", "s3.example.com"),
            ("MOONCAKE_AWS_USE_VIRTUAL_ADDRESSING", "true"),
        ])
        .unwrap();
        assert_eq!((s.bucket.as_str(), s.region.as_str()), ("b", "eu-west-1"));
        assert_eq!(s.endpoint.as_deref(), Some("https://s3.example.com"));
        assert!(s.virtual_hosted);
        let e = settings(&[("MOONCAKE_AWS_REGION", "x")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("MOONCAKE_AWS_BUCKET_NAME"), "{e}");
        let b = S3Bucket::open(&settings(&[("AWS_BUCKET", "b")]).unwrap(), "my/cluster").unwrap();
        assert_eq!(b.describe(), "s3://b/mooncake_master_snapshot/my_cluster");
    }
}
