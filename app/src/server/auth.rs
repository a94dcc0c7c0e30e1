//! Signing in: accounts, session renewal, sign-out and the sessions of an account.
//!
//! An account is a *home* (`SessionId::home`): a store record no browser can name, which
//! holds the account record, the user's threads and one entry per signed-in session. A
//! browser session that signs in is replaced by a new one bound to the home (new id, new
//! proof), so an id or proof known before sign-in is worth nothing after it.

use super::{
    VerifiedSession,
    events::EventHub,
    guard::{GuardConfig, proof_cookie},
    store::{Claim, Proof, SessionStore, SessionTimes, StoreError, now_ms},
};
use crate::{
    ApiError, ErrorCode, SessionId,
    model::{Account, SessionRow, SignInMethod},
};
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::{net::IpAddr, num::NonZeroU32, sync::Arc, time::Duration};

pub mod oidc;

/// Value key of the account record in a home.
const ACCOUNT_KEY: &str = "confide:account";
/// Prefix of the per-session entries in a home.
const SESSION_PREFIX: &str = "confide:s:";
/// Value keys of a browser session that only the server writes.
pub(crate) const RESERVED_PREFIX: &str = "confide:";

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 256;
pub const MAX_USERNAME_CHARS: usize = 64;

/// Where the request came from, as the edge layer worked it out.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr {
    pub ip: Option<IpAddr>,
    /// The direct peer is one of the configured trusted proxies.
    pub via_trusted_proxy: bool,
}

/// How people may sign in. With nothing enabled, Confide is anonymous only.
#[derive(Clone, Default)]
pub struct AuthConfig {
    pub password: bool,
    /// Anyone may create a password account from the sign-in page.
    pub registration: bool,
    /// Header naming the user, believed only from trusted proxies (e.g. `x-forwarded-user`).
    pub header: Option<http::HeaderName>,
    pub oidc: Vec<oidc::ProviderConfig>,
    /// Where browsers reach Confide, e.g. `https://chat.example.com` (the OIDC redirect).
    pub public_origin: String,
    /// Password attempts (successful or not) allowed per account and per address, per
    /// minute. Counting successes too keeps a guesser from learning anything by the limit.
    pub attempts_per_account: u32,
    pub attempts_per_address: u32,
}

impl AuthConfig {
    pub fn enabled(&self) -> bool {
        self.password || self.header.is_some() || !self.oidc.is_empty()
    }
}

/// Shared by all requests (an axum `Extension`).
pub struct Auth {
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
}

/// A home's note of one signed-in browser session.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionEntry {
    id: String,
    method: SignInMethod,
    agent: String,
    signed_in_ms: i64,
}

/// A session's own note of who it belongs to.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Binding {
    name: String,
    method: SignInMethod,
}
const BINDING_KEY: &str = "confide:user";

/// Who is signing in, as a sign-in method established it.
pub struct Signing<'a> {
    pub home: SessionId,
    pub name: &'a str,
    pub method: SignInMethod,
    /// Move the anonymous session's threads to the user.
    pub keep_threads: bool,
    /// The browser's User-Agent, summarised for "my sessions".
    pub agent: &'a str,
    /// The password hash the attempt was checked against: if it changed meanwhile (a
    /// password change), the sign-in loses.
    pub verified_hash: Option<&'a str>,
}

/// A short, stable handle for a session in "my sessions": a hash, so the page never shows
/// another browser's id.
fn handle_of(id: &SessionId) -> String {
    let d = Sha256::digest(id.as_bytes());
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn failed() -> ApiError {
    ApiError::new(ErrorCode::LoginFailed, "wrong username or password")
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidInput, msg)
}

/// Usernames are compared in one spelling: trimmed, lowercase, a small alphabet.
pub fn normalize_username(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim().to_lowercase();
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_USERNAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(name)
    } else {
        Err(invalid(format!(
            "a username is 1 to {MAX_USERNAME_CHARS} characters of a-z, 0-9, '.', '_', '-', '@'"
        )))
    }
}

