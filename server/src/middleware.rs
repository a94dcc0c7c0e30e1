//! Tower layers on the request path, outermost first:
//!
//! 1. `edge`: https redirect, security headers (CSP fallback, HSTS, nosniff, …), request
//!    timeout.
//! 2. `session_guard`: CSRF checks, JSON-only bodies within the size limit, the session
//!    protocol, rate limits, and the JSON error status mapping.
//!
//! Rate limits are keyed by what a request proves, never by its address alone: a proven
//! session spends its own bucket, and only requests without one (page loads before a
//! session exists, session starts, failed proofs) share their address's bucket. So a
//! client flooding from behind a shared address (an office, a carrier NAT) cannot lock the
//! others there out. New sessions and the messages of all sessions of an address have
//! their own, generous, per-address budgets, so rotating ids buys nothing.
//! 3. The Leptos handler (pages and server functions).

use crate::AppState;
use app::{ApiError, ErrorCode};
use axum::{
    body::Body,
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use confide_core::{
    auth::address_key,
    guard::{self, Mode},
};
use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use leptos::server_fn::ServerFn;
use std::{
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    time::Duration,
};

/// The server functions that start a model reply, from their own definitions.
const SEND_PATHS: [&str; 4] = [
    <app::api::SendMessage as ServerFn>::PATH,
    <app::api::EditMessage as ServerFn>::PATH,
    <app::api::RegenerateReply as ServerFn>::PATH,
    <app::api::Act as ServerFn>::PATH,
];

/// The upload endpoint: a POST that is not a server function (its body is a multipart form
/// streamed to the file store, not JSON buffered here).
const UPLOAD_PATH: &str = "/api/files";

/// Largest server-function error body the status mapping will read.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Keyed token buckets. Addresses are keyed per IPv4 address and per IPv6 /64.
pub struct Limiters {
    /// Requests without a proven session, per address.
    ip: DefaultKeyedRateLimiter<IpAddr>,
    /// Requests of one proven session.
    session: DefaultKeyedRateLimiter<[u8; 16]>,
    /// Messages of one session.
    sends: DefaultKeyedRateLimiter<[u8; 16]>,
    /// Sessions claimed, per address.
    claims: DefaultKeyedRateLimiter<IpAddr>,
    /// Messages of all sessions of an address.
    address_sends: DefaultKeyedRateLimiter<IpAddr>,
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN)
}

impl Limiters {
    pub fn new(c: &crate::Config) -> Self {
        Self {
            ip: RateLimiter::keyed(Quota::per_second(nz(c.ip_rate)).allow_burst(nz(c.ip_burst))),
            session: RateLimiter::keyed(
                Quota::per_second(nz(c.session_rate)).allow_burst(nz(c.session_burst)),
            ),
            sends: RateLimiter::keyed(
                Quota::per_minute(nz(c.messages_per_minute))
                    .allow_burst(nz(c.messages_per_minute.min(10))),
            ),
            claims: RateLimiter::keyed(
                Quota::per_minute(nz(c.new_sessions_per_minute))
                    .allow_burst(nz(c.new_sessions_per_minute)),
            ),
            address_sends: RateLimiter::keyed(
                Quota::per_minute(nz(c.address_messages_per_minute))
                    .allow_burst(nz(c.address_messages_burst)),
            ),
        }
    }

    /// Forgets buckets that are full again, so memory does not grow with every visitor.
    pub fn shrink(&self) {
        self.ip.retain_recent();
        self.session.retain_recent();
        self.sends.retain_recent();
        self.claims.retain_recent();
        self.address_sends.retain_recent();
    }
}

fn too_many(wait: Duration, what: &str) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    let mut res = ApiError::new(
        ErrorCode::RateLimited,
        format!("too many {what}; retry in {secs} s"),
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

// A ready response as the error keeps the call sites to one `?`-like match; its size is
// irrelevant next to the request it answers.
#[allow(clippy::result_large_err)]
fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
    what: &str,
) -> Result<(), Response> {
    limiter.check_key(key).map_err(|not_until| {
        too_many(
            not_until.wait_time_from(DefaultClock::default().now()),
            what,
        )
    })
}

fn is_trusted(peer: Option<SocketAddr>, state: &AppState) -> bool {
    peer.is_some_and(|p| state.config.trusted_proxies.contains(&p.ip()))
}

