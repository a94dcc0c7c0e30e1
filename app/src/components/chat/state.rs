//! The chat data the page shows, and what keeps it current: the server's answers and the
//! live events, merged so that an older state of a message never replaces a newer one.

use crate::{
    ApiError,
    api::{self},
    components::{SessionCtx, SessionState},
    model::{ChatEvent, MessageId, MessageStatus, MessageView, Thread, ThreadId, ThreadView, grow},
};
use leptos::prelude::*;
use leptos_router::{NavigateOptions, hooks::use_navigate, location::Location};
use std::collections::{HashMap, VecDeque};

/// Chat data the page shows, shared by the sidebar, the thread view and the event stream.
#[derive(Clone, Copy)]
pub struct ChatState {
    pub threads: Resource<Result<Vec<Thread>, ApiError>>,
    pub current: Resource<Result<Option<ThreadView>, ApiError>>,
    /// The thread named by the URL.
    pub open: Memo<Option<ThreadId>>,
    /// Bumped to reload everything (session ready, stream reconnected, events missed).
    pub epoch: RwSignal<u32>,
    known: StoredValue<Known>,
    reading: StoredValue<Reading>,
    /// The open thread was deleted (here or elsewhere) and the page should leave it.
    left: RwSignal<Option<ThreadId>>,
    /// A chat the session does not have (any more): its path was followed, or it went with
    /// an ended session. A message written there starts a new chat.
    missing: RwSignal<Option<ThreadId>>,
    /// The reply whose optional feedback comment is being written. Kept here, not in the
    /// bubble, so a reload of the thread (which builds its bubbles afresh) keeps it open.
    pub(super) commenting: RwSignal<Option<MessageId>>,
    /// The live event stream was handed to a newer one of the session (another browser,
    /// or a program); this page shows no live changes until the person resumes it.
    pub paused: RwSignal<bool>,
}

/// The newest state this page has seen of each message. The answer to a request and the
/// live events about the same message travel separately and arrive in either order (a
/// short reply's last event often comes before the answer that started it); every state
/// the page takes in passes through here, so an older one never replaces a newer one.
#[derive(Default)]
struct Known {
    messages: HashMap<MessageId, MessageView>,
    /// Insertion order, to forget the oldest once there are too many.
    order: VecDeque<MessageId>,
    /// Per chat, a count of the changes no older answer can hold: a message it had not
    /// seen, or messages cut away. An answer read while its chat's count moved is read again.
    changes: HashMap<ThreadId, u64>,
    /// Per reply being written, the text and rendering its deltas have built so far. A delta
    /// that carries only a change applies to this and nothing else: a state read from the
    /// store may hold the same text rendered by another instance, and a change cut into
    /// another rendering would make no sense.
    deltas: HashMap<MessageId, (String, String)>,
}

impl Known {
    /// Far more than one page shows; a reordering of states spans a moment, not a session.
    const LIMIT: usize = 2_000;

    /// Takes in `m` unless a newer state of it is known, and answers the newest.
    fn merge(&mut self, m: MessageView) -> MessageView {
        let id = m.message.id;
        if m.message.status != MessageStatus::Streaming {
            // Ended: no more deltas of it.
            self.deltas.remove(&id);
        }
        match self.messages.get_mut(&id) {
            Some(known) if !m.message.supersedes(&known.message) => known.clone(),
            Some(known) => {
                if *known != m {
                    *known = m.clone();
                }
                m
            }
            None => {
                self.changed(m.message.thread_id);
                self.messages.insert(id, m.clone());
                self.order.push_back(id);
                while self.order.len() > Self::LIMIT {
                    if let Some(old) = self.order.pop_front() {
                        self.messages.remove(&old);
                        self.deltas.remove(&old);
                    }
                }
                m
            }
        }
    }

    fn get(&self, id: &MessageId) -> Option<&MessageView> {
        self.messages.get(id)
    }

    /// Chat `thread` changed in a way an answer read before now does not show.
    fn changed(&mut self, thread: ThreadId) {
        *self.changes.entry(thread).or_default() += 1;
    }

    fn changes(&self, thread: ThreadId) -> u64 {
        self.changes.get(&thread).copied().unwrap_or_default()
    }

    fn forget_thread(&mut self, thread: ThreadId) {
        self.messages.retain(|_, m| m.message.thread_id != thread);
        let messages = &self.messages;
        self.order.retain(|id| messages.contains_key(id));
        self.deltas.retain(|id, _| messages.contains_key(id));
    }

