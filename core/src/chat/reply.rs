//! The reply engine. A reply runs as a task of its own, not inside the request that asked
//! for it: the person may reload, open another tab or press Stop (a separate request) while
//! it streams. Progress reaches the browser through the session's event stream and is saved
//! to the store as it goes, so a reload shows the text so far.

use super::{
    Chat,
    runtime::{ChatRuntime, Continuation, Slot},
    view,
};
use crate::{
    ApiError, UserSession, VerifiedSession,
    assistant::{Question, ReplyContext, Turn},
    files::ReplyFiles,
    markdown,
    model::{
        Action, ActionId, Attachment, ChatEvent, FileId, Message, MessageId, MessageStatus,
        MessageView, Role, Step, StepId, StepStatus, Thread, ThreadId, title_from,
    },
    steps::{Actions, Steps},
    store::{ThreadTail, now_ms},
};
use futures::StreamExt;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

impl Chat {
    /// Stores the reply placeholder, after `asked` (the person's new message, stored in the
    /// same call), and starts generating. `history` is the end of the thread up to the
    /// question; `first` says the question is the thread's only message, which is not
    /// something a bounded history can tell. With `action`, the reply answers a click on
    /// that action instead of a question. Answers the views of both.
    pub(super) async fn start_reply(
        &self,
        thread: &Thread,
        history: Vec<Message>,
        asked: Option<Message>,
        first: bool,
        action: Option<Action>,
    ) -> Result<(Option<MessageView>, MessageView), ApiError> {
        let reply = Message::new_reply(thread.id, now_ms());
        // A reply that asked the person a question takes this message as the answer, and
        // goes on in `reply` instead of a new reply starting.
        let waiting = match (&asked, &action) {
            (Some(_), None) => {
                self.rt
                    .replies
                    .take_answer(self.sid(), &thread.id, reply.id, &history)
            }
            _ => None,
        };
        let slot = match waiting {
            Some(_) => None,
            None => Some(
                self.rt
                    .replies
                    .admit(self.sid(), &thread.id, reply.id, &history)?,
            ),
        };
        let store = self.session.store();
        // The thread's end as this turn read it: `history` ends with it, or with the question
        // (`asked`) that is to follow it.
        let mut read = history.iter().rev();
        if asked.is_some() {
            read.next();
        }
        let after = read.next().map(|m| m.id);
        let turn: Vec<Message> = asked.iter().cloned().chain([reply.clone()]).collect();
        let stored = match store
            .put_turn(self.sid(), after.as_ref(), &turn)
            .await
            .map_err(ApiError::from)
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(ApiError::not_found()),
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            // The question waits on for an answer that can be stored; a new reply's slot,
            // dropped here, lets go of the thread.
            if let Some(tx) = waiting {
                self.rt
                    .replies
                    .restore(self.sid(), &thread.id, &reply.id, tx);
            }
            return Err(e);
        }
        let asked_view = asked.clone().map(view);
        if let Some(v) = &asked_view {
            self.publish(ChatEvent::Message { message: v.clone() });
        }
        let reply_view = view(reply.clone());
        self.publish(ChatEvent::Message {
            message: reply_view.clone(),
        });
        let slot = match (slot, waiting) {
            (Some(slot), _) => slot,
            (None, Some(waiting)) => {
                let answer = asked
                    .as_ref()
                    .map(|m| m.content.clone())
                    .unwrap_or_default();
                let handed = waiting.send(Continuation {
                    answer,
                    reply: reply.clone(),
                });
                match handed {
                    Ok(()) => return Ok((asked_view, reply_view)),
                    // The asking reply ended just now: a reply of its own answers instead.
                    Err(_) => {
                        self.rt.replies.release(self.sid(), &thread.id, &reply.id);
                        match self
                            .rt
                            .replies
                            .admit(self.sid(), &thread.id, reply.id, &history)
                        {
                            Ok(slot) => slot,
                            Err(e) => {
                                let mut failed = reply;
                                failed.status = MessageStatus::Error;
                                failed.error = Some(e.message.clone());
                                self.put(&failed).await?;
                                self.publish(ChatEvent::Message {
                                    message: view(failed),
                                });
                                return Err(e);
                            }
                        }
                    }
                }
            }
            (None, None) => return Err(ApiError::internal()),
        };
        let mut turns: Vec<Turn> = history
            .into_iter()
            .filter(|m| !(m.role == Role::Assistant && m.content.is_empty()))
            .map(|m| Turn {
                role: m.role,
                content: m.content,
                attachments: m.attachments,
            })
            .collect();
        let excess = turns.len().saturating_sub(self.rt.history_turns.max(1));
        turns.drain(..excess);
        let asked = Asked {
            history: turns,
            first,
            action,
        };
        tokio::spawn(generate(
            self.rt.clone(),
            self.session.clone(),
            thread.clone(),
            reply,
            asked,
            slot,
        ));
        Ok((asked_view, reply_view))
    }
}

