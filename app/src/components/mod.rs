//! The page: an app shell (header, main, footer) around the routes.

mod account;
mod chat;
mod icon;
mod notepad;

use crate::{ApiError, api::SessionInfo};
use leptos::prelude::*;
use leptos_meta::provide_meta_context;
use leptos_router::{
    Lazy, LazyRoute, SsrMode,
    components::{ParentRoute, Route, Router, Routes},
    lazy_route, path,
};

/// Where this browser's session stands. Server calls other than session start wait for
/// `Ready`, as the protocol requires.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))] // only the browser moves past Starting
pub enum SessionState {
    Starting,
    Ready(SessionInfo),
    Failed(ApiError),
}

impl SessionState {
    fn as_attr(&self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready(_) => "ready",
            Self::Failed(_) => "failed",
        }
    }
}

/// False until the calling component has hydrated, then true. The server renders every page
/// before the session has started, and a lazy route hydrates only when its code arrives, by
/// when the session may be ready: what such a page shows of the session waits for this, or
/// the browser's first render would differ from the server's and hydration would fail.
pub(crate) fn hydrated() -> Signal<bool> {
    let done = RwSignal::new(false);
    Effect::new(move |_| done.set(true));
    done.into()
}

/// What a page loads: nothing until its condition holds and the answer has come, then the
/// server's answer.
pub(crate) type Load<T> = LocalResource<Option<Result<T, ApiError>>>;

/// Loads with `fetch` once `when` holds (the session ready, an account signed in…), never
/// before (the protocol's ordering rule), and again whenever `when` changes.
pub(crate) fn load_when<T: 'static, Fut>(
    when: impl Fn() -> bool + 'static,
    fetch: impl Fn() -> Fut + 'static,
) -> Load<T>
where
    Fut: std::future::Future<Output = Result<T, ApiError>> + 'static,
{
    LocalResource::new(move || {
        let go = when().then(&fetch);
        async move {
            match go {
                Some(f) => Some(f.await),
                None => None,
            }
        }
    })
}

/// The message of a failed answer, if it failed.
pub(crate) fn failure<T>(answer: &Option<Result<T, ApiError>>) -> Option<String> {
    answer
        .as_ref()
        .and_then(|r| r.as_ref().err().map(|e| e.message.clone()))
}

/// The value of a successful answer, if it succeeded.
pub(crate) fn success<T: Clone>(answer: &Option<Result<T, ApiError>>) -> Option<T> {
    answer.as_ref().and_then(|r| r.as_ref().ok().cloned())
}

#[derive(Clone, Copy)]
pub struct SessionCtx {
    pub state: RwSignal<SessionState>,
    /// A message for the person, e.g. that a new session was started.
    pub notice: RwSignal<Option<String>>,
}

/// Whether the chat list is open as a drawer. Only narrow windows show it as one (the menu
/// button that opens it is hidden elsewhere), so on a desktop this stays false.
#[derive(Clone, Copy)]
pub struct DrawerCtx {
    pub open: RwSignal<bool>,
}

/// The whole application: starts this browser's session and routes to the chat, the
/// notepad and the account pages.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let ctx = SessionCtx {
        state: RwSignal::new(SessionState::Starting),
        notice: RwSignal::new(None),
    };
    provide_context(ctx);
    provide_context(DrawerCtx {
        open: RwSignal::new(false),
    });

    // Effects run only in the browser, after hydration.
    Effect::new(move |_| {
        crate::browser::apply_saved_theme();
        crate::browser::mark_hydrated();
        leptos::task::spawn_local(crate::client::start_session(ctx));
    });

    view! {
        <Router>
            <div class="app-shell" data-session-state=move || ctx.state.with(|s| s.as_attr())>
                <a class="skip-link" href="#main">"Skip to content"</a>
                <Header />
                <main class="main" id="main">
                    <Notice />
                    <chat::ChatLayout>
                        <Routes fallback=|| view! { <NotFound /> }>
                            <ParentRoute path=path!("") view=chat::ChatPage>
                                <Route path=path!("") view=chat::EmptyState />
                                // Rendered whole before it is sent, so that a chat the session
                                // does not have answers 404, not 200 with "not found" in it.
                                <Route path=path!("t/:id") view=chat::ThreadPage ssr=SsrMode::Async />
                            </ParentRoute>
                            <Route path=path!("/notes") view={Lazy::<NotesPage>::new()} />
                            <Route path=path!("/login") view={Lazy::<SignInPage>::new()} />
                            <Route
                                path=path!("/auth/callback")
                                view={Lazy::<CallbackPage>::new()}
                            />
                            <Route path=path!("/account") view={Lazy::<SessionsPage>::new()} />
                        </Routes>
                    </chat::ChatLayout>
                </main>
            </div>
        </Router>
    }
}

