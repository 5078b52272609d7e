//! The crate's one error type.

use std::time::Duration;

/// Mooncake's `INTERNAL_ERROR`: what Mooncake answers for a Redis coordinator failure.
pub const CODE_INTERNAL_ERROR: i32 = -1;
/// Mooncake's `INVALID_PARAMS`: a bad locator or configuration.
pub const CODE_INVALID_PARAMS: i32 = -600;
/// Mooncake's `ETCD_OPERATION_ERROR`: an etcd call failed.
pub const CODE_ETCD_OPERATION_ERROR: i32 = -1000;
/// Mooncake's `UNAVAILABLE_IN_CURRENT_STATUS`: the election was stopped or resigned.
pub const CODE_UNAVAILABLE_IN_CURRENT_STATUS: i32 = -1010;

/// Errors of the coordinator layer.
#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    /// The master locator is empty.
    #[error(
        "empty master locator: expected host:port, etcd://h1:2379;h2:2379 or redis://host:port"
    )]
    EmptyLocator,
    /// The locator names a scheme this build cannot follow.
    #[error("master locator scheme `{scheme}` is not supported; supported: etcd, redis")]
    UnsupportedScheme {
        /// The scheme as written (before `://`).
        scheme: String,
    },
    /// An endpoint has no `:port`.
    #[error("endpoint `{endpoint}` in master locator `{locator}` has no port (write host:port)")]
    MissingPort {
        /// The whole locator.
        locator: String,
        /// The endpoint without a port.
        endpoint: String,
    },
    /// An endpoint is not `host:port` with a host and a port in 1..=65535.
    #[error("endpoint `{endpoint}` in master locator `{locator}` is invalid: {reason}")]
    BadEndpoint {
        /// The whole locator.
        locator: String,
        /// The endpoint as written.
        endpoint: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `etcd://` with no endpoint after it.
    #[error("master locator `{locator}` lists no etcd endpoint (write etcd://h1:2379;h2:2379)")]
    NoEndpoints {
        /// The whole locator.
        locator: String,
    },
    /// The redis crate could not parse a `redis://` URL.
    #[error(
        "master locator `{locator}` is not a Redis URL (redis://[:password@]host:port[/db]): {source}"
    )]
    BadRedisUrl {
        /// The locator with any password replaced by `***`.
        locator: String,
        /// The parser's complaint.
        source: redis::RedisError,
    },
    /// A Mooncake Redis environment variable (`MC_REDIS_DB_INDEX`) holds a bad value.
    #[error("environment variable {name}=`{value}` is invalid: {reason}")]
    BadEnv {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A lease or election setting that cannot give the fencing guarantee.
    #[error("invalid coordinator configuration: {reason}")]
    Config {
        /// What is wrong and what to change.
        reason: String,
    },
    /// HA was asked of a static `host:port` locator.
    #[error(
        "leader election needs a coordinator locator (etcd://... or redis://...), got the static master `{locator}`"
    )]
    NotACoordinator {
        /// The locator.
        locator: String,
    },
    /// A connection or I/O error talking to a coordinator over HTTP (etcd's JSON gateway).
    #[error("etcd gateway {endpoint}: {source}")]
    Http {
        /// `host:port` of the etcd endpoint.
        endpoint: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The etcd gateway answered with a non-200 status.
    #[error("etcd gateway {endpoint} answered HTTP {status}: {body}")]
    HttpStatus {
        /// `host:port` of the etcd endpoint.
        endpoint: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The etcd gateway sent bytes that are not the HTTP/JSON it documents.
    #[error("etcd gateway {endpoint} sent a malformed response: {reason}")]
    BadResponse {
        /// `host:port` of the etcd endpoint.
        endpoint: String,
        /// What could not be decoded.
        reason: String,
    },
    /// An etcd gRPC call failed.
    #[cfg(feature = "elect")]
    #[error("etcd {op} failed: {source}")]
    Etcd {
        /// The operation (`lease grant`, `txn`, ...).
        op: &'static str,
        /// The client's error.
        source: etcd_client::Error,
    },
    /// A Redis command failed.
    #[error("redis {op} failed: {source}")]
    Redis {
        /// The operation (`connect`, `acquire script`, ...).
        op: &'static str,
        /// The client's error.
        source: redis::RedisError,
    },
    /// The stored master view cannot be read back (half-written hash, non-numeric version).
    #[error("master view at `{key}` is malformed: {reason}")]
    BadView {
        /// The coordinator key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The shared write secret on the coordinator cannot be read back.
    #[error("write secret at `{key}`: {reason}")]
    BadSecret {
        /// The coordinator key.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A coordinator call did not finish in time.
    #[error("coordinator {op} did not answer within {after:?}")]
    Timeout {
        /// The operation.
        op: &'static str,
        /// The time allowed.
        after: Duration,
    },
    /// The background thread could not be started.
    #[error("cannot start the view follower thread: {source}")]
    Spawn {
        /// The OS error.
        source: std::io::Error,
    },
    /// The election was resigned or stopped.
    #[error("the election has stopped (resigned or dropped)")]
    Stopped,
}

impl CoordError {
    /// The Mooncake `ErrorCode` this error maps to at an API edge.
    pub fn mooncake_code(&self) -> i32 {
        match self {
            Self::EmptyLocator
            | Self::UnsupportedScheme { .. }
            | Self::MissingPort { .. }
            | Self::BadEndpoint { .. }
            | Self::NoEndpoints { .. }
            | Self::BadRedisUrl { .. }
            | Self::BadEnv { .. }
            | Self::Config { .. }
            | Self::NotACoordinator { .. } => CODE_INVALID_PARAMS,
            Self::Http { .. } | Self::HttpStatus { .. } | Self::BadResponse { .. } => {
                CODE_ETCD_OPERATION_ERROR
            }
            #[cfg(feature = "elect")]
            Self::Etcd { .. } => CODE_ETCD_OPERATION_ERROR,
            Self::Redis { .. }
            | Self::BadSecret { .. }
            | Self::BadView { .. }
            | Self::Timeout { .. }
            | Self::Spawn { .. } => CODE_INTERNAL_ERROR,
            Self::Stopped => CODE_UNAVAILABLE_IN_CURRENT_STATUS,
        }
    }
}
