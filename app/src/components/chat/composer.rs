//! The composer, and sending and stopping that other parts of the page share.

use super::settings::{SettingsButton, SettingsPanel};
use super::state::ChatState;
use crate::browser::focus_later;
use crate::{
    api::{self},
    components::{SessionCtx, SessionState},
    model::{ChatEvent, MAX_MESSAGE_CHARS, MessageId, ThreadId, ThreadView},
};
use leptos::prelude::*;
use leptos_router::{NavigateOptions, hooks::use_navigate};

#[component]
pub(super) fn Composer() -> impl IntoView {
    let state = expect_context::<ChatState>();
    let session = expect_context::<SessionCtx>();
    let composer = expect_context::<ComposerCtx>();
    let text = composer.text;

    let ready = move || matches!(session.state.get(), SessionState::Ready(_));
    let streaming = move || state.streaming();
    let count = move || text.with(|t| t.chars().count());
    let too_long = move || count() > MAX_MESSAGE_CHARS;
    let can_send = move || {
        ready()
            && !composer.sending()
            && streaming().is_none()
            && !too_long()
            && !text.with(|t| t.trim().is_empty())
    };

    let submit = move || {
        if can_send() {
            // Send turns into Stop: the focus, if it was on Send, moves to the field.
            focus_later("[data-testid=composer]");
            composer.send_text(text.get_untracked(), true);
        }
    };
    let stop = move |_| composer.stop_streaming(state);

    view! {
        <form class="composer" on:submit=move |ev| { ev.prevent_default(); submit(); }>
            {move || composer.error().map(|e| view! { <p class="meta error" role="alert">{e}</p> })}
            <SettingsPanel />
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
                            submit();
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
                <SettingsButton />
                // Keys are for keyboards: phones and tablets have their own way to a new line.
                <span class="muted hint wide-only">"Enter to send · Shift+Enter for a new line · ? for shortcuts"</span>
                {move || streaming().map(|_| view! { <span class="muted small" role="status">"Assistant is replying…"</span> })}
            </div>
        </form>
    }
}

/// What the composer shares with the rest of the chat. It lives in the layout: a new chat
/// becomes /t/<id> mid-send, and what was typed and the send under way outlive that.
#[derive(Clone, Copy)]
pub(super) struct ComposerCtx {
    pub(super) text: RwSignal<String>,
    /// Sends a message; answers the new chat it made, if it made one, or what to tell the
    /// person if it was not sent.
    pub(super) send: Action<Outgoing, Result<Option<ThreadId>, String>>,
    /// Stops a reply being written.
    pub(super) stop: Action<MessageId, ()>,
}

/// A message to send, and whether it came from the composer (whose text goes once it has
/// been sent) or from elsewhere (a starter), which leaves the composer's text alone.
#[derive(Clone)]
pub(super) struct Outgoing {
    pub(super) text: String,
    pub(super) from_composer: bool,
}

impl ComposerCtx {
    pub(super) fn new(state: ChatState) -> Self {
        let text = RwSignal::new(String::new());
        let send = Action::new(move |out: &Outgoing| {
            let out = out.clone();
            // The thread is the one open when Send was pressed, whatever opens meanwhile.
            let thread = state.open.get_untracked();
            async move { send(state, thread, out, text).await }
        });
        // A new chat opens once its first message is in. Navigating here rather than in
        // the action keeps the router (which lives in the browser's one thread) out of it.
        let navigate = use_navigate();
        Effect::new(move |_| {
            if let Some(Ok(Some(id))) = send.value().get() {
                navigate(&super::thread_path(id), NavigateOptions::default());
            }
        });
        let stop = Action::new(move |id: &MessageId| {
            let id = *id;
            async move {
                if let Ok(v) = api::stop_reply(id).await {
                    state.upsert_message(v);
                }
                // The Stop button that may have had the focus is gone.
                focus_later("[data-testid=composer]");
            }
        });
        Self { text, send, stop }
    }

    /// Sends `text`, from the composer or not, in the open thread (or a new one).
    pub(super) fn send_text(&self, text: String, from_composer: bool) {
        self.send.dispatch(Outgoing {
            text,
            from_composer,
        });
    }

    pub(super) fn sending(&self) -> bool {
        self.send.pending().get()
    }

    /// Why the last message was not sent, until the next one is on its way.
    pub(super) fn error(&self) -> Option<String> {
        if self.sending() {
            return None;
        }
        self.send.value().get().and_then(Result::err)
    }

    /// Stops the reply being written, if any.
    pub(super) fn stop_streaming(&self, state: ChatState) {
        if let Some(id) = state.streaming() {
            self.stop.dispatch(id);
        }
    }
}

/// Sends `out` in `thread` (or a new one). Answers the new chat it made, if it made one, or
/// what to tell the person if the message was not sent.
async fn send(
    state: ChatState,
    thread: Option<ThreadId>,
    out: Outgoing,
    text: RwSignal<String>,
) -> Result<Option<ThreadId>, String> {
    match api::send_message(thread, out.text).await {
        Ok(sent) => {
            if out.from_composer {
                text.try_set(String::new());
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
                Ok(Some(sent.thread.id))
            } else {
                state.upsert_message(sent.user);
                state.upsert_message(sent.reply);
                Ok(None)
            }
        }
        // The chat was deleted and this page missed the news (its event stream was down):
        // leave it as if the news had come. The text stays in the composer.
        Err(e) if e.code == crate::ErrorCode::NotFound && thread.is_some() => {
            if let Some(id) = thread {
                state.apply(ChatEvent::ThreadDeleted { thread_id: id });
            }
            Err("This chat was deleted, so your message was not sent. It is still here: send it to start a new chat.".into())
        }
        Err(e) => Err(e.message),
    }
}
