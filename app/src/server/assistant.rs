//! The assistant seam: history in, a stream of text deltas out.
//!
//! To plug in your own model, implement `Assistant` and hand it to the server
//! (`server::AppState::with_assistant`). Cancellation is by dropping the stream: when a person
//! presses Stop, Confide drops it, so an implementation should stop work when polled no more
//! (an HTTP body stream does this by closing the connection).

use crate::model::Role;
use async_trait::async_trait;
use futures::stream::BoxStream;

/// One turn of the conversation so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub role: Role,
    pub content: String,
}

/// Why an assistant could not answer; `message` is shown to the person, so it must be
/// safe to show (no keys, no internal addresses).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AssistantError {
    pub kind: AssistantErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssistantErrorKind {
    /// The model endpoint could not be reached or timed out.
    Unavailable,
    /// The endpoint refused our credentials (401/403).
    Unauthorized,
    /// The model or endpoint does not exist (404).
    NotFound,
    /// Rate limited (429).
    RateLimited,
    /// The endpoint failed (5xx).
    Upstream,
    /// The endpoint answered something we could not read.
    Protocol,
    /// The stream ended before the reply was complete.
    Interrupted,
    /// Anything else.
    Other,
}

impl AssistantError {
    pub fn new(kind: AssistantErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

pub type DeltaStream = BoxStream<'static, Result<String, AssistantError>>;

#[async_trait]
pub trait Assistant: Send + Sync + 'static {
    /// Starts a reply to `history` (oldest first; the last turn is the person's).
    async fn reply(&self, history: Vec<Turn>) -> Result<DeltaStream, AssistantError>;
}
