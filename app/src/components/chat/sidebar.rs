//! The chat list: new chat, search, each chat (open, rename, delete), and the footer with the
//! session's own actions.

use super::state::ChatState;
use crate::browser::{confirm, download, focus_after_ms, focus_later, sleep_ms};
use crate::derived::When;
use crate::{
    api::{self},
    components::{
        DrawerCtx,
        icon::{Icon, IconName},
    },
    model::{ChatEvent, SearchHit, Thread},
};
use leptos::{lazy, prelude::*};
use leptos_router::{NavigateOptions, hooks::use_navigate};

#[component]
pub(super) fn Sidebar() -> impl IntoView {
    let state = expect_context::<ChatState>();
    let query = RwSignal::new(String::new());
    let navigate = use_navigate();

    // Search as the person types, a moment after they pause. An answer to an older query
    // is dropped (a resource keeps only its latest run), and a query already replaced by
    // the time the pause ends is never sent.
    let search = LocalResource::new(move || {
        let q = query.get();
        async move {
            if q.trim().is_empty() {
                return None;
            }
            sleep_ms(200).await;
            if query.get_untracked() != q {
                return None;
            }
            api::search_threads(q).await.ok()
        }
    });
    // Read in an effect, not under the list's Transition: the server never runs a local
    // resource, and reading one there would hold the list at its fallback.
    let results = RwSignal::new(None::<Vec<SearchHit>>);
    Effect::new(move |_| results.set(search.get().flatten()));
    let on_search = move |ev| query.set(event_target_value(&ev));

    let drawer = expect_context::<DrawerCtx>();
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

    let export = Action::new(|_: &()| async {
        if let Ok(data) = api::export_my_data().await
            && let Some(json) = pretty_json(data).await
        {
            download("confide-export.json", "application/json", &json);
        }
    });
    let export_data = move |_| {
        export.dispatch(());
    };
    let forget = Action::new(|_: &()| async {
        if api::forget_session().await.is_ok() {
            crate::client::forgotten_restart();
        }
    });
    let forget_all = move |_| {
        if confirm("Delete all your chats and notes from the server and start a new session?") {
            forget.dispatch(());
        }
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
                    <When
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
                    </When>
                </Transition>
            </nav>
            <footer class="sidebar-foot">
                <a href="/notes">"Notes"</a>
                <button class="link-button" data-testid="export-data" on:click=export_data>"Export my data"</button>
                <button class="link-button danger" data-testid="forget" on:click=forget_all>"Forget this browser"</button>
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
    let href = super::thread_path(id);
    let is_current = move || state.open.get() == Some(id);

    // The field goes away when a rename ends; the focus goes to the chat's link (which a
    // new title rebuilds, hence once more after the answer).
    let link_selector = StoredValue::new(format!("#sidebar a[href='{}']", super::thread_path(id)));
    // The answer rebuilds this item, disposing of what it owns: what runs after it takes
    // plain copies.
    let rename = Action::new(move |new_title: &String| {
        let (new_title, selector) = (new_title.clone(), link_selector.get_value());
        async move {
            if let Ok(t) = api::rename_thread(id, new_title).await {
                state.upsert_thread(t);
            }
            focus_after_ms(selector, 0);
        }
    });
    let save = move || {
        editing.set(false);
        focus_after_ms(link_selector.get_value(), 0);
        rename.dispatch(title.get_untracked());
    };
    let delete = Action::new(move |_: &()| async move {
        if api::delete_thread(id).await.is_ok() {
            state.apply(ChatEvent::ThreadDeleted { thread_id: id });
            // Its Delete button, which had the focus, is gone.
            focus_later("#sidebar [data-testid=new-chat]");
        }
    });
    let remove = move |_| {
        if confirm("Delete this chat? This cannot be undone.") {
            delete.dispatch(());
        }
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

/// The export as indented JSON. Its code (the writer, and writing every chat type) is fetched
/// only by someone who exports: the page itself only ever reads these types.
#[lazy]
fn pretty_json(data: api::DataExport) -> Option<String> {
    serde_json::to_string_pretty(&data).ok()
}
