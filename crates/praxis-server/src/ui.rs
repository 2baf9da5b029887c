//! The web operator console (`/ui/`): the bundle built from `console/` and embedded in the
//! binary, the security headers every response carries, and the origin check every
//! mutating route passes.
//!
//! The console is static: it holds no data and calls the same `/v1` API as any client, with
//! the user's API token. So its pages are served without authentication, and everything
//! they show comes from authenticated API calls.

use crate::api::{ApiError, AppState, Tenant};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

const INDEX_HTML: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const APP_CSS: &str = include_str!("../ui/app.css");

/// The console's policy: only its own script and style, API calls to this origin, no
/// framing, no plugins, no inline script or `eval`.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'; object-src 'none'";

/// Every other answer (JSON, SSE, text): nothing may load from it or frame it.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// `/ui` (redirect), `/ui/` and every path below it (the app routes in the browser, so deep
/// links like `/ui/runs/{id}` load the same page), and the two assets.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(index))
        .route("/ui/app.js", get(script))
        .route("/ui/app.css", get(style))
        .route("/ui/{*rest}", get(index))
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /v1/session`: who the caller's token acts for.
#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    pub tenant: String,
    /// Whether this server requires API tokens.
    pub auth: bool,
}

#[utoipa::path(get, path = "/v1/session", security(("bearer" = [])),
    responses((status = 200, body = Session), (status = 401, body = crate::api::ErrorBody)))]
pub(crate) async fn session(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
) -> Result<Json<Session>, ApiError> {
    Ok(Json(Session {
        tenant: tenant.0,
        auth: state.auth_on()?,
    }))
}

/// Sets the security headers on every answer: a strict CSP (the console's own on `/ui`,
/// none at all elsewhere), no sniffing, no framing, no referrer.
pub(crate) async fn security_headers(req: Request, next: Next) -> Response {
    let console = req.uri().path() == "/ui" || req.uri().path().starts_with("/ui/");
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    let csp = if console { CONSOLE_CSP } else { API_CSP };
    let set = |headers: &mut HeaderMap, name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::CONTENT_SECURITY_POLICY, csp);
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    if console {
        set(
            headers,
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        );
        set(
            headers,
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        );
        set(
            headers,
            HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
        );
    }
    response
}

/// Refuses a mutating request (anything but GET, HEAD, OPTIONS) that a browser sent from
/// another site: its `Origin` must be this server's own or one of `PRAXIS_ALLOWED_ORIGINS`.
/// CORS alone does not stop a cross-site request that needs no preflight (a bodiless POST
/// to `/cancel`, a form post) from reaching the handler; only its answer is hidden.
/// Clients that are not browsers send no `Origin` and pass.
pub(crate) async fn origin_guard(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    match cross_site(req.headers(), &state.config.allowed_origins) {
        None => next.run(req).await,
        Some(why) => ApiError::new(StatusCode::FORBIDDEN, why).into_response(),
    }
}

/// Why a request is refused as cross-site, if it is.
pub(crate) fn cross_site(headers: &HeaderMap, allowed: &[String]) -> Option<String> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        // Browsers send Origin on every cross-origin POST; the fetch metadata header is a
        // second witness for those that do not.
        let site = headers
            .get(HeaderName::from_static("sec-fetch-site"))
            .and_then(|v| v.to_str().ok());
        return match site {
            Some("cross-site" | "same-site") => Some(
                "cross-site request refused (Sec-Fetch-Site); call the API from the console or a listed PRAXIS_ALLOWED_ORIGINS origin".into(),
            ),
            _ => None,
        };
    };
    let origin = origin.to_str().unwrap_or("");
    if allowed.iter().any(|a| a == origin) || same_origin(origin, headers) {
        return None;
    }
    Some(format!(
        "cross-origin request refused: origin {origin:?} is neither this server nor listed in PRAXIS_ALLOWED_ORIGINS"
    ))
}

/// `Origin` is `http(s)://HOST` where HOST is the request's own `Host`.
fn same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    !host.is_empty() && rest.is_some_and(|r| r.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn same_origin_and_listed_origins_pass_others_do_not() {
        let allowed = vec!["https://console.example.com".to_string()];
        let own = headers(&[
            ("host", "127.0.0.1:3001"),
            ("origin", "http://127.0.0.1:3001"),
        ]);
        assert_eq!(cross_site(&own, &allowed), None);
        let listed = headers(&[
            ("host", "127.0.0.1:3001"),
            ("origin", "https://console.example.com"),
        ]);
        assert_eq!(cross_site(&listed, &allowed), None);
        for evil in [
            "https://evil.example",
            "null",
            "http://127.0.0.1:3001.evil.example",
            "http://127.0.0.1:30011",
            "https://console.example.com.evil",
            "",
        ] {
            let h = headers(&[("host", "127.0.0.1:3001"), ("origin", evil)]);
            assert!(
                cross_site(&h, &allowed).is_some(),
                "{evil:?} must be refused"
            );
        }
        let no_host = headers(&[("origin", "http://127.0.0.1:3001")]);
        assert!(cross_site(&no_host, &[]).is_some());
    }

    #[test]
    fn without_origin_fetch_metadata_decides() {
        assert_eq!(cross_site(&headers(&[]), &[]), None);
        assert_eq!(
            cross_site(&headers(&[("sec-fetch-site", "same-origin")]), &[]),
            None
        );
        assert_eq!(
            cross_site(&headers(&[("sec-fetch-site", "none")]), &[]),
            None
        );
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")]), &[]).is_some());
        assert!(cross_site(&headers(&[("sec-fetch-site", "same-site")]), &[]).is_some());
    }
}
