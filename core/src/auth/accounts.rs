//! Accounts: the record a home keeps of its user, password accounts (also managed by the
//! `confide user` command), external accounts (OIDC, trusted header) and who a session
//! belongs to.

use super::password::{
    MAX_PASSWORD_CHARS, check_password_policy, hash_password, normalize_username, password_home,
    verify_password,
};
use super::{
    ACCOUNT_KEY, AccountRecord, Auth, BINDING_KEY, Binding, ClientAddr, address_key, failed, hex8,
    limited, signed_in,
};
use crate::{
    ApiError, ErrorCode, SessionId, VerifiedSession,
    model::{Account, SignInMethod},
    store::{StoreError, now_ms},
};
use sha2::{Digest, Sha256};
use std::net::IpAddr;

impl Auth {
    pub(super) async fn account(
        &self,
        home: &SessionId,
    ) -> Result<Option<AccountRecord>, ApiError> {
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

    pub(super) async fn put_account(
        &self,
        home: &SessionId,
        rec: &AccountRecord,
    ) -> Result<(), ApiError> {
        let bytes = serde_json::to_vec(rec).map_err(|_| ApiError::internal())?;
        self.store
            .set(home, ACCOUNT_KEY, &bytes)
            .await
            .map_err(ApiError::from)
    }

    /// Who a session belongs to, for display.
    pub async fn account_of(&self, session: &VerifiedSession) -> Result<Option<Account>, ApiError> {
        account_of(session).await
    }

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
            disabled: false,
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

    /// Disables a password account (no sign-in succeeds, by any method, and every session
    /// ends at once) or enables it again; returns how many sessions ended.
    pub async fn set_disabled(&self, username: &str, disabled: bool) -> Result<usize, ApiError> {
        let name = normalize_username(username)?;
        let home = password_home(&name);
        let Some(mut rec) = self.account(&home).await? else {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("no user {name:?}"),
            ));
        };
        rec.disabled = disabled;
        // The record first: a sign-in racing with this re-reads it after registering its
        // session, so it either sees the flag or is registered in time to be ended below.
        self.put_account(&home, &rec).await?;
        if disabled {
            self.end_sessions(&home, None).await
        } else {
            Ok(0)
        }
    }

    /// The live sessions of a password account, oldest first (for operators).
    pub async fn user_sessions(
        &self,
        username: &str,
    ) -> Result<Vec<crate::model::SessionRow>, ApiError> {
        let home = self.existing_user(username).await?;
        let mut rows: Vec<_> = self
            .live_entries(&home)
            .await?
            .into_iter()
            .map(|(id, times, e)| crate::model::SessionRow {
                handle: super::sessions::handle_of(&id),
                created_ms: times.created_ms,
                last_seen_ms: times.last_seen_ms,
                agent: e.agent,
                method: e.method,
                current: false,
            })
            .collect();
        rows.sort_by_key(|r| r.created_ms);
        Ok(rows)
    }

    /// Ends one session of a password account by its handle, or all of them for `None`;
    /// returns how many ended (for operators).
    pub async fn end_user_sessions(
        &self,
        username: &str,
        handle: Option<&str>,
    ) -> Result<usize, ApiError> {
        let home = self.existing_user(username).await?;
        match handle {
            None => self.end_sessions(&home, None).await,
            Some(h) => self.end_entry(&home, h).await.map(|()| 1),
        }
    }

    /// Ends every session there is, signed in or anonymous, and closes their pages on every
    /// instance; returns how many ended (for operators: a suspected leak of session
    /// cookies, a change of policy). Accounts and their threads stay; anonymous sessions'
    /// threads go with them, as at any end.
    pub async fn end_all_sessions(&self) -> Result<usize, ApiError> {
        const PAGE: usize = 500;
        let (mut ended, mut failed) = (0, 0);
        let mut cursor = None;
        loop {
            let (ids, next) = self.store.list_sessions(cursor.as_deref(), PAGE).await?;
            // One that fails (the store hiccups) does not stop the others from ending.
            for id in &ids {
                match self.delete_and_end(id).await {
                    Ok(true) => ended += 1,
                    Ok(false) => {}
                    Err(_) => failed += 1,
                }
            }
            match next {
                Some(n) => cursor = Some(n),
                None if failed == 0 => return Ok(ended),
                None => {
                    return Err(ApiError::new(
                        ErrorCode::StoreUnavailable,
                        format!(
                            "{ended} session(s) ended; {failed} could not be, the store failed: run it again"
                        ),
                    ));
                }
            }
        }
    }

    async fn existing_user(&self, username: &str) -> Result<SessionId, ApiError> {
        let name = normalize_username(username)?;
        let home = password_home(&name);
        match self.account(&home).await? {
            Some(_) => Ok(home),
            None => Err(ApiError::new(
                ErrorCode::NotFound,
                format!("no user {name:?}"),
            )),
        }
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
        if let Some(files) = &self.files {
            files.delete_owner(&home).await?;
        }
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
            // A disabled account fails like a wrong password: its name stays unconfirmed.
            Some((n, r)) if ok && r.password_hash.is_some() && !r.disabled => {
                Ok((password_home(&n), r.name, stored))
            }
            _ => {
                tracing::info!(account = %hex8(&account_key), "password sign-in failed");
                Err(failed())
            }
        }
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
            return Err(ApiError::invalid_input(
                "this account signs in through its provider; it has no password here",
            ));
        }
        check_password_policy(new)?;
        self.check_password(&rec.name, current, from).await?;
        self.set_password(&rec.name, new, Some(session.id())).await
    }

    /// Makes sure the home of an external account (OIDC, trusted header) exists and
    /// carries its current display name.
    pub async fn external_home(
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
                    disabled: current.as_ref().is_some_and(|r| r.disabled),
                    created_ms: current.map(|r| r.created_ms).unwrap_or_else(now_ms),
                },
            )
            .await?;
        }
        Ok(home)
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

/// Who a session belongs to: read from the session itself, so it needs no sign-in
/// configuration (an assistant asks it of every reply's session).
pub(crate) async fn account_of(session: &VerifiedSession) -> Result<Option<Account>, ApiError> {
    if session.home().is_none() {
        return Ok(None);
    }
    let Some(raw) = session.store().get(session.id(), BINDING_KEY).await? else {
        return Ok(None);
    };
    let b: Binding = serde_json::from_slice(&raw).map_err(|_| ApiError::internal())?;
    Ok(Some(Account {
        name: b.name,
        method: b.method,
    }))
}
