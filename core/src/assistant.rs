//! The assistant seam: what an application built on Confide writes. A reply is made in a
//! [`ReplyContext`] (the conversation so far, its chat, the signed-in account, the browser
//! session's own values and a cancellation signal) and streams text deltas out.
//!
//! To plug in your own model or handler, implement `Assistant` and hand it to the server
//! (`server::AppState::with_assistant`). The context is built by Confide for each reply from
//! the session the guard verified for the request that asked for it: nothing in it can reach
//! another session, so per-person state kept through `cx.session` is private by
//! construction, however many people share an address.
//!
//! Cancellation: when a person presses Stop (or their session ends), `cx.cancel` fires and
//! Confide drops the stream. An implementation that streams stops when polled no more (an
//! HTTP body stream does this by closing the connection); work done before the stream
//! starts, or beside it, should watch `cx.cancel`.

use crate::files::ReplyFiles;
use crate::model::{Account, Attachment, Role, StepKind, Thread};
use crate::model::{Action, ActionId, Profile, SettingSpec};
use crate::settings::Settings;
use crate::steps::{ActionError, Actions, StepHandle, Steps};
use crate::{ApiError, SessionId, UserSession};
use async_trait::async_trait;
use futures::stream::BoxStream;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// One turn of the conversation so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// Who said it.
    pub role: Role,
    /// What was said, as markdown.
    pub content: String,
    /// The files that came with it (read them with `cx.files.read`).
    pub attachments: Vec<Attachment>,
}

impl Turn {
    /// A turn of `role` that says `content` and carries no files.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            attachments: Vec::new(),
        }
    }
}

/// Why an assistant could not answer; `message` is shown to the person, so it must be
/// safe to show (no keys, no internal addresses).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AssistantError {
    /// What went wrong, for logs and metrics.
    pub kind: AssistantErrorKind,
    /// What the person is told.
    pub message: String,
}

/// The kinds of reasons an assistant could not answer.
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
    /// An error of `kind` that tells the person `message`.
    pub fn new(kind: AssistantErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// The session's values failed to read or write (a store away, a value too large): the
/// reply fails with the same words the server functions would answer.
impl From<ApiError> for AssistantError {
    fn from(e: ApiError) -> Self {
        Self::new(AssistantErrorKind::Other, e.message)
    }
}

/// A reply's text as it is written: each item is the next piece (appended to the text so
/// far), and an `Err` ends the reply as failed, keeping what came before it.
pub type DeltaStream = BoxStream<'static, Result<String, AssistantError>>;

/// What one reply is made in. Confide builds it from the verified session of the request
/// that asked for the reply; an application cannot build one for another session.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ReplyContext {
    /// The end of the thread up to the question, oldest first; the last turn is the
    /// person's. Bounded by the runtime's `history_turns`, so a long thread does not make
    /// every turn slower.
    pub history: Vec<Turn>,
    /// The chat the reply is written in.
    pub thread: Thread,
    /// Who is signed in, if anyone.
    pub account: Option<Account>,
    /// The browser session's own values, like Chainlit's `cl.user_session`: the same store,
    /// keys, rules and limits as the server functions' `UserSession`.
    pub session: UserSession,
    /// Fires when the reply is stopped: the person pressed Stop, or the session ended.
    pub cancel: CancellationToken,
    /// The reply's steps (see [`step`](Self::step)).
    pub steps: Steps,
    /// The reply's buttons (see [`action`](Self::action)).
    pub actions: Actions,
    /// The values of the settings the assistant declares (`Assistant::settings`), as this
    /// session set them or by default.
    pub settings: Settings,
    /// The profile this session chose (`Assistant::profiles`); the first until one is chosen.
    pub profile: Option<Profile>,
    /// The session's files: read what the turns carry (`Turn::attachments`), attach new
    /// ones to the reply.
    pub files: ReplyFiles,
    /// Where questions go (`ask`): the task that streams the reply; none outside one.
    asker: Option<mpsc::Sender<Question>>,
    /// The model tokens the endpoint said the reply took (`report_usage`).
    usage: Usage,
}

/// Token counts an assistant reports while it writes a reply, read when the reply ends.
#[derive(Clone, Debug, Default)]
pub(crate) struct Usage(std::sync::Arc<std::sync::Mutex<Option<u64>>>);

impl Usage {
    /// The total reported, if anything was.
    pub(crate) fn reported(&self) -> Option<u64> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A question a reply asks, on its way to the task that streams the reply.
#[derive(Debug)]
pub(crate) struct Question {
    pub(crate) text: String,
    pub(crate) timeout: Option<Duration>,
    pub(crate) answer: oneshot::Sender<String>,
}

/// Why [`ReplyContext::ask`] has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AskError {
    /// Nobody answered in time, the reply was stopped, or another message took the thread.
    #[error("no answer came")]
    NoAnswer,
    /// The context is not that of a reply Confide runs (a test's, say): nobody can answer.
    #[error("questions can only be asked in a reply Confide runs")]
    NotInReply,
}

