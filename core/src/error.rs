//! The one error shape every API answer uses: `{"code": "...", "message": "..."}`.
//!
//! The code is stable and machine-readable; the HTTP status follows from it, so the guard
//! (a tower layer) and server functions produce identical bodies and the client decodes
//! both the same way.

use serde::{Deserialize, Serialize};
use server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};

/// What went wrong, as a stable machine-readable code; the HTTP status follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A server function was called without a session id.
    NoSession,
    /// The session id is not a canonical UUID v4.
    InvalidSessionId,
    /// The header and the cookie name different sessions, or a cookie is repeated.
    SessionMismatch,
    /// Another request claimed this session id first.
    SessionClaimed,
    /// The session exists but this request does not hold its proof.
    SessionProofMismatch,
    /// The session this browser had has ended (signed out, ended from another browser,
    /// expired): start a new one.
    SessionEnded,
    /// Wrong username or password (never says which).
    LoginFailed,
    /// This needs a signed-in user.
    LoginRequired,
    /// Registration asked for a name that is taken.
    UsernameTaken,
    /// The identity provider's answer was refused (signature, audience, expiry, nonce…).
    OidcFailed,
    /// The sign-in answer does not belong to the sign-in this browser started.
    InvalidState,
    /// The identity provider could not be reached.
    ProviderUnavailable,
    /// The request body or a field is malformed.
    InvalidInput,
    /// A `UserSession` key is empty, too long or uses characters outside `[A-Za-z0-9._:-]`.
    KeyInvalid,
    /// A value, a field or a body is over its size limit.
    TooLarge,
    /// The session holds as many keys as it may.
    TooManyKeys,
    /// A per-session limit (threads, messages) is reached.
    LimitReached,
    /// The thread is busy with a reply; stop it first.
    Busy,
    /// The assistant failed to answer.
    AssistantError,
    /// Server functions take JSON only.
    UnsupportedMediaType,
    /// The request came from another site (Origin / Sec-Fetch-Site), or lacks the custom
    /// session header.
    CsrfRejected,
    /// Too many requests; `Retry-After` says when to try again.
    RateLimited,
    /// A daily quota (messages, model tokens) is used up; the message says when it resets.
    QuotaExceeded,
    /// Server functions take POST.
    MethodNotAllowed,
    /// The request body arrived too slowly.
    RequestTimeout,
    /// Handling the request took too long.
    Timeout,
    /// The thing asked for does not exist in this session.
    NotFound,
    /// The session store did not answer in time.
    StoreUnavailable,
    /// An operator endpoint was called without its credentials.
    Unauthorized,
    /// The server holds as many of these (e.g. open event streams) as it may; retry later.
    Overloaded,
    /// Something failed on the server; the log has the details.
    Internal,
    /// The browser could not reach the server.
    Network,
    /// The server answered something the client could not read.
    BadResponse,
    /// A code this client version does not know.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code with this stable name; `Unknown` for a name this build does not know.
    pub fn from_name(name: &str) -> Self {
        serde_json::from_value(serde_json::Value::String(name.to_owned())).unwrap_or(Self::Unknown)
    }

    /// Whether the answer means the session the call named is gone for good (ended, or
    /// never this browser's): the page has to start, or adopt, another.
    pub fn session_gone(self) -> bool {
        matches!(
            self,
            Self::SessionEnded | Self::SessionProofMismatch | Self::NoSession
        )
    }

    /// The HTTP status an answer with this code carries.
    pub fn status(self) -> u16 {
        match self {
            Self::NoSession => 401,
            Self::InvalidSessionId
            | Self::SessionMismatch
            | Self::InvalidInput
            | Self::KeyInvalid => 400,
            Self::SessionClaimed => 409,
            Self::SessionEnded | Self::LoginFailed | Self::LoginRequired | Self::OidcFailed => 401,
            Self::UsernameTaken => 409,
            Self::InvalidState => 400,
            Self::ProviderUnavailable => 502,
            Self::SessionProofMismatch => 403,
            Self::TooLarge => 413,
            Self::TooManyKeys | Self::LimitReached | Self::Busy => 409,
            Self::AssistantError => 502,
            Self::UnsupportedMediaType => 415,
            Self::CsrfRejected => 403,
            Self::RateLimited | Self::QuotaExceeded => 429,
            Self::MethodNotAllowed => 405,
            Self::RequestTimeout => 408,
            Self::Timeout => 504,
            Self::NotFound => 404,
            Self::StoreUnavailable | Self::Overloaded => 503,
            Self::Unauthorized => 401,
            Self::Internal | Self::Unknown => 500,
            Self::Network | Self::BadResponse => 502,
        }
    }

    /// The code as it appears in the JSON body, e.g. `no_session`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoSession => "no_session",
            Self::InvalidSessionId => "invalid_session_id",
            Self::SessionMismatch => "session_mismatch",
            Self::SessionClaimed => "session_claimed",
            Self::SessionProofMismatch => "session_proof_mismatch",
            Self::SessionEnded => "session_ended",
            Self::LoginFailed => "login_failed",
            Self::LoginRequired => "login_required",
            Self::UsernameTaken => "username_taken",
            Self::OidcFailed => "oidc_failed",
            Self::InvalidState => "invalid_state",
            Self::ProviderUnavailable => "provider_unavailable",
            Self::InvalidInput => "invalid_input",
            Self::KeyInvalid => "key_invalid",
            Self::TooLarge => "too_large",
            Self::TooManyKeys => "too_many_keys",
            Self::LimitReached => "limit_reached",
            Self::Busy => "busy",
            Self::AssistantError => "assistant_error",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::CsrfRejected => "csrf_rejected",
            Self::RateLimited => "rate_limited",
            Self::QuotaExceeded => "quota_exceeded",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RequestTimeout => "request_timeout",
            Self::Timeout => "timeout",
            Self::NotFound => "not_found",
            Self::StoreUnavailable => "store_unavailable",
            Self::Unauthorized => "unauthorized",
            Self::Overloaded => "overloaded",
            Self::Internal => "internal",
            Self::Network => "network",
            Self::BadResponse => "bad_response",
            Self::Unknown => "unknown",
        }
    }
}

