//! Master locators: where a client, a store node or a master finds the leader.
//!
//! The forms are Mooncake's `master_server_entry`: a plain `host:port` names one static master;
//! `<backend>://<connstring>` names a coordinator the masters elect their leader on. Mooncake
//! separates etcd endpoints with `;` (and accepts `,`), and reads Redis credentials from
//! `MC_REDIS_USERNAME`, `MC_REDIS_PASSWORD` and `MC_REDIS_DB_INDEX`; both are kept here.

use std::fmt;

use redis::IntoConnectionInfo;

use crate::CoordError;

/// Port Redis listens on when a `redis://` URL names none (the redis crate's default).
pub const DEFAULT_REDIS_PORT: u16 = 6379;

/// Mooncake's variable for the Redis user name (used when the URL names none).
pub const ENV_REDIS_USERNAME: &str = "MC_REDIS_USERNAME";
/// Mooncake's variable for the Redis password (used when the URL names none).
pub const ENV_REDIS_PASSWORD: &str = "MC_REDIS_PASSWORD";
/// Mooncake's variable for the Redis database index 0..=255 (used when the URL names none).
pub const ENV_REDIS_DB_INDEX: &str = "MC_REDIS_DB_INDEX";

/// Where the master is found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MasterLocator {
    /// One master at a fixed address; no election.
    Static(Endpoint),
    /// Masters elect a leader on this etcd cluster.
    Etcd(Vec<Endpoint>),
    /// Masters elect a leader on this Redis server.
    Redis(RedisTarget),
}

/// A `host:port` pair.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// A Redis server and the credentials to use on it.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisTarget {
    /// The server.
    pub endpoint: Endpoint,
    /// Database index (`SELECT`).
    pub db: i64,
    /// ACL user name, if any.
    pub username: Option<String>,
    /// Password, if any. Never printed by `Debug` or `Display`.
    pub password: Option<String>,
}

impl MasterLocator {
    /// Parses a locator: `host:port`, `etcd://h1:2379;h2:2379` (also `http://` per endpoint,
    /// `,` or `;` separated), or `redis://[[user]:password@]host[:port][/db]`.
    pub fn parse(locator: &str) -> Result<Self, CoordError> {
        let trimmed = locator.trim();
        if trimmed.is_empty() {
            return Err(CoordError::EmptyLocator);
        }
        let Some((scheme, rest)) = trimmed.split_once("://") else {
            return Ok(Self::Static(parse_endpoint(trimmed, trimmed)?));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "etcd" => parse_etcd(trimmed, rest).map(Self::Etcd),
            "redis" => RedisTarget::parse(trimmed).map(Self::Redis),
            _ => Err(CoordError::UnsupportedScheme {
                scheme: scheme.to_string(),
            }),
        }
    }

    /// Whether masters behind this locator elect a leader (etcd or Redis).
    pub fn is_coordinated(&self) -> bool {
        !matches!(self, Self::Static(_))
    }
}

impl fmt::Display for MasterLocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Static(ep) => write!(f, "{ep}"),
            Self::Etcd(eps) => {
                f.write_str("etcd://")?;
                for (i, ep) in eps.iter().enumerate() {
                    if i > 0 {
                        f.write_str(";")?;
                    }
                    write!(f, "{ep}")?;
                }
                Ok(())
            }
            Self::Redis(target) => write!(f, "{target}"),
        }
    }
}

impl Endpoint {
    /// `http://host:port`, the form etcd clients take.
    pub fn http_url(&self) -> String {
        format!("http://{self}")
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl RedisTarget {
    /// Parses a whole `redis://` URL as the redis crate understands it.
    fn parse(locator: &str) -> Result<Self, CoordError> {
        let info = locator
            .into_connection_info()
            .map_err(|source| CoordError::BadRedisUrl {
                locator: redact_url(locator),
                source,
            })?;
        let redis::ConnectionAddr::Tcp(host, port) = info.addr().clone() else {
            return Err(CoordError::UnsupportedScheme {
                scheme: "redis over TLS or a unix socket".into(),
            });
        };
        if host.is_empty() {
            return Err(CoordError::BadEndpoint {
                locator: redact_url(locator),
                endpoint: format!("{host}:{port}"),
                reason: "the host is empty",
            });
        }
        let settings = info.redis_settings();
        Ok(Self {
            endpoint: Endpoint {
                host: host.trim_start_matches('[').trim_end_matches(']').into(),
                port,
            },
            db: settings.db(),
            username: settings.username().map(str::to_string),
            password: settings.password().map(str::to_string),
        })
    }

    /// Fills what the URL left out from Mooncake's variables (`MC_REDIS_USERNAME`,
    /// `MC_REDIS_PASSWORD`, `MC_REDIS_DB_INDEX`), read through `lookup` so tests need not
    /// touch the process environment. Values in the URL win.
    pub fn with_env(mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, CoordError> {
        let nonempty = |name| lookup(name).filter(|v: &String| !v.is_empty());
        if self.username.is_none() {
            self.username = nonempty(ENV_REDIS_USERNAME);
        }
        if self.password.is_none() {
            self.password = nonempty(ENV_REDIS_PASSWORD);
        }
        if self.db == 0
            && let Some(raw) = nonempty(ENV_REDIS_DB_INDEX)
        {
            self.db = match raw.trim().parse::<i64>() {
                Ok(db) if (0..=255).contains(&db) => db,
                _ => {
                    return Err(CoordError::BadEnv {
                        name: ENV_REDIS_DB_INDEX,
                        value: raw,
                        reason: "expected a database index in 0..=255",
                    });
                }
            };
        }
        Ok(self)
    }

    /// The redis crate's connection parameters for this target.
    pub fn connection_info(&self) -> redis::ConnectionInfo {
        let mut settings = redis::RedisConnectionInfo::default().set_db(self.db);
        if let Some(user) = &self.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(password);
        }
        redis::ConnectionAddr::Tcp(self.endpoint.host.clone(), self.endpoint.port)
            .into_connection_info()
            .expect("a TCP address always converts to connection info")
            .set_redis_settings(settings)
    }
}

impl fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("redis://")?;
        match (&self.username, &self.password) {
            (Some(user), Some(_)) => write!(f, "{user}:***@")?,
            (None, Some(_)) => f.write_str(":***@")?,
            (Some(user), None) => write!(f, "{user}@")?,
            (None, None) => {}
        }
        write!(f, "{}/{}", self.endpoint, self.db)
    }
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisTarget({self})")
    }
}

