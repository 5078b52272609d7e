//! One dummy's connection: hello, its pool, then requests in order until it hangs up.

use std::io::{Read, Write};
use std::os::fd::AsFd;

use mc_schema::dummy::{DUMMY_MAGIC, DUMMY_VERSION, Reply, Request};
use mooncake_rs::{ErrorCode, Store};

use super::exec;
use super::mapped::MappedPool;
use crate::io::{read_frame, write_frame};

const INVALID: i32 = ErrorCode::InvalidParams.code();

/// Serves one connection until the peer closes it or breaks the protocol. `unix`: whether
/// descriptors can ride on it (a pool can be registered).
pub(crate) fn serve<S: Read + Write + AsFd>(mut s: S, store: &Store, hostname: &str, unix: bool) {
    let mut pool: Option<MappedPool> = None;
    let mut greeted = false;
    loop {
        let body = match read_frame(&mut s) {
            Ok(Some(b)) => b,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!("dummy connection: {e}");
                return;
            }
        };
        let req = match Request::decode(&body) {
            Ok(r) => r,
            Err(e) => {
                let _ = write_frame(&mut s, &refused(e.to_string()).encode());
                return;
            }
        };
        let reply = match req {
            Request::Hello { magic, version } => {
                greeted = magic == DUMMY_MAGIC && version == DUMMY_VERSION;
                if greeted {
                    Reply::Hello {
                        hostname: hostname.to_string(),
                    }
                } else {
                    refused(format!(
                        "hello {magic:#x} v{version}: this real client speaks v{DUMMY_VERSION}"
                    ))
                }
            }
            _ if !greeted => refused("the first request must be Hello".into()),
            Request::RegisterPool { size } if unix => match receive_pool(&s, size) {
                Ok(p) => {
                    tracing::info!("a dummy registered a pool of {} bytes", p.len_bytes());
                    pool = Some(p);
                    Reply::Code(0)
                }
                Err(reason) => refused(reason),
            },
            Request::RegisterPool { .. } => {
                refused("a pool can only be registered over the Unix socket".into())
            }
            other => exec::run(store, pool.as_mut(), other),
        };
        let stop = matches!(reply, Reply::Refused { .. }) && !greeted;
        if write_frame(&mut s, &reply.encode()).is_err() || stop {
            return;
        }
    }
}

fn refused(reason: String) -> Reply {
    Reply::Refused {
        code: INVALID,
        reason,
    }
}

/// The pool's memfd, which rides on the one byte after the RegisterPool frame.
fn receive_pool(s: &impl AsFd, size: u64) -> Result<MappedPool, String> {
    let got = mc_hugepages::handover::recv_fds(s.as_fd()).map_err(|e| e.to_string())?;
    let Some((payload, mut fds)) = got else {
        return Err("the dummy hung up before sending its pool".into());
    };
    if payload.len() != 1 || fds.len() != 1 {
        return Err(format!(
            "expected one byte carrying one descriptor, got {} bytes and {} descriptors",
            payload.len(),
            fds.len()
        ));
    }
    MappedPool::map(fds.remove(0), size)
}
