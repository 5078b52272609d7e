//! Handing memory descriptors from one process to another, so a restarted process maps the
//! very bytes its predecessor served: `SCM_RIGHTS` over a `SOCK_SEQPACKET` Unix socket pair
//! (one message = one payload and its descriptors, never split or merged), descriptors a
//! child inherits, a child that dies with its parent (`PR_SET_PDEATHSIG`), and SIGTERM for
//! a child asked to stop.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Most descriptors one message carries.
pub const MAX_FDS: usize = 8;
/// Largest payload one message carries.
pub const MAX_PAYLOAD: usize = 64 << 10;

/// A connected pair of `SOCK_SEQPACKET` Unix sockets, both close-on-exec.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [RawFd; 2] = [-1, -1];
    // SAFETY: `fds` is a writable array of two descriptors, as socketpair(2) wants.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socketpair succeeded, so both are fresh descriptors nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Room for the control message of [`MAX_FDS`] descriptors, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct CmsgBuf([u8; 128]);

/// Sends `payload` with `fds` as one message. Blocks while the socket buffer is full.
pub fn send_fds(sock: BorrowedFd<'_>, payload: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if fds.len() > MAX_FDS || payload.len() > MAX_PAYLOAD || payload.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a handover message carries 1..={MAX_PAYLOAD} bytes and at most {MAX_FDS} descriptors"
            ),
        ));
    }
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    let mut cbuf = CmsgBuf([0; 128]);
    let fd_bytes = std::mem::size_of_val(raw.as_slice());
    // SAFETY: zeroed msghdr is a valid "no name, no control" header; fields set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !raw.is_empty() {
        msg.msg_control = cbuf.0.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE only computes a size.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
        // SAFETY: msg_control points at `cbuf` (128 bytes, 8-aligned), larger than
        // CMSG_SPACE of MAX_FDS descriptors, so the first header and its data fit.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as usize;
            std::ptr::copy_nonoverlapping(
                raw.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(cmsg),
                fd_bytes,
            );
        }
    }
    loop {
        // SAFETY: `msg` points at live buffers (payload, cbuf) for the call's duration.
        let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Receives one message: its payload and the descriptors it carried (close-on-exec).
/// `Ok(None)` when the peer closed its end.
pub fn recv_fds(sock: BorrowedFd<'_>) -> io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    let mut payload = vec![0u8; MAX_PAYLOAD];
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: payload.len(),
    };
    let mut cbuf = CmsgBuf([0; 128]);
    // SAFETY: as in send_fds.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    msg.msg_controllen = cbuf.0.len();
    let n = loop {
        // SAFETY: `msg` points at live, writable buffers of the sizes it states.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    };
    let fds = take_fds(&msg);
    if n == 0 && fds.is_empty() {
        return Ok(None);
    }
    if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a handover message was larger than its limits (truncated)",
        ));
    }
    payload.truncate(n);
    Ok(Some((payload, fds)))
}

/// The descriptors of every `SCM_RIGHTS` header of a received message, owned.
fn take_fds(msg: &libc::msghdr) -> Vec<OwnedFd> {
    let mut out = Vec::new();
    // SAFETY: `msg` was filled by recvmsg: its control buffer holds msg_controllen valid
    // bytes of headers, which the CMSG_* macros walk without leaving it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    let fd = data.cast::<RawFd>().add(i).read_unaligned();
                    // The kernel installed this descriptor for us: we own it.
                    out.push(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    out
}

/// Asks the kernel to send this process SIGKILL when its parent thread ends, then checks
/// the parent is still `expected_parent` (it may have died before the call).
pub fn die_with_parent(expected_parent: u32) -> io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG, sig) takes a signal number and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if std::os::unix::process::parent_id() != expected_parent {
        return Err(io::Error::other(format!(
            "the parent process {expected_parent} is gone"
        )));
    }
    Ok(())
}

/// Clears close-on-exec on `fd`, so a child started next inherits it.
pub fn inherit(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD on a live descriptor change only its flags.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFD);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sets close-on-exec on `fd` again (after a child that needed it was started).
pub fn keep_private(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: as in inherit.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFD);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, flags | libc::FD_CLOEXEC) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sends SIGTERM to process `pid` (a child asked to stop in order).
pub fn terminate(pid: u32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: kill(2) takes a pid and a signal number and touches no memory.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Takes ownership of descriptor number `raw`, inherited from the parent, after checking it
/// is open; sets close-on-exec on it again.
pub fn adopt(raw: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only tests that the number names an open descriptor.
    if raw < 0 || unsafe { libc::fcntl(raw, libc::F_GETFD) } < 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("inherited descriptor {raw} is not open"),
        ));
    }
    // SAFETY: the descriptor is open and was handed to this process for it alone (the
    // parent says so through its number); nothing else in this process owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: as in inherit.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFD);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, flags | libc::FD_CLOEXEC);
    }
    Ok(fd)
}