/// The client's address: the peer, or for a trusted proxy the last address it appended
/// to `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    state: &AppState,
) -> Option<IpAddr> {
    let peer_ip = peer?.ip();
    if !is_trusted(peer, state) {
        return Some(peer_ip);
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !state.config.trusted_proxies.contains(ip))
            .unwrap_or(peer_ip),
    )
}

/// Whether the request reached us over https: natively, or through a trusted proxy that
/// says so. A `X-Forwarded-Proto` from anyone else is ignored.
fn arrived_over_https(peer: Option<SocketAddr>, headers: &HeaderMap, state: &AppState) -> bool {
    if state.tls {
        return true;
    }
    is_trusted(peer, state)
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

fn peer_of(req: &Request) -> Option<SocketAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

fn is_static(path: &str) -> bool {
    path.starts_with("/pkg/") || path == "/favicon.svg" || path == "/favicon.ico"
}

/// Outermost layer: transport rules and headers every response carries.
pub async fn edge(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = peer_of(&req);
    let path = req.uri().path().to_owned();

    // In https mode nothing is served over plain http (health checks excepted, for load
    // balancers that probe the backend directly).
    if state.https && path != "/healthz" && !arrived_over_https(peer, req.headers(), &state) {
        let target = format!(
            "{}{}",
            state.origin,
            req.uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
        );
        return (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, target)]).into_response();
    }

    // The event stream is long-lived by design, and a server function's time is bounded in
    // the guard in two parts (reading its body, 408; handling it, 504), so that a client too
    // slow to send its body is never reported as a slow server.
    // Every page gets a nonce minted here, before Leptos renders it: the page's scripts
    // carry it and the policy below names it, whatever happens inside the render.
    let nonce = (!path.starts_with("/api/") && !path.starts_with("/pkg/")).then(|| {
        let n = leptos::nonce::Nonce::new();
        req.extensions_mut().insert(n.clone());
        n
    });
    let res = if path.starts_with("/api/") {
        next.run(req).await
    } else if req.method() == Method::HEAD {
        // A HEAD of a page is the GET it stands for, rendered to its end and sent without
        // its body. Left to the connection, the body would be dropped unread, halfway
        // through the render, and the render's pending tasks would then read reactive
        // state that is gone (a panic).
        *req.method_mut() = Method::GET;
        within(state.config.request_timeout, async move {
            let (parts, body) = next.run(req).await.into_parts();
            let _ = axum::body::to_bytes(body, usize::MAX).await;
            Response::from_parts(parts, axum::body::Body::empty())
        })
        .await
    } else {
        let deadline = tokio::time::Instant::now() + state.config.request_timeout;
        let res = within(state.config.request_timeout, next.run(req)).await;
        if is_static(&path) {
            // Files, sent at the client's pace: nothing renders.
            res
        } else {
            let (parts, body) = res.into_parts();
            Response::from_parts(parts, ends_by(body, deadline))
        }
    };
    let mut res = with_headers(res, &state);
    let is_html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if let (true, Some(nonce)) = (is_html, nonce)
        && let Ok(v) = HeaderValue::from_str(&app::page_csp(&nonce))
    {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

/// A page's body streams in as the parts it waits for resolve, after its head has gone; it
/// must still end. Past `deadline` the connection is cut (the browser sees the page as
/// incomplete, not finished), so a render that waits forever holds neither a connection nor
/// its memory forever.
fn ends_by(body: Body, deadline: tokio::time::Instant) -> Body {
    use futures::StreamExt;
    let chunks = Box::pin(body.into_data_stream());
    Body::from_stream(futures::stream::unfold(
        Some(chunks),
        move |chunks| async move {
            let mut chunks = chunks?;
            tokio::select! {
                next = chunks.next() => next.map(|chunk| (chunk, Some(chunks))),
                () = tokio::time::sleep_until(deadline) => {
                    tracing::warn!("a page was still rendering at its deadline: its connection is cut");
                    let late = std::io::Error::from(std::io::ErrorKind::TimedOut);
                    Some((Err(axum::Error::new(late)), None))
                }
            }
        },
    ))
}

/// `fut`'s response, or 504 `timeout` once `limit` has passed.
async fn within(limit: Duration, fut: impl Future<Output = Response>) -> Response {
    match tokio::time::timeout(limit, fut).await {
        Ok(res) => res,
        Err(_) => ApiError::new(ErrorCode::Timeout, "the request took too long").into_response(),
    }
}

fn with_headers(mut res: Response, state: &AppState) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static(
            "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()",
        ),
    );
    // Pages get their own policy, with their nonce, in `edge`; anything else may load
    // nothing at all.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
        );
    }
    if state.https {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    res
}