    /// The text and rendering of reply `id` after this delta, built on what its earlier
    /// deltas built; `None` for a change to a state they did not build.
    fn follow(
        &mut self,
        id: MessageId,
        (content, html): (String, String),
        change: Option<(usize, usize)>,
    ) -> Option<(String, String)> {
        let grown = match change {
            None => (content, html),
            Some(at) => {
                let (c, h) = self.deltas.get(&id)?;
                grow((c, h), at, (&content, &html))?
            }
        };
        self.deltas.insert(id, grown.clone());
        Some(grown)
    }
}

/// The reads of the chat list and of the open chat that are on their way. A write to a
/// resource throws away the answer it is waiting for (the resource takes the written value
/// as its newest), so while one is out the page writes nothing there: a message's news goes
/// to `Known`, through which the answer passes, and what an older answer cannot hold makes
/// its read run again (`Known::changed`, `list_changes`).
#[derive(Default)]
struct Reading {
    list: u32,
    chat: u32,
    /// Changes to the chat list (a chat added, renamed, moved up or deleted) that came while
    /// the list was being read.
    list_changes: u64,
}

/// One read on its way, counted for as long as it lives: a resource may drop a run half-way.
struct Out {
    reading: StoredValue<Reading>,
    chat: bool,
}

impl Out {
    fn new(reading: StoredValue<Reading>, chat: bool) -> Self {
        reading.try_update_value(|r| *r.count(chat) += 1);
        Self { reading, chat }
    }
}

impl Drop for Out {
    fn drop(&mut self) {
        let chat = self.chat;
        self.reading
            .try_update_value(|r| *r.count(chat) = r.count(chat).saturating_sub(1));
    }
}

impl Reading {
    fn count(&mut self, chat: bool) -> &mut u32 {
        if chat { &mut self.chat } else { &mut self.list }
    }
}

impl ChatState {
    fn reading(&self, chat: bool) -> bool {
        self.reading
            .try_with_value(|r| if chat { r.chat > 0 } else { r.list > 0 })
            .unwrap_or(false)
    }

    /// A change to the chat list: written, or (while the list is being read) left to a
    /// read that will hold it.
    fn change_list(&self, change: impl FnOnce(&mut Vec<Thread>)) {
        if self.reading(false) {
            self.reading.try_update_value(|r| r.list_changes += 1);
        } else if peek(&self.threads).with_untracked(|r| matches!(r, Some(Ok(_)))) {
            self.threads.update(|r| {
                if let Some(Ok(list)) = r {
                    change(list);
                }
            });
        }
    }

    pub(super) fn streaming(&self) -> Option<MessageId> {
        self.current.with(|c| {
            c.as_ref()
                .and_then(|r| r.as_ref().ok())
                .and_then(|t| t.as_ref())
                .and_then(|t| {
                    t.messages
                        .iter()
                        .find(|m| m.message.status == MessageStatus::Streaming)
                        .map(|m| m.message.id)
                })
        })
    }

    pub(super) fn upsert_thread(&self, thread: Thread) {
        let id = thread.id;
        {
            let mut thread = thread.clone();
            self.change_list(move |list| {
                // A thread's time is a version: messages may have moved it past this state.
                if let Some(old) = list.iter().find(|t| t.id == thread.id) {
                    thread.updated_ms = thread.updated_ms.max(old.updated_ms);
                }
                list.retain(|t| t.id != thread.id);
                list.push(thread);
                list.sort_by_key(|t| std::cmp::Reverse(t.updated_ms));
            });
        }
        let open = |tv: &mut ThreadView| {
            let at = tv.thread.updated_ms.max(thread.updated_ms);
            tv.thread = thread;
            tv.thread.updated_ms = at;
        };
        if !self.with_open(id, open) && self.reading(true) {
            // Its new title or time may be newer than the answer on its way.
            self.known.try_update_value(|k| k.changed(id));
        }
    }

    /// Changes the open chat's data, if it is chat `id`, the page shows it and no read of it
    /// is on its way (see `Reading`): a change to a chat the page is leaving (the person
    /// opened another while a reply streamed there) written into the page would throw away
    /// the chat they chose. What is not written here is still known (`merge`), and the
    /// answer that opens the chat passes through what is known. Answers whether it wrote.
    fn with_open(&self, id: ThreadId, f: impl FnOnce(&mut ThreadView)) -> bool {
        let shown = peek(&self.current)
            .with_untracked(|r| matches!(r, Some(Ok(Some(tv))) if tv.thread.id == id));
        if !shown || self.open.get_untracked() != Some(id) || self.reading(true) {
            return false;
        }
        self.current.update(|r| {
            if let Some(Ok(Some(tv))) = r {
                f(tv);
            }
        });
        true
    }

    /// The newest of `m` and what is known of it; the page keeps that one.
    pub(super) fn merge(&self, m: MessageView) -> MessageView {
        self.known
            .try_update_value(|k| k.merge(m.clone()))
            .unwrap_or(m)
    }

