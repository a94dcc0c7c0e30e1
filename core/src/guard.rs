//! Decides, for one request, which session it acts for.
//!
//! This is the only place a `VerifiedSession` is made, so a server function that holds one
//! knows the guard checked the handle and its proof. The HTTP plumbing (the tower layer)
//! lives in the server crate; the rules live here beside the types they protect.

use super::store::{Claim, Lifetimes, Proof, ProofHash, SessionStore, Verify};
use crate::{ApiError, ErrorCode, SessionId};
use cookie::{Cookie, SameSite};
use http::{HeaderMap, header::COOKIE};
use std::sync::Arc;

pub use crate::SESSION_HEADER_NAME as SESSION_HEADER;

/// For this long after a claim, a request for the id without any proof is treated as a
/// lost claim race (409) rather than as a stranger (403).
pub const CLAIM_RACE_WINDOW_MS: i64 = 2_000;

/// How the guard treats a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A server function: errors are answered, an unknown id is claimed.
    Api,
    /// A long-lived read (the event stream): like `Api`, but it never claims an id, since
    /// a GET must not change state.
    Stream,
    /// A page load: it never claims or fails; without a proven session it renders only the
    /// public shell.
    Page,
}

/// What the guard needs besides the request: session lifetimes and the cookie mode.
#[derive(Clone)]
pub struct GuardConfig {
    /// How long sessions live; also the proof cookie's `Max-Age`.
    pub lifetimes: Lifetimes,
    /// `__Host-` name and `Secure`; off only when explicitly configured for plain http.
    pub secure_cookies: bool,
}

impl GuardConfig {
    /// The proof cookie's name: `__Host-` prefixed when cookies are `Secure`.
    pub fn proof_cookie_name(&self) -> &'static str {
        if self.secure_cookies {
            "__Host-confide_proof"
        } else {
            "confide_proof"
        }
    }

    /// The readable id cookie carries the same prefix as the proof wherever it can.
    pub fn sid_cookie_name(&self) -> &'static str {
        if self.secure_cookies {
            crate::SID_COOKIE_NAME
        } else {
            crate::INSECURE_SID_COOKIE_NAME
        }
    }
}

/// A session whose handle and proof the guard has checked for this request.
#[derive(Clone)]
pub struct VerifiedSession {
    id: SessionId,
    /// The signed-in user's home, whose threads this session works on.
    home: Option<SessionId>,
    fresh: bool,
    created_ms: i64,
    lifetimes: Lifetimes,
    store: Arc<dyn SessionStore>,
}

impl VerifiedSession {
    /// The session's id, as the request named it.
    pub fn id(&self) -> &SessionId {
        &self.id
    }
    /// The signed-in user's home; `None` for an anonymous session.
    pub fn home(&self) -> Option<&SessionId> {
        self.home.as_ref()
    }
    /// Where this session's threads live: the user's home when signed in, else the
    /// session itself.
    pub fn owner(&self) -> &SessionId {
        self.home.as_ref().unwrap_or(&self.id)
    }
    /// True when this request created the session.
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }
    /// When the session was claimed, in milliseconds since the Unix epoch.
    pub fn created_ms(&self) -> i64 {
        self.created_ms
    }
    /// How long sessions live, as configured.
    pub fn lifetimes(&self) -> Lifetimes {
        self.lifetimes
    }
    pub(crate) fn store(&self) -> &dyn SessionStore {
        &*self.store
    }
}

impl std::fmt::Debug for VerifiedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedSession")
            .field("id", &self.id)
            .field("fresh", &self.fresh)
            .finish()
    }
}

/// What the guard concluded.
#[derive(Default)]
pub struct GuardOutcome {
    /// The session the request acts for; `None` when a page load has no proven session.
    pub session: Option<VerifiedSession>,
    /// A `Set-Cookie` value carrying a newly issued proof.
    pub set_cookie: Option<String>,
    /// A short tag of the id for the access log, never the id itself.
    pub log_tag: Option<String>,
}

/// Every value of one cookie name across all `Cookie` headers, repeats included, as the
/// cookie parser reads them (`name =v` is the cookie `name`). Every decision about cookies
/// is made from this, never from the raw header text.
pub fn cookie_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for header in headers.get_all(COOKIE) {
        let Ok(s) = header.to_str() else { continue };
        for c in Cookie::split_parse(s).flatten() {
            if c.name() == name {
                out.push(c.value().to_owned());
            }
        }
    }
    out
}

fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> Result<Vec<&'a str>, ApiError> {
    let mut out: Vec<&str> = Vec::new();
    for v in headers.get_all(name) {
        let v = v.to_str().map_err(|_| invalid_id())?;
        if !out.contains(&v) {
            out.push(v);
        }
    }
    Ok(out)
}

fn invalid_id() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidSessionId,
        "the session id must be a lowercase canonical UUID v4",
    )
}

fn mismatch(what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::SessionMismatch,
        format!("conflicting session ids: {what}"),
    )
}