/// What a reply answers: the conversation so far, and the action clicked, if that is what
/// asked for it.
struct Asked {
    history: Vec<Turn>,
    /// The question is the chat's first message.
    first: bool,
    action: Option<Action>,
}

/// Counts the model tokens a reply took against the daily quota: what the endpoint
/// reported, else an estimate from the turns it was shown and the text it wrote.
async fn spend_tokens(
    rt: &ChatRuntime,
    session: &VerifiedSession,
    usage: &crate::assistant::Usage,
    shown: u64,
    written: &str,
) {
    if rt.quotas.tokens_per_day == 0 {
        return;
    }
    let tokens = usage
        .reported()
        .unwrap_or_else(|| shown + super::quota::estimate_tokens(std::iter::once(written)));
    let meter = super::quota::Meter {
        store: session.store(),
        owner: session.owner(),
        quotas: rt.quotas,
    };
    meter.spend_tokens(tokens, now_ms()).await;
}

/// Runs one reply to completion, stop or failure. Deltas are published at most every
/// `delta_interval`; the text is saved at most every `persist_interval` and always at the end.
async fn generate(
    rt: Arc<ChatRuntime>,
    session: VerifiedSession,
    thread: Thread,
    mut reply: Message,
    asked: Asked,
    slot: Slot,
) {
    let Asked {
        history,
        first,
        action,
    } = asked;
    let cancel = slot.cancel.clone();
    let sid = *session.owner();
    let save = |m: Message| {
        let session = session.clone();
        async move {
            // Never appends: a reply an edit has dropped stays dropped.
            if let Err(e) = session.store().replace_message(session.owner(), &m).await {
                tracing::warn!(session = %session.owner().log_tag(), error = %e, "saving a reply failed");
            }
        }
    };
    // What the listeners were last sent of the message being written; a full message event
    // of it resets it (a whole delta comes next).
    let mut sent: Option<SentDelta> = None;

    // A chat's first exchange may name it (see `name_chat`).
    let first_question = match history.as_slice() {
        [.., last] if first && last.role == Role::User => Some(last.clone()),
        _ => None,
    };
    let values = UserSession::from_verified(session.clone());
    // Read here, in the reply's own task, so the request that asked is answered at once;
    // both at the same time, so a networked store takes one round trip for the two.
    let account = async {
        // Unreadable, it is taken as nobody: an assistant then offers no more than to a
        // stranger.
        values.account().await.unwrap_or_else(|e| {
            tracing::warn!(session = %sid.log_tag(), error = %e.message, "the account of a reply's session could not be read");
            None
        })
    };
    let (specs, profiles) = (rt.assistant.settings(), rt.assistant.profiles());
    let chosen = async {
        // An assistant with nothing to set leaves nothing to read: its turns make no extra
        // call.
        if specs.is_empty() && profiles.is_empty() {
            return Default::default();
        }
        crate::settings::for_reply(&session, &specs, &profiles)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(session = %sid.log_tag(), error = %e.message, "the settings of a reply's session could not be read; the defaults apply");
                Default::default()
            })
    };
    let (account, (settings, profile)) = tokio::join!(account, chosen);
    let (asker, mut questions) = tokio::sync::mpsc::channel(1);
    let shown_tokens = super::quota::estimate_tokens(history.iter().map(|t| t.content.as_str()));
    let cx = ReplyContext::new(
        history,
        thread,
        account,
        values,
        cancel.clone(),
        Some((rt.files.clone(), sid, reply.id)),
    )
    .with_settings(settings, profile)
    .with_asker(asker);
    let (steps, actions, files) = (cx.steps.clone(), cx.actions.clone(), cx.files.clone());
    let usage = cx.usage();
    let started = async {
        match action {
            Some(action) => rt.assistant.on_action(cx, action).await,
            None => rt.assistant.reply(cx).await,
        }
    };
    // What earlier messages of this reply (before a question) showed: the steps and buttons
    // of the message being written are the others.
    let mut shown = Shown::default();
    // Set when the reply ended while it waited for an answer: its last message, the
    // question, is already saved and announced.
    let mut over = false;
    // An assistant may ask before it hands over its stream: questions are heard from the
    // start.
    let mut started = std::pin::pin!(started);
    let stream = loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break None,
            Some(question) = questions.recv() => {
                let asked = Asking { rt: &rt, session: &session, slot: &slot, cancel: &cancel };
                match asked.wait(&mut reply, question, &steps, &actions, &mut shown).await {
                    Some(next) => reply = next,
                    None => {
                        over = true;
                        break None;
                    }
                }
            }
            s = &mut started => break Some(s),
        }
    };
    if over {
        spend_tokens(&rt, &session, &usage, shown_tokens, &reply.content).await;
        return;
    }
    match stream {
        None => reply.status = MessageStatus::Stopped,
        Some(Err(e)) => {
            reply.status = MessageStatus::Error;
            reply.error = Some(e.message);
        }
        Some(Ok(mut stream)) => {
            let mut last_delta = Instant::now();
            let mut last_save = Instant::now();
            // Text not yet sent as a delta, and a state not yet saved. Each waits for its
            // interval, and then goes out even if nothing more arrives: a model that pauses,
            // or a tool that runs for a while, must not leave the page behind.
            let mut unsent = false;
            let mut unsaved = false;
            loop {
                let due = [
                    unsent.then(|| last_delta + rt.delta_interval),
                    unsaved.then(|| last_save + rt.persist_interval),
                ]
                .into_iter()
                .flatten()
                .min();
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => {
                        reply.status = MessageStatus::Stopped;
                        break;
                    }
                    _ = steps.changed() => {
                        reply.steps = shown.new_steps(&steps, false);
                        reply.actions = shown.new_actions(&actions);
                        reply.attachments = shown.new_files(&files);
                        // A step is rare and shown at once, with the text so far.
                        rt.hub.publish(&sid, ChatEvent::Message { message: view(reply.clone()) });
                        sent = None;
                        last_delta = Instant::now();
                        unsent = false;
                        unsaved = true;
                    }
                    Some(question) = questions.recv() => {
                        let asked = Asking { rt: &rt, session: &session, slot: &slot, cancel: &cancel };
                        match asked.wait(&mut reply, question, &steps, &actions, &mut shown).await {
                            Some(next) => {
                                reply = next;
                                (last_delta, last_save) = (Instant::now(), Instant::now());
                                (unsent, unsaved) = (false, false);
                            }
                            None => {
                                over = true;
                                break;
                            }
                        }
                    }
                    item = stream.next() => match item {
                        Some(Ok(delta)) => {
                            reply.content.push_str(&delta);
                            unsent = true;
                            unsaved = true;
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
                    },
                    _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now).into()), if due.is_some() => {}
                }
                if unsent && last_delta.elapsed() >= rt.delta_interval {
                    rt.hub.publish(&sid, delta(&reply, &mut sent));
                    last_delta = Instant::now();
                    unsent = false;
                }
                if unsaved && last_save.elapsed() >= rt.persist_interval {
                    // A Stop handled by another instance shows up as the stored status;
                    // honour it instead of overwriting it.
                    let stored = session
                        .store()
                        .get_message(session.owner(), &reply.id)
                        .await;
                    match stored {
                        Ok(Some(m)) if m.status == MessageStatus::Stopped => {
                            reply.status = MessageStatus::Stopped;
                            break;
                        }
                        // Deleted meanwhile (thread or session): nothing to save.
                        Ok(None) | Err(crate::StoreError::NoSuchSession) => {
                            reply.status = MessageStatus::Stopped;
                            break;
                        }
                        _ => {}
                    }
                    save(reply.clone()).await;
                    last_save = Instant::now();
                    unsaved = false;
                }
            }
            // Dropping the stream here cancels the upstream request, and drops the handles
            // of the steps it still held open.
            drop(stream);
        }
    }
    if over {
        spend_tokens(&rt, &session, &usage, shown_tokens, &reply.content).await;
        return;
    }
    // The steps as the reply ended: whatever still runs ends with it.
    steps.end_running(match reply.status {
        MessageStatus::Done | MessageStatus::Streaming => StepStatus::Done,
        MessageStatus::Stopped => StepStatus::Stopped,
        MessageStatus::Error => StepStatus::Failed,
    });
    reply.steps = shown.new_steps(&steps, false);
    reply.attachments = shown.new_files(&files);
    // Buttons offered by a reply that did not finish would answer a question it never
    // answered.
    reply.actions = match reply.status {
        MessageStatus::Done => shown.new_actions(&actions),
        _ => Vec::new(),
    };
    // Counted before the reply shows as ended, so a next message sees its tokens.
    spend_tokens(&rt, &session, &usage, shown_tokens, &reply.content).await;
    save_final(&session, &reply).await;
    // The thread is free once the final state is stored (not before: a next turn reads the
    // stored state to decide whether it may start).
    drop(slot);
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

