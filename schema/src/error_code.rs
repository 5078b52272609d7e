//! Mooncake Store's numeric error codes, kept identical so users' code keeps working.

use std::fmt;

/// Mooncake's `ErrorCode`: 0 is success, failures are negative.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum ErrorCode {
    Ok = 0,
    InternalError = -1,
    BufferOverflow = -10,
    SegmentNotFound = -101,
    SegmentAlreadyExists = -102,
    ClientNotFound = -103,
    NoAvailableHandle = -200,
    InvalidVersion = -300,
    InvalidKey = -400,
    WriteFail = -500,
    InvalidParams = -600,
    IllegalClient = -601,
    InvalidWrite = -700,
    InvalidRead = -701,
    InvalidReplica = -702,
    ReplicaIsNotReady = -703,
    ObjectNotFound = -704,
    ObjectAlreadyExists = -705,
    ObjectHasLease = -706,
    LeaseExpired = -707,
    ReplicaNotFound = -710,
    ReplicaAlreadyExists = -711,
    ReplicaIsGone = -712,
    ObjectReplicaBusy = -714,
    TransferFail = -800,
    ChecksumMismatch = -801,
    RpcFail = -900,
    RpcTimeout = -901,
    UnavailableInCurrentStatus = -1010,
    TaskNotFound = -1400,
    TaskPendingLimitExceeded = -1401,
    // This build's own (no Mooncake counterpart): write-token refusals (see `token`) and
    // a commit naming put credit the master does not hold.
    WriteTokenInvalid = -1800,
    WriteTokenExpired = -1801,
    WriteOutOfRange = -1802,
    AllocationRevoked = -1803,
    PutCreditNotFound = -1804,
}

impl ErrorCode {
    /// Every code, for lookups.
    pub const ALL: [ErrorCode; 36] = [
        Self::Ok,
        Self::InternalError,
        Self::BufferOverflow,
        Self::SegmentNotFound,
        Self::SegmentAlreadyExists,
        Self::ClientNotFound,
        Self::NoAvailableHandle,
        Self::InvalidVersion,
        Self::InvalidKey,
        Self::WriteFail,
        Self::InvalidParams,
        Self::IllegalClient,
        Self::InvalidWrite,
        Self::InvalidRead,
        Self::InvalidReplica,
        Self::ReplicaIsNotReady,
        Self::ObjectNotFound,
        Self::ObjectAlreadyExists,
        Self::ObjectHasLease,
        Self::LeaseExpired,
        Self::ReplicaNotFound,
        Self::ReplicaAlreadyExists,
        Self::ReplicaIsGone,
        Self::ObjectReplicaBusy,
        Self::TransferFail,
        Self::ChecksumMismatch,
        Self::RpcFail,
        Self::RpcTimeout,
        Self::UnavailableInCurrentStatus,
        Self::TaskNotFound,
        Self::TaskPendingLimitExceeded,
        Self::WriteTokenInvalid,
        Self::WriteTokenExpired,
        Self::WriteOutOfRange,
        Self::AllocationRevoked,
        Self::PutCreditNotFound,
    ];

    /// The numeric value on the wire and at the API edge.
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// Maps a number back; unknown numbers become `InternalError`.
    pub fn from_code(code: i32) -> ErrorCode {
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.code() == code)
            .unwrap_or(Self::InternalError)
    }

    /// Mooncake's spelling, e.g. `OBJECT_NOT_FOUND`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::InternalError => "INTERNAL_ERROR",
            Self::BufferOverflow => "BUFFER_OVERFLOW",
            Self::SegmentNotFound => "SEGMENT_NOT_FOUND",
            Self::SegmentAlreadyExists => "SEGMENT_ALREADY_EXISTS",
            Self::ClientNotFound => "CLIENT_NOT_FOUND",
            Self::NoAvailableHandle => "NO_AVAILABLE_HANDLE",
            Self::InvalidVersion => "INVALID_VERSION",
            Self::InvalidKey => "INVALID_KEY",
            Self::WriteFail => "WRITE_FAIL",
            Self::InvalidParams => "INVALID_PARAMS",
            Self::IllegalClient => "ILLEGAL_CLIENT",
            Self::InvalidWrite => "INVALID_WRITE",
            Self::InvalidRead => "INVALID_READ",
            Self::InvalidReplica => "INVALID_REPLICA",
            Self::ReplicaIsNotReady => "REPLICA_IS_NOT_READY",
            Self::ObjectNotFound => "OBJECT_NOT_FOUND",
            Self::ObjectAlreadyExists => "OBJECT_ALREADY_EXISTS",
            Self::ObjectHasLease => "OBJECT_HAS_LEASE",
            Self::LeaseExpired => "LEASE_EXPIRED",
            Self::ReplicaNotFound => "REPLICA_NOT_FOUND",
            Self::ReplicaAlreadyExists => "REPLICA_ALREADY_EXISTS",
            Self::ReplicaIsGone => "REPLICA_IS_GONE",
            Self::ObjectReplicaBusy => "OBJECT_REPLICA_BUSY",
            Self::TransferFail => "TRANSFER_FAIL",
            Self::ChecksumMismatch => "CHECKSUM_MISMATCH",
            Self::RpcFail => "RPC_FAIL",
            Self::RpcTimeout => "RPC_TIMEOUT",
            Self::UnavailableInCurrentStatus => "UNAVAILABLE_IN_CURRENT_STATUS",
            Self::TaskNotFound => "TASK_NOT_FOUND",
            Self::TaskPendingLimitExceeded => "TASK_PENDING_LIMIT_EXCEEDED",
            Self::WriteTokenInvalid => "WRITE_TOKEN_INVALID",
            Self::WriteTokenExpired => "WRITE_TOKEN_EXPIRED",
            Self::WriteOutOfRange => "WRITE_OUT_OF_RANGE",
            Self::AllocationRevoked => "ALLOCATION_REVOKED",
            Self::PutCreditNotFound => "PUT_CREDIT_NOT_FOUND",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_match_mooncake() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(c.code()), c);
        }
        assert_eq!(ErrorCode::ObjectNotFound.code(), -704);
        assert_eq!(ErrorCode::NoAvailableHandle.code(), -200);
        assert_eq!(ErrorCode::InvalidParams.code(), -600);
        assert_eq!(ErrorCode::ChecksumMismatch.code(), -801);
        assert_eq!(ErrorCode::RpcTimeout.code(), -901);
        assert_eq!(ErrorCode::from_code(-12345), ErrorCode::InternalError);
    }
}