/// The error of every API answer: a code for programs and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// What went wrong, for the client to act on.
    pub code: ErrorCode,
    /// What went wrong, in words a person can read.
    pub message: String,
}

impl ApiError {
    /// An error with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status to answer with, from the code.
    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The JSON body of the answer; never fails.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"code":"internal","message":"error encoding failed"}"#.to_owned()
        })
    }

    /// `NoSession`: the request carries no session id.
    pub fn no_session() -> Self {
        Self::new(ErrorCode::NoSession, "this request carries no session id")
    }
    /// `NotFound`: the thing asked for does not exist in this session.
    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound, "not found")
    }
    /// `StoreUnavailable`: the session store did not answer; the client may retry.
    pub fn store_unavailable() -> Self {
        Self::new(
            ErrorCode::StoreUnavailable,
            "the session store is unavailable; try again shortly",
        )
    }
    /// `InvalidInput`: the request is not what the call takes; `message` says why.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }
    /// `Busy`: a reply still streams in the thread.
    pub fn busy() -> Self {
        Self::new(
            ErrorCode::Busy,
            "a reply is still streaming in this thread; stop it first",
        )
    }
    /// `Internal`, saying nothing of the cause.
    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal error")
    }
    /// `TooLarge`: `what` is over `limit` bytes.
    pub fn too_large(what: &str, limit: usize) -> Self {
        Self::new(
            ErrorCode::TooLarge,
            format!("{what} is over the limit of {limit} bytes"),
        )
    }
}

impl FromServerFnError for ApiError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(e: ServerFnErrorErr) -> Self {
        match e {
            // Bad arguments are the caller's fault: say what was wrong without echoing it.
            ServerFnErrorErr::Args(_) | ServerFnErrorErr::MissingArg(_) => Self::new(
                ErrorCode::InvalidInput,
                "the request body is not valid JSON for this endpoint",
            ),
            ServerFnErrorErr::Request(m) => Self::new(ErrorCode::Network, m),
            // On the server this is the request body failing to decode; in the browser it is
            // the response.
            #[cfg(feature = "server")]
            ServerFnErrorErr::Deserialization(m) => Self::new(
                ErrorCode::InvalidInput,
                format!("invalid request body: {}", truncate(&m, 200)),
            ),
            #[cfg(not(feature = "server"))]
            ServerFnErrorErr::Deserialization(m) => Self::new(ErrorCode::BadResponse, m),
            _ => Self::internal(),
        }
    }
}

#[cfg_attr(not(feature = "server"), allow(dead_code))]
fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(feature = "server")]
impl axum::response::IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        let status = http::StatusCode::from_u16(self.status())
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            [
                (http::header::CONTENT_TYPE, "application/json"),
                (http::header::CACHE_CONTROL, "no-store"),
                (
                    http::HeaderName::from_static(crate::ERROR_HEADER_NAME),
                    self.code.as_str(),
                ),
            ],
            self.to_json(),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_read_back_from_its_name_is_itself() {
        for code in [
            ErrorCode::SessionEnded,
            ErrorCode::SessionProofMismatch,
            ErrorCode::NoSession,
            ErrorCode::NotFound,
        ] {
            assert_eq!(ErrorCode::from_name(code.as_str()), code);
        }
        assert_eq!(ErrorCode::from_name("no_such_code"), ErrorCode::Unknown);
        assert_eq!(ErrorCode::from_name(""), ErrorCode::Unknown);
        assert!(ErrorCode::from_name("session_ended").session_gone());
        assert!(!ErrorCode::from_name("login_failed").session_gone());
        assert!(!ErrorCode::SessionClaimed.session_gone());
    }

    #[test]
    fn codes_serialize_as_their_stable_names() {
        for code in [
            ErrorCode::NoSession,
            ErrorCode::InvalidSessionId,
            ErrorCode::SessionMismatch,
            ErrorCode::SessionClaimed,
            ErrorCode::SessionProofMismatch,
            ErrorCode::SessionEnded,
            ErrorCode::LoginFailed,
            ErrorCode::LoginRequired,
            ErrorCode::UsernameTaken,
            ErrorCode::OidcFailed,
            ErrorCode::InvalidState,
            ErrorCode::ProviderUnavailable,
            ErrorCode::TooLarge,
            ErrorCode::StoreUnavailable,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn unknown_codes_decode_instead_of_failing() {
        let e: ApiError =
            serde_json::from_str(r#"{"code":"from_the_future","message":"x"}"#).unwrap();
        assert_eq!(e.code, ErrorCode::Unknown);
        assert_eq!(e.status(), 500);
    }

    #[test]
    fn statuses_match_the_protocol() {
        assert_eq!(ErrorCode::NoSession.status(), 401);
        assert_eq!(ErrorCode::InvalidSessionId.status(), 400);
        assert_eq!(ErrorCode::SessionMismatch.status(), 400);
        assert_eq!(ErrorCode::SessionClaimed.status(), 409);
        assert_eq!(ErrorCode::SessionProofMismatch.status(), 403);
    }
}