/// Pages most visits never open. Built with `cargo leptos --split`, each travels as its own
/// wasm chunk, fetched when it is first shown, so the first load carries only the chat.
macro_rules! lazy_pages {
    ($($route:ident => $page:path),* $(,)?) => {$(
        struct $route;

        #[lazy_route]
        impl LazyRoute for $route {
            fn data() -> Self {
                Self
            }
            fn view(_this: Self) -> AnyView {
                $page().into_any()
            }
        }
    )*};
}

lazy_pages! {
    NotesPage => notepad::Notepad,
    SignInPage => account::SignIn,
    CallbackPage => account::Callback,
    SessionsPage => account::MySessions,
}

#[component]
fn Header() -> impl IntoView {
    let ctx = expect_context::<SessionCtx>();
    let badge = move || {
        ctx.state.with(|s| match s {
            SessionState::Ready(info) => info.short_id.clone(),
            SessionState::Starting => "…".to_owned(),
            SessionState::Failed(_) => "offline".to_owned(),
        })
    };
    let drawer = expect_context::<DrawerCtx>();
    view! {
        <header class="topbar">
            <button
                class="icon menu-button"
                data-testid="menu"
                aria-label="Chats"
                aria-controls="sidebar"
                aria-expanded=move || drawer.open.get().to_string()
                on:click=move |_| drawer.open.update(|o| *o = !*o)
            >
                <span aria-hidden="true">"☰"</span>
            </button>
            <a class="brand" href="/">
                <span class="brand-mark" aria-hidden="true">"◆"</span>
                "Confide"
            </a>
            <div class="topbar-right">
                <span class="session-badge" title="Your session (first 8 characters)">
                    <span class="muted">"session "</span>
                    <code data-testid="session-id">{badge}</code>
                </span>
                <account::UserMenu />
                <ThemeToggle />
            </div>
        </header>
    }
}

#[component]
fn Notice() -> impl IntoView {
    let ctx = expect_context::<SessionCtx>();
    let failure = move || {
        ctx.state.with(|s| match s {
            SessionState::Failed(e) => Some(e.message.clone()),
            _ => None,
        })
    };
    view! {
        <Show when=move || ctx.notice.with(Option::is_some)>
            <div class="notice" role="status" data-testid="notice">
                <span>{move || ctx.notice.get().unwrap_or_default()}</span>
                <button class="link" on:click=move |_| ctx.notice.set(None) aria-label="Dismiss">
                    "×"
                </button>
            </div>
        </Show>
        {move || failure().map(|m| view! { <div class="notice error" role="alert">{m}</div> })}
    }
}

#[component]
fn ThemeToggle() -> impl IntoView {
    let toggle = move |_| crate::browser::toggle_theme();
    view! {
        <button class="icon theme-toggle" title="Switch light/dark" aria-label="Switch between light and dark theme" on:click=toggle>
            <icon::Icon name=icon::IconName::Theme />
        </button>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    view! {
        <section class="card">
            <h1>"Not found"</h1>
            <p>
                <a href="/">"Back to Confide"</a>
            </p>
        </section>
    }
}
