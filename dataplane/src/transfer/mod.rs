//! The transfer protocol of the data port: shard side and client side.

pub mod client;
pub mod server;

use std::os::fd::RawFd;

/// Socket buffer size asked for on data connections (the kernel caps it at
/// `net.core.{w,r}mem_max`, 4 MiB by default).
const SOCKET_BUFFER_BYTES: libc::c_int = 4 << 20;

/// Large fixed socket buffers on both ends of a data connection: a whole slice then usually
/// leaves in one `send`, and a receiver rarely has to wait for readability mid-slice. On the
/// shard each such wait is a trip through the reactor.
pub(crate) fn set_socket_buffers(fd: RawFd) {
    for opt in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        let value = SOCKET_BUFFER_BYTES;
        // SAFETY: `fd` is an open socket owned by the caller; the kernel reads the c_int
        // during the call only. A failure leaves the default size, which is harmless.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            tracing::debug!(
                "setsockopt({opt}) failed: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}
