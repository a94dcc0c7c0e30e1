//! `UserSession`: per-session key/value state for server code, like Chainlit's
//! `cl.user_session`, except that it cannot be pointed at another session: the only way
//! to get one is from the request the guard verified.

use super::{auth::RESERVED_PREFIX, guard::VerifiedSession};
use crate::{ApiError, ErrorCode, SessionId};
use serde::{Serialize, de::DeserializeOwned};

/// One browser session's own values: keys of letters, digits and `. _ : -` (at most 128
/// bytes, `confide:` reserved), values any serde type (at most 64 KiB as JSON), at most 256
/// keys. Cheap to clone.
#[derive(Clone, Debug)]
pub struct UserSession {
    session: VerifiedSession,
}

impl UserSession {
    /// Wraps a session the guard verified (the server functions take it from their request).
    pub fn from_verified(session: VerifiedSession) -> Self {
        Self { session }
    }

    /// The session's id: a handle, never to be logged whole (use `log_tag`).
    pub fn id(&self) -> &SessionId {
        self.session.id()
    }

    /// The session as the guard verified it.
    pub fn verified(&self) -> &VerifiedSession {
        &self.session
    }

    /// Who is signed in to this session, if anyone.
    pub async fn account(&self) -> Result<Option<crate::model::Account>, ApiError> {
        crate::auth::accounts::account_of(&self.session).await
    }

    /// The value of `key`, if set.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ApiError> {
        let s = &self.session;
        let Some(bytes) = s.store().get(s.id(), key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            // A value written by an older version with another shape: report, don't panic.
            tracing::error!(session = %s.id().log_tag(), key, error = %e, "stored value does not decode");
            ApiError::new(ErrorCode::Internal, format!("the stored value of {key:?} has an unexpected shape"))
        })
    }

    /// Sets `key` to `value`.
    pub async fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), ApiError> {
        reserved(key)?;
        let s = &self.session;
        let bytes = serde_json::to_vec(value).map_err(|_| ApiError::internal())?;
        s.store()
            .set(s.id(), key, &bytes)
            .await
            .map_err(ApiError::from)
    }

    /// Removes `key`; whether it was set.
    pub async fn remove(&self, key: &str) -> Result<bool, ApiError> {
        reserved(key)?;
        let s = &self.session;
        s.store().remove(s.id(), key).await.map_err(ApiError::from)
    }

    /// Deletes the session and everything in it. The id and proof are dead afterwards.
    pub async fn destroy(&self) -> Result<bool, ApiError> {
        let s = &self.session;
        s.store().delete(s.id()).await.map_err(ApiError::from)
    }

    /// Removes every value of the session but the ones Confide keeps for itself (who
    /// signed in, a sign-in in progress).
    pub async fn clear(&self) -> Result<(), ApiError> {
        let s = &self.session;
        let keys = s.store().keys(s.id(), "").await?;
        for key in keys.iter().filter(|k| !k.starts_with(RESERVED_PREFIX)) {
            s.store().remove(s.id(), key).await?;
        }
        Ok(())
    }
}

/// Keys under `confide:` belong to Confide itself; application code cannot write them.
fn reserved(key: &str) -> Result<(), ApiError> {
    if key.starts_with(RESERVED_PREFIX) {
        return Err(ApiError::new(
            ErrorCode::KeyInvalid,
            format!("keys starting with {RESERVED_PREFIX:?} are reserved"),
        ));
    }
    Ok(())
}
