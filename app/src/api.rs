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

/// What the client learns of its session when it starts or resumes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// First 8 characters of the session id, for display.
    pub short_id: String,
    /// True when this call created the session.
    pub new: bool,
    /// How long, in seconds, the session lives without a verified request.
    pub idle_timeout_secs: u64,
    /// How long, in seconds, the session lives after it was claimed, however active.
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

/// The session's notepad, kept under [`NOTE_KEY`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// What the note says; at most [`MAX_NOTE_CHARS`] characters.
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

/// The session's note; an empty one when it was never saved.
#[server(prefix = "/api", endpoint = "notes/get", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn get_note() -> Result<Note, ApiError> {
    let session = crate::ssr::user_session().await?;
    Ok(session.get::<Note>(NOTE_KEY).await?.unwrap_or_default())
}

/// Saves the note, replacing the previous one; a note over [`MAX_NOTE_CHARS`] is refused.
#[server(prefix = "/api", endpoint = "notes/set", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn set_note(
    /// The note's new text.
    text: String,
) -> Result<Note, ApiError> {
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
    ActionId, ChatSettings, Export, ExportFormat, FileId, MessageId, MessageView, Rating,
    SearchHit, Sent, Thread, ThreadId, ThreadView,
};

/// The session's chats, most recently updated first.
#[server(prefix = "/api", endpoint = "threads/list", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn list_threads() -> Result<Vec<Thread>, ApiError> {
    crate::ssr::chat().await?.list_threads().await
}

/// Creates a new, empty chat.
#[server(prefix = "/api", endpoint = "threads/create", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn create_thread(
    /// The chat's title; the default title when absent.
    #[server(default)]
    title: Option<String>,
) -> Result<Thread, ApiError> {
    crate::ssr::chat().await?.create_thread(title).await
}

/// Renames a chat; every tab of the session hears of it.
#[server(prefix = "/api", endpoint = "threads/rename", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn rename_thread(
    /// The chat to rename.
    thread_id: ThreadId,
    /// Its new title.
    title: String,
) -> Result<Thread, ApiError> {
    crate::ssr::chat()
        .await?
        .rename_thread(&thread_id, title)
        .await
}

/// Deletes a chat and its messages, stopping its reply if one is streaming.
#[server(prefix = "/api", endpoint = "threads/delete", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn delete_thread(
    /// The chat to delete.
    thread_id: ThreadId,
) -> Result<(), ApiError> {
    crate::ssr::chat().await?.delete_thread(&thread_id).await
}

/// The session's chats whose title or messages contain the query, newest first.
#[server(prefix = "/api", endpoint = "threads/search", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn search_threads(
    /// The text to look for, matched case-insensitively.
    query: String,
) -> Result<Vec<SearchHit>, ApiError> {
    crate::ssr::chat().await?.search(&query).await
}

/// A chat with all its messages; not found if it is not this session's.
#[server(prefix = "/api", endpoint = "threads/get", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn get_thread(
    /// The chat to open.
    thread_id: ThreadId,
) -> Result<ThreadView, ApiError> {
    crate::ssr::chat().await?.get_thread(&thread_id).await
}

/// `format` is `"markdown"` (or `"md"`) or `"json"`; anything else is refused as the
/// request is read.
#[server(prefix = "/api", endpoint = "threads/export", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn export_thread(
    /// The chat to export.
    thread_id: ThreadId,
    /// The file format to export it in.
    format: ExportFormat,
) -> Result<Export, ApiError> {
    crate::ssr::chat().await?.export(&thread_id, format).await
}

/// Sends a message (into a new thread when `thread_id` is absent) and starts the reply,
/// which then streams through `GET /api/events`.
#[server(prefix = "/api", endpoint = "messages/send", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn send_message(
    /// The chat to send to; a new chat when absent.
    #[server(default)]
    thread_id: Option<ThreadId>,
    /// The message's text; may be empty when files come with it.
    content: String,
    /// Uploads (`POST /api/files`) the message carries, in order.
    #[server(default)]
    files: Vec<FileId>,
) -> Result<Sent, ApiError> {
    crate::ssr::chat()
        .await?
        .send_with(thread_id, content, &files)
        .await
}

/// Removes an upload that no message carries yet (taken off before sending).
#[server(prefix = "/api", endpoint = "files/discard", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn discard_file(
    /// The upload to remove.
    file_id: FileId,
) -> Result<(), ApiError> {
    crate::ssr::chat().await?.discard_file(&file_id).await
}

/// Stops a streaming reply; the text so far stays, with status `stopped`.
#[server(prefix = "/api", endpoint = "messages/stop", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn stop_reply(
    /// The reply to stop.
    message_id: MessageId,
) -> Result<MessageView, ApiError> {
    crate::ssr::chat().await?.stop(&message_id).await
}

/// Replaces one of the person's messages, drops every later turn and asks again.
#[server(prefix = "/api", endpoint = "messages/edit", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn edit_message(
    /// The message to replace.
    message_id: MessageId,
    /// Its new text.
    content: String,
) -> Result<Sent, ApiError> {
    crate::ssr::chat().await?.edit(&message_id, content).await
}

/// Drops the last reply of a chat and generates it again.
#[server(prefix = "/api", endpoint = "messages/regenerate", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn regenerate_reply(
    /// The chat whose last reply is generated again.
    thread_id: ThreadId,
) -> Result<MessageView, ApiError> {
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
    /// The profile to choose; the current one stays when absent.
    profile: Option<String>,
    /// New values of any of the settings, by id; the rest keep theirs.
    #[server(default)]
    values: std::collections::BTreeMap<String, crate::model::SettingValue>,
) -> Result<ChatSettings, ApiError> {
    crate::ssr::chat()
        .await?
        .set_settings(profile, values)
        .await
}

/// Clicks action `action_id` of reply `message_id`: the answer is the new reply it starts.
#[server(prefix = "/api", endpoint = "messages/act", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn act(
    /// The reply whose action is clicked.
    message_id: MessageId,
    /// The action clicked.
    action_id: ActionId,
) -> Result<MessageView, ApiError> {
    crate::ssr::chat().await?.act(&message_id, &action_id).await
}

/// Rates one of the assistant's replies (or takes the rating back), with an optional comment.
#[server(prefix = "/api", endpoint = "messages/feedback", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn set_feedback(
    /// The reply to rate.
    message_id: MessageId,
    /// The rating; `None` takes it back.
    #[server(default)]
    rating: Option<Rating>,
    /// A remark to go with the rating; blank counts as none.
    #[server(default)]
    comment: Option<String>,
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
    /// When the export was made, in milliseconds since the epoch.
    pub exported_ms: i64,
    /// The session's short id, as shown on screen.
    pub session: String,
    /// The session's notepad.
    pub note: Note,
    /// Every chat of the session, with its messages.
    pub threads: Vec<ThreadView>,
    /// Every file the session keeps (name, type, size, and where it downloads), uploads not
    /// yet sent included.
    #[serde(default)]
    pub files: Vec<crate::model::Attachment>,
}

/// "Export my data": everything this session holds, for download.
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
        files: chat.files().await?,
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
