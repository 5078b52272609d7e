//! The client's error: a Mooncake error code plus a message saying what happened.

use std::fmt;

pub use mc_schema::ErrorCode;

/// An error with Mooncake's numeric code (`code().code()` is the number users know).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    code: ErrorCode,
    message: String,
}

/// Result of a client call.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
        }
    }

    /// The Mooncake error code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn from_status(status: i32, what: &str) -> Error {
        let code = ErrorCode::from_code(status);
        Error::new(code, format!("{what}: {code}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code.name(),
            self.code.code(),
            self.message
        )
    }
}

impl std::error::Error for Error {}

impl From<mc_rpc::RpcError> for Error {
    fn from(e: mc_rpc::RpcError) -> Error {
        Error::new(e.code(), e.to_string())
    }
}

impl From<mc_transfer::TransferError> for Error {
    fn from(e: mc_transfer::TransferError) -> Error {
        Error::new(e.code(), e.to_string())
    }
}
