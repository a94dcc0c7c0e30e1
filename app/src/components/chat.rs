//! The chat: thread sidebar, message list, composer, and the live event stream that keeps
//! every tab of the session in step.

use super::{
    SessionCtx, SessionState,
    icon::{Icon, IconName},
};
use crate::{
    ApiError,
    api::{self},
    model::{
        ChatEvent, ExportFormat, MAX_COMMENT_CHARS, MAX_MESSAGE_CHARS, MessageId, MessageStatus,
        MessageView, Rating, Role, SearchHit, Thread, ThreadId, ThreadView,
    },
};
use leptos::{prelude::*, task::spawn_local};
use leptos_router::{
    NavigateOptions,
    components::Outlet,
    hooks::{use_location, use_navigate},
};
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
    /// The open thread was deleted (here or elsewhere) and the page should leave it.
    left: RwSignal<Option<ThreadId>>,
    /// The reply whose optional feedback comment is being written. Kept here, not in the
    /// bubble: a rating changes the message's version, which rebuilds its bubble.
    commenting: RwSignal<Option<MessageId>>,
}

/// The newest state this page has seen of each message. The answer to a request and the
/// live events about the same message travel separately and arrive in either order (a
/// short reply's last event often comes before the answer that started it); every state
/// the page takes in passes through here, so an older one never replaces a newer one.
#[derive(Default)]
struct Known {
    messages: HashMap<MessageId, (MessageView, u64)>,
    /// Insertion order, to forget the oldest once there are too many.
    order: VecDeque<MessageId>,
    /// Last version handed out. A message's version changes whenever the state the page
    /// keeps for it does, so the message list keys on (id, version).
    version: u64,
}

impl Known {
    /// Far more than one page shows; a reordering of states spans a moment, not a session.
    const LIMIT: usize = 2_000;

    /// Takes in `m` unless a newer state of it is known, and answers the newest.
    fn merge(&mut self, m: MessageView) -> MessageView {
        let id = m.message.id;
        match self.messages.get_mut(&id) {
            Some((known, _)) if !m.message.supersedes(&known.message) => known.clone(),
            Some((known, _)) if *known == m => m,
            Some(entry) => {
                self.version += 1;
                *entry = (m.clone(), self.version);
                m
            }
            None => {
                self.version += 1;
                self.messages.insert(id, (m.clone(), self.version));
                self.order.push_back(id);
                while self.order.len() > Self::LIMIT {
                    if let Some(old) = self.order.pop_front() {
                        self.messages.remove(&old);
                    }
                }
                m
            }
        }
    }

    fn get(&self, id: &MessageId) -> Option<&MessageView> {
        self.messages.get(id).map(|(m, _)| m)
    }

    fn version(&self, id: &MessageId) -> u64 {
        self.messages.get(id).map_or(0, |(_, v)| *v)
    }

    fn forget_thread(&mut self, thread: ThreadId) {
        self.messages
            .retain(|_, (m, _)| m.message.thread_id != thread);
        let messages = &self.messages;
        self.order.retain(|id| messages.contains_key(id));
    }
}

