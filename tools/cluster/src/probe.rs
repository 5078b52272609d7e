//! Readiness probes: a minimal blocking HTTP/1.0 client and parsing of `/health` bodies.
//!
//! Hand-rolled on `std::net::TcpStream` because a probe needs one GET and a status code; an
//! HTTP crate would pull an async runtime into every test binary that starts a cluster.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::Error;

/// Largest response a probe reads; `/health` bodies are a few hundred bytes.
const MAX_RESPONSE_BYTES: u64 = 1024 * 1024;

/// Connect, read and write timeout of one probe, so a stopped (SIGSTOP) child cannot hang it.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Status code and body of an HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code, e.g. `200`.
    pub status: u16,
    /// The body, de-chunked and lossily decoded as UTF-8.
    pub body: String,
}

/// Sends `GET path HTTP/1.0` to `addr` (`host:port`) and reads the whole response.
///
/// `timeout` bounds the connect and each read and write.
///
/// # Errors
/// Any I/O error, or `InvalidData` (with the [`Error`] as its source) when the reply is not
/// an HTTP response.
pub fn http_get(addr: &str, path: &str, timeout: Duration) -> std::io::Result<HttpResponse> {
    http_request(addr, "GET", path, None, timeout)
}

/// Sends `method path HTTP/1.0` to `addr` (`host:port`) with `body` (JSON) if given, and
/// reads the whole response; see [`http_get`].
///
/// # Errors
/// As for [`http_get`].
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> std::io::Result<HttpResponse> {
    let socket_addr = addr.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{addr} resolved to no address"),
        )
    })?;
    let mut stream = TcpStream::connect_timeout(&socket_addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        request.push_str("\r\n");
    }
    stream.write_all(request.as_bytes())?;
    let mut bytes = Vec::new();
    stream.take(MAX_RESPONSE_BYTES).read_to_end(&mut bytes)?;
    parse_http_response(&bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Parses a complete HTTP/1.x response: status line, headers, then a body that is
/// close-delimited, `Content-Length`-delimited or chunked.
///
/// # Errors
/// One of the `Error::Http*` variants, saying what is malformed.
pub fn parse_http_response(bytes: &[u8]) -> Result<HttpResponse, Error> {
    let (head_len, separator_len) = match find(bytes, b"\r\n\r\n") {
        Some(at) => (at, 4),
        None => match find(bytes, b"\n\n") {
            Some(at) => (at, 2),
            None => return Err(Error::HttpNoHeaderEnd { len: bytes.len() }),
        },
    };
    let head = String::from_utf8_lossy(&bytes[..head_len]);
    let mut raw_body = &bytes[head_len + separator_len..];

    let mut head_lines = head.lines();
    let status_line = head_lines.next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let bad_status_line = || Error::HttpStatusLine {
        line: status_line.to_string(),
    };
    let status = match (parts.next(), parts.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/") => {
            code.parse::<u16>().map_err(|_| bad_status_line())?
        }
        _ => return Err(bad_status_line()),
    };

    let mut chunked = false;
    let mut content_length = None;
    for line in head_lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse::<usize>().ok();
        }
    }

    let body = if chunked {
        decode_chunked(raw_body)?
    } else {
        if let Some(len) = content_length {
            raw_body = &raw_body[..len.min(raw_body.len())];
        }
        raw_body.to_vec()
    };
    Ok(HttpResponse {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Decodes a `Transfer-Encoding: chunked` body.
fn decode_chunked(mut rest: &[u8]) -> Result<Vec<u8>, Error> {
    let mut body = Vec::new();
    loop {
        let line_end = find(rest, b"\r\n").ok_or(Error::HttpChunkLine)?;
        let size_line = String::from_utf8_lossy(&rest[..line_end]);
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| Error::HttpChunkSize {
            size: size_hex.to_string(),
        })?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size {
            return Err(Error::HttpChunkTruncated {
                size,
                got: rest.len(),
            });
        }
        body.extend_from_slice(&rest[..size]);
        rest = rest[size..].strip_prefix(b"\r\n").unwrap_or(&rest[size..]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The non-negative integer value of the first `"field": N` in a JSON text.
///
/// A deliberately small scan rather than a JSON parser: the health bodies are flat objects
/// and this crate must not depend on serde. Occurrences of `"field"` not followed by `:`
/// (a string value that happens to equal the name) are skipped.
pub fn json_u64_field(json: &str, field: &str) -> Option<u64> {
    let key = format!("\"{field}\"");
    let mut search_from = 0;
    while let Some(found) = json[search_from..].find(&key) {
        let after_key = search_from + found + key.len();
        search_from = after_key;
        let Some(value) = json[after_key..].trim_start().strip_prefix(':') else {
            continue;
        };
        let value = value.trim_start();
        let digits_len = value
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(value.len());
        return value[..digits_len].parse().ok();
    }
    None
}

/// What a store node's `GET /health` reports about its segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeHealth {
    /// Segments mounted at the master so far (`"mounted_segments"`).
    pub mounted_segments: u64,
    /// Shards the node runs, one start-up segment each (`"shards"`).
    pub shards: u64,
    /// Segments the node serves, those mounted at run time (`/api/mount`) included
    /// (`"segments"`); nodes that do not report it serve one per shard.
    pub segments: u64,
}

impl NodeHealth {
    /// Reads the counters from a health body; `None` when `mounted_segments` or `shards` is
    /// missing.
    pub fn parse(body: &str) -> Option<NodeHealth> {
        let shards = json_u64_field(body, "shards")?;
        Some(NodeHealth {
            mounted_segments: json_u64_field(body, "mounted_segments")?,
            shards,
            segments: json_u64_field(body, "segments").unwrap_or(shards),
        })
    }

    /// True when every segment the node serves is mounted and there is at least one shard.
    pub fn is_ready(&self) -> bool {
        self.shards > 0 && self.mounted_segments == self.segments
    }
}

/// One probe of the master: `Ok` when `GET /health` on its metrics address returns 200,
/// otherwise what was seen instead.
pub(crate) fn check_master(metrics_addr: &str) -> Result<(), Error> {
    let url = format!("http://{metrics_addr}/health");
    let response =
        http_get(metrics_addr, "/health", PROBE_TIMEOUT).map_err(|source| Error::Probe {
            url: url.clone(),
            source,
        })?;
    if response.status == 200 {
        Ok(())
    } else {
        Err(Error::ProbeStatus {
            url,
            status: response.status,
        })
    }
}

/// One probe of a store node: `Ok` when `GET /health` on its REST address returns 200 with
/// every shard's segment mounted, otherwise what was seen instead.
pub(crate) fn check_node(rest_addr: &str) -> Result<NodeHealth, Error> {
    let url = format!("http://{rest_addr}/health");
    let response =
        http_get(rest_addr, "/health", PROBE_TIMEOUT).map_err(|source| Error::Probe {
            url: url.clone(),
            source,
        })?;
    if response.status != 200 {
        return Err(Error::ProbeStatus {
            url,
            status: response.status,
        });
    }
    let Some(health) = NodeHealth::parse(&response.body) else {
        return Err(Error::ProbeNoCounters {
            url,
            body: response.body.chars().take(200).collect(),
        });
    };
    if health.is_ready() {
        Ok(health)
    } else {
        Err(Error::ProbeNotMounted {
            url,
            mounted: health.mounted_segments,
            segments: health.segments,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn parses_close_delimited_response() {
        let response = parse_http_response(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":1}",
        )
        .unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, "{\"a\":1}");
    }

    #[test]
    fn honours_content_length_and_chunked() {
        let response = parse_http_response(
            b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 2\r\n\r\nokXX",
        )
        .unwrap();
        assert_eq!((response.status, response.body.as_str()), (503, "ok"));

        let response = parse_http_response(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"mo\r\n6;ext=1\r\nunted\"\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(response.body, "{\"mounted\"");
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_http_response(b"").is_err());
        assert!(parse_http_response(b"hello\r\n\r\n").is_err());
        assert!(parse_http_response(b"HTTP/1.1 abc OK\r\n\r\n").is_err());
        assert!(parse_http_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(
            parse_http_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
                .is_err()
        );
        assert!(
            parse_http_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc")
                .is_err()
        );
    }

    #[test]
    fn json_fields_are_found_with_or_without_spaces() {
        let body = r#"{"status":"ok","mounted_segments":3, "shards" : 4,"x":"shards"}"#;
        assert_eq!(json_u64_field(body, "mounted_segments"), Some(3));
        assert_eq!(json_u64_field(body, "shards"), Some(4));
        assert_eq!(json_u64_field(body, "missing"), None);
        assert_eq!(
            json_u64_field(r#"{"v":"shards","shards":7}"#, "shards"),
            Some(7)
        );
        assert_eq!(json_u64_field(r#"{"shards":-1}"#, "shards"), None);
        assert_eq!(json_u64_field(r#"{"shards":"2"}"#, "shards"), None);
    }

    #[test]
    fn node_health_readiness() {
        let ready = NodeHealth::parse(r#"{"mounted_segments":2,"shards":2}"#).unwrap();
        assert!(ready.is_ready());
        let partial = NodeHealth::parse(r#"{"mounted_segments":1,"shards":2}"#).unwrap();
        assert!(!partial.is_ready());
        let empty = NodeHealth::parse(r#"{"mounted_segments":0,"shards":0}"#).unwrap();
        assert!(!empty.is_ready());
        assert_eq!(NodeHealth::parse(r#"{"shards":2}"#), None);
        let grown = NodeHealth::parse(r#"{"mounted_segments":3,"shards":2,"segments":3}"#).unwrap();
        assert!(grown.is_ready());
        let remounting =
            NodeHealth::parse(r#"{"mounted_segments":2,"shards":2,"segments":3}"#).unwrap();
        assert!(!remounting.is_ready());
    }

    /// Serves `reply` to one connection on a fresh loopback port and returns the address.
    fn serve_once(reply: &'static [u8]) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while find(&request, b"\r\n\r\n").is_none() {
                let n = stream.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            stream.write_all(reply).unwrap();
            String::from_utf8(request).unwrap()
        });
        (addr, handle)
    }

    #[test]
    fn http_get_talks_http_1_0_over_a_real_socket() {
        let (addr, server) =
            serve_once(b"HTTP/1.1 200 OK\r\n\r\n{\"mounted_segments\":1,\"shards\":1}");
        let health = check_node(&addr).unwrap();
        assert_eq!(health.shards, 1);
        let request = server.join().unwrap();
        assert!(request.starts_with("GET /health HTTP/1.0\r\n"), "{request}");
        assert!(request.contains(&format!("Host: {addr}\r\n")), "{request}");
    }

    #[test]
    fn probes_report_why_they_failed() {
        let (addr, server) =
            serve_once(b"HTTP/1.1 200 OK\r\n\r\n{\"mounted_segments\":1,\"shards\":2}");
        let reason = check_node(&addr).unwrap_err().to_string();
        assert!(reason.contains("1 of 2 segments mounted"), "{reason}");
        server.join().unwrap();

        let (addr, server) = serve_once(b"HTTP/1.1 503 Service Unavailable\r\n\r\n");
        let reason = check_master(&addr).unwrap_err().to_string();
        assert!(reason.contains("HTTP 503"), "{reason}");
        server.join().unwrap();

        let (addr, server) = serve_once(b"HTTP/1.1 200 OK\r\n\r\n{}");
        let reason = check_node(&addr).unwrap_err().to_string();
        assert!(reason.contains("mounted_segments"), "{reason}");
        server.join().unwrap();

        // Nothing listens on a port that was just released (modulo the documented race,
        // which would at worst make this probe fail differently, never succeed with 200).
        let port = crate::pick_free_port("127.0.0.1").unwrap();
        assert!(check_master(&format!("127.0.0.1:{port}")).is_err());
    }
}
