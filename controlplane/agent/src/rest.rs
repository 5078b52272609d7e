//! The node's REST server (`--port`): `/health`, `/metrics`, and the store REST API of
//! Mooncake's HTTP service.
//!
//! - Segments: `POST /api/mount`, `/api/unmount`, `/api/mount_shm`, `/api/unmount_shm`.
//!   Handlers check the body and hand a [`Command`] to the agent, which owns the node's
//!   segment list and talks to the shards and the master.
//! - Data, for inspection: `PUT /api/put`, `GET /api/get/{key}`, `GET /api/exist/{key}`,
//!   `DELETE /api/remove/{key}`, `DELETE /api/remove_all`. They go through the real client
//!   (`mooncake_rs::Store`, connected to the master on first use), on tokio's blocking pool
//!   because the client is blocking.
//!
//! Every error is a JSON body `{"error": NAME, "code": N, "message": "..."}` (the
//! master's admin endpoints use the same shape): 400 for a body that is not JSON, lacks a
//! field or has one of the wrong type; 413 for a body above `--rest_body_limit`; 404 for an
//! unknown key, segment or route. A refused request changes nothing.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use mc_schema::ErrorCode;
use mc_schema::agent::SegmentKind;
use mooncake_rs::{ReplicateConfig, Store, StoreConfig};
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use crate::state::{AgentStatus, Command, CommandError, format_segment_id, parse_segment_id};

/// Longest wait for a mount (a shard maps and prefaults the memory meanwhile). A mount
/// that takes longer still completes; the answer says so.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(300);

/// Longest grace period an unmount may ask for: one day.
pub const MAX_GRACE_PERIOD_SECONDS: f64 = 86_400.0;

/// Longest shared-memory object name (`NAME_MAX`).
const MAX_SHM_NAME_BYTES: usize = 255;

/// What the handlers read.
#[derive(Clone)]
pub struct RestState {
    /// Agent status.
    pub status: Arc<AgentStatus>,
    /// Number of shards on this node.
    pub shards: usize,
    /// This node's host.
    pub host: String,
    /// The node's registry (agent gauges and every shard's counters).
    pub metrics: crate::metrics::NodeMetrics,
    /// Requests to the agent.
    pub commands: std::sync::mpsc::Sender<Command>,
    /// The client the data endpoints use.
    pub client: Arc<LazyStore>,
    /// Largest request body accepted.
    pub body_limit_bytes: usize,
    /// Directory holding POSIX shared-memory objects (`/dev/shm`).
    pub shm_dir: std::path::PathBuf,
}

/// A client of the cluster, connected on first use (the master may come up after the node)
/// and kept.
pub struct LazyStore {
    cfg: StoreConfig,
    store: Mutex<Option<Arc<Store>>>,
}

impl LazyStore {
    /// A client that will connect with `cfg`.
    pub fn new(cfg: StoreConfig) -> LazyStore {
        LazyStore {
            cfg,
            store: Mutex::new(None),
        }
    }

    /// The client, connecting it first if needed. Blocking.
    pub(crate) fn get(&self) -> mooncake_rs::Result<Arc<Store>> {
        let mut slot = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let s = Arc::new(Store::connect(self.cfg.clone())?);
        *slot = Some(s.clone());
        Ok(s)
    }
}

/// An error answer, in the shape the master's admin endpoints use.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": self.code.name(),
            "code": self.code.code(),
            "message": self.message,
        });
        (self.status, Json(body)).into_response()
    }
}

type ApiResult<T = Response> = Result<T, ApiError>;

fn bad_request(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidParams, msg)
}

fn success() -> Response {
    Json(json!({"status": "success"})).into_response()
}

/// The HTTP status for a client error code.
fn client_error(e: mooncake_rs::Error) -> ApiError {
    let status = match e.code() {
        ErrorCode::ObjectNotFound => StatusCode::NOT_FOUND,
        ErrorCode::InvalidParams | ErrorCode::InvalidKey => StatusCode::BAD_REQUEST,
        ErrorCode::ObjectAlreadyExists | ErrorCode::ObjectHasLease => StatusCode::CONFLICT,
        ErrorCode::NoAvailableHandle => StatusCode::INSUFFICIENT_STORAGE,
        ErrorCode::RpcFail | ErrorCode::RpcTimeout | ErrorCode::UnavailableInCurrentStatus => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.code(), e.message())
}

