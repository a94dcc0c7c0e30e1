//! Rows as the SQL stores hold them: a message's columns, read back into model types, and
//! written from them.

use app::{
    SessionId,
    model::{
        Action, Attachment, Feedback, Message, MessageId, MessageStatus, Role, Step, Thread,
        ThreadId,
    },
};
use confide_core::StoreError;

/// What a reply left `streaming` by a process that stopped says once a SQL store finds it.
pub const INTERRUPTED: &str = "Confide restarted while this reply was being written";

pub(crate) fn role_str(r: Role) -> &'static str {
    match r {
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

pub(crate) fn status_str(s: MessageStatus) -> &'static str {
    match s {
        MessageStatus::Streaming => "streaming",
        MessageStatus::Done => "done",
        MessageStatus::Stopped => "stopped",
        MessageStatus::Error => "error",
    }
}

pub(crate) fn bad_row(what: &str) -> StoreError {
    StoreError::Internal(format!("unreadable {what} row"))
}

pub(crate) fn uuid_bytes(v: &[u8]) -> Option<[u8; 16]> {
    v.try_into().ok()
}

pub(crate) const THREAD_COLUMNS: &str = "id, title, created_ms, updated_ms";
pub(crate) const MESSAGE_COLUMNS: &str = "id, thread_id, role, content, created_ms, status, feedback, error, steps, actions, attachments";

/// A row as the database hands it over; turned into a model type once the statement is done, so
/// that a malformed row is a `StoreError` rather than a driver error.
pub(crate) struct RawThread(
    pub(crate) Vec<u8>,
    pub(crate) String,
    pub(crate) i64,
    pub(crate) i64,
);

impl RawThread {
    pub(crate) fn parse(self) -> Result<Thread, StoreError> {
        Ok(Thread {
            id: uuid_bytes(&self.0)
                .map(ThreadId::from_bytes)
                .ok_or_else(|| bad_row("thread"))?,
            title: self.1,
            created_ms: self.2,
            updated_ms: self.3,
        })
    }
}

pub(crate) struct RawMessage {
    pub(crate) id: Vec<u8>,
    pub(crate) thread_id: Vec<u8>,
    pub(crate) role: String,
    pub(crate) content: String,
    pub(crate) created_ms: i64,
    pub(crate) status: String,
    pub(crate) feedback: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) steps: Option<String>,
    pub(crate) actions: Option<String>,
    pub(crate) attachments: Option<String>,
}

impl RawMessage {
    pub(crate) fn parse(self) -> Result<Message, StoreError> {
        Ok(Message {
            id: uuid_bytes(&self.id)
                .map(MessageId::from_bytes)
                .ok_or_else(|| bad_row("message"))?,
            thread_id: uuid_bytes(&self.thread_id)
                .map(ThreadId::from_bytes)
                .ok_or_else(|| bad_row("message"))?,
            role: match self.role.as_str() {
                "user" => Role::User,
                "assistant" => Role::Assistant,
                _ => return Err(bad_row("message")),
            },
            content: self.content,
            created_ms: self.created_ms,
            status: match self.status.as_str() {
                "streaming" => MessageStatus::Streaming,
                "done" => MessageStatus::Done,
                "stopped" => MessageStatus::Stopped,
                "error" => MessageStatus::Error,
                _ => return Err(bad_row("message")),
            },
            feedback: self
                .feedback
                .map(|f| serde_json::from_str::<Feedback>(&f))
                .transpose()
                .map_err(|_| bad_row("message"))?,
            error: self.error,
            steps: self
                .steps
                .map(|s| serde_json::from_str::<Vec<Step>>(&s))
                .transpose()
                .map_err(|_| bad_row("message"))?
                .unwrap_or_default(),
            actions: self
                .actions
                .map(|s| serde_json::from_str::<Vec<Action>>(&s))
                .transpose()
                .map_err(|_| bad_row("message"))?
                .unwrap_or_default(),
            attachments: self
                .attachments
                .map(|s| serde_json::from_str::<Vec<Attachment>>(&s))
                .transpose()
                .map_err(|_| bad_row("message"))?
                .unwrap_or_default(),
        })
    }
}

pub(crate) fn home_from(home: Option<Vec<u8>>) -> Result<Option<SessionId>, StoreError> {
    home.map(|h| {
        uuid_bytes(&h)
            .map(SessionId::from_stored_bytes)
            .ok_or_else(|| bad_row("session"))
    })
    .transpose()
}

/// A message ready for the writer: owned, its feedback and steps already serialised.
pub(crate) struct Stored {
    pub(crate) m: Message,
    pub(crate) feedback: Option<String>,
    /// `NULL` for none, as every message written before steps existed.
    pub(crate) steps: Option<String>,
    pub(crate) actions: Option<String>,
    pub(crate) attachments: Option<String>,
}

impl Stored {
    pub(crate) fn of(m: &Message) -> Result<Self, StoreError> {
        let feedback = m
            .feedback
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let steps = (!m.steps.is_empty())
            .then(|| serde_json::to_string(&m.steps))
            .transpose()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let actions = (!m.actions.is_empty())
            .then(|| serde_json::to_string(&m.actions))
            .transpose()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let attachments = (!m.attachments.is_empty())
            .then(|| serde_json::to_string(&m.attachments))
            .transpose()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        Ok(Self {
            m: m.clone(),
            feedback,
            steps,
            actions,
            attachments,
        })
    }
}
