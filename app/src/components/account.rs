//! Signing in and out, and "my sessions".

use super::{SessionCtx, SessionState, failure, load_when, success};
use crate::account as api;
use crate::browser::{local_time, query_param};
use leptos::prelude::*;

fn user_of(ctx: &SessionCtx) -> Option<crate::account::Account> {
    ctx.state.with(|s| match s {
        SessionState::Ready(info) => info.user.clone(),
        _ => None,
    })
}

fn sign_in_enabled(ctx: &SessionCtx) -> bool {
    ctx.state.with(|s| match s {
        SessionState::Ready(info) => info.sign_in_enabled,
        _ => false,
    })
}

/// After the server renewed the session: switch to its id and reload under it.
fn adopt(signed: crate::account::SignedIn) {
    crate::client::adopt_session_and_reload(&signed.session_id);
}

#[component]
pub fn UserMenu() -> impl IntoView {
    let ctx = expect_context::<SessionCtx>();
    let log_out = Action::new(move |_: &()| async move {
        match api::log_out().await {
            Ok(()) => crate::client::forget_and_restart(),
            Err(e) => ctx
                .notice
                .set(Some(format!("Could not sign out: {}", e.message))),
        }
    });
    let sign_out = move |_| {
        log_out.dispatch(());
    };
    move || match user_of(&ctx) {
        Some(user) => view! {
            <span class="user-menu">
                <a href="/account" class="user-name" data-testid="user-name" title="Your sessions">
                    {user.name}
                </a>
                <button class="link" data-testid="sign-out" on:click=sign_out>
                    "Sign out"
                </button>
            </span>
        }
        .into_any(),
        None if sign_in_enabled(&ctx) => view! {
            <a href="/login" class="sign-in-link" data-testid="sign-in-link">
                "Sign in"
            </a>
        }
        .into_any(),
        None => ().into_any(),
    }
}

/// The ways of signing in a person can choose on the page.
#[derive(Clone)]
enum Way {
    Password {
        user: String,
        password: String,
        register: bool,
    },
    Provider(String),
    Header,
}

#[component]
pub fn SignIn() -> impl IntoView {
    let ctx = expect_context::<SessionCtx>();
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let keep = RwSignal::new(true);
    let register = RwSignal::new(false);

    let options = load_when(
        move || matches!(ctx.state.get(), SessionState::Ready(_)),
        api::get_sign_in_options,
    );

    // Success leaves the page (a reload under the new session, or the provider's page), so
    // only a failure comes back to it.
    let sign_in = Action::new(move |way: &Way| {
        let (way, k) = (way.clone(), Some(keep.get_untracked()));
        async move {
            match way {
                Way::Password {
                    user,
                    password,
                    register,
                } => {
                    let signed = if register {
                        api::register(user, password, k).await?
                    } else {
                        api::log_in(user, password, k).await?
                    };
                    adopt(signed);
                }
                Way::Provider(id) => crate::browser::go(&api::oidc_start(id, k).await?),
                Way::Header => adopt(api::log_in_by_header(k).await?),
            }
            Ok::<(), crate::ApiError>(())
        }
    });
    // Buttons stay off from the click until the page is left; a failure turns them back on.
    let busy =
        move || sign_in.pending().get() || sign_in.value().with(|v| matches!(v, Some(Ok(()))));
    let error = move || {
        if sign_in.pending().get() {
            return None;
        }
        sign_in
            .value()
            .with(failure)
            .or_else(|| options.map(failure).flatten())
    };

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        sign_in.dispatch(Way::Password {
            user: username.get_untracked(),
            password: password.get_untracked(),
            register: register.get_untracked(),
        });
    };
    let provider = move |id: String| {
        sign_in.dispatch(Way::Provider(id));
    };
    let by_header = move |_| {
        sign_in.dispatch(Way::Header);
    };

    let opts = move || options.map(success).flatten().unwrap_or_default();
    let hydrated = super::hydrated();
    let disabled = move || {
        hydrated.get()
            && ctx
                .state
                .with(|s| matches!(s, SessionState::Ready(info) if !info.sign_in_enabled))
    };

    view! {
        <Show when=move || !disabled() fallback=SignInOff>
        <section class="card sign-in" aria-labelledby="sign-in-title">
            <h1 id="sign-in-title">
                {move || if register.get() { "Create an account" } else { "Sign in" }}
            </h1>
            <p class="muted">
                "Signed in, your chats follow you to any browser where you sign in. Your current session is replaced by a new one."
            </p>
            {move || {
                error()
                    .map(|m| view! { <div class="notice error" role="alert" data-testid="sign-in-error">{m}</div> })
            }}
            // Before the ways of signing in: it changes what each of them does.
            <label class="check">
                <input
                    type="checkbox"
                    data-testid="keep-threads"
                    prop:checked=move || keep.get()
                    on:change=move |ev| keep.set(event_target_checked(&ev))
                />
                "Keep the chats of this session"
            </label>
            <Show when=move || opts().password>
                <form class="stack" on:submit=submit>
                    <label for="username">"Username"</label>
                    <input
                        id="username"
                        data-testid="username"
                        autocomplete="username"
                        required
                        prop:value=move || username.get()
                        on:input=move |ev| username.set(event_target_value(&ev))
                    />
                    <label for="password">"Password"</label>
                    <input
                        id="password"
                        data-testid="password"
                        type="password"
                        required
                        autocomplete=move || if register.get() { "new-password" } else { "current-password" }
                        prop:value=move || password.get()
                        on:input=move |ev| password.set(event_target_value(&ev))
                    />
                    <button class="primary" type="submit" data-testid="sign-in-submit" disabled=busy>
                        {move || if register.get() { "Create account" } else { "Sign in" }}
                    </button>
                </form>
                <Show when=move || opts().registration>
                    <button class="link" data-testid="toggle-register" on:click=move |_| register.update(|r| *r = !*r)>
                        {move || if register.get() { "I have an account" } else { "Create an account" }}
                    </button>
                </Show>
            </Show>
            <div class="stack providers">
                <For
                    each=move || opts().providers
                    key=|p| p.id.clone()
                    children=move |p| {
                        let id = p.id.clone();
                        view! {
                            <button
                                class="secondary"
                                data-testid=format!("provider-{}", p.id)
                                disabled=busy
                                on:click=move |_| provider(id.clone())
                            >
                                {format!("Continue with {}", p.name)}
                            </button>
                        }
                    }
                />
                {move || {
                    opts()
                        .header_user
                        .map(|u| {
                            view! {
                                <button class="secondary" data-testid="header-sign-in" disabled=busy on:click=by_header>
                                    {format!("Continue as {u}")}
                                </button>
                            }
                        })
                }}
            </div>
        </section>
        </Show>
    }
}

