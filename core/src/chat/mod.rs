//! Chat operations for one verified session: threads, messages, search, export. Replies
//! are generated apart (`reply`), by tasks the shared `ChatRuntime` keeps track of
//! (`runtime`).

mod quota;
mod reply;
mod runtime;

pub use quota::Quotas;
pub use runtime::ChatRuntime;

use super::{
    VerifiedSession, markdown,
    store::{ThreadTail, now_ms},
};
use crate::{
    ApiError, ErrorCode, SessionId,
    model::{
        ActionId, ChatEvent, ChatSettings, DEFAULT_TITLE, Export, ExportFormat, Feedback, FileId,
        MAX_COMMENT_CHARS, MAX_MESSAGE_CHARS, MAX_TITLE_CHARS, Message, MessageId, MessageStatus,
        MessageView, Rating, Role, SearchHit, Sent, Step, StepKind, StepStatus, Thread, ThreadId,
        ThreadView, title_from,
    },
};
use std::{sync::Arc, time::Duration};

/// The chat as one session sees it.
pub struct Chat {
    session: VerifiedSession,
    rt: Arc<ChatRuntime>,
}

/// `message` as the browser shows it: with its text rendered to sanitised HTML.
pub fn view(message: Message) -> MessageView {
    let html = markdown::render(&message.content);
    MessageView { message, html }
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
    /// The chat of `session`, whose replies run in `rt`.
    pub fn new(session: VerifiedSession, rt: Arc<ChatRuntime>) -> Self {
        Self { session, rt }
    }

    /// Counts against the daily quotas of whoever this session is: its account, or the
    /// anonymous session itself.
    fn meter(&self) -> quota::Meter<'_> {
        quota::Meter {
            store: self.session.store(),
            owner: self.sid(),
            quotas: self.rt.quotas,
        }
    }

    /// The daily quotas, before anything changes: refuses a reply when today's tokens are
    /// used up, and counts the person's message when `message` (refusing it when today's
    /// are). What it counted goes back with `Charged::give_back` if the message is not
    /// sent after all.
    async fn charge(&self, message: bool) -> Result<quota::Charged, ApiError> {
        let meter = self.meter();
        let now = now_ms();
        meter.check_tokens(now).await?;
        let counted = message && meter.count_message(now).await?;
        Ok(quota::Charged { counted, now })
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
            self.rt.replies.cancel_session(self.sid());
        }
        super::UserSession::from_verified(self.session.clone())
            .destroy()
            .await?;
        if self.session.home().is_none() {
            self.rt.files.delete_owner(self.sid()).await?;
        }
        // This browser's streams, not the account's: other browsers of the user stay.
        self.rt.hub.end(self.session.id());
        Ok(())
    }

    /// The session's chats, most recently updated first.
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

    /// Refuses a new reply while one streams in the thread, here or (with several
    /// instances) on another one; `end` is the thread's end as just read.
    fn ensure_idle(&self, thread: &ThreadId, end: &[Message]) -> Result<(), ApiError> {
        if self.rt.replies.busy(self.sid(), thread, end)
            || end
                .last()
                .is_some_and(|m| m.status == MessageStatus::Streaming)
        {
            return Err(ApiError::busy());
        }
        Ok(())
    }

    /// How much of a thread a turn reads: what the assistant may see, and at least the last
    /// message, which the busy check needs.
    fn turn_window(&self) -> usize {
        self.rt.history_turns.max(1)
    }

    /// Chat `id` with all its messages; not found if it is not this session's.
    pub async fn get_thread(&self, id: &ThreadId) -> Result<ThreadView, ApiError> {
        let (thread, messages) = self.thread(id).await?;
        Ok(ThreadView {
            thread,
            messages: messages.into_iter().map(view).collect(),
        })
    }

    /// A new, empty chat, called `title` or the default title.
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

    /// Renames chat `id`; every tab of the session hears of it.
    pub async fn rename_thread(&self, id: &ThreadId, title: String) -> Result<Thread, ApiError> {
        let title = title.trim().to_owned();
        if title.is_empty() {
            return Err(ApiError::invalid_input("the title must not be empty"));
        }
        check_len("the title", &title, MAX_TITLE_CHARS)?;
        // A first message sent meanwhile titles the chat from the thread it read: the lock
        // puts the rename wholly before or after it, in the store and in the tabs' events.
        let _turn = self.rt.turns.lock(self.sid(), id).await;
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

    /// Deletes chat `id` and its messages, stopping its reply if one is streaming.
    pub async fn delete_thread(&self, id: &ThreadId) -> Result<(), ApiError> {
        self.rt.replies.cancel_thread(self.sid(), id);
        let store = self.session.store();
        if !store.delete_thread(self.sid(), id).await? {
            return Err(ApiError::not_found());
        }
        // The thread is gone for the page already; its files follow (a failure leaves them
        // to nobody, and the session's end removes them).
        if let Err(e) = self.rt.files.delete_thread(self.sid(), id).await {
            tracing::warn!(session = %self.sid().log_tag(), error = %e.message, "the files of a deleted thread stay until the session ends");
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
        self.send_with(thread, content, &[]).await
    }

    /// Sends the person's message with their uploads `files` (each theirs, not yet part of
    /// another message); the text may be empty when files come with it.
    pub async fn send_with(
        &self,
        thread: Option<ThreadId>,
        content: String,
        files: &[FileId],
    ) -> Result<Sent, ApiError> {
        let content = content.trim_end().to_owned();
        if content.trim().is_empty() && files.is_empty() {
            return Err(ApiError::invalid_input("the message is empty"));
        }
        check_len("the message", &content, MAX_MESSAGE_CHARS)?;
        let max = self.rt.files.limits().max_files_per_message;
        if files.len() > max {
            return Err(ApiError::new(
                ErrorCode::LimitReached,
                format!("a message carries at most {max} files"),
            ));
        }
        // Every file must be there, and free, before anything is written (a new thread
        // included).
        let mut named = None;
        for id in files {
            let a = self.rt.files.get_pending(self.sid(), id).await?;
            named.get_or_insert(a.name);
        }
        let title_text = if content.trim().is_empty() {
            named.unwrap_or_default()
        } else {
            content.clone()
        };
        // An answer to a reply's question is part of that reply: it counts nothing, and a
        // reply waiting for it must be able to finish.
        let answers = thread.is_some_and(|t| self.rt.replies.is_asking(self.sid(), &t));
        let charged = if answers {
            quota::Charged::default()
        } else {
            self.charge(true).await?
        };
        let sent = self.send_charged(thread, content, files, title_text).await;
        if sent.is_err() {
            charged.give_back(&self.meter()).await;
        }
        sent
    }

    /// `send_with` once the quotas let the message through.
    async fn send_charged(
        &self,
        thread: Option<ThreadId>,
        content: String,
        files: &[FileId],
        title_text: String,
    ) -> Result<Sent, ApiError> {
        let new_thread = thread.is_none();
        // Held until the reply is admitted: the thread's end read here is still its end then.
        let _turn = match &thread {
            Some(id) => Some(self.rt.turns.lock(self.sid(), id).await),
            None => None,
        };
        let (thread, history, count) = match thread {
            Some(id) => {
                let tail = self.tail(&id, self.turn_window()).await?;
                (tail.thread, tail.messages, tail.count)
            }
            None => {
                let t = self.create_thread(Some(title_from(&title_text))).await?;
                (t, Vec::new(), 0)
            }
        };
        self.ensure_idle(&thread.id, &history)?;
        let id = MessageId::random();
        let attachments = self
            .rt
            .files
            .take_up(self.sid(), files, &thread.id, &id)
            .await?;
        let user = Message {
            id,
            thread_id: thread.id,
            role: Role::User,
            content,
            created_ms: now_ms(),
            status: MessageStatus::Done,
            feedback: None,
            error: None,
            steps: Vec::new(),
            actions: Vec::new(),
            attachments,
        };
        // A thread still called by the default title takes its title from its first message.
        let mut thread = thread;
        let titled = count == 0 && thread.title == DEFAULT_TITLE;
        if titled {
            thread.title = title_from(&title_text);
            let store = self.session.store();
            store.update_thread(self.sid(), &thread).await?;
        }
        let mut history = history;
        history.push(user.clone());
        let started = self
            .start_reply(&thread, history, Some(user), count == 0, None)
            .await;
        let (user_view, reply) = match started {
            Ok(s) => s,
            Err(e) => {
                // Not sent: the files wait for the next try instead of belonging to nothing,
                // and a chat made for the message (refused by a quota, say) goes again, unless
                // another tab's turn got into it first (busy).
                self.rt.files.release(self.sid(), files).await;
                if new_thread
                    && e.code != ErrorCode::Busy
                    && let Err(gone) = self.delete_thread(&thread.id).await
                {
                    tracing::debug!(session = %self.sid().log_tag(), error = %gone.message, "could not remove the chat of a message not sent");
                }
                return Err(e);
            }
        };
        let user_view = user_view.ok_or_else(ApiError::internal)?;
        // Appending a message moves its thread's `updated_ms` to the message's time (the
        // store contract), so the thread need not be read back, and listeners move it up
        // from the message events themselves: a thread event goes out only for a new title.
        thread.updated_ms = thread.updated_ms.max(reply.message.created_ms);
        if titled {
            self.publish(ChatEvent::Thread {
                thread: thread.clone(),
            });
        }
        Ok(Sent {
            thread,
            user: user_view,
            reply,
        })
    }
    /// Writes a change to a message already stored; not found if it is gone (an edit or a
    /// regeneration in another tab dropped it), rather than bringing it back.
    async fn put(&self, message: &Message) -> Result<(), ApiError> {
        let store = self.session.store();
        if store.replace_message(self.sid(), message).await? {
            Ok(())
        } else {
            Err(ApiError::not_found())
        }
    }

    /// Stops a streaming reply; the text so far stays, with status `stopped`.
    pub async fn stop(&self, message: &MessageId) -> Result<MessageView, ApiError> {
        let store = self.session.store();
        let msg = store
            .get_message(self.sid(), message)
            .await?
            .ok_or_else(ApiError::not_found)?;
        let handle = self
            .rt
            .replies
            .cancel_of(self.sid(), &msg.thread_id, &msg.id);
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
                // A stopped reply's buttons would answer a question it never finished.
                marked.actions.clear();
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
            return Err(ApiError::invalid_input("the message is empty"));
        }
        check_len("the message", &content, MAX_MESSAGE_CHARS)?;
        let store = self.session.store();
        let msg = store
            .get_message(self.sid(), message)
            .await?
            .ok_or_else(ApiError::not_found)?;
        if msg.role != Role::User {
            return Err(ApiError::invalid_input(
                "only your own messages can be edited",
            ));
        }
        // An edit asks anew: it counts as a message, before anything changes.
        let charged = self.charge(true).await?;
        let edited = self.edit_charged(msg, content).await;
        if edited.is_err() {
            charged.give_back(&self.meter()).await;
        }
        edited
    }

    async fn edit_charged(&self, msg: Message, content: String) -> Result<Sent, ApiError> {
        let store = self.session.store();
        // Another edit of this thread (a second tab) waits for this one to start its reply,
        // then stops that reply and truncates it: the later edit wins whole.
        let _turn = self.rt.turns.lock(self.sid(), &msg.thread_id).await;
        // Read again under the lock: an edit of an earlier message that went first has
        // dropped this one, which then answers not found.
        let mut msg = store
            .get_message(self.sid(), &msg.id)
            .await?
            .ok_or_else(ApiError::not_found)?;
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
        self.forget_dropped_files(msg.thread_id);
        let user_view = view(msg.clone());
        self.publish(ChatEvent::Message {
            message: user_view.clone(),
        });
        let tail = self.tail(&msg.thread_id, self.turn_window()).await?;
        // A turn of another instance that came in after the truncation (no lock is shared
        // across instances) went first: its reply streams, and this edit's question stays as
        // edited with no reply of its own rather than a second reply answering that turn.
        if tail.messages.last().map(|m| m.id) != Some(msg.id) {
            return Err(crate::StoreError::Moved.into());
        }
        let first = tail.count == 1;
        let thread = tail.thread;
        let (_, reply) = self
            .start_reply(&thread, tail.messages, None, first, None)
            .await?;
        Ok(Sent {
            thread,
            user: user_view,
            reply,
        })
    }

    /// Drops the last reply of the thread and generates it again.
    pub async fn regenerate(&self, thread: &ThreadId) -> Result<MessageView, ApiError> {
        // Tokens only, before the last reply goes.
        self.charge(false).await?;
        let _turn = self.rt.turns.lock(self.sid(), thread).await;
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
            return Err(ApiError::invalid_input(
                "there is nothing to regenerate in this thread",
            ));
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
        self.forget_dropped_files(*thread);
        let history = messages[..=last_user].to_vec();
        let first = before + last_user == 0;
        let (_, reply) = self.start_reply(&t, history, None, first, None).await?;
        Ok(reply)
    }

    /// Every file the chat data keeps (for "export my data").
    pub async fn files(&self) -> Result<Vec<crate::model::Attachment>, ApiError> {
        self.rt.files.list(self.sid()).await
    }

    /// Removes an upload the person took off before sending.
    pub async fn discard_file(&self, id: &FileId) -> Result<(), ApiError> {
        self.rt.files.discard(self.sid(), id).await
    }

    /// Removes the files of messages an edit or a regeneration dropped from `thread`: those
    /// of its files no remaining message carries. In the background, since it reads the whole
    /// thread, and after the new reply's placeholder is in, so the reply's own files (none
    /// yet) are not at risk.
    fn forget_dropped_files(&self, thread: ThreadId) {
        let (session, files) = (self.session.clone(), self.rt.files.clone());
        tokio::spawn(async move {
            let owner = *session.owner();
            let Ok(Some((_, messages))) = session.store().get_thread(&owner, &thread).await else {
                return;
            };
            let keep: std::collections::HashSet<FileId> = messages
                .iter()
                .flat_map(|m| m.attachments.iter().map(|a| a.id))
                .collect();
            if let Err(e) = files.retain_in_thread(&owner, &thread, &keep).await {
                tracing::warn!(session = %owner.log_tag(), error = %e.message, "the files of dropped messages stay until the thread goes");
            }
        });
    }

    /// The settings panel: the assistant's profiles and settings, and this session's choice.
    pub async fn settings(&self) -> Result<ChatSettings, ApiError> {
        let a = &self.rt.assistant;
        crate::settings::load(&self.session, a.settings(), a.profiles()).await
    }

    /// Sets this session's profile and any of its settings; see `settings::save`.
    pub async fn set_settings(
        &self,
        profile: Option<String>,
        values: std::collections::BTreeMap<String, crate::model::SettingValue>,
    ) -> Result<ChatSettings, ApiError> {
        let a = &self.rt.assistant;
        crate::settings::save(&self.session, a.settings(), a.profiles(), profile, values).await
    }

    /// A click on action `action` of reply `message`: the reply's buttons go (the choice is
    /// made), and the assistant answers the action with a new reply in the same thread.
    /// Only a reply of this session's own, and only an action it still offers, can be
    /// clicked; anything else answers 404 as a missing one would.
    pub async fn act(
        &self,
        message: &MessageId,
        action: &ActionId,
    ) -> Result<MessageView, ApiError> {
        let store = self.session.store();
        let thread = store
            .get_message(self.sid(), message)
            .await?
            .ok_or_else(ApiError::not_found)?
            .thread_id;
        let _turn = self.rt.turns.lock(self.sid(), &thread).await;
        // Read again under the lock: a second click (two tabs, a double click) that waited for
        // the first must find the buttons gone, even if the first's reply is already over.
        let mut offered = store
            .get_message(self.sid(), message)
            .await?
            .ok_or_else(ApiError::not_found)?;
        // Only a finished reply's buttons answer; one still streaming or stopped has none.
        let chosen = offered
            .actions
            .iter()
            .find(|a| a.id == *action)
            .filter(|_| offered.status == MessageStatus::Done)
            .cloned()
            .ok_or_else(ApiError::not_found)?;
        let tail = self.tail(&thread, self.turn_window()).await?;
        self.ensure_idle(&tail.thread.id, &tail.messages)?;
        // Tokens only, before the buttons go.
        self.charge(false).await?;
        // Clicks on two instances may both get this far: the turn lock and the reply's
        // admission (`start_reply`) hold within one instance.
        offered.actions.clear();
        self.put(&offered).await?;
        self.publish(ChatEvent::Message {
            message: view(offered.clone()),
        });
        // Never a chat's first exchange: the reply that offered the action came before.
        let (_, reply) = self
            .start_reply(&tail.thread, tail.messages, None, false, Some(chosen))
            .await?;
        Ok(reply)
    }

    async fn stop_thread_and_wait(&self, thread: &ThreadId) {
        self.rt.replies.cancel_thread(self.sid(), thread);
        self.wait_idle(thread, Duration::from_secs(1)).await;
    }

    /// Waits (up to `max`) until no reply of this instance streams in the thread.
    async fn wait_idle(&self, thread: &ThreadId, max: Duration) {
        let deadline = tokio::time::Instant::now() + max;
        while self.rt.replies.busy(self.sid(), thread, &[])
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Rates a reply (or takes the rating back with `None`), with an optional comment.
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
            return Err(ApiError::invalid_input(
                "feedback is for the assistant's replies",
            ));
        }
        // The reply's own saves would write over the rating; it can be given once it is done.
        if msg.status == MessageStatus::Streaming {
            return Err(ApiError::new(
                crate::ErrorCode::Busy,
                "the reply is still being written; rate it once it is done",
            ));
        }
        msg.feedback = rating.map(|rating| Feedback { rating, comment });
        self.put(&msg).await?;
        let v = view(msg);
        self.publish(ChatEvent::Message { message: v.clone() });
        Ok(v)
    }

    /// Chat `thread` as a file to download: Markdown (steps folded in `<details>`) or JSON.
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
                // Each file once more with where it downloads (for this session only).
                let files: Vec<_> = messages
                    .iter()
                    .flat_map(|m| m.attachments.iter())
                    .map(|a| serde_json::json!({ "id": a.id, "name": a.name, "url": a.url() }))
                    .collect();
                let content = serde_json::to_string_pretty(
                    &serde_json::json!({ "thread": thread, "messages": messages, "files": files }),
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
                    out.push_str(&format!("\n## {who}\n\n"));
                    steps_markdown(&mut out, &m.steps);
                    out.push_str(&format!("{}\n", m.content));
                    files_markdown(&mut out, &m.attachments);
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

/// A message's files for a Markdown export: a link each, to where this session downloads
/// it, the name escaped so it cannot end the link or start markup.
fn files_markdown(out: &mut String, files: &[crate::model::Attachment]) {
    if files.is_empty() {
        return;
    }
    out.push('\n');
    for f in files {
        let name: String = f
            .name
            .chars()
            .flat_map(|c| {
                let escape = matches!(
                    c,
                    '[' | ']' | '(' | ')' | '\\' | '`' | '*' | '_' | '<' | '>' | '!'
                );
                escape.then_some('\\').into_iter().chain([c])
            })
            .collect();
        out.push_str(&format!(
            "- 📎 [{name}]({}) ({}, {})\n",
            f.url(),
            f.mime,
            crate::model::human_size(f.size)
        ));
    }
}

/// A reply's steps for a Markdown export: one folded block each, nested ones indented by
/// an arrow, input and output in code fences longer than any run of backticks inside.
fn steps_markdown(out: &mut String, steps: &[Step]) {
    fn depth(steps: &[Step], s: &Step) -> usize {
        let mut d = 0;
        let mut parent = s.parent;
        while let Some(p) = parent.and_then(|id| steps.iter().find(|x| x.id == id)) {
            d += 1;
            parent = p.parent;
            if d > steps.len() {
                break;
            }
        }
        d
    }
    fn fenced(out: &mut String, label: &str, text: &str) {
        if text.is_empty() {
            return;
        }
        let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
        let fence = "`".repeat((longest + 1).max(3));
        out.push_str(&format!("{label}:\n\n{fence}\n{text}\n{fence}\n\n"));
    }
    for s in steps {
        let kind = match s.kind {
            StepKind::Tool => "Tool",
            StepKind::Retrieval => "Retrieval",
            StepKind::Reasoning => "Reasoning",
            StepKind::Run => "Step",
        };
        let status = match s.status {
            StepStatus::Running => "running",
            StepStatus::Done => "done",
            StepStatus::Failed => "failed",
            StepStatus::Stopped => "stopped",
        };
        let name = ammonia::clean_text(&s.name);
        out.push_str(&format!(
            "<details><summary>{}{kind}: {name} ({status})</summary>\n\n",
            "↳ ".repeat(depth(steps, s))
        ));
        fenced(out, "Input", &s.input);
        fenced(out, "Output", &s.output);
        out.push_str("</details>\n\n");
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
