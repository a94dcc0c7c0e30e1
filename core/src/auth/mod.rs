//! Signing in: accounts, session renewal, sign-out and the sessions of an account.
//!
//! An account is a *home* (`SessionId::home`): a store record no browser can name, which
//! holds the account record, the user's threads and one entry per signed-in session. A
//! browser session that signs in is replaced by a new one bound to the home (new id, new
//! proof), so an id or proof known before sign-in is worth nothing after it.

use crate::{
    ApiError, ErrorCode, SessionId, VerifiedSession, events::EventHub, guard::GuardConfig,
    model::SignInMethod, store::SessionStore,
};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use std::{net::IpAddr, num::NonZeroU32, sync::Arc, time::Duration};

pub(crate) mod accounts;
pub mod oidc;
mod password;
mod sessions;

pub use password::{
    MAX_PASSWORD_CHARS, MAX_USERNAME_CHARS, MIN_PASSWORD_CHARS, check_password_policy,
    hash_password, normalize_username, password_home,
};
pub use sessions::{Signing, agent_summary};

/// Value key of the account record in a home.
const ACCOUNT_KEY: &str = "confide:account";
/// Prefix of the per-session entries in a home.
const SESSION_PREFIX: &str = "confide:s:";
/// Value keys of a browser session that only the server writes.
pub(crate) const RESERVED_PREFIX: &str = "confide:";
const BINDING_KEY: &str = "confide:user";

/// Where the request came from, as the edge layer worked it out.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr {
    /// The client's address (behind a trusted proxy, the one it forwarded); `None` when unknown.
    pub ip: Option<IpAddr>,
    /// The direct peer is one of the configured trusted proxies.
    pub via_trusted_proxy: bool,
}

/// How people may sign in. With nothing enabled, Confide is anonymous only.
#[derive(Clone, Default)]
pub struct AuthConfig {
    /// Password accounts may sign in.
    pub password: bool,
    /// Anyone may create a password account from the sign-in page.
    pub registration: bool,
    /// Header naming the user, believed only from trusted proxies (e.g. `x-forwarded-user`).
    pub header: Option<http::HeaderName>,
    /// The OpenID Connect providers offered on the sign-in page.
    pub oidc: Vec<oidc::ProviderConfig>,
    /// Where browsers reach Confide, e.g. `https://chat.example.com` (the OIDC redirect).
    pub public_origin: String,
    /// Password attempts (successful or not) allowed per account and per address, per
    /// minute. Counting successes too keeps a guesser from learning anything by the limit.
    pub attempts_per_account: u32,
    /// Attempts (sign-ins and registrations) allowed per address, per minute.
    pub attempts_per_address: u32,
    /// Sessions one account may have at once; a sign-in past it ends the oldest. 0: no limit.
    pub max_sessions_per_account: usize,
}

impl AuthConfig {
    /// Whether any sign-in method is on.
    pub fn enabled(&self) -> bool {
        self.password || self.header.is_some() || !self.oidc.is_empty()
    }
}

/// Shared by all requests (an axum `Extension`).
pub struct Auth {
    /// The sign-in methods and limits it was set up with.
    pub config: AuthConfig,
    guard: GuardConfig,
    store: Arc<dyn SessionStore>,
    /// Where a session's end is announced, so its open streams close on every instance.
    hub: Arc<dyn EventHub>,
    /// Attempts on one account from one address: a guesser slows only themselves.
    per_account_address: DefaultKeyedRateLimiter<[u8; 32]>,
    /// A looser cap on one account from everywhere, against guessing spread over addresses
    /// (ten times the per-address figure, so one attacker cannot lock a user out).
    per_account: DefaultKeyedRateLimiter<[u8; 32]>,
    /// Attempts (sign-ins and registrations) from one address, IPv6 counted per /64.
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    /// Argon2 runs at most this many at once, so a burst of sign-ins cannot take every core
    /// and 19 MiB per attempt without bound.
    hashing: tokio::sync::Semaphore,
    /// Verified against when the user does not exist, so "no such user" costs the same
    /// Argon2 work as "wrong password".
    dummy_hash: String,
    pub(crate) oidc: oidc::Providers,
    /// Where the sessions' files are, so a sign-in that keeps the chats keeps their files.
    pub(crate) files: Option<Arc<crate::files::FileStore>>,
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN)
}