fn mode_for(method: &Method, path: &str) -> Option<Mode> {
    if path.starts_with("/api/") {
        // An upload needs a session that exists already, as a GET does: it never claims.
        Some(
            if method == Method::GET || (method == Method::POST && path == UPLOAD_PATH) {
                Mode::Stream
            } else {
                Mode::Api
            },
        )
    } else if is_static(path) {
        // Static files are the same for everyone and need no session.
        None
    } else {
        Some(Mode::Page)
    }
}

fn csrf(msg: &str) -> Response {
    ApiError::new(ErrorCode::CsrfRejected, msg.to_owned()).into_response()
}

/// Refuses requests a browser sent on behalf of another site. `Sec-Fetch-Site` is the
/// primary signal (every current browser sends it); `Origin` is checked whenever present.
/// Requests with neither come from non-browser clients, which carry no ambient cookies an
/// attacker could ride on; server functions additionally need the custom session header,
/// which no cross-site form or simple request can set.
fn cross_site(headers: &HeaderMap, state: &AppState) -> Option<Response> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Some(csrf("cross-site requests are not accepted"));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let ok = origin.to_str().is_ok_and(|o| origin_allowed(o, state));
        if !ok {
            return Some(csrf("the request's Origin is not this site"));
        }
    }
    None
}

fn origin_allowed(origin: &str, state: &AppState) -> bool {
    if origin == state.origin {
        return true;
    }
    // Without an explicit public URL, the loopback names of the same port are one site
    // (http://localhost:3000 and http://127.0.0.1:3000).
    if state.config.public_url.is_none()
        && let Ok(url) = url::Url::parse(origin)
    {
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        return loopback && url.port_or_known_default() == Some(state.config.addr.port());
    }
    false
}

/// The session guard: every page load and server function passes through it.
pub async fn session_guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(mode) = mode_for(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let path = req.uri().path().to_owned();

    let mut req = req;
    if mode != Mode::Page
        && let Some(res) = cross_site(req.headers(), &state)
    {
        return private(res);
    }
    if path == UPLOAD_PATH && req.method() == Method::POST {
        // A cross-site form can post multipart too: the custom header, which it cannot
        // set, is required whatever the cookies say.
        if req.headers().get(guard::SESSION_HEADER).is_none() {
            return private(csrf("uploads need the X-Confide-Session header"));
        }
        if !is_multipart(&req) {
            return private(
                ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    "uploads are multipart/form-data",
                )
                .into_response(),
            );
        }
    }
    if mode == Mode::Api {
        if req.method() != Method::POST {
            return private(
                ApiError::new(ErrorCode::MethodNotAllowed, "server functions take POST")
                    .into_response(),
            );
        }
        // JSON only: a form or text/plain post (what a cross-site form can send) never
        // reaches a server function.
        if !is_json(&req) {
            return private(
                ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    "server functions accept application/json only",
                )
                .into_response(),
            );
        }
        // The custom header is required: cookies alone never authorise a state change.
        if req.headers().get(guard::SESSION_HEADER).is_none()
            && !guard::cookie_values(req.headers(), state.guard.sid_cookie_name()).is_empty()
        {
            return private(csrf("server functions need the X-Confide-Session header"));
        }
        req = match buffer_body(req, state.config.body_limit, state.config.request_timeout).await {
            Ok(r) => r,
            Err(res) => return private(res),
        };
    }

    let ip = client_ip(peer_of(&req), req.headers(), &state).map(address_key);
    // Only a request that carries something shaped like a proof can be a proven session;
    // everything else is anonymous and spends its address's bucket before any store work.
    let may_be_proven = guard::cookie_values(req.headers(), state.guard.proof_cookie_name())
        .iter()
        .any(|v| confide_core::Proof::hash_cookie_value(v).is_some());
    if !may_be_proven && let Some(ip) = ip {
        if let Err(res) = check(&state.limits.ip, &ip, "requests from this address") {
            return private(res);
        }
        // A server function without a proof is a session start (nothing else can succeed
        // without one), so it also spends the address's budget of new sessions.
        if mode == Mode::Api
            && let Err(res) = check(&state.limits.claims, &ip, "new sessions from this address")
        {
            return private(res);
        }
    }
    // A proof that does not hold is anonymous after all.
    let charge_failed_proof = || match ip {
        Some(ip) if may_be_proven => {
            check(&state.limits.ip, &ip, "requests from this address").err()
        }
        _ => None,
    };

    let outcome = match guard::check(&state.store, &state.guard, req.headers(), mode).await {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::debug!(
                code = e.code.as_str(),
                path,
                "request refused by the session guard"
            );
            if let Some(res) = charge_failed_proof() {
                return private(res);
            }
            // A `session_ended` answer leaves the proof cookie alone: the request may carry
            // a newer session's proof (one sent while a sign-in renewed the session), and a
            // stale one is replaced by the next claim anyway.
            let res = e.into_response();
            return private(res);
        }
    };
    match &outcome.session {
        Some(session) => {
            if mode != Mode::Page {
                let key = *session.id().as_bytes();
                if let Err(res) = check(&state.limits.session, &key, "requests in this session") {
                    return private(res);
                }
                if SEND_PATHS.contains(&path.as_str()) {
                    if let Err(res) = check(&state.limits.sends, &key, "messages") {
                        return private(res);
                    }
                    if let Some(ip) = ip
                        && let Err(res) = check(
                            &state.limits.address_sends,
                            &ip,
                            "messages from this address",
                        )
                    {
                        return private(res);
                    }
                }
            }
            req.extensions_mut().insert(session.clone());
        }
        None => {
            if let Some(res) = charge_failed_proof() {
                return private(res);
            }
        }
    }
    let addr = confide_core::auth::ClientAddr {
        ip: client_ip(peer_of(&req), req.headers(), &state),
        via_trusted_proxy: is_trusted(peer_of(&req), &state),
    };
    req.extensions_mut().insert(addr);
    let mut res = if mode == Mode::Api {
        within(state.config.request_timeout, next.run(req)).await
    } else {
        next.run(req).await
    };
    // A sign-in answers with the proof of the session that replaces this one; the proof
    // of the session this request claimed must not overwrite it.
    let proof_prefix = format!("{}=", state.guard.proof_cookie_name());
    let handler_set_proof = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.starts_with(&proof_prefix)));
    if let Some(cookie) = outcome.set_cookie
        && !handler_set_proof
        && let Ok(v) = HeaderValue::from_str(&cookie)
    {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    if mode != Mode::Page {
        res = status_from_error_code(res).await;
    }
    private(res)
}