/// Runs the session protocol for one request. `Err` is the answer to send instead of
/// running the handler.
pub async fn check(
    store: &Arc<dyn SessionStore>,
    cfg: &GuardConfig,
    headers: &HeaderMap,
    mode: Mode,
) -> Result<GuardOutcome, ApiError> {
    let page = mode == Mode::Page;
    // A page load is never refused: whatever is wrong, it gets the public shell and the
    // client's session-start call gets the error and recovers.
    let soft = |e: ApiError| {
        if page {
            Ok(GuardOutcome::default())
        } else {
            Err(e)
        }
    };

    let from_header = match header_values(headers, SESSION_HEADER) {
        Ok(v) => v,
        Err(e) => return soft(e),
    };
    if from_header.len() > 1 {
        return soft(mismatch("the session header is repeated"));
    }
    // The header, which only this site's script can set, names the session of a server
    // function; the id cookie exists so that page loads and the event stream (which cannot
    // send headers) know it too. So a call with the header does not read the id cookie at
    // all: a stray or planted copy of it cannot break the session.
    let raw = match from_header.first() {
        Some(h) => h.to_string(),
        None => {
            let mut from_cookie = cookie_values(headers, cfg.sid_cookie_name());
            if from_cookie.len() > 1 {
                return soft(mismatch("the session cookie is repeated"));
            }
            match from_cookie.pop() {
                Some(c) => c,
                None => return soft(ApiError::no_session()),
            }
        }
    };
    let id = match SessionId::parse(&raw) {
        Ok(id) => id,
        Err(_) => return soft(invalid_id()),
    };
    let tag = id.log_tag();

    // Two proofs, even equal ones, mean a cookie set from somewhere else: refuse rather
    // than guess which one is the browser's own.
    let proofs = cookie_values(headers, cfg.proof_cookie_name());
    if proofs.len() > 1 {
        return soft(mismatch("the proof cookie is repeated"));
    }
    let proof: Option<ProofHash> = proofs.first().and_then(|v| Proof::hash_cookie_value(v));

    let verified = |fresh: bool, created_ms: i64, home: Option<SessionId>| VerifiedSession {
        id,
        home,
        fresh,
        created_ms,
        lifetimes: cfg.lifetimes,
        store: store.clone(),
    };

    match store.verify(&id, proof.as_ref()).await? {
        Verify::Valid { created_ms, home } => Ok(GuardOutcome {
            session: Some(verified(false, created_ms, home)),
            set_cookie: None,
            log_tag: Some(tag),
        }),
        // A proof-less request just after the claim is the loser of a claim race (two tabs
        // opening at once with one new id): it gets 409 and retries with the proof cookie
        // the winner's answer set. Later, or with a wrong proof, it is someone else's session.
        Verify::Denied { created_ms }
            if !page
                && proof.is_none()
                && super::store::now_ms() - created_ms < CLAIM_RACE_WINDOW_MS =>
        {
            Err(claimed_error())
        }
        Verify::Denied { .. } => {
            tracing::warn!(session = %tag, proof_present = proof.is_some(), "suspicious: session id used without its proof");
            soft(ApiError::new(
                ErrorCode::SessionProofMismatch,
                "this session belongs to another browser; start a new one",
            ))
        }
        Verify::Unknown if page => Ok(GuardOutcome {
            log_tag: Some(tag),
            ..Default::default()
        }),
        // An unknown id is claimed whatever proof cookie comes along: a browser that took a
        // new id still sends its old proof until the claim's answer replaces it. An id that
        // belonged to a session that ended is never claimed again (the store remembers it),
        // so nothing comes back to life this way.
        Verify::Unknown if mode == Mode::Stream => Err(ApiError::no_session()),
        Verify::Unknown => {
            let secret = Proof::generate()?;
            match store.claim(&id, &secret.hash(), None).await? {
                Claim::Won => {
                    tracing::info!(session = %tag, "session claimed");
                    Ok(GuardOutcome {
                        session: Some(verified(true, super::store::now_ms(), None)),
                        set_cookie: Some(proof_cookie(cfg, &secret)),
                        log_tag: Some(tag),
                    })
                }
                Claim::Taken => Err(claimed_error()),
                // An ended id never comes back, whoever asks: the browser takes a new one.
                Claim::Ended => Err(ended_error()),
            }
        }
    }
}

fn ended_error() -> ApiError {
    ApiError::new(
        ErrorCode::SessionEnded,
        "this session has ended; start a new one",
    )
}

fn claimed_error() -> ApiError {
    ApiError::new(
        ErrorCode::SessionClaimed,
        "another request claimed this session id first",
    )
}

/// A `Set-Cookie` value carrying `secret` as the proof cookie.
pub fn proof_cookie(cfg: &GuardConfig, secret: &Proof) -> String {
    Cookie::build((cfg.proof_cookie_name(), secret.encode()))
        .http_only(true)
        .secure(cfg.secure_cookies)
        .same_site(SameSite::Strict)
        .path("/")
        .max_age(cookie::time::Duration::seconds(
            cfg.lifetimes.absolute.as_secs() as i64,
        ))
        .build()
        .to_string()
}
