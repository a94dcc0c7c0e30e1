//! Session renewal and the sessions of an account: signing in replaces the browser's
//! session with a new one bound to the home, signing out ends it, and "my sessions" lists
//! and ends the others.

use super::{Auth, BINDING_KEY, Binding, RESERVED_PREFIX, SESSION_PREFIX, failed, signed_in};
use crate::{
    ApiError, SessionId, StoreError, VerifiedSession,
    guard::proof_cookie,
    model::{SessionRow, SignInMethod},
    store::{Claim, Proof, SessionTimes, now_ms},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A home's note of one signed-in browser session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct SessionEntry {
    pub(super) id: String,
    pub(super) method: SignInMethod,
    pub(super) agent: String,
    pub(super) signed_in_ms: i64,
}

/// Who is signing in, as a sign-in method established it.
pub struct Signing<'a> {
    /// The account's home, which the new session is bound to.
    pub home: SessionId,
    /// What the account is called, as it is shown.
    pub name: &'a str,
    /// How the user signed in.
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
pub(super) fn handle_of(id: &SessionId) -> String {
    let d = Sha256::digest(id.as_bytes());
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
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

impl Auth {
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

        // This browser's own values (notes, chat settings and the like) come along; the
        // binding does not.
        for key in self.store.keys(&old, "").await? {
            if key.starts_with(RESERVED_PREFIX) && key != crate::settings::SETTINGS_KEY {
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
            (Some(r), _) if r.disabled => false,
            (Some(r), Some(h)) => r.password_hash.as_deref() == Some(h),
            (Some(_), None) => true,
        };
        if !still_valid {
            let _ = self.delete_and_end(&new_id).await;
            return Err(failed());
        }
        self.end_one(session).await?;
        self.end_beyond_limit(&home, &new_id).await?;
        tracing::info!(old = %old.log_tag(), new = %new_id.log_tag(), method = method.as_str(), "signed in; session renewed");
        Ok((new_id, proof_cookie(&self.guard, &secret)))
    }

    pub(super) async fn move_threads(
        &self,
        from: &SessionId,
        home: &SessionId,
    ) -> Result<(), ApiError> {
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
        if let Some(files) = &self.files {
            files.adopt(from, home).await?;
        }
        Ok(())
    }

    /// Deletes a browser session and its entry in its home.
    pub(super) async fn end_one(&self, session: &VerifiedSession) -> Result<(), ApiError> {
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

    /// Past the account's limit of sessions at once, ends the oldest (never `newest`).
    async fn end_beyond_limit(&self, home: &SessionId, newest: &SessionId) -> Result<(), ApiError> {
        let max = self.config.max_sessions_per_account;
        if max == 0 {
            return Ok(());
        }
        let mut live = self.live_entries(home).await?;
        if live.len() <= max {
            return Ok(());
        }
        live.sort_by_key(|(_, times, _)| times.created_ms);
        let excess = live.len() - max;
        for (id, _, _) in live.iter().filter(|(id, _, _)| id != newest).take(excess) {
            tracing::info!(session = %id.log_tag(), "over the account's session limit; the oldest ended");
            self.end_entry(home, &handle_of(id)).await?;
        }
        Ok(())
    }

    /// Ends the session of `home` whose entry has `handle`; `NotFound` when there is none.
    pub(super) async fn end_entry(&self, home: &SessionId, handle: &str) -> Result<(), ApiError> {
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

    /// Drops the entries of sessions that are no longer live.
    pub(super) async fn prune_entries(&self, home: &SessionId) -> Result<(), ApiError> {
        self.live_entries(home).await.map(drop)
    }

    /// The home's sessions that are still live and still bound to it, with their times;
    /// the entries of the others are removed on the way.
    pub(super) async fn live_entries(
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

    pub(super) async fn entries(
        &self,
        home: &SessionId,
    ) -> Result<Vec<(String, SessionEntry)>, ApiError> {
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
        self.end_entry(home, handle).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
