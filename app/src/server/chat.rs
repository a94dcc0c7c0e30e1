//! Chat operations for one verified session, and the background generation of replies.
//!
//! Replies run as tasks of their own, not inside the request that asked for them: the
//! person may reload, open another tab or press Stop (a separate request) while the reply
//! streams. Progress reaches the browser through the session's event stream and is saved
//! to the store as it goes, so a reload shows the text so far.

use super::{
    VerifiedSession,
    assistant::{Assistant, Turn},
    events::EventHub,
    markdown,
    store::{ThreadTail, now_ms},
};
use crate::{
    ApiError, ErrorCode, SessionId,
    model::{
        ChatEvent, DEFAULT_TITLE, Export, ExportFormat, Feedback, MAX_COMMENT_CHARS,
        MAX_MESSAGE_CHARS, MAX_TITLE_CHARS, Message, MessageId, MessageStatus, MessageView, Rating,
        Role, SearchHit, Sent, Thread, ThreadId, ThreadView, title_from,
    },
};
use futures::StreamExt;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio_util::sync::CancellationToken;

/// Shared by all requests: the assistant, the event hub and the replies in progress.
pub struct ChatRuntime {
    assistant: Arc<dyn Assistant>,
    hub: Arc<dyn EventHub>,
    /// (session, thread) → the reply streaming there. One reply per thread at a time.
    running: Mutex<HashMap<(SessionId, ThreadId), Running>>,
    /// Least time between two `Delta` events of one reply.
    pub delta_interval: Duration,
    /// Least time between two saves of a streaming reply.
    pub persist_interval: Duration,
    /// Most messages the assistant is shown, the latest ones. A turn reads only this end of
    /// its thread, so its cost does not grow with the thread.
    pub history_turns: usize,
}

struct Running {
    message: MessageId,
    cancel: CancellationToken,
}

impl ChatRuntime {
    pub fn new(assistant: Arc<dyn Assistant>, hub: Arc<dyn EventHub>) -> Self {
        Self {
            assistant,
            hub,
            running: Mutex::new(HashMap::new()),
            delta_interval: Duration::from_millis(50),
            persist_interval: Duration::from_millis(500),
            history_turns: 40,
        }
    }

    pub fn hub(&self) -> &Arc<dyn EventHub> {
        &self.hub
    }

    /// Replies currently streaming, across all sessions.
    pub fn running_replies(&self) -> usize {
        self.running.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// Whether a reply is being generated in the thread, given the thread's messages as just
    /// read (its last ones suffice: the reply in progress is the thread's last message, as no
    /// turn is appended while it runs). A reply is saved in its final state a moment before
    /// its task lets go of the thread, and a reader may see the saved state in between: the
    /// stored status is the later word, so a running entry whose reply is stored as finished
    /// no longer counts.
    fn busy(&self, sid: &SessionId, thread: &ThreadId, messages: &[Message]) -> bool {
        let Ok(r) = self.running.lock() else {
            return false;
        };
        r.get(&(*sid, *thread))
            .is_some_and(|run| !finished(messages, &run.message))
    }

    /// Stops every reply of a session (it is being deleted).
    pub fn cancel_session(&self, sid: &SessionId) {
        if let Ok(r) = self.running.lock() {
            for ((s, _), run) in r.iter() {
                if s == sid {
                    run.cancel.cancel();
                }
            }
        }
    }

    fn cancel_thread(&self, sid: &SessionId, thread: &ThreadId) {
        if let Ok(r) = self.running.lock()
            && let Some(run) = r.get(&(*sid, *thread))
        {
            run.cancel.cancel();
        }
    }
}

/// The chat as one session sees it.
pub struct Chat {
    session: VerifiedSession,
    rt: Arc<ChatRuntime>,
}

pub fn view(message: Message) -> MessageView {
    let html = markdown::render(&message.content);
    MessageView { message, html }
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidInput, msg)
}

fn check_len(what: &str, text: &str, max: usize) -> Result<(), ApiError> {
    let n = text.chars().count();
    if n > max {
        return Err(ApiError::new(
            ErrorCode::TooLarge,
            format!("{what} has {n} characters; the limit is {max}"),
        ));
    }
    Ok(())
}