fn command_error(e: CommandError) -> ApiError {
    match e {
        CommandError::NotFound(m) => {
            ApiError::new(StatusCode::NOT_FOUND, ErrorCode::SegmentNotFound, m)
        }
        CommandError::Invalid(m) => bad_request(m),
        CommandError::Refused(m) => ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            ErrorCode::NoAvailableHandle,
            m,
        ),
        CommandError::Failed(m) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InternalError,
            m,
        ),
        CommandError::Stopping => stopping(),
    }
}

fn stopping() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::UnavailableInCurrentStatus,
        "the store node is stopping",
    )
}

/// The body as a JSON object, or the answer that says why not.
fn json_object(body: Result<Bytes, BytesRejection>) -> ApiResult<Map<String, Value>> {
    let bytes = body.map_err(|rej| {
        let status = rej.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                ErrorCode::InvalidParams,
                "request body too large (limit: --rest_body_limit)",
            )
        } else {
            ApiError::new(status, ErrorCode::InvalidParams, rej.body_text())
        }
    })?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad_request("the body must be a JSON object")),
        Err(e) => Err(bad_request(format!("the body is not valid JSON: {e}"))),
    }
}

/// A required positive integer field.
fn positive(m: &Map<String, Value>, field: &str) -> ApiResult<u64> {
    match m.get(field) {
        None | Some(Value::Null) => Err(bad_request(format!("missing `{field}`"))),
        Some(v) => v
            .as_u64()
            .filter(|&n| n > 0)
            .ok_or_else(|| bad_request(format!("`{field}` must be a positive integer, not {v}"))),
    }
}

/// An optional non-negative integer field.
fn non_negative(m: &Map<String, Value>, field: &str) -> ApiResult<u64> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v.as_u64().ok_or_else(|| {
            bad_request(format!("`{field}` must be a non-negative integer, not {v}"))
        }),
    }
}

/// An optional string field.
fn opt_str<'a>(m: &'a Map<String, Value>, field: &str) -> ApiResult<Option<&'a str>> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(bad_request(format!("`{field}` must be a string, not {v}"))),
    }
}

/// `protocol` and `location` are optional strings; only `tcp` is served.
fn check_transport(m: &Map<String, Value>) -> ApiResult<()> {
    match opt_str(m, "protocol")? {
        None | Some("") | Some("tcp") => {}
        Some(p) => {
            return Err(bad_request(format!(
                "protocol `{p}` is not served by this node; use `tcp`"
            )));
        }
    }
    opt_str(m, "location")?;
    Ok(())
}

/// `segment_ids` (a list of ids or one id) and `grace_period_seconds`.
fn unmount_args(m: &Map<String, Value>) -> ApiResult<(Vec<u64>, Duration)> {
    let raw: Vec<&Value> = match m.get("segment_ids") {
        None | Some(Value::Null) => return Err(bad_request("missing `segment_ids`")),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v) => vec![v],
    };
    if raw.is_empty() {
        return Err(bad_request("`segment_ids` is empty"));
    }
    let mut ids = Vec::with_capacity(raw.len());
    for v in raw {
        let id = v.as_str().and_then(parse_segment_id).ok_or_else(|| {
            bad_request(format!(
                "segment id {v} is not one this API hands out (00000000-0000-0000-xxxx-xxxxxxxxxxxx)"
            ))
        })?;
        ids.push(id);
    }
    let grace = match m.get("grace_period_seconds") {
        None | Some(Value::Null) => 0.0,
        Some(v) => v
            .as_f64()
            .filter(|g| (0.0..=MAX_GRACE_PERIOD_SECONDS).contains(g))
            .ok_or_else(|| {
                bad_request(format!(
                    "`grace_period_seconds` must be a number from 0 to {MAX_GRACE_PERIOD_SECONDS}, not {v}"
                ))
            })?,
    };
    Ok((ids, Duration::from_secs_f64(grace)))
}