/// `/login` on a server where nobody can sign in: say so, and lead back to the chat.
#[component]
fn SignInOff() -> impl IntoView {
    view! {
        <section class="card" aria-labelledby="sign-in-off-title" data-testid="sign-in-off">
            <h1 id="sign-in-off-title">"Sign-in is not enabled"</h1>
            <p>
                "This Confide server has no accounts. Your chats belong to this browser's session: they stay private to it, and nobody else can open them."
            </p>
            <p>
                <a href="/" data-testid="back-to-chat">"Back to the chat"</a>
            </p>
        </section>
    }
}

/// `/account` when nobody is signed in: why the page is empty, and the way in where there
/// is one.
#[component]
fn NotSignedIn() -> impl IntoView {
    let ctx = expect_context::<SessionCtx>();
    view! {
        <section class="card" aria-labelledby="not-signed-in-title" data-testid="not-signed-in">
            <h1 id="not-signed-in-title">"You are not signed in"</h1>
            <p>
                "This page lists the browsers where your account is signed in, and lets you end them. Without an account, your chats belong to this browser's session alone."
            </p>
            {move || if sign_in_enabled(&ctx) {
                view! {
                    <p>
                        <a class="button primary" href="/login" data-testid="account-sign-in">"Sign in"</a>
                        " "
                        <a href="/">"Back to the chat"</a>
                    </p>
                }.into_any()
            } else {
                view! {
                    <p class="muted">"Sign-in is not enabled on this server."</p>
                    <p>
                        <a href="/" data-testid="back-to-chat">"Back to the chat"</a>
                    </p>
                }.into_any()
            }}
        </section>
    }
}

/// Where the identity provider sends the browser back. The page's script hands code and
/// state to the server (a same-origin call that passes the CSRF rules); the server checks
/// the state against the sign-in this session started.
#[component]
pub fn Callback() -> impl IntoView {
    let ctx = expect_context::<SessionCtx>();
    let error = RwSignal::new(None::<String>);
    let finish = Action::new(move |(code, state): &(String, String)| {
        let (code, state) = (code.clone(), state.clone());
        async move {
            match api::oidc_finish(code, state).await {
                Ok(signed) => adopt(signed),
                Err(e) => error.set(Some(e.message)),
            }
        }
    });
    Effect::new(move |prev: Option<bool>| {
        if prev == Some(true) || !matches!(ctx.state.get(), SessionState::Ready(_)) {
            return prev.unwrap_or(false);
        }
        // The provider's own wording is not shown: anyone can put text in this URL.
        if query_param("error").is_some() {
            error.set(Some("The provider did not sign you in.".into()));
            return true;
        }
        finish.dispatch((
            query_param("code").unwrap_or_default(),
            query_param("state").unwrap_or_default(),
        ));
        true
    });
    view! {
        <section class="card">
            <h1>"Signing in…"</h1>
            {move || {
                error
                    .get()
                    .map(|m| {
                        view! {
                            <div class="notice error" role="alert" data-testid="sign-in-error">{m}</div>
                            <p>
                                <a href="/login">"Try again"</a>
                            </p>
                        }
                    })
            }}
        </section>
    }
}