/// Reads the whole body (server-function bodies are small JSON) so that an oversized one
/// gets a clear 413 and a slow one a 408, whatever its framing.
async fn buffer_body(req: Request, limit: usize, timeout: Duration) -> Result<Request, Response> {
    let too_large = || ApiError::too_large("the request body", limit).into_response();
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(Request::from_parts(parts, Body::from(bytes))),
        Ok(Err(_)) => Err(too_large()),
        Err(_) => Err(ApiError::new(
            ErrorCode::RequestTimeout,
            "the request body arrived too slowly",
        )
        .into_response()),
    }
}

fn is_multipart(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("multipart/form-data"))
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
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
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
    if let Ok(err) = serde_json::from_slice::<ApiError>(&bytes)
        && let Ok(status) = StatusCode::from_u16(err.status())
    {
        parts.status = status;
    }
    parts.headers.remove("serverfnerror");
    Response::from_parts(parts, Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    async fn read_all(body: Body) -> (Vec<u8>, bool) {
        let mut chunks = body.into_data_stream();
        let mut got = Vec::new();
        while let Some(chunk) = chunks.next().await {
            match chunk {
                Ok(bytes) => got.extend_from_slice(&bytes),
                Err(_) => return (got, false),
            }
        }
        (got, true)
    }

    #[tokio::test]
    async fn a_page_still_rendering_at_its_deadline_is_cut_off() {
        let never_ends = futures::stream::once(async {
            Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"<html>shell"))
        })
        .chain(futures::stream::pending());
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        let read = read_all(ends_by(Body::from_stream(never_ends), deadline));
        let (got, ended) = tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .expect("the body ends at its deadline");
        assert_eq!(got, b"<html>shell");
        assert!(!ended, "cut off, not ended as if complete");
    }

    #[tokio::test]
    async fn a_page_that_ends_in_time_is_passed_on_whole() {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let (got, ended) = read_all(ends_by(Body::from("<html>whole</html>"), deadline)).await;
        assert_eq!((got.as_slice(), ended), (&b"<html>whole</html>"[..], true));
    }
}
