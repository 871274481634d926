//! Request checks and response headers: the access token, the same-origin rule for
//! state-changing requests, the form token (CSRF), and the headers every answer carries.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use crate::web::{ApiError, AppState};

/// The cookie a browser keeps the access token in after `/login`.
pub const TOKEN_COOKIE: &str = "opensoc_token";

/// Scripts and styles only from this server's own files (no inline code, no eval), no
/// plugins, no framing, forms only to this server.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// Compares without stopping at the first difference, so timing shows nothing of the token.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh random secret (hex), for the form token.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 24];
    // The OS source; should it fail, the address of a stack value and the time still
    // differ per process, and the form token only guards against cross-site forms.
    if getrandom::fill(&mut bytes).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let seed = t ^ (&bytes as *const _ as usize as u128);
        bytes[..16].copy_from_slice(&seed.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn presented_token(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    bearer.or_else(|| cookie(headers, TOKEN_COOKIE))
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

/// The token check, when the server has a token: every request but the login page and the
/// static assets must present it (`Authorization: Bearer`, or the login cookie).
pub async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(token) = state.token() else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    if path == "/login" || path.starts_with("/assets/") {
        return next.run(req).await;
    }
    match presented_token(req.headers()) {
        Some(given) if same_secret(given, token) => next.run(req).await,
        _ if is_api(path) => {
            ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong access token").into_response()
        }
        _ => Redirect::to("/login").into_response(),
    }
}

/// State-changing requests from another site are refused: browsers name the page's origin
/// (`Origin`, `Sec-Fetch-Site`) on such requests, and a page elsewhere must not upload logs
/// or review alerts through the analyst's browser.
pub async fn same_origin(req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let headers = req.headers();
    let header = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    // Browsers that send Sec-Fetch-Site say exactly where the request comes from; `none`
    // is the analyst's own action (a bookmark, the address bar).
    let (cross_site, foreign_origin) =
        match header(header::HeaderName::from_static("sec-fetch-site")) {
            Some(site) => (!matches!(site, "same-origin" | "none"), false),
            None => {
                let host = header(header::HOST);
                let foreign = header(header::ORIGIN).is_some_and(|origin| {
                    let origin_host = origin
                        .strip_prefix("http://")
                        .or_else(|| origin.strip_prefix("https://"));
                    origin_host.is_none() || origin_host != host
                });
                (false, foreign)
            }
        };
    if cross_site || foreign_origin {
        return ApiError::new(StatusCode::FORBIDDEN, "cross-origin request refused")
            .into_response();
    }
    next.run(req).await
}

/// Headers on every answer: the CSP, no MIME sniffing, no framing, no referrer, and no
/// caching of pages that show log data.
pub async fn headers(req: Request, next: Next) -> Response<Body> {
    let asset = req.uri().path().starts_with("/assets/");
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Not `no-referrer`: with it, browsers send `Origin: null` on the page's own forms.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_by_content_and_length() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }

    #[test]
    fn the_token_is_read_from_the_header_or_the_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_token(&h), None);
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; opensoc_token=s3cret"),
        );
        assert_eq!(presented_token(&h), Some("s3cret"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer tok"),
        );
        assert_eq!(presented_token(&h), Some("tok"));
        assert_ne!(random_secret(), random_secret());
    }
}
