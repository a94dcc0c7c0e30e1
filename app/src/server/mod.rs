//! Server-only parts of the app: the store contract, the session guard's rules and the
//! `UserSession` API that server functions use.

pub mod assistant;
pub mod auth;
pub mod chat;
pub mod events;
pub mod guard;
pub mod markdown;
pub mod store;
mod user_session;

pub use guard::{GuardConfig, GuardOutcome, Mode, VerifiedSession};
pub use store::{
    Chats, Claim, Lifetimes, Probe, Proof, ProofHash, SessionStore, SessionTimes, Sessions,
    StoreError, Values, Verify,
};
pub use user_session::UserSession;