impl ChatState {
    fn streaming(&self) -> Option<MessageId> {
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

    fn upsert_thread(&self, thread: Thread) {
        self.threads.update(|r| {
            if let Some(Ok(list)) = r {
                list.retain(|t| t.id != thread.id);
                list.push(thread.clone());
                list.sort_by_key(|t| std::cmp::Reverse(t.updated_ms));
            }
        });
        self.with_open(thread.id, |tv| tv.thread = thread);
    }

    fn with_open(&self, id: ThreadId, f: impl FnOnce(&mut ThreadView)) {
        self.current.update(|r| {
            if let Some(Ok(Some(tv))) = r
                && tv.thread.id == id
            {
                f(tv);
            }
        });
    }

    /// The newest of `m` and what is known of it; the page keeps that one.
    fn merge(&self, m: MessageView) -> MessageView {
        self.known
            .try_update_value(|k| k.merge(m.clone()))
            .unwrap_or(m)
    }

    fn upsert_message(&self, m: MessageView) {
        let thread = m.message.thread_id;
        let mut incoming = Some(m);
        self.with_open(thread, |tv| {
            let Some(m) = incoming.take() else { return };
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

    /// The version the message list keys a message's bubble on.
    fn version(&self, id: &MessageId) -> u64 {
        self.known.try_with_value(|k| k.version(id)).unwrap_or(0)
    }

    /// Applies one live event. Events for our own actions arrive too; every change is an
    /// upsert, so applying them twice is harmless.
    pub fn apply(&self, event: ChatEvent) {
        match event {
            ChatEvent::Thread { thread } => self.upsert_thread(thread),
            ChatEvent::ThreadDeleted { thread_id } => {
                self.threads.update(|r| {
                    if let Some(Ok(list)) = r {
                        list.retain(|t| t.id != thread_id);
                    }
                });
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
            } => {
                let base = self
                    .known
                    .try_with_value(|k| k.get(&message_id).cloned())
                    .flatten()
                    .or_else(|| {
                        self.current.with_untracked(|c| {
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
                    m.message.content = content;
                    m.html = html;
                    self.upsert_message(m);
                }
            }
            ChatEvent::Truncated { thread_id, after } => self.with_open(thread_id, |tv| {
                let keep = match after {
                    None => 0,
                    Some(id) => tv
                        .messages
                        .iter()
                        .position(|m| m.message.id == id)
                        .map_or(tv.messages.len(), |i| i + 1),
                };
                tv.messages.truncate(keep);
            }),
            ChatEvent::Resync => self.epoch.update(|e| *e += 1),
        }
    }
}

/// Sidebar + the routed page. Owns the chat data and the event stream.
#[component]
pub fn ChatLayout(children: Children) -> impl IntoView {
    let session = expect_context::<SessionCtx>();
    let epoch = RwSignal::new(0u32);
    // The layout sits above the routes, so it reads the thread id from the path itself.
    let location = use_location();
    let open = Memo::new(move |_| {
        location.pathname.with(|p| {
            p.strip_prefix("/t/")
                .and_then(|id| ThreadId::parse(id.trim_end_matches('/')))
        })
    });
    // The composer's state outlives route changes (a new chat becomes /t/<id> mid-send).
    provide_context(ComposerCtx {
        text: RwSignal::new(String::new()),
        sending: RwSignal::new(false),
        error: RwSignal::new(None),
    });

    let known = StoredValue::new(Known::default());
    // Server rendering fetches both inside the request's session; the browser fetches again
    // once its own session start has returned (the protocol's ordering rule).
    let threads = Resource::new(move || epoch.get(), |_| api::list_threads());
    let current = Resource::new(
        move || (epoch.get(), open.get()),
        move |(_, id)| async move {
            match id {
                // Events that came while the request was out may be newer than its answer.
                Some(id) => api::get_thread(id).await.map(|mut tv| {
                    known.try_update_value(|k| {
                        tv.messages = std::mem::take(&mut tv.messages)
                            .into_iter()
                            .map(|m| k.merge(m))
                            .collect();
                    });
                    Some(tv)
                }),
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
        left,
        commenting: RwSignal::new(None),
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
            #[cfg(feature = "hydrate")]
            crate::client::open_event_stream(move |e| state.apply(e));
        }
        live
    });

    // Choosing a chat (or any other page) closes the drawer; the focus, which was in it,
    // goes to the composer or the page rather than being lost to <body>.
    let drawer = expect_context::<super::DrawerCtx>();
    Effect::new(move |prev: Option<String>| {
        let path = location.pathname.get();
        if prev.is_some_and(|p| p != path) && drawer.open.get_untracked() {
            drawer.open.set(false);
            focus_after_drawer();
        }
        path
    });

    view! {
        <div class="workspace" class:drawer-open=move || drawer.open.get()>
            <div
                class="drawer-backdrop"
                aria-hidden="true"
                on:click=move |_| drawer.open.set(false)
            ></div>
            <Sidebar />
            <div class="content">{children()}</div>
            <Shortcuts />
        </div>
    }
}

/// Puts the focus somewhere useful once the drawer has closed: the composer if the page has
/// one, else the main region.
fn focus_after_drawer() {
    focus_later("[data-testid=composer]:not([disabled]), #main");
}

/// Focuses the first element matching `selector` after the page has rendered the change
/// that revealed it (a hidden element cannot take the focus).
/// Focuses the rating button `r` of message `id`, once the page has settled.
fn focus_rating(id: MessageId, r: Rating) {
    let button = match r {
        Rating::Up => "rate-up",
        Rating::Down => "rate-down",
    };
    focus_after_ms(format!("[data-message='{id}'] [data-testid={button}]"), 0);
}

pub(super) fn focus_later(selector: &'static str) {
    focus_after_ms(selector.to_owned(), 0);
}

/// As `focus_later`, after `ms`: for an element that another pending focus move (such as
/// the drawer's own) must not win over.
fn focus_after_ms(selector: String, ms: u64) {
    #[cfg(feature = "hydrate")]
    leptos::prelude::set_timeout(
        move || {
            use wasm_bindgen::JsCast;
            if let Some(el) = web_sys::window()
                .and_then(|w| w.document())
                .and_then(|d| d.query_selector(&selector).ok().flatten())
                .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok())
            {
                let _ = el.focus();
            }
        },
        std::time::Duration::from_millis(ms),
    );
    #[cfg(not(feature = "hydrate"))]
    let _ = (selector, ms);
}

/// Stops the reply being written, if any, and keeps the focus in the composer (the Stop
/// button that may have had it goes away).
fn stop_streaming(state: ChatState) {
    if let Some(id) = state.streaming() {
        spawn_local(async move {
            if let Ok(v) = api::stop_reply(id).await {
                state.upsert_message(v);
            }
            focus_later("[data-testid=composer]");
        });
    }
}

/// Whether a key press is typing into a field (where `?` is a character, not a command).
#[cfg(feature = "hydrate")]
fn typing_in_field(ev: &leptos::ev::KeyboardEvent) -> bool {
    use wasm_bindgen::JsCast;
    ev.target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        .is_some_and(|el| {
            matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT")
                || el.closest("[contenteditable]").ok().flatten().is_some()
        })
}

/// Keyboard shortcuts for the whole page, and the list of them that `?` opens.
#[component]
fn Shortcuts() -> impl IntoView {
    let state = expect_context::<ChatState>();
    let drawer = expect_context::<super::DrawerCtx>();
    let navigate = use_navigate();
    let dialog = NodeRef::<leptos::html::Dialog>::new();
    // Where the focus was when the list opened; it goes back there when it closes. Browser
    // only: a DOM handle held by the page's owner would be dropped on whichever server thread
    // ends the render, which `new_local` forbids (it panics there, cutting the page short).
    #[cfg(feature = "hydrate")]
    let opener = StoredValue::new_local(None::<leptos::web_sys::HtmlElement>);

    #[cfg(feature = "hydrate")]
    {
        let handle = window_event_listener(leptos::ev::keydown, move |ev| {
            if ev.default_prevented() || dialog.get_untracked().is_some_and(|d| d.open()) {
                return;
            }
            let command = ev.ctrl_key() || ev.meta_key();
            let key = ev.key();
            if key == "Escape" && !drawer.open.get_untracked() && state.streaming().is_some() {
                ev.prevent_default();
                stop_streaming(state);
            } else if command && ev.shift_key() && key.eq_ignore_ascii_case("o") {
                ev.prevent_default();
                drawer.open.set(false);
                navigate("/", NavigateOptions::default());
                focus_later("[data-testid=composer]");
            } else if command && !ev.shift_key() && key.eq_ignore_ascii_case("k") {
                ev.prevent_default();
                drawer.open.set(true);
                focus_after_ms("#sidebar [data-testid=search]".into(), 60);
            } else if key == "?" && !command && !typing_in_field(&ev) {
                ev.prevent_default();
                use wasm_bindgen::JsCast;
                let active = web_sys::window()
                    .and_then(|w| w.document())
                    .and_then(|d| d.active_element())
                    .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok());
                opener.set_value(active);
                if let Some(d) = dialog.get_untracked() {
                    let _ = d.show_modal();
                }
            }
        });
        on_cleanup(move || handle.remove());
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (state, drawer, navigate);

    let close = move |_| {
        if let Some(d) = dialog.get_untracked() {
            d.close();
        }
    };
    let on_close = move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(el) = opener.get_value() {
            let _ = el.focus();
        }
    };
    // The list's only control is Close: Tab stays on it rather than leaving the dialog.
    let trap = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() == "Tab" {
            ev.prevent_default();
        }
    };
    view! {
        <dialog
            class="shortcuts card"
            node_ref=dialog
            aria-labelledby="shortcuts-title"
            data-testid="shortcuts"
            on:close=on_close
            on:keydown=trap
        >
            <h2 id="shortcuts-title">"Keyboard shortcuts"</h2>
            <dl>
                <dt><kbd>"Enter"</kbd></dt><dd>"Send"</dd>
                <dt><kbd>"Shift"</kbd>" + "<kbd>"Enter"</kbd></dt><dd>"New line"</dd>
                <dt><kbd>"Esc"</kbd></dt><dd>"Stop the reply being written; close a menu or this list"</dd>
                <dt><kbd>"Ctrl/⌘"</kbd>" + "<kbd>"Shift"</kbd>" + "<kbd>"O"</kbd></dt><dd>"New chat"</dd>
                <dt><kbd>"Ctrl/⌘"</kbd>" + "<kbd>"K"</kbd></dt><dd>"Search chats"</dd>
                <dt><kbd>"?"</kbd></dt><dd>"This list"</dd>
            </dl>
            <button class="primary" data-testid="close-shortcuts" on:click=close>"Close"</button>
        </dialog>
    }
}

#[component]
fn Sidebar() -> impl IntoView {
    let state = expect_context::<ChatState>();
    let query = RwSignal::new(String::new());
    let results = RwSignal::new(None::<Vec<SearchHit>>);
    let navigate = use_navigate();

    // Search as the person types, a moment after they pause.
    let search_gen = StoredValue::new(0u32);
    let on_search = move |ev| {
        let q = event_target_value(&ev);
        query.set(q.clone());
        search_gen.update_value(|g| *g += 1);
        let mine = search_gen.get_value();
        if q.trim().is_empty() {
            results.set(None);
            return;
        }
        spawn_local(async move {
            sleep_ms(200).await;
            if search_gen.get_value() != mine {
                return;
            }
            if let Ok(hits) = api::search_threads(q).await
                && search_gen.get_value() == mine
            {
                results.set(Some(hits));
            }
        });
    };

    let drawer = expect_context::<super::DrawerCtx>();
    let new_chat = {
        let navigate = navigate.clone();
        move |_| {
            navigate("/", NavigateOptions::default());
            if drawer.open.get_untracked() {
                drawer.open.set(false);
            }
            focus_later("[data-testid=composer]");
        }
    };
    // Opening the drawer moves the focus into it, so a keyboard or screen reader user lands
    // where the chats are.
    Effect::new(move |prev: Option<bool>| {
        let open = drawer.open.get();
        if open && prev == Some(false) {
            focus_later("#sidebar [data-testid=new-chat]");
        }
        open
    });
    let on_keydown = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() == "Escape" && drawer.open.get_untracked() {
            drawer.open.set(false);
            focus_later("[data-testid=menu]");
        }
    };

    let export_data = move |_| {
        spawn_local(async move {
            if let Ok(data) = api::export_my_data().await
                && let Ok(json) = serde_json::to_string_pretty(&data)
            {
                download("confide-export.json", "application/json", &json);
            }
        });
    };
    let forget = move |_| {
        if !confirm("Delete all your chats and notes from the server and start a new session?") {
            return;
        }
        spawn_local(async move {
            if api::forget_session().await.is_ok() {
                #[cfg(feature = "hydrate")]
                crate::client::forget_and_restart();
            }
        });
    };

    let list = move || {
        if let Some(hits) = results.get() {
            return hits
                .into_iter()
                .map(|h| (h.thread, h.snippet))
                .collect::<Vec<_>>();
        }
        state
            .threads
            .get()
            .and_then(Result::ok)
            .unwrap_or_default()
            .into_iter()
            .map(|t| (t, None))
            .collect()
    };

    view! {
        <aside class="sidebar" id="sidebar" aria-label="Chats" data-testid="sidebar" on:keydown=on_keydown>
            <button class="primary new-chat" data-testid="new-chat" on:click=new_chat>
                "+ New chat"
            </button>
            <input
                class="search"
                type="search"
                placeholder="Search chats"
                aria-label="Search chats"
                data-testid="search"
                prop:value=move || query.get()
                on:input=on_search
            />
            <nav class="thread-list" data-testid="thread-list">
                <Transition fallback=|| view! { <p class="muted small">"Loading…"</p> }>
                    <Show
                        when=move || !list().is_empty()
                        fallback=move || {
                            let text = if results.with(Option::is_some) { "No chats match." } else { "No chats yet." };
                            view! { <p class="muted small empty-list">{text}</p> }
                        }
                    >
                        // Keyed, so an item being renamed stays open while other chats come,
                        // go or move; it is rebuilt only when its own title or snippet changes.
                        <For
                            each=list
                            key=|(t, snippet)| (t.id, t.title.clone(), snippet.clone())
                            children=|(t, snippet)| view! { <ThreadItem thread=t snippet=snippet /> }
                        />
                    </Show>
                </Transition>
            </nav>
            <footer class="sidebar-foot">
                <a href="/notes">"Notes"</a>
                <button class="link-button" data-testid="export-data" on:click=export_data>"Export my data"</button>
                <button class="link-button danger" data-testid="forget" on:click=forget>"Forget this browser"</button>
                <span class="muted">"Confide — your conversations stay yours."</span>
            </footer>
        </aside>
    }
}

#[component]
fn ThreadItem(thread: Thread, snippet: Option<String>) -> impl IntoView {
    let state = expect_context::<ChatState>();
    let id = thread.id;
    let editing = RwSignal::new(false);
    let title = RwSignal::new(thread.title.clone());
    let original = StoredValue::new(thread.title.clone());
    let href = format!("/t/{id}");
    let is_current = move || state.open.get() == Some(id);

    // The field goes away when a rename ends; the focus goes to the chat's link (which a
    // new title rebuilds, hence once more after the answer).
    let link_selector = StoredValue::new(format!("#sidebar a[href='/t/{id}']"));
    let save = move || {
        let new_title = title.get_untracked();
        editing.set(false);
        let selector = link_selector.get_value();
        focus_after_ms(selector.clone(), 0);
        // A plain copy: the answer rebuilds this item, disposing of what it owns.
        spawn_local(async move {
            if let Ok(t) = api::rename_thread(id, new_title).await {
                state.upsert_thread(t);
            }
            focus_after_ms(selector, 0);
        });
    };
    let remove = move |_| {
        if !confirm("Delete this chat? This cannot be undone.") {
            return;
        }
        spawn_local(async move {
            if api::delete_thread(id).await.is_ok() {
                state.apply(ChatEvent::ThreadDeleted { thread_id: id });
                // Its Delete button, which had the focus, is gone.
                focus_later("#sidebar [data-testid=new-chat]");
            }
        });
    };

    view! {
        <div class="thread-item" class:current=is_current data-testid="thread-item">
            <Show
                when=move || editing.get()
                fallback=move || {
                    view! {
                        <a
                            href=href.clone()
                            class="thread-link"
                            aria-current=move || if is_current() { Some("page") } else { None }
                        >
                            <span class="thread-title">{move || title.get()}</span>
                            {snippet.clone().map(|s| view! { <span class="snippet">{s}</span> })}
                        </a>
                        <button class="icon" title="Rename" aria-label="Rename chat" on:click=move |_| editing.set(true)>
                            <Icon name=IconName::Edit />
                        </button>
                        <button class="icon" title="Delete" aria-label="Delete chat" data-testid="delete-thread" on:click=remove>
                            <Icon name=IconName::Trash />
                        </button>
                    }
                }
            >
                <input
                    class="rename"
                    aria-label="Chat title"
                    prop:value=move || title.get()
                    on:input=move |ev| title.set(event_target_value(&ev))
                    on:keydown=move |ev| {
                        if ev.key() == "Enter" {
                            save();
                        } else if ev.key() == "Escape" {
                            // Esc gives up the rename (and leaves the drawer open).
                            ev.stop_propagation();
                            title.set(original.get_value());
                            editing.set(false);
                            focus_after_ms(link_selector.get_value(), 0);
                        }
                    }
                    on:blur=move |_| if editing.get_untracked() { save() }
                />
            </Show>
        </div>
    }
}

/// The routed chat page: the open thread (or the empty state) and the composer.
#[component]
pub fn ChatPage() -> impl IntoView {
    view! {
        <section class="chat" aria-label="Conversation">
            <Transition fallback=|| view! { <div class="messages"><p class="muted">"Loading…"</p></div> }>
                <Pane />
                <Composer />
            </Transition>
            // The empty state and each chat are child routes that show nothing of their own.
            <Outlet />
        </section>
    }
}

/// What the chat page shows above the composer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PaneKind {
    Thread(ThreadId),
    NotFound,
    Loading,
    Empty,
}

#[component]
fn Pane() -> impl IntoView {
    let state = expect_context::<ChatState>();
    let session = expect_context::<SessionCtx>();
    // The pane is rebuilt only when what it shows changes kind, not on every message
    // change: the message list updates in place, bubble by bubble. Made under the
    // Transition, so reading the thread here still holds the page until it has loaded.
    let kind = Memo::new(move |_| {
        let ready = matches!(session.state.get(), SessionState::Ready(_));
        state.current.with(|c| match c {
            Some(Ok(Some(tv))) => PaneKind::Thread(tv.thread.id),
            Some(Err(e)) if e.code == crate::ErrorCode::NotFound => PaneKind::NotFound,
            _ if state.open.get().is_some() && !ready => PaneKind::Loading,
            _ => PaneKind::Empty,
        })
    });
    // `try_get`: a server render whose response was dropped (the client left) may still
    // run this after its owner is gone; it then renders nothing instead of panicking.
    move || kind.try_get().map(pane_view)
}

fn pane_view(kind: PaneKind) -> AnyView {
    match kind {
        PaneKind::Thread(id) => view! { <ThreadHeader id=id /> <Messages /> }.into_any(),
        PaneKind::NotFound => view! {
            <div class="messages">
                <div class="empty">
                    <h2>"Chat not found"</h2>
                    <p class="muted">"It may have been deleted, or it belongs to another session."</p>
                </div>
            </div>
        }
        .into_any(),
        PaneKind::Loading => {
            view! { <div class="messages"><p class="muted">"Loading…"</p></div> }.into_any()
        }
        PaneKind::Empty => view! { <EmptyState /> }.into_any(),
    }
}

#[component]
fn ThreadHeader(id: ThreadId) -> impl IntoView {
    let state = expect_context::<ChatState>();
    let title = Memo::new(move |_| {
        state.current.with(|c| {
            c.as_ref()
                .and_then(|r| r.as_ref().ok())
                .and_then(|t| t.as_ref())
                .filter(|t| t.thread.id == id)
                .map(|t| t.thread.title.clone())
                .unwrap_or_default()
        })
    });
    let export = move |format: ExportFormat| {
        spawn_local(async move {
            if let Ok(file) = api::export_thread(id, format).await {
                download(&file.filename, &file.mime, &file.content);
            }
        })
    };
    view! {
        <header class="thread-head">
            <h1 data-testid="thread-title">{move || title.get()}</h1>
            <div class="thread-actions">
                // A phone shows only ".md" and ".json", leaving the title room to be read.
                <button class="ghost" aria-label="Export .md" on:click=move |_| export(ExportFormat::Markdown)><span class="wide-only">"Export "</span>".md"</button>
                <button class="ghost" aria-label="Export .json" on:click=move |_| export(ExportFormat::Json)><span class="wide-only">"Export "</span>".json"</button>
            </div>
        </header>
    }
}

#[component]
fn EmptyState() -> impl IntoView {
    let state = expect_context::<ChatState>();
    let composer = use_context::<ComposerCtx>();
    let navigate = use_navigate();
    let starters = [
        ("Show me what you can render", "/markdown"),
        ("Stream a long answer I can stop", "/slow"),
        ("What can you do?", "/help"),
        (
            "Echo this sentence back to me, word by word.",
            "Echo this sentence back to me, word by word.",
        ),
    ];
    view! {
        <div class="messages">
            <div class="empty" data-testid="empty-state">
                <h2>"How can I help?"</h2>
                <p class="muted">"Start a conversation. It stays in this browser session and nowhere else."</p>
                <div class="starters">
                    {starters
                        .into_iter()
                        .map(|(label, text)| {
                            let navigate = navigate.clone();
                            view! {
                                <button class="starter" on:click=move |_| send_text(state, composer, navigate.clone(), text.to_owned())>
                                    {label}
                                </button>
                            }
                        })
                        .collect_view()}
                </div>
            </div>
        </div>
    }
}

#[component]
fn Messages() -> impl IntoView {
    let state = expect_context::<ChatState>();
    let messages = move || {
        state.current.with(|c| {
            c.as_ref()
                .and_then(|r| r.as_ref().ok())
                .and_then(|t| t.as_ref())
                .map(|t| t.messages.clone())
                .unwrap_or_default()
        })
    };
    // Only the last reply offers Regenerate; an earlier one stops offering it when a newer
    // reply arrives, without being rebuilt.
    let last_assistant = Memo::new(move |_| {
        state.current.with(|c| {
            c.as_ref()
                .and_then(|r| r.as_ref().ok())
                .and_then(|t| t.as_ref())
                .and_then(|t| {
                    t.messages
                        .iter()
                        .rev()
                        .find(|m| m.message.role == Role::Assistant)
                        .map(|m| m.message.id)
                })
        })
    });
    let list_ref = NodeRef::<leptos::html::Div>::new();
    // Whether the reader is at the end of the list. A reply is followed only then: someone
    // who scrolled up to read is left where they are, with a way back.
    let at_bottom = RwSignal::new(true);
    let to_bottom = move || {
        if let Some(el) = list_ref.get_untracked() {
            el.set_scroll_top(el.scroll_height());
        }
    };
    Effect::new(move |_| {
        state.current.track();
        if at_bottom.get_untracked() {
            to_bottom();
        }
    });
    let on_scroll = move |_| {
        if let Some(el) = list_ref.get_untracked() {
            // A few pixels of slack: zoom and rounding rarely land exactly on the end.
            let gap = el.scroll_height() - el.scroll_top() - el.client_height();
            at_bottom.set(gap <= 24);
        }
    };
    // What a screen reader hears of the newest reply: whole sentences as they complete and
    // the rest when it ends, through one polite live region, never each token.
    let announcement = RwSignal::new(String::new());
    let heard = StoredValue::new(None::<(MessageId, usize, MessageStatus)>);
    Effect::new(move |_| {
        let Some((id, content, status, role)) = state.current.with(|c| {
            c.as_ref()
                .and_then(|r| r.as_ref().ok())
                .and_then(|t| t.as_ref())
                .and_then(|t| t.messages.last())
                .map(|m| {
                    (
                        m.message.id,
                        m.message.content.clone(),
                        m.message.status,
                        m.message.role,
                    )
                })
        }) else {
            return;
        };
        if role != Role::Assistant {
            return;
        }
        let (from, before) = match heard.get_value() {
            Some((h, n, st)) if h == id => (n, Some(st)),
            // A reply already finished when the page showed it is not read out again.
            _ if status != MessageStatus::Streaming => {
                heard.set_value(Some((id, content.len(), status)));
                return;
            }
            _ => (0, None),
        };
        let upto = if status == MessageStatus::Streaming {
            // The end of the last complete sentence so far.
            content
                .get(from..)
                .unwrap_or_default()
                .char_indices()
                .rev()
                .find(|&(i, ch)| {
                    matches!(ch, '.' | '!' | '?' | '\n')
                        && content[from + i + ch.len_utf8()..]
                            .chars()
                            .next()
                            .is_some_and(char::is_whitespace)
                })
                .map_or(from, |(i, ch)| from + i + ch.len_utf8())
        } else {
            content.len()
        };
        let mut said = content
            .get(from.min(upto)..upto)
            .unwrap_or_default()
            .trim()
            .to_owned();
        if before != Some(status) {
            match status {
                MessageStatus::Stopped => said.push_str(" Reply stopped."),
                MessageStatus::Error => said.push_str(" The reply failed."),
                _ => {}
            }
        }
        heard.set_value(Some((id, upto, status)));
        let said = said.trim().to_owned();
        if !said.is_empty() {
            announcement.set(said);
        }
    });
    let jump = move |_| {
        at_bottom.set(true);
        to_bottom();
        // The button goes away; the focus goes where the next thing is typed.
        focus_later("[data-testid=composer]");
    };

    view! {
        <div class="messages-wrap">
        <div class="visually-hidden" aria-live="polite" data-testid="live">{move || announcement.get()}</div>
        <Show when=move || !at_bottom.get()>
            <button class="jump-latest" data-testid="jump-latest" on:click=jump>"↓ Jump to latest"</button>
        </Show>
        <div class="messages" node_ref=list_ref on:click=copy_code_on_click on:scroll=on_scroll data-testid="messages">
            <For
                each=messages
                // A message's version changes with the state kept for it, so For rebuilds
                // exactly the bubbles whose message changed (a streaming reply, a rating).
                key=move |m| (m.message.id, state.version(&m.message.id))
                children=move |m| {
                    let id = m.message.id;
                    let is_last = Signal::derive(move || last_assistant.get() == Some(id));
                    view! { <Bubble m=m is_last=is_last /> }
                }
            />
        </div>
        </div>
    }
}

#[component]
fn Bubble(m: MessageView, is_last: Signal<bool>) -> impl IntoView {
    let state = expect_context::<ChatState>();
    let msg = m.message.clone();
    let id = msg.id;
    let role_class = match msg.role {
        Role::User => "bubble user",
        Role::Assistant => "bubble assistant",
    };
    let status = match msg.status {
        MessageStatus::Streaming => "streaming",
        MessageStatus::Done => "done",
        MessageStatus::Stopped => "stopped",
        MessageStatus::Error => "error",
    };
    let editing = RwSignal::new(false);
    let draft = RwSignal::new(msg.content.clone());
    let streaming_here = move || state.streaming().is_some();

    let (role, msg_status, thread_id, error) =
        (msg.role, msg.status, msg.thread_id, msg.error.clone());
    let (text, html) = (msg.content.clone(), m.html.clone());
    let body = move || match role {
        Role::User => view! { <div class="text">{text.clone()}</div> }.into_any(),
        Role::Assistant => {
            view! { <div class="markdown" inner_html=html.clone()></div> }.into_any()
        }
    };

    let rate = move |r: Rating| {
        let current = state.current.with_untracked(|c| {
            c.as_ref()
                .and_then(|r| r.as_ref().ok())
                .and_then(|t| t.as_ref())
                .and_then(|t| {
                    t.messages
                        .iter()
                        .find(|x| x.message.id == id)
                        .and_then(|x| x.message.feedback.as_ref().map(|f| f.rating))
                })
        });
        let next = if current == Some(r) { None } else { Some(r) };
        // A rating invites a comment; taking it back closes the invitation.
        state.commenting.set(next.map(|_| id));
        spawn_local(async move {
            if let Ok(v) = api::set_feedback(id, next, None).await {
                // The new state rebuilds the bubble, and the focus with it goes: put it where
                // the person is now, the comment field or the button they pressed.
                state.upsert_message(v);
                match next {
                    Some(_) => focus_later("[data-testid=feedback-comment]"),
                    None => focus_rating(id, r),
                }
            }
        });
    };
    // Both replace the reply, and the button or form the focus was on goes with it: the
    // focus moves to the composer, where Esc stops the new reply and the next message is typed.
    let regenerate = move |_| {
        let tid = thread_id;
        focus_later("[data-testid=composer]");
        spawn_local(async move {
            let _ = api::regenerate_reply(tid).await;
        });
    };
    let save_edit = move |_| {
        let text = draft.get_untracked();
        editing.set(false);
        focus_later("[data-testid=composer]");
        spawn_local(async move {
            let _ = api::edit_message(id, text).await;
        });
    };
    let content = msg.content.clone();
    let rating = msg.feedback.as_ref().map(|f| f.rating);
    let comment = msg.feedback.as_ref().and_then(|f| f.comment.clone());
    let comment_draft = RwSignal::new(comment.clone().unwrap_or_default());
    let close_comment = move || {
        state.commenting.set(None);
        // The focus goes back to the rating it came from, never to <body>.
        if let Some(r) = rating {
            focus_rating(id, r);
        }
    };
    let send_comment = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(r) = rating else { return };
        let text = comment_draft.get_untracked();
        close_comment();
        spawn_local(async move {
            if let Ok(v) = api::set_feedback(id, Some(r), Some(text)).await {
                state.upsert_message(v);
                focus_rating(id, r);
            }
        });
    };
    let commenting = move || state.commenting.get() == Some(id) && rating.is_some();

    view! {
        <article class=role_class aria-label=if msg.role == Role::User { "You" } else { "Assistant" } data-role=if msg.role == Role::User { "user" } else { "assistant" } data-status=status data-message=id.to_string() data-testid="message">
            <Show
                when=move || editing.get()
                fallback=move || {
                    view! {
                        {body()}
                        {(msg_status == MessageStatus::Streaming).then(|| view! { <span class="typing" aria-label="Assistant is writing">"●●●"</span> })}
                        {(msg_status == MessageStatus::Stopped).then(|| view! { <p class="meta">"Stopped"</p> })}
                        {error.clone().map(|e| view! {
                            <p class="meta error" role="alert">{format!("The reply failed: {e}")}</p>
                        })}
                    }
                }
            >
                <textarea class="edit" aria-label="Edit message" prop:value=move || draft.get() on:input=move |ev| draft.set(event_target_value(&ev))></textarea>
                <div class="edit-actions">
                    <button class="primary" on:click=save_edit>"Save & ask again"</button>
                    <button class="ghost" on:click=move |_| {
                        editing.set(false);
                        focus_after_ms(format!("[data-message='{id}'] [aria-label='Edit message']"), 0);
                    }>"Cancel"</button>
                </div>
            </Show>
            <div class="actions">
                {match msg.role {
                    Role::User => view! {
                        <button class="icon" title="Edit" aria-label="Edit message" disabled=streaming_here on:click=move |_| {
                            editing.set(true);
                            focus_after_ms(format!("[data-message='{id}'] textarea.edit"), 0);
                        }><Icon name=IconName::Edit /></button>
                    }.into_any(),
                    Role::Assistant if msg.status != MessageStatus::Streaming => view! {
                        <button class="icon" title="Good reply" aria-label="Good reply" aria-pressed=(rating == Some(Rating::Up)).to_string() class:active=rating == Some(Rating::Up) on:click=move |_| rate(Rating::Up) data-testid="rate-up"><Icon name=IconName::ThumbUp /></button>
                        <button class="icon" title="Bad reply" aria-label="Bad reply" aria-pressed=(rating == Some(Rating::Down)).to_string() class:active=rating == Some(Rating::Down) on:click=move |_| rate(Rating::Down) data-testid="rate-down"><Icon name=IconName::ThumbDown /></button>
                        <button class="icon" title="Copy" aria-label="Copy reply" on:click=move |_| copy_text(&content)><Icon name=IconName::Copy /></button>
                        {move || is_last.get().then(|| view! {
                            <button class="icon" title="Regenerate" aria-label=if msg_status == MessageStatus::Error { "Retry" } else { "Regenerate reply" } data-testid="regenerate" on:click=regenerate><Icon name=IconName::Retry /></button>
                        })}
                    }.into_any(),
                    Role::Assistant => ().into_any(),
                }}
            </div>
            {move || (!commenting()).then(|| comment.clone()).flatten().map(|c| view! {
                <p class="meta feedback-note" data-testid="feedback-note">{format!("Your comment: {c}")}</p>
            })}
            <Show when=commenting>
                <form class="feedback-comment" on:submit=send_comment data-testid="feedback-form">
                    <label for=format!("comment-{id}")>
                        {if rating == Some(Rating::Down) { "What went wrong? (optional)" } else { "What was good? (optional)" }}
                    </label>
                    <input
                        id=format!("comment-{id}")
                        data-testid="feedback-comment"
                        maxlength=MAX_COMMENT_CHARS.to_string()
                        autocomplete="off"
                        prop:value=move || comment_draft.get()
                        on:input=move |ev| comment_draft.set(event_target_value(&ev))
                        on:keydown=move |ev| {
                            if ev.key() == "Escape" {
                                // Esc here closes the comment, not the reply's stream.
                                ev.prevent_default();
                                ev.stop_propagation();
                                close_comment();
                            }
                        }
                    />
                    <div class="edit-actions">
                        <button class="primary" type="submit" data-testid="feedback-send">"Send"</button>
                        <button class="ghost" type="button" data-testid="feedback-skip" on:click=move |_| close_comment()>"Not now"</button>
                    </div>
                </form>
            </Show>
        </article>
    }
}

#[component]
fn Composer() -> impl IntoView {
    let state = expect_context::<ChatState>();
    let session = expect_context::<SessionCtx>();
    let composer = expect_context::<ComposerCtx>();
    let ComposerCtx {
        text,
        sending,
        error,
    } = composer;
    let navigate = use_navigate();

    let ready = move || matches!(session.state.get(), SessionState::Ready(_));
    let streaming = move || state.streaming();
    let count = move || text.with(|t| t.chars().count());
    let too_long = move || count() > MAX_MESSAGE_CHARS;
    let can_send = move || {
        ready()
            && !sending.get()
            && streaming().is_none()
            && !too_long()
            && !text.with(|t| t.trim().is_empty())
    };

    let submit = move || {
        if can_send() {
            // Send turns into Stop: the focus, if it was on Send, moves to the field.
            focus_later("[data-testid=composer]");
            send_text(
                state,
                Some(composer),
                navigate.clone(),
                text.get_untracked(),
            );
        }
    };
    let submit_on_enter = submit.clone();
    let stop = move |_| stop_streaming(state);

    view! {
        <form class="composer" on:submit=move |ev| { ev.prevent_default(); submit(); }>
            {move || error.get().map(|e| view! { <p class="meta error" role="alert">{e}</p> })}
            <div class="composer-row">
                <textarea
                    data-testid="composer"
                    aria-label="Message"
                    placeholder=move || if streaming().is_some() { "Wait for the reply, or stop it…" } else { "Message Confide" }
                    rows="2"
                    prop:value=move || text.get()
                    disabled=move || !ready()
                    // Read-only, not disabled, while a reply streams: browsers take the focus
                    // from a disabled field, and the person would have to click back into it
                    // after every reply.
                    readonly=move || streaming().is_some()
                    on:input=move |ev| text.set(event_target_value(&ev))
                    on:keydown=move |ev| {
                        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                            ev.prevent_default();
                            submit_on_enter();
                        }
                    }
                ></textarea>
                <Show
                    when=move || streaming().is_some()
                    fallback=move || view! { <button class="primary" type="submit" data-testid="send" disabled=move || !can_send()>"Send"</button> }
                >
                    <button class="stop" type="button" data-testid="stop" on:click=stop>"■ Stop"</button>
                </Show>
            </div>
            <div class="composer-foot">
                <span class="counter" class:over=too_long>{move || format!("{} / {}", count(), MAX_MESSAGE_CHARS)}</span>
                // Keys are for keyboards: phones and tablets have their own way to a new line.
                <span class="muted hint wide-only">"Enter to send · Shift+Enter for a new line · ? for shortcuts"</span>
                {move || streaming().map(|_| view! { <span class="muted small" role="status">"Assistant is replying…"</span> })}
            </div>
        </form>
    }
}

