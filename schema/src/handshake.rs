//! Connection handshake, sent first on every TCP connection (master RPC and shard data port).
//!
//! Hello (72 bytes): magic `MCRS` | u16 protocol version | u8 role | u8 cluster id length |
//! 64 bytes cluster id (zero padded). The server answers with an 8-byte HelloAck: magic |
//! u16 version | i8 status | u8 reserved. A wrong peer, version, cluster or role gets a
//! typed error and the connection is closed.

use crate::SchemaError;

/// Magic bytes opening every handshake.
pub const MAGIC: [u8; 4] = *b"MCRS";
/// Wire protocol version; bumped on any incompatible change.
pub const PROTOCOL_VERSION: u16 = 1;
/// Size of a Hello.
pub const HELLO_BYTES: usize = 72;
/// Size of a HelloAck.
pub const HELLO_ACK_BYTES: usize = 8;
/// Longest cluster id.
pub const MAX_CLUSTER_ID_LEN: usize = 64;
/// Cluster id used when none is configured (Mooncake's `--cluster_id` default).
pub const DEFAULT_CLUSTER_ID: &str = "mooncake_cluster";

/// Who is connecting.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An application client.
    Client = 1,
    /// A store node's agent.
    Agent = 2,
    /// A master (for master to node traffic).
    Master = 3,
    /// An admin tool.
    Tool = 4,
}

impl Role {
    fn from_u8(v: u8) -> Option<Role> {
        Some(match v {
            1 => Role::Client,
            2 => Role::Agent,
            3 => Role::Master,
            4 => Role::Tool,
            _ => return None,
        })
    }
}

/// Outcome carried by a HelloAck.
#[repr(i8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloStatus {
    /// Accepted.
    Ok = 0,
    /// Protocol version not supported.
    VersionMismatch = 1,
    /// Different cluster.
    ClusterMismatch = 2,
    /// This endpoint does not serve that role.
    RoleRejected = 3,
}

/// The opening message of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Sender's protocol version.
    pub version: u16,
    /// Sender's role.
    pub role: Role,
    /// Cluster the sender belongs to.
    pub cluster_id: String,
}

impl Hello {
    /// A Hello for this build's protocol version.
    pub fn new(role: Role, cluster_id: &str) -> Result<Hello, SchemaError> {
        if cluster_id.len() > MAX_CLUSTER_ID_LEN {
            return Err(SchemaError::Invalid(format!(
                "cluster id is {} bytes; at most {MAX_CLUSTER_ID_LEN} are allowed",
                cluster_id.len()
            )));
        }
        Ok(Hello {
            version: PROTOCOL_VERSION,
            role,
            cluster_id: cluster_id.to_string(),
        })
    }

    /// Encodes to the fixed 72 bytes.
    pub fn encode(&self) -> [u8; HELLO_BYTES] {
        let mut b = [0u8; HELLO_BYTES];
        b[..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&self.version.to_le_bytes());
        b[6] = self.role as u8;
        let id = self.cluster_id.as_bytes();
        let n = id.len().min(MAX_CLUSTER_ID_LEN);
        b[7] = n as u8;
        b[8..8 + n].copy_from_slice(&id[..n]);
        b
    }

    /// Decodes; every malformed input is a typed error.
    pub fn decode(b: &[u8]) -> Result<Hello, SchemaError> {
        if b.len() < HELLO_BYTES {
            return Err(SchemaError::Truncated {
                needed: HELLO_BYTES,
                got: b.len(),
            });
        }
        if b[..4] != MAGIC {
            return Err(SchemaError::BadMagic);
        }
        let version = u16::from_le_bytes([b[4], b[5]]);
        let role = Role::from_u8(b[6])
            .ok_or_else(|| SchemaError::Invalid(format!("unknown role {}", b[6])))?;
        let n = b[7] as usize;
        if n > MAX_CLUSTER_ID_LEN {
            return Err(SchemaError::Invalid(format!("cluster id length {n}")));
        }
        let cluster_id = std::str::from_utf8(&b[8..8 + n])
            .map_err(|_| SchemaError::Invalid("cluster id is not UTF-8".into()))?
            .to_string();
        Ok(Hello {
            version,
            role,
            cluster_id,
        })
    }

    /// Server-side check against what this endpoint serves.
    pub fn check(&self, cluster_id: &str, accepted: &[Role]) -> HelloStatus {
        if self.version != PROTOCOL_VERSION {
            HelloStatus::VersionMismatch
        } else if self.cluster_id != cluster_id {
            HelloStatus::ClusterMismatch
        } else if !accepted.contains(&self.role) {
            HelloStatus::RoleRejected
        } else {
            HelloStatus::Ok
        }
    }
}

/// Encodes a HelloAck.
pub fn encode_ack(status: HelloStatus) -> [u8; HELLO_ACK_BYTES] {
    let mut b = [0u8; HELLO_ACK_BYTES];
    b[..4].copy_from_slice(&MAGIC);
    b[4..6].copy_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    b[6] = status as i8 as u8;
    b
}

/// Decodes a HelloAck and turns a refusal into a typed error.
pub fn check_ack(b: &[u8]) -> Result<(), SchemaError> {
    if b.len() < HELLO_ACK_BYTES {
        return Err(SchemaError::Truncated {
            needed: HELLO_ACK_BYTES,
            got: b.len(),
        });
    }
    if b[..4] != MAGIC {
        return Err(SchemaError::BadMagic);
    }
    let peer_version = u16::from_le_bytes([b[4], b[5]]);
    match b[6] {
        0 => Ok(()),
        1 => Err(SchemaError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: peer_version,
        }),
        2 => Err(SchemaError::ClusterMismatch),
        3 => Err(SchemaError::RoleRejected),
        s => Err(SchemaError::Invalid(format!(
            "unknown handshake status {s}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hello_round_trip_and_checks() {
        let h = Hello::new(Role::Client, "c1").unwrap();
        let d = Hello::decode(&h.encode()).unwrap();
        assert_eq!(d, h);
        assert_eq!(d.check("c1", &[Role::Client]), HelloStatus::Ok);
        assert_eq!(d.check("c2", &[Role::Client]), HelloStatus::ClusterMismatch);
        assert_eq!(d.check("c1", &[Role::Agent]), HelloStatus::RoleRejected);
        let mut bad = h.encode();
        bad[0] = b'X';
        assert!(matches!(Hello::decode(&bad), Err(SchemaError::BadMagic)));
        assert!(check_ack(&encode_ack(HelloStatus::Ok)).is_ok());
        assert!(matches!(
            check_ack(&encode_ack(HelloStatus::ClusterMismatch)),
            Err(SchemaError::ClusterMismatch)
        ));
        assert!(Hello::new(Role::Client, &"x".repeat(65)).is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = Hello::decode(&bytes);
            let _ = check_ack(&bytes);
        }
    }
}