/// Parses the etcd connstring: endpoints separated by `;` or `,`, each optionally `http://`.
fn parse_etcd(locator: &str, rest: &str) -> Result<Vec<Endpoint>, CoordError> {
    let mut endpoints = Vec::new();
    for raw in rest
        .split([';', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let ep = match raw.split_once("://") {
            None => raw,
            Some((s, ep)) if s.eq_ignore_ascii_case("http") => ep,
            Some(_) => {
                return Err(CoordError::BadEndpoint {
                    locator: locator.into(),
                    endpoint: raw.into(),
                    reason: "only http:// etcd endpoints are supported (TLS is not built in)",
                });
            }
        };
        let endpoint = parse_endpoint(locator, ep.trim_end_matches('/'))?;
        if !endpoints.contains(&endpoint) {
            endpoints.push(endpoint);
        }
    }
    if endpoints.is_empty() {
        return Err(CoordError::NoEndpoints {
            locator: locator.into(),
        });
    }
    Ok(endpoints)
}

/// Parses `host:port` or `[v6]:port`; the port is required.
fn parse_endpoint(locator: &str, raw: &str) -> Result<Endpoint, CoordError> {
    let bad = |reason| CoordError::BadEndpoint {
        locator: locator.into(),
        endpoint: raw.into(),
        reason,
    };
    let (host, port) = if let Some(v6) = raw.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| bad("`[` without `]`"))?;
        match after.strip_prefix(':') {
            Some(port) => (host, port),
            None if after.is_empty() => return Err(missing_port(locator, raw)),
            None => return Err(bad("expected `:port` after `]`")),
        }
    } else {
        match raw.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err(bad(
                    "an IPv6 address must be written in brackets: [addr]:port",
                ));
            }
            Some(pair) => pair,
            None => return Err(missing_port(locator, raw)),
        }
    };
    if host.is_empty() {
        return Err(bad("the host is empty"));
    }
    if host.contains(['/', ' ', '@']) {
        return Err(bad("the host contains `/`, `@` or a space"));
    }
    if port.is_empty() {
        return Err(missing_port(locator, raw));
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(Endpoint {
            host: host.into(),
            port,
        }),
        _ => Err(bad("the port is not a number in 1..=65535")),
    }
}

fn missing_port(locator: &str, endpoint: &str) -> CoordError {
    CoordError::MissingPort {
        locator: locator.into(),
        endpoint: endpoint.into(),
    }
}