#[derive(Clone, Copy)]
struct ComposerCtx {
    text: RwSignal<String>,
    sending: RwSignal<bool>,
    error: RwSignal<Option<String>>,
}

/// Sends `text` in the open thread (or a new one) and opens the thread.
fn send_text(
    state: ChatState,
    composer: Option<ComposerCtx>,
    navigate: impl Fn(&str, NavigateOptions) + Clone + 'static,
    text: String,
) {
    let thread = state.open.get_untracked();
    if let Some(c) = composer {
        c.sending.set(true);
        c.error.set(None);
    }
    spawn_local(async move {
        match api::send_message(thread, text).await {
            Ok(sent) => {
                if let Some(c) = composer {
                    c.text.try_set(String::new());
                }
                state.upsert_thread(sent.thread.clone());
                if thread.is_none() {
                    let messages = vec![state.merge(sent.user), state.merge(sent.reply)];
                    state.current.update(|r| {
                        *r = Some(Ok(Some(ThreadView {
                            thread: sent.thread.clone(),
                            messages,
                        })))
                    });
                    navigate(
                        &format!("/t/{}", sent.thread.id),
                        NavigateOptions::default(),
                    );
                } else {
                    state.upsert_message(sent.user);
                    state.upsert_message(sent.reply);
                }
            }
            // The chat was deleted and this page missed the news (its event stream was
            // down): leave it as if the news had come. The text stays in the composer.
            Err(e) if e.code == crate::ErrorCode::NotFound && thread.is_some() => {
                if let Some(id) = thread {
                    state.apply(ChatEvent::ThreadDeleted { thread_id: id });
                }
                if let Some(c) = composer {
                    c.error.try_set(Some(
                        "This chat was deleted, so your message was not sent. It is still here: send it to start a new chat.".into(),
                    ));
                }
            }
            Err(e) => {
                if let Some(c) = composer {
                    c.error.try_set(Some(e.message));
                }
            }
        }
        if let Some(c) = composer {
            c.sending.try_set(false);
        }
    });
}

