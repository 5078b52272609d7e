//! Inspection endpoints of the admin HTTP server, in the formats of Mooncake's HTTP service:
//! `/query_key`, `/batch_query_keys`, `/get_all_keys`, `/get_all_segments`,
//! `/query_segment`, `/get_segments_detail` and `POST /api/v1/remove_all`. None of them
//! grants a lease. Missing or malformed parameters get 400, unknown keys and segments 404,
//! both with a JSON body naming the problem; a master that is not serving answers 503.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::Query;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use mc_schema::ErrorCode;
use mc_schema::msg::{ReplicaDesc, ReplicaKind};
use serde_json::{Value, json};

use crate::http_state::Serving;

const TEXT: &str = "text/plain; version=0.0.4";

/// Most keys `/get_all_keys` returns when no `limit` is given.
const DEFAULT_KEY_LIMIT: usize = 1_000_000;

type Params = Query<HashMap<String, String>>;

fn bad_request(msg: impl Into<String>) -> Response {
    let body = json!({"error": "INVALID_PARAMS", "code": ErrorCode::InvalidParams.code(), "message": msg.into()});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn not_found(code: ErrorCode, msg: impl Into<String>) -> Response {
    let body = json!({"error": code.name(), "code": code.code(), "message": msg.into()});
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

/// A non-empty query parameter.
fn param<'a>(p: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    p.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

fn missing(name: &str) -> Response {
    bad_request(format!("missing query parameter `{name}`"))
}

fn buffer(s: &mc_schema::msg::SliceDesc) -> Value {
    json!({
        "segment_name": s.endpoint,
        "segment_id": s.segment_id,
        "transport_endpoint_": s.endpoint,
        "offset": s.offset,
        "size": s.length,
    })
}

fn replica_json(r: &ReplicaDesc) -> Value {
    // Mooncake's replica kinds: a segment's memory, or this node's SSD copy.
    let kind = match r.kind {
        ReplicaKind::Memory => "MEMORY",
        ReplicaKind::LocalDisk => "LOCAL_DISK",
    };
    json!({
        "type": kind,
        "transport_endpoint_": r.slices.first().map(|s| s.endpoint.as_str()).unwrap_or(""),
        "buffer_descriptors": r.slices.iter().map(buffer).collect::<Vec<_>>(),
    })
}

/// `GET /query_key?key=K`.
pub async fn query_key(Serving(svc): Serving, Query(p): Params) -> Response {
    let Some(key) = param(&p, "key") else {
        return missing("key");
    };
    match svc.objects.peek(key) {
        None => not_found(
            ErrorCode::ObjectNotFound,
            format!("no complete object `{key}`"),
        ),
        Some((size, replicas)) => {
            let first = replicas.first().map(replica_json).unwrap_or(json!({}));
            // Pins are mooncake-rs additions: the soft pin as milliseconds left.
            let (hard_pin, soft_until_ms) = svc.objects.pins(key).unwrap_or_default();
            let mut body = json!({
                "key": key,
                "size": size,
                "replicas": replicas.iter().map(replica_json).collect::<Vec<_>>(),
                "hard_pin": hard_pin,
                "soft_pin_remaining_ms": soft_until_ms.saturating_sub(svc.now_ms()),
            });
            for f in ["transport_endpoint_", "buffer_descriptors"] {
                body[f] = first[f].clone();
            }
            Json(body).into_response()
        }
    }
}

/// `GET /batch_query_keys?keys=a,b,c`.
pub async fn batch_query_keys(Serving(svc): Serving, Query(p): Params) -> Response {
    let Some(keys) = param(&p, "keys") else {
        return missing("keys");
    };
    let mut data = serde_json::Map::new();
    for key in keys.split(',').filter(|k| !k.is_empty()) {
        let entry = match svc.objects.peek(key) {
            None => json!({"ok": false, "error": "OBJECT_NOT_FOUND"}),
            Some((_, replicas)) => json!({
                "ok": true,
                "values": replicas
                    .iter()
                    .flat_map(|r| r.slices.iter().map(|x| json!({
                        "transport_endpoint_": x.endpoint,
                        "buffer_descriptor": buffer(x),
                    })))
                    .collect::<Vec<_>>(),
            }),
        };
        data.insert(key.to_string(), entry);
    }
    Json(json!({"success": true, "data": data})).into_response()
}

/// `GET /get_all_keys[?limit=N][&regex=R]`: newline-separated, streamed shard by shard so a
/// large key space is never held in one buffer.
pub async fn get_all_keys(Serving(svc): Serving, Query(p): Params) -> Response {
    let limit = match p.get("limit").map(|l| l.parse::<usize>()) {
        None => DEFAULT_KEY_LIMIT,
        Some(Ok(l)) => l,
        Some(Err(_)) => return bad_request("`limit` must be a non-negative integer"),
    };
    let re = match p.get("regex").map(|r| regex::Regex::new(r)) {
        None => None,
        Some(Ok(re)) => Some(re),
        Some(Err(e)) => return bad_request(format!("bad `regex`: {e}")),
    };
    let shards = svc.objects.shard_count();
    let stream = futures_stream(
        move |i, left: &mut usize| {
            if i >= shards || *left == 0 {
                return None;
            }
            let keys =
                svc.objects
                    .keys_in_shard(i, |k| re.as_ref().is_none_or(|r| r.is_match(k)), *left);
            *left -= keys.len();
            let mut chunk = String::new();
            for k in keys {
                chunk.push_str(&k);
                chunk.push('\n');
            }
            Some(chunk)
        },
        limit,
    );
    ([(header::CONTENT_TYPE, TEXT)], Body::from_stream(stream)).into_response()
}

/// A stream of chunks produced by `next(index, state)` until it returns `None`.
fn futures_stream(
    next: impl FnMut(usize, &mut usize) -> Option<String> + Send + Unpin + 'static,
    state: usize,
) -> impl futures_core::Stream<Item = Result<String, std::convert::Infallible>> + Send {
    struct Gen<F> {
        next: F,
        i: usize,
        state: usize,
    }
    impl<F: FnMut(usize, &mut usize) -> Option<String> + Unpin> futures_core::Stream for Gen<F> {
        type Item = Result<String, std::convert::Infallible>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            let this = &mut *self;
            let i = this.i;
            this.i += 1;
            std::task::Poll::Ready((this.next)(i, &mut this.state).map(Ok))
        }
    }
    Gen { next, i: 0, state }
}

/// `GET /get_all_segments`: newline-separated segment names.
pub async fn get_all_segments(Serving(svc): Serving) -> impl IntoResponse {
    let mut out = String::new();
    for seg in svc.segments.list() {
        out.push_str(&seg.name);
        out.push('\n');
    }
    ([(header::CONTENT_TYPE, TEXT)], out)
}

/// `GET /query_segment?segment=S`.
pub async fn query_segment(Serving(svc): Serving, Query(p): Params) -> Response {
    let Some(name) = param(&p, "segment") else {
        return missing("segment");
    };
    match svc.segments.list().into_iter().find(|x| x.name == name) {
        None => not_found(
            ErrorCode::SegmentNotFound,
            format!("no mounted segment `{name}`"),
        ),
        Some(seg) => {
            let mut body = format!(
                "{}\nUsed(bytes): {}\nCapacity(bytes): {}\n",
                seg.name,
                seg.allocated_bytes(),
                seg.size_bytes
            );
            if seg.is_cxl() {
                body.push_str("Medium: cxl\n");
            }
            ([(header::CONTENT_TYPE, TEXT)], body).into_response()
        }
    }
}

/// `GET /get_segments_detail`: JSON list of every segment.
pub async fn get_segments_detail(Serving(svc): Serving) -> Json<Value> {
    let segs: Vec<Value> = svc
        .segments
        .list()
        .iter()
        .map(|x| {
            json!({
                "name": x.name,
                "host": x.host,
                "transport_endpoint_": x.endpoint,
                "segment_id": x.id,
                "used_bytes": x.allocated_bytes(),
                "capacity_bytes": x.size_bytes,
                "allocatable": x.is_allocatable(),
                "medium": if x.is_cxl() { "cxl" } else { "dram" },
            })
        })
        .collect();
    Json(json!({"segments": segs}))
}

/// `POST /api/v1/remove_all?force=true|false`.
pub async fn remove_all(Serving(svc): Serving, Query(p): Params) -> Response {
    let force = match p.get("force").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return bad_request(format!("`force` must be true or false, not `{other}`")),
    };
    // As the RPC does: tombstoned against late recovery reports, and answered once the
    // holders forgot the objects (so no client reads one through its location cache).
    let req = mc_schema::msg::Request::RemoveAll { force };
    let resp = match mc_rpc::Service::handle(&*svc, 0, req) {
        mc_rpc::Reply::Now(r) => r,
        mc_rpc::Reply::Later(f) => f.await,
    };
    match resp.body {
        mc_schema::msg::ResponseBody::Count(n) if resp.status == 0 => {
            Json(json!({"success": true, "removed": n})).into_response()
        }
        _ => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"success": false, "error": resp.message})),
        )
            .into_response(),
    }
}