/// A whole delta at least this often, so a listener that joined mid-reply (or missed one)
/// catches up within it.
const WHOLE_DELTA_EVERY: Duration = Duration::from_secs(1);

/// The last delta the listeners were sent of a message.
struct SentDelta {
    id: MessageId,
    len: usize,
    html: String,
    whole_at: Instant,
}

/// The delta for `m`'s state now: only what changed since the last one sent of it, or
/// whole when there is none, or the last whole one is `WHOLE_DELTA_EVERY` old.
fn delta(m: &Message, sent: &mut Option<SentDelta>) -> ChatEvent {
    delta_at(m, sent, Instant::now())
}

/// `delta` as of `now`.
fn delta_at(m: &Message, sent: &mut Option<SentDelta>, now: Instant) -> ChatEvent {
    let html = markdown::render(&m.content);
    let base = sent.as_ref().filter(|s| {
        s.id == m.id
            && now.duration_since(s.whole_at) < WHOLE_DELTA_EVERY
            && m.content.is_char_boundary(s.len)
    });
    let (event, whole_at) = match base {
        Some(s) => {
            let keep = common_prefix(&s.html, &html);
            let event = ChatEvent::Delta {
                thread_id: m.thread_id,
                message_id: m.id,
                content: m.content[s.len..].to_owned(),
                html: html[keep..].to_owned(),
                from: Some(s.len),
                keep: Some(keep),
            };
            (event, s.whole_at)
        }
        None => {
            let event = ChatEvent::Delta {
                thread_id: m.thread_id,
                message_id: m.id,
                content: m.content.clone(),
                html: html.clone(),
                from: None,
                keep: None,
            };
            (event, now)
        }
    };
    *sent = Some(SentDelta {
        id: m.id,
        len: m.content.len(),
        html,
        whole_at,
    });
    event
}