async fn sleep_ms(ms: u32) {
    #[cfg(feature = "hydrate")]
    crate::client::sleep_ms(ms).await;
    #[cfg(not(feature = "hydrate"))]
    let _ = ms;
}

fn confirm(question: &str) -> bool {
    #[cfg(feature = "hydrate")]
    return web_sys::window()
        .and_then(|w| w.confirm_with_message(question).ok())
        .unwrap_or(false);
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = question;
        false
    }
}

fn copy_text(text: &str) {
    #[cfg(feature = "hydrate")]
    if let Some(w) = web_sys::window() {
        let _ = w.navigator().clipboard().write_text(text);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = text;
}

fn download(filename: &str, mime: &str, content: &str) {
    #[cfg(feature = "hydrate")]
    crate::client::download(filename, mime, content);
    #[cfg(not(feature = "hydrate"))]
    let _ = (filename, mime, content);
}

/// Copy buttons inside rendered markdown (code blocks) are plain HTML from the server; one
/// listener on the list handles them all.
fn copy_code_on_click(ev: leptos::ev::MouseEvent) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let Some(button) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        else {
            return;
        };
        if !button.class_list().contains("copy-code") {
            return;
        }
        let code = button
            .closest(".code-block")
            .ok()
            .flatten()
            .and_then(|block| block.query_selector("code").ok().flatten())
            .and_then(|code| code.text_content());
        if let Some(code) = code {
            copy_text(&code);
            button.set_text_content(Some("Copied"));
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = ev;
}
