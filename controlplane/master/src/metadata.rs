//! The embedded HTTP metadata server (`--enable_http_metadata_server`): a small key-value
//! store that transfer engines use for peer discovery when no etcd or Redis is deployed.
//! `GET`, `PUT` and `DELETE /metadata?key=K` (keys URL-decoded) and `GET /health`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use parking_lot::Mutex;

/// Largest value accepted, in bytes (larger bodies get 413).
pub const MAX_VALUE_BYTES: usize = 4 << 20;

/// The stored entries.
#[derive(Default)]
pub struct MetadataStore {
    entries: Mutex<HashMap<String, Bytes>>,
}

type Shared = Arc<MetadataStore>;
type Params = Query<HashMap<String, String>>;

/// The non-empty `key` parameter.
fn key_of(p: &HashMap<String, String>) -> Option<&str> {
    p.get("key").map(String::as_str).filter(|k| !k.is_empty())
}

fn missing_key() -> Response {
    (StatusCode::BAD_REQUEST, "missing query parameter `key`\n").into_response()
}

async fn get_value(State(s): State<Shared>, Query(p): Params) -> Response {
    let Some(key) = key_of(&p) else {
        return missing_key();
    };
    match s.entries.lock().get(key) {
        Some(v) => v.clone().into_response(),
        None => (StatusCode::NOT_FOUND, "metadata not found\n").into_response(),
    }
}

async fn put_value(State(s): State<Shared>, Query(p): Params, body: Bytes) -> Response {
    let Some(key) = key_of(&p) else {
        return missing_key();
    };
    s.entries.lock().insert(key.to_string(), body);
    (StatusCode::OK, "metadata updated\n").into_response()
}

async fn delete_value(State(s): State<Shared>, Query(p): Params) -> Response {
    let Some(key) = key_of(&p) else {
        return missing_key();
    };
    match s.entries.lock().remove(key) {
        Some(_) => (StatusCode::OK, "metadata deleted\n").into_response(),
        None => (StatusCode::NOT_FOUND, "metadata not found\n").into_response(),
    }
}

async fn health() -> &'static str {
    "OK\n"
}

/// The metadata server's router.
pub fn router(store: Shared) -> Router {
    Router::new()
        .route(
            "/metadata",
            get(get_value).put(put_value).delete(delete_value),
        )
        .route("/health", get(health))
        .layer(DefaultBodyLimit::max(MAX_VALUE_BYTES))
        .with_state(store)
}
