//! Signing in and out, and "my sessions".

use super::{SessionCtx, SessionState};
use crate::account::{self as api, SessionRow, SignInOptions};
use leptos::{prelude::*, task::spawn_local};

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
#[cfg_attr(not(feature = "hydrate"), allow(unused_variables))]
fn adopt(signed: crate::account::SignedIn) {
    #[cfg(feature = "hydrate")]
    crate::client::adopt_session_and_reload(&signed.session_id);
}

#[cfg_attr(not(feature = "hydrate"), allow(unused_variables))]
fn go(url: &str) {
    #[cfg(feature = "hydrate")]
    crate::client::go(url);
}

/// After sign-out the server told the browser to drop cookies and storage; start afresh.
fn restart() {
    #[cfg(feature = "hydrate")]
    crate::client::forget_and_restart();
}

#[component]
pub fn UserMenu() -> impl IntoView {
    let ctx = expect_context::<SessionCtx>();
    let sign_out = move |_| {
        spawn_local(async move {
            match api::log_out().await {
                Ok(()) => restart(),
                Err(e) => ctx
                    .notice
                    .set(Some(format!("Could not sign out: {}", e.message))),
            }
        });
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

#[component]
pub fn SignIn() -> impl IntoView {
    let ctx = expect_context::<SessionCtx>();
    let options = RwSignal::new(None::<SignInOptions>);
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let keep = RwSignal::new(true);
    let register = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);

    Effect::new(move |_| {
        if matches!(ctx.state.get(), SessionState::Ready(_)) {
            spawn_local(async move {
                match api::get_sign_in_options().await {
                    Ok(o) => options.set(Some(o)),
                    Err(e) => error.set(Some(e.message)),
                }
            });
        }
    });

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (u, p, k) = (
            username.get_untracked(),
            password.get_untracked(),
            keep.get_untracked(),
        );
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let result = if register.get_untracked() {
                api::register(u, p, Some(k)).await
            } else {
                api::log_in(u, p, Some(k)).await
            };
            match result {
                Ok(signed) => adopt(signed),
                Err(e) => {
                    error.set(Some(e.message));
                    busy.set(false);
                }
            }
        });
    };

    let provider = move |id: String| {
        let k = keep.get_untracked();
        busy.set(true);
        spawn_local(async move {
            match api::oidc_start(id, Some(k)).await {
                Ok(url) => go(&url),
                Err(e) => {
                    error.set(Some(e.message));
                    busy.set(false);
                }
            }
        });
    };

    let by_header = move |_| {
        let k = keep.get_untracked();
        busy.set(true);
        spawn_local(async move {
            match api::log_in_by_header(Some(k)).await {
                Ok(signed) => adopt(signed),
                Err(e) => {
                    error.set(Some(e.message));
                    busy.set(false);
                }
            }
        });
    };

    let opts = move || options.get().unwrap_or_default();
    let disabled = move || {
        ctx.state
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
                error
                    .get()
                    .map(|m| view! { <div class="notice error" role="alert" data-testid="sign-in-error">{m}</div> })
            }}
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
                    <button class="primary" type="submit" data-testid="sign-in-submit" disabled=move || busy.get()>
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
                                disabled=move || busy.get()
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
                                <button class="secondary" data-testid="header-sign-in" disabled=move || busy.get() on:click=by_header>
                                    {format!("Continue as {u}")}
                                </button>
                            }
                        })
                }}
            </div>
            <label class="check">
                <input
                    type="checkbox"
                    data-testid="keep-threads"
                    prop:checked=move || keep.get()
                    on:change=move |ev| keep.set(event_target_checked(&ev))
                />
                "Keep the chats of this session"
            </label>
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
    Effect::new(move |prev: Option<bool>| {
        if prev == Some(true) || !matches!(ctx.state.get(), SessionState::Ready(_)) {
            return prev.unwrap_or(false);
        }
        #[cfg(feature = "hydrate")]
        {
            use crate::client::query_param;
            // The provider's own wording is not shown: anyone can put text in this URL.
            if query_param("error").is_some() {
                error.set(Some("The provider did not sign you in.".into()));
                return true;
            }
            let code = query_param("code").unwrap_or_default();
            let state = query_param("state").unwrap_or_default();
            spawn_local(async move {
                match api::oidc_finish(code, state).await {
                    Ok(signed) => adopt(signed),
                    Err(e) => error.set(Some(e.message)),
                }
            });
        }
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

fn when(ms: i64) -> String {
    #[cfg(feature = "hydrate")]
    {
        let d = web_sys::js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
        d.to_locale_string("default", &wasm_bindgen::JsValue::UNDEFINED)
            .as_string()
            .unwrap_or_default()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        ms.to_string()
    }
}

#[component]
pub fn MySessions() -> impl IntoView {
    let ctx = expect_context::<SessionCtx>();
    let rows = RwSignal::new(Vec::<SessionRow>::new());
    let error = RwSignal::new(None::<String>);
    let status = RwSignal::new(None::<String>);
    let current_pw = RwSignal::new(String::new());
    let new_pw = RwSignal::new(String::new());

    let load = move || {
        spawn_local(async move {
            match api::my_sessions().await {
                Ok(r) => rows.set(r),
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    // Only an account has sessions to list; asking without one would just fail.
    let signed_in = move || user_of(&ctx).is_some();
    let ready = move || matches!(ctx.state.get(), SessionState::Ready(_));
    Effect::new(move |_| {
        if ready() && signed_in() {
            load();
        }
    });

    let end = move |handle: String| {
        spawn_local(async move {
            match api::end_session(handle).await {
                Ok(()) => load(),
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let end_all = move |_| {
        spawn_local(async move {
            match api::end_all_sessions().await {
                Ok(_) => restart(),
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let change = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (c, n) = (current_pw.get_untracked(), new_pw.get_untracked());
        spawn_local(async move {
            match api::change_password(c, n).await {
                Ok(ended) => {
                    current_pw.set(String::new());
                    new_pw.set(String::new());
                    status.set(Some(format!(
                        "Password changed; {ended} other session(s) ended."
                    )));
                    load();
                }
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let is_password =
        move || user_of(&ctx).is_some_and(|u| u.method == crate::model::SignInMethod::Password);

    view! {
        <Show when=move || !ready() || signed_in() fallback=NotSignedIn>
        <section class="card sessions" aria-labelledby="sessions-title">
            <h1 id="sessions-title">"Your sessions"</h1>
            {move || error.get().map(|m| view! { <div class="notice error" role="alert" data-testid="sessions-error">{m}</div> })}
            {move || status.get().map(|m| view! { <div class="notice" role="status" data-testid="sessions-status">{m}</div> })}
            <ul class="session-list" data-testid="session-list">
                <For
                    each=move || rows.get()
                    key=|r| (r.handle.clone(), r.last_seen_ms)
                    children=move |r| {
                        let handle = r.handle.clone();
                        view! {
                            <li data-testid="session-row" data-current=r.current.to_string()>
                                <span class="agent">{r.agent.clone()}</span>
                                <span class="muted">
                                    {format!(" · signed in {} · last seen {}", when(r.created_ms), when(r.last_seen_ms))}
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
                <form class="stack" on:submit=change>
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