impl ReplyContext {
    /// A reply's context whose files are the session's in `store`, under `owner`, for the
    /// reply `message` (what a reply Confide runs gets). Without a store (a test's context),
    /// its files are in a store of their own.
    pub(crate) fn new(
        history: Vec<Turn>,
        thread: Thread,
        account: Option<Account>,
        session: UserSession,
        cancel: CancellationToken,
        store: Option<(
            std::sync::Arc<crate::files::FileStore>,
            SessionId,
            crate::model::MessageId,
        )>,
    ) -> Self {
        let steps = Steps::new();
        // Straight into the runtime's store: a throwaway store per reply cost every turn a
        // look at the machine's CPU count, several file reads in /sys and /proc.
        let files = match store {
            Some((store, owner, message)) => {
                ReplyFiles::in_store(store, owner, thread.id, message, steps.signal())
            }
            None => ReplyFiles::detached(*session.id(), thread.id, steps.signal()),
        };
        Self {
            files,
            history,
            thread,
            account,
            session,
            cancel,
            actions: steps.linked_actions(),
            steps,
            settings: Settings::default(),
            profile: None,
            asker: None,
            usage: Usage::default(),
        }
    }

    /// What the model endpoint reported the reply took, question (all the turns it was
    /// sent) and answer, as its usage report says; daily token quotas count this. A reply
    /// that reports nothing is counted by an estimate from its text. Reporting again
    /// replaces the earlier report.
    pub fn report_usage(&self, prompt_tokens: u64, completion_tokens: u64) {
        *self.usage.0.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(prompt_tokens.saturating_add(completion_tokens));
    }

    pub(crate) fn usage(&self) -> Usage {
        self.usage.clone()
    }

    /// The same context, with its questions going to `asker`.
    pub(crate) fn with_asker(mut self, asker: mpsc::Sender<Question>) -> Self {
        self.asker = Some(asker);
        self
    }

    /// Asks the person `question` and waits for the answer: the question ends the reply
    /// so far (after any text already sent), the person's next message in the chat is the
    /// answer, and what the reply streams afterwards goes into a new message after it.
    /// Waits at most the runtime's `ask_timeout` (ten minutes by default); without an answer
    /// the reply ends with its question.
    pub async fn ask(&self, question: impl Into<String>) -> Result<String, AskError> {
        self.ask_within(question, None).await
    }

    /// [`ask`](Self::ask), waiting at most `timeout` (if given) instead of the default.
    pub async fn ask_within(
        &self,
        question: impl Into<String>,
        timeout: Option<Duration>,
    ) -> Result<String, AskError> {
        let asker = self.asker.as_ref().ok_or(AskError::NotInReply)?;
        let (answer, answered) = oneshot::channel();
        let question = Question {
            text: question.into(),
            timeout,
            answer,
        };
        asker.send(question).await.map_err(|_| AskError::NoAnswer)?;
        answered.await.map_err(|_| AskError::NoAnswer)
    }

    /// The same context with these settings and this profile (for tests: Confide fills them
    /// in from the session for a real reply).
    pub fn with_settings(mut self, settings: Settings, profile: Option<Profile>) -> Self {
        self.settings = settings;
        self.profile = profile;
        self
    }

    /// Offers a button labelled `label` under the reply. A click (by this browser session,
    /// or another of the signed-in account's) calls [`Assistant::on_action`] with an
    /// `Action` named `name` that carries `payload`, and takes the reply's buttons away.
    pub fn action(
        &self,
        name: impl Into<String>,
        label: impl Into<String>,
        payload: &impl serde::Serialize,
    ) -> Result<ActionId, ActionError> {
        self.actions.add(name, label, payload)
    }

    /// Opens a step the person sees beside the reply, live, as a collapsible block: a tool
    /// call, a retrieval, reasoning. End it with `done(output)` or `fail(why)`; open steps
    /// inside it with `child`. A step dropped while open (a stopped reply) shows as stopped.
    pub fn step(
        &self,
        kind: StepKind,
        name: impl Into<String>,
        input: impl Into<String>,
    ) -> StepHandle {
        self.steps.start(kind, name, input)
    }

    /// A context for testing an assistant: a chat named "Test" whose history is `history`,
    /// in `session`, with nobody signed in. The session must still come from the guard.
    pub fn for_session(session: UserSession, history: Vec<Turn>) -> Self {
        let thread = Thread {
            id: crate::model::ThreadId::random(),
            title: "Test".into(),
            created_ms: crate::store::now_ms(),
            updated_ms: crate::store::now_ms(),
        };
        Self::new(
            history,
            thread,
            None,
            session,
            CancellationToken::new(),
            None,
        )
    }