impl Chat {
    pub fn new(session: VerifiedSession, rt: Arc<ChatRuntime>) -> Self {
        Self { session, rt }
    }

    /// The session and runtime of the current server-function request.
    pub async fn current() -> Result<Self, ApiError> {
        let session = super::UserSession::current().await?.verified().clone();
        let axum::Extension(rt) = leptos_axum::extract::<axum::Extension<Arc<ChatRuntime>>>()
            .await
            .map_err(|_| ApiError::internal())?;
        Ok(Self { session, rt })
    }

    /// The id chat data lives under: the signed-in user's home, or the session itself.
    /// Events go there too, so every browser of one user stays in sync.
    fn sid(&self) -> &SessionId {
        self.session.owner()
    }

    fn publish(&self, event: ChatEvent) {
        self.rt.hub.publish(self.sid(), event);
    }

    /// Everything the session holds, for "export my data".
    pub async fn export_all(&self) -> Result<Vec<ThreadView>, ApiError> {
        let mut out = Vec::new();
        for t in self.list_threads().await? {
            match self.get_thread(&t.id).await {
                Ok(v) => out.push(v),
                Err(e) if e.code == ErrorCode::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Deletes the session with all its data and stops its replies. A signed-in user's
    /// threads live in their home and stay: this forgets the browser, not the account.
    pub async fn forget(&self) -> Result<(), ApiError> {
        if self.session.home().is_none() {
            self.rt.cancel_session(self.sid());
        }
        super::UserSession::from_verified(self.session.clone())
            .destroy()
            .await?;
        // This browser's streams, not the account's: other browsers of the user stay.
        self.rt.hub.end(self.session.id());
        Ok(())
    }

    pub async fn list_threads(&self) -> Result<Vec<Thread>, ApiError> {
        let store = self.session.store();
        store.list_threads(self.sid()).await.map_err(ApiError::from)
    }

    async fn thread(&self, id: &ThreadId) -> Result<(Thread, Vec<Message>), ApiError> {
        let store = self.session.store();
        store
            .get_thread(self.sid(), id)
            .await?
            .ok_or_else(ApiError::not_found)
    }

    /// The thread with its last `last` messages and its message count.
    async fn tail(&self, id: &ThreadId, last: usize) -> Result<ThreadTail, ApiError> {
        let store = self.session.store();
        store
            .thread_tail(self.sid(), id, last)
            .await?
            .ok_or_else(ApiError::not_found)
    }

    /// How much of a thread a turn reads: what the assistant may see, and at least the last
    /// message, which the busy check needs.
    fn turn_window(&self) -> usize {
        self.rt.history_turns.max(1)
    }

    pub async fn get_thread(&self, id: &ThreadId) -> Result<ThreadView, ApiError> {
        let (thread, messages) = self.thread(id).await?;
        Ok(ThreadView {
            thread,
            messages: messages.into_iter().map(view).collect(),
        })
    }

    pub async fn create_thread(&self, title: Option<String>) -> Result<Thread, ApiError> {
        let title = title
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| DEFAULT_TITLE.into());
        check_len("the title", &title, MAX_TITLE_CHARS)?;
        let now = now_ms();
        let thread = Thread {
            id: ThreadId::random(),
            title,
            created_ms: now,
            updated_ms: now,
        };
        let store = self.session.store();
        store.create_thread(self.sid(), &thread).await?;
        self.publish(ChatEvent::Thread {
            thread: thread.clone(),
        });
        Ok(thread)
    }

    pub async fn rename_thread(&self, id: &ThreadId, title: String) -> Result<Thread, ApiError> {
        let title = title.trim().to_owned();
        if title.is_empty() {
            return Err(invalid("the title must not be empty"));
        }
        check_len("the title", &title, MAX_TITLE_CHARS)?;
        let mut thread = self.tail(id, 0).await?.thread;
        thread.title = title;
        let store = self.session.store();
        if !store.update_thread(self.sid(), &thread).await? {
            return Err(ApiError::not_found());
        }
        self.publish(ChatEvent::Thread {
            thread: thread.clone(),
        });
        Ok(thread)
    }

    pub async fn delete_thread(&self, id: &ThreadId) -> Result<(), ApiError> {
        self.rt.cancel_thread(self.sid(), id);
        let store = self.session.store();
        if !store.delete_thread(self.sid(), id).await? {
            return Err(ApiError::not_found());
        }
        self.publish(ChatEvent::ThreadDeleted { thread_id: *id });
        Ok(())
    }

    /// Threads whose title or messages contain `query` (case-insensitive), newest first.
    pub async fn search(&self, query: &str) -> Result<Vec<SearchHit>, ApiError> {
        let q = query.trim().to_lowercase();
        check_len("the query", &q, MAX_TITLE_CHARS)?;
        let threads = self.list_threads().await?;
        if q.is_empty() {
            return Ok(threads
                .into_iter()
                .map(|thread| SearchHit {
                    thread,
                    snippet: None,
                })
                .collect());
        }
        let mut hits = Vec::new();
        for thread in threads {
            if thread.title.to_lowercase().contains(&q) {
                hits.push(SearchHit {
                    thread,
                    snippet: None,
                });
                continue;
            }
            let (_, messages) = match self.thread(&thread.id).await {
                Ok(t) => t,
                Err(e) if e.code == ErrorCode::NotFound => continue,
                Err(e) => return Err(e),
            };
            if let Some(snippet) = messages.iter().find_map(|m| snippet(&m.content, &q)) {
                hits.push(SearchHit {
                    thread,
                    snippet: Some(snippet),
                });
            }
        }
        Ok(hits)
    }

    /// Sends the person's message (in a new thread when `thread` is `None`) and starts the reply.
    pub async fn send(&self, thread: Option<ThreadId>, content: String) -> Result<Sent, ApiError> {
        let content = content.trim_end().to_owned();
        if content.trim().is_empty() {
            return Err(invalid("the message is empty"));
        }
        check_len("the message", &content, MAX_MESSAGE_CHARS)?;
        let (thread, history, count) = match thread {
            Some(id) => {
                let tail = self.tail(&id, self.turn_window()).await?;
                (tail.thread, tail.messages, tail.count)
            }
            None => {
                let t = self.create_thread(Some(title_from(&content))).await?;
                (t, Vec::new(), 0)
            }
        };
        // Busy here, or (with several instances) streaming on another one.
        if self.rt.busy(self.sid(), &thread.id, &history)
            || history
                .last()
                .is_some_and(|m| m.status == MessageStatus::Streaming)
        {
            return Err(ApiError::new(
                ErrorCode::Busy,
                "a reply is still streaming in this thread; stop it first",
            ));
        }
        let user = Message {
            id: MessageId::random(),
            thread_id: thread.id,
            role: Role::User,
            content,
            created_ms: now_ms(),
            status: MessageStatus::Done,
            feedback: None,
            error: None,
        };
        // A thread still called by the default title takes its title from its first message.
        let mut thread = thread;
        if count == 0 && thread.title == DEFAULT_TITLE {
            thread.title = title_from(&user.content);
            let store = self.session.store();
            store.update_thread(self.sid(), &thread).await?;
        }
        let mut history = history;
        history.push(user.clone());
        let (user_view, reply) = self
            .start_reply(&thread, history, Some(user), count == 0)
            .await?;
        let user_view = user_view.ok_or_else(ApiError::internal)?;
        // Appending a message moves its thread's `updated_ms` to the message's time (the
        // store contract), so the thread need not be read back.
        thread.updated_ms = thread.updated_ms.max(reply.message.created_ms);
        self.publish(ChatEvent::Thread {
            thread: thread.clone(),
        });
        Ok(Sent {
            thread,
            user: user_view,
            reply,
        })
    }

    async fn put(&self, message: &Message) -> Result<(), ApiError> {
        let store = self.session.store();
        if store.put_message(self.sid(), message).await? {
            Ok(())
        } else {
            Err(ApiError::not_found())
        }
    }

    /// Stores the reply placeholder, after `asked` (the person's new message, stored in the
    /// same call), and starts generating. `history` is the end of the thread up to the
    /// question; `first` says the question is the thread's only message, which is not
    /// something a bounded history can tell. Answers the views of both.
    async fn start_reply(
        &self,
        thread: &Thread,
        history: Vec<Message>,
        asked: Option<Message>,
        first: bool,
    ) -> Result<(Option<MessageView>, MessageView), ApiError> {
        let reply = Message {
            id: MessageId::random(),
            thread_id: thread.id,
            role: Role::Assistant,
            content: String::new(),
            created_ms: now_ms(),
            status: MessageStatus::Streaming,
            feedback: None,
            error: None,
        };
        let cancel = CancellationToken::new();
        {
            let mut running = self.rt.running.lock().map_err(|_| ApiError::internal())?;
            if running
                .get(&(*self.sid(), thread.id))
                .is_some_and(|run| !finished(&history, &run.message))
            {
                return Err(ApiError::new(
                    ErrorCode::Busy,
                    "a reply is still streaming in this thread; stop it first",
                ));
            }
            running.insert(
                (*self.sid(), thread.id),
                Running {
                    message: reply.id,
                    cancel: cancel.clone(),
                },
            );
        }
        let turn: Vec<Message> = asked.iter().cloned().chain([reply.clone()]).collect();
        let store = self.session.store();
        let stored = match store
            .put_messages(self.sid(), &turn)
            .await
            .map_err(ApiError::from)
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(ApiError::not_found()),
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            self.rt
                .running
                .lock()
                .map(|mut r| r.remove(&(*self.sid(), thread.id)))
                .ok();
            return Err(e);
        }
        let asked_view = asked.map(view);
        if let Some(v) = &asked_view {
            self.publish(ChatEvent::Message { message: v.clone() });
        }
        let reply_view = view(reply.clone());
        self.publish(ChatEvent::Message {
            message: reply_view.clone(),
        });
        let mut turns: Vec<Turn> = history
            .into_iter()
            .filter(|m| !(m.role == Role::Assistant && m.content.is_empty()))
            .map(|m| Turn {
                role: m.role,
                content: m.content,
            })
            .collect();
        let excess = turns.len().saturating_sub(self.rt.history_turns.max(1));
        turns.drain(..excess);
        tokio::spawn(generate(
            self.rt.clone(),
            self.session.clone(),
            reply,
            turns,
            first,
            cancel,
        ));
        Ok((asked_view, reply_view))
    }

    /// Stops a streaming reply; the text so far stays, with status `stopped`.
    pub async fn stop(&self, message: &MessageId) -> Result<MessageView, ApiError> {
        let store = self.session.store();
        let msg = store
            .get_message(self.sid(), message)
            .await?
            .ok_or_else(ApiError::not_found)?;
        let handle = self.rt.running.lock().ok().and_then(|r| {
            r.get(&(*self.sid(), msg.thread_id))
                .filter(|run| run.message == msg.id)
                .map(|run| run.cancel.clone())
        });
        match handle {
            Some(cancel) => {
                cancel.cancel();
                // The generation task saves the final state; wait briefly so the answer shows it.
                self.wait_idle(&msg.thread_id, Duration::from_millis(500))
                    .await;
                let msg = store
                    .get_message(self.sid(), message)
                    .await?
                    .ok_or_else(ApiError::not_found)?;
                Ok(view(msg))
            }
            // Streaming on another instance: mark it stopped in the store; that instance's
            // generator sees the mark at its next save and stops there.
            None if msg.status == MessageStatus::Streaming => {
                let mut marked = msg;
                marked.status = MessageStatus::Stopped;
                self.put(&marked).await?;
                let v = view(marked);
                self.publish(ChatEvent::Message { message: v.clone() });
                Ok(v)
            }
            None => Ok(view(msg)),
        }
    }

    /// Replaces a message of the person, drops every later turn and asks again.
    pub async fn edit(&self, message: &MessageId, content: String) -> Result<Sent, ApiError> {
        let content = content.trim_end().to_owned();
        if content.trim().is_empty() {
            return Err(invalid("the message is empty"));
        }
        check_len("the message", &content, MAX_MESSAGE_CHARS)?;
        let store = self.session.store();
        let mut msg = store
            .get_message(self.sid(), message)
            .await?
            .ok_or_else(ApiError::not_found)?;
        if msg.role != Role::User {
            return Err(invalid("only your own messages can be edited"));
        }
        self.stop_thread_and_wait(&msg.thread_id).await;
        msg.content = content;
        self.put(&msg).await?;
        store
            .truncate_after(self.sid(), &msg.thread_id, Some(&msg.id))
            .await?;
        self.publish(ChatEvent::Truncated {
            thread_id: msg.thread_id,
            after: Some(msg.id),
        });
        let user_view = view(msg.clone());
        self.publish(ChatEvent::Message {
            message: user_view.clone(),
        });
        let tail = self.tail(&msg.thread_id, self.turn_window()).await?;
        let first = tail.count == 1;
        let thread = tail.thread;
        let (_, reply) = self
            .start_reply(&thread, tail.messages, None, first)
            .await?;
        Ok(Sent {
            thread,
            user: user_view,
            reply,
        })
    }

    /// Drops the last reply of the thread and generates it again.
    pub async fn regenerate(&self, thread: &ThreadId) -> Result<MessageView, ApiError> {
        self.stop_thread_and_wait(thread).await;
        // The window and the reply after it; a thread whose last question lies further back
        // than that (replies that were never followed by one) is read whole.
        let tail = self.tail(thread, self.turn_window() + 1).await?;
        let (t, messages, before) = if tail.messages.iter().any(|m| m.role == Role::User)
            || tail.messages.len() == tail.count
        {
            let before = tail.count.saturating_sub(tail.messages.len());
            (tail.thread, tail.messages, before)
        } else {
            let (t, messages) = self.thread(thread).await?;
            (t, messages, 0)
        };
        let Some(last_user) = messages.iter().rposition(|m| m.role == Role::User) else {
            return Err(invalid("there is nothing to regenerate in this thread"));
        };
        let keep = messages[last_user].id;
        let store = self.session.store();
        store
            .truncate_after(self.sid(), thread, Some(&keep))
            .await?;
        self.publish(ChatEvent::Truncated {
            thread_id: *thread,
            after: Some(keep),
        });
        let history = messages[..=last_user].to_vec();
        let first = before + last_user == 0;
        let (_, reply) = self.start_reply(&t, history, None, first).await?;
        Ok(reply)
    }

    async fn stop_thread_and_wait(&self, thread: &ThreadId) {
        self.rt.cancel_thread(self.sid(), thread);
        self.wait_idle(thread, Duration::from_secs(1)).await;
    }

    /// Waits (up to `max`) until no reply of this instance streams in the thread.
    async fn wait_idle(&self, thread: &ThreadId, max: Duration) {
        let deadline = tokio::time::Instant::now() + max;
        while self.rt.busy(self.sid(), thread, &[]) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn feedback(
        &self,
        message: &MessageId,
        rating: Option<Rating>,
        comment: Option<String>,
    ) -> Result<MessageView, ApiError> {
        let comment = comment
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty());
        if let Some(c) = &comment {
            check_len("the comment", c, MAX_COMMENT_CHARS)?;
        }
        let store = self.session.store();
        let mut msg = store
            .get_message(self.sid(), message)
            .await?
            .ok_or_else(ApiError::not_found)?;
        if msg.role != Role::Assistant {
            return Err(invalid("feedback is for the assistant's replies"));
        }
        msg.feedback = rating.map(|rating| Feedback { rating, comment });
        self.put(&msg).await?;
        let v = view(msg);
        self.publish(ChatEvent::Message { message: v.clone() });
        Ok(v)
    }

    pub async fn export(
        &self,
        thread: &ThreadId,
        format: ExportFormat,
    ) -> Result<Export, ApiError> {
        let (thread, messages) = self.thread(thread).await?;
        let base: String = thread
            .title
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect::<String>()
            .split('-')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        let base = if base.is_empty() {
            "chat".to_owned()
        } else {
            base.chars().take(60).collect()
        };
        match format {
            ExportFormat::Json => {
                let content = serde_json::to_string_pretty(
                    &serde_json::json!({ "thread": thread, "messages": messages }),
                )
                .map_err(|_| ApiError::internal())?;
                Ok(Export {
                    filename: format!("{base}.json"),
                    mime: "application/json".into(),
                    content,
                })
            }
            ExportFormat::Markdown => {
                let mut out = format!("# {}\n", thread.title);
                for m in &messages {
                    let who = match m.role {
                        Role::User => "You",
                        Role::Assistant => "Assistant",
                    };
                    out.push_str(&format!("\n## {who}\n\n{}\n", m.content));
                }
                Ok(Export {
                    filename: format!("{base}.md"),
                    mime: "text/markdown".into(),
                    content: out,
                })
            }
        }
    }
}

fn snippet(content: &str, q: &str) -> Option<String> {
    let lower = content.to_lowercase();
    let at = lower.find(q)?;
    // Work in characters of the lowercased text; close enough for a preview.
    let chars: Vec<char> = lower.chars().collect();
    let char_at = lower[..at].chars().count();
    let start = char_at.saturating_sub(30);
    let end = (char_at + q.chars().count() + 30).min(chars.len());
    let original: Vec<char> = content.chars().collect();
    let pick = |i: usize| original.get(i).copied().unwrap_or(' ');
    let mut s: String = (start..end).map(pick).collect();
    if start > 0 {
        s.insert(0, '…');
    }
    if end < chars.len() {
        s.push('…');
    }
    Some(s)
}

/// Whether `reply` is among `messages` in a final state (done, stopped, failed).
fn finished(messages: &[Message], reply: &MessageId) -> bool {
    messages
        .iter()
        .any(|m| m.id == *reply && m.status != MessageStatus::Streaming)
}

/// Runs one reply to completion, stop or failure. Deltas are published at most every
/// `delta_interval`; the text is saved at most every `persist_interval` and always at the end.
async fn generate(
    rt: Arc<ChatRuntime>,
    session: VerifiedSession,
    mut reply: Message,
    history: Vec<Turn>,
    first: bool,
    cancel: CancellationToken,
) {
    let sid = *session.owner();
    let save = |m: Message| {
        let session = session.clone();
        async move {
            if let Err(e) = session.store().put_message(session.owner(), &m).await {
                tracing::warn!(session = %session.owner().log_tag(), error = %e, "saving a reply failed");
            }
        }
    };
    let publish_delta = |m: &Message| {
        rt.hub.publish(
            &sid,
            ChatEvent::Delta {
                thread_id: m.thread_id,
                message_id: m.id,
                content: m.content.clone(),
                html: markdown::render(&m.content),
            },
        )
    };

    // A chat's first exchange may name it (see `name_chat`).
    let first_question = match history.as_slice() {
        [.., last] if first && last.role == Role::User => Some(last.clone()),
        _ => None,
    };
    let stream = tokio::select! {
        _ = cancel.cancelled() => None,
        s = rt.assistant.reply(history) => Some(s),
    };
    match stream {
        None => reply.status = MessageStatus::Stopped,
        Some(Err(e)) => {
            reply.status = MessageStatus::Error;
            reply.error = Some(e.message);
        }
        Some(Ok(mut stream)) => {
            let mut last_delta = Instant::now();
            let mut last_save = Instant::now();
            let mut pending = false;
            loop {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => {
                        reply.status = MessageStatus::Stopped;
                        break;
                    }
                    item = stream.next() => match item {
                        Some(Ok(delta)) => {
                            reply.content.push_str(&delta);
                            pending = true;
                            if last_delta.elapsed() >= rt.delta_interval {
                                publish_delta(&reply);
                                last_delta = Instant::now();
                                pending = false;
                            }
                            if last_save.elapsed() >= rt.persist_interval {
                                // A Stop handled by another instance shows up as the stored
                                // status; honour it instead of overwriting it.
                                let stored = session.store().get_message(session.owner(), &reply.id).await;
                                match stored {
                                    Ok(Some(m)) if m.status == MessageStatus::Stopped => {
                                        reply.status = MessageStatus::Stopped;
                                        break;
                                    }
                                    // Deleted meanwhile (thread or session): nothing to save.
                                    Ok(None) | Err(super::StoreError::NoSuchSession) => {
                                        reply.status = MessageStatus::Stopped;
                                        break;
                                    }
                                    _ => {}
                                }
                                save(reply.clone()).await;
                                last_save = Instant::now();
                            }
                        }
                        Some(Err(e)) => {
                            reply.status = MessageStatus::Error;
                            reply.error = Some(e.message);
                            break;
                        }
                        None => {
                            reply.status = MessageStatus::Done;
                            break;
                        }
                    }
                }
            }
            let _ = pending;
            // Dropping the stream here cancels the upstream request.
            drop(stream);
        }
    }
    save_final(&session, &reply).await;
    // Only this reply's own entry: a next turn may have taken the thread already, once it
    // read this reply as finished.
    if let Ok(mut r) = rt.running.lock()
        && r.get(&(sid, reply.thread_id))
            .is_some_and(|run| run.message == reply.id)
    {
        r.remove(&(sid, reply.thread_id));
    }
    let named = (reply.status == MessageStatus::Done)
        .then_some(first_question)
        .flatten()
        .map(|q| (q, reply.content.clone(), reply.thread_id));
    rt.hub.publish(
        &sid,
        ChatEvent::Message {
            message: view(reply),
        },
    );
    if let Some((question, answer, thread)) = named {
        name_chat(&rt, &session, thread, question, answer).await;
    }
}