/// Replaces the password of a URL-like string with `***` for error messages.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.into();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.into(),
        },
        None => url.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(host: &str, port: u16) -> Endpoint {
        Endpoint {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn static_host_port() {
        let loc = MasterLocator::parse("10.0.0.1:50051").unwrap();
        assert_eq!(loc, MasterLocator::Static(ep("10.0.0.1", 50051)));
        assert!(!loc.is_coordinated());
        assert_eq!(loc.to_string(), "10.0.0.1:50051");
        let v6 = MasterLocator::parse("[::1]:50051").unwrap();
        assert_eq!(v6, MasterLocator::Static(ep("::1", 50051)));
        assert_eq!(v6.to_string(), "[::1]:50051");
    }

    #[test]
    fn etcd_endpoint_lists() {
        let want = MasterLocator::Etcd(vec![ep("h1", 2379), ep("h2", 2380)]);
        for s in [
            "etcd://h1:2379;h2:2380",
            "etcd://h1:2379,h2:2380",
            "etcd://http://h1:2379;http://h2:2380/",
            "ETCD:// h1:2379 ; h2:2380 ;",
            "etcd://h1:2379;h2:2380;h1:2379",
        ] {
            assert_eq!(MasterLocator::parse(s).unwrap(), want, "{s}");
        }
        assert_eq!(want.to_string(), "etcd://h1:2379;h2:2380");
    }

    #[test]
    fn redis_urls() {
        let loc = MasterLocator::parse("redis://127.0.0.1:6380").unwrap();
        let MasterLocator::Redis(t) = loc else {
            panic!("not redis")
        };
        assert_eq!(t.endpoint, ep("127.0.0.1", 6380));
        assert_eq!(
            (t.db, t.username.as_deref(), t.password.as_deref()),
            (0, None, None)
        );

        let MasterLocator::Redis(t) = MasterLocator::parse("redis://:s3cret@h:7000/3").unwrap()
        else {
            panic!("not redis")
        };
        assert_eq!((t.endpoint.port, t.db), (7000, 3));
        assert_eq!(t.password.as_deref(), Some("s3cret"));
        assert!(!format!("{t} {t:?}").contains("s3cret"), "password printed");

        let MasterLocator::Redis(t) = MasterLocator::parse("redis://h").unwrap() else {
            panic!("not redis")
        };
        assert_eq!(t.endpoint.port, DEFAULT_REDIS_PORT);
    }

    #[test]
    fn redis_env_fills_only_what_the_url_left_out() {
        let MasterLocator::Redis(t) = MasterLocator::parse("redis://h:1").unwrap() else {
            panic!("not redis")
        };
        let env = |name: &str| match name {
            ENV_REDIS_USERNAME => Some("u".to_string()),
            ENV_REDIS_PASSWORD => Some("p".to_string()),
            ENV_REDIS_DB_INDEX => Some("7".to_string()),
            _ => None,
        };
        let filled = t.clone().with_env(env).unwrap();
        assert_eq!(filled.username.as_deref(), Some("u"));
        assert_eq!(filled.password.as_deref(), Some("p"));
        assert_eq!(filled.db, 7);
        let info = filled.connection_info();
        assert_eq!(info.redis_settings().db(), 7);
        assert_eq!(info.redis_settings().password(), Some("p"));

        let MasterLocator::Redis(own) = MasterLocator::parse("redis://:mine@h:1/2").unwrap() else {
            panic!("not redis")
        };
        let kept = own.with_env(env).unwrap();
        assert_eq!((kept.password.as_deref(), kept.db), (Some("mine"), 2));

        let bad = t.with_env(|n| (n == ENV_REDIS_DB_INDEX).then(|| "300".to_string()));
        assert!(matches!(bad, Err(CoordError::BadEnv { .. })), "{bad:?}");
    }

    #[test]
    fn every_bad_form_has_a_typed_error() {
        use CoordError as E;
        type IsExpected = fn(&CoordError) -> bool;
        let cases: &[(&str, IsExpected)] = &[
            ("", |e| matches!(e, E::EmptyLocator)),
            ("   ", |e| matches!(e, E::EmptyLocator)),
            ("localhost", |e| matches!(e, E::MissingPort { .. })),
            ("localhost:", |e| matches!(e, E::MissingPort { .. })),
            (":50051", |e| matches!(e, E::BadEndpoint { .. })),
            ("h:0", |e| matches!(e, E::BadEndpoint { .. })),
            ("h:65536", |e| matches!(e, E::BadEndpoint { .. })),
            ("h:port", |e| matches!(e, E::BadEndpoint { .. })),
            ("::1:50051", |e| matches!(e, E::BadEndpoint { .. })),
            ("[::1]", |e| matches!(e, E::MissingPort { .. })),
            ("[::1:5", |e| matches!(e, E::BadEndpoint { .. })),
            ("k8s://default/lease", |e| {
                matches!(e, E::UnsupportedScheme { .. })
            }),
            ("http://h:1", |e| matches!(e, E::UnsupportedScheme { .. })),
            ("etcd://", |e| matches!(e, E::NoEndpoints { .. })),
            ("etcd://;,", |e| matches!(e, E::NoEndpoints { .. })),
            ("etcd://h1", |e| matches!(e, E::MissingPort { .. })),
            ("etcd://h1:2379;h2", |e| matches!(e, E::MissingPort { .. })),
            ("etcd://https://h1:2379", |e| {
                matches!(e, E::BadEndpoint { .. })
            }),
            ("redis://h:notaport", |e| matches!(e, E::BadRedisUrl { .. })),
            ("redis://:pw@h:1/notadb", |e| {
                matches!(e, E::BadRedisUrl { .. })
            }),
        ];
        for (input, is_expected) in cases {
            let err = MasterLocator::parse(input).unwrap_err();
            assert!(is_expected(&err), "{input:?} gave {err:?}");
            assert_eq!(err.mooncake_code(), crate::error::CODE_INVALID_PARAMS);
        }
        let k8s = MasterLocator::parse("k8s://x").unwrap_err().to_string();
        assert!(
            k8s.contains("not supported; supported: etcd, redis"),
            "{k8s}"
        );
        let pw = MasterLocator::parse("redis://:pw@h:1/notadb")
            .unwrap_err()
            .to_string();
        assert!(!pw.contains("pw@"), "password leaked: {pw}");
    }
}