    /// What the person just wrote: the last turn of theirs.
    pub fn question(&self) -> &str {
        self.history
            .iter()
            .rev()
            .find(|t| t.role == Role::User)
            .map_or("", |t| t.content.as_str())
    }

    /// The session the reply belongs to (its id is a handle, never log it whole: use
    /// `log_tag`).
    pub fn session_id(&self) -> &SessionId {
        self.session.id()
    }
}

/// The code that answers: what an application built on Confide implements (see the module
/// documentation and `ReplyContext`).
#[async_trait]
pub trait Assistant: Send + Sync + 'static {
    /// Starts a reply in `cx` (see [`ReplyContext`]).
    async fn reply(&self, cx: ReplyContext) -> Result<DeltaStream, AssistantError>;

    /// Answers a click on one of the buttons a reply offered (see
    /// [`ReplyContext::action`]) with a new reply, made in `cx` as `reply` makes its own;
    /// `cx.history` ends with the reply that offered the action. The action is the one
    /// stored with that reply, never what the browser says it was.
    async fn on_action(
        &self,
        _cx: ReplyContext,
        _action: Action,
    ) -> Result<DeltaStream, AssistantError> {
        Err(AssistantError::new(
            AssistantErrorKind::Other,
            "this assistant offers no actions",
        ))
    }

    /// The settings a person can set for this assistant (select, slider, switch, text),
    /// shown in the settings panel; their values reach each reply as `cx.settings`.
    fn settings(&self) -> Vec<SettingSpec> {
        Vec::new()
    }

    /// What a person can choose to talk to, each with the starters of its empty chat; the
    /// choice reaches each reply as `cx.profile`.
    fn profiles(&self) -> Vec<Profile> {
        Vec::new()
    }

    /// A short title for a new chat, from its first exchange (the person's message and the
    /// reply). `None` keeps the title Confide made from the first words of the message,
    /// which is what an assistant that is not a model should do.
    async fn title(&self, _exchange: &[Turn]) -> Option<String> {
        None
    }
}

/// Most characters of a chat title.
pub const MAX_TITLE_CHARS: usize = 60;

/// A model's answer to "name this chat", made fit for the sidebar: its first non-empty
/// line without markdown marks, a `Title:` label or surrounding quotes, whitespace folded,
/// cut at a word within `MAX_TITLE_CHARS`. `None` when nothing is left.
pub fn clean_title(raw: &str) -> Option<String> {
    let line = raw.lines().map(str::trim).find(|l| !l.is_empty())?;
    let line = line.trim_start_matches(['#', '*', '-', '>', ' ']);
    let line = ["title:", "Title:", "TITLE:"]
        .iter()
        .find_map(|p| line.strip_prefix(p))
        .unwrap_or(line);
    let trimmed = line.trim_matches(|c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '"' | '\'' | '`' | '*' | '_' | '“' | '”' | '‘' | '’' | '.'
            )
    });
    let folded: String = trimmed
        .split_whitespace()
        .filter(|w| !w.chars().all(|c| c.is_control()))
        .collect::<Vec<_>>()
        .join(" ");
    let folded: String = folded.chars().filter(|c| !c.is_control()).collect();
    if folded.is_empty() {
        return None;
    }
    if folded.chars().count() <= MAX_TITLE_CHARS {
        return Some(folded);
    }
    let mut out = String::new();
    for word in folded.split(' ') {
        if out.chars().count() + word.chars().count() + 1 > MAX_TITLE_CHARS - 1 {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.is_empty() {
        out = folded.chars().take(MAX_TITLE_CHARS - 1).collect();
    }
    out.push('…');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::{MAX_TITLE_CHARS, clean_title};

    #[test]
    fn titles_are_cleaned_for_the_sidebar() {
        assert_eq!(
            clean_title("Rust lifetimes explained").as_deref(),
            Some("Rust lifetimes explained")
        );
        assert_eq!(
            clean_title("\n\n\"Baking bread\".\nmore").as_deref(),
            Some("Baking bread")
        );
        assert_eq!(
            clean_title("**Title:** Trip to Lisbon").as_deref(),
            Some("Trip to Lisbon")
        );
        assert_eq!(
            clean_title("# A  spaced\ttitle").as_deref(),
            Some("A spaced title")
        );
        assert_eq!(clean_title("  \n \"\" "), None);
        let long = clean_title(&"word ".repeat(40)).unwrap();
        assert!(long.chars().count() <= MAX_TITLE_CHARS, "{long}");
        assert!(long.ends_with('…') && !long.contains("  "), "{long}");
        let one = clean_title(&"x".repeat(200)).unwrap();
        assert_eq!(one.chars().count(), MAX_TITLE_CHARS);
    }
}
