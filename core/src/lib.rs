//! Confide's core, free of any web framework: the types the browser and the server share
//! (`SessionId`, `ApiError`, the chat model) and, with the `server` feature, the server-side
//! domain: the session guard's rules, the store contract, `UserSession`, the chat runtime,
//! sign-in, live events, the assistant seam and markdown rendering.
//!
//! The `app` crate's server functions and the `server` crate's tower layers call into it;
//! it calls neither. Everything here takes its session from a `VerifiedSession`, which only
//! `guard::check` makes.

#![warn(missing_docs)]

mod error;
pub mod model;
mod session_id;

pub use error::{ApiError, ErrorCode};
pub use session_id::{
    DEFAULT_ABSOLUTE_SECS, DEFAULT_IDLE_SECS, SESSION_ID_LEN, SessionId, SessionIdError,
};

/// Name of the readable cookie that mirrors the browser's session id where cookies can be
/// `Secure` (https, loopback): the `__Host-` prefix means no other host (a sibling
/// subdomain) can set or shadow it.
pub const SID_COOKIE_NAME: &str = "__Host-confide_sid";
/// Its name on a plain-http deployment that runs with `insecure_cookies`.
pub const INSECURE_SID_COOKIE_NAME: &str = "confide_sid";
/// Header carrying the session id on every server-function call.
pub const SESSION_HEADER_NAME: &str = "x-confide-session";
/// Header repeating an error answer's code: a client that hands the answer on unread (the
/// browser's server-function client) still learns that the session is gone.
pub const ERROR_HEADER_NAME: &str = "x-confide-error";

#[cfg(feature = "server")]
pub mod assistant;
#[cfg(feature = "server")]
pub mod auth;
#[cfg(feature = "server")]
pub mod chat;
#[cfg(feature = "server")]
pub mod events;
#[cfg(feature = "server")]
pub mod files;
#[cfg(feature = "server")]
pub mod guard;
#[cfg(feature = "server")]
pub mod markdown;
#[cfg(feature = "server")]
pub mod settings;
#[cfg(feature = "server")]
pub mod steps;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod tools;
#[cfg(feature = "server")]
mod user_session;

#[cfg(feature = "server")]
pub use guard::{GuardConfig, GuardOutcome, Mode, VerifiedSession};
#[cfg(feature = "server")]
pub use store::{
    Chats, Claim, Lifetimes, Probe, Proof, ProofHash, SessionStore, SessionTimes, Sessions,
    StoreError, Values, Verify,
};
#[cfg(feature = "server")]
pub use user_session::UserSession;

/// How many threads the machine runs at once, looked up once: on Linux each lookup reads the
/// process's cgroup files, several opens and reads in `/proc` and `/sys`.
#[cfg(feature = "server")]
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}