/// A `sockaddr_un` for the abstract name `name` (no leading NUL in `name`) and its length.
fn abstract_addr(name: &str) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: an all-zero sockaddr_un is valid (family and path set below).
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() + 1 > addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("abstract socket name `{name}` must be 1..=107 bytes"),
        ));
    }
    for (dst, &b) in addr.sun_path[1..].iter_mut().zip(bytes) {
        *dst = b as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + 1 + bytes.len();
    Ok((addr, len as libc::socklen_t))
}

/// A new close-on-exec `SOCK_SEQPACKET` Unix socket.
fn seqpacket_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes plain integers and touches no memory.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socket just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A `SOCK_SEQPACKET` socket listening on the abstract Unix name `name` (per network
/// namespace: only processes of this host can connect).
pub fn seqpacket_listen(name: &str, backlog: i32) -> io::Result<OwnedFd> {
    let (addr, len) = abstract_addr(name)?;
    let sock = seqpacket_socket()?;
    // SAFETY: `addr` is a valid sockaddr_un of `len` bytes, alive for the call.
    let rc = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        )
    };
    // SAFETY: listen(2) takes a descriptor and an integer.
    if rc != 0 || unsafe { libc::listen(sock.as_raw_fd(), backlog) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sock)
}

/// Connects a `SOCK_SEQPACKET` socket to the abstract Unix name `name`.
pub fn seqpacket_connect(name: &str) -> io::Result<OwnedFd> {
    let (addr, len) = abstract_addr(name)?;
    let sock = seqpacket_socket()?;
    // SAFETY: as in seqpacket_listen.
    let rc = unsafe {
        libc::connect(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sock)
}

/// Accepts one connection on `listener` (blocking); the new socket is close-on-exec.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    loop {
        // SAFETY: NULL address pointers ask accept4(2) not to report the peer's address.
        let fd = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        };
        if fd >= 0 {
            // SAFETY: accept4 just returned this descriptor; nothing else owns it.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Whether the peer of connected socket `sock` has closed its end (or the socket failed),
/// without blocking and without taking any pending message.
pub fn peer_gone(sock: BorrowedFd<'_>) -> bool {
    let mut byte = 0u8;
    // SAFETY: `byte` is a writable 1-byte buffer for the call's duration.
    let n = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n >= 0 {
        // 0 = orderly close; a pending message means the peer is alive.
        return n == 0;
    }
    let err = io::Error::last_os_error();
    !matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Waits up to `timeout` for `sock` to become readable (a message, a connection to accept,
/// or the peer's close); false when the time passed first.
pub fn wait_readable(sock: BorrowedFd<'_>, timeout: std::time::Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: `pfd` is one valid pollfd for the call's duration.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    match n {
        0 => Ok(false),
        n if n > 0 => Ok(true),
        _ => {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(err)
            }
        }
    }
}

/// The user id of the process at the other end of Unix socket `sock` (`SO_PEERCRED`).
pub fn peer_uid(sock: BorrowedFd<'_>) -> io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are writable and sized for SO_PEERCRED's answer.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// This process's effective user id.
pub fn own_uid() -> u32 {
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn descriptors_and_payload_cross_and_close_is_seen() {
        let (a, b) = seqpacket_pair().unwrap();
        let file = crate::MemFile::create("handover-test", 4096).unwrap();
        let mut file2 = crate::MemFile::create("handover-test-2", 4096).unwrap();
        file2.write(10, b"kept");
        send_fds(a.as_fd(), b"first", &[file.fd(), file2.fd()]).unwrap();
        send_fds(a.as_fd(), b"second", &[]).unwrap();
        let (p, fds) = recv_fds(b.as_fd()).unwrap().unwrap();
        assert_eq!(p, b"first");
        assert_eq!(fds.len(), 2);
        let again = crate::MemFile::from_fd("again", fds.into_iter().nth(1).unwrap()).unwrap();
        let mut out = [0u8; 4];
        again.read(10, &mut out);
        assert_eq!(&out, b"kept");
        let (p, fds) = recv_fds(b.as_fd()).unwrap().unwrap();
        assert_eq!((p.as_slice(), fds.len()), (b"second".as_slice(), 0));
        drop(a);
        assert!(recv_fds(b.as_fd()).unwrap().is_none());
    }

    #[test]
    fn oversized_messages_and_closed_numbers_are_refused() {
        let (a, _b) = seqpacket_pair().unwrap();
        assert!(send_fds(a.as_fd(), &vec![1u8; MAX_PAYLOAD + 1], &[]).is_err());
        assert!(send_fds(a.as_fd(), b"", &[]).is_err());
        assert!(adopt(-1).is_err());
        assert!(adopt(1_000_000).is_err());
    }
}
