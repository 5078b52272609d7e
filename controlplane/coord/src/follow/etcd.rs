//! Following the view on etcd through its JSON gRPC gateway (`/v3/kv/range`, `/v3/watch`).
//!
//! etcd 3.4 serves the gateway under `/v3/` (also `/v3beta/`); keys and values travel as
//! base64 and 64-bit integers as JSON strings. The watch is a chunked HTTP response with one
//! JSON message per line. A follower reads the key (learning the store revision R), then
//! watches from R + 1, so no change between the read and the watch is missed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use super::http::{self, Fill};
use super::{FollowerConfig, Shared};
use crate::{CoordError, Endpoint, MasterView, keys};

/// One follower's view of the etcd cluster.
pub(super) struct EtcdFollow {
    endpoints: Vec<Endpoint>,
    key: String,
    config: FollowerConfig,
}

/// What one watch line said.
#[derive(Debug, PartialEq)]
pub(crate) enum WatchLine {
    /// The watch was set up.
    Created,
    /// The key changed; the last event of the message wins (`None`: deleted).
    Changed(Option<MasterView>),
    /// A message with nothing for us (progress notice).
    Nothing,
}

impl EtcdFollow {
    pub(super) fn new(endpoints: Vec<Endpoint>, cluster_id: &str, config: FollowerConfig) -> Self {
        Self {
            endpoints,
            key: keys::etcd_view_key(cluster_id),
            config,
        }
    }

    /// The thread body: follow one endpoint until it fails, then the next; back off after a
    /// whole round failed.
    pub(super) fn run(&self, shared: &Shared) {
        let mut failures = super::Failures::default();
        let mut next = 0usize;
        while !shared.stopped() {
            let ep = &self.endpoints[next % self.endpoints.len()];
            match self.follow_endpoint(shared, ep, &mut failures) {
                Ok(()) => return,
                Err(err) => {
                    failures.failed(&format!("master view follower (etcd {ep})"), &err);
                    next += 1;
                    if next.is_multiple_of(self.endpoints.len())
                        && !shared.sleep(failures.backoff(self.config.max_backoff))
                    {
                        return;
                    }
                }
            }
        }
    }

    /// Reads the view, then watches it until stop (Ok) or a failure (Err).
    fn follow_endpoint(
        &self,
        shared: &Shared,
        ep: &Endpoint,
        failures: &mut super::Failures,
    ) -> Result<(), CoordError> {
        let (view, revision) = self.range(ep)?;
        shared.publish(view);
        let request = serde_json::json!({"create_request": {
            "key": B64.encode(&self.key),
            "start_revision": (revision + 1).to_string(),
        }});
        let watch = http::post(
            ep,
            "/v3/watch",
            &request.to_string(),
            self.config.connect_timeout,
            self.config.poll_slice,
            true,
        )?;
        let mut watch = check_status(ep, watch, self.config.connect_timeout)?;
        let mut created = false;
        let mut last_sync = std::time::Instant::now();
        loop {
            if shared.stopped() {
                return Ok(());
            }
            if watch.fill()? == Fill::End {
                return Err(bad(ep, "the watch stream ended"));
            }
            while let Some(line) = watch.next_line() {
                match parse_watch_line(ep, &line)? {
                    WatchLine::Created => {
                        created = true;
                        failures.recovered(&format!("master view follower (etcd {ep})"));
                    }
                    WatchLine::Changed(view) => shared.publish(view),
                    WatchLine::Nothing => {}
                }
            }
            if last_sync.elapsed() >= self.config.resync_interval {
                if !created {
                    return Err(bad(ep, "the watch was not created in time"));
                }
                // A watch can stall without the TCP connection failing (a partitioned or
                // paused member); a fresh read both checks liveness and repairs the view.
                shared.publish(self.range(ep)?.0);
                last_sync = std::time::Instant::now();
            }
        }
    }