    /// A new message moves its chat up the list: no thread event says so (see
    /// `ChatEvent::Message`).
    fn touch_thread(&self, id: ThreadId, at: i64) {
        let behind = peek(&self.threads).with_untracked(
            |r| matches!(r, Some(Ok(list)) if list.iter().any(|t| t.id == id && t.updated_ms < at)),
        );
        if behind || self.reading(false) {
            self.change_list(|list| {
                if let Some(t) = list.iter_mut().find(|t| t.id == id) {
                    t.updated_ms = t.updated_ms.max(at);
                }
                list.sort_by_key(|t| std::cmp::Reverse(t.updated_ms));
            });
        }
    }

    pub(super) fn upsert_message(&self, m: MessageView) {
        let thread = m.message.thread_id;
        let created = m.message.created_ms;
        let new = self
            .known
            .try_with_value(|k| k.get(&m.message.id).is_none())
            .unwrap_or(false);
        if new {
            self.touch_thread(thread, created);
        }
        let mut incoming = Some(m);
        self.with_open(thread, |tv| {
            let Some(m) = incoming.take() else { return };
            tv.thread.updated_ms = tv.thread.updated_ms.max(created);
            match tv
                .messages
                .iter_mut()
                .find(|x| x.message.id == m.message.id)
            {
                Some(shown) => {
                    // What is shown may have come with the server-rendered page, unseen here.
                    self.merge(shown.clone());
                    *shown = self.merge(m);
                }
                None => tv.messages.push(self.merge(m)),
            }
        });
        // Not open (yet): a new chat's events can outrun the answer that opens it.
        if let Some(m) = incoming {
            self.merge(m);
        }
    }

    /// Message `id` as the open thread shows it now (read without tracking: the bubble
    /// built from it follows its changes itself).
    pub(super) fn shown(&self, id: MessageId) -> Option<MessageView> {
        peek(&self.current).with_untracked(|c| {
            c.as_ref()
                .and_then(|r| r.as_ref().ok())
                .and_then(|t| t.as_ref())
                .and_then(|t| t.messages.iter().find(|m| m.message.id == id).cloned())
        })
    }

    /// The chat a message sent now goes to: the open one, unless the session does not
    /// have it (then a new chat).
    pub(super) fn send_target(&self) -> Option<ThreadId> {
        self.open
            .get_untracked()
            .filter(|id| self.missing.get_untracked() != Some(*id))
    }

    /// Applies one live event. Events for our own actions arrive too; every change is an
    /// upsert, so applying them twice is harmless.
    pub fn apply(&self, event: ChatEvent) {
        match event {
            ChatEvent::Thread { thread } => self.upsert_thread(thread),
            ChatEvent::ThreadDeleted { thread_id } => {
                self.change_list(|list| list.retain(|t| t.id != thread_id));
                self.known.try_update_value(|k| k.forget_thread(thread_id));
                if self.open.get_untracked() == Some(thread_id) {
                    self.current.update(|r| *r = Some(Ok(None)));
                    self.left.set(Some(thread_id));
                }
            }
            ChatEvent::Message { message } => self.upsert_message(message),
            ChatEvent::Delta {
                thread_id,
                message_id,
                content,
                html,
                from,
                keep,
            } => {
                let base = self
                    .known
                    .try_with_value(|k| k.get(&message_id).cloned())
                    .flatten()
                    .or_else(|| {
                        peek(&self.current).with_untracked(|c| {
                            c.as_ref()
                                .and_then(|r| r.as_ref().ok())
                                .and_then(|t| t.as_ref())
                                .filter(|t| t.thread.id == thread_id)
                                .and_then(|t| {
                                    t.messages
                                        .iter()
                                        .find(|m| m.message.id == message_id)
                                        .cloned()
                                })
                        })
                    });
                // A delta is the streaming state with this text; merging drops it when the
                // message has already moved past it.
                if let Some(mut m) = base.filter(|m| m.message.status == MessageStatus::Streaming) {
                    // Only a change applies to what the earlier deltas built, or waits for
                    // the next whole delta.
                    let grown = self
                        .known
                        .try_update_value(|k| k.follow(message_id, (content, html), from.zip(keep)))
                        .flatten();
                    let Some((content, html)) = grown else { return };
                    (m.message.content, m.html) = (content, html);
                    self.upsert_message(m);
                }
            }
            ChatEvent::Truncated { thread_id, after } => {
                self.known.try_update_value(|k| k.changed(thread_id));
                self.with_open(thread_id, |tv| {
                    let keep = match after {
                        None => 0,
                        Some(id) => tv
                            .messages
                            .iter()
                            .position(|m| m.message.id == id)
                            .map_or(tv.messages.len(), |i| i + 1),
                    };
                    tv.messages.truncate(keep);
                });
            }
            // The stream is live again (it opened, or it had fallen behind): a tab that was
            // paused, whichever tab asked for the stream back, is live with it.
            ChatEvent::Resync => {
                self.paused.set(false);
                self.epoch.update(|e| *e += 1);
            }
            ChatEvent::Replaced => self.paused.set(true),
        }
    }

