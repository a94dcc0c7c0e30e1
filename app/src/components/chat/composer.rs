//! The composer, and sending and stopping that other parts of the page share.

use super::state::ChatState;
use crate::browser::focus_later;
use crate::{
    api::{self},
    components::{SessionCtx, SessionState},
    model::{ChatEvent, MAX_MESSAGE_CHARS, ThreadView},
};
use leptos::{prelude::*, task::spawn_local};
use leptos_router::{NavigateOptions, hooks::use_navigate};

#[component]
pub(super) fn Composer() -> impl IntoView {
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
pub(super) struct ComposerCtx {
    pub(super) text: RwSignal<String>,
    pub(super) sending: RwSignal<bool>,
    pub(super) error: RwSignal<Option<String>>,
}

/// Sends `text` in the open thread (or a new one) and opens the thread.
pub(super) fn send_text(
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

/// Stops the reply being written, if any, and keeps the focus in the composer (the Stop
/// button that may have had it goes away).
pub(super) fn stop_streaming(state: ChatState) {
    if let Some(id) = state.streaming() {
        spawn_local(async move {
            if let Ok(v) = api::stop_reply(id).await {
                state.upsert_message(v);
            }
            focus_later("[data-testid=composer]");
        });
    }
}
