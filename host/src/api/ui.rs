//! The admin UI at `/ui`: one static page, its script and its style sheet,
//! compiled into the binary (no CDN, no build step; it works offline).
//!
//! The page holds no data and needs no auth: everything it shows comes from
//! its own `fetch` calls to `/v1` and `/healthz`, which pass through
//! [`super::auth`] like any client's (same origin, so the browser checks
//! pass; a token the operator pastes, when the server has tokens). It must
//! not serve anything but these three files, and always with a strict
//! Content-Security-Policy: no inline script or style, no other origin.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::ApiError;

const INDEX: &str = include_str!("../../ui/index.html");
const SCRIPT: &str = include_str!("../../ui/app.js");
const STYLE: &str = include_str!("../../ui/style.css");

/// Only this origin's files, scripts and connections; no framing, no
/// `<base>`, no form posts elsewhere.
const CSP: &str = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

/// `/ui`, `/ui/` and `/ui/{file}`; any state, since the files need none.
pub(super) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/ui", get(index)).route("/ui/", get(index)).route("/ui/{file}", get(file))
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

async fn file(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "index.html" => asset("text/html; charset=utf-8", INDEX),
        "app.js" => asset("text/javascript; charset=utf-8", SCRIPT),
        "style.css" => asset("text/css; charset=utf-8", STYLE),
        _ => ApiError::not_found("not_found", format!("the UI has no file {name:?}")).into_response(),
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        // A new binary may bring new files under the same names.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (StatusCode::OK, headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn fetch(path: &str) -> Response {
        routes::<()>().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap()
    }

    #[tokio::test]
    async fn every_file_is_served_with_its_type_and_a_strict_policy() {
        for (path, kind) in [
            ("/ui", "text/html"),
            ("/ui/", "text/html"),
            ("/ui/index.html", "text/html"),
            ("/ui/app.js", "text/javascript"),
            ("/ui/style.css", "text/css"),
        ] {
            let response = fetch(path).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let headers = response.headers();
            assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with(kind), "{path}");
            let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
            assert!(csp.starts_with("default-src 'self';"), "{path}: {csp}");
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        }
    }

    #[tokio::test]
    async fn other_names_are_not_found() {
        for path in ["/ui/secret.txt", "/ui/..%2Fmain.rs", "/ui/app.js.map"] {
            assert_eq!(fetch(path).await.status(), StatusCode::NOT_FOUND, "{path}");
        }
    }

    #[test]
    fn the_page_loads_only_its_own_files_and_has_no_inline_code() {
        assert!(INDEX.contains(r#"<script src="/ui/app.js""#), "the page loads its script");
        assert!(INDEX.contains(r#"href="/ui/style.css""#), "the page loads its style sheet");
        // The policy refuses inline script, handlers and style; the page must not need them.
        assert!(!INDEX.contains("<script>") && !INDEX.contains("<style"), "no inline script or style");
        assert!(!INDEX.contains(" onclick=") && !INDEX.contains(" style="), "no inline handlers or styles");
        assert!(!SCRIPT.contains("innerHTML"), "the script builds nodes, never HTML from data");
        for text in [INDEX, SCRIPT, STYLE] {
            assert!(!text.contains("https://") && !text.contains("http://"), "no other origin is named");
        }
    }
}
