//! Server functions: the JSON API under `/api/`, each running inside the one session the
//! guard verified for its request.

use crate::ApiError;
use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};

/// Longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 10_000;
/// `UserSession` key of the notepad.
pub const NOTE_KEY: &str = "notes";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// First 8 characters of the session id, for display.
    pub short_id: String,
    /// True when this call created the session.
    pub new: bool,
    pub idle_timeout_secs: u64,
    pub absolute_timeout_secs: u64,
    /// Seconds until the absolute lifetime ends; the client sizes its cookie with it.
    pub remaining_secs: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub text: String,
    /// Milliseconds since the epoch of the last save; 0 when never saved.
    pub updated_ms: i64,
}

/// Starts (claims) or resumes the session named by the request. The guard did the work;
/// this reports what it found.
#[server(prefix = "/api", endpoint = "session/start", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn start_session() -> Result<SessionInfo, ApiError> {
    use crate::server::{UserSession, store::now_ms};
    let session = UserSession::current().await?;
    let v = session.verified();
    let l = v.lifetimes();
    let age_secs = ((now_ms() - v.created_ms()).max(0) / 1000) as u64;
    Ok(SessionInfo {
        short_id: v.id().short(),
        new: v.is_fresh(),
        idle_timeout_secs: l.idle.as_secs(),
        absolute_timeout_secs: l.absolute.as_secs(),
        remaining_secs: l.absolute.as_secs().saturating_sub(age_secs),
    })
}

#[server(prefix = "/api", endpoint = "notes/get", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn get_note() -> Result<Note, ApiError> {
    let session = crate::server::UserSession::current().await?;
    Ok(session.get::<Note>(NOTE_KEY).await?.unwrap_or_default())
}

#[server(prefix = "/api", endpoint = "notes/set", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn set_note(text: String) -> Result<Note, ApiError> {
    use crate::server::{UserSession, store::now_ms};
    let chars = text.chars().count();
    if chars > MAX_NOTE_CHARS {
        return Err(ApiError::new(
            crate::ErrorCode::TooLarge,
            format!("the note has {chars} characters; the limit is {MAX_NOTE_CHARS}"),
        ));
    }
    let session = UserSession::current().await?;
    let note = Note { text, updated_ms: now_ms() };
    session.set(NOTE_KEY, &note).await?;
    Ok(note)
}
