//! `/dashboard` on the admin port: one page that shows the cluster live, served from files
//! embedded in the binary (no CDN, no web fonts: clusters are often air-gapped).
//!
//! The page is static; its script polls the JSON endpoints every two seconds: `/health`
//! (role, leader, view version, keys, bytes, evictions), [`stats`] (`/api/v1/stats`: per-RPC
//! totals and p99 latency, and where a standby's leader serves its own dashboard) and
//! `/get_segments_detail` (segments with used and capacity bytes; a standby answers 503 and
//! the page says where the leader is instead).

pub mod stats;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::http_state::HttpState;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// Serves `body` with `content_type`, never cached (the page must always match the binary).
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
}

/// The dashboard's routes: the page, its script and style, and `/api/v1/stats`.
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route(
            "/dashboard",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/dashboard/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/dashboard/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route("/api/v1/stats", get(stats::stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_assets() {
        assert!(INDEX_HTML.contains("/dashboard/app.js"));
        assert!(INDEX_HTML.contains("/dashboard/style.css"));
        for text in [INDEX_HTML, APP_JS, STYLE_CSS] {
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "external URL"
            );
            assert!(!text.contains("@import") && !text.contains("@font-face"));
        }
        for endpoint in ["/health", "/api/v1/stats", "/get_segments_detail"] {
            assert!(APP_JS.contains(endpoint), "{endpoint}");
        }
    }
}