pub fn check_password_policy(password: &str) -> Result<(), ApiError> {
    let n = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) {
        return Err(invalid(format!(
            "a password is {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

/// Argon2id with the crate's defaults (19 MiB, 2 passes: the OWASP baseline).
/// What an unknown user's password is checked against, so that "no such user" costs the
/// same Argon2 work as "wrong password". A constant with `Argon2::default()`'s parameters
/// (`dummy_hash_costs_what_a_real_one_does` holds them equal) rather than a hash made at
/// start-up, which would add ~30 ms to every cold start.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$tSH+jzfysn9wuEUrDae4lw$jGmH6hrvo8DdTpXFSjWvCch1R+WAkNelQpnwjsDvIG0";

pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|_| ApiError::internal())?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| ApiError::internal())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| ApiError::internal())
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
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

pub fn password_home(username: &str) -> SessionId {
    SessionId::home(SignInMethod::Password.as_str(), username)
}

impl Auth {
    pub fn new(
        config: AuthConfig,
        guard: GuardConfig,
        store: Arc<dyn SessionStore>,
        hub: Arc<dyn EventHub>,
    ) -> Result<Self, String> {
        let oidc = oidc::Providers::new(&config)?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
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
            dummy_hash: DUMMY_HASH.to_owned(),
            oidc,
        })
    }

    /// Forgets rate-limit buckets that are full again.
    pub fn shrink(&self) {
        self.per_account_address.retain_recent();
        self.per_account.retain_recent();
        self.per_address.retain_recent();
    }

    /// Runs Argon2 off the async workers (it takes tens of milliseconds of CPU by design),
    /// a bounded number at a time.
    async fn argon<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| ApiError::internal())?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|_| ApiError::internal())
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
    async fn delete_and_end(&self, id: &SessionId) -> Result<bool, ApiError> {
        let existed = self.store.delete(id).await?;
        self.hub.end(id);
        Ok(existed)
    }

    async fn account(&self, home: &SessionId) -> Result<Option<AccountRecord>, ApiError> {
        let raw = match self.store.get(home, ACCOUNT_KEY).await {
            Ok(Some(raw)) => raw,
            // No home: no such account.
            Ok(None) | Err(StoreError::NoSuchSession) => return Ok(None),
            Err(e) => return Err(ApiError::from(e)),
        };
        serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|_| ApiError::internal())
    }

    async fn put_account(&self, home: &SessionId, rec: &AccountRecord) -> Result<(), ApiError> {
        let bytes = serde_json::to_vec(rec).map_err(|_| ApiError::internal())?;
        self.store
            .set(home, ACCOUNT_KEY, &bytes)
            .await
            .map_err(ApiError::from)
    }

    /// Who a session belongs to, for display.
    pub async fn account_of(&self, session: &VerifiedSession) -> Result<Option<Account>, ApiError> {
        if session.home().is_none() {
            return Ok(None);
        }
        let Some(raw) = self.store.get(session.id(), BINDING_KEY).await? else {
            return Ok(None);
        };
        let b: Binding = serde_json::from_slice(&raw).map_err(|_| ApiError::internal())?;
        Ok(Some(Account {
            name: b.name,
            method: b.method,
        }))
    }

    // ---- password accounts (also used by the `confide user` command) ---------------------

    /// Creates a password account. `UsernameTaken` if the name exists.
    pub async fn add_user(&self, username: &str, password: &str) -> Result<SessionId, ApiError> {
        let name = normalize_username(username)?;
        check_password_policy(password)?;
        let pw = password.to_owned();
        let hash = self.argon(move || hash_password(&pw)).await??;
        let home = password_home(&name);
        if !self.store.create_home(&home).await? {
            return Err(ApiError::new(
                ErrorCode::UsernameTaken,
                format!("the username {name:?} is taken"),
            ));
        }
        let rec = AccountRecord {
            method: SignInMethod::Password,
            name,
            password_hash: Some(hash),
            created_ms: now_ms(),
        };
        if let Err(e) = self.put_account(&home, &rec).await {
            // A home without an account would reserve the name for good.
            let _ = self.delete_and_end(&home).await;
            return Err(e);
        }
        Ok(home)
    }

    /// Sets a new password and ends every session of the account except `keep`.
    pub async fn set_password(
        &self,
        username: &str,
        password: &str,
        keep: Option<&SessionId>,
    ) -> Result<usize, ApiError> {
        let name = normalize_username(username)?;
        check_password_policy(password)?;
        let home = password_home(&name);
        let Some(mut rec) = self.account(&home).await? else {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("no user {name:?}"),
            ));
        };
        let pw = password.to_owned();
        rec.password_hash = Some(self.argon(move || hash_password(&pw)).await??);
        self.put_account(&home, &rec).await?;
        self.end_sessions(&home, keep).await
    }

    /// Deletes an account: its sessions, threads and record.
    pub async fn remove_user(&self, username: &str) -> Result<bool, ApiError> {
        let name = normalize_username(username)?;
        let home = password_home(&name);
        // The record goes first: a sign-in racing with the removal re-reads it after
        // registering its session, and either sees it gone (and ends itself) or registered
        // early enough for `end_sessions` below to find it.
        let had_record = self.account(&home).await?.is_some();
        match self.store.remove(&home, ACCOUNT_KEY).await {
            Ok(_) | Err(StoreError::NoSuchSession) => {}
            Err(e) => return Err(ApiError::from(e)),
        }
        self.end_sessions(&home, None).await?;
        let existed = self.delete_and_end(&home).await?;
        Ok(had_record || existed)
    }

    /// Checks a username and password. Unknown users and wrong passwords fail alike, after
    /// the same Argon2 work; attempts are limited per account and per address first.
    pub async fn check_password(
        &self,
        username: &str,
        password: &str,
        from: Option<IpAddr>,
    ) -> Result<(SessionId, String, String), ApiError> {
        if !self.config.password {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                "password sign-in is not enabled",
            ));
        }
        // The limits come before any other check, so probing names costs attempts too.
        let name = username.trim().to_lowercase();
        let account_key: [u8; 32] = Sha256::digest(name.as_bytes()).into();
        let mut pair = Sha256::new();
        pair.update(account_key);
        pair.update(
            from.map(address_key)
                .map(|a| a.to_string())
                .unwrap_or_default(),
        );
        let pair_key: [u8; 32] = pair.finalize().into();
        let limited_here = self.limit_address(from).is_err()
            || self.per_account_address.check_key(&pair_key).is_err()
            || self.per_account.check_key(&account_key).is_err();
        if limited_here {
            tracing::warn!(account = %hex8(&account_key), "sign-in attempts over the limit");
            return Err(limited());
        }
        if password.chars().count() > MAX_PASSWORD_CHARS {
            return Err(failed());
        }
        let record = match normalize_username(&name) {
            Ok(n) => self.account(&password_home(&n)).await?.map(|r| (n, r)),
            Err(_) => None,
        };
        let stored = record
            .as_ref()
            .and_then(|(_, r)| r.password_hash.clone())
            .unwrap_or_else(|| self.dummy_hash.clone());
        let pw = password.to_owned();
        let checked = stored.clone();
        let ok = self.argon(move || verify_password(&pw, &checked)).await?;
        match record {
            Some((n, r)) if ok && r.password_hash.is_some() => {
                Ok((password_home(&n), r.name, stored))
            }
            _ => {
                tracing::info!(account = %hex8(&account_key), "password sign-in failed");
                Err(failed())
            }
        }
    }

    /// Makes sure the home of an external account (OIDC, trusted header) exists and
    /// carries its current display name.
    pub(crate) async fn external_home(
        &self,
        method: SignInMethod,
        key: &str,
        name: &str,
    ) -> Result<SessionId, ApiError> {
        let home = SessionId::home(method.as_str(), key);
        let created = self.store.create_home(&home).await?;
        let current = if created {
            None
        } else {
            self.account(&home).await?
        };
        if current.as_ref().is_none_or(|r| r.name != name) {
            self.put_account(
                &home,
                &AccountRecord {
                    method,
                    name: name.into(),
                    password_hash: None,
                    created_ms: current.map(|r| r.created_ms).unwrap_or_else(now_ms),
                },
            )
            .await?;
        }
        Ok(home)
    }

    // ---- session renewal ----------------------------------------------------------------

    /// Replaces `session` with a new session bound to `home`: a new id and proof (the proof
    /// cookie goes into the response), the anonymous threads moved to the user when
    /// `keep_threads`, this browser's own values copied, the old session deleted.
    pub async fn sign_in(
        &self,
        session: &VerifiedSession,
        who: Signing<'_>,
    ) -> Result<(SessionId, String), ApiError> {
        let Signing {
            home,
            name,
            method,
            keep_threads,
            agent,
            verified_hash,
        } = who;
        let old = *session.id();
        // Entries of sessions that ended without signing out (expiry, a cleared browser)
        // must not pile up to the home's key limit.
        self.prune_entries(&home).await?;
        let (new_id, secret) = loop {
            let id = SessionId::random();
            let secret = Proof::generate()?;
            match self.store.claim(&id, &secret.hash(), Some(&home)).await? {
                Claim::Won => break (id, secret),
                // A collision of 122 random bits: draw again.
                Claim::Taken | Claim::Ended => continue,
            }
        };
        let binding = serde_json::to_vec(&Binding {
            name: name.into(),
            method,
        })
        .map_err(|_| ApiError::internal())?;
        self.store.set(&new_id, BINDING_KEY, &binding).await?;

        // This browser's own values (notes and the like) come along; the binding does not.
        for key in self.store.keys(&old, "").await? {
            if key.starts_with(RESERVED_PREFIX) {
                continue;
            }
            if let Some(v) = self.store.get(&old, &key).await? {
                self.store.set(&new_id, &key, &v).await?;
            }
        }
        if keep_threads && session.home().is_none() {
            self.move_threads(&old, &home).await?;
        }
        let entry = serde_json::to_vec(&SessionEntry {
            id: new_id.as_string(),
            method,
            agent: agent_summary(agent),
            signed_in_ms: now_ms(),
        })
        .map_err(|_| ApiError::internal())?;
        self.store
            .set(
                &home,
                &format!("{SESSION_PREFIX}{}", handle_of(&new_id)),
                &entry,
            )
            .await?;
        // A removal of the account or a password change may have run meanwhile. Both change
        // the account record before they list the sessions to end, and this session was
        // registered above, so one of the two sides always sees the other.
        let current = self.account(&home).await?;
        let still_valid = match (&current, verified_hash) {
            (None, _) => false,
            (Some(r), Some(h)) => r.password_hash.as_deref() == Some(h),
            (Some(_), None) => true,
        };
        if !still_valid {
            let _ = self.delete_and_end(&new_id).await;
            return Err(failed());
        }
        self.end_one(session).await?;
        tracing::info!(old = %old.log_tag(), new = %new_id.log_tag(), method = method.as_str(), "signed in; session renewed");
        Ok((new_id, proof_cookie(&self.guard, &secret)))
    }

    async fn move_threads(&self, from: &SessionId, home: &SessionId) -> Result<(), ApiError> {
        for t in self.store.list_threads(from).await? {
            let Some((thread, messages)) = self.store.get_thread(from, &t.id).await? else {
                continue;
            };
            // An earlier, interrupted sign-in may have moved it already: fill in the rest.
            if self.store.get_thread(home, &t.id).await?.is_none() {
                self.store.create_thread(home, &thread).await?;
            }
            for m in &messages {
                // The reply's task belongs to the old session, which is about to go.
                let mut m = m.clone();
                if m.status == crate::model::MessageStatus::Streaming {
                    m.status = crate::model::MessageStatus::Stopped;
                }
                self.store.put_message(home, &m).await?;
            }
            self.store.update_thread(home, &thread).await?;
        }
        Ok(())
    }

    /// Deletes a browser session and its entry in its home.
    async fn end_one(&self, session: &VerifiedSession) -> Result<(), ApiError> {
        // The session first: that is what must not outlive a sign-out. The entry is
        // bookkeeping, and its home may be gone already.
        self.delete_and_end(session.id()).await?;
        if let Some(home) = session.home() {
            let key = format!("{SESSION_PREFIX}{}", handle_of(session.id()));
            match self.store.remove(home, &key).await {
                Ok(_) | Err(StoreError::NoSuchSession) => {}
                Err(e) => return Err(ApiError::from(e)),
            }
        }
        Ok(())
    }

    /// Drops the entries of sessions that are no longer live.
    async fn prune_entries(&self, home: &SessionId) -> Result<(), ApiError> {
        self.live_entries(home).await.map(drop)
    }

    /// The home's sessions that are still live and still bound to it, with their times;
    /// the entries of the others are removed on the way.
    async fn live_entries(
        &self,
        home: &SessionId,
    ) -> Result<Vec<(SessionId, SessionTimes, SessionEntry)>, ApiError> {
        let mut live = Vec::new();
        for (key, e) in self.entries(home).await? {
            let found = match SessionId::parse(&e.id) {
                Ok(id) => self
                    .store
                    .peek(&id)
                    .await?
                    .filter(|t| t.home.as_ref() == Some(home))
                    .map(|t| (id, t)),
                Err(_) => None,
            };
            match found {
                Some((id, times)) => live.push((id, times, e)),
                None => self
                    .store
                    .remove(home, &key)
                    .await
                    .map_err(ApiError::from)
                    .map(drop)?,
            }
        }
        Ok(live)
    }

    /// Signs out: the session is deleted on the server.
    pub async fn sign_out(&self, session: &VerifiedSession) -> Result<(), ApiError> {
        self.end_one(session).await
    }

    async fn entries(&self, home: &SessionId) -> Result<Vec<(String, SessionEntry)>, ApiError> {
        let mut out = Vec::new();
        let keys = match self.store.keys(home, SESSION_PREFIX).await {
            Ok(k) => k,
            Err(StoreError::NoSuchSession) => return Ok(out),
            Err(e) => return Err(ApiError::from(e)),
        };
        for key in keys {
            if let Some(raw) = self.store.get(home, &key).await?
                && let Ok(e) = serde_json::from_slice::<SessionEntry>(&raw)
            {
                out.push((key, e));
            }
        }
        Ok(out)
    }

    /// Ends every session of `home` but `keep`; returns how many ended.
    pub async fn end_sessions(
        &self,
        home: &SessionId,
        keep: Option<&SessionId>,
    ) -> Result<usize, ApiError> {
        let mut ended = 0;
        for (key, e) in self.entries(home).await? {
            let Ok(id) = SessionId::parse(&e.id) else {
                continue;
            };
            if Some(&id) == keep {
                continue;
            }
            if self.delete_and_end(&id).await? {
                ended += 1;
            }
            self.store.remove(home, &key).await?;
        }
        Ok(ended)
    }

    /// The live sessions of the signed-in user, newest first; dead entries are pruned.
    pub async fn sessions(&self, session: &VerifiedSession) -> Result<Vec<SessionRow>, ApiError> {
        let home = signed_in(session)?;
        let mut rows: Vec<SessionRow> = self
            .live_entries(home)
            .await?
            .into_iter()
            .map(|(id, times, e)| SessionRow {
                handle: handle_of(&id),
                created_ms: times.created_ms,
                last_seen_ms: times.last_seen_ms,
                agent: e.agent,
                method: e.method,
                current: &id == session.id(),
            })
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.created_ms));
        Ok(rows)
    }

    /// Ends one session of the signed-in user, named by its handle. A handle of any other
    /// account's session is simply not found.
    pub async fn end_session(
        &self,
        session: &VerifiedSession,
        handle: &str,
    ) -> Result<(), ApiError> {
        let home = signed_in(session)?;
        if handle.len() != 16 || !handle.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::not_found());
        }
        let key = format!("{SESSION_PREFIX}{handle}");
        let Some(raw) = self.store.get(home, &key).await? else {
            return Err(ApiError::not_found());
        };
        if let Ok(e) = serde_json::from_slice::<SessionEntry>(&raw)
            && let Ok(id) = SessionId::parse(&e.id)
        {
            self.delete_and_end(&id).await?;
        }
        self.store.remove(home, &key).await?;
        Ok(())
    }

    /// Changes the signed-in user's password after checking the current one, and ends
    /// every other session of the account.
    pub async fn change_password(
        &self,
        session: &VerifiedSession,
        current: &str,
        new: &str,
        from: Option<IpAddr>,
    ) -> Result<usize, ApiError> {
        let home = signed_in(session)?;
        let Some(rec) = self.account(home).await? else {
            return Err(ApiError::not_found());
        };
        if rec.method != SignInMethod::Password {
            return Err(invalid(
                "this account signs in through its provider; it has no password here",
            ));
        }
        check_password_policy(new)?;
        self.check_password(&rec.name, current, from).await?;
        self.set_password(&rec.name, new, Some(session.id())).await
    }

    /// Signs in with the name a trusted proxy put in the configured header. From anyone
    /// else the header means nothing.
    pub async fn header_user(
        &self,
        headers: &http::HeaderMap,
        from: &ClientAddr,
    ) -> Option<String> {
        let name = self.config.header.as_ref()?;
        if !from.via_trusted_proxy {
            return None;
        }
        // Exactly one value: a proxy that appends instead of replacing must not let the
        // client's own copy of the header through.
        let mut values = headers.get_all(name).iter();
        let v = values.next()?.to_str().ok()?.trim();
        if values.next().is_some() {
            tracing::warn!("the sign-in header arrived twice; ignored");
            return None;
        }
        normalize_username(v).ok()
    }
}