    /// Takes the live stream back (another browser of the session loses it) and reloads
    /// what the page shows, which missed the changes made meanwhile.
    pub fn resume(self) {
        self.paused.set(false);
        self.epoch.update(|e| *e += 1);
        crate::browser::open_event_stream(move |e| self.apply(e));
    }
}

/// What `r` holds now, read from the page's event handlers: through the resource itself,
/// a debug build would warn on every live event that it was read outside a `<Suspense>`
/// (which matters only to a read that should wait for it, not to a look at its value).
fn peek<T: Send + Sync + 'static>(r: &Resource<T>) -> &AsyncDerived<T> {
    r
}

/// Builds the chat data for the layout and provides it, leaves a chat that was deleted, and
/// keeps the data live (a reload and the event stream) once the session is ready.
pub(super) fn provide_chat_state(
    session: SessionCtx,
    epoch: RwSignal<u32>,
    open: Memo<Option<ThreadId>>,
    location: Location,
) -> ChatState {
    let known = StoredValue::new(Known::default());
    let reading = StoredValue::new(Reading::default());
    let missing = RwSignal::new(None::<ThreadId>);
    // Server rendering fetches both inside the request's session; the browser fetches again
    // once its own session start has returned (the protocol's ordering rule).
    let threads = Resource::new(
        move || epoch.get(),
        move |_| async move {
            let _out = Out::new(reading, false);
            let changes = move || reading.try_with_value(|r| r.list_changes);
            let mut reads = 0;
            loop {
                let before = changes();
                let answer = api::list_threads().await;
                reads += 1;
                if answer.is_err() || changes() == before || reads == 4 {
                    break answer;
                }
            }
        },
    );
    let current = Resource::new(
        move || (epoch.get(), open.get()),
        move |(_, id)| async move {
            match id {
                // Events that came while the request was out may be newer than its answer:
                // a newer state of a message it holds is merged in below, but a message it
                // does not hold (one sent meanwhile) or one it holds that was cut away (an
                // edit meanwhile) can only come from a newer answer. So it is read again
                // then, a few times at most (a busy chat is then merged as it is).
                Some(id) => {
                    let _out = Out::new(reading, true);
                    let changes = move || known.try_with_value(|k| k.changes(id));
                    let mut reads = 0;
                    let answer = loop {
                        let before = changes();
                        let answer = api::get_thread(id).await;
                        reads += 1;
                        if answer.is_err() || changes() == before || reads == 4 {
                            break answer;
                        }
                    };
                    match &answer {
                        Err(e) if e.code == crate::ErrorCode::NotFound => {
                            missing.try_set(Some(id));
                        }
                        Ok(_) if missing.get_untracked() == Some(id) => {
                            missing.try_set(None);
                        }
                        _ => {}
                    }
                    answer.map(|mut tv| {
                        known.try_update_value(|k| {
                            tv.messages = std::mem::take(&mut tv.messages)
                                .into_iter()
                                .map(|m| k.merge(m))
                                .collect();
                        });
                        Some(tv)
                    })
                }
                None => Ok(None),
            }
        },
    );
    let left = RwSignal::new(None::<ThreadId>);
    let state = ChatState {
        threads,
        current,
        open,
        epoch,
        known,
        reading,
        left,
        missing,
        commenting: RwSignal::new(None),
        paused: RwSignal::new(false),
    };
    provide_context(state);

    // Leave a deleted chat for a new one; the composer keeps what was typed.
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(id) = left.get()
            && open.get_untracked() == Some(id)
        {
            navigate(
                "/",
                NavigateOptions {
                    replace: true,
                    ..NavigateOptions::default()
                },
            );
        }
    });

    // Finishing a sign-in renews the session, and a request still under the old id that
    // already carries the new proof is refused with that proof cleared, which undoes the
    // sign-in. So the callback page, which reloads as soon as it is done, sends nothing of
    // the chat's own: it shows what the server rendered until the person moves on.
    let signing_in = move || location.pathname.with(|p| p.starts_with("/auth/callback"));
    Effect::new(move |prev: Option<bool>| {
        let live = matches!(session.state.get(), SessionState::Ready(_)) && !signing_in();
        if live && prev != Some(true) {
            epoch.update(|e| *e += 1);
            crate::browser::open_event_stream(move |e| state.apply(e));
        }
        live
    });
    state
}