/// The file of a shared-memory object: a leading `/` is accepted (as `shm_open` takes it),
/// path separators and `..` are not.
fn shm_path(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    let n = name.strip_prefix('/').unwrap_or(name);
    let ok = !n.is_empty()
        && n.len() <= MAX_SHM_NAME_BYTES
        && n != "."
        && !n.contains("..")
        && !n.contains(['/', '\0']);
    ok.then(|| dir.join(n))
}

/// Sends a command to the agent and waits for its answer.
async fn ask<T>(
    s: &RestState,
    make: impl FnOnce(oneshot::Sender<T>) -> Command,
    timeout: Duration,
) -> ApiResult<T> {
    let (tx, rx) = oneshot::channel();
    if s.commands.send(make(tx)).is_err() {
        return Err(stopping());
    }
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(_)) => Err(stopping()),
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::RpcTimeout,
            format!(
                "no answer within {} s; the operation goes on, see the node's log and /health",
                timeout.as_secs()
            ),
        )),
    }
}

/// `POST /api/mount` `{"size": N, "protocol"?: "tcp", "location"?: ""}`.
async fn mount(State(s): State<RestState>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let m = json_object(body)?;
    let size_bytes = positive(&m, "size")?;
    check_transport(&m)?;
    let seg = ask(
        &s,
        |reply| Command::Mount { size_bytes, reply },
        MOUNT_TIMEOUT,
    )
    .await?
    .map_err(command_error)?;
    Ok(Json(json!({
        "status": "success",
        "segment_ids": [format_segment_id(seg.segment_id)],
        "allocated_size": seg.size_bytes,
        "segment_names": [seg.name],
    }))
    .into_response())
}

/// `POST /api/mount_shm` `{"name": "obj", "size": N, "offset"?: 0, "protocol"?, "location"?}`.
async fn mount_shm(State(s): State<RestState>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let m = json_object(body)?;
    let name = opt_str(&m, "name")?.ok_or_else(|| bad_request("missing `name`"))?;
    let path = shm_path(&s.shm_dir, name).ok_or_else(|| {
        bad_request(format!(
            "`name` {name:?} is not a shared-memory object name: no `/` after the first character, no `..`, 1 to 255 bytes"
        ))
    })?;
    let size_bytes = positive(&m, "size")?;
    let offset_bytes = non_negative(&m, "offset")?;
    check_transport(&m)?;
    let path = path.to_string_lossy().into_owned();
    let seg = ask(
        &s,
        |reply| Command::MountShm {
            path,
            offset_bytes,
            size_bytes,
            reply,
        },
        MOUNT_TIMEOUT,
    )
    .await?
    .map_err(|e| match e {
        // The file is the caller's: missing, short or unaligned is a bad request.
        CommandError::Refused(m) => bad_request(m),
        e => command_error(e),
    })?;
    Ok(Json(json!({
        "status": "success",
        "segment_ids": [format_segment_id(seg.segment_id)],
        "segment_names": [seg.name],
    }))
    .into_response())
}

async fn unmount_kind(
    s: RestState,
    body: Result<Bytes, BytesRejection>,
    kind: SegmentKind,
) -> ApiResult {
    let (segment_ids, grace) = unmount_args(&json_object(body)?)?;
    ask(
        &s,
        |reply| Command::Unmount {
            segment_ids,
            kind,
            grace,
            reply,
        },
        MOUNT_TIMEOUT,
    )
    .await?
    .map_err(command_error)?;
    Ok(success())
}

/// `POST /api/unmount` `{"segment_ids": [..] | "..", "grace_period_seconds"?: 0}`.
async fn unmount(State(s): State<RestState>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    unmount_kind(s, body, SegmentKind::Allocated).await
}

/// `POST /api/unmount_shm`, as `/api/unmount` for segments from `/api/mount_shm`.
async fn unmount_shm(State(s): State<RestState>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    unmount_kind(s, body, SegmentKind::Shm).await
}

/// Runs a blocking client call on tokio's blocking pool.
async fn with_store<T: Send + 'static>(
    s: &RestState,
    f: impl FnOnce(&Store) -> mooncake_rs::Result<T> + Send + 'static,
) -> ApiResult<T> {
    let client = s.client.clone();
    match tokio::task::spawn_blocking(move || f(&*client.get()?)).await {
        Ok(r) => r.map_err(client_error),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InternalError,
            format!("client call failed: {e}"),
        )),
    }
}

