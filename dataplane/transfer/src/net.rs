//! Blocking connection set-up shared by every client of a mooncake-rs port: TCP connect with
//! a deadline and TCP_NODELAY, the handshake of `mc_schema::handshake`, and the socket
//! buffer sizes of data connections.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::RawFd;
use std::time::Duration;

use mc_schema::SchemaError;
use mc_schema::handshake::{HELLO_ACK_BYTES, Hello, Role, check_ack};

/// Socket buffer size asked for on data connections (the kernel caps it at
/// `net.core.{w,r}mem_max`, 4 MiB by default).
const SOCKET_BUFFER_BYTES: libc::c_int = 4 << 20;

/// Opens a TCP connection with a connect timeout and TCP_NODELAY, trying every address.
pub fn connect_tcp(addr: &str, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "address resolved to nothing");
    for sa in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&sa, timeout) {
            Ok(s) => {
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Sends our Hello and checks the answer, within `timeout`.
pub fn handshake(
    stream: &mut TcpStream,
    role: Role,
    cluster_id: &str,
    timeout: Duration,
) -> Result<(), SchemaError> {
    let hello = Hello::new(role, cluster_id)?;
    let io_err = |e: io::Error| SchemaError::Invalid(format!("handshake I/O: {e}"));
    stream.set_write_timeout(Some(timeout)).map_err(io_err)?;
    stream.set_read_timeout(Some(timeout)).map_err(io_err)?;
    stream.write_all(&hello.encode()).map_err(io_err)?;
    let mut ack = [0u8; HELLO_ACK_BYTES];
    stream.read_exact(&mut ack).map_err(io_err)?;
    check_ack(&ack)
}

/// Large fixed socket buffers on both ends of a data connection: a whole slice then usually
/// leaves in one `send`, and a receiver rarely has to wait for readability mid-slice. On the
/// shard each such wait is a trip through the reactor.
pub fn set_socket_buffers(fd: RawFd) {
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
