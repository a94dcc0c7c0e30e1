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
    /// The signed-in user; `None` for an anonymous session.
    #[serde(default)]
    pub user: Option<crate::account::Account>,
    /// Whether any way of signing in is configured.
    #[serde(default)]
    pub sign_in_enabled: bool,
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
    use confide_core::store::now_ms;
    let session = crate::ssr::verified().await?;
    let v = &session;
    let l = v.lifetimes();
    let age_secs = ((now_ms() - v.created_ms()).max(0) / 1000) as u64;
    let auth = crate::ssr::auth_if_configured().await;
    let user = match &auth {
        Some(a) => a.account_of(v).await?,
        None => None,
    };
    Ok(SessionInfo {
        user,
        sign_in_enabled: auth.is_some_and(|a| a.config.enabled()),
        short_id: v.id().short(),
        new: v.is_fresh(),
        idle_timeout_secs: l.idle.as_secs(),
        absolute_timeout_secs: l.absolute.as_secs(),
        remaining_secs: l.absolute.as_secs().saturating_sub(age_secs),
    })
}

#[server(prefix = "/api", endpoint = "notes/get", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn get_note() -> Result<Note, ApiError> {
    let session = crate::ssr::user_session().await?;
    Ok(session.get::<Note>(NOTE_KEY).await?.unwrap_or_default())
}

#[server(prefix = "/api", endpoint = "notes/set", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn set_note(text: String) -> Result<Note, ApiError> {
    use confide_core::store::now_ms;
    let chars = text.chars().count();
    if chars > MAX_NOTE_CHARS {
        return Err(ApiError::new(
            crate::ErrorCode::TooLarge,
            format!("the note has {chars} characters; the limit is {MAX_NOTE_CHARS}"),
        ));
    }
    let session = crate::ssr::user_session().await?;
    let note = Note {
        text,
        updated_ms: now_ms(),
    };
    session.set(NOTE_KEY, &note).await?;
    Ok(note)
}

// ---- chat -------------------------------------------------------------------------------

use crate::model::{
    ActionId, ChatSettings, Export, ExportFormat, MessageId, MessageView, Rating, SearchHit, Sent,
    Thread, ThreadId, ThreadView,
};

#[server(prefix = "/api", endpoint = "threads/list", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn list_threads() -> Result<Vec<Thread>, ApiError> {
    crate::ssr::chat().await?.list_threads().await
}

#[server(prefix = "/api", endpoint = "threads/create", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn create_thread(#[server(default)] title: Option<String>) -> Result<Thread, ApiError> {
    crate::ssr::chat().await?.create_thread(title).await
}

#[server(prefix = "/api", endpoint = "threads/rename", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn rename_thread(thread_id: ThreadId, title: String) -> Result<Thread, ApiError> {
    crate::ssr::chat()
        .await?
        .rename_thread(&thread_id, title)
        .await
}

#[server(prefix = "/api", endpoint = "threads/delete", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn delete_thread(thread_id: ThreadId) -> Result<(), ApiError> {
    crate::ssr::chat().await?.delete_thread(&thread_id).await
}

#[server(prefix = "/api", endpoint = "threads/search", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn search_threads(query: String) -> Result<Vec<SearchHit>, ApiError> {
    crate::ssr::chat().await?.search(&query).await
}

#[server(prefix = "/api", endpoint = "threads/get", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn get_thread(thread_id: ThreadId) -> Result<ThreadView, ApiError> {
    crate::ssr::chat().await?.get_thread(&thread_id).await
}

/// `format` is `"markdown"` (or `"md"`) or `"json"`; anything else is refused as the
/// request is read.
#[server(prefix = "/api", endpoint = "threads/export", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn export_thread(thread_id: ThreadId, format: ExportFormat) -> Result<Export, ApiError> {
    crate::ssr::chat().await?.export(&thread_id, format).await
}

/// Sends a message (into a new thread when `thread_id` is absent) and starts the reply,
/// which then streams through `GET /api/events`.
#[server(prefix = "/api", endpoint = "messages/send", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn send_message(
    #[server(default)] thread_id: Option<ThreadId>,
    content: String,
) -> Result<Sent, ApiError> {
    crate::ssr::chat().await?.send(thread_id, content).await
}

#[server(prefix = "/api", endpoint = "messages/stop", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn stop_reply(message_id: MessageId) -> Result<MessageView, ApiError> {
    crate::ssr::chat().await?.stop(&message_id).await
}

#[server(prefix = "/api", endpoint = "messages/edit", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn edit_message(message_id: MessageId, content: String) -> Result<Sent, ApiError> {
    crate::ssr::chat().await?.edit(&message_id, content).await
}

#[server(prefix = "/api", endpoint = "messages/regenerate", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn regenerate_reply(thread_id: ThreadId) -> Result<MessageView, ApiError> {
    crate::ssr::chat().await?.regenerate(&thread_id).await
}

/// The settings panel: the assistant's profiles and settings, and this session's choice.
#[server(prefix = "/api", endpoint = "settings/get", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn get_settings() -> Result<ChatSettings, ApiError> {
    crate::ssr::chat().await?.settings().await
}

/// Chooses a profile and sets any of the settings; the answer is the panel as it now is.
#[server(prefix = "/api", endpoint = "settings/set", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn set_settings(
    profile: Option<String>,
    #[server(default)] values: std::collections::BTreeMap<String, serde_json::Value>,
) -> Result<ChatSettings, ApiError> {
    crate::ssr::chat()
        .await?
        .set_settings(profile, values)
        .await
}

/// Clicks action `action_id` of reply `message_id`: the answer is the new reply it starts.
#[server(prefix = "/api", endpoint = "messages/act", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn act(message_id: MessageId, action_id: ActionId) -> Result<MessageView, ApiError> {
    crate::ssr::chat().await?.act(&message_id, &action_id).await
}

#[server(prefix = "/api", endpoint = "messages/feedback", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn set_feedback(
    message_id: MessageId,
    #[server(default)] rating: Option<Rating>,
    #[server(default)] comment: Option<String>,
) -> Result<MessageView, ApiError> {
    crate::ssr::chat()
        .await?
        .feedback(&message_id, rating, comment)
        .await
}

// ---- your data ---------------------------------------------------------------------------

/// Everything this session holds, as one JSON document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataExport {
    pub exported_ms: i64,
    pub session: String,
    pub note: Note,
    pub threads: Vec<ThreadView>,
}

#[server(prefix = "/api", endpoint = "session/export", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn export_my_data() -> Result<DataExport, ApiError> {
    use confide_core::store::now_ms;
    let session = crate::ssr::user_session().await?;
    let chat = crate::ssr::chat().await?;
    Ok(DataExport {
        exported_ms: now_ms(),
        session: session.id().short(),
        note: session.get::<Note>(NOTE_KEY).await?.unwrap_or_default(),
        threads: chat.export_all().await?,
    })
}

/// "Forget this browser": deletes the session and its data on the server and tells the
/// browser to drop its cookies and storage. The client then starts a new session.
#[server(prefix = "/api", endpoint = "session/forget", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn forget_session() -> Result<(), ApiError> {
    crate::ssr::chat().await?.forget().await?;
    crate::ssr::clear_site_data();
    Ok(())
}