/// The length of the longest common start of `a` and `b`, at a character boundary.
fn common_prefix(a: &str, b: &str) -> usize {
    let same = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    (0..=same)
        .rev()
        .find(|&i| a.is_char_boundary(i) && b.is_char_boundary(i))
        .unwrap_or(0)
}

/// The steps and buttons that messages before a question showed, so the message after the
/// answer shows only its own.
#[derive(Default)]
struct Shown {
    steps: std::collections::HashSet<StepId>,
    actions: std::collections::HashSet<ActionId>,
    files: std::collections::HashSet<FileId>,
}

impl Shown {
    /// The steps not shown before; with `ended`, only those that have ended.
    fn new_steps(&self, steps: &Steps, ended: bool) -> Vec<Step> {
        steps
            .snapshot()
            .into_iter()
            .filter(|s| !self.steps.contains(&s.id) && (!ended || s.ended()))
            .collect()
    }

    fn new_actions(&self, actions: &Actions) -> Vec<Action> {
        actions
            .snapshot()
            .into_iter()
            .filter(|a| !self.actions.contains(&a.id))
            .collect()
    }

    fn new_files(&self, files: &ReplyFiles) -> Vec<Attachment> {
        files
            .attached()
            .into_iter()
            .filter(|a| !self.files.contains(&a.id))
            .collect()
    }

    fn add(&mut self, message: &Message) {
        self.files.extend(message.attachments.iter().map(|a| a.id));
        self.steps.extend(message.steps.iter().map(|s| s.id));
        self.actions.extend(message.actions.iter().map(|a| a.id));
    }
}

/// What a reply that asks a question needs.
struct Asking<'a> {
    rt: &'a ChatRuntime,
    session: &'a VerifiedSession,
    slot: &'a Slot,
    cancel: &'a tokio_util::sync::CancellationToken,
}