    /// `POST /v3/kv/range` of the view key: the view and the store revision.
    fn range(&self, ep: &Endpoint) -> Result<(Option<MasterView>, i64), CoordError> {
        let request = serde_json::json!({"key": B64.encode(&self.key)});
        let response = http::post(
            ep,
            "/v3/kv/range",
            &request.to_string(),
            self.config.connect_timeout,
            self.config.poll_slice,
            false,
        )?;
        let response = check_status(ep, response, self.config.connect_timeout)?;
        let body = response.read_to_end(self.config.connect_timeout)?;
        parse_range(ep, &body)
    }
}

/// Passes a 200 answer through; turns any other into an error carrying the start of its body.
fn check_status(
    ep: &Endpoint,
    response: http::Response,
    timeout: std::time::Duration,
) -> Result<http::Response, CoordError> {
    let status = response.status();
    if status == 200 {
        return Ok(response);
    }
    let body = response.read_to_end(timeout).unwrap_or_default();
    Err(CoordError::HttpStatus {
        endpoint: ep.to_string(),
        status,
        body: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    })
}

fn bad(ep: &Endpoint, reason: impl Into<String>) -> CoordError {
    CoordError::BadResponse {
        endpoint: ep.to_string(),
        reason: reason.into(),
    }
}

/// A gateway int64: a JSON string of digits (or a number); absent means 0 (proto3 default).
fn int64(ep: &Endpoint, v: Option<&Value>, what: &str) -> Result<i64, CoordError> {
    match v {
        None => Ok(0),
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| bad(ep, format!("{what} is not an integer"))),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| bad(ep, format!("{what} is not an int64"))),
        Some(_) => Err(bad(ep, format!("{what} has the wrong JSON type"))),
    }
}

/// Decodes a `mvccpb.KeyValue` of the view key into a view.
fn kv_to_view(ep: &Endpoint, kv: &Value) -> Result<MasterView, CoordError> {
    let value = match kv.get("value") {
        None => Vec::new(),
        Some(Value::String(s)) => B64.decode(s).map_err(|_| bad(ep, "value is not base64"))?,
        Some(_) => return Err(bad(ep, "value is not a string")),
    };
    let leader = String::from_utf8(value).map_err(|_| bad(ep, "leader address is not UTF-8"))?;
    let version = int64(ep, kv.get("create_revision"), "create_revision")?;
    Ok(MasterView {
        leader,
        version: u64::try_from(version).map_err(|_| bad(ep, "negative create_revision"))?,
    })
}

/// Decodes a range response: the view (if the key exists) and the header revision.
pub(crate) fn parse_range(
    ep: &Endpoint,
    body: &[u8],
) -> Result<(Option<MasterView>, i64), CoordError> {
    let json: Value = serde_json::from_slice(body)
        .map_err(|e| bad(ep, format!("range answer is not JSON: {e}")))?;
    if let Some(err) = json.get("error").or_else(|| json.get("message")) {
        return Err(bad(ep, format!("range failed: {err}")));
    }
    let revision = int64(ep, json.pointer("/header/revision"), "header.revision")?;
    let view = match json
        .get("kvs")
        .and_then(Value::as_array)
        .and_then(|kvs| kvs.first())
    {
        Some(kv) => Some(kv_to_view(ep, kv)?),
        None => None,
    };
    Ok((view, revision))
}