/// What the sessions page can change.
#[derive(Clone)]
enum Change {
    End(String),
    EndAll,
    Password { current: String, new: String },
}

#[component]
pub fn MySessions() -> impl IntoView {
    let ctx = expect_context::<SessionCtx>();
    let current_pw = RwSignal::new(String::new());
    let new_pw = RwSignal::new(String::new());

    // Only an account has sessions to list; asking without one would just fail.
    // What the page shows of the session waits for its hydration (see `hydrated`).
    let hydrated = super::hydrated();
    let signed_in = move || hydrated.get() && user_of(&ctx).is_some();
    let ready = move || hydrated.get() && matches!(ctx.state.get(), SessionState::Ready(_));
    let rows = load_when(move || ready() && signed_in(), api::my_sessions);

    // Each change answers with what to tell the person, if anything.
    let change = Action::new(move |change: &Change| {
        let change = change.clone();
        async move {
            match change {
                Change::End(handle) => {
                    api::end_session(handle).await?;
                    rows.refetch();
                    Ok(None)
                }
                Change::EndAll => {
                    api::end_all_sessions().await?;
                    crate::client::forget_and_restart();
                    Ok(None)
                }
                Change::Password { current, new } => {
                    let ended = api::change_password(current, new).await?;
                    current_pw.set(String::new());
                    new_pw.set(String::new());
                    rows.refetch();
                    Ok::<_, crate::ApiError>(Some(format!(
                        "Password changed; {ended} other session(s) ended."
                    )))
                }
            }
        }
    });
    let end = move |handle: String| {
        change.dispatch(Change::End(handle));
    };
    let end_all = move |_| {
        change.dispatch(Change::EndAll);
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        change.dispatch(Change::Password {
            current: current_pw.get_untracked(),
            new: new_pw.get_untracked(),
        });
    };
    let error = move || {
        change
            .value()
            .with(failure)
            .or_else(|| rows.map(failure).flatten())
    };
    let status = move || {
        change
            .value()
            .with(|v| v.clone().and_then(|r| r.ok().flatten()))
    };
    let list = move || rows.map(success).flatten().unwrap_or_default();
    let is_password = move || {
        hydrated.get()
            && user_of(&ctx).is_some_and(|u| u.method == crate::model::SignInMethod::Password)
    };

    view! {
        <Show when=move || !ready() || signed_in() fallback=NotSignedIn>
        <section class="card sessions" aria-labelledby="sessions-title">
            <h1 id="sessions-title">"Your sessions"</h1>
            {move || error().map(|m| view! { <div class="notice error" role="alert" data-testid="sessions-error">{m}</div> })}
            {move || status().map(|m| view! { <div class="notice" role="status" data-testid="sessions-status">{m}</div> })}
            <ul class="session-list" data-testid="session-list">
                <For
                    each=list
                    key=|r| (r.handle.clone(), r.last_seen_ms)
                    children=move |r| {
                        let handle = r.handle.clone();
                        view! {
                            <li data-testid="session-row" data-current=r.current.to_string()>
                                <span class="agent">{r.agent.clone()}</span>
                                <span class="muted">
                                    {format!(" · signed in {} · last seen {}", local_time(r.created_ms), local_time(r.last_seen_ms))}
                                </span>
                                {if r.current {
                                    view! { <strong class="current">" (this browser)"</strong> }.into_any()
                                } else {
                                    view! {
                                        <button class="link" data-testid="end-session" on:click=move |_| end(handle.clone())>
                                            "End"
                                        </button>
                                    }
                                        .into_any()
                                }}
                            </li>
                        }
                    }
                />
            </ul>
            <button class="secondary" data-testid="end-all" on:click=end_all>
                "Sign out everywhere"
            </button>
            <Show when=is_password>
                <form class="stack" on:submit=submit>
                    <h2>"Change password"</h2>
                    <label for="current-password">"Current password"</label>
                    <input
                        id="current-password"
                        type="password"
                        autocomplete="current-password"
                        data-testid="current-password"
                        prop:value=move || current_pw.get()
                        on:input=move |ev| current_pw.set(event_target_value(&ev))
                    />
                    <label for="new-password">"New password"</label>
                    <input
                        id="new-password"
                        type="password"
                        autocomplete="new-password"
                        data-testid="new-password"
                        prop:value=move || new_pw.get()
                        on:input=move |ev| new_pw.set(event_target_value(&ev))
                    />
                    <button class="primary" type="submit" data-testid="change-password">
                        "Change password"
                    </button>
                </form>
            </Show>
        </section>
        </Show>
    }
}
