//! The one error type of this crate: wire data that cannot be decoded or makes no sense, and
//! size or duration text that cannot be parsed. Messages name the cause and, where the input
//! came from a person, what to write instead.

/// Errors of decoding and validating wire data, and of parsing sizes and durations.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// Fewer bytes than the format needs.
    #[error("truncated message: need {needed} bytes, got {got}")]
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// The peer does not speak this protocol.
    #[error("bad magic: the peer is not a mooncake-rs endpoint")]
    BadMagic,
    /// A frame above the receiver's limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Announced length.
        len: u64,
        /// Limit.
        max: u64,
    },
    /// Incompatible protocol versions.
    #[error("protocol version mismatch: we speak {ours}, the peer speaks {theirs}")]
    VersionMismatch {
        /// Our version.
        ours: u16,
        /// Peer's version.
        theirs: u16,
    },
    /// The peer belongs to another cluster.
    #[error("cluster id mismatch: the peer belongs to another cluster (check --cluster_id)")]
    ClusterMismatch,
    /// The peer does not serve this role on this port.
    #[error("the peer refused our role on this port")]
    RoleRejected,
    /// The flatbuffers verifier refused the bytes. Boxed: the verifier's error is 64 bytes,
    /// and every decode on the RPC path returns this type.
    #[error("malformed flatbuffer: {0}")]
    Flatbuffer(#[source] Box<flatbuffers::InvalidFlatbuffer>),
    /// Structurally valid but meaningless.
    #[error("invalid message: {0}")]
    Invalid(String),

    /// Size text with no number in front (`GB`, `-1`, an empty string).
    #[error("`{input}` is not a size: write bytes or a number with KB, MB, GB or TB (e.g. 4GB)")]
    NotASize {
        /// The text as given.
        input: String,
    },
    /// Size text whose number part does not parse (`1.2.3GB`).
    #[error(
        "`{input}` is not a size: `{number}` is not a number; write bytes or a number with KB, MB, GB or TB (e.g. 4GB)"
    )]
    SizeNotANumber {
        /// The text as given.
        input: String,
        /// Its number part.
        number: String,
    },
    /// A size unit other than B, K(i)B, M(i)B, G(i)B, T(i)B.
    #[error("`{input}`: unknown size unit `{unit}`; use B, KB, MB, GB or TB")]
    UnknownSizeUnit {
        /// The text as given.
        input: String,
        /// The unit part.
        unit: String,
    },
    /// A size of 2^64 bytes or more.
    #[error("`{input}` is out of range: a size must be below 2^64 bytes (16 EiB)")]
    SizeOutOfRange {
        /// The text as given.
        input: String,
    },
    /// Duration text that does not start with a whole number.
    #[error("`{input}` is not a duration: write a whole number with ms, s, m or h (e.g. 5s)")]
    NotADuration {
        /// The text as given.
        input: String,
    },
    /// A duration unit other than ms, s, m, h.
    #[error("`{input}`: unknown duration unit `{unit}`; use ms, s, m or h")]
    UnknownDurationUnit {
        /// The text as given.
        input: String,
        /// The unit part.
        unit: String,
    },
    /// A duration of 2^64 milliseconds or more.
    #[error("`{input}` is out of range: a duration must be below 2^64 milliseconds")]
    DurationOutOfRange {
        /// The text as given.
        input: String,
    },
}