impl Asking<'_> {
    /// Ends `reply` with `question`, saved and announced as a finished message (with the
    /// steps that have ended and the buttons so far), and waits for the answer. Answers the
    /// message the reply goes on in, or `None` if the reply is over: no answer in time, a
    /// Stop, the session's end, or another reply took the thread.
    async fn wait(
        &self,
        reply: &mut Message,
        question: Question,
        steps: &Steps,
        actions: &Actions,
        shown: &mut Shown,
    ) -> Option<Message> {
        if !reply.content.is_empty() {
            reply.content.push_str("\n\n");
        }
        reply.content.push_str(&question.text);
        reply.status = MessageStatus::Done;
        reply.steps = shown.new_steps(steps, true);
        reply.actions = shown.new_actions(actions);
        shown.add(reply);
        // Waiting before the question is announced: an answer at once finds the reply.
        let answered = self.slot.await_answer();
        save_final(self.session, reply).await;
        self.rt.hub.publish(
            self.session.owner(),
            ChatEvent::Message {
                message: view(reply.clone()),
            },
        );
        let mut answered = answered?;
        // Never longer than the runtime allows: a reply left waiting holds its thread.
        let timeout = question
            .timeout
            .map_or(self.rt.ask_timeout, |t| t.min(self.rt.ask_timeout));
        let outcome = tokio::select! {
            // An answer that arrives with the end of the wait still counts.
            biased;
            answer = &mut answered => answer.ok(),
            _ = self.cancel.cancelled() => None,
            _ = tokio::time::sleep(timeout) => None,
        };
        // An answer handed over just as the wait ended is in the channel: take it.
        let outcome = outcome.or_else(|| {
            answered.close();
            answered.try_recv().ok()
        });
        self.slot.stop_asking();
        let Continuation { answer, reply } = outcome?;
        if self.cancel.is_cancelled() {
            // Stopped as the answer came: its reply ends before it began.
            let mut stopped = reply;
            stopped.status = MessageStatus::Stopped;
            save_final(self.session, &stopped).await;
            self.rt.hub.publish(
                self.session.owner(),
                ChatEvent::Message {
                    message: view(stopped),
                },
            );
            return None;
        }
        // An author who stopped waiting still gets the message: its stream goes on there.
        let _ = question.answer.send(answer);
        Some(reply)
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
    let exchange = [question, Turn::new(Role::Assistant, answer)];
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
        match session
            .store()
            .replace_message(session.owner(), reply)
            .await
        {
            // Saved, or the thread or session is gone: either way nothing is left to do.
            Ok(_) | Err(crate::StoreError::NoSuchSession) => return,
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
    use super::*;
    use crate::model::grow;

    /// One reply, the same message in every state.
    fn reply(content: &str) -> Message {
        static ID: std::sync::OnceLock<MessageId> = std::sync::OnceLock::new();
        Message {
            id: *ID.get_or_init(MessageId::random),
            ..Message::streaming(content)
        }
    }

    /// One moment for every delta of a test: rendering on a busy machine (the first use of
    /// the highlighter loads its syntaxes) must not make a second pass between two deltas.
    fn at() -> Instant {
        static AT: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *AT.get_or_init(Instant::now)
    }

    /// `delta` at `at()`.
    fn delta(m: &Message, sent: &mut Option<SentDelta>) -> ChatEvent {
        delta_at(m, sent, at())
    }

    /// What a listener holds after taking in `event`, or `None` if it skipped it.
    fn apply(held: &(String, String), event: &ChatEvent) -> Option<(String, String)> {
        let ChatEvent::Delta {
            content,
            html,
            from,
            keep,
            ..
        } = event
        else {
            panic!("not a delta: {event:?}");
        };
        match from.zip(*keep) {
            None => Some((content.clone(), html.clone())),
            Some(at) => grow((&held.0, &held.1), at, (content, html)),
        }
    }

    /// States of a reply whose later text changes how earlier text renders: a line that
    /// turns the paragraph above into a heading, a table's delimiter row, a reference link
    /// defined after its use, a list that becomes loose, code fences, and text in several
    /// scripts, so a change may start inside a multi-byte character of the rendering.
    const GROWTH: &[&str] = &[
        "Plan",
        "Plan\n",
        "Plan\n===",
        "Plan\n===\n\nSee [the docs] for é",
        "Plan\n===\n\nSee [the docs] for éà\n\n[the docs]: https://example.com/",
        "Plan\n===\n\nSee [the docs] for éà\n\n[the docs]: https://example.com/\n\n| a | b |",
        "Plan\n===\n\nSee [the docs] for éà\n\n[the docs]: https://example.com/\n\n| a | b |\n|---|---|\n| 1 | 2 |",
        "Plan\n===\n\nSee [the docs] for éà\n\n[the docs]: https://example.com/\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- one\n- two",
        "Plan\n===\n\nSee [the docs] for éà\n\n[the docs]: https://example.com/\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- one\n- two\n\n- three 日本語",
        "Plan\n===\n\nSee [the docs] for éà\n\n[the docs]: https://example.com/\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- one\n- two\n\n- three 日本語🙂\n\n```rust\nfn main() {",
        "Plan\n===\n\nSee [the docs] for éà\n\n[the docs]: https://example.com/\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- one\n- two\n\n- three 日本語🙂\n\n```rust\nfn main() {}\n```\n<script>alert(1)</script>",
    ];

    #[test]
    fn a_listener_that_hears_every_delta_holds_every_state() {
        let mut sent = None;
        let mut held = (String::new(), String::new());
        let mut partial = 0;
        for (i, text) in GROWTH.iter().enumerate() {
            let event = delta(&reply(text), &mut sent);
            if let ChatEvent::Delta { from: Some(_), .. } = &event {
                partial += 1;
            } else {
                assert_eq!(i, 0, "only the first is whole within a second");
            }
            held = apply(&held, &event).expect("the state it grew from");
            assert_eq!(held.0, *text);
            assert_eq!(held.1, markdown::render(text), "after {text:?}");
        }
        assert_eq!(partial, GROWTH.len() - 1);
    }

    #[test]
    fn a_change_is_smaller_than_the_whole() {
        let mut sent = None;
        let long = "word ".repeat(2_000);
        delta(&reply(&long), &mut sent);
        let grown = format!("{long}more");
        let event = delta(&reply(&grown), &mut sent);
        let size = serde_json::to_string(&event).unwrap().len();
        assert!(size < 300, "{size} bytes: {event:?}");
    }

    #[test]
    fn a_listener_that_missed_some_skips_until_a_whole_delta() {
        let mut sent = None;
        let first = delta(&reply(GROWTH[0]), &mut sent);
        // This listener took in the first state only, then missed two deltas.
        let held = apply(&(String::new(), String::new()), &first).unwrap();
        delta(&reply(GROWTH[1]), &mut sent);
        delta(&reply(GROWTH[2]), &mut sent);
        let third = delta(&reply(GROWTH[3]), &mut sent);
        assert_eq!(apply(&held, &third), None, "not the state it grew from");
        // A second on, the next delta is whole again, and everyone holds the state.
        let whole = delta_at(&reply(GROWTH[4]), &mut sent, at() + WHOLE_DELTA_EVERY);
        assert!(matches!(whole, ChatEvent::Delta { from: None, .. }));
        let held = apply(&held, &whole).unwrap();
        assert_eq!(held, (GROWTH[4].to_owned(), markdown::render(GROWTH[4])));
    }

    #[test]
    fn another_message_starts_whole() {
        let mut sent = None;
        delta(&reply("asked first"), &mut sent);
        let mut next = reply("asked first and more");
        next.id = MessageId::random();
        assert!(matches!(
            delta(&next, &mut sent),
            ChatEvent::Delta { from: None, .. }
        ));
    }

    #[test]
    fn a_delta_never_cuts_a_character_and_a_forged_one_is_refused() {
        assert_eq!(
            common_prefix("é", "è"),
            0,
            "same first byte, other character"
        );
        assert_eq!(common_prefix("aé", "aè"), 1);
        assert_eq!(common_prefix("abc", "abd"), 2);
        assert_eq!(common_prefix("", "x"), 0);
        let held = ("ab", "<p>é</p>");
        for (at, change, grown, why) in [
            ((2, 4), ("c", "x"), None, "inside é"),
            ((2, 99), ("c", "x"), None, "past the end"),
            ((1, 3), ("c", "x"), None, "another state"),
            (
                (2, 5),
                ("c", "</p>"),
                Some(("abc", "<p>é</p>")),
                "a change that fits",
            ),
        ] {
            let want = grown.map(|(c, h): (&str, &str)| (c.to_owned(), h.to_owned()));
            assert_eq!(grow(held, at, change), want, "{why}");
        }
    }
}