/// Decodes one line of the watch stream.
pub(crate) fn parse_watch_line(ep: &Endpoint, line: &[u8]) -> Result<WatchLine, CoordError> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(WatchLine::Nothing);
    }
    let json: Value = serde_json::from_slice(line)
        .map_err(|e| bad(ep, format!("watch message is not JSON: {e}")))?;
    if let Some(err) = json.get("error") {
        return Err(bad(ep, format!("watch failed: {err}")));
    }
    let Some(result) = json.get("result") else {
        return Err(bad(ep, "watch message has no result"));
    };
    if result.get("canceled").and_then(Value::as_bool) == Some(true) {
        let reason = result
            .get("cancel_reason")
            .and_then(Value::as_str)
            .unwrap_or("");
        let compacted = int64(ep, result.get("compact_revision"), "compact_revision")?;
        return Err(bad(
            ep,
            format!("watch canceled (compact_revision {compacted}) {reason}"),
        ));
    }
    if result.get("created").and_then(Value::as_bool) == Some(true) {
        return Ok(WatchLine::Created);
    }
    let Some(events) = result.get("events").and_then(Value::as_array) else {
        return Ok(WatchLine::Nothing);
    };
    let Some(last) = events.last() else {
        return Ok(WatchLine::Nothing);
    };
    // PUT is the proto3 default (0), so the gateway omits `type` for it.
    if last.get("type").and_then(Value::as_str) == Some("DELETE") {
        return Ok(WatchLine::Changed(None));
    }
    let kv = last
        .get("kv")
        .ok_or_else(|| bad(ep, "watch event has no kv"))?;
    Ok(WatchLine::Changed(Some(kv_to_view(ep, kv)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> Endpoint {
        Endpoint {
            host: "127.0.0.1".into(),
            port: 2379,
        }
    }

    // Captured from etcd 3.4.23's gateway.
    const RANGE: &str = r#"{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"2","raft_term":"2"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}],"count":"1"}"#;
    const RANGE_EMPTY: &str =
        r#"{"header":{"cluster_id":"1","member_id":"2","revision":"9","raft_term":"2"}}"#;
    const CREATED: &str = r#"{"result":{"header":{"revision":"2"},"created":true}}"#;
    const PUT: &str = r#"{"result":{"header":{"revision":"3"},"events":[{"kv":{"key":"Zm9v","create_revision":"2","mod_revision":"3","version":"2","value":"YmF6"}}]}}"#;
    const DELETE: &str = r#"{"result":{"header":{"revision":"4"},"events":[{"type":"DELETE","kv":{"key":"Zm9v","mod_revision":"4"}}]}}"#;

    #[test]
    fn decodes_gateway_messages() {
        let view = |leader: &str, version| MasterView {
            leader: leader.into(),
            version,
        };
        assert_eq!(
            parse_range(&ep(), RANGE.as_bytes()).unwrap(),
            (Some(view("bar", 2)), 2)
        );
        assert_eq!(
            parse_range(&ep(), RANGE_EMPTY.as_bytes()).unwrap(),
            (None, 9)
        );
        assert_eq!(
            parse_watch_line(&ep(), CREATED.as_bytes()).unwrap(),
            WatchLine::Created
        );
        assert_eq!(
            parse_watch_line(&ep(), PUT.as_bytes()).unwrap(),
            WatchLine::Changed(Some(view("baz", 2)))
        );
        assert_eq!(
            parse_watch_line(&ep(), DELETE.as_bytes()).unwrap(),
            WatchLine::Changed(None)
        );
        assert_eq!(parse_watch_line(&ep(), b"").unwrap(), WatchLine::Nothing);
    }

    #[test]
    fn rejects_malformed_messages() {
        for line in [
            &br#"{"error":{"grpc_code":14,"message":"unavailable"}}"#[..],
            br#"{"result":{"canceled":true,"compact_revision":"5"}}"#,
            br#"{"result":{"events":[{"kv":{"value":"!!notbase64"}}]}}"#,
            br#"{"result":{"events":[{"kv":{"value":"YmFy","create_revision":"x"}}]}}"#,
            br#"{"result":{"events":[{}]}}"#,
            b"not json",
            br#"{"other":1}"#,
        ] {
            assert!(
                parse_watch_line(&ep(), line).is_err(),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        assert!(parse_range(&ep(), b"{").is_err());
    }

    proptest::proptest! {
        /// Any bytes give a message or a typed error, never a panic.
        #[test]
        fn watch_decoder_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = parse_watch_line(&ep(), &bytes);
            let _ = parse_range(&ep(), &bytes);
        }
    }
}