fn key_from(path: Result<Path<String>, PathRejection>) -> ApiResult<String> {
    path.map(|Path(k)| k)
        .map_err(|e| bad_request(format!("bad key in the path: {}", e.body_text())))
}

fn force_param(q: &HashMap<String, String>) -> ApiResult<bool> {
    match q.get("force").map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(bad_request(format!(
            "`force` must be true or false, not `{other}`"
        ))),
    }
}

/// `PUT /api/put` `{"key": "k", "value": "text"}`: the value's UTF-8 bytes are stored.
async fn put_value(State(s): State<RestState>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let m = json_object(body)?;
    let key = opt_str(&m, "key")?
        .filter(|k| !k.is_empty())
        .ok_or_else(|| bad_request("missing `key`"))?
        .to_string();
    let value = opt_str(&m, "value")?
        .ok_or_else(|| bad_request("missing `value`"))?
        .to_string();
    with_store(&s, move |st| {
        st.put(&key, value.as_bytes(), &ReplicateConfig::default())
    })
    .await?;
    Ok(success())
}

/// `GET /api/get/{key}`: the raw bytes.
async fn get_value(
    State(s): State<RestState>,
    key: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let key = key_from(key)?;
    let bytes = with_store(&s, move |st| st.get(&key)).await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

/// `GET /api/exist/{key}`: `{"exists": bool}`.
async fn exist(State(s): State<RestState>, key: Result<Path<String>, PathRejection>) -> ApiResult {
    let key = key_from(key)?;
    let b = with_store(&s, move |st| st.exists(&key)).await?;
    Ok(Json(json!({"exists": b})).into_response())
}

/// `DELETE /api/remove/{key}[?force=true]`.
async fn remove(
    State(s): State<RestState>,
    key: Result<Path<String>, PathRejection>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let key = key_from(key)?;
    let force = force_param(&q)?;
    with_store(&s, move |st| st.remove(&key, force)).await?;
    Ok(success())
}

/// `DELETE /api/remove_all[?force=true]`.
async fn remove_all(
    State(s): State<RestState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let force = force_param(&q)?;
    let n = with_store(&s, move |st| st.remove_all(force)).await?;
    Ok(Json(json!({"status": format!("success removed {n} keys"), "removed": n})).into_response())
}

async fn health(State(s): State<RestState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "host": s.host,
        "shards": s.shards,
        "segments": s.status.segments().len(),
        "mounted_segments": s.status.mounted_segments.load(Ordering::Acquire),
        "master_connected": s.status.master_connected.load(Ordering::Acquire),
    }))
}

async fn metrics(State(s): State<RestState>) -> impl IntoResponse {
    // Off the runtime's thread: a node split into processes asks its data plane over the
    // rings, which blocks until the agent thread has the answer.
    let text = tokio::task::spawn_blocking(move || s.metrics.encode())
        .await
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text)
}

async fn no_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::InvalidParams,
        "no such endpoint",
    )
}

async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::InvalidParams,
        "method not allowed on this endpoint",
    )
}

/// The REST router.
pub fn router(state: RestState) -> Router {
    let limit = state.body_limit_bytes;
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/mount", post(mount))
        .route("/api/unmount", post(unmount))
        .route("/api/mount_shm", post(mount_shm))
        .route("/api/unmount_shm", post(unmount_shm))
        .route("/api/put", put(put_value))
        .route("/api/get/{key}", get(get_value))
        .route("/api/exist/{key}", get(exist))
        .route("/api/remove/{key}", delete(remove))
        .route("/api/remove_all", delete(remove_all))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shm_names_cannot_leave_the_directory() {
        let d = std::path::Path::new("/dev/shm");
        assert_eq!(shm_path(d, "seg").unwrap(), d.join("seg"));
        assert_eq!(shm_path(d, "/seg").unwrap(), d.join("seg"));
        for bad in ["", "/", "a/b", "//a", "..", "../x", "a..b", ".", "a\0b"] {
            assert!(shm_path(d, bad).is_none(), "{bad:?}");
        }
        assert!(shm_path(d, &"x".repeat(256)).is_none());
    }
}