/// What a home says about its account.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AccountRecord {
    method: SignInMethod,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_hash: Option<String>,
    created_ms: i64,
    /// Set by an operator (`confide user disable`): no sign-in succeeds, by any method.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    disabled: bool,
}

/// A session's own note of who it belongs to.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Binding {
    name: String,
    method: SignInMethod,
}

fn failed() -> ApiError {
    ApiError::new(ErrorCode::LoginFailed, "wrong username or password")
}

fn limited() -> ApiError {
    ApiError::new(
        ErrorCode::RateLimited,
        "too many sign-in attempts; wait a minute and try again",
    )
}

fn signed_in(session: &VerifiedSession) -> Result<&SessionId, ApiError> {
    session
        .home()
        .ok_or_else(|| ApiError::new(ErrorCode::LoginRequired, "sign in first"))
}

/// IPv6 clients usually hold a whole /64: count them as one address.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// The first bytes of a hash, for logs.
fn hex8(bytes: &[u8; 32]) -> String {
    bytes[..4].iter().map(|b| format!("{b:02x}")).collect()
}

impl Auth {
    /// Sets up sign-in from `config`; fails with a message when the OIDC settings are invalid
    /// (a bad provider id or URL).
    pub fn new(
        config: AuthConfig,
        guard: GuardConfig,
        store: Arc<dyn SessionStore>,
        hub: Arc<dyn EventHub>,
    ) -> Result<Self, String> {
        let oidc = oidc::Providers::new(&config)?;
        let cores = crate::cores();
        Ok(Self {
            per_account_address: RateLimiter::keyed(
                Quota::per_minute(nz(config.attempts_per_account))
                    .allow_burst(nz(config.attempts_per_account)),
            ),
            per_account: RateLimiter::keyed(
                Quota::per_minute(nz(config.attempts_per_account.saturating_mul(10)))
                    .allow_burst(nz(config.attempts_per_account.saturating_mul(10))),
            ),
            hashing: tokio::sync::Semaphore::new(cores),
            per_address: RateLimiter::keyed(
                Quota::per_minute(nz(config.attempts_per_address))
                    .allow_burst(nz(config.attempts_per_address)),
            ),
            config,
            guard,
            store,
            hub,
            dummy_hash: password::DUMMY_HASH.to_owned(),
            oidc,
            files: None,
        })
    }

    /// The same, with the chats' files in `files` (moved to the home with the chats).
    pub fn with_files(mut self, files: Arc<crate::files::FileStore>) -> Self {
        self.files = Some(files);
        self
    }

    /// Forgets rate-limit buckets that are full again.
    pub fn shrink(&self) {
        self.per_account_address.retain_recent();
        self.per_account.retain_recent();
        self.per_address.retain_recent();
    }

    /// The configured OpenID Connect providers, as the sign-in page shows them.
    pub fn provider_buttons(&self) -> Vec<crate::model::ProviderButton> {
        self.oidc.buttons()
    }

    /// Counts an attempt from `from` against the address limit.
    pub fn limit_address(&self, from: Option<IpAddr>) -> Result<(), ApiError> {
        if let Some(ip) = from {
            self.per_address
                .check_key(&address_key(ip))
                .map_err(|_| limited())?;
        }
        Ok(())
    }

    /// Deletes a session (or a home) and closes every stream still open for it.
    pub(super) async fn delete_and_end(&self, id: &SessionId) -> Result<bool, ApiError> {
        let existed = self.store.delete(id).await?;
        self.hub.end(id);
        Ok(existed)
    }
}

/// A deadline for things the user waits on, such as a provider's token endpoint.
pub(crate) const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
