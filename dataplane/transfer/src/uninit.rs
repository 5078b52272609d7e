//! Reading from a socket into memory that was never initialised.
//!
//! A get that returns fresh memory would otherwise zero every byte before the payload
//! overwrites it: for a batch of large values that is a memset (and, from a heap, page faults)
//! as long as the transfer itself. Here the kernel writes straight into the uninitialised
//! bytes through `recv(2)`, so a byte is only ever read once it has been received.

use std::io;
use std::mem::MaybeUninit;
use std::net::TcpStream;
use std::os::fd::AsRawFd;

/// Views initialised bytes as possibly-uninitialised ones, so one read path serves both.
pub fn as_uninit_mut(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`. Every writer of the returned slice in
    // this crate and its users stores received (initialised) bytes only, so `buf` never
    // holds an uninitialised byte after the borrow ends.
    unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) }
}

/// Receives exactly `buf.len()` bytes into `buf`, calling `seen` with each run of bytes as
/// it arrives (now initialised). Honours the socket's receive timeout (`WouldBlock`).
pub fn recv_exact(
    stream: &TcpStream,
    buf: &mut [MaybeUninit<u8>],
    mut seen: impl FnMut(&[u8]),
) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    let mut at = 0;
    while at < buf.len() {
        let rest = &mut buf[at..];
        // SAFETY: `fd` is the open socket `stream` owns; the kernel writes at most
        // `rest.len()` bytes into `rest`, which is valid for writes for that length.
        let n = unsafe { libc::recv(fd, rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed in the middle of a payload",
            ));
        }
        let n = n as usize;
        // SAFETY: `recv` returned `n`, so the kernel initialised the first `n` bytes of `rest`.
        seen(unsafe { std::slice::from_raw_parts(rest.as_ptr().cast::<u8>(), n) });
        at += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;
    use std::time::Duration;

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    #[test]
    fn receives_every_byte_in_order_across_many_sends() {
        let (mut tx, rx) = pair();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let sent = data.clone();
        let t = std::thread::spawn(move || {
            for c in sent.chunks(4093) {
                tx.write_all(c).unwrap();
            }
        });
        let mut v: Vec<u8> = Vec::with_capacity(data.len());
        let mut runs = Vec::new();
        recv_exact(&rx, &mut v.spare_capacity_mut()[..data.len()], |r| {
            runs.extend_from_slice(r)
        })
        .unwrap();
        // SAFETY: recv_exact returned Ok, so all data.len() bytes were received.
        unsafe { v.set_len(data.len()) };
        t.join().unwrap();
        assert_eq!(v, data);
        assert_eq!(runs, data, "the callback sees each byte once, in order");
    }

    #[test]
    fn a_peer_that_closes_early_is_an_eof_and_a_silent_one_a_timeout() {
        let (mut tx, rx) = pair();
        tx.write_all(b"abc").unwrap();
        drop(tx);
        let mut buf = [0u8; 8];
        let e = recv_exact(&rx, as_uninit_mut(&mut buf), |_| {}).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(&buf[..3], b"abc");

        let (_tx, rx) = pair();
        rx.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let e = recv_exact(&rx, as_uninit_mut(&mut buf), |_| {}).unwrap_err();
        assert!(matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ));
    }
}
