//! Runs one dummy request against the real client's store.

use mc_schema::dummy::{Dst, Got, MAX_DUMMY_FRAME_BYTES, Reply, Request, Src};
use mc_schema::msg::ReplicateConfig;
use mooncake_rs::{ErrorCode, Store};

use super::mapped::MappedPool;

const INVALID: i32 = ErrorCode::InvalidParams.code();

/// The reply to `req` (anything but Hello and RegisterPool, which the connection handles).
pub(crate) fn run(store: &Store, pool: Option<&mut MappedPool>, req: Request) -> Reply {
    match req {
        Request::Put {
            upsert,
            config,
            items,
        } => Reply::Codes(put(store, pool.as_deref(), upsert, &config, &items)),
        Request::Get { items } => Reply::Got(get(store, pool, &items)),
        Request::Exists { keys } => {
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            Reply::Codes(
                store
                    .batch_exists(&refs)
                    .into_iter()
                    .map(|r| r.map_or_else(|e| e.code().code(), i32::from))
                    .collect(),
            )
        }
        Request::Size { key } => Reply::Value(count(store.get_size(&key))),
        Request::Remove { keys, force } => {
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            Reply::Codes(
                store
                    .remove_batch(&refs, force)
                    .into_iter()
                    .map(|r| r.map_or_else(|e| e.code().code(), |()| 0))
                    .collect(),
            )
        }
        Request::RemoveRegex { pattern, force } => {
            Reply::Value(count(store.remove_by_regex(&pattern, force)))
        }
        Request::RemoveAll { force } => Reply::Value(count(store.remove_all(force))),
        Request::Ping => Reply::Code(if store.ping().is_ok() { 0 } else { 2 }),
        Request::Hello { .. } | Request::RegisterPool { .. } => Reply::Refused {
            code: INVALID,
            reason: "handled by the connection".into(),
        },
    }
}

fn count(r: mooncake_rs::Result<u64>) -> i64 {
    r.map_or_else(|e| e.code().code().into(), |n| n as i64)
}

/// One code per item; an existing key counts as written (its value is kept), as
/// Mooncake's `put`.
fn put(
    store: &Store,
    pool: Option<&MappedPool>,
    upsert: bool,
    config: &ReplicateConfig,
    items: &[(String, Src)],
) -> Vec<i32> {
    let mut codes = vec![0; items.len()];
    let mut batch: Vec<(&str, &[u8])> = Vec::with_capacity(items.len());
    let mut at = Vec::with_capacity(items.len());
    for (i, (key, src)) in items.iter().enumerate() {
        let bytes = match src {
            Src::Inline(b) => Some(b.as_slice()),
            Src::Pool { offset, len } => pool.and_then(|p| p.src(*offset, *len)),
        };
        match bytes {
            Some(b) => {
                batch.push((key.as_str(), b));
                at.push(i);
            }
            None => {
                tracing::warn!("put {key}: the buffer is not inside the registered pool");
                codes[i] = INVALID;
            }
        }
    }
    if batch.is_empty() {
        return codes;
    }
    let res = if upsert {
        store.upsert_batch(&batch, config)
    } else {
        store.put_batch(&batch, config)
    };
    for (i, r) in at.into_iter().zip(res) {
        codes[i] = match r {
            Ok(()) => 0,
            Err(e) if e.code() == ErrorCode::ObjectAlreadyExists => 0,
            Err(e) => e.code().code(),
        };
    }
    codes
}

fn failed(code: i32) -> Got {
    Got {
        size_or_code: code.into(),
        data: Vec::new(),
    }
}

/// One outcome per item: pool destinations are filled in place, inline ones come back in
/// the reply (within the frame limit).
fn get(store: &Store, pool: Option<&mut MappedPool>, items: &[(String, Dst)]) -> Vec<Got> {
    let mut out: Vec<Got> = items.iter().map(|_| failed(INVALID)).collect();
    let (mut in_pool, mut inline) = (Vec::new(), Vec::new());
    for (i, (key, dst)) in items.iter().enumerate() {
        match *dst {
            Dst::Pool { offset, len } => in_pool.push((i, key.as_str(), (offset, len))),
            Dst::Inline { cap } => inline.push((i, key.as_str(), cap)),
        }
    }
    if !in_pool.is_empty() {
        get_into_pool(store, pool, &in_pool, &mut out);
    }
    if !inline.is_empty() {
        let keys: Vec<&str> = inline.iter().map(|&(_, k, _)| k).collect();
        // Room left in the reply frame, with a margin for the per-key fields.
        let mut room = MAX_DUMMY_FRAME_BYTES - 16 * items.len();
        for (&(i, _, cap), r) in inline.iter().zip(store.get_batch(&keys)) {
            out[i] = match r {
                Ok(v) if v.len() as u64 <= cap && v.len() <= room => {
                    room -= v.len();
                    Got {
                        size_or_code: v.len() as i64,
                        data: v,
                    }
                }
                Ok(_) => failed(INVALID),
                Err(e) => failed(e.code().code()),
            };
        }
    }
    out
}

fn get_into_pool(
    store: &Store,
    pool: Option<&mut MappedPool>,
    items: &[(usize, &str, (u64, u64))],
    out: &mut [Got],
) {
    let Some(pool) = pool else {
        tracing::warn!("get into the pool: this connection registered no pool");
        return;
    };
    let ranges: Vec<(u64, u64)> = items.iter().map(|&(_, _, r)| r).collect();
    let bufs = match pool.dsts(&ranges) {
        Ok(b) => b,
        Err(reason) => {
            tracing::warn!("get into the pool: {reason}");
            return;
        }
    };
    let mut batch: Vec<(&str, &mut [u8])> = items.iter().map(|&(_, k, _)| k).zip(bufs).collect();
    for (&(i, _, _), r) in items.iter().zip(store.get_into_batch(&mut batch)) {
        out[i] = match r {
            Ok(n) => Got {
                size_or_code: n as i64,
                data: Vec::new(),
            },
            Err(e) => failed(e.code().code()),
        };
    }
}
