//! The chat: thread sidebar, message list, composer, and the live event stream that keeps
//! every tab of the session in step.
//!
//! Each part has its own file: [`state`] holds the chat data and keeps it live, [`sidebar`]
//! lists the chats, [`thread`] shows the open one, [`composer`] writes to it, and [`shortcuts`]
//! answers the keyboard.

mod composer;
mod settings;
mod shortcuts;
mod sidebar;
mod state;
mod thread;

use super::{SessionCtx, SessionState};
use crate::browser::{focus_after_ms, focus_later};
use crate::model::{MessageId, Rating, ThreadId};
use composer::{Composer, ComposerCtx};
use leptos::prelude::*;
use leptos_router::{
    components::Outlet,
    hooks::{use_location, use_params_map},
};
use shortcuts::Shortcuts;
use sidebar::Sidebar;
use state::ChatState;
use thread::{Messages, ThreadHeader};

/// Sidebar + the routed page. Owns the chat data and the event stream.
#[component]
pub fn ChatLayout(children: Children) -> impl IntoView {
    let session = expect_context::<SessionCtx>();
    let epoch = RwSignal::new(0u32);
    // The layout owns the open chat's data (the sidebar, the composer and the event stream
    // share it) and sits above the routes, which hand their params only to themselves and
    // the routes below them: so it reads the chat from the path. A route below cannot tell
    // it instead, as the server would have loaded the data before the route had spoken.
    let location = use_location();
    let open = Memo::new(move |_| location.pathname.with(|p| thread_in(p)));
    let state = state::provide_chat_state(session, epoch, open, location.clone());
    provide_context(ComposerCtx::new(state));
    provide_context(settings::SettingsCtx::new(epoch));

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

/// The path of chat `id`, matched by the `t/:id` route.
pub(super) fn thread_path(id: ThreadId) -> String {
    format!("/t/{id}")
}

/// The chat a path names, if it names one.
fn thread_in(path: &str) -> Option<ThreadId> {
    path.strip_prefix("/t/")
        .and_then(|id| ThreadId::parse(id.trim_end_matches('/')))
}

/// Puts the focus somewhere useful once the drawer has closed: the composer if the page has
/// one, else the main region.
fn focus_after_drawer() {
    focus_later("[data-testid=composer]:not([disabled]), #main");
}

/// Focuses the rating button `r` of message `id`, once the page has settled.
fn focus_rating(id: MessageId, r: Rating) {
    let button = match r {
        Rating::Up => "rate-up",
        Rating::Down => "rate-down",
    };
    focus_after_ms(format!("[data-message='{id}'] [data-testid={button}]"), 0);
}

/// The chat page, the parent of the empty state and of each chat: staying in place while
/// they change (the first message moves the page to /t/<id>), it keeps the composer, and
/// the focus in it, as they come and go.
#[component]
pub fn ChatPage() -> impl IntoView {
    let state = expect_context::<ChatState>();
    view! {
        <section class="chat" aria-label="Conversation">
            <Show when=move || state.paused.get()>
                <div class="notice live-paused" role="status" data-testid="live-paused">
                    <span>"Live updates are paused: the session is open in too many places at once."</span>
                    <button type="button" data-testid="live-resume" on:click=move |_| state.resume()>"Resume"</button>
                </div>
            </Show>
            <Transition fallback=|| view! { <div class="messages"><p class="muted">"Loading…"</p></div> }>
                <Outlet />
                <Composer />
            </Transition>
        </section>
    }
}

/// What a chat's route shows above the composer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PaneKind {
    Thread(ThreadId),
    NotFound,
    Loading,
    Empty,
}

/// The route of one chat, `t/:id`.
#[component]
pub fn ThreadPage() -> impl IntoView {
    let state = expect_context::<ChatState>();
    let session = expect_context::<SessionCtx>();
    let params = use_params_map();
    // The pane is rebuilt only when what it shows changes kind, not on every message
    // change: the message list updates in place, bubble by bubble. Made under the
    // Transition, so reading the thread here still holds the page until it has loaded
    // (a `derived::memo`: a plain memo could miss the thread settling on the server).
    let kind = crate::derived::memo(move || {
        // An id that is not one names no chat: it is not found, not an empty page to
        // start a chat on.
        if params
            .with(|p| p.get_str("id").and_then(ThreadId::parse))
            .is_none()
        {
            return PaneKind::NotFound;
        }
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
        PaneKind::NotFound => {
            #[cfg(feature = "ssr")]
            crate::ssr::set_status(http::StatusCode::NOT_FOUND);
            view! {
            <div class="messages">
                <div class="empty" data-testid="not-found">
                    <h2>"Chat not found"</h2>
                    <p class="muted">"It may have been deleted, or it belongs to another session."</p>
                </div>
            </div>
            }
            .into_any()
        }
        PaneKind::Loading => {
            view! { <div class="messages"><p class="muted">"Loading…"</p></div> }.into_any()
        }
        PaneKind::Empty => view! { <EmptyState /> }.into_any(),
    }
}

/// The route of no chat yet, the empty path.
#[component]
pub fn EmptyState() -> impl IntoView {
    view! {
        <div class="messages">
            <div class="empty" data-testid="empty-state">
                <h2>"How can I help?"</h2>
                <p class="muted">"Start a conversation. It stays in this browser session and nowhere else."</p>
                <settings::Starters />
            </div>
        </div>
    }
}