fn hex8(bytes: &[u8; 32]) -> String {
    bytes[..4].iter().map(|b| format!("{b:02x}")).collect()
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

/// "Firefox on Linux": enough to tell one's own sessions apart, never the full string.
pub fn agent_summary(ua: &str) -> String {
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, n)| *n)
    .unwrap_or("Unknown browser");
    let os = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, n)| *n);
    match os {
        Some(os) => format!("{browser} on {os}"),
        None => browser.to_owned(),
    }
}

/// A deadline for things the user waits on, such as a provider's token endpoint.
pub(crate) const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummy_hash_costs_what_a_real_one_does() {
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
        let fresh_hash = hash_password("x").unwrap();
        let fresh = PasswordHash::new(&fresh_hash).unwrap();
        assert_eq!(dummy.algorithm, fresh.algorithm);
        assert_eq!(dummy.version, fresh.version);
        assert_eq!(dummy.params, fresh.params);
        assert!(!verify_password("", DUMMY_HASH));
    }

    #[test]
    fn usernames_have_one_spelling() {
        assert_eq!(normalize_username("  Alice ").unwrap(), "alice");
        assert_eq!(normalize_username("a.b_c-d@e").unwrap(), "a.b_c-d@e");
        for bad in ["", "   ", "has space", "ünï", "a/b", &"x".repeat(65)] {
            assert!(normalize_username(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsE", &h));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_ne!(h, hash_password("correct horse").unwrap(), "salted");
    }

    #[test]
    fn agents_are_summarised() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
        assert_eq!(agent_summary(chrome), "Chrome on Linux");
        assert_eq!(agent_summary("curl/8.0"), "curl");
        assert_eq!(agent_summary(""), "Unknown browser");
    }

    #[test]
    fn handles_are_short_and_stable() {
        let id = SessionId::random();
        assert_eq!(handle_of(&id), handle_of(&id));
        assert_eq!(handle_of(&id).len(), 16);
        assert!(!id.as_string().contains(&handle_of(&id)));
    }
}
