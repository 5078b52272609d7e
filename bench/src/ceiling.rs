//! The same-run ceiling: a raw request/response between two processes over loopback TCP
//! with TCP_NODELAY, shaped like the case it bounds.
//!
//! put of N bytes: 16-byte header + N bytes, answered by a 16-byte ack.
//! get of N bytes: 16-byte request, answered by N bytes.
//! With batch B, B requests go out back to back before the B answers are read.
//!
//! The server is this binary started again as `mc-bench ceiling-server`, so the two ends
//! are separate processes as in the real case.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const HDR: usize = 16;
const OP_PUT: u8 = 1;
const OP_GET: u8 = 2;

/// The socket buffers mooncake-rs data connections use (4 MiB each way), so the ceiling is
/// not handicapped by smaller defaults at large sizes.
fn big_buffers(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let value: libc::c_int = 4 << 20;
    for opt in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // SAFETY: valid socket fd; the kernel reads the c_int during the call only.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// Runs the ceiling server: prints its port, serves connections until killed.
pub fn serve() -> Result<()> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    println!("{}", l.local_addr()?.port());
    std::io::stdout().flush()?;
    for s in l.incoming() {
        let s = s?;
        std::thread::spawn(move || {
            let _ = serve_conn(s);
        });
    }
    Ok(())
}

fn serve_conn(mut s: TcpStream) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    big_buffers(&s);
    let mut hdr = [0u8; HDR];
    let mut buf = Vec::new();
    loop {
        if s.read_exact(&mut hdr).is_err() {
            return Ok(());
        }
        let len = u64::from_le_bytes(hdr[8..16].try_into().expect("8 bytes")) as usize;
        if buf.len() < len {
            buf.resize(len, 0x5A);
        }
        match hdr[0] {
            OP_PUT => {
                s.read_exact(&mut buf[..len])?;
                s.write_all(&hdr)?;
            }
            _ => s.write_all(&buf[..len])?,
        }
    }
}

/// A running ceiling server process.
pub struct CeilingServer {
    child: Child,
    port: u16,
}

impl CeilingServer {
    /// Starts `mc-bench ceiling-server` and reads its port.
    pub fn start() -> Result<CeilingServer> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .arg("ceiling-server")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the ceiling server")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        let port = line.trim().parse().context("ceiling server port")?;
        Ok(CeilingServer { child, port })
    }

    /// Round trips per second (keys per second for batches) of the given shape, over at
    /// most `ops` keys or `max_time`, whichever ends first.
    pub fn measure(
        &self,
        put: bool,
        size: usize,
        batch: usize,
        ops: u64,
        max_time: Duration,
    ) -> Result<f64> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_nodelay(true)?;
        big_buffers(&s);
        let mut hdr = [0u8; HDR];
        hdr[0] = if put { OP_PUT } else { OP_GET };
        hdr[8..16].copy_from_slice(&(size as u64).to_le_bytes());
        // Header and payload in one buffer built once: one write per request, no copy.
        let mut msg = hdr.to_vec();
        if put {
            msg.resize(HDR + size, 0xA5);
        }
        let mut answer = vec![0u8; if put { HDR } else { size }];
        let mut done = 0u64;
        let start = Instant::now();
        while done < ops && start.elapsed() < max_time {
            for _ in 0..batch {
                s.write_all(&msg)?;
            }
            for _ in 0..batch {
                s.read_exact(&mut answer)?;
            }
            done += batch as u64;
        }
        let secs = start.elapsed().as_secs_f64();
        if done == 0 {
            bail!("ceiling measured nothing");
        }
        Ok(done as f64 / secs)
    }
}

impl Drop for CeilingServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