/// Gives a new chat the title its assistant proposes from the first exchange, unless the
/// person has renamed it meanwhile (its title is no longer the one made from the first
/// words). Runs after the reply is complete and announced, so it never delays it.
async fn name_chat(
    rt: &ChatRuntime,
    session: &VerifiedSession,
    thread: ThreadId,
    question: Turn,
    answer: String,
) {
    let automatic = title_from(&question.content);
    let exchange = [
        question,
        Turn {
            role: Role::Assistant,
            content: answer,
        },
    ];
    let Some(title) = rt.assistant.title(&exchange).await else {
        return;
    };
    let owner = session.owner();
    let Ok(Some(ThreadTail {
        thread: mut current,
        ..
    })) = session.store().thread_tail(owner, &thread, 0).await
    else {
        return;
    };
    if current.title != automatic || current.title == title {
        return;
    }
    current.title = title;
    if let Ok(true) = session.store().update_thread(owner, &current).await {
        rt.hub.publish(owner, ChatEvent::Thread { thread: current });
    }
}

/// The final state of a reply must land: one left `streaming` in the store would keep its
/// thread busy until someone pressed Stop. A store that is briefly away (a Redis restart, a
/// full queue) gets a few more tries, about 15 s in all.
async fn save_final(session: &VerifiedSession, reply: &Message) {
    let mut wait = Duration::from_millis(250);
    for attempt in 0..7 {
        match session.store().put_message(session.owner(), reply).await {
            // Saved, or the thread or session is gone: either way nothing is left to do.
            Ok(_) | Err(super::StoreError::NoSuchSession) => return,
            Err(e) if attempt < 6 => {
                tracing::warn!(session = %session.owner().log_tag(), error = %e, "saving a finished reply failed; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(e) => {
                tracing::error!(session = %session.owner().log_tag(), error = %e, "a finished reply could not be saved; it stays marked as streaming");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::snippet;

    #[test]
    fn snippets_surround_the_match() {
        assert_eq!(
            snippet("hello world", "world").as_deref(),
            Some("hello world")
        );
        let long = format!("{}needle{}", "a".repeat(100), "b".repeat(100));
        let s = snippet(&long, "needle").unwrap();
        assert!(
            s.starts_with('…') && s.ends_with('…') && s.contains("needle"),
            "{s}"
        );
        assert_eq!(snippet("nothing here", "zzz"), None);
        assert!(
            snippet("Ünïcödé NEEDLE ok", "needle")
                .unwrap()
                .contains("NEEDLE")
        );
    }
}
