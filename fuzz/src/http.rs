//! HTTP queries and JSON bodies: fuzzed requests against a live master's admin port and a
//! live node's REST port (started with `mc-cluster`). A request must get an HTTP answer
//! that is not a 5xx server error, and both processes must still answer `/health`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::engine::Rng;

/// Paths both servers have, plus nonsense.
const PATHS: [&str; 16] = [
    "/health",
    "/query_key",
    "/batch_query_keys",
    "/get_all_keys",
    "/query_segment",
    "/get_segments_detail",
    "/api/v1/remove_all",
    "/api/mount",
    "/api/unmount",
    "/api/mount_shm",
    "/api/put",
    "/api/get/",
    "/api/exist/",
    "/api/remove/",
    "/metrics",
    "/%ff/../..",
];

/// Builds one request from `b`: method, path, query string and body all come from it.
pub fn request_from(b: &[u8], rng: &mut Rng) -> Vec<u8> {
    let method = ["GET", "POST", "PUT", "DELETE", "PATCH"][rng.below(5)];
    let mut path = PATHS[rng.below(PATHS.len())].to_string();
    let split = rng.below(b.len() + 1);
    let (query, body) = b.split_at(split);
    if path.ends_with('/') {
        path.push_str(&escape(&query[..query.len().min(16)]));
    }
    let query = escape(query);
    let mut out = format!(
        "{method} {path}?{query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Percent-escapes what cannot go in a request line, keeps the rest (so `=`, `&`, `%`
/// and friends reach the query parser).
fn escape(b: &[u8]) -> String {
    b.iter()
        .map(|&c| match c {
            b'!'..=b'~' if c != b'#' => (c as char).to_string(),
            _ => format!("%{c:02X}"),
        })
        .collect()
}

/// Sends one request; the status code of the answer, `None` if there was none.
pub fn send(addr: &str, req: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(req).ok()?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let line = std::str::from_utf8(out.get(..12)?).ok()?;
    line.get(9..12)?.parse().ok()
}
