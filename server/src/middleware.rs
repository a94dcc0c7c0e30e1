//! Tower layers on the request path, outermost first: response headers, then the session
//! guard, then the Leptos handler (pages and server functions).

use crate::AppState;
use app::{
    ApiError, ErrorCode,
    server::guard::{self, Mode},
};
use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, Method, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

/// Largest server-function error body the status mapping will read.
const MAX_ERROR_BODY: usize = 64 * 1024;

fn mode_for(method: &Method, path: &str) -> Option<Mode> {
    if path.starts_with("/api/") {
        Some(if method == Method::GET { Mode::Stream } else { Mode::Api })
    } else if path.starts_with("/pkg/") || path == "/favicon.svg" || path == "/favicon.ico" {
        // Static files are the same for everyone and need no session.
        None
    } else {
        Some(Mode::Page)
    }
}

/// The session guard: every page load and server function passes through it.
pub async fn session_guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(mode) = mode_for(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };

    if mode == Mode::Api {
        // Server functions take JSON bodies only: a form or text/plain post (what a
        // cross-site form can send) never reaches them.
        if req.method() == Method::POST && !is_json(&req) {
            return private(
                ApiError::new(ErrorCode::UnsupportedMediaType, "server functions accept application/json only")
                    .into_response(),
            );
        }
    }

    let outcome = match guard::check(&state.store, &state.guard, req.headers(), mode).await {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::debug!(code = e.code.as_str(), path = req.uri().path(), "request refused by the session guard");
            return private(e.into_response());
        }
    };
    if let Some(session) = outcome.session {
        req.extensions_mut().insert(session);
    }
    let mut res = next.run(req).await;
    if let Some(cookie) = outcome.set_cookie {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    if mode != Mode::Page {
        res = status_from_error_code(res).await;
    }
    private(res)
}

fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// Session-dependent answers must never be stored by a shared cache or served to a
/// different cookie.
fn private(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    h.append(header::VARY, HeaderValue::from_static("Cookie"));
    res
}

/// Server functions report errors as 500 with our JSON body; give each its proper status
/// so the API is honest to curl and to proxies, not just to the Leptos client.
async fn status_from_error_code(res: Response) -> Response {
    if !res.headers().contains_key("serverfnerror") {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_ERROR_BODY).await {
        Ok(b) => b,
        Err(_) => return ApiError::internal().into_response(),
    };
    if let Ok(err) = serde_json::from_slice::<ApiError>(&bytes) {
        if let Ok(status) = axum::http::StatusCode::from_u16(err.status()) {
            parts.status = status;
        }
    }
    parts.headers.remove("serverfnerror");
    Response::from_parts(parts, Body::from(bytes))
}

/// Headers every response carries.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}
